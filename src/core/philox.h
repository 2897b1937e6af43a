/*
 * Philox4x32-10, the counter-based random number generator of Salmon, Moraes, Dror and Shaw,
 * "Parallel random numbers: as easy as 1, 2, 3" (SC 2011), on the host. Dropout draws its mask
 * from it so that the mask is a pure function of (seed, step, node, element): backward
 * regenerates it instead of storing it, and the host reference reproduces the device's bits.
 * cl/dropout.cl carries the same algorithm; tests/core/test_philox.c pins both to Random123's
 * known answers. Not for cryptography.
 */
#ifndef KILN_CORE_PHILOX_H
#define KILN_CORE_PHILOX_H

#include <stdint.h>

/* The Philox4x32 constants (Random123's PHILOX_M4x32_* and PHILOX_W32_*). */
#define KILN__PHILOX_M0 0xD2511F53u /* round multiplier of counter word 0 */
#define KILN__PHILOX_M1 0xCD9E8D57u /* round multiplier of counter word 2 */
#define KILN__PHILOX_W0 0x9E3779B9u /* Weyl increment of key word 0 (golden ratio) */
#define KILN__PHILOX_W1 0xBB67AE85u /* Weyl increment of key word 1 (sqrt(3) - 1) */

/* out = Philox4x32-10(counter, key): ten rounds, the key bumped by the Weyl increments
 * between rounds. `out` may alias `counter`. Pure and thread-safe. */
void kiln__philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);

/* A uniform float in [0, 1) from one output word: its top 24 bits times 2^-24. Every value is
 * exact in float (and double), so a comparison with a float threshold gives the same answer
 * on the host and on any OpenCL device. */
static inline float kiln__philox_uniform(uint32_t word)
{
    return (float)(word >> 8) * 0x1p-24f;
}

#endif
