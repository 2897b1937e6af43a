/*
 * Pooling ops: maxpool2d, maxpool3d, avgpool2d, avgpool3d (PyTorch MaxPool2d/3d and
 * AvgPool2d/3d with no padding, no dilation and floor mode; a stride of 0 means the window
 * size; average pooling divides by the window size) and global_avgpool, (N, C, spatial...) ->
 * (N, C), the mean over every spatial axis.
 *
 * Max pooling saves the window-local index of each window's first maximum (PyTorch picks one
 * index too), so backward is an exact gather without recomputing the windows. Kernels are in
 * cl/pool.cl; global_avgpool's forward is a kiln__reduce_to sum.
 */
#include "ops/op.h"

enum { POOL_MAX, POOL_AVG };

/* The spatial geometry as the kernels see it: (D, H, W, unused), with D = 1 and a window
 * depth of 1 for 2-D pooling, and the number of (N, C) planes. */
typedef struct pool_geometry {
    uint32_t in[4], out[4], size[4], stride[4];
    uint32_t planes;
} pool_geometry;

static int pool_n_spatial(const kiln_op *op)
{
    return op->variant % 10;
}

static int pool_kind(const kiln_op *op)
{
    return op->variant / 10;
}

static const char *spatial_layout(int n_spatial)
{
    return n_spatial == 2 ? "(N, C, H, W)" : "(N, C, D, H, W)";
}

static kiln_status pool_infer(kiln_context *ctx, const kiln_op *op, const void *params,
                              const kiln_shape *in, int n_in, kiln_shape *out, kiln_shape *saved)
{
    const kiln_pool_params *p = params;
    int ns = pool_n_spatial(op);
    if (p->n_spatial != ns)
        return kiln__param_error(ctx, op, "n_spatial is %d; this op pools %d spatial axes",
                                 p->n_spatial, ns);
    for (int i = 0; i < ns; i++) {
        if (p->size[i] < 1 || p->stride[i] < 0)
            return kiln__param_error(ctx, op,
                                     "window size %d and stride %d on spatial axis %d: the "
                                     "size must be >= 1 and the stride >= 0 (0: the size)",
                                     p->size[i], p->stride[i], i);
    }
    if (in[0].ndim != 2 + ns)
        return kiln__shape_error(ctx, op, in, n_in, "the input must be %s", spatial_layout(ns));
    *out = in[0];
    for (int i = 0; i < ns; i++) {
        int64_t extent = in[0].dim[2 + i];
        int stride = p->stride[i] > 0 ? p->stride[i] : p->size[i];
        if (extent < p->size[i])
            return kiln__shape_error(ctx, op, in, n_in,
                                     "the window (%d) is larger than spatial axis %d (%lld); "
                                     "there is no padding",
                                     p->size[i], i, (long long)extent);
        out->dim[2 + i] = (extent - p->size[i]) / stride + 1;
    }
    if (pool_kind(op) == POOL_MAX)
        saved[0] = *out; /* the argmax of each window */
    return KILN_OK;
}

static pool_geometry pool_geometry_of(const kiln_pool_params *p, const kiln_shape *x,
                                      const kiln_shape *y)
{
    pool_geometry g = {{1, 1, 1, 0}, {1, 1, 1, 0}, {1, 1, 1, 0}, {1, 1, 1, 0}, 0};
    int ns = p->n_spatial;
    for (int i = 0; i < ns; i++) {
        int j = 3 - ns + i;
        g.in[j] = (uint32_t)x->dim[2 + i];
        g.out[j] = (uint32_t)y->dim[2 + i];
        g.size[j] = (uint32_t)p->size[i];
        g.stride[j] = (uint32_t)(p->stride[i] > 0 ? p->stride[i] : p->size[i]);
    }
    g.planes = (uint32_t)(x->dim[0] * x->dim[1]);
    return g;
}

/* A 2-D pool with 2 x 2 windows and stride 2: maxpool2x2_* take it. */
static bool is_2x2(const pool_geometry *g)
{
    return g->in[0] == 1 && g->size[0] == 1 && g->size[1] == 2 && g->size[2] == 2 &&
           g->stride[1] == 2 && g->stride[2] == 2;
}

/* Launches a maxpool2x2 kernel, one work-item per output row (P OH of them), with its three
 * tensors; `extra` is the backward kernel's accumulate flag (forward: n_extra 0). */
static kiln_status launch_2x2(kiln_device *dev, const char *kernel, const pool_geometry *g,
                              const kiln_tensor *t0, const kiln_tensor *t1, const kiln_tensor *t2,
                              size_t n_extra, uint32_t extra)
{
    uint32_t rows = g->planes * g->out[1];
    kiln__arg args[] = {
        KILN__ARG_T(t0),           KILN__ARG_T(t1),           KILN__ARG_T(t2),
        KILN__ARG_UINT(rows),      KILN__ARG_UINT(g->in[1]),  KILN__ARG_UINT(g->in[2]),
        KILN__ARG_UINT(g->out[1]), KILN__ARG_UINT(g->out[2]), KILN__ARG_UINT(extra)};
    return kiln__launch_1d(dev, "pool", kernel, args, 8 + n_extra, rows);
}

static kiln_status pool_forward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    pool_geometry g = pool_geometry_of(a->params, &a->inputs[0]->shape, &a->output->shape);
    uint32_t n = (uint32_t)kiln_tensor_count(a->output);
    kiln__arg geometry[] = {kiln__arg_u32x4(g.in), kiln__arg_u32x4(g.out), kiln__arg_u32x4(g.size),
                            kiln__arg_u32x4(g.stride)};
    if (pool_kind(op) == POOL_MAX && is_2x2(&g))
        return launch_2x2(dev, "maxpool2x2_fwd", &g, a->inputs[0], a->output, a->saved[0], 0, 0);
    if (pool_kind(op) == POOL_MAX) {
        /* One work-item per output row (plane, od, oh) (cl/pool.cl). */
        uint32_t rows = g.planes * g.out[0] * g.out[1];
        kiln__arg args[] = {KILN__ARG_T(a->inputs[0]),
                            KILN__ARG_T(a->output),
                            KILN__ARG_T(a->saved[0]),
                            KILN__ARG_UINT(rows),
                            geometry[0],
                            geometry[1],
                            geometry[2],
                            geometry[3]};
        return kiln__launch_1d(dev, "pool", "maxpool_fwd", args, 8, rows);
    }
    kiln__arg args[] = {KILN__ARG_T(a->inputs[0]),
                        KILN__ARG_T(a->output),
                        KILN__ARG_UINT(n),
                        geometry[0],
                        geometry[1],
                        geometry[2],
                        geometry[3]};
    return kiln__launch_1d(dev, "pool", "avgpool_fwd", args, 7, n);
}

static kiln_status pool_backward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    if (a->grad_inputs == NULL || a->grad_inputs[0] == NULL)
        return KILN_OK;
    pool_geometry g = pool_geometry_of(a->params, &a->inputs[0]->shape, &a->output->shape);
    uint32_t n = (uint32_t)kiln_tensor_count(a->inputs[0]);
    kiln__arg geometry[] = {kiln__arg_u32x4(g.in), kiln__arg_u32x4(g.out), kiln__arg_u32x4(g.size),
                            kiln__arg_u32x4(g.stride)};
    if (pool_kind(op) == POOL_MAX && is_2x2(&g))
        return launch_2x2(dev, "maxpool2x2_bwd_x", &g, a->grad_output, a->saved[0],
                          a->grad_inputs[0], 1, !kiln__grad_fresh(a, 0));
    if (pool_kind(op) == POOL_MAX) {
        /* Disjoint windows (the usual stride = size): a scatter over the outputs, a quarter of
         * the work-items of a 2x2 pool's gather over the inputs and no window search. */
        bool disjoint =
            g.stride[0] >= g.size[0] && g.stride[1] >= g.size[1] && g.stride[2] >= g.size[2];
        uint32_t items = disjoint ? (uint32_t)kiln_tensor_count(a->grad_output) : n;
        kiln__arg args[] = {KILN__ARG_T(a->grad_output),
                            KILN__ARG_T(a->saved[0]),
                            KILN__ARG_T(a->grad_inputs[0]),
                            KILN__ARG_UINT(items),
                            geometry[0],
                            geometry[1],
                            geometry[2],
                            geometry[3]};
        return kiln__launch_1d(dev, "pool", disjoint ? "maxpool_bwd_x_disjoint" : "maxpool_bwd_x",
                               args, 8, items);
    }
    kiln__arg args[] = {KILN__ARG_T(a->grad_output),
                        KILN__ARG_T(a->grad_inputs[0]),
                        KILN__ARG_UINT(n),
                        geometry[0],
                        geometry[1],
                        geometry[2],
                        geometry[3]};
    return kiln__launch_1d(dev, "pool", "avgpool_bwd_x", args, 7, n);
}

/* Max pooling 2 x 2 sets a fresh gradient when its windows cover the input (even sides);
 * every other path adds into it, so kiln_op_backward zero-fills it for them. */
static uint32_t pool_fresh_grads(const kiln_op *op, const kiln_op_args *a)
{
    pool_geometry g = pool_geometry_of(a->params, &a->inputs[0]->shape, &a->output->shape);
    bool covers = is_2x2(&g) && g.in[1] == 2 * g.out[1] && g.in[2] == 2 * g.out[2];
    return pool_kind(op) == POOL_MAX && covers ? 1u : 0u;
}

/* variant = 10 * kind + n_spatial */
#define POOL_OP(symbol, op_name, kind, n_spatial)                                                  \
    const kiln_op symbol = {                                                                       \
        .name = op_name,                                                                           \
        .program = "pool",                                                                         \
        .n_inputs = 1,                                                                             \
        .n_saved = (kind) == POOL_MAX ? 1 : 0,                                                     \
        .params_size = sizeof(kiln_pool_params),                                                   \
        .infer = pool_infer,                                                                       \
        .forward = pool_forward,                                                                   \
        .backward = pool_backward,                                                                 \
        .fresh_grads = pool_fresh_grads,                                                           \
        .variant = 10 * (kind) + (n_spatial),                                                      \
    }

POOL_OP(kiln__op_maxpool2d, "maxpool2d", POOL_MAX, 2);
POOL_OP(kiln__op_maxpool3d, "maxpool3d", POOL_MAX, 3);
POOL_OP(kiln__op_avgpool2d, "avgpool2d", POOL_AVG, 2);
POOL_OP(kiln__op_avgpool3d, "avgpool3d", POOL_AVG, 3);

/* ---- global_avgpool ---- */

static kiln_status global_infer(kiln_context *ctx, const kiln_op *op, const void *params,
                                const kiln_shape *in, int n_in, kiln_shape *out, kiln_shape *saved)
{
    (void)params;
    (void)saved;
    if (in[0].ndim < 3)
        return kiln__shape_error(ctx, op, in, n_in,
                                 "the input must be (N, C, spatial...) with at least one "
                                 "spatial axis");
    out->ndim = 2;
    out->dim[0] = in[0].dim[0];
    out->dim[1] = in[0].dim[1];
    return KILN_OK;
}

/* The output's shape with the spatial axes kept as 1, as kiln__reduce_to aligns shapes from
 * the right: (N, C, 1, ..., 1). It has the same layout as (N, C). */
static kiln_shape global_keepdims(const kiln_shape *x)
{
    kiln_shape k = *x;
    for (int i = 2; i < x->ndim; i++)
        k.dim[i] = 1;
    return k;
}

static int64_t global_spatial(const kiln_shape *x)
{
    return kiln_shape_count(x) / (x->dim[0] * x->dim[1]);
}

static kiln_status global_forward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    const kiln_shape *x = &a->inputs[0]->shape;
    kiln_shape k = global_keepdims(x);
    float scale = (float)(1.0 / (double)global_spatial(x));
    return kiln__reduce_to(dev, op, kiln__tensor_buffer(a->inputs[0]), x,
                           kiln__tensor_buffer(a->output), &k, KILN__REDUCE_SUM, scale, false);
}

static kiln_status global_backward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    (void)op;
    if (a->grad_inputs == NULL || a->grad_inputs[0] == NULL)
        return KILN_OK;
    const kiln_shape *x = &a->inputs[0]->shape;
    int64_t spatial = global_spatial(x);
    uint32_t n = (uint32_t)kiln_shape_count(x);
    kiln__arg args[] = {KILN__ARG_T(a->grad_output), KILN__ARG_T(a->grad_inputs[0]),
                        KILN__ARG_UINT(n), KILN__ARG_UINT(spatial),
                        KILN__ARG_FLOAT(1.0 / (double)spatial)};
    return kiln__launch_1d(dev, "pool", "global_avgpool_bwd_x", args, 5, n);
}

const kiln_op kiln__op_global_avgpool = {
    .name = "global_avgpool",
    .program = "pool",
    .n_inputs = 1,
    .infer = global_infer,
    .forward = global_forward,
    .backward = global_backward,
};
