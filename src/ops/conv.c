/*
 * Convolution ops conv2d and conv3d (PyTorch Conv2d / Conv3d with groups = 1, symmetric zero
 * padding, stride and dilation per spatial axis): x (N, C, [D,] H, W), w (F, C, [KD,] KH, KW)
 * and an optional bias b (F,) give y (N, F, [OD,] OH, OW).
 *
 * The batch is lowered a chunk of S samples at a time (K = C KD KH KW, P = OD OH OW): vol2col
 * (im2col in 2-D) writes the chunk as one column matrix (K, S P), sample s in columns s P to
 * s P + P - 1, and ONE GEMM gives (F, S P) = w (F, K) cols (K, S P) in the workspace, which a
 * transposing copy moves to y's (S, F, P) rows, adding the bias on the way. The workspace is
 * the chunk's columns (K, S P) and its products (F, S P); S is the whole batch when that fits
 * in 4 MB (CHUNK_BYTES), else as many samples as fit, at least one, so the workspace stays
 * under max(4 MB, one sample's (K + F) P floats). Measured on PoCL (docs/PERFORMANCE.md,
 * "Convolution over sample chunks" and "The CNN: shifted column planes, 4 MB chunks"), chunks
 * whose matrices stay in the cores' L2 caches together (2 x 2 MB there) beat both one GEMM per
 * sample and one over the whole batch (16 MB for the CNN's second layer, streamed through
 * memory by every pass), and 4 MB beat 1 MB by a fifth of an epoch: a quarter of the launches
 * and GEMMs wide enough to pack. KILN_CONV_CHUNK=S caps S (read on every call; the tests use
 * it to put chunk boundaries inside small batches).
 *
 * Backward, per chunk: the output gradients g are copied into (F, S P) in the workspace (a
 * chunk of one sample reads g in place unless a fused relu or the bias gradient needs the
 * copy); grad w (F, K) += g (F, S P) cols^T (one GEMM with
 * beta = 1, which also accumulates across chunks); the column gradients (K, S P) = w^T g
 * overwrite the columns and a gather per input element (cl/conv.cl) adds them into grad x.
 * grad b: the copy of g into the workspace also leaves each (n, f) row's sum at the
 * workspace's end (the direct path, reading g in place, sums them with kiln__reduce_to_at), and
 * one kernel adds those N row sums per filter, compensated. Gradients marked fresh
 * are set: grad w's first product takes beta = 0, the gather and the bias sum write.
 *
 * With stride 1 along height and width and an output as wide as the input (OW = W, e.g. a
 * 'same' padding), every column of a tap's plane reads the input plane at one fixed shift, so
 * the column kernels take such planes 16 elements at a time with vector loads and masks
 * (conv_fwd_cols_shifted, conv_bwd_x_shifted); other geometries go row by row.
 *
 * Those kernels, and the copy between a chunk's products and y's rows, give each work-item a
 * plane or a row to loop along: on a CPU, PoCL vectorises the loop and each work-item's index
 * arithmetic is paid once per plane. On a GPU the same launches are a few hundred work-items
 * whose neighbours touch memory a plane apart, so there (or with KILN_CONV_FORM=elements) the
 * column kernels take one element per work-item (conv_fwd_cols_elems, conv_bwd_x_elems) and
 * the copy one work-group per row (conv_chunk_transpose_groups).
 *
 * Fused relu (kiln_op_args.activation, column path only): the forward copy into y applies it
 * after the bias, so y is relu's output; backward copies g times relu's derivative (y > 0)
 * into the workspace (also for one-sample chunks) and the bias sum masks alike, so the
 * executor runs no relu pass over the convolution's output in either direction.
 *
 * A 1x1(x1) kernel with stride 1 and no padding needs no columns: x[n] (C, P) already is the
 * matrix, so forward and grad x are one strided-batched GEMM over the whole batch and grad w
 * one GEMM per sample, with no workspace. A 2-D convolution is a 3-D one with depth 1.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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
    size_t chunk;    /* S: samples lowered together (column path only) */
    size_t sums;     /* N F with a bias, else 0: floats of the bias gradient's row sums */
    bool direct;     /* 1x1(x1) kernel, stride 1, no padding: x[n] is the column matrix */
    bool shifted;    /* stride 1 along height and width, OW = W: the shifted column kernels */
    bool elements;   /* the column kernels and the chunk copy by elements (by_elements) */
} conv_geometry;

/* The workspace the column path aims to stay under: a chunk's columns and products. */
#define CHUNK_BYTES ((size_t)4 << 20)

/* Floats of workspace one sample of a chunk takes: its columns (K, P) and products (F, P). */
static size_t sample_floats(const conv_geometry *g)
{
    return (g->rows + g->out[0]) * g->cols;
}

/* S, the samples per chunk: as many as fit in CHUNK_BYTES (at least 1, at most N), capped by
 * KILN_CONV_CHUNK when that is a positive integer. */
static size_t chunk_samples(const conv_geometry *g)
{
    size_t fit = CHUNK_BYTES / (sample_floats(g) * sizeof(float));
    size_t s = fit < 1 ? 1 : fit;
    const char *env = getenv("KILN_CONV_CHUNK");
    if (env != NULL) {
        char *end = NULL;
        long cap = strtol(env, &end, 10);
        if (end != env && *end == '\0' && cap >= 1 && (size_t)cap < s)
            s = (size_t)cap;
    }
    return s < g->batch ? s : g->batch;
}

/* Whether the column kernels and the chunk copy run by elements (GPUs and other non-CPU
 * devices) or by planes and rows (CPUs); KILN_CONV_FORM=elements or planes overrides the
 * device's default (read on every call, like KILN_CONV_CHUNK; the tests run both on PoCL),
 * any other value is ignored. */
static bool by_elements(const kiln_device *dev)
{
    const char *env = getenv("KILN_CONV_FORM");
    if (env != NULL && strcmp(env, "elements") == 0)
        return true;
    if (env != NULL && strcmp(env, "planes") == 0)
        return false;
    return kiln_device_get_info(dev)->type != KILN_DEVICE_TYPE_CPU;
}

/* Work-items per row in conv_chunk_transpose_groups: 256, or the largest power of two within
 * the device's work-group limit. */
static size_t group_width(const kiln_device *dev)
{
    size_t most = kiln_device_get_info(dev)->max_work_group_size;
    size_t width = 256;
    while (width > 1 && width > most)
        width /= 2;
    return width;
}

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
    /* The shifted kernels index a plane, and shifts within it, with int: planes stay well
     * under 2^31 elements. */
    int64_t plane_limit = INT32_MAX / 4;
    g->shifted = g->stride[2] == 1 && g->stride[3] == 1 && g->out[3] == g->size[3] &&
                 (int64_t)g->size[2] * g->size[3] <= plane_limit &&
                 (int64_t)g->out[2] * g->out[3] <= plane_limit;
    g->chunk = g->direct ? g->batch : chunk_samples(g);
    g->sums = p->has_bias ? g->batch * g->out[0] : 0;
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

/* A chunk's column matrix (K, S P) followed by its products (F, S P), shared by forward and
 * backward (which rebuilds the columns for grad w, keeps the output gradients in the product
 * region, then overwrites the columns with the column gradients); with a bias, the (N, F) row
 * sums of g for its gradient at the workspace's end (the direct path needs only those). */
static size_t conv_workspace(const kiln_op *op, const void *params, const kiln_shape *in, int n_in)
{
    char why[320];
    conv_geometry g;
    if (params == NULL || plan(op, params, in, n_in, &g, why, sizeof why) != KILN_OK)
        return 0;
    return ((g.direct ? 0 : g.chunk * sample_floats(&g)) + g.sums) * sizeof(float);
}

/* Where the row sums start in the workspace: its last g->sums floats. */
static size_t sums_at(const conv_geometry *g, const kiln_op_args *a)
{
    return kiln_buffer_get_size(a->workspace) / sizeof(float) - g->sums;
}

/* The geometry of a call that kiln_op_forward/backward has already checked, with the kernels'
 * form for `dev`. The chunk never outgrows the workspace handed in (which kiln_op_forward
 * checked against conv_workspace), should KILN_CONV_CHUNK have changed since the workspace was
 * sized. */
static conv_geometry geometry_of(const kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    kiln_shape in[3];
    char why[320];
    conv_geometry g;
    for (int i = 0; i < a->n_inputs; i++)
        in[i] = a->inputs[i]->shape;
    memset(&g, 0, sizeof g);
    (void)plan(op, a->params, in, a->n_inputs, &g, why, sizeof why);
    if (!g.direct && a->workspace != NULL) {
        size_t fit =
            (kiln_buffer_get_size(a->workspace) / sizeof(float) - g.sums) / sample_floats(&g);
        g.chunk = fit >= 1 && fit < g.chunk ? fit : g.chunk;
    }
    g.elements = by_elements(dev);
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

/* One chunk: samples n0 to n0 + count - 1, and where its parts lie in the workspace. */
typedef struct conv_chunk {
    size_t n0, count;
    size_t width;    /* count P: columns of the chunk's matrices */
    size_t products; /* offset of the (F, count P) products, after the (K, count P) columns */
} conv_chunk;

static conv_chunk chunk_at(const conv_geometry *g, size_t n0)
{
    conv_chunk c = {.n0 = n0, .count = g->batch - n0 < g->chunk ? g->batch - n0 : g->chunk};
    c.width = c.count * g->cols;
    c.products = g->rows * c.width;
    return c;
}

/* vol2col of the chunk's samples into the workspace's (K, count P) columns. */
static kiln_status chunk_columns(kiln_device *dev, const conv_geometry *g, const kiln_op_args *a,
                                 const conv_chunk *c)
{
    /* One work-item per (tap, sample, od) plane of OH OW columns, or per element of the
     * (K, count P) columns (cl/conv.cl); plan() keeps both counts under 2^32. */
    uint32_t items = (uint32_t)(g->rows * c->count * (g->elements ? g->cols : g->out[1]));
    kiln__arg args[11] = {KILN__ARG_T(a->inputs[0]), KILN__ARG_UINT(c->n0 * g->in_count),
                          KILN__ARG_BUF(a->workspace), KILN__ARG_UINT(items),
                          KILN__ARG_UINT(c->count)};
    geometry_args(g, args + 5);
    const char *kernel = g->elements  ? "conv_fwd_cols_elems"
                         : g->shifted ? "conv_fwd_cols_shifted"
                                      : "conv_fwd_cols";
    return kiln__launch_1d(dev, "conv", kernel, args, 11, items);
}

/* Whether backward is to compute the bias gradient. */
static bool wants_bias_grad(const kiln_op_args *a)
{
    return a->grad_inputs != NULL && a->n_inputs > 2 && a->grad_inputs[2] != NULL;
}

/* Copies the chunk between the workspace's (F, count P) products and the (count, F, P) rows of
 * y or g that start at sample n0: into y (adding b when given, then the fused relu) after the
 * forward product, out of g (times the fused relu's derivative, from y) before the backward
 * ones, leaving each row's sum in the workspace's row sums when the bias takes a gradient. */
static kiln_status chunk_transpose(kiln_device *dev, const conv_geometry *g, const kiln_op_args *a,
                                   const conv_chunk *c, bool to_rows, const kiln_tensor *bias)
{
    const kiln_buffer *rows = kiln__tensor_buffer(to_rows ? a->output : a->grad_output);
    /* One work-item, or one work-group of `width`, per (sample, filter) row of P elements
     * (cl/conv.cl). */
    uint32_t n = (uint32_t)(c->count * g->out[0]);
    size_t width = g->elements ? group_width(dev) : 0;
    kiln__arg args[] = {KILN__ARG_BUF(a->workspace),
                        KILN__ARG_UINT(c->products),
                        KILN__ARG_BUF(rows),
                        KILN__ARG_UINT(c->n0 * g->out[0] * g->cols),
                        KILN__ARG_BUF(bias != NULL ? kiln__tensor_buffer(bias) : rows),
                        KILN__ARG_UINT(bias != NULL),
                        KILN__ARG_T(a->output),
                        KILN__ARG_UINT(a->activation == KILN_ACTIVATION_RELU),
                        KILN__ARG_BUF(a->workspace),
                        KILN__ARG_UINT(g->sums > 0 ? sums_at(g, a) + c->n0 * g->out[0] : 0),
                        KILN__ARG_UINT(!to_rows && wants_bias_grad(a)),
                        KILN__ARG_UINT(to_rows),
                        KILN__ARG_UINT(n),
                        KILN__ARG_UINT(g->cols),
                        KILN__ARG_UINT(g->out[0]),
                        KILN__ARG_UINT(c->count),
                        KILN__ARG_LOCAL_BYTES(width * sizeof(float))}; /* the groups' form only */
    size_t n_args = sizeof args / sizeof args[0];
    if (!g->elements)
        return kiln__launch_1d(dev, "conv", "conv_chunk_transpose", args, n_args - 1, n);
    size_t global = (size_t)n * width;
    return kiln__launch(dev, "conv", "conv_chunk_transpose_groups", args, n_args, 1, &global,
                        &width);
}

/* Runs one product, naming the op and the step in error messages. */
static kiln_status run_gemm(kiln_device *dev, const kiln_op *op, const char *step,
                            const kiln__gemm *product)
{
    char what[96];
    snprintf(what, sizeof what, "op '%s' %s", op->name, step);
    return kiln__gemm_run(dev, what, product);
}

/* Direct forward: y[n] (F, P) = w (F, K) x[n] (K, P) for every n in one batched product, then
 * the bias. */
static kiln_status forward_direct(kiln_device *dev, const kiln_op *op, const kiln_op_args *a,
                                  const conv_geometry *g)
{
    const kiln_conv_params *p = a->params;
    size_t f = g->out[0], k = g->rows, n_cols = g->cols;
    kiln__gemm product = {.m = f,
                          .n = n_cols,
                          .k = k,
                          .alpha = 1,
                          .beta = 0,
                          .a = kiln__tensor_buffer(a->inputs[1]),
                          .lda = k,
                          .b = kiln__tensor_buffer(a->inputs[0]),
                          .ldb = n_cols,
                          .b_stride = g->in_count,
                          .c = kiln__tensor_buffer(a->output),
                          .ldc = n_cols,
                          .c_stride = f * n_cols,
                          .batch = g->batch};
    kiln_status rc = run_gemm(dev, op, "forward (y = w x)", &product);
    if (rc == KILN_OK && p->has_bias) {
        uint32_t rows = (uint32_t)(g->batch * f); /* one work-item per (n, f) row */
        kiln__arg args[] = {KILN__ARG_T(a->inputs[2]), KILN__ARG_T(a->output), KILN__ARG_UINT(rows),
                            KILN__ARG_UINT(n_cols), KILN__ARG_UINT(f)};
        rc = kiln__launch_1d(dev, "conv", "conv_fwd_bias", args, 5, rows);
    }
    return rc;
}

static kiln_status conv_forward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    const kiln_conv_params *p = a->params;
    conv_geometry g = geometry_of(dev, op, a);
    if (g.direct)
        return forward_direct(dev, op, a, &g);
    const kiln_tensor *bias = p->has_bias ? a->inputs[2] : NULL;
    kiln_status rc = KILN_OK;
    for (size_t n0 = 0; rc == KILN_OK && n0 < g.batch; n0 += g.chunk) {
        conv_chunk c = chunk_at(&g, n0);
        rc = chunk_columns(dev, &g, a, &c);
        /* products (F, count P) = w (F, K) cols (K, count P) */
        kiln__gemm product = {.m = g.out[0],
                              .n = c.width,
                              .k = g.rows,
                              .alpha = 1,
                              .beta = 0,
                              .a = kiln__tensor_buffer(a->inputs[1]),
                              .lda = g.rows,
                              .b = a->workspace,
                              .ldb = c.width,
                              .c = a->workspace,
                              .c_offset = c.products,
                              .ldc = c.width};
        if (rc == KILN_OK)
            rc = run_gemm(dev, op, "forward (y = w cols)", &product);
        if (rc == KILN_OK)
            rc = chunk_transpose(dev, &g, a, &c, true, bias);
    }
    return rc;
}

/* Direct backward: grad x[n] (K, P) += w^T (K, F) g[n] (F, P) for every n in one batched
 * product; grad w (F, K) += g[n] (F, P) x[n]^T (P, K) one sample at a time (beta = 1 sums
 * them; a batched product would race on grad w). A fresh gradient takes beta = 0 in its
 * first product. */
static kiln_status backward_direct(kiln_device *dev, const kiln_op *op, const kiln_op_args *a,
                                   const conv_geometry *g)
{
    size_t f = g->out[0], k = g->rows, n_cols = g->cols;
    kiln_tensor *gx = a->grad_inputs[0], *gw = a->grad_inputs[1];
    kiln_status rc = KILN_OK;
    if (gx != NULL) {
        kiln__gemm product = {.transpose_a = true,
                              .m = k,
                              .n = n_cols,
                              .k = f,
                              .alpha = 1,
                              .beta = kiln__grad_fresh(a, 0) ? 0 : 1,
                              .a = kiln__tensor_buffer(a->inputs[1]),
                              .lda = k,
                              .b = kiln__tensor_buffer(a->grad_output),
                              .ldb = n_cols,
                              .b_stride = f * n_cols,
                              .c = kiln__tensor_buffer(gx),
                              .ldc = n_cols,
                              .c_stride = g->in_count,
                              .batch = g->batch};
        rc = run_gemm(dev, op, "backward (grad x += w^T g)", &product);
    }
    for (size_t n = 0; rc == KILN_OK && gw != NULL && n < g->batch; n++) {
        kiln__gemm product = {.transpose_b = true,
                              .m = f,
                              .n = k,
                              .k = n_cols,
                              .alpha = 1,
                              .beta = n == 0 && kiln__grad_fresh(a, 1) ? 0 : 1,
                              .a = kiln__tensor_buffer(a->grad_output),
                              .a_offset = n * f * n_cols,
                              .lda = n_cols,
                              .b = kiln__tensor_buffer(a->inputs[0]),
                              .b_offset = n * g->in_count,
                              .ldb = n_cols,
                              .c = kiln__tensor_buffer(gw),
                              .ldc = k};
        rc = run_gemm(dev, op, "backward (grad w += g x^T)", &product);
    }
    return rc;
}

/* One chunk of the column path's backward. The queue is in order, so each step reads what
 * the one before it wrote in the workspace. */
static kiln_status backward_chunk(kiln_device *dev, const kiln_op *op, const kiln_op_args *a,
                                  const conv_geometry *g, const conv_chunk *c)
{
    size_t f = g->out[0], k = g->rows;
    kiln_tensor *gx = a->grad_inputs[0], *gw = a->grad_inputs[1];
    /* The chunk's output gradients as (F, count P): for one sample, g[n] itself unless a fused
     * relu's derivative must be applied first or the copy is to sum rows for the bias. */
    const kiln_buffer *grad = a->workspace;
    size_t grad_offset = c->products;
    kiln_status rc = KILN_OK;
    if (c->count == 1 && a->activation == KILN_ACTIVATION_NONE && !wants_bias_grad(a)) {
        grad = kiln__tensor_buffer(a->grad_output);
        grad_offset = c->n0 * f * g->cols;
    } else {
        rc = chunk_transpose(dev, g, a, c, false, NULL);
    }
    if (rc == KILN_OK && gw != NULL) {
        rc = chunk_columns(dev, g, a, c);
        /* grad w (F, K) += g (F, count P) cols^T (count P, K); beta = 1 sums the chunks (a
         * fresh grad w takes beta = 0 in the first). */
        kiln__gemm product = {.transpose_b = true,
                              .m = f,
                              .n = k,
                              .k = c->width,
                              .alpha = 1,
                              .beta = c->n0 == 0 && kiln__grad_fresh(a, 1) ? 0 : 1,
                              .a = grad,
                              .a_offset = grad_offset,
                              .lda = c->width,
                              .b = a->workspace,
                              .ldb = c->width,
                              .c = kiln__tensor_buffer(gw),
                              .ldc = k};
        if (rc == KILN_OK)
            rc = run_gemm(dev, op, "backward (grad w += g cols^T)", &product);
    }
    if (rc != KILN_OK || gx == NULL)
        return rc;
    /* column gradients (K, count P) = w^T (K, F) g (F, count P); w is stored (F, K). */
    kiln__gemm product = {.transpose_a = true,
                          .m = k,
                          .n = c->width,
                          .k = f,
                          .alpha = 1,
                          .beta = 0,
                          .a = kiln__tensor_buffer(a->inputs[1]),
                          .lda = k,
                          .b = grad,
                          .b_offset = grad_offset,
                          .ldb = c->width,
                          .c = a->workspace,
                          .ldc = c->width};
    rc = run_gemm(dev, op, "backward (column gradients = w^T g)", &product);
    if (rc != KILN_OK)
        return rc;
    /* One work-item per input row (sample, c, d, h), per input plane (sample, c, d) in the
     * shifted case, or per input element (cl/conv.cl). */
    uint32_t items = (uint32_t)(g->elements ? c->count * g->in_count
                                            : c->count * g->size[0] * g->size[1] *
                                                  (g->shifted ? 1 : g->size[2]));
    kiln__arg args[12] = {KILN__ARG_BUF(a->workspace),
                          KILN__ARG_T(gx),
                          KILN__ARG_UINT(c->n0 * g->in_count),
                          KILN__ARG_UINT(items),
                          KILN__ARG_UINT(c->count),
                          KILN__ARG_UINT(!kiln__grad_fresh(a, 0))};
    geometry_args(g, args + 6);
    const char *kernel = g->elements  ? "conv_bwd_x_elems"
                         : g->shifted ? "conv_bwd_x_shifted"
                                      : "conv_bwd_x";
    return kiln__launch_1d(dev, "conv", kernel, args, 12, items);
}

static kiln_status conv_backward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    if (a->grad_inputs == NULL)
        return KILN_OK;
    conv_geometry g = geometry_of(dev, op, a);
    kiln_tensor *gx = a->grad_inputs[0], *gw = a->grad_inputs[1];
    kiln_tensor *gb = a->n_inputs > 2 ? a->grad_inputs[2] : NULL;
    kiln_status rc = KILN_OK;
    if (g.direct) {
        rc = backward_direct(dev, op, a, &g);
    } else {
        for (size_t n0 = 0;
             rc == KILN_OK && n0 < g.batch && (gx != NULL || gw != NULL || gb != NULL);
             n0 += g.chunk) {
            conv_chunk c = chunk_at(&g, n0);
            rc = backward_chunk(dev, op, a, &g, &c);
        }
    }
    if (rc == KILN_OK && gb != NULL && g.direct) {
        /* The direct path reads g in place: its (N F, P) rows are summed by the general
         * reduction, into the same place. */
        kiln_shape rows = {2, {(int64_t)g.sums, (int64_t)g.cols}}, sums = {2, {(int64_t)g.sums, 1}};
        rc = kiln__reduce_to_at(dev, op, kiln__tensor_buffer(a->grad_output), &rows, a->workspace,
                                sums_at(&g, a), &sums, KILN__REDUCE_SUM, 1.0f, false);
    }
    if (rc == KILN_OK && gb != NULL) {
        /* grad b (F,) += the (N, F) row sums of g (times a fused relu's derivative) summed over
         * N: one work-item per filter (cl/conv.cl). */
        uint32_t f = g.out[0];
        kiln__arg args[] = {KILN__ARG_BUF(a->workspace),
                            KILN__ARG_UINT(sums_at(&g, a)),
                            KILN__ARG_T(gb),
                            KILN__ARG_UINT(!kiln__grad_fresh(a, 2)),
                            KILN__ARG_UINT(f),
                            KILN__ARG_UINT(g.batch)};
        rc = kiln__launch_1d(dev, "conv", "conv_bwd_b", args, sizeof args / sizeof args[0], f);
    }
    return rc;
}

/* relu on the column path: the copy into y applies it, and backward's copy of g (and the bias
 * gradient's sum) its derivative. The direct path writes y from the GEMM and reads g in place,
 * with no pass to apply either in. */
static bool conv_fuses(const kiln_op *op, const void *params, const kiln_shape *in, int n_in,
                       kiln_activation act)
{
    char why[320];
    conv_geometry g;
    return act == KILN_ACTIVATION_RELU && params != NULL &&
           plan(op, params, in, n_in, &g, why, sizeof why) == KILN_OK && !g.direct;
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
        .writes_fresh_grads = 7u,                                                                  \
        .fuses = conv_fuses,                                                                       \
        .variant = n_spatial,                                                                      \
    }

CONV_OP(kiln__op_conv2d, "conv2d", 2);
CONV_OP(kiln__op_conv3d, "conv3d", 3);
