/*
 * NumPy-style broadcasting for kernels: the broadcast result shape, and a plan that collapses
 * the output and each operand to at most four dimensions with per-operand element strides
 * (0 where an operand is repeated), which kernels receive as uint4 arguments.
 */
#include <string.h>

#include "ops/op.h"

bool kiln__broadcast_shape(const kiln_shape *a, const kiln_shape *b, kiln_shape *out)
{
    int n = a->ndim > b->ndim ? a->ndim : b->ndim;
    memset(out, 0, sizeof *out);
    out->ndim = n;
    for (int i = 0; i < n; i++) {
        int ia = i - (n - a->ndim), ib = i - (n - b->ndim);
        int64_t da = ia >= 0 ? a->dim[ia] : 1, db = ib >= 0 ? b->dim[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return false;
        out->dim[i] = da > db ? da : db;
    }
    return true;
}

kiln_status kiln__bcast_plan(kiln_context *ctx, const kiln_op *op, const kiln_shape *out,
                             const kiln_shape *operands, int n_operands, kiln__bcast *plan)
{
    int64_t dims[KILN_MAX_DIMS];
    int64_t strides[3][KILN_MAX_DIMS];
    int n = 0;
    memset(plan, 0, sizeof *plan);
    plan->n_operands = n_operands;
    for (int i = 0; i < out->ndim; i++) {
        if (out->dim[i] == 1)
            continue; /* size-1 axes contribute nothing to any index */
        dims[n] = out->dim[i];
        for (int k = 0; k < n_operands; k++) {
            const kiln_shape *s = &operands[k];
            int j = i - (out->ndim - s->ndim);
            int64_t row_stride = 1;
            for (int q = j + 1; q < s->ndim; q++)
                row_stride *= s->dim[q];
            strides[k][n] = (j < 0 || s->dim[j] == 1) ? 0 : row_stride;
        }
        n++;
    }
    /* Merge an axis into the next when every operand walks both as one run. */
    int m = 0;
    for (int i = 0; i < n; i++) {
        bool merge = m > 0;
        for (int k = 0; merge && k < n_operands; k++)
            merge = strides[k][m - 1] == strides[k][i] * dims[i];
        if (merge) {
            dims[m - 1] *= dims[i];
            for (int k = 0; k < n_operands; k++)
                strides[k][m - 1] = strides[k][i];
        } else {
            dims[m] = dims[i];
            for (int k = 0; k < n_operands; k++)
                strides[k][m] = strides[k][i];
            m++;
        }
    }
    if (m > 4) {
        char text[96];
        return kiln__error(ctx, KILN_ERR_UNSUPPORTED, __func__,
                           "op '%s': broadcasting to %s needs %d independent axes after "
                           "merging; kernels support 4",
                           op->name, kiln_shape_format(out, text, sizeof text), m);
    }
    /* Right-align into 4 slots; unused leading slots are size 1. */
    for (int s = 0; s < 4; s++) {
        int i = s - (4 - m);
        plan->dims[s] = i >= 0 ? (uint32_t)dims[i] : 1;
        for (int k = 0; k < n_operands; k++)
            plan->strides[k][s] = i >= 0 ? (uint32_t)strides[k][i] : 0;
    }
    return KILN_OK;
}
