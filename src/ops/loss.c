/*
 * Loss ops with a scalar (ndim 0) mean output: softmax_cross_entropy over class rows (PyTorch
 * CrossEntropyLoss with reduction='mean' and label_smoothing), and the pointwise losses
 * bce_with_logits, mse and l1 (PyTorch BCEWithLogitsLoss, MSELoss, L1Loss, reduction='mean').
 *
 * Forward writes one term per element (per row for the cross-entropy, whose kernel sums a row's
 * classes with compensation) into the workspace (cl/loss.cl) and averages the terms with the
 * shared tree reduction (reduce.c), never a plain serial float sum. Backward reads the
 * scalar output gradient on the device and accumulates into the prediction's gradient (or sets
 * it when fresh);
 * targets and labels take no gradient. The dice loss lives in dice.c.
 */
#include "ops/op.h"

/* The mean of the workspace terms (shape `terms`) into the scalar output. */
static kiln_status mean_into_output(kiln_device *dev, const kiln_op *op, const kiln_op_args *a,
                                    const kiln_shape *terms, int64_t divisor)
{
    kiln_shape scalar = {.ndim = 0};
    return kiln__reduce_to(dev, op, a->workspace, terms, kiln__tensor_buffer(a->output), &scalar,
                           KILN__REDUCE_SUM, (float)(1.0 / (double)divisor), false);
}

/* The pointwise losses' workspace: one term per element. */
static size_t terms_workspace(const kiln_op *op, const void *params, const kiln_shape *in, int n_in)
{
    (void)op;
    (void)params;
    (void)n_in;
    return (size_t)kiln_shape_count(&in[0]) * sizeof(float);
}

/* ---- softmax_cross_entropy: logits (N, C), labels (N,) i32 -> () ----
 * Saved: the row maxima m (N,) and the row sums s = sum_c exp(x_c - m) (N,), from which
 * backward rebuilds the softmax. A label outside [0, C) makes the loss NaN and its row's
 * gradient NaN: PyTorch raises an error there, which a kernel cannot (the data layer is where
 * labels get validated). */

enum { CE_MAX, CE_SUM };

static kiln_status ce_infer(kiln_context *ctx, const kiln_op *op, const void *params,
                            const kiln_shape *in, int n_in, kiln_shape *out, kiln_shape *saved)
{
    const kiln_cross_entropy_params *p = params;
    if (!(p->label_smoothing >= 0.0f && p->label_smoothing < 1.0f))
        return kiln__param_error(ctx, op, "label_smoothing %g must be in [0, 1)",
                                 (double)p->label_smoothing);
    if (in[0].ndim != 2)
        return kiln__shape_error(ctx, op, in, n_in,
                                 "the logits must be 2-D (N, C), got %d dimension(s)", in[0].ndim);
    if (in[1].ndim != 1 || in[1].dim[0] != in[0].dim[0])
        return kiln__shape_error(ctx, op, in, n_in,
                                 "the labels must have shape (%lld,), one per row of the logits",
                                 (long long)in[0].dim[0]);
    out->ndim = 0;
    saved[CE_MAX] = kiln_shape_of(1, in[0].dim);
    saved[CE_SUM] = saved[CE_MAX];
    return KILN_OK;
}

/* The cross-entropy's workspace: one term per row. */
static size_t ce_workspace(const kiln_op *op, const void *params, const kiln_shape *in, int n_in)
{
    (void)op;
    (void)params;
    (void)n_in;
    return (size_t)in[0].dim[0] * sizeof(float);
}

/* One kernel computes each row's maximum, exponential sum and loss term (the terms into the
 * workspace); the shared reduction averages the N terms. */
static kiln_status ce_forward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    const kiln_cross_entropy_params *p = a->params;
    const kiln_shape *x = &a->inputs[0]->shape;
    uint32_t rows = (uint32_t)x->dim[0], classes = (uint32_t)x->dim[1];
    kiln__arg args[] = {KILN__ARG_T(a->inputs[0]),     KILN__ARG_T(a->inputs[1]),
                        KILN__ARG_T(a->saved[CE_MAX]), KILN__ARG_T(a->saved[CE_SUM]),
                        KILN__ARG_BUF(a->workspace),   KILN__ARG_UINT(rows),
                        KILN__ARG_UINT(classes),       KILN__ARG_FLOAT(p->label_smoothing)};
    kiln_status rc = kiln__launch_1d(dev, "loss", "softmax_cross_entropy_rows", args, 8, rows);
    kiln_shape terms = kiln_shape_of(1, x->dim);
    if (rc == KILN_OK)
        rc = mean_into_output(dev, op, a, &terms, x->dim[0]);
    return rc;
}

static kiln_status ce_backward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    (void)op;
    const kiln_cross_entropy_params *p = a->params;
    if (a->grad_inputs == NULL || a->grad_inputs[0] == NULL)
        return KILN_OK;
    const kiln_shape *x = &a->inputs[0]->shape;
    uint32_t n = (uint32_t)kiln_shape_count(x);
    kiln__arg args[] = {KILN__ARG_T(a->inputs[0]),
                        KILN__ARG_T(a->inputs[1]),
                        KILN__ARG_T(a->saved[CE_MAX]),
                        KILN__ARG_T(a->saved[CE_SUM]),
                        KILN__ARG_T(a->grad_output),
                        KILN__ARG_T(a->grad_inputs[0]),
                        KILN__ARG_UINT(n),
                        KILN__ARG_UINT(x->dim[1]),
                        KILN__ARG_FLOAT(p->label_smoothing),
                        KILN__ARG_FLOAT(1.0 / (double)x->dim[0]),
                        KILN__ARG_INT(kiln__grad_fresh(a, 0) ? 0 : 1)};
    return kiln__launch_1d(dev, "loss", "softmax_cross_entropy_bwd_logits", args, 11, n);
}

const kiln_op kiln__op_softmax_cross_entropy = {
    .name = "softmax_cross_entropy",
    .program = "loss",
    .n_inputs = 2,
    .n_saved = 2,
    .params_size = sizeof(kiln_cross_entropy_params),
    .no_grad_inputs = 1u << 1,
    .i32_inputs = 1u << 1,
    .infer = ce_infer,
    .workspace = ce_workspace,
    .forward = ce_forward,
    .backward = ce_backward,
    .writes_fresh_grads = 1u,
};

/* ---- pointwise losses: prediction x and target t of equal shape -> () ---- */

enum { PW_BCE, PW_MSE, PW_L1 };

static const char *const PW_FWD[] = {"bce_with_logits_fwd", "mse_fwd", "l1_fwd"};
static const char *const PW_BWD[] = {"bce_with_logits_bwd_x", "mse_bwd_x", "l1_bwd_x"};

static kiln_status pointwise_infer(kiln_context *ctx, const kiln_op *op, const void *params,
                                   const kiln_shape *in, int n_in, kiln_shape *out,
                                   kiln_shape *saved)
{
    (void)params;
    (void)saved;
    if (!kiln_shape_equal(&in[0], &in[1]))
        return kiln__shape_error(ctx, op, in, n_in,
                                 "the prediction and the target must have equal shapes");
    out->ndim = 0;
    return KILN_OK;
}

static kiln_status pointwise_forward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    const kiln_shape *x = &a->inputs[0]->shape;
    uint32_t n = (uint32_t)kiln_shape_count(x);
    kiln__arg args[] = {KILN__ARG_T(a->inputs[0]), KILN__ARG_T(a->inputs[1]),
                        KILN__ARG_BUF(a->workspace), KILN__ARG_UINT(n)};
    kiln_status rc = kiln__launch_1d(dev, "loss", PW_FWD[op->variant], args, 4, n);
    if (rc == KILN_OK)
        rc = mean_into_output(dev, op, a, x, (int64_t)n);
    return rc;
}

static kiln_status pointwise_backward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    if (a->grad_inputs == NULL || a->grad_inputs[0] == NULL)
        return KILN_OK;
    uint32_t n = (uint32_t)kiln_tensor_count(a->inputs[0]);
    kiln__arg args[] = {KILN__ARG_T(a->inputs[0]),
                        KILN__ARG_T(a->inputs[1]),
                        KILN__ARG_T(a->grad_output),
                        KILN__ARG_T(a->grad_inputs[0]),
                        KILN__ARG_UINT(n),
                        KILN__ARG_FLOAT(1.0 / (double)n),
                        KILN__ARG_INT(kiln__grad_fresh(a, 0) ? 0 : 1)};
    return kiln__launch_1d(dev, "loss", PW_BWD[op->variant], args, 7, n);
}

#define POINTWISE_LOSS(symbol, op_name, code)                                                      \
    const kiln_op symbol = {                                                                       \
        .name = op_name,                                                                           \
        .program = "loss",                                                                         \
        .n_inputs = 2,                                                                             \
        .no_grad_inputs = 1u << 1,                                                                 \
        .infer = pointwise_infer,                                                                  \
        .workspace = terms_workspace,                                                              \
        .forward = pointwise_forward,                                                              \
        .backward = pointwise_backward,                                                            \
        .writes_fresh_grads = 1u,                                                                  \
        .variant = code,                                                                           \
    }

POINTWISE_LOSS(kiln__op_bce_with_logits, "bce_with_logits", PW_BCE);
POINTWISE_LOSS(kiln__op_mse, "mse", PW_MSE);
POINTWISE_LOSS(kiln__op_l1, "l1", PW_L1);
