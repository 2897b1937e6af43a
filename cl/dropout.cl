/*
 * Inverted dropout (Srivastava et al. 2014; PyTorch nn.Dropout): in train mode element i is
 * kept, and scaled by 1 / (1 - rate), iff a uniform draw is >= rate; otherwise it is zeroed.
 * Eval and infer modes (active = 0) pass values through.
 *
 * The draw is counter-based, so backward regenerates the mask instead of storing it:
 *   counter = (i, node, step_lo, step_hi), key = (seed_lo, seed_hi)
 *   word    = Philox4x32-10(counter, key).s0            (the first of the four output words)
 *   u       = (word >> 8) * 2^-24                         (exact in float, in [0, 1))
 * This must stay bit-identical to src/core/philox.c, which the host reference uses.
 */
#ifndef KILN_REAL
#define KILN_REAL float
#endif

/* Philox4x32-10 (Salmon et al., SC 2011), as Random123's philox4x32_R(10, ctr, key). */
inline uint4 philox4x32_10(uint4 ctr, uint2 key)
{
    for (int r = 0; r < 10; r++) {
        if (r > 0) {
            key.x += 0x9E3779B9u;
            key.y += 0xBB67AE85u;
        }
        const uint hi0 = mul_hi(0xD2511F53u, ctr.x);
        const uint lo0 = 0xD2511F53u * ctr.x;
        const uint hi1 = mul_hi(0xCD9E8D57u, ctr.z);
        const uint lo1 = 0xCD9E8D57u * ctr.z;
        ctr = (uint4)(hi1 ^ ctr.y ^ key.x, lo1, hi0 ^ ctr.w ^ key.y, lo0);
    }
    return ctr;
}

/* The factor element i is multiplied by: `scale` if kept, 0 if dropped, 1 when inactive.
 * stream: (unused, node, step_lo, step_hi); key: (seed_lo, seed_hi, unused, unused). */
inline KILN_REAL dropout_factor(const uint i, const uint4 stream, const uint4 key, const float rate,
                                const KILN_REAL scale, const int active)
{
    if (!active)
        return (KILN_REAL)1;
    const uint4 bits = philox4x32_10((uint4)(i, stream.s1, stream.s2, stream.s3), key.s01);
    const float u = (float)(bits.s0 >> 8) * 0x1p-24f;
    return u >= rate ? scale : (KILN_REAL)0;
}

/* y = x * factor(i). x, y: (n,) */
__kernel void dropout_fwd(__global const KILN_REAL *x, __global KILN_REAL *y, const uint n,
                          const uint4 stream, const uint4 key, const float rate,
                          const KILN_REAL scale, const int active)
{
    const uint i = (uint)get_global_id(0);
    if (i >= n)
        return;
    y[i] = x[i] * dropout_factor(i, stream, key, rate, scale, active);
}

/* gx += g * factor(i), the same mask regenerated. g, gx: (n,) */
__kernel void dropout_bwd_x(__global const KILN_REAL *g, __global KILN_REAL *gx, const uint n,
                            const uint4 stream, const uint4 key, const float rate,
                            const KILN_REAL scale, const int active)
{
    const uint i = (uint)get_global_id(0);
    if (i >= n)
        return;
    gx[i] += g[i] * dropout_factor(i, stream, key, rate, scale, active);
}
