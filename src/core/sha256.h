/*
 * SHA-256 (FIPS 180-4) used by Kiln for cache keys and integrity checks on stored artefacts.
 * This header owns the streaming hash state and the hex formatting of a digest. It does not
 * own anything security-sensitive: it is not a password hash, not an HMAC, and makes no
 * constant-time promises, so use it only to name content and to detect corruption.
 */
#ifndef KILN_CORE_SHA256_H
#define KILN_CORE_SHA256_H

#include <stddef.h>
#include <stdint.h>

enum { KILN_SHA256_DIGEST_SIZE = 32, KILN_SHA256_HEX_SIZE = 65 };

/* Streaming state. Callers may place it anywhere (stack, struct member); it owns no memory. */
typedef struct kiln__sha256 {
    uint32_t state[8];
    uint64_t n_bytes; /* total bytes hashed so far */
    uint8_t block[64];
    size_t n_block; /* bytes buffered in block */
} kiln__sha256;

/* Resets h to the FIPS 180-4 initial hash value with nothing hashed yet. */
void kiln__sha256_init(kiln__sha256 *h);

/* Appends n_bytes from data to the message. data may be NULL when n_bytes is 0. */
void kiln__sha256_update(kiln__sha256 *h, const void *data, size_t n_bytes);

/* Pads the message, writes the digest and leaves h unusable until the next init. */
void kiln__sha256_final(kiln__sha256 *h, uint8_t digest[KILN_SHA256_DIGEST_SIZE]);

/* Convenience: hash one buffer. */
void kiln__sha256_buffer(const void *data, size_t n_bytes, uint8_t digest[KILN_SHA256_DIGEST_SIZE]);

/* Lower-case hex with a terminating NUL (65 bytes). */
void kiln__sha256_hex(const uint8_t digest[KILN_SHA256_DIGEST_SIZE],
                      char hex[KILN_SHA256_HEX_SIZE]);

#endif /* KILN_CORE_SHA256_H */
