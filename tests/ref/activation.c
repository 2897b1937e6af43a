/*
 * References and check cases for the activations, following the PyTorch documentation of
 * torch.nn.ReLU, LeakyReLU (negative_slope), Sigmoid, Tanh and GELU(approximate='none'):
 *   relu(x) = max(0, x)          leaky_relu(x) = x if x > 0 else slope * x
 *   sigmoid(x) = 1 / (1 + e^-x)  tanh(x)       gelu(x) = 0.5 x (1 + erf(x / sqrt 2))
 * Every input and output has the same shape (any shape; the loops are flat).
 *
 * Special values (checked forward only, on +-inf/NaN inputs): NaN propagates through every
 * op, relu(NaN) included (torch.relu returns NaN there); the infinities give the limits,
 * which is IEEE arithmetic everywhere except gelu(-inf): PyTorch's formula gives -inf * 0 =
 * NaN there, a known defect (pytorch/pytorch#185770, with fixes such as #192318 returning
 * the limit 0); we return that limit, 0, in the reference and the kernel alike.
 */
#include <math.h>

#include "ref/ref.h"

static const double SQRT_2PI = 2.50662827463100050242;

typedef double (*unary_fn)(double x, double slope);

static double relu_f(double x, double slope)
{
    (void)slope;
    return x <= 0 ? 0 : x; /* NaN fails the comparison and passes through */
}
static double leaky_relu_f(double x, double slope)
{
    return x > 0 ? x : slope * x;
}
static double sigmoid_f(double x, double slope)
{
    (void)slope;
    return 1 / (1 + exp(-x));
}
static double tanh_f(double x, double slope)
{
    (void)slope;
    return tanh(x);
}
static double gelu_f(double x, double slope)
{
    (void)slope;
    if (isinf(x) && x < 0)
        return 0;
    return 0.5 * x * (1 + erf(x / sqrt(2.0)));
}

/* Derivatives, from the input x or the output y = f(x). */
typedef double (*unary_grad_fn)(double x, double y, double slope);

static double relu_d(double x, double y, double slope)
{
    (void)y;
    (void)slope;
    return x > 0 ? 1 : 0;
}
static double leaky_relu_d(double x, double y, double slope)
{
    (void)y;
    return x > 0 ? 1 : slope;
}
static double sigmoid_d(double x, double y, double slope)
{
    (void)x;
    (void)slope;
    return y * (1 - y);
}
static double tanh_d(double x, double y, double slope)
{
    (void)x;
    (void)slope;
    return 1 - y * y;
}
/* Phi(x) + x phi(x), phi the standard normal density. */
static double gelu_d(double x, double y, double slope)
{
    (void)y;
    (void)slope;
    return 0.5 * (1 + erf(x / sqrt(2.0))) + x * exp(-0.5 * x * x) / SQRT_2PI;
}

static double slope_of(const kiln_ref_io *io)
{
    return io->params != NULL ? (double)((const kiln_leaky_relu_params *)io->params)->slope : 0;
}

/* y (any shape, n) = f(x). */
static void unary_forward(const kiln_ref_io *io, double *y, unary_fn f)
{
    int64_t n = kiln_shape_count(&io->out_shape);
    for (int64_t i = 0; i < n; i++)
        y[i] = f(io->in[0][i], slope_of(io));
}

/* gx (n) = g * f'(x). */
static void unary_backward(const kiln_ref_io *io, const double *y, const double *g,
                           double *const *gin, unary_grad_fn d)
{
    int64_t n = kiln_shape_count(&io->out_shape);
    for (int64_t i = 0; i < n; i++)
        gin[0][i] = g[i] * d(io->in[0][i], y[i], slope_of(io));
}

#define UNARY_REF(name)                                                                            \
    static void name##_fwd(const kiln_ref_io *io, double *y)                                       \
    {                                                                                              \
        unary_forward(io, y, name##_f);                                                            \
    }                                                                                              \
    static void name##_bwd(const kiln_ref_io *io, const double *y, const double *g,                \
                           double *const *gin)                                                     \
    {                                                                                              \
        unary_backward(io, y, g, gin, name##_d);                                                   \
    }

UNARY_REF(relu)
UNARY_REF(leaky_relu)
UNARY_REF(sigmoid)
UNARY_REF(tanh)
UNARY_REF(gelu)

static const kiln_leaky_relu_params SLOPE_SMALL = {0.01f};
static const kiln_leaky_relu_params SLOPE_BIG = {0.2f};
static const kiln_leaky_relu_params SLOPE_NEGATIVE = {-0.5f};

/* N(0, 3^2): reaches the saturated tails of sigmoid, tanh and gelu. */
#define G_WIDE                                                                                     \
    {                                                                                              \
        KILN_GEN_NORMAL, 0, 3, 0                                                                   \
    }

/*
 * One case; the generator goes through `...` because its braces would split a macro
 * argument. Forward tolerances: relu and leaky_relu are exact up to float rounding of the
 * product; sigmoid, tanh and gelu use exp/tanh/erfc (a few ulp in OpenCL), hence 1e-6 + 1e-5
 * relative. Backward: a few float roundings of O(1) factors, 1e-5.
 */
#define ACT(op_name, name, prm, shape, ...)                                                        \
    {                                                                                              \
        .op = op_name, .params = prm, .n_inputs = 1, .inputs = {shape}, .gen = {__VA_ARGS__},      \
        .forward = name##_fwd, .backward = name##_bwd, .atol = 1e-6, .rtol = 1e-5,                 \
        .grad_atol = 1e-5, .grad_rtol = 1e-5, .seed = __LINE__                                     \
    }

/* Size 1, odd sizes, a 4-D shape that is no multiple of 64 or 256, and 100003 elements. */
#define ACT_CASES(op_name, name, prm, ...)                                                         \
    ACT(op_name, name, prm, S1(1), __VA_ARGS__), ACT(op_name, name, prm, S2(3, 7), __VA_ARGS__),   \
        ACT(op_name, name, prm, S4(2, 3, 17, 19), __VA_ARGS__),                                    \
        ACT(op_name, name, prm, S1(100003), __VA_ARGS__)

/* Forward only, on N(0, 1) with +inf, -inf and NaN planted (see the file comment). */
#define ACT_SPECIAL(op_name, name, prm)                                                            \
    {                                                                                              \
        .op = op_name, .params = prm, .n_inputs = 1, .inputs = {S1(77)}, .gen = {G_SPECIAL},       \
        .forward = name##_fwd, .atol = 1e-6, .rtol = 1e-5, .seed = __LINE__,                       \
        .label = "(77,) +-inf/NaN"                                                                 \
    }

static const kiln_check_case CASES[] = {
    /* relu and leaky_relu: inputs at least 0.05 away from the kink at 0. */
    ACT_CASES("relu", relu, NULL, G_AWAY(0.05, 3)),
    ACT_CASES("leaky_relu", leaky_relu, &SLOPE_SMALL, G_AWAY(0.05, 3)),
    ACT("leaky_relu", leaky_relu, &SLOPE_BIG, S3(5, 1, 33), G_AWAY(0.05, 3)),
    ACT("leaky_relu", leaky_relu, &SLOPE_NEGATIVE, S2(9, 11), G_AWAY(0.05, 3)),
    ACT_CASES("sigmoid", sigmoid, NULL, G_WIDE),
    ACT_CASES("tanh", tanh, NULL, G_WIDE),
    ACT_CASES("gelu", gelu, NULL, G_WIDE),
    /* Deep saturation, where a naive sigmoid overflows exp and 1 + erf cancels: the results
     * and gradients must stay finite and match to the absolute tolerance. */
    ACT("sigmoid", sigmoid, NULL, S2(7, 129), G_UNIFORM(-100, 100)),
    ACT("tanh", tanh, NULL, S2(7, 129), G_UNIFORM(-100, 100)),
    ACT("gelu", gelu, NULL, S2(7, 129), G_UNIFORM(-100, 100)),
    ACT_SPECIAL("relu", relu, NULL),
    ACT_SPECIAL("leaky_relu", leaky_relu, &SLOPE_SMALL),
    ACT_SPECIAL("sigmoid", sigmoid, NULL),
    ACT_SPECIAL("tanh", tanh, NULL),
    ACT_SPECIAL("gelu", gelu, NULL),
};

const kiln_check_suite kiln_check_suite_activation = {
    .name = "activation",
    .cases = CASES,
    .n_cases = sizeof CASES / sizeof CASES[0],
};
