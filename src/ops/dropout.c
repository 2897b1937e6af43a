/*
 * Dropout (PyTorch nn.Dropout: inverted dropout, Srivastava et al. 2014). Train mode zeroes
 * each element with probability `rate` and scales the kept ones by 1 / (1 - rate); eval and
 * infer modes are the identity, forward and backward.
 *
 * The mask is never stored: it is a pure function of (seed, step, node, element) through
 * Philox4x32-10 (core/philox.h), so backward regenerates it. cl/dropout.cl documents the exact
 * counter and key layout and the uniform conversion.
 */
#include "ops/op.h"

static kiln_status dropout_infer(kiln_context *ctx, const kiln_op *op, const void *params,
                                 const kiln_shape *in, int n_in, kiln_shape *out, kiln_shape *saved)
{
    const kiln_dropout_params *p = params;
    /* Written so that NaN fails too. Rate 1 would scale by infinity: PyTorch returns zeros
     * there, which is not a useful layer, so it is refused. */
    if (!(p->rate >= 0.0f && p->rate < 1.0f))
        return kiln__param_error(ctx, op, "rate %g must be in [0, 1)", (double)p->rate);
    return kiln__infer_same_shape(ctx, op, params, in, n_in, out, saved);
}

/* Launches the forward or backward kernel: dst = (or +=) src * mask * scale in train mode
 * with rate > 0, dst = (or +=) src otherwise. */
static kiln_status launch(kiln_device *dev, const kiln_op_args *a, const char *kernel,
                          const kiln_tensor *src, kiln_tensor *dst)
{
    const kiln_dropout_params *p = a->params;
    int active = a->mode == KILN_MODE_TRAIN && p->rate > 0.0f;
    uint32_t stream[4] = {0, a->node, (uint32_t)a->step, (uint32_t)(a->step >> 32)};
    uint32_t key[4] = {(uint32_t)a->seed, (uint32_t)(a->seed >> 32), 0, 0};
    float scale = (float)(1.0 / (1.0 - (double)p->rate));
    uint32_t n = (uint32_t)kiln_tensor_count(dst);
    enum { GROUPS = 16 }; /* groups of four elements per work-item (cl/dropout.cl) */
    kiln__arg args[] = {KILN__ARG_T(src),        KILN__ARG_T(dst),      KILN__ARG_UINT(n),
                        kiln__arg_u32x4(stream), kiln__arg_u32x4(key),  KILN__ARG_FLOAT(p->rate),
                        KILN__ARG_FLOAT(scale),  KILN__ARG_INT(active), KILN__ARG_UINT(GROUPS)};
    return kiln__launch_1d(dev, "dropout", kernel, args, 9,
                           ((size_t)n + 4 * GROUPS - 1) / (4 * GROUPS));
}

static kiln_status dropout_forward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    (void)op;
    return launch(dev, a, "dropout_fwd", a->inputs[0], a->output);
}

static kiln_status dropout_backward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    (void)op;
    if (a->grad_inputs == NULL || a->grad_inputs[0] == NULL)
        return KILN_OK;
    return launch(dev, a, "dropout_bwd_x", a->grad_output, a->grad_inputs[0]);
}

const kiln_op kiln__op_dropout = {
    .name = "dropout",
    .program = "dropout",
    .n_inputs = 1,
    .params_size = sizeof(kiln_dropout_params),
    .infer = dropout_infer,
    .forward = dropout_forward,
    .backward = dropout_backward,
};
