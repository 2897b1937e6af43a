/*
 * Inverted dropout (Srivastava et al. 2014; PyTorch nn.Dropout): in train mode element i is
 * kept, and scaled by 1 / (1 - rate), iff a uniform draw is >= rate; otherwise it is zeroed.
 * Eval and infer modes (active = 0) pass values through.
 *
 * The draw is counter-based, so backward regenerates the mask instead of storing it; one
 * Philox call serves four consecutive elements:
 *   counter = (i / 4, node, step_lo, step_hi), key = (seed_lo, seed_hi)
 *   word    = Philox4x32-10(counter, key).s[i % 4]     (word i % 4 of the four outputs)
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
        /* One 32x32 -> 64-bit product each (mul_hi plus a multiply compiles to two on CPUs). */
        const ulong p0 = (ulong)0xD2511F53u * ctr.x;
        const ulong p1 = (ulong)0xCD9E8D57u * ctr.z;
        const uint hi0 = (uint)(p0 >> 32), lo0 = (uint)p0;
        const uint hi1 = (uint)(p1 >> 32), lo1 = (uint)p1;
        ctr = (uint4)(hi1 ^ ctr.y ^ key.x, lo1, hi0 ^ ctr.w ^ key.y, lo0);
    }
    return ctr;
}

/* The factor for an element whose draw is `word`: `scale` if kept, 0 if dropped. */
inline KILN_REAL dropout_factor(const uint word, const float rate, const KILN_REAL scale)
{
    const float u = (float)(word >> 8) * 0x1p-24f;
    return u >= rate ? scale : (KILN_REAL)0;
}

/* Work-item w handles `groups` groups of four elements, group j = w * groups + g covering
 * elements 4j .. 4j + 3 (those below n) with the four words of one Philox call, counter
 * (j, node, step_lo, step_hi): dst[i] = (or +=) src[i] * factor. Inactive: the factor is 1.
 * stream: (unused, node, step_lo, step_hi); key: (seed_lo, seed_hi, -, -). Several groups per
 * work-item amortise the per-work-item cost of CPU devices (src/ops/dropout.c chooses). */
#define DROPOUT_BODY(STORE)                                                                        \
    const uint first = (uint)get_global_id(0) * groups;                                            \
    for (uint j = first; j < first + groups; j++) {                                                \
        const uint i0 = 4u * j;                                                                    \
        if (i0 >= n)                                                                               \
            return;                                                                                \
        const uint count = min(4u, n - i0);                                                        \
        if (!active) {                                                                             \
            for (uint k = 0; k < count; k++)                                                       \
                STORE(i0 + k, (KILN_REAL)1);                                                       \
            continue;                                                                              \
        }                                                                                          \
        const uint4 bits = philox4x32_10((uint4)(j, stream.s1, stream.s2, stream.s3), key.s01);   \
        const uint words[4] = {bits.s0, bits.s1, bits.s2, bits.s3};                               \
        for (uint k = 0; k < count; k++)                                                           \
            STORE(i0 + k, dropout_factor(words[k], rate, scale));                                  \
    }

/* y = x * factor(i). x, y: (n,); global size ceil(n / (4 groups)). */
__kernel void dropout_fwd(__global const KILN_REAL *x, __global KILN_REAL *y, const uint n,
                          const uint4 stream, const uint4 key, const float rate,
                          const KILN_REAL scale, const int active, const uint groups)
{
#define FWD_STORE(i, f) y[i] = x[i] * (f)
    DROPOUT_BODY(FWD_STORE)
#undef FWD_STORE
}

/* gx += g * factor(i), the same mask regenerated. g, gx: (n,); global size as forward. */
__kernel void dropout_bwd_x(__global const KILN_REAL *g, __global KILN_REAL *gx, const uint n,
                            const uint4 stream, const uint4 key, const float rate,
                            const KILN_REAL scale, const int active, const uint groups)
{
#define BWD_STORE(i, f) gx[i] += g[i] * (f)
    DROPOUT_BODY(BWD_STORE)
#undef BWD_STORE
}
