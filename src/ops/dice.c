/*
 * The dice loss (DESIGN.md, "Dice loss"; the soft Dice coefficient of Milletari et al.,
 * V-Net, 2016): probabilities p and targets t of equal shape (N, ...) with at least two
 * dimensions. Per sample b, over every non-batch axis: I = sum p t, P = sum p, T = sum t;
 * dice = (2 I + s) / (P + T + s); the output is the scalar 1 - mean over the batch.
 *
 * All three sums and the batch mean use the shared tree reduction (reduce.c: compensated
 * partials per work-item, then a work-group tree), never one long serial float sum; a
 * 128^3 volume is two million terms. Saved for backward: I, P and T, each (N,).
 */
#include "ops/op.h"

enum { SAVED_I, SAVED_P, SAVED_T };

static kiln_status dice_infer(kiln_context *ctx, const kiln_op *op, const void *params,
                              const kiln_shape *in, int n_in, kiln_shape *out, kiln_shape *saved)
{
    const kiln_dice_params *p = params;
    if (!(p->smooth >= 0.0f))
        return kiln__param_error(ctx, op, "smooth %g must be >= 0", (double)p->smooth);
    if (in[0].ndim < 2)
        return kiln__shape_error(ctx, op, in, n_in,
                                 "the inputs must be (N, ...) with at least 2 dimensions, "
                                 "got %d",
                                 in[0].ndim);
    if (!kiln_shape_equal(&in[0], &in[1]))
        return kiln__shape_error(ctx, op, in, n_in,
                                 "the probabilities and the targets must have equal shapes");
    out->ndim = 0;
    for (int s = SAVED_I; s <= SAVED_T; s++)
        saved[s] = kiln_shape_of(1, in[0].dim);
    return KILN_OK;
}

/* The product terms of I, then (after the sums) the per-sample losses: n floats. */
static size_t dice_workspace(const kiln_op *op, const void *params, const kiln_shape *in, int n_in)
{
    (void)op;
    (void)params;
    (void)n_in;
    return (size_t)kiln_shape_count(&in[0]) * sizeof(float);
}

static kiln_status dice_forward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    const kiln_dice_params *p = a->params;
    const kiln_shape *x = &a->inputs[0]->shape;
    uint32_t n = (uint32_t)kiln_shape_count(x);
    uint32_t n_batch = (uint32_t)x->dim[0];
    /* (N, 1, ..., 1): the layout of a per-sample sum, aligned with x. */
    kiln_shape per_sample = *x;
    for (int i = 1; i < per_sample.ndim; i++)
        per_sample.dim[i] = 1;
    kiln_shape batch = kiln_shape_of(1, x->dim);
    kiln_shape scalar = {.ndim = 0};

    kiln__arg product[] = {KILN__ARG_T(a->inputs[0]), KILN__ARG_T(a->inputs[1]),
                           KILN__ARG_BUF(a->workspace), KILN__ARG_UINT(n)};
    kiln_status rc = kiln__launch_1d(dev, "dice", "dice_fwd_product", product, 4, n);
    if (rc == KILN_OK)
        rc = kiln__reduce_to(dev, op, a->workspace, x, kiln__tensor_buffer(a->saved[SAVED_I]),
                             &per_sample, KILN__REDUCE_SUM, 1.0f, false);
    for (int k = 0; k < 2 && rc == KILN_OK; k++)
        rc = kiln__reduce_to(dev, op, kiln__tensor_buffer(a->inputs[k]), x,
                             kiln__tensor_buffer(a->saved[SAVED_P + k]), &per_sample,
                             KILN__REDUCE_SUM, 1.0f, false);
    if (rc == KILN_OK) {
        kiln__arg args[] = {KILN__ARG_T(a->saved[SAVED_I]), KILN__ARG_T(a->saved[SAVED_P]),
                            KILN__ARG_T(a->saved[SAVED_T]), KILN__ARG_BUF(a->workspace),
                            KILN__ARG_UINT(n_batch),        KILN__ARG_FLOAT(p->smooth)};
        rc = kiln__launch_1d(dev, "dice", "dice_fwd", args, 6, n_batch);
    }
    if (rc == KILN_OK)
        rc = kiln__reduce_to(dev, op, a->workspace, &batch, kiln__tensor_buffer(a->output), &scalar,
                             KILN__REDUCE_SUM, (float)(1.0 / (double)n_batch), false);
    return rc;
}

static kiln_status dice_backward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    (void)op;
    const kiln_dice_params *p = a->params;
    if (a->grad_inputs == NULL || a->grad_inputs[0] == NULL)
        return KILN_OK;
    const kiln_shape *x = &a->inputs[0]->shape;
    uint32_t n = (uint32_t)kiln_shape_count(x);
    kiln__arg args[] = {KILN__ARG_T(a->inputs[1]),
                        KILN__ARG_T(a->saved[SAVED_I]),
                        KILN__ARG_T(a->saved[SAVED_P]),
                        KILN__ARG_T(a->saved[SAVED_T]),
                        KILN__ARG_T(a->grad_output),
                        KILN__ARG_T(a->grad_inputs[0]),
                        KILN__ARG_UINT(n),
                        KILN__ARG_UINT(n / (uint32_t)x->dim[0]),
                        KILN__ARG_FLOAT(p->smooth),
                        KILN__ARG_FLOAT(1.0 / (double)x->dim[0])};
    return kiln__launch_1d(dev, "dice", "dice_bwd_p", args, 10, n);
}

const kiln_op kiln__op_dice = {
    .name = "dice",
    .program = "dice",
    .n_inputs = 2,
    .n_saved = 3,
    .params_size = sizeof(kiln_dice_params),
    .no_grad_inputs = 1u << 1,
    .infer = dice_infer,
    .workspace = dice_workspace,
    .forward = dice_forward,
    .backward = dice_backward,
};
