/*
 * SHA-256 (FIPS 180-4) for cache keys and integrity checks.
 * This file owns the compression function, the message buffering and padding, and the hex
 * rendering of a digest. It does not own file reading, key derivation or any defence against
 * an adversary: the code is portable and simple rather than fast or constant-time, which is
 * the right trade for naming content and detecting corruption.
 */
#include "core/sha256.h"

#include <string.h>

/* Round constants: the first 32 bits of the fractional parts of the cube roots of the first
 * 64 primes (FIPS 180-4, section 4.2.2). */
static const uint32_t k_round[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u,
    0xab1c5ed5u, 0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu,
    0x9bdc06a7u, 0xc19bf174u, 0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu,
    0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau, 0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u,
    0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u, 0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu,
    0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u, 0xa2bfe8a1u, 0xa81a664bu,
    0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u, 0x19a4c116u,
    0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u,
    0xc67178f2u,
};

/* Initial hash value: the first 32 bits of the fractional parts of the square roots of the
 * first 8 primes (FIPS 180-4, section 5.3.3). */
static const uint32_t k_initial[8] = {
    0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
    0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u,
};

/* Rotation by a count in 1..31 only, so neither shift is ever by 0 or 32 bits, both of which
 * would be undefined or wrong for a 32-bit operand. */
static uint32_t rotr(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32u - n));
}

/* Bytes are assembled one at a time so the code is independent of host endianness and never
 * performs an unaligned load through a cast pointer. */
static uint32_t load_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static void store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Processes one 64-byte block into state (FIPS 180-4, section 6.2.2). */
static void compress(uint32_t state[8], const uint8_t block[64])
{
    uint32_t w[64];
    for (unsigned t = 0; t < 16; t++) {
        w[t] = load_be32(block + 4u * t);
    }
    for (unsigned t = 16; t < 64; t++) {
        uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
        uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }

    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    for (unsigned t = 0; t < 64; t++) {
        uint32_t big_s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = h + big_s1 + ch + k_round[t] + w[t];
        uint32_t big_s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
        uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = big_s0 + maj;
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }

    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
    state[5] += f;
    state[6] += g;
    state[7] += h;
}

void kiln__sha256_init(kiln__sha256 *h)
{
    memcpy(h->state, k_initial, sizeof h->state);
    h->n_bytes = 0;
    memset(h->block, 0, sizeof h->block);
    h->n_block = 0;
}

void kiln__sha256_update(kiln__sha256 *h, const void *data, size_t n_bytes)
{
    /* Returning early keeps a NULL data pointer away from memcpy, whose arguments must be valid
     * even for a zero length. */
    if (n_bytes == 0) {
        return;
    }
    const uint8_t *p = data;
    h->n_bytes += (uint64_t)n_bytes;

    /* Top up a partially filled block first, so whole blocks below can be hashed straight
     * from the caller's memory without an extra copy. */
    if (h->n_block > 0) {
        size_t take = sizeof h->block - h->n_block;
        if (take > n_bytes) {
            take = n_bytes;
        }
        memcpy(h->block + h->n_block, p, take);
        h->n_block += take;
        p += take;
        n_bytes -= take;
        if (h->n_block < sizeof h->block) {
            return;
        }
        compress(h->state, h->block);
        h->n_block = 0;
    }

    while (n_bytes >= sizeof h->block) {
        compress(h->state, p);
        p += sizeof h->block;
        n_bytes -= sizeof h->block;
    }

    if (n_bytes > 0) {
        memcpy(h->block, p, n_bytes);
        h->n_block = n_bytes;
    }
}

void kiln__sha256_final(kiln__sha256 *h, uint8_t digest[KILN_SHA256_DIGEST_SIZE])
{
    /* The length field counts bits; the message length modulo 2^64 bits is what FIPS 180-4
     * specifies, so the wrap-around of the multiplication is intended. */
    uint64_t n_bits = h->n_bytes * 8u;

    /* Append the single 1 bit, then zeros up to 56 bytes into a block. When fewer than 8
     * bytes remain after the 0x80 marker, the length cannot fit and spills into one more
     * block. */
    h->block[h->n_block++] = 0x80u;
    if (h->n_block > 56) {
        memset(h->block + h->n_block, 0, sizeof h->block - h->n_block);
        compress(h->state, h->block);
        h->n_block = 0;
    }
    memset(h->block + h->n_block, 0, 56 - h->n_block);
    for (unsigned i = 0; i < 8; i++) {
        h->block[56 + i] = (uint8_t)(n_bits >> (56u - 8u * i));
    }
    compress(h->state, h->block);

    for (unsigned i = 0; i < 8; i++) {
        store_be32(digest + 4u * i, h->state[i]);
    }

    /* Wipe the state so a stray second final or update is obviously wrong rather than
     * silently continuing from a padded message. */
    memset(h, 0, sizeof *h);
}

void kiln__sha256_buffer(const void *data, size_t n_bytes, uint8_t digest[KILN_SHA256_DIGEST_SIZE])
{
    kiln__sha256 h;
    kiln__sha256_init(&h);
    kiln__sha256_update(&h, data, n_bytes);
    kiln__sha256_final(&h, digest);
}

void kiln__sha256_hex(const uint8_t digest[KILN_SHA256_DIGEST_SIZE], char hex[KILN_SHA256_HEX_SIZE])
{
    static const char k_digits[] = "0123456789abcdef";
    for (size_t i = 0; i < KILN_SHA256_DIGEST_SIZE; i++) {
        hex[2 * i] = k_digits[digest[i] >> 4];
        hex[2 * i + 1] = k_digits[digest[i] & 0x0fu];
    }
    hex[2 * KILN_SHA256_DIGEST_SIZE] = '\0';
}
