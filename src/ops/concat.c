/*
 * concat: 1 to KILN_OP_MAX_INPUTS inputs joined along one axis (kiln_axis_params; negative
 * counts from the end), PyTorch torch.cat semantics: every input has the same rank and the
 * same sizes off the axis. The U-Net skip connection is concat along axis 1 of
 * (N, C1, H, W) and (N, C2, H, W). Backward accumulates each input's slice of the output
 * gradient into that input's gradient. Kernels are in cl/concat.cl.
 */
#include "ops/op.h"

static kiln_status concat_infer(kiln_context *ctx, const kiln_op *op, const void *params,
                                const kiln_shape *in, int n_in, kiln_shape *out, kiln_shape *saved)
{
    (void)saved;
    const kiln_axis_params *p = params;
    int axis = kiln__axis(p->axis, in[0].ndim);
    if (axis < 0)
        return kiln__shape_error(ctx, op, in, n_in, "axis %d is outside the inputs' %d axes",
                                 p->axis, in[0].ndim);
    *out = in[0];
    for (int k = 1; k < n_in; k++) {
        if (in[k].ndim != in[0].ndim)
            return kiln__shape_error(ctx, op, in, n_in,
                                     "input %d has %d axes, input 0 has %d; all must have the "
                                     "same rank",
                                     k, in[k].ndim, in[0].ndim);
        for (int d = 0; d < in[0].ndim; d++) {
            if (d != axis && in[k].dim[d] != in[0].dim[d])
                return kiln__shape_error(ctx, op, in, n_in,
                                         "input %d has size %lld on axis %d, input 0 has %lld; "
                                         "inputs may differ only along axis %d",
                                         k, (long long)in[k].dim[d], d, (long long)in[0].dim[d],
                                         axis);
        }
        out->dim[axis] += in[k].dim[axis];
    }
    return KILN_OK;
}

/* Runs `kernel` once per input k: over input k's elements, between `src` (the input, or the
 * output gradient) and `dst` (the output, or input k's gradient), at input k's offset along
 * the axis. NULL tensors (an unwanted gradient) are skipped. */
static kiln_status concat_launch(kiln_device *dev, const kiln_op_args *a, const char *kernel,
                                 bool backward)
{
    const kiln_axis_params *p = a->params;
    const kiln_shape *y = &a->output->shape;
    int axis = kiln__axis(p->axis, y->ndim);
    uint32_t inner = 1;
    for (int d = axis + 1; d < y->ndim; d++)
        inner *= (uint32_t)y->dim[d];
    uint32_t offset = 0;
    kiln_status rc = KILN_OK;
    for (int k = 0; rc == KILN_OK && k < a->n_inputs; k++) {
        const kiln_tensor *x = a->inputs[k];
        uint32_t axis_x = (uint32_t)x->shape.dim[axis];
        const kiln_tensor *src = backward ? a->grad_output : x;
        kiln_tensor *dst = backward ? a->grad_inputs[k] : a->output;
        if (dst != NULL) {
            uint32_t n = (uint32_t)kiln_tensor_count(x);
            kiln__arg args[] = {KILN__ARG_T(src),       KILN__ARG_T(dst),
                                KILN__ARG_UINT(n),      KILN__ARG_UINT(inner),
                                KILN__ARG_UINT(axis_x), KILN__ARG_UINT(y->dim[axis]),
                                KILN__ARG_UINT(offset)};
            rc = kiln__launch_1d(dev, "concat", kernel, args, 7, n);
        }
        offset += axis_x;
    }
    return rc;
}

static kiln_status concat_forward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    (void)op;
    return concat_launch(dev, a, "concat_fwd", false);
}

static kiln_status concat_backward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    (void)op;
    if (a->grad_inputs == NULL)
        return KILN_OK;
    return concat_launch(dev, a, "concat_bwd_x", true);
}

const kiln_op kiln__op_concat = {
    .name = "concat",
    .program = "concat",
    .n_inputs = KILN_OP_MAX_INPUTS,
    .variadic = true,
    .params_size = sizeof(kiln_axis_params),
    .infer = concat_infer,
    .forward = concat_forward,
    .backward = concat_backward,
};
