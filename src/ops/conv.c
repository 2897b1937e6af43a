/*
 * Convolution ops conv2d and conv3d (PyTorch Conv2d / Conv3d with groups = 1, symmetric zero
 * padding, stride and dilation per spatial axis): x (N, C, [D,] H, W), w (F, C, [KD,] KH, KW)
 * and an optional bias b (F,) give y (N, F, [OD,] OH, OW).
 *
 * One sample at a time, vol2col (im2col in 2-D) writes x[n] as a column matrix (K, P) into
 * the workspace, K = C KD KH KW and P = OD OH OW, and one GEMM gives y[n] (F, P) = w (F, K)
 * cols (K, P). A 2-D convolution is a 3-D one with depth 1. A 1x1(x1) kernel with stride 1
 * and no padding needs no columns: x[n] (C, P) already is the matrix.
 *
 * Backward, per sample: grad w (F, K) += g[n] (F, P) cols^T (GEMM with beta = 1, which also
 * accumulates across samples); column gradients (K, P) = w^T g[n] in the workspace, then a
 * gather per input element (cl/conv.cl) adds them into grad x. grad b sums g over N and the
 * spatial axes through kiln__reduce_to. The kernels live in cl/conv.cl.
 */
#include <stdio.h>
#include <string.h>

#include "device/gemm.h"
#include "ops/op.h"

/* Everything the launches need, derived once from params and shapes. Arrays are laid out
 * (channels, depth, height, width); a 2-D convolution has depth 1, kernel depth 1, stride 1
 * and no depth padding. */
typedef struct conv_geometry {
    uint32_t size[4];   /* (C, D, H, W) of one input sample */
    uint32_t out[4];    /* (F, OD, OH, OW) of one output sample */
    uint32_t ksize[4];  /* (1, KD, KH, KW) */
    uint32_t stride[4]; /* (1, depth, height, width); likewise pad and dilation */
    uint32_t pad[4];
    uint32_t dilation[4];
    size_t batch;    /* N */
    size_t rows;     /* K = C KD KH KW: rows of the column matrix, columns of w */
    size_t cols;     /* P = OD OH OW: columns of the column matrix */
    size_t in_count; /* C D H W: elements of one input sample */
    bool direct;     /* 1x1(x1) kernel, stride 1, no padding: x[n] is the column matrix */
} conv_geometry;

/* Layout names for messages, by n_spatial. */
static const char *const X_LAYOUT[] = {"", "", "(N, C, H, W)", "(N, C, D, H, W)"};
static const char *const W_LAYOUT[] = {"", "", "(F, C, KH, KW)", "(F, C, KD, KH, KW)"};

/* Checks the parameters against the op (the op's variant is its number of spatial axes). */
static kiln_status check_params(const kiln_op *op, const kiln_conv_params *p, char *why,
                                size_t capacity)
{
    int ns = op->variant;
    if (p->n_spatial != ns) {
        snprintf(why, capacity, "params.n_spatial is %d, but %s convolves over %d spatial axes",
                 p->n_spatial, op->name, ns);
        return KILN_ERR_INVALID_ARGUMENT;
    }
    for (int a = 0; a < ns; a++) {
        const struct {
            const char *name;
            int value, least;
        } checks[] = {{"stride", p->stride[a], 1},
                      {"dilation", p->dilation[a], 1},
                      {"padding", p->padding[a], 0}};
        for (int c = 0; c < 3; c++) {
            if (checks[c].value < checks[c].least) {
                snprintf(why, capacity, "%s[%d] is %d; it must be >= %d", checks[c].name, a,
                         checks[c].value, checks[c].least);
                return KILN_ERR_INVALID_ARGUMENT;
            }
        }
    }
    return KILN_OK;
}

/* Validates parameters and shapes and derives the geometry. Returns KILN_OK, or
 * KILN_ERR_INVALID_ARGUMENT (parameters) or KILN_ERR_SHAPE (shapes) with the reason in `why`. */
static kiln_status plan(const kiln_op *op, const kiln_conv_params *p, const kiln_shape *in,
                        int n_in, conv_geometry *g, char *why, size_t capacity)
{
    int ns = op->variant;
    kiln_status rc = check_params(op, p, why, capacity);
    if (rc != KILN_OK)
        return rc;
    int want = p->has_bias ? 3 : 2;
    if (n_in != want) {
        snprintf(why, capacity, "has_bias is %s, so it takes %d inputs (x, w%s), got %d",
                 p->has_bias ? "true" : "false", want, p->has_bias ? ", b" : "", n_in);
        return KILN_ERR_SHAPE;
    }
    const kiln_shape *x = &in[0], *w = &in[1];
    if (x->ndim != ns + 2 || w->ndim != ns + 2) {
        bool bad_x = x->ndim != ns + 2;
        snprintf(why, capacity, "%s must have %d axes %s, it has %d", bad_x ? "x" : "w", ns + 2,
                 bad_x ? X_LAYOUT[ns] : W_LAYOUT[ns], bad_x ? x->ndim : w->ndim);
        return KILN_ERR_SHAPE;
    }
    if (w->dim[1] != x->dim[1]) {
        snprintf(why, capacity, "x has %lld channels (axis 1) but w expects %lld (w is %s)",
                 (long long)x->dim[1], (long long)w->dim[1], W_LAYOUT[ns]);
        return KILN_ERR_SHAPE;
    }
    if (p->has_bias && (in[2].ndim != 1 || in[2].dim[0] != w->dim[0])) {
        snprintf(why, capacity, "the bias must have shape (%lld,), one value per filter",
                 (long long)w->dim[0]);
        return KILN_ERR_SHAPE;
    }
    memset(g, 0, sizeof *g);
    for (int i = 0; i < 4; i++) {
        g->size[i] = g->out[i] = g->ksize[i] = g->stride[i] = g->dilation[i] = 1;
    }
    g->size[0] = (uint32_t)x->dim[1];
    g->out[0] = (uint32_t)w->dim[0];
    g->batch = (size_t)x->dim[0];
    g->direct = true;
    int64_t rows = x->dim[1], cols = 1;
    for (int a = 0; a < ns; a++) {
        int j = a + 4 - ns; /* this spatial axis in the (C, D, H, W) arrays */
        int64_t extent = (int64_t)p->dilation[a] * (w->dim[2 + a] - 1) + 1;
        int64_t padded = x->dim[2 + a] + 2 * (int64_t)p->padding[a];
        if (extent > padded) {
            snprintf(why, capacity,
                     "along spatial axis %d the dilated kernel spans %lld but the padded input "
                     "has only %lld (size %lld + 2 x padding %d); the output would be empty",
                     a, (long long)extent, (long long)padded, (long long)x->dim[2 + a],
                     p->padding[a]);
            return KILN_ERR_SHAPE;
        }
        int64_t out = (padded - extent) / p->stride[a] + 1;
        g->size[j] = (uint32_t)x->dim[2 + a];
        g->out[j] = (uint32_t)out;
        g->ksize[j] = (uint32_t)w->dim[2 + a];
        g->stride[j] = (uint32_t)p->stride[a];
        g->pad[j] = (uint32_t)p->padding[a];
        g->dilation[j] = (uint32_t)p->dilation[a];
        g->direct = g->direct && w->dim[2 + a] == 1 && p->stride[a] == 1 && p->padding[a] == 0;
        rows *= w->dim[2 + a];
        cols *= out;
    }
    /* The kernels index with 32 bits: x, y and one sample's column matrix must fit. */
    int64_t limit = (int64_t)UINT32_MAX;
    if (kiln_shape_count(x) > limit || x->dim[0] * w->dim[0] * cols > limit ||
        rows > limit / cols) {
        snprintf(why, capacity,
                 "x, the output or one sample's column matrix (%lld x %lld) has 2^32 or more "
                 "elements, past the kernels' 32-bit indexing",
                 (long long)rows, (long long)cols);
        return KILN_ERR_SHAPE;
    }
    g->rows = (size_t)rows;
    g->cols = (size_t)cols;
    g->in_count = (size_t)(kiln_shape_count(x) / x->dim[0]);
    return KILN_OK;
}

static kiln_status conv_infer(kiln_context *ctx, const kiln_op *op, const void *params,
                              const kiln_shape *in, int n_in, kiln_shape *out, kiln_shape *saved)
{
    (void)saved;
    char why[320];
    conv_geometry g;
    kiln_status rc = plan(op, params, in, n_in, &g, why, sizeof why);
    if (rc == KILN_ERR_INVALID_ARGUMENT)
        return kiln__param_error(ctx, op, "%s", why);
    if (rc != KILN_OK)
        return kiln__shape_error(ctx, op, in, n_in, "%s", why);
    int ns = op->variant;
    out->ndim = ns + 2;
    out->dim[0] = in[0].dim[0];
    out->dim[1] = in[1].dim[0];
    for (int a = 0; a < ns; a++)
        out->dim[2 + a] = g.out[a + 4 - ns];
    return KILN_OK;
}

/* One sample's column matrix (K, P) floats, shared by forward and backward (which first
 * rebuilds the columns for grad w, then overwrites them with the column gradients). */
static size_t conv_workspace(const kiln_op *op, const void *params, const kiln_shape *in, int n_in)
{
    char why[320];
    conv_geometry g;
    if (params == NULL || plan(op, params, in, n_in, &g, why, sizeof why) != KILN_OK || g.direct)
        return 0;
    return g.rows * g.cols * sizeof(float);
}

/* The geometry of a call that kiln_op_forward/backward has already checked. */
static conv_geometry geometry_of(const kiln_op *op, const kiln_op_args *a)
{
    kiln_shape in[3];
    char why[320];
    conv_geometry g;
    for (int i = 0; i < a->n_inputs; i++)
        in[i] = a->inputs[i]->shape;
    memset(&g, 0, sizeof g);
    (void)plan(op, a->params, in, a->n_inputs, &g, why, sizeof why);
    return g;
}

/* The geometry as the six uint4 kernel arguments that follow the buffers and counts. */
static void geometry_args(const conv_geometry *g, kiln__arg *args)
{
    args[0] = kiln__arg_u32x4(g->size);
    args[1] = kiln__arg_u32x4(g->out);
    args[2] = kiln__arg_u32x4(g->ksize);
    args[3] = kiln__arg_u32x4(g->stride);
    args[4] = kiln__arg_u32x4(g->pad);
    args[5] = kiln__arg_u32x4(g->dilation);
}

/* Where sample n's column matrix (K, P) is: x itself for a direct convolution, otherwise the
 * workspace after a vol2col launch. */
static kiln_status sample_columns(kiln_device *dev, const conv_geometry *g, const kiln_op_args *a,
                                  size_t n, const kiln_buffer **buffer, size_t *offset)
{
    if (g->direct) {
        *buffer = kiln__tensor_buffer(a->inputs[0]);
        *offset = n * g->in_count;
        return KILN_OK;
    }
    *buffer = a->workspace;
    *offset = 0;
    /* One work-item per row segment (tap, od, oh) of OW columns (cl/conv.cl). */
    uint32_t segments = (uint32_t)(g->rows * g->out[1] * g->out[2]);
    kiln__arg args[10] = {KILN__ARG_T(a->inputs[0]), KILN__ARG_UINT(n * g->in_count),
                          KILN__ARG_BUF(a->workspace), KILN__ARG_UINT(segments)};
    geometry_args(g, args + 4);
    return kiln__launch_1d(dev, "conv", "conv_fwd_cols", args, 10, segments);
}

/* Runs one product, naming the op and the step in error messages. */
static kiln_status run_gemm(kiln_device *dev, const kiln_op *op, const char *step,
                            const kiln__gemm *product)
{
    char what[96];
    snprintf(what, sizeof what, "op '%s' %s", op->name, step);
    return kiln__gemm_run(dev, what, product);
}

static kiln_status conv_forward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    const kiln_conv_params *p = a->params;
    conv_geometry g = geometry_of(op, a);
    size_t f = g.out[0], k = g.rows, n_cols = g.cols;
    kiln_status rc = KILN_OK;
    for (size_t n = 0; rc == KILN_OK && n < g.batch; n++) {
        const kiln_buffer *cols = NULL;
        size_t cols_offset = 0;
        rc = sample_columns(dev, &g, a, n, &cols, &cols_offset);
        /* y[n] (F, P) = w (F, K) cols (K, P) */
        kiln__gemm product = {.m = f,
                              .n = n_cols,
                              .k = k,
                              .alpha = 1,
                              .beta = 0,
                              .a = kiln__tensor_buffer(a->inputs[1]),
                              .lda = k,
                              .b = cols,
                              .b_offset = cols_offset,
                              .ldb = n_cols,
                              .c = kiln__tensor_buffer(a->output),
                              .c_offset = n * f * n_cols,
                              .ldc = n_cols};
        if (rc == KILN_OK)
            rc = run_gemm(dev, op, "forward (y = w cols)", &product);
    }
    if (rc == KILN_OK && p->has_bias) {
        uint32_t rows = (uint32_t)(g.batch * f); /* one work-item per (n, f) row */
        kiln__arg args[] = {KILN__ARG_T(a->inputs[2]), KILN__ARG_T(a->output), KILN__ARG_UINT(rows),
                            KILN__ARG_UINT(n_cols), KILN__ARG_UINT(f)};
        rc = kiln__launch_1d(dev, "conv", "conv_fwd_bias", args, 5, rows);
    }
    return rc;
}

/* grad x[n] += col2vol(w^T g[n]): the product goes straight into grad x for a direct
 * convolution, otherwise into the workspace and through the gather kernel. */
static kiln_status backward_x(kiln_device *dev, const kiln_op *op, const kiln_op_args *a,
                              const conv_geometry *g, size_t n)
{
    size_t f = g->out[0], k = g->rows, n_cols = g->cols;
    const kiln_buffer *gx = kiln__tensor_buffer(a->grad_inputs[0]);
    /* cols (K, P) = w^T (K, F) g[n] (F, P); w is stored (F, K). */
    kiln__gemm product = {.transpose_a = true,
                          .m = k,
                          .n = n_cols,
                          .k = f,
                          .alpha = 1,
                          .beta = g->direct ? 1 : 0,
                          .a = kiln__tensor_buffer(a->inputs[1]),
                          .lda = k,
                          .b = kiln__tensor_buffer(a->grad_output),
                          .b_offset = n * f * n_cols,
                          .ldb = n_cols,
                          .c = g->direct ? gx : a->workspace,
                          .c_offset = g->direct ? n * g->in_count : 0,
                          .ldc = n_cols};
    kiln_status rc = run_gemm(dev, op, "backward (column gradients = w^T g)", &product);
    if (rc != KILN_OK || g->direct)
        return rc;
    /* One work-item per input row (c, d, h) (cl/conv.cl). */
    uint32_t rows = g->size[0] * g->size[1] * g->size[2];
    kiln__arg args[10] = {KILN__ARG_BUF(a->workspace), KILN__ARG_BUF(gx),
                          KILN__ARG_UINT(n * g->in_count), KILN__ARG_UINT(rows)};
    geometry_args(g, args + 4);
    return kiln__launch_1d(dev, "conv", "conv_bwd_x", args, 10, rows);
}

static kiln_status conv_backward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    if (a->grad_inputs == NULL)
        return KILN_OK;
    conv_geometry g = geometry_of(op, a);
    size_t f = g.out[0], k = g.rows, n_cols = g.cols;
    kiln_tensor *gx = a->grad_inputs[0], *gw = a->grad_inputs[1];
    kiln_tensor *gb = a->n_inputs > 2 ? a->grad_inputs[2] : NULL;
    kiln_status rc = KILN_OK;
    for (size_t n = 0; rc == KILN_OK && n < g.batch && (gx != NULL || gw != NULL); n++) {
        if (gw != NULL) {
            const kiln_buffer *cols = NULL;
            size_t cols_offset = 0;
            rc = sample_columns(dev, &g, a, n, &cols, &cols_offset);
            /* grad w (F, K) += g[n] (F, P) cols^T (P, K); beta = 1 sums the samples. */
            kiln__gemm product = {.transpose_b = true,
                                  .m = f,
                                  .n = k,
                                  .k = n_cols,
                                  .alpha = 1,
                                  .beta = 1,
                                  .a = kiln__tensor_buffer(a->grad_output),
                                  .a_offset = n * f * n_cols,
                                  .lda = n_cols,
                                  .b = cols,
                                  .b_offset = cols_offset,
                                  .ldb = n_cols,
                                  .c = kiln__tensor_buffer(gw),
                                  .ldc = k};
            if (rc == KILN_OK)
                rc = run_gemm(dev, op, "backward (grad w += g cols^T)", &product);
        }
        /* The queue is in order, so these column gradients overwrite the workspace only
         * after the product above has read the columns. */
        if (rc == KILN_OK && gx != NULL)
            rc = backward_x(dev, op, a, &g, n);
    }
    if (rc == KILN_OK && gb != NULL) {
        /* grad b (F,) += sum of g over N and the spatial axes, as (F, 1, ..., 1). */
        const kiln_shape *out = &a->grad_output->shape;
        kiln_shape b = *out;
        b.ndim = out->ndim - 1;
        b.dim[0] = out->dim[1];
        for (int i = 1; i < b.ndim; i++)
            b.dim[i] = 1;
        rc = kiln__reduce_to(dev, op, kiln__tensor_buffer(a->grad_output), out,
                             kiln__tensor_buffer(gb), &b, KILN__REDUCE_SUM, 1.0f, true);
    }
    return rc;
}

#define CONV_OP(symbol, op_name, n_spatial)                                                        \
    const kiln_op symbol = {                                                                       \
        .name = op_name,                                                                           \
        .program = "conv",                                                                         \
        .n_inputs = 3,                                                                             \
        .variadic = true,                                                                          \
        .params_size = sizeof(kiln_conv_params),                                                   \
        .infer = conv_infer,                                                                       \
        .workspace = conv_workspace,                                                               \
        .forward = conv_forward,                                                                   \
        .backward = conv_backward,                                                                 \
        .variant = n_spatial,                                                                      \
    }

CONV_OP(kiln__op_conv2d, "conv2d", 2);
CONV_OP(kiln__op_conv3d, "conv3d", 3);
