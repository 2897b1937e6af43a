/*
 * References and check cases for the elementwise family: add, sub, mul, div with NumPy
 * broadcasting (numpy.org, "Broadcasting"), scale, and bias_add along an axis. Gradients of
 * broadcast inputs sum over the repeated axes.
 */
#include <string.h>

#include "ref/ref.h"

typedef double (*binary_fn)(double a, double b);

static double f_add(double a, double b)
{
    return a + b;
}
static double f_sub(double a, double b)
{
    return a - b;
}
static double f_mul(double a, double b)
{
    return a * b;
}
static double f_div(double a, double b)
{
    return a / b;
}

/* y (out_shape) = f(a[bcast], b[bcast]). */
static void binary_forward(const kiln_ref_io *io, double *y, binary_fn f)
{
    int64_t n = kiln_shape_count(&io->out_shape);
    for (int64_t o = 0; o < n; o++)
        y[o] = f(io->in[0][ref_bcast_index(&io->out_shape, &io->in_shapes[0], o)],
                 io->in[1][ref_bcast_index(&io->out_shape, &io->in_shapes[1], o)]);
}

static void add_fwd(const kiln_ref_io *io, double *y)
{
    binary_forward(io, y, f_add);
}
static void sub_fwd(const kiln_ref_io *io, double *y)
{
    binary_forward(io, y, f_sub);
}
static void mul_fwd(const kiln_ref_io *io, double *y)
{
    binary_forward(io, y, f_mul);
}
static void div_fwd(const kiln_ref_io *io, double *y)
{
    binary_forward(io, y, f_div);
}

/* d(a op b)/da and d(a op b)/db at one element. */
static void partials(int op, double a, double b, double *da, double *db)
{
    switch (op) {
    case 0:
        *da = 1, *db = 1;
        break;
    case 1:
        *da = 1, *db = -1;
        break;
    case 2:
        *da = b, *db = a;
        break;
    default:
        *da = 1 / b, *db = -a / (b * b);
        break;
    }
}

/* ga[bcast(o)] += g[o] * d/da; likewise b. Sums over broadcast axes fall out of the +=. */
static void binary_backward(const kiln_ref_io *io, const double *g, double *const *gin, int op)
{
    int64_t n = kiln_shape_count(&io->out_shape);
    for (int i = 0; i < 2; i++) {
        if (gin[i] != NULL)
            memset(gin[i], 0, (size_t)kiln_shape_count(&io->in_shapes[i]) * sizeof(double));
    }
    for (int64_t o = 0; o < n; o++) {
        int64_t ia = ref_bcast_index(&io->out_shape, &io->in_shapes[0], o);
        int64_t ib = ref_bcast_index(&io->out_shape, &io->in_shapes[1], o);
        double da, db;
        partials(op, io->in[0][ia], io->in[1][ib], &da, &db);
        if (gin[0] != NULL)
            gin[0][ia] += g[o] * da;
        if (gin[1] != NULL)
            gin[1][ib] += g[o] * db;
    }
}

static void add_bwd(const kiln_ref_io *io, const double *y, const double *g, double *const *gin)
{
    (void)y;
    binary_backward(io, g, gin, 0);
}
static void sub_bwd(const kiln_ref_io *io, const double *y, const double *g, double *const *gin)
{
    (void)y;
    binary_backward(io, g, gin, 1);
}
static void mul_bwd(const kiln_ref_io *io, const double *y, const double *g, double *const *gin)
{
    (void)y;
    binary_backward(io, g, gin, 2);
}
static void div_bwd(const kiln_ref_io *io, const double *y, const double *g, double *const *gin)
{
    (void)y;
    binary_backward(io, g, gin, 3);
}

/* y = alpha x. */
static void scale_fwd(const kiln_ref_io *io, double *y)
{
    const kiln_scale_params *p = io->params;
    int64_t n = kiln_shape_count(&io->out_shape);
    for (int64_t i = 0; i < n; i++)
        y[i] = p->alpha * io->in[0][i];
}

static void scale_bwd(const kiln_ref_io *io, const double *y, const double *g, double *const *gin)
{
    (void)y;
    const kiln_scale_params *p = io->params;
    int64_t n = kiln_shape_count(&io->out_shape);
    for (int64_t i = 0; i < n; i++)
        gin[0][i] = p->alpha * g[i];
}

/* y[..., c, ...] = x[..., c, ...] + b[c], c the index along `axis`. */
static int64_t bias_channel(const kiln_ref_io *io, int64_t i)
{
    const kiln_axis_params *p = io->params;
    const kiln_shape *x = &io->in_shapes[0];
    int axis = p->axis < 0 ? p->axis + x->ndim : p->axis;
    int64_t inner = 1;
    for (int d = axis + 1; d < x->ndim; d++)
        inner *= x->dim[d];
    return (i / inner) % x->dim[axis];
}

static void bias_fwd(const kiln_ref_io *io, double *y)
{
    int64_t n = kiln_shape_count(&io->out_shape);
    for (int64_t i = 0; i < n; i++)
        y[i] = io->in[0][i] + io->in[1][bias_channel(io, i)];
}

static void bias_bwd(const kiln_ref_io *io, const double *y, const double *g, double *const *gin)
{
    (void)y;
    int64_t n = kiln_shape_count(&io->out_shape);
    if (gin[1] != NULL)
        memset(gin[1], 0, (size_t)io->in_shapes[1].dim[0] * sizeof(double));
    for (int64_t i = 0; i < n; i++) {
        if (gin[0] != NULL)
            gin[0][i] = g[i];
        if (gin[1] != NULL)
            gin[1][bias_channel(io, i)] += g[i];
    }
}

static const kiln_scale_params SCALE = {-1.75f};
static const kiln_axis_params AXIS1 = {1};
static const kiln_axis_params AXIS_LAST = {-1};

#define BIN_TOL(op_name, f, b, s0, s1, grad_tol, ...)                                              \
    {                                                                                              \
        .op = op_name, .n_inputs = 2, .inputs = {s0, s1}, .gen = {G_NORMAL, __VA_ARGS__},          \
        .forward = f, .backward = b, .atol = 1e-6, .rtol = 1e-6, .grad_atol = grad_tol,            \
        .grad_rtol = 1e-5, .seed = __LINE__                                                        \
    }

/* Shapes: equal, size 1, odd, scalar-like, broadcast on either side and in the middle, and
 * sizes past a work-group (1000003 elements is not a multiple of any work-group size). */
#define BINARY_CASES(op_name, f, b, ...)                                                           \
    BIN_TOL(op_name, f, b, S1(1), S1(1), 1e-5, __VA_ARGS__),                                       \
        BIN_TOL(op_name, f, b, S2(3, 7), S2(3, 7), 1e-5, __VA_ARGS__),                             \
        BIN_TOL(op_name, f, b, S3(2, 3, 5), S1(5), 1e-5, __VA_ARGS__),                             \
        BIN_TOL(op_name, f, b, S1(5), S3(2, 3, 5), 1e-5, __VA_ARGS__),                             \
        BIN_TOL(op_name, f, b, S4(2, 3, 4, 5), S4(1, 3, 1, 1), 1e-5, __VA_ARGS__),                 \
        BIN_TOL(op_name, f, b, S3(4, 1, 6), S3(1, 5, 1), 1e-5, __VA_ARGS__),                       \
        BIN_TOL(op_name, f, b, S2(1, 1), S3(3, 1, 9), 1e-5,                                        \
                __VA_ARGS__), /* The (1,) gradient sums a million terms of either sign that cancel \
                               * to O(1): float rounding of the O(100) partial sums bounds the                                                    \
                               * error, hence the looser atol. */                                  \
        BIN_TOL(op_name, f, b, S1(1000003), S1(1), 1e-3, __VA_ARGS__)

/* Unary scale and bias_add cases; shapes come last so braced initialisers pass through. */
#define SCALE_CASE(...)                                                                        \
    {.op = "scale", .params = &SCALE, .n_inputs = 1, .inputs = {__VA_ARGS__},                \
     .gen = {G_NORMAL}, .forward = scale_fwd, .backward = scale_bwd, .atol = 1e-6,           \
     .rtol = 1e-6, .grad_atol = 1e-5, .grad_rtol = 1e-5, .seed = __LINE__}
#define BIAS_CASE(prm, grad_tol, ...)                                                          \
    {.op = "bias_add", .params = &prm, .n_inputs = 2, .inputs = {__VA_ARGS__},               \
     .gen = {G_NORMAL, G_NORMAL}, .forward = bias_fwd, .backward = bias_bwd, .atol = 1e-6,   \
     .rtol = 1e-6, .grad_atol = grad_tol, .grad_rtol = 1e-5, .seed = __LINE__}

static const kiln_check_case CASES[] = {
    BINARY_CASES("add", add_fwd, add_bwd, G_NORMAL),
    BINARY_CASES("sub", sub_fwd, sub_bwd, G_NORMAL),
    BINARY_CASES("mul", mul_fwd, mul_bwd, G_NORMAL),
    /* Divisors kept away from zero, where the quotient and its gradient blow up. */
    BINARY_CASES("div", div_fwd, div_bwd, G_AWAY(0.5, 2.0)),
    /* Infinities and NaN propagate as IEEE arithmetic says (forward only). */
    {.op = "add",
     .n_inputs = 2,
     .inputs = {S1(77), S1(77)},
     .gen = {G_SPECIAL, G_NORMAL},
     .forward = add_fwd,
     .atol = 1e-6,
     .rtol = 1e-6,
     .seed = 1,
     .label = "(77,) +-inf/NaN"},
    {.op = "mul",
     .n_inputs = 2,
     .inputs = {S1(77), S1(77)},
     .gen = {G_SPECIAL, G_AWAY(1, 2)},
     .forward = mul_fwd,
     .atol = 1e-6,
     .rtol = 1e-6,
     .seed = 2,
     .label = "(77,) +-inf/NaN"},
    SCALE_CASE(S3(3, 1, 17)),
    SCALE_CASE(S1(1)),
    BIAS_CASE(AXIS1, 1e-5, S4(3, 5, 7, 9), S1(5)),
    BIAS_CASE(AXIS1, 1e-5, S2(1, 1), S1(1)),
    /* 390 terms per bias gradient: float sums of that length need the looser atol. */
    BIAS_CASE(AXIS_LAST, 1e-4, S3(130, 3, 33), S1(33)),
};

const kiln_check_suite kiln_check_suite_elementwise = {
    .name = "elementwise",
    .cases = CASES,
    .n_cases = sizeof CASES / sizeof CASES[0],
};
