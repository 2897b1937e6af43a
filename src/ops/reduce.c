/*
 * Reductions: the shared kiln__reduce_to that every op uses to sum or take the maximum over
 * axes (loss means, bias gradients, batch statistics, broadcast backward), and the ops
 * reduce_sum, reduce_mean and reduce_max over an axis set with NumPy's keepdims.
 *
 * Sums are never one long serial float sum: each work-item keeps a compensated partial over a
 * strided slice and the work-group adds the partials as a tree (cl/reduce.cl).
 */
#include <string.h>

#include "ops/op.h"

/* REDUCE_COLUMN_ROWS_MAX: the most rows the column kernel sums serially (see reduce.cl);
 * REDUCE_COLUMN_OUT_MIN: the fewest columns for which it is used (fewer would leave the
 * device idle while each work-item walks its column). */
enum { REDUCE_WG_MAX = 64, REDUCE_COLUMN_ROWS_MAX = 4096, REDUCE_COLUMN_OUT_MIN = 8 };
enum { REDUCE_COLS = 8 }; /* columns per work-item of reduce_sum_cols_fwd (cl/reduce.cl) */

/* Whether the reduction reads src as a row-major (n_reduce, n_out) matrix summed over its
 * rows: one kept axis of stride 1 and one reduced axis of stride n_out. */
static bool column_sum(const uint32_t kdims[4], const uint32_t kst[4], const uint32_t rdims[4],
                       const uint32_t rst[4], uint32_t n_out)
{
    bool kept_flat = kdims[0] == 1 && kdims[1] == 1 && kdims[2] == 1 && kst[3] == 1;
    bool reduced_flat = rdims[0] == 1 && rdims[1] == 1 && rdims[2] == 1 && rst[3] == n_out;
    return kept_flat && reduced_flat && rdims[3] <= REDUCE_COLUMN_ROWS_MAX &&
           n_out >= REDUCE_COLUMN_OUT_MIN;
}

/* Collapses the axes listed in `axes` (source order) to at most four, merging neighbours
 * that are contiguous in the source; fills dims/strides right-aligned. False if > 4 remain. */
static bool collapse(const int64_t *dim, const int64_t *stride, const int *axes, int n_axes,
                     uint32_t dims[4], uint32_t strides[4])
{
    int64_t d[KILN_MAX_DIMS], s[KILN_MAX_DIMS];
    int m = 0;
    for (int k = 0; k < n_axes; k++) {
        int a = axes[k];
        if (m > 0 && s[m - 1] == stride[a] * dim[a]) {
            d[m - 1] *= dim[a];
            s[m - 1] = stride[a];
        } else {
            d[m] = dim[a];
            s[m] = stride[a];
            m++;
        }
    }
    if (m > 4)
        return false;
    for (int i = 0; i < 4; i++) {
        int j = i - (4 - m);
        dims[i] = j >= 0 ? (uint32_t)d[j] : 1;
        strides[i] = j >= 0 ? (uint32_t)s[j] : 0;
    }
    return true;
}

kiln_status kiln__reduce_to(kiln_device *dev, const kiln_op *op, const kiln_buffer *src,
                            const kiln_shape *src_shape, const kiln_buffer *dst,
                            const kiln_shape *dst_shape, kiln__reduce_kind kind, float scale,
                            bool accumulate)
{
    return kiln__reduce_to_at(dev, op, src, src_shape, dst, 0, dst_shape, kind, scale,
                              accumulate);
}

kiln_status kiln__reduce_to_at(kiln_device *dev, const kiln_op *op, const kiln_buffer *src,
                               const kiln_shape *src_shape, const kiln_buffer *dst,
                               size_t dst_at, const kiln_shape *dst_shape,
                               kiln__reduce_kind kind, float scale, bool accumulate)
{
    int64_t stride[KILN_MAX_DIMS];
    kiln_shape_strides(src_shape, stride);
    int kept[KILN_MAX_DIMS], reduced[KILN_MAX_DIMS];
    int n_kept = 0, n_reduced = 0;
    int offset = src_shape->ndim - dst_shape->ndim;
    char a[96], b[96];
    for (int i = 0; i < src_shape->ndim; i++) {
        int j = i - offset;
        int64_t dd = j >= 0 ? dst_shape->dim[j] : 1;
        if (src_shape->dim[i] == 1)
            continue;
        if (dd == 1)
            reduced[n_reduced++] = i;
        else if (dd == src_shape->dim[i])
            kept[n_kept++] = i;
        else
            return kiln__error(dev->ctx, KILN_ERR_INTERNAL, __func__,
                               "op '%s': cannot reduce %s to %s", op->name,
                               kiln_shape_format(src_shape, a, sizeof a),
                               kiln_shape_format(dst_shape, b, sizeof b));
    }
    uint32_t kdims[4], kst[4], rdims[4], rst[4];
    if (offset < 0 || !collapse(src_shape->dim, stride, kept, n_kept, kdims, kst) ||
        !collapse(src_shape->dim, stride, reduced, n_reduced, rdims, rst))
        return kiln__error(dev->ctx, KILN_ERR_UNSUPPORTED, __func__,
                           "op '%s': reducing %s to %s needs more than 4 independent axes",
                           op->name, kiln_shape_format(src_shape, a, sizeof a),
                           kiln_shape_format(dst_shape, b, sizeof b));
    uint32_t n_out = (uint32_t)kiln_shape_count(dst_shape);
    uint32_t n_reduce = (uint32_t)(kiln_shape_count(src_shape) / n_out);
    if ((dst_at + n_out) * sizeof(float) > kiln_buffer_get_size(dst))
        return kiln__error(dev->ctx, KILN_ERR_INTERNAL, __func__,
                           "op '%s': %u results at element %zu overrun a %zu-byte buffer",
                           op->name, (unsigned)n_out, dst_at, kiln_buffer_get_size(dst));
    if (n_reduce == 1) {
        kiln__arg args[] = {KILN__ARG_BUF(src),    KILN__ARG_BUF(dst),
                            KILN__ARG_UINT(n_out), kiln__arg_u32x4(kdims),
                            kiln__arg_u32x4(kst),  KILN__ARG_FLOAT(scale),
                            KILN__ARG_INT(accumulate ? 1 : 0), KILN__ARG_UINT(dst_at)};
        return kiln__launch_1d(dev, "reduce", "reduce_copy_fwd", args, 8, n_out);
    }
    if (kind == KILN__REDUCE_SUM && column_sum(kdims, kst, rdims, rst, n_out)) {
        kiln__arg args[] = {KILN__ARG_BUF(src),       KILN__ARG_BUF(dst),
                            KILN__ARG_UINT(n_reduce), KILN__ARG_UINT(n_out),
                            KILN__ARG_FLOAT(scale),   KILN__ARG_INT(accumulate ? 1 : 0),
                            KILN__ARG_UINT(dst_at)};
        return kiln__launch_1d(dev, "reduce", "reduce_sum_cols_fwd", args, 7,
                               (n_out + REDUCE_COLS - 1) / REDUCE_COLS);
    }
    size_t wg = 1;
    while (wg < REDUCE_WG_MAX && wg < n_reduce && wg * 2 <= dev->info.max_work_group_size)
        wg *= 2;
    kiln__arg args[] = {KILN__ARG_BUF(src),
                        KILN__ARG_BUF(dst),
                        KILN__ARG_UINT(n_reduce),
                        kiln__arg_u32x4(kdims),
                        kiln__arg_u32x4(kst),
                        kiln__arg_u32x4(rdims),
                        kiln__arg_u32x4(rst),
                        KILN__ARG_FLOAT(scale),
                        KILN__ARG_INT(accumulate ? 1 : 0),
                        KILN__ARG_UINT(dst_at),
                        KILN__ARG_LOCAL_BYTES(wg * sizeof(float))};
    size_t global = (size_t)n_out * wg;
    return kiln__launch(dev, "reduce", kind == KILN__REDUCE_SUM ? "reduce_sum_fwd" : "reduce_max_fwd",
                        args, 11, 1, &global, &wg);
}

/* ---- the reduce_* ops ---- */

enum { R_SUM, R_MEAN, R_MAX };

/* The output shape with reduced axes kept as 1 (the layout the kernels write). */
static kiln_shape keepdims_shape(const kiln_shape *x, uint32_t axes)
{
    kiln_shape s = *x;
    for (int i = 0; i < x->ndim; i++) {
        if (axes & (1u << i))
            s.dim[i] = 1;
    }
    return s;
}

static kiln_status reduce_infer(kiln_context *ctx, const kiln_op *op, const void *params,
                                const kiln_shape *in, int n_in, kiln_shape *out,
                                kiln_shape *saved)
{
    (void)saved;
    const kiln_reduce_params *p = params;
    if (p->axes == 0 || (p->axes >> in[0].ndim) != 0)
        return kiln__shape_error(ctx, op, in, n_in,
                                 "axis mask 0x%x must name at least one of the input's %d axes",
                                 (unsigned)p->axes, in[0].ndim);
    kiln_shape k = keepdims_shape(&in[0], p->axes);
    if (p->keepdims) {
        *out = k;
        return KILN_OK;
    }
    memset(out, 0, sizeof *out);
    for (int i = 0; i < in[0].ndim; i++) {
        if ((p->axes & (1u << i)) == 0)
            out->dim[out->ndim++] = in[0].dim[i];
    }
    return KILN_OK;
}

static kiln_status reduce_forward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    const kiln_reduce_params *p = a->params;
    const kiln_shape *x = &a->inputs[0]->shape;
    kiln_shape k = keepdims_shape(x, p->axes);
    float scale = op->variant == R_MEAN
                      ? (float)((double)kiln_shape_count(&k) / (double)kiln_shape_count(x))
                      : 1.0f;
    return kiln__reduce_to(dev, op, kiln__tensor_buffer(a->inputs[0]), x,
                           kiln__tensor_buffer(a->output), &k,
                           op->variant == R_MAX ? KILN__REDUCE_MAX : KILN__REDUCE_SUM, scale,
                           false);
}

static kiln_status reduce_backward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    const kiln_reduce_params *p = a->params;
    if (a->grad_inputs == NULL || a->grad_inputs[0] == NULL)
        return KILN_OK;
    const kiln_shape *x = &a->inputs[0]->shape;
    kiln_shape shapes[1] = {keepdims_shape(x, p->axes)};
    kiln__bcast plan;
    kiln_status rc = kiln__bcast_plan(dev->ctx, op, x, shapes, 1, &plan);
    if (rc != KILN_OK)
        return rc;
    uint32_t n = (uint32_t)kiln_shape_count(x);
    if (op->variant == R_MAX) {
        kiln__arg args[] = {KILN__ARG_T(a->inputs[0]),  KILN__ARG_T(a->output),
                            KILN__ARG_T(a->grad_output), KILN__ARG_T(a->grad_inputs[0]),
                            KILN__ARG_UINT(n),          kiln__arg_u32x4(plan.dims),
                            kiln__arg_u32x4(plan.strides[0])};
        return kiln__launch_1d(dev, "reduce", "reduce_max_bwd_x", args, 7, n);
    }
    float scale = op->variant == R_MEAN
                      ? (float)((double)kiln_shape_count(&shapes[0]) / (double)n)
                      : 1.0f;
    kiln__arg args[] = {KILN__ARG_T(a->grad_output),      KILN__ARG_T(a->grad_inputs[0]),
                        KILN__ARG_UINT(n),                kiln__arg_u32x4(plan.dims),
                        kiln__arg_u32x4(plan.strides[0]), KILN__ARG_FLOAT(scale)};
    return kiln__launch_1d(dev, "reduce", "reduce_sum_bwd_x", args, 6, n);
}

#define REDUCE_OP(symbol, op_name, code)                                                       \
    const kiln_op symbol = {                                                                   \
        .name = op_name,                                                                       \
        .program = "reduce",                                                                   \
        .n_inputs = 1,                                                                         \
        .params_size = sizeof(kiln_reduce_params),                                             \
        .infer = reduce_infer,                                                                 \
        .forward = reduce_forward,                                                             \
        .backward = reduce_backward,                                                           \
        .variant = code,                                                                       \
    }

REDUCE_OP(kiln__op_reduce_sum, "reduce_sum", R_SUM);
REDUCE_OP(kiln__op_reduce_mean, "reduce_mean", R_MEAN);
REDUCE_OP(kiln__op_reduce_max, "reduce_max", R_MAX);
