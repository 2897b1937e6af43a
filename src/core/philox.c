/*
 * Philox4x32-10 on the host (Salmon et al., SC 2011; the Random123 library's philox4x32_R
 * with R = 10). A round multiplies counter words 0 and 2 by fixed odd constants, keeps both
 * 32-bit halves of each product, and mixes the high halves into words 1 and 3 with the round
 * key; the key advances by a Weyl sequence between rounds.
 */
#include "core/philox.h"

/* One round: (c0, c1, c2, c3) -> (hi(M1 c2) ^ c1 ^ k0, lo(M1 c2), hi(M0 c0) ^ c3 ^ k1, lo(M0 c0)).
 */
static void round_4x32(uint32_t c[4], const uint32_t k[2])
{
    const uint64_t p0 = (uint64_t)KILN__PHILOX_M0 * c[0];
    const uint64_t p1 = (uint64_t)KILN__PHILOX_M1 * c[2];
    const uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    const uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    const uint32_t c1 = c[1], c3 = c[3];
    c[0] = hi1 ^ c1 ^ k[0];
    c[1] = lo1;
    c[2] = hi0 ^ c3 ^ k[1];
    c[3] = lo0;
}

void kiln__philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c[4] = {counter[0], counter[1], counter[2], counter[3]};
    uint32_t k[2] = {key[0], key[1]};
    for (int r = 0; r < 10; r++) {
        if (r > 0) {
            k[0] += KILN__PHILOX_W0;
            k[1] += KILN__PHILOX_W1;
        }
        round_4x32(c, k);
    }
    for (int i = 0; i < 4; i++)
        out[i] = c[i];
}
