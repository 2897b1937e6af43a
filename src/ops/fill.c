/*
 * fill (no inputs: an output of the given shape set to a constant; not differentiable) and
 * copy (y = x; its backward passes the gradient through).
 */
#include "ops/op.h"

static kiln_status fill_infer(kiln_context *ctx, const kiln_op *op, const void *params,
                              const kiln_shape *in, int n_in, kiln_shape *out, kiln_shape *saved)
{
    (void)saved;
    const kiln_fill_params *p = params;
    if (!kiln_shape_is_valid(&p->shape))
        return kiln__shape_error(ctx, op, in, n_in, "the fill shape is invalid");
    *out = p->shape;
    return KILN_OK;
}

static kiln_status fill_forward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    (void)op;
    const kiln_fill_params *p = a->params;
    uint32_t n = (uint32_t)kiln_tensor_count(a->output);
    kiln__arg args[] = {KILN__ARG_T(a->output), KILN__ARG_FLOAT(p->value), KILN__ARG_UINT(n)};
    return kiln__launch_1d(dev, "fill", "fill_fwd", args, 3, n);
}

const kiln_op kiln__op_fill = {
    .name = "fill",
    .program = "fill",
    .n_inputs = 0,
    .params_size = sizeof(kiln_fill_params),
    .infer = fill_infer,
    .forward = fill_forward,
    .backward = NULL, /* a constant has no inputs to differentiate */
};

static kiln_status copy_forward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    (void)op;
    uint32_t n = (uint32_t)kiln_tensor_count(a->output);
    kiln__arg args[] = {KILN__ARG_T(a->inputs[0]), KILN__ARG_T(a->output), KILN__ARG_UINT(n)};
    return kiln__launch_1d(dev, "fill", "copy_fwd", args, 3, n);
}

static kiln_status copy_backward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    (void)op;
    if (a->grad_inputs == NULL || a->grad_inputs[0] == NULL)
        return KILN_OK;
    return kiln__accumulate_grad(dev, a->grad_output, a->grad_inputs[0], 1.0f,
                                 kiln__grad_fresh(a, 0));
}

const kiln_op kiln__op_copy = {
    .name = "copy",
    .program = "fill",
    .n_inputs = 1,
    .infer = kiln__infer_same_shape,
    .forward = copy_forward,
    .backward = copy_backward,
    .writes_fresh_grads = 1u,
};
