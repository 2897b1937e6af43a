/*
 * References and check cases for the loss family, each a mean over its terms returned as a
 * scalar (ndim 0), following the PyTorch documentation of:
 *   softmax_cross_entropy  CrossEntropyLoss(reduction='mean', label_smoothing=eps): logits
 *                          (N, C), class labels (N,); the target distribution is
 *                          q_c = (1 - eps) [c == label] + eps / C; the mean is over N.
 *   bce_with_logits        BCEWithLogitsLoss(): x, t of any equal shape.
 *   mse, l1                MSELoss(), L1Loss(): x, t of any equal shape.
 * A custom check covers labels outside [0, C), which make the device loss (and that row's
 * gradient) NaN where PyTorch raises an error.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref/ref.h"

/* ---- softmax_cross_entropy ---- */

/* log sum_c exp(x_c) of one row of C logits, shifted by the maximum. */
static double row_logsumexp(const double *x, int64_t classes)
{
    double m = x[0];
    for (int64_t c = 1; c < classes; c++)
        m = fmax(m, x[c]);
    double s = 0;
    for (int64_t c = 0; c < classes; c++)
        s += exp(x[c] - m);
    return m + log(s);
}

static double target_q(int64_t c, double label, int64_t classes, double eps)
{
    return ((double)c == label ? 1.0 - eps : 0.0) + eps / (double)classes;
}

static bool label_ok(double label, int64_t classes)
{
    return label >= 0 && label < (double)classes;
}

/* y () = (1/N) sum_n sum_c -q_c log softmax(x_n)_c. x: (N, C); labels: (N,). */
static void ce_fwd(const kiln_ref_io *io, double *y)
{
    const kiln_cross_entropy_params *p = io->params;
    int64_t rows = io->in_shapes[0].dim[0], classes = io->in_shapes[0].dim[1];
    double total = 0;
    for (int64_t n = 0; n < rows; n++) {
        const double *x = io->in[0] + n * classes;
        double label = io->in[1][n];
        if (!label_ok(label, classes)) {
            total = NAN;
            continue;
        }
        double lse = row_logsumexp(x, classes);
        for (int64_t c = 0; c < classes; c++)
            total += target_q(c, label, classes, p->label_smoothing) * (lse - x[c]);
    }
    y[0] = total / (double)rows;
}

/* gx (N, C) = g / N * (softmax(x_n)_c - q_c); NaN in a row whose label is out of range. */
static void ce_bwd(const kiln_ref_io *io, const double *y, const double *g, double *const *gin)
{
    (void)y;
    const kiln_cross_entropy_params *p = io->params;
    int64_t rows = io->in_shapes[0].dim[0], classes = io->in_shapes[0].dim[1];
    for (int64_t n = 0; n < rows; n++) {
        const double *x = io->in[0] + n * classes;
        double label = io->in[1][n];
        double lse = row_logsumexp(x, classes);
        for (int64_t c = 0; c < classes; c++) {
            double d = label_ok(label, classes)
                           ? exp(x[c] - lse) - target_q(c, label, classes, p->label_smoothing)
                           : NAN;
            gin[0][n * classes + c] = g[0] / (double)rows * d;
        }
    }
}

/* ---- pointwise losses: x (prediction or logit) and t (target) of equal shape ---- */

typedef double (*pointwise_fn)(double x, double t);

/* max(x, 0) - x t + log(1 + exp(-|x|)): the same value as -[t log s + (1 - t) log(1 - s)],
 * s = sigmoid(x), without overflow. */
static double bce_term(double x, double t)
{
    return fmax(x, 0) - x * t + log1p(exp(-fabs(x)));
}
static double bce_grad(double x, double t)
{
    return 1 / (1 + exp(-x)) - t;
}
static double mse_term(double x, double t)
{
    return (x - t) * (x - t);
}
static double mse_grad(double x, double t)
{
    return 2 * (x - t);
}
static double l1_term(double x, double t)
{
    return fabs(x - t);
}
/* Cases keep x away from t, where |x - t| has its kink. */
static double l1_grad(double x, double t)
{
    return x > t ? 1.0 : -1.0;
}

/* y () = mean over every element of f(x, t). */
static void pointwise_fwd(const kiln_ref_io *io, double *y, pointwise_fn f)
{
    int64_t n = kiln_shape_count(&io->in_shapes[0]);
    double total = 0;
    for (int64_t i = 0; i < n; i++)
        total += f(io->in[0][i], io->in[1][i]);
    y[0] = total / (double)n;
}

/* gx = g / n * df/dx. */
static void pointwise_bwd(const kiln_ref_io *io, const double *g, double *const *gin,
                          pointwise_fn df)
{
    int64_t n = kiln_shape_count(&io->in_shapes[0]);
    for (int64_t i = 0; i < n; i++)
        gin[0][i] = g[0] / (double)n * df(io->in[0][i], io->in[1][i]);
}

#define POINTWISE_REF(name, term, grad)                                                            \
    static void name##_fwd(const kiln_ref_io *io, double *y)                                       \
    {                                                                                              \
        pointwise_fwd(io, y, term);                                                                \
    }                                                                                              \
    static void name##_bwd(const kiln_ref_io *io, const double *y, const double *g,                \
                           double *const *gin)                                                     \
    {                                                                                              \
        (void)y;                                                                                   \
        pointwise_bwd(io, g, gin, grad);                                                           \
    }

POINTWISE_REF(bce, bce_term, bce_grad)
POINTWISE_REF(mse, mse_term, mse_grad)
POINTWISE_REF(l1, l1_term, l1_grad)

/* ---- cases ---- */

static const kiln_cross_entropy_params PLAIN = {0.0f};
static const kiln_cross_entropy_params SMOOTH = {0.1f};

/* Forward: a mean of O(1) non-negative terms, compensated and tree-summed: 1e-6. Backward:
 * each gradient is g/N (p - q) added to an O(1) prior, so float rounding of the sum is
 * ~1e-7; 1e-6 + 1e-5 relative leaves room. */
#define CE(prm, rows, classes, scale, text)                                                        \
    {                                                                                              \
        .op = "softmax_cross_entropy", .params = &prm, .n_inputs = 2,                              \
        .inputs = {S2(rows, classes), S1(rows)},                                                   \
        .gen = {{KILN_GEN_NORMAL, 0, scale, 0}, G_LABELS(classes)}, .forward = ce_fwd,             \
        .backward = ce_bwd, .atol = 1e-6, .rtol = 1e-6, .grad_atol = 1e-6, .grad_rtol = 1e-5,      \
        .seed = __LINE__, .label = text                                                            \
    }

/* x and t of one shape; generators through __VA_ARGS__ (they are braced). */
#define PW(op_name, f, b, shape, ...)                                                              \
    {                                                                                              \
        .op = op_name, .n_inputs = 2, .inputs = {shape, shape}, .gen = {__VA_ARGS__},              \
        .forward = f, .backward = b, .atol = 1e-6, .rtol = 1e-6, .grad_atol = 1e-6,                \
        .grad_rtol = 1e-5, .seed = __LINE__                                                        \
    }

/* Shapes for the pointwise losses: one element, odd 1-D, odd 4-D, and a 1-D size past
 * several work-groups that is a multiple of neither 64 nor 256. */
#define PW_CASES(op_name, f, b, ...)                                                               \
    PW(op_name, f, b, S1(1), __VA_ARGS__), PW(op_name, f, b, S1(77), __VA_ARGS__),                 \
        PW(op_name, f, b, S4(2, 3, 5, 7), __VA_ARGS__),                                            \
        PW(op_name, f, b, S4(1, 1, 1, 1), __VA_ARGS__), PW(op_name, f, b, S1(100003), __VA_ARGS__)

static const kiln_check_case CASES[] = {
    CE(PLAIN, 1, 1, 1.0, NULL),
    CE(PLAIN, 1, 7, 1.0, NULL),
    CE(PLAIN, 5, 1, 1.0, NULL),
    CE(PLAIN, 3, 13, 2.0, NULL),
    CE(PLAIN, 128, 10, 3.0, NULL),
    CE(SMOOTH, 128, 10, 3.0, "(128, 10) (128,) eps 0.1"),
    CE(SMOOTH, 1, 1, 1.0, "(1, 1) (1,) eps 0.1"),
    CE(SMOOTH, 37, 101, 2.0, "(37, 101) (37,) eps 0.1"),
    /* A larger case: 1000 rows of 257 classes, not a multiple of any work-group size. */
    CE(PLAIN, 1000, 257, 4.0, NULL),
    /* Logits of spread 40: exp(x) alone would overflow float past 88.7; shifted, it cannot. */
    CE(SMOOTH, 9, 6, 40.0, "(9, 6) x ~ N(0, 40^2) eps 0.1"),
    PW_CASES("bce_with_logits", bce_fwd, bce_bwd, G_NORMAL, G_UNIFORM(0, 1)),
    /* Hard 0/1 targets. */
    PW("bce_with_logits", bce_fwd, bce_bwd, S1(255), {KILN_GEN_NORMAL, 0, 3, 0}, G_BINARY),
    PW("bce_with_logits", bce_fwd, bce_bwd, S4(3, 2, 7, 5), {KILN_GEN_NORMAL, 0, 3, 0}, G_BINARY),
    PW("bce_with_logits", bce_fwd, bce_bwd, S1(65537), {KILN_GEN_NORMAL, 0, 3, 0}, G_BINARY),
    /* |x| in [30, 120): exp(|x|) overflows float past 88.7, and log(sigmoid(x)) underflows
     * to log(0); the stable form stays exact. Terms up to 120 still average to 1e-6. */
    PW("bce_with_logits", bce_fwd, bce_bwd, S1(257), G_AWAY(30, 120), G_BINARY),
    PW("bce_with_logits", bce_fwd, bce_bwd, S4(2, 1, 3, 9), G_AWAY(30, 120), G_UNIFORM(0, 1)),
    PW_CASES("mse", mse_fwd, mse_bwd, G_NORMAL, G_NORMAL),
    /* x has |x| >= 0.1 with either sign and |t| < 0.05, so |x - t| > 0.05: no kink within
     * reach of the finite differences, and both signs of the gradient occur. */
    PW_CASES("l1", l1_fwd, l1_bwd, G_AWAY(0.1, 2), G_UNIFORM(-0.05, 0.05)),
};

/* ---- custom check: labels outside [0, C) ---- */

/* Runs `op` forward, then backward with g = 1 into a zeroed gradient of input 0, on device
 * tensors made from `in`; `out` gets the scalar loss and `grad` the gradient. False after
 * reporting a failed row. */
static bool run_forward_backward(kiln_check_run *run, const char *op_name, const void *params,
                                 const kiln_shape *shapes, const double *const *in, float *out,
                                 float *grad, const char *label)
{
    kiln_context *ctx = kiln_device_get_context(run->dev);
    const kiln_op *op = kiln_op_find(op_name);
    kiln_shape out_shape, saved_shapes[KILN_OP_MAX_SAVED];
    kiln_tensor *inputs[2] = {NULL, NULL}, *saved[KILN_OP_MAX_SAVED] = {NULL};
    kiln_tensor *output = NULL, *gout = NULL, *grads[2] = {NULL, NULL};
    kiln_buffer *workspace = NULL;
    int rows_before = run->n_rows; /* kiln_check_tensor reports its own failures */
    double one = 1.0;
    double *zeros = calloc((size_t)kiln_shape_count(&shapes[0]), sizeof(double));
    bool ok = op != NULL && zeros != NULL &&
              kiln_op_infer(ctx, op, params, shapes, 2, &out_shape, saved_shapes) == KILN_OK;
    for (int i = 0; ok && i < 2; i++) {
        inputs[i] =
            kiln_check_tensor(run, op_name, &shapes[i], kiln_op_input_dtype(op, i), in[i], "input");
        ok = inputs[i] != NULL;
    }
    for (int s = 0; ok && s < kiln_op_n_saved(op); s++) {
        saved[s] = kiln_check_tensor(run, op_name, &saved_shapes[s], KILN_F32, NULL, "saved");
        ok = saved[s] != NULL;
    }
    ok = ok && (output = kiln_check_tensor(run, op_name, &out_shape, KILN_F32, NULL, "out"));
    ok = ok && (gout = kiln_check_tensor(run, op_name, &out_shape, KILN_F32, &one, "gout"));
    ok = ok && (grads[0] = kiln_check_tensor(run, op_name, &shapes[0], KILN_F32, zeros, "grad"));
    size_t ws = ok ? kiln_op_workspace_bytes(op, params, shapes, 2) : 0;
    ok = ok && (ws == 0 || kiln_buffer_create(run->dev, ws, "workspace", &workspace) == KILN_OK);
    kiln_op_args args = {.params = params,
                         .inputs = inputs,
                         .n_inputs = 2,
                         .output = output,
                         .saved = saved,
                         .workspace = workspace,
                         .grad_output = gout,
                         .grad_inputs = grads};
    ok = ok && kiln_op_forward(run->dev, op, &args) == KILN_OK &&
         kiln_op_backward(run->dev, op, &args) == KILN_OK &&
         kiln_tensor_download(output, out, 1) == KILN_OK &&
         kiln_tensor_download(grads[0], grad, kiln_shape_count(&shapes[0])) == KILN_OK;
    if (!ok && run->n_rows == rows_before)
        kiln_check_fail(run, op_name, label, "run", kiln_context_last_error(ctx));
    for (int i = 0; i < 2; i++) {
        kiln_tensor_destroy(inputs[i]);
        kiln_tensor_destroy(grads[i]);
    }
    for (int s = 0; s < KILN_OP_MAX_SAVED; s++)
        kiln_tensor_destroy(saved[s]);
    kiln_tensor_destroy(output);
    kiln_tensor_destroy(gout);
    kiln_buffer_destroy(workspace);
    free(zeros);
    return ok;
}

/* Labels 5 (== C) and -1 in rows 1 and 3 of four: the loss is NaN, the gradient rows 1 and 3
 * are NaN, and rows 0 and 2 still get their ordinary gradient. */
static void check_bad_labels(kiln_check_run *run)
{
    const char *op = "softmax_cross_entropy";
    if (run->only_op != NULL && strcmp(run->only_op, op) != 0)
        return;
    const char *label = "(4, 5) labels 5, -1";
    kiln_shape shapes[2] = {S2(4, 5), S1(4)};
    double logits[20], labels[4] = {2, 5, 0, -1};
    kiln_check_gen normal = G_NORMAL;
    kiln_check_generate(&normal, 99, logits, 20);
    const double *in[2] = {logits, labels};
    kiln_ref_io io = {.params = &SMOOTH, .n_inputs = 2, .in_shapes = shapes, .in = in};
    double ref_loss, ref_grad[20], g = 1.0;
    double *gin[2] = {ref_grad, NULL};
    ce_fwd(&io, &ref_loss);
    ce_bwd(&io, &ref_loss, &g, gin);
    float loss, grad[20];
    double t0 = kiln_check_now_ms();
    if (!run_forward_backward(run, op, &SMOOTH, shapes, in, &loss, grad, label))
        return;
    double ms = kiln_check_now_ms() - t0;
    kiln_check_compare(run, op, label, "NaN loss", &loss, &ref_loss, 1, 0, 0, ms);
    kiln_check_compare(run, op, label, "NaN rows", grad, ref_grad, 20, 1e-6, 1e-5, ms);
}

const kiln_check_suite kiln_check_suite_loss = {
    .name = "loss",
    .cases = CASES,
    .n_cases = sizeof CASES / sizeof CASES[0],
    .custom = check_bad_labels,
};
