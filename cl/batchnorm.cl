/*
 * Batch normalisation (Ioffe and Szegedy 2015; PyTorch BatchNorm1d/2d/3d): the elementwise
 * and per-channel steps. The per-channel sums over the batch and spatial axes are not here:
 * src/ops/batchnorm.c takes them with the shared compensated tree reduction (cl/reduce.cl).
 *
 * Element i of x (N, C, S), S the product of the spatial axes (1 for (N, C)), belongs to
 * channel (i / S) % C. mean and invstd: (C,), the statistics forward saves (batch ones in
 * train mode, running ones otherwise).
 */
#ifndef KILN_REAL
#define KILN_REAL float
#endif

inline uint channel_of(const uint i, const uint n_channels, const uint spatial)
{
    return (i / spatial) % n_channels;
}

/* t = (x - mean[c])^2, whose per-channel mean is the biased batch variance. x, t: (N, C, S) */
__kernel void batchnorm_fwd_sqdev(__global const KILN_REAL *x, __global const KILN_REAL *mean,
                                  __global KILN_REAL *t, const uint n, const uint n_channels,
                                  const uint spatial)
{
    const uint i = (uint)get_global_id(0);
    if (i >= n)
        return;
    const KILN_REAL d = x[i] - mean[channel_of(i, n_channels, spatial)];
    t[i] = d * d;
}

/*
 * Per channel, the statistics to normalise with. train = 1: `invstd` holds the biased batch
 * variance on entry and 1 / sqrt(var + eps) on exit, and the running statistics move towards
 * the batch ones: running = (1 - momentum) running + momentum batch, the variance unbiased
 * by `unbias` = n / (n - 1). train = 0: mean and invstd come from the running statistics,
 * which stay untouched. All: (C,)
 */
__kernel void batchnorm_fwd_stats(__global KILN_REAL *mean, __global KILN_REAL *invstd,
                                  __global KILN_REAL *running_mean, __global KILN_REAL *running_var,
                                  const uint n_channels, const KILN_REAL eps,
                                  const KILN_REAL momentum, const KILN_REAL unbias, const int train)
{
    const uint c = (uint)get_global_id(0);
    if (c >= n_channels)
        return;
    if (train) {
        const KILN_REAL var = invstd[c];
        running_mean[c] = (1 - momentum) * running_mean[c] + momentum * mean[c];
        running_var[c] = (1 - momentum) * running_var[c] + momentum * (var * unbias);
        invstd[c] = 1 / sqrt(var + eps);
    } else {
        mean[c] = running_mean[c];
        invstd[c] = 1 / sqrt(running_var[c] + eps);
    }
}

/* y = gamma[c] (x - mean[c]) invstd[c] + beta[c]. x, y: (N, C, S) */
__kernel void batchnorm_fwd(__global const KILN_REAL *x, __global const KILN_REAL *mean,
                            __global const KILN_REAL *invstd, __global const KILN_REAL *gamma,
                            __global const KILN_REAL *beta, __global KILN_REAL *y, const uint n,
                            const uint n_channels, const uint spatial)
{
    const uint i = (uint)get_global_id(0);
    if (i >= n)
        return;
    const uint c = channel_of(i, n_channels, spatial);
    y[i] = gamma[c] * ((x[i] - mean[c]) * invstd[c]) + beta[c];
}

/* t = g xhat, xhat = (x - mean[c]) invstd[c]: the terms of d gamma. g, x, t: (N, C, S) */
__kernel void batchnorm_bwd_term(__global const KILN_REAL *g, __global const KILN_REAL *x,
                                 __global const KILN_REAL *mean, __global const KILN_REAL *invstd,
                                 __global KILN_REAL *t, const uint n, const uint n_channels,
                                 const uint spatial)
{
    const uint i = (uint)get_global_id(0);
    if (i >= n)
        return;
    const uint c = channel_of(i, n_channels, spatial);
    t[i] = g[i] * ((x[i] - mean[c]) * invstd[c]);
}

/*
 * Train mode, through the batch statistics (PyTorch's batch_norm_backward):
 *   gx += gamma invstd (g - sum_g / count - xhat sum_gxhat / count)
 * with sum_g = sum of g and sum_gxhat = sum of g xhat per channel over the count = N S
 * values. g, x, gx: (N, C, S); sums: (C,)
 */
__kernel void batchnorm_bwd_x(__global const KILN_REAL *g, __global const KILN_REAL *x,
                              __global const KILN_REAL *mean, __global const KILN_REAL *invstd,
                              __global const KILN_REAL *gamma, __global const KILN_REAL *sums,
                              const uint sums_at, __global KILN_REAL *gx, const uint n,
                              const uint n_channels, const uint spatial,
                              const KILN_REAL inv_count)
{
    const uint i = (uint)get_global_id(0);
    if (i >= n)
        return;
    const uint c = channel_of(i, n_channels, spatial);
    /* sums[sums_at + c]: the channel's sum of g; sums[sums_at + C + c]: its sum of g xhat. */
    const KILN_REAL sum_g = sums[sums_at + c];
    const KILN_REAL sum_gxhat = sums[sums_at + n_channels + c];
    const KILN_REAL xhat = (x[i] - mean[c]) * invstd[c];
    gx[i] += gamma[c] * invstd[c] * (g[i] - sum_g * inv_count - xhat * (sum_gxhat * inv_count));
}

/* Eval and infer modes: the statistics are constants, so gx += g gamma invstd. (N, C, S) */
__kernel void batchnorm_bwd_x_eval(__global const KILN_REAL *g, __global const KILN_REAL *invstd,
                                   __global const KILN_REAL *gamma, __global KILN_REAL *gx,
                                   const uint n, const uint n_channels, const uint spatial)
{
    const uint i = (uint)get_global_id(0);
    if (i >= n)
        return;
    const uint c = channel_of(i, n_channels, spatial);
    gx[i] += g[i] * (gamma[c] * invstd[c]);
}

/* grad[c] += sums[at + c]: moves a per-channel sum from the workspace tail into the gamma or
 * beta gradient. (C,) */
__kernel void batchnorm_bwd_add_sums(__global const KILN_REAL *sums, const uint at,
                                     __global KILN_REAL *grad, const uint n_channels)
{
    const uint c = (uint)get_global_id(0);
    if (c < n_channels)
        grad[c] += sums[at + c];
}
