/*
 * Shape-only ops: reshape (to kiln_reshape_params.shape, one dimension of which may be -1,
 * inferred; torch.reshape semantics on a contiguous tensor) and flatten, (N, ...) ->
 * (N, rest) (Keras Flatten: a (N,) input becomes (N, 1)).
 *
 * Neither moves data in principle: both are marked `view`, and the executor gives their output
 * the input's buffer and runs nothing (src/graph/executor.c). Run as ops (by the executor
 * where the input is a parameter, or by callers of kiln_op_forward), forward copies; backward
 * accumulates the gradient, with the copy kernel of cl/fill.cl and kiln__accumulate_grad, so
 * this family has no .cl file of its own.
 */
#include "ops/op.h"

static kiln_status reshape_infer(kiln_context *ctx, const kiln_op *op, const void *params,
                                 const kiln_shape *in, int n_in, kiln_shape *out, kiln_shape *saved)
{
    (void)saved;
    const kiln_reshape_params *p = params;
    const kiln_shape *t = &p->shape;
    if (t->ndim < 0 || t->ndim > KILN_MAX_DIMS)
        return kiln__shape_error(ctx, op, in, n_in,
                                 "the target shape has %d axes; 0 to %d are allowed", t->ndim,
                                 KILN_MAX_DIMS);
    char target[96];
    kiln_shape_format(t, target, sizeof target);
    int64_t count = kiln_shape_count(&in[0]);
    int64_t known = 1;    /* the product of the target's sizes other than -1 */
    bool too_big = false; /* known would pass count (and might overflow): stop multiplying */
    int inferred = -1;
    for (int d = 0; d < t->ndim; d++) {
        if (t->dim[d] == -1) {
            if (inferred >= 0)
                return kiln__shape_error(ctx, op, in, n_in,
                                         "the target shape %s has more than one -1", target);
            inferred = d;
        } else if (t->dim[d] < 1) {
            return kiln__shape_error(ctx, op, in, n_in,
                                     "the target shape %s has size %lld on axis %d; sizes must "
                                     "be >= 1, or -1 once to infer one",
                                     target, (long long)t->dim[d], d);
        } else if (too_big || t->dim[d] > count / known) {
            too_big = true;
        } else {
            known *= t->dim[d];
        }
    }
    if (too_big)
        return kiln__shape_error(ctx, op, in, n_in,
                                 "the target shape %s holds more than the input's %lld elements",
                                 target, (long long)count);
    *out = *t;
    if (inferred >= 0) {
        if (count % known != 0)
            return kiln__shape_error(ctx, op, in, n_in,
                                     "cannot infer the -1 of target shape %s: %lld elements are "
                                     "not a multiple of %lld",
                                     target, (long long)count, (long long)known);
        out->dim[inferred] = count / known;
    } else if (known != count) {
        return kiln__shape_error(ctx, op, in, n_in,
                                 "the target shape %s has %lld elements, the input %lld", target,
                                 (long long)known, (long long)count);
    }
    return KILN_OK;
}

static kiln_status flatten_infer(kiln_context *ctx, const kiln_op *op, const void *params,
                                 const kiln_shape *in, int n_in, kiln_shape *out, kiln_shape *saved)
{
    (void)params;
    (void)saved;
    if (in[0].ndim < 1)
        return kiln__shape_error(ctx, op, in, n_in,
                                 "a scalar has no batch axis; the input must be (N, ...)");
    out->ndim = 2;
    out->dim[0] = in[0].dim[0];
    out->dim[1] = kiln_shape_count(&in[0]) / in[0].dim[0];
    return KILN_OK;
}

/* y = x element for element (same count, same row-major order). */
static kiln_status reshape_forward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    (void)op;
    uint32_t n = (uint32_t)kiln_tensor_count(a->output);
    kiln__arg args[] = {KILN__ARG_T(a->inputs[0]), KILN__ARG_T(a->output), KILN__ARG_UINT(n)};
    return kiln__launch_1d(dev, "fill", "copy_fwd", args, 3, n);
}

/* gx += g, read in the input's shape. */
static kiln_status reshape_backward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    (void)op;
    if (a->grad_inputs == NULL || a->grad_inputs[0] == NULL)
        return KILN_OK;
    return kiln__accumulate_grad(dev, a->grad_output, a->grad_inputs[0], 1.0f,
                                 kiln__grad_fresh(a, 0));
}

const kiln_op kiln__op_reshape = {
    .name = "reshape",
    .program = "fill",
    .n_inputs = 1,
    .params_size = sizeof(kiln_reshape_params),
    .infer = reshape_infer,
    .forward = reshape_forward,
    .backward = reshape_backward,
    .writes_fresh_grads = 1u,
    .view = true,
};

const kiln_op kiln__op_flatten = {
    .name = "flatten",
    .program = "fill",
    .n_inputs = 1,
    .infer = flatten_infer,
    .forward = reshape_forward,
    .backward = reshape_backward,
    .writes_fresh_grads = 1u,
    .view = true,
};
