/*
 * softmax and log_softmax along one axis (kiln_axis_params, negative counts from the end),
 * PyTorch semantics (torch.softmax / torch.log_softmax with `dim`), for any shape of up to
 * KILN_MAX_DIMS axes with the axis anywhere.
 *
 * The input is seen as (OUTER, C, INNER), C the softmax axis; a "row" is the C elements of
 * one (outer, inner) pair, and the per-row statistics form the reduced shape R (x with C set
 * to 1; ROWS = OUTER * INNER elements). Numerically stable: the row maximum m is subtracted
 * before exp, so logits of any size give finite results. Both m and the row sum
 * s = sum exp(x - m) come from kiln__reduce_to (a work-group tree per row, compensated sums),
 * never from one work-item's serial loop over a long row; the per-element work is in
 * cl/softmax.cl.
 *
 * kiln__reduce_to writes from the start of its destination buffer, so the steps are ordered
 * around that:
 *   forward     ws[0, ROWS) = max; y = exp(x - m); [log_softmax: ws[ROWS, 2 ROWS) = m];
 *               ws[0, ROWS) = sum y; then y /= s, or y = (x - m) - log s
 *   softmax'    ws[ROWS, ROWS + N) = gx (the prior gradient); gx = g y; ws[0, ROWS) = sum gx;
 *               gx = prior + y (g - sum(g y))
 *   log_softmax' ws[0, ROWS) = sum g; gx += g - exp(y) sum(g)
 * softmax's backward borrows gx as the source of its reduction (reduce_to needs a source
 * and a destination in different buffers), keeping the prior values in the workspace.
 */
#include "ops/op.h"

enum { SM_SOFTMAX, SM_LOG_SOFTMAX };

/* x seen as (OUTER, C, INNER) around the softmax axis. */
typedef struct layout {
    kiln_shape x;       /* the input's shape; a scalar is taken as (1,) */
    kiln_shape reduced; /* R: x with the axis set to 1 */
    uint32_t n, c, inner, rows;
} layout;

/* False when `axis` names no axis of x. A scalar accepts axis 0 or -1, as PyTorch does. */
static bool layout_of(const kiln_shape *x, int axis, layout *out)
{
    out->x = *x;
    if (x->ndim == 0) {
        out->x.ndim = 1;
        out->x.dim[0] = 1;
    }
    int a = kiln__axis(axis, out->x.ndim);
    if (a < 0)
        return false;
    int64_t inner = 1;
    for (int d = a + 1; d < out->x.ndim; d++)
        inner *= out->x.dim[d];
    out->reduced = out->x;
    out->reduced.dim[a] = 1;
    out->n = (uint32_t)kiln_shape_count(&out->x);
    out->c = (uint32_t)out->x.dim[a];
    out->inner = (uint32_t)inner;
    out->rows = out->n / out->c;
    return true;
}

static kiln_status softmax_infer(kiln_context *ctx, const kiln_op *op, const void *params,
                                 const kiln_shape *in, int n_in, kiln_shape *out, kiln_shape *saved)
{
    (void)saved;
    const kiln_axis_params *p = params;
    layout l;
    if (!layout_of(&in[0], p->axis, &l)) {
        int ndim = in[0].ndim > 0 ? in[0].ndim : 1;
        return kiln__shape_error(ctx, op, in, n_in,
                                 "axis %d is outside the input's %d axes (valid: %d to %d)",
                                 p->axis, in[0].ndim, -ndim, ndim - 1);
    }
    *out = in[0];
    return KILN_OK;
}

/* Floats: the row statistics, plus the prior gradient (softmax backward) or the stashed
 * maximum (log_softmax forward). */
static size_t softmax_workspace(const kiln_op *op, const void *params, const kiln_shape *in,
                                int n_in)
{
    (void)n_in;
    const kiln_axis_params *p = params;
    layout l;
    if (p == NULL || !layout_of(&in[0], p->axis, &l))
        return 0;
    size_t extra = op->variant == SM_SOFTMAX ? l.n : l.rows;
    return ((size_t)l.rows + extra) * sizeof(float);
}

/* The argument tail every per-element kernel of cl/softmax.cl takes. */
#define LAYOUT_ARGS(l)                                                                             \
    KILN__ARG_UINT((l).n), KILN__ARG_UINT((l).c), KILN__ARG_UINT((l).inner),                       \
        KILN__ARG_UINT((l).rows)

static kiln_status softmax_forward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    const kiln_axis_params *p = a->params;
    layout l;
    layout_of(&a->inputs[0]->shape, p->axis, &l);
    const kiln_buffer *x = kiln__tensor_buffer(a->inputs[0]);
    const kiln_buffer *y = kiln__tensor_buffer(a->output);
    const kiln_buffer *ws = a->workspace;
    kiln_status rc =
        kiln__reduce_to(dev, op, x, &l.x, ws, &l.reduced, KILN__REDUCE_MAX, 1.0f, false);
    if (rc == KILN_OK) {
        kiln__arg args[] = {KILN__ARG_BUF(x), KILN__ARG_BUF(ws), KILN__ARG_BUF(y), LAYOUT_ARGS(l)};
        rc = kiln__launch_1d(dev, "softmax", "softmax_exp_fwd", args, 7, l.n);
    }
    if (rc == KILN_OK && op->variant == SM_LOG_SOFTMAX) {
        kiln__arg args[] = {KILN__ARG_BUF(ws), KILN__ARG_UINT(l.rows)};
        rc = kiln__launch_1d(dev, "softmax", "log_softmax_keep_max_fwd", args, 2, l.rows);
    }
    if (rc == KILN_OK)
        rc = kiln__reduce_to(dev, op, y, &l.x, ws, &l.reduced, KILN__REDUCE_SUM, 1.0f, false);
    if (rc == KILN_OK) {
        kiln__arg args[] = {KILN__ARG_BUF(x), KILN__ARG_BUF(ws), KILN__ARG_BUF(y), LAYOUT_ARGS(l)};
        rc = kiln__launch_1d(dev, "softmax",
                             op->variant == SM_SOFTMAX ? "softmax_fwd" : "log_softmax_fwd", args, 7,
                             l.n);
    }
    return rc;
}

static kiln_status softmax_backward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    const kiln_axis_params *p = a->params;
    if (a->grad_inputs == NULL || a->grad_inputs[0] == NULL)
        return KILN_OK;
    layout l;
    layout_of(&a->inputs[0]->shape, p->axis, &l);
    const kiln_buffer *y = kiln__tensor_buffer(a->output);
    const kiln_buffer *g = kiln__tensor_buffer(a->grad_output);
    const kiln_buffer *gx = kiln__tensor_buffer(a->grad_inputs[0]);
    const kiln_buffer *ws = a->workspace;
    kiln__arg args[] = {KILN__ARG_BUF(y), KILN__ARG_BUF(g), KILN__ARG_BUF(gx), KILN__ARG_BUF(ws),
                        LAYOUT_ARGS(l)};
    kiln_status rc = KILN_OK;
    if (op->variant == SM_SOFTMAX) {
        rc = kiln__launch_1d(dev, "softmax", "softmax_stash_bwd", args, 8, l.n);
        if (rc == KILN_OK)
            rc = kiln__reduce_to(dev, op, gx, &l.x, ws, &l.reduced, KILN__REDUCE_SUM, 1.0f, false);
    } else {
        rc = kiln__reduce_to(dev, op, g, &l.x, ws, &l.reduced, KILN__REDUCE_SUM, 1.0f, false);
    }
    if (rc == KILN_OK)
        rc = kiln__launch_1d(dev, "softmax",
                             op->variant == SM_SOFTMAX ? "softmax_bwd_x" : "log_softmax_bwd_x",
                             args, 8, l.n);
    return rc;
}

#define SOFTMAX_OP(symbol, op_name, code)                                                          \
    const kiln_op symbol = {                                                                       \
        .name = op_name,                                                                           \
        .program = "softmax",                                                                      \
        .n_inputs = 1,                                                                             \
        .params_size = sizeof(kiln_axis_params),                                                   \
        .infer = softmax_infer,                                                                    \
        .workspace = softmax_workspace,                                                            \
        .forward = softmax_forward,                                                                \
        .backward = softmax_backward,                                                              \
        .variant = code,                                                                           \
    }

SOFTMAX_OP(kiln__op_softmax, "softmax", SM_SOFTMAX);
SOFTMAX_OP(kiln__op_log_softmax, "log_softmax", SM_LOG_SOFTMAX);
