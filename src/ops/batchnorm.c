/*
 * Batch normalisation (Ioffe and Szegedy 2015) with PyTorch's BatchNorm1d/2d/3d semantics:
 * x (N, C), (N, C, L), (N, C, H, W) or (N, C, D, H, W), one (mean, variance) per channel over
 * the batch and spatial axes. Train mode normalises with the batch statistics and moves the
 * running ones (inputs 3 and 4, updated in place); eval and infer modes normalise with the
 * running statistics and leave them alone. Both save the statistics they used (mean and
 * 1 / sqrt(var + eps)), so backward works in either mode.
 *
 * Per-channel sums go through kiln__reduce_to (compensated tree). The variance takes two
 * passes, mean then the mean of squared deviations, because E[x^2] - E[x]^2 cancels
 * catastrophically when |mean| >> std.
 */
#include <math.h>

#include "ops/op.h"

enum { IN_X, IN_GAMMA, IN_BETA, IN_RUNNING_MEAN, IN_RUNNING_VAR };
enum { SAVED_MEAN, SAVED_INVSTD };

/* x (N, C, S...) seen as (N, C, spatial). */
typedef struct layout {
    uint32_t n;          /* elements of x */
    uint32_t n_channels; /* C */
    uint32_t spatial;    /* product of the axes after C; 1 for (N, C) */
    uint32_t count;      /* values per channel: N * spatial */
    kiln_shape channel;  /* (C, 1, ..., 1): the statistics, right-aligned against x */
} layout;

static layout layout_of(const kiln_shape *x)
{
    layout l;
    l.n = (uint32_t)kiln_shape_count(x);
    l.n_channels = (uint32_t)x->dim[1];
    l.spatial = 1;
    for (int d = 2; d < x->ndim; d++)
        l.spatial *= (uint32_t)x->dim[d];
    l.count = l.n / l.n_channels;
    l.channel = *x;
    l.channel.ndim = x->ndim - 1;
    l.channel.dim[0] = x->dim[1];
    for (int d = 1; d < l.channel.ndim; d++)
        l.channel.dim[d] = 1;
    return l;
}

static kiln_status batchnorm_infer(kiln_context *ctx, const kiln_op *op, const void *params,
                                   const kiln_shape *in, int n_in, kiln_shape *out,
                                   kiln_shape *saved)
{
    static const char *const NAMES[] = {"x", "gamma", "beta", "running_mean", "running_var"};
    const kiln_batchnorm_params *p = params;
    if (!(p->eps > 0.0f && isfinite(p->eps)))
        return kiln__param_error(ctx, op, "eps %g must be positive and finite", (double)p->eps);
    if (!(p->momentum >= 0.0f && p->momentum <= 1.0f))
        return kiln__param_error(ctx, op, "momentum %g must be in [0, 1]", (double)p->momentum);
    if (in[IN_X].ndim < 2 || in[IN_X].ndim > 5)
        return kiln__shape_error(ctx, op, in, n_in,
                                 "x must be (N, C), (N, C, L), (N, C, H, W) or (N, C, D, H, W), "
                                 "got %d axes",
                                 in[IN_X].ndim);
    int64_t c = in[IN_X].dim[1];
    for (int i = IN_GAMMA; i <= IN_RUNNING_VAR; i++) {
        if (in[i].ndim != 1 || in[i].dim[0] != c)
            return kiln__shape_error(ctx, op, in, n_in,
                                     "%s (input %d) must have shape (%lld,), one value per "
                                     "channel of x",
                                     NAMES[i], i, (long long)c);
    }
    *out = in[IN_X];
    saved[SAVED_MEAN] = in[IN_GAMMA];
    saved[SAVED_INVSTD] = in[IN_GAMMA];
    return KILN_OK;
}

/* One float per element of x (squared deviations in forward, g xhat terms in backward), then
 * 2 C floats for backward's per-channel sums of g and of g xhat. */
static size_t batchnorm_workspace(const kiln_op *op, const void *params, const kiln_shape *in,
                                  int n_in)
{
    (void)op;
    (void)params;
    (void)n_in;
    int64_t channels = in[IN_X].ndim >= 2 ? in[IN_X].dim[1] : 1;
    return (size_t)(kiln_shape_count(&in[IN_X]) + 2 * channels) * sizeof(float);
}

/* Sums src (x's shape) per channel into dst (C,): dst (+)= scale * sum. */
static kiln_status channel_sum(kiln_device *dev, const kiln_op *op, const kiln_buffer *src,
                               const kiln_shape *x, const layout *l, const kiln_buffer *dst,
                               float scale, bool accumulate)
{
    return kiln__reduce_to(dev, op, src, x, dst, &l->channel, KILN__REDUCE_SUM, scale, accumulate);
}

/* grad += workspace[at .. at + C): a per-channel sum kept in the workspace tail. */
static kiln_status accumulate_sums(kiln_device *dev, const kiln_buffer *ws, size_t at,
                                   kiln_tensor *grad, uint32_t n_channels)
{
    kiln__arg args[] = {KILN__ARG_BUF(ws), KILN__ARG_UINT(at), KILN__ARG_T(grad),
                        KILN__ARG_UINT(n_channels)};
    return kiln__launch_1d(dev, "batchnorm", "batchnorm_bwd_add_sums", args, 4, n_channels);
}

static kiln_status batchnorm_forward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    const kiln_batchnorm_params *p = a->params;
    const kiln_shape *xs = &a->inputs[IN_X]->shape;
    const kiln_buffer *x = kiln__tensor_buffer(a->inputs[IN_X]);
    const kiln_buffer *mean = kiln__tensor_buffer(a->saved[SAVED_MEAN]);
    const kiln_buffer *invstd = kiln__tensor_buffer(a->saved[SAVED_INVSTD]);
    layout l = layout_of(xs);
    bool train = a->mode == KILN_MODE_TRAIN;
    kiln_status rc = KILN_OK;
    if (train && l.count < 2) {
        char text[96];
        return kiln__error(dev->ctx, KILN_ERR_SHAPE, __func__,
                           "op '%s': train mode needs more than one value per channel to "
                           "estimate a variance (N x spatial = %u); input x %s: use a larger "
                           "batch, or eval mode",
                           op->name, (unsigned)l.count, kiln_shape_format(xs, text, sizeof text));
    }
    float inv_count = (float)(1.0 / (double)l.count);
    if (train) {
        rc = channel_sum(dev, op, x, xs, &l, mean, inv_count, false);
        kiln__arg sq[] = {
            KILN__ARG_BUF(x),    KILN__ARG_BUF(mean),          KILN__ARG_BUF(a->workspace),
            KILN__ARG_UINT(l.n), KILN__ARG_UINT(l.n_channels), KILN__ARG_UINT(l.spatial)};
        if (rc == KILN_OK)
            rc = kiln__launch_1d(dev, "batchnorm", "batchnorm_fwd_sqdev", sq, 6, l.n);
        /* The biased variance, turned into invstd by the stats kernel below. */
        if (rc == KILN_OK)
            rc = channel_sum(dev, op, a->workspace, xs, &l, invstd, inv_count, false);
    }
    float unbias = train ? (float)((double)l.count / (double)(l.count - 1)) : 1.0f;
    kiln__arg stats[] = {KILN__ARG_BUF(mean),
                         KILN__ARG_BUF(invstd),
                         KILN__ARG_T(a->inputs[IN_RUNNING_MEAN]),
                         KILN__ARG_T(a->inputs[IN_RUNNING_VAR]),
                         KILN__ARG_UINT(l.n_channels),
                         KILN__ARG_FLOAT(p->eps),
                         KILN__ARG_FLOAT(p->momentum),
                         KILN__ARG_FLOAT(unbias),
                         KILN__ARG_INT(train ? 1 : 0)};
    if (rc == KILN_OK)
        rc = kiln__launch_1d(dev, "batchnorm", "batchnorm_fwd_stats", stats, 9, l.n_channels);
    kiln__arg norm[] = {KILN__ARG_BUF(x),
                        KILN__ARG_BUF(mean),
                        KILN__ARG_BUF(invstd),
                        KILN__ARG_T(a->inputs[IN_GAMMA]),
                        KILN__ARG_T(a->inputs[IN_BETA]),
                        KILN__ARG_T(a->output),
                        KILN__ARG_UINT(l.n),
                        KILN__ARG_UINT(l.n_channels),
                        KILN__ARG_UINT(l.spatial)};
    if (rc == KILN_OK)
        rc = kiln__launch_1d(dev, "batchnorm", "batchnorm_fwd", norm, 9, l.n);
    return rc;
}

/*
 * Train mode with a wanted x gradient needs the plain per-channel sums of g and g xhat, so
 * they go to the workspace's tail (after the n g xhat terms) and are then added to the gamma
 * and beta gradients. Otherwise the sums accumulate straight into those gradients.
 */
static kiln_status batchnorm_backward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    if (a->grad_inputs == NULL)
        return KILN_OK;
    kiln_tensor *gx = a->grad_inputs[IN_X];
    kiln_tensor *ggamma = a->grad_inputs[IN_GAMMA];
    kiln_tensor *gbeta = a->grad_inputs[IN_BETA];
    const kiln_shape *xs = &a->inputs[IN_X]->shape;
    layout l = layout_of(xs);
    bool train = a->mode == KILN_MODE_TRAIN;
    bool need_sums = train && gx != NULL;
    kiln_status rc = KILN_OK;
    const kiln_buffer *ws = a->workspace;
    size_t at_g = l.n, at_gxhat = (size_t)l.n + l.n_channels; /* workspace tail, elements */
    const kiln_buffer *g = kiln__tensor_buffer(a->grad_output);
    const kiln_buffer *to_beta = need_sums       ? ws
                                 : gbeta != NULL ? kiln__tensor_buffer(gbeta)
                                                 : NULL;
    const kiln_buffer *to_gamma = need_sums        ? ws
                                  : ggamma != NULL ? kiln__tensor_buffer(ggamma)
                                                   : NULL;
    if (to_beta != NULL)
        KILN_CHECK(kiln__reduce_to_at(dev, op, g, xs, to_beta, need_sums ? at_g : 0, &l.channel,
                                      KILN__REDUCE_SUM, 1.0f, !need_sums));
    if (to_gamma != NULL) {
        kiln__arg term[] = {KILN__ARG_BUF(g),
                            KILN__ARG_T(a->inputs[IN_X]),
                            KILN__ARG_T(a->saved[SAVED_MEAN]),
                            KILN__ARG_T(a->saved[SAVED_INVSTD]),
                            KILN__ARG_BUF(a->workspace),
                            KILN__ARG_UINT(l.n),
                            KILN__ARG_UINT(l.n_channels),
                            KILN__ARG_UINT(l.spatial)};
        KILN_CHECK(kiln__launch_1d(dev, "batchnorm", "batchnorm_bwd_term", term, 8, l.n));
        KILN_CHECK(kiln__reduce_to_at(dev, op, a->workspace, xs, to_gamma,
                                      need_sums ? at_gxhat : 0, &l.channel, KILN__REDUCE_SUM,
                                      1.0f, !need_sums));
    }
    if (need_sums) {
        /* gradient += the sums in the workspace tail (a plain channel-wise add). */
        if (gbeta != NULL)
            KILN_CHECK(accumulate_sums(dev, ws, at_g, gbeta, l.n_channels));
        if (ggamma != NULL)
            KILN_CHECK(accumulate_sums(dev, ws, at_gxhat, ggamma, l.n_channels));
        kiln__arg dx[] = {KILN__ARG_BUF(g),
                          KILN__ARG_T(a->inputs[IN_X]),
                          KILN__ARG_T(a->saved[SAVED_MEAN]),
                          KILN__ARG_T(a->saved[SAVED_INVSTD]),
                          KILN__ARG_T(a->inputs[IN_GAMMA]),
                          KILN__ARG_BUF(ws),
                          KILN__ARG_UINT(at_g),
                          KILN__ARG_T(gx),
                          KILN__ARG_UINT(l.n),
                          KILN__ARG_UINT(l.n_channels),
                          KILN__ARG_UINT(l.spatial),
                          KILN__ARG_FLOAT(1.0 / (double)l.count)};
        KILN_CHECK(kiln__launch_1d(dev, "batchnorm", "batchnorm_bwd_x", dx, 12, l.n));
    } else if (gx != NULL) {
        kiln__arg dx[] = {KILN__ARG_BUF(g),
                          KILN__ARG_T(a->saved[SAVED_INVSTD]),
                          KILN__ARG_T(a->inputs[IN_GAMMA]),
                          KILN__ARG_T(gx),
                          KILN__ARG_UINT(l.n),
                          KILN__ARG_UINT(l.n_channels),
                          KILN__ARG_UINT(l.spatial)};
        KILN_CHECK(kiln__launch_1d(dev, "batchnorm", "batchnorm_bwd_x_eval", dx, 7, l.n));
    }
cleanup:
    return rc;
}

const kiln_op kiln__op_batchnorm = {
    .name = "batchnorm",
    .program = "batchnorm",
    .n_inputs = 5,
    .n_saved = 2,
    .params_size = sizeof(kiln_batchnorm_params),
    .no_grad_inputs = (1u << IN_RUNNING_MEAN) | (1u << IN_RUNNING_VAR),
    .infer = batchnorm_infer,
    .forward = batchnorm_forward,
    .backward = batchnorm_backward,
    .workspace = batchnorm_workspace,
};
