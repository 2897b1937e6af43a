/*
 * Dice loss kernels (DESIGN.md, "Dice loss"): probabilities p and targets t of equal shape
 * (N, ...), flattened per sample to K = n / N elements. The per-sample sums I = sum p t,
 * P = sum p and T = sum t come from the shared tree reduction (src/ops/dice.c); these kernels
 * form the products, the per-sample losses and the gradient. Every kernel checks i < n
 * because global sizes are rounded up.
 */
#ifndef KILN_REAL
#define KILN_REAL float
#endif

/* pt[i] = p[i] t[i], the terms of I. p, t, pt: (n,). */
__kernel void dice_fwd_product(__global const KILN_REAL *p, __global const KILN_REAL *t,
                               __global KILN_REAL *pt, const uint n)
{
    const uint i = (uint)get_global_id(0);
    if (i < n)
        pt[i] = p[i] * t[i];
}

/*
 * loss[b] = 1 - (2 I + s) / (P + T + s) for sample b, written as (P + T - 2 I) / (P + T + s)
 * so that masks with nothing in them (I = P = T = 0) give exactly 0. The op averages these
 * over the batch. With s = 0 such a sample is 0/0 = NaN, as the formula says.
 * I, P, T, loss: (N,).
 */
__kernel void dice_fwd(__global const KILN_REAL *inter, __global const KILN_REAL *sum_p,
                       __global const KILN_REAL *sum_t, __global KILN_REAL *loss,
                       const uint n_batch, const KILN_REAL smooth)
{
    const uint b = (uint)get_global_id(0);
    if (b >= n_batch)
        return;
    const KILN_REAL pt = sum_p[b] + sum_t[b];
    loss[b] = (pt - 2 * inter[b]) / (pt + smooth);
}

/*
 * gp[i] += g * d loss / d p[i] = -g inv_batch (2 t U - (2 I + s)) / U^2, U = P + T + s of the
 * sample that element i belongs to (i / per_sample). g: the scalar output gradient.
 * t, gp: (n,); I, P, T: (N,).
 */
__kernel void dice_bwd_p(__global const KILN_REAL *t, __global const KILN_REAL *inter,
                         __global const KILN_REAL *sum_p, __global const KILN_REAL *sum_t,
                         __global const KILN_REAL *g, __global KILN_REAL *gp, const uint n,
                         const uint per_sample, const KILN_REAL smooth, const KILN_REAL inv_batch)
{
    const uint i = (uint)get_global_id(0);
    if (i >= n)
        return;
    const uint b = i / per_sample;
    const KILN_REAL u = sum_p[b] + sum_t[b] + smooth;
    const KILN_REAL d = (2 * t[i] * u - (2 * inter[b] + smooth)) / (u * u);
    gp[i] -= g[0] * inv_batch * d;
}
