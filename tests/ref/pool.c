/*
 * References and check cases for the pooling family, following PyTorch's nn.MaxPool2d/3d and
 * nn.AvgPool2d/3d with padding 0, dilation 1 and ceil_mode False (pytorch.org/docs, "MaxPool2d":
 * out = floor((in - kernel) / stride) + 1; the max-pool gradient goes to the one index the
 * forward picked; AvgPool divides by the window size), and global average pooling,
 * nn.AdaptiveAvgPool2d/3d(1) flattened to (N, C).
 *
 * Shapes: x (N, C, [D,] H, W), y (N, C, [OD,] OH, OW). A 2-D pool is computed as a 3-D one
 * with D = OD = 1 and a window depth of 1.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref/ref.h"

/* The spatial sizes of x and y, window and stride as (D, H, W), and the plane count N * C. */
typedef struct pool_dims {
    int64_t in[3], out[3], size[3], stride[3], planes;
} pool_dims;

static pool_dims dims_of(const kiln_ref_io *io)
{
    const kiln_pool_params *p = io->params;
    const kiln_shape *x = &io->in_shapes[0];
    pool_dims d;
    for (int j = 0; j < 3; j++)
        d.in[j] = d.out[j] = d.size[j] = d.stride[j] = 1;
    for (int i = 0; i < p->n_spatial; i++) {
        int j = 3 - p->n_spatial + i;
        d.in[j] = x->dim[2 + i];
        d.out[j] = io->out_shape.dim[2 + i];
        d.size[j] = p->size[i];
        d.stride[j] = p->stride[i] > 0 ? p->stride[i] : p->size[i];
    }
    d.planes = x->dim[0] * x->dim[1];
    return d;
}

/* Index into x (P, D, H, W) of window element (kd, kh, kw) of output (p, od, oh, ow). */
static int64_t x_index(const pool_dims *d, int64_t p, const int64_t o[3], const int64_t k[3])
{
    int64_t idx = p;
    for (int j = 0; j < 3; j++)
        idx = idx * d->in[j] + o[j] * d->stride[j] + k[j];
    return idx;
}

/* Visits output element `yi` = (p, od, oh, ow): calls back for every window element in
 * row-major window order with its x index. */
typedef void (*window_fn)(int64_t xi, void *state);

static void for_window(const pool_dims *d, int64_t yi, window_fn fn, void *state)
{
    int64_t o[3], rest = yi;
    for (int j = 2; j >= 0; j--) {
        o[j] = rest % d->out[j];
        rest /= d->out[j];
    }
    int64_t k[3];
    for (k[0] = 0; k[0] < d->size[0]; k[0]++)
        for (k[1] = 0; k[1] < d->size[1]; k[1]++)
            for (k[2] = 0; k[2] < d->size[2]; k[2]++)
                fn(x_index(d, rest, o, k), state);
}

/* The first maximum of a window; a NaN wins (PyTorch: `val > max || isnan(val)`). */
typedef struct max_state {
    const double *x;
    double best;
    int64_t arg; /* x index; -1 before the first element */
} max_state;

static void max_visit(int64_t xi, void *state)
{
    max_state *s = state;
    double v = s->x[xi];
    if (s->arg < 0 || v > s->best || isnan(v)) {
        s->best = v;
        s->arg = xi;
    }
}

static max_state window_max(const kiln_ref_io *io, const pool_dims *d, int64_t yi)
{
    max_state s = {io->in[0], 0, -1};
    for_window(d, yi, max_visit, &s);
    return s;
}

typedef struct sum_state {
    const double *x;
    double sum;
} sum_state;

static void sum_visit(int64_t xi, void *state)
{
    sum_state *s = state;
    s->sum += s->x[xi];
}

/* y (N, C, OD, OH, OW) = max over each window of x. */
static void maxpool_fwd(const kiln_ref_io *io, double *y)
{
    pool_dims d = dims_of(io);
    int64_t n = kiln_shape_count(&io->out_shape);
    for (int64_t yi = 0; yi < n; yi++)
        y[yi] = window_max(io, &d, yi).best;
}

/* gx (N, C, D, H, W): each window's gradient added at its first maximum, 0 elsewhere. */
static void maxpool_bwd(const kiln_ref_io *io, const double *y, const double *g, double *const *gin)
{
    (void)y;
    pool_dims d = dims_of(io);
    memset(gin[0], 0, (size_t)kiln_shape_count(&io->in_shapes[0]) * sizeof(double));
    int64_t n = kiln_shape_count(&io->out_shape);
    for (int64_t yi = 0; yi < n; yi++)
        gin[0][window_max(io, &d, yi).arg] += g[yi];
}

/* y = sum over each window of x / window size. */
static void avgpool_fwd(const kiln_ref_io *io, double *y)
{
    pool_dims d = dims_of(io);
    double count = (double)(d.size[0] * d.size[1] * d.size[2]);
    int64_t n = kiln_shape_count(&io->out_shape);
    for (int64_t yi = 0; yi < n; yi++) {
        sum_state s = {io->in[0], 0};
        for_window(&d, yi, sum_visit, &s);
        y[yi] = s.sum / count;
    }
}

typedef struct spread_state {
    double *gx;
    double value;
} spread_state;

static void spread_visit(int64_t xi, void *state)
{
    spread_state *s = state;
    s->gx[xi] += s->value;
}

/* gx: every window element receives the window's gradient / window size. */
static void avgpool_bwd(const kiln_ref_io *io, const double *y, const double *g, double *const *gin)
{
    (void)y;
    pool_dims d = dims_of(io);
    double count = (double)(d.size[0] * d.size[1] * d.size[2]);
    memset(gin[0], 0, (size_t)kiln_shape_count(&io->in_shapes[0]) * sizeof(double));
    int64_t n = kiln_shape_count(&io->out_shape);
    for (int64_t yi = 0; yi < n; yi++) {
        spread_state s = {gin[0], g[yi] / count};
        for_window(&d, yi, spread_visit, &s);
    }
}

/* y (N, C) = mean of x (N, C, spatial...) over the spatial axes. */
static void global_fwd(const kiln_ref_io *io, double *y)
{
    int64_t planes = kiln_shape_count(&io->out_shape);
    int64_t spatial = kiln_shape_count(&io->in_shapes[0]) / planes;
    for (int64_t p = 0; p < planes; p++) {
        double sum = 0;
        for (int64_t s = 0; s < spatial; s++)
            sum += io->in[0][p * spatial + s];
        y[p] = sum / (double)spatial;
    }
}

/* gx (N, C, spatial...) = g (N, C) / spatial size, broadcast. */
static void global_bwd(const kiln_ref_io *io, const double *y, const double *g, double *const *gin)
{
    (void)y;
    int64_t planes = kiln_shape_count(&io->out_shape);
    int64_t spatial = kiln_shape_count(&io->in_shapes[0]) / planes;
    for (int64_t i = 0; i < planes * spatial; i++)
        gin[0][i] = g[i / spatial] / (double)spatial;
}

static const kiln_pool_params P2_1 = {2, {1, 1}, {0, 0}};
static const kiln_pool_params P2_2 = {2, {2, 2}, {0, 0}};
static const kiln_pool_params P2_3S2 = {2, {3, 3}, {2, 2}};
static const kiln_pool_params P2_3S1 = {2, {3, 3}, {1, 1}};
/* Stride past the window: some inputs lie in no window and get no gradient. */
static const kiln_pool_params P2_2S3 = {2, {2, 2}, {3, 3}};
/* A non-square window with unequal strides. */
static const kiln_pool_params P2_2X3 = {2, {2, 3}, {1, 2}};
static const kiln_pool_params P3_2 = {3, {2, 2, 2}, {0, 0, 0}};
static const kiln_pool_params P3_322 = {3, {3, 2, 2}, {2, 1, 2}};

/* Max-pool inputs are distinct values (no ties), so the argmax, the reference's gradient and
 * its finite differences are unambiguous. Backward sums at most 9 gradients per element.
 * The shape comes last (`...`): a braced shape passed through two macro levels would split
 * at its commas. */
#define POOL(op_name, f, b, prm, generator, ...)                                                   \
    {                                                                                              \
        .op = op_name, .params = prm, .n_inputs = 1, .inputs = {__VA_ARGS__}, .gen = {generator},  \
        .forward = f, .backward = b, .atol = 1e-6, .rtol = 1e-6, .grad_atol = 1e-5,                \
        .grad_rtol = 1e-5, .seed = __LINE__                                                        \
    }
#define MAXPOOL(op_name, prm, ...)                                                                 \
    POOL(op_name, maxpool_fwd, maxpool_bwd, &prm, G_DISTINCT, __VA_ARGS__)
#define AVGPOOL(op_name, prm, ...)                                                                 \
    POOL(op_name, avgpool_fwd, avgpool_bwd, &prm, G_NORMAL, __VA_ARGS__)
#define GLOBAL(...) POOL("global_avgpool", global_fwd, global_bwd, NULL, G_NORMAL, __VA_ARGS__)

/* One list of (parameters, shape) pairs for both max and average pooling. */
#define POOL_CASES(KIND, op2, op3)                                                                 \
    KIND(op2, P2_1, S4(1, 1, 1, 1)), KIND(op2, P2_2, S4(2, 3, 7, 5)),                              \
        KIND(op2, P2_3S2, S4(2, 2, 9, 11)), KIND(op2, P2_3S1, S4(2, 3, 8, 7)),                     \
        KIND(op2, P2_2S3, S4(1, 2, 8, 10)), KIND(op2, P2_2X3, S4(1, 3, 6, 9)),                     \
        KIND(op2, P2_2, S4(8, 16, 33, 31)), KIND(op3, P3_2, S5(1, 2, 5, 6, 7)),                    \
        KIND(op3, P3_322, S5(1, 2, 5, 6, 7)), KIND(op3, P3_2, S5(2, 3, 9, 8, 11))

/* Forward only with +-inf and NaN planted (G_SPECIAL); the shape last, as in POOL. */
#define POOL_SPECIAL(op_name, prm, fwd, tol, seed_value, text, ...)                                \
    {                                                                                              \
        .op = op_name, .params = &prm, .n_inputs = 1, .inputs = {__VA_ARGS__}, .gen = {G_SPECIAL}, \
        .forward = fwd, .atol = tol, .rtol = tol, .seed = seed_value, .label = text                \
    }

static const kiln_check_case CASES[] = {
    POOL_CASES(MAXPOOL, "maxpool2d", "maxpool3d"),
    POOL_CASES(AVGPOOL, "avgpool2d", "avgpool3d"),
    /* Infinities and NaN (forward only): a NaN in a window wins the max; the average is
     * whatever IEEE arithmetic makes of the sum. */
    POOL_SPECIAL("maxpool2d", P2_3S1, maxpool_fwd, 0, 1, "(1, 2, 6, 7) +-inf/NaN", S4(1, 2, 6, 7)),
    /* 2 x 2 windows with stride 2 take their own kernels, which go along an output row 8 or 4
     * windows at a time, the last block overlapping the one before: even sizes as in the CNN
     * (every input in a window; gradients set, not added), rows of 6 and 7 windows (blocks of
     * 4, overlapped), of 8 (one block) and 20 (overlapped blocks of 8), and NaN/inf in blocks
     * of each width and one at a time. POOL_CASES has 2 (one at a time) and 15 windows. */
    MAXPOOL("maxpool2d", P2_2, S4(3, 4, 28, 28)),
    MAXPOOL("maxpool2d", P2_2, S4(2, 3, 10, 13)),
    MAXPOOL("maxpool2d", P2_2, S4(1, 2, 6, 14)),
    MAXPOOL("maxpool2d", P2_2, S4(2, 1, 4, 16)),
    MAXPOOL("maxpool2d", P2_2, S4(2, 2, 5, 41)),
    POOL_SPECIAL("maxpool2d", P2_2, maxpool_fwd, 0, 3, "(1, 2, 6, 7) 2x2 +-inf/NaN",
                 S4(1, 2, 6, 7)),
    POOL_SPECIAL("maxpool2d", P2_2, maxpool_fwd, 0, 4, "(1, 2, 6, 13) 2x2 +-inf/NaN",
                 S4(1, 2, 6, 13)),
    POOL_SPECIAL("maxpool2d", P2_2, maxpool_fwd, 0, 5, "(2, 3, 4, 38) 2x2 +-inf/NaN",
                 S4(2, 3, 4, 38)),
    POOL_SPECIAL("avgpool2d", P2_2, avgpool_fwd, 1e-6, 2, "(1, 2, 6, 7) +-inf/NaN", S4(1, 2, 6, 7)),
    GLOBAL(S4(2, 3, 5, 7)),
    GLOBAL(S5(2, 3, 4, 5, 6)),
    GLOBAL(S4(3, 4, 1, 1)),
    GLOBAL(S3(2, 5, 9)),
    GLOBAL(S4(4, 64, 33, 35)),
};

/*
 * Ties: PyTorch sends a window's gradient to one index; Kiln to the first maximum in
 * row-major window order, and with overlapping windows one input element can be the first
 * maximum of several. Inputs of 0s and 1s tie everywhere. Central differences mean nothing at
 * a tie, so this compares the device's gradient (onto a zero prior) with the reference only.
 */
static void check_ties(kiln_check_run *run)
{
    static const char *const OP = "maxpool2d";
    if (run->only_op != NULL && strcmp(run->only_op, OP) != 0)
        return;
    static const kiln_shape x_shape = S4(2, 3, 7, 8);
    static const char *const LABEL = "(2, 3, 7, 8) 0/1 ties";
    kiln_context *ctx = kiln_device_get_context(run->dev);
    const kiln_op *op = kiln_op_find(OP);
    kiln_shape y_shape, saved_shape[KILN_OP_MAX_SAVED];
    if (op == NULL ||
        kiln_op_infer(ctx, op, &P2_3S1, &x_shape, 1, &y_shape, saved_shape) != KILN_OK) {
        kiln_check_fail(run, OP, LABEL, "ties", "setup: no op or bad shapes");
        return;
    }
    size_t nx = (size_t)kiln_shape_count(&x_shape), ny = (size_t)kiln_shape_count(&y_shape);
    double *x = malloc(nx * sizeof *x), *zero = calloc(nx, sizeof *zero);
    double *g = malloc(ny * sizeof *g), *want = malloc(nx * sizeof *want);
    float *got = malloc(nx * sizeof *got);
    kiln_tensor *tx = NULL, *ty = NULL, *ts = NULL, *tg = NULL, *tgx = NULL;
    if (x == NULL || zero == NULL || g == NULL || want == NULL || got == NULL) {
        kiln_check_fail(run, OP, LABEL, "ties", "out of memory");
        goto done;
    }
    kiln_check_gen binary = G_BINARY, normal = G_NORMAL;
    kiln_check_generate(&binary, 11, x, nx);
    kiln_check_generate(&normal, 12, g, ny);
    if ((tx = kiln_check_tensor(run, OP, &x_shape, KILN_F32, x, "x")) == NULL ||
        (ty = kiln_check_tensor(run, OP, &y_shape, KILN_F32, NULL, "y")) == NULL ||
        (ts = kiln_check_tensor(run, OP, &saved_shape[0], KILN_F32, NULL, "argmax")) == NULL ||
        (tg = kiln_check_tensor(run, OP, &y_shape, KILN_F32, g, "g")) == NULL ||
        (tgx = kiln_check_tensor(run, OP, &x_shape, KILN_F32, zero, "gx")) == NULL)
        goto done;
    kiln_tensor *inputs[1] = {tx}, *saved[1] = {ts}, *grads[1] = {tgx};
    kiln_op_args args = {.params = &P2_3S1,
                         .inputs = inputs,
                         .n_inputs = 1,
                         .output = ty,
                         .saved = saved,
                         .grad_output = tg,
                         .grad_inputs = grads};
    double t0 = kiln_check_now_ms();
    kiln_status rc = kiln_op_forward(run->dev, op, &args);
    if (rc == KILN_OK)
        rc = kiln_op_backward(run->dev, op, &args);
    if (rc == KILN_OK)
        rc = kiln_tensor_download(tgx, got, (int64_t)nx);
    if (rc != KILN_OK) {
        kiln_check_fail(run, OP, LABEL, "ties", kiln_context_last_error(ctx));
        goto done;
    }
    const double *in[1] = {x};
    kiln_ref_io io = {
        .params = &P2_3S1, .n_inputs = 1, .in_shapes = &x_shape, .in = in, .out_shape = y_shape};
    double *gin[1] = {want};
    maxpool_bwd(&io, NULL, g, gin);
    kiln_check_compare(run, OP, LABEL, "ties", got, want, nx, 1e-5, 1e-5, kiln_check_now_ms() - t0);
done:
    kiln_tensor_destroy(tx);
    kiln_tensor_destroy(ty);
    kiln_tensor_destroy(ts);
    kiln_tensor_destroy(tg);
    kiln_tensor_destroy(tgx);
    free(x);
    free(zero);
    free(g);
    free(want);
    free(got);
}

const kiln_check_suite kiln_check_suite_pool = {
    .name = "pool",
    .cases = CASES,
    .n_cases = sizeof CASES / sizeof CASES[0],
    .custom = check_ties,
};
