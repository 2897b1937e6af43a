/*
 * Tests for core/sha256: the FIPS 180-4 / NIST example vectors (empty, "abc", the 448- and
 * 896-bit messages, one million 'a' fed in uneven chunks), agreement between one-call and
 * split streaming hashes at every split point of every prefix of a 200-byte pattern (covering
 * the padding boundaries at 55/56/63/64/119/120 bytes, also pinned to reference digests), the
 * NULL/zero-length update contract, and lower-case hex formatting.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/sha256.h"

#include <string.h>

enum { PATTERN_SIZE = 200 };

/* Hashes a NUL-terminated string in one call and returns its hex digest in hex. */
static void hex_of_string(const char *s, char hex[KILN_SHA256_HEX_SIZE])
{
    uint8_t digest[KILN_SHA256_DIGEST_SIZE];
    kiln__sha256_buffer(s, strlen(s), digest);
    kiln__sha256_hex(digest, hex);
}

/* A deterministic byte pattern; the multiplier is odd so all 256 byte values appear and the
 * bytes are not a simple counter that could mask an ordering mistake. */
static void fill_pattern(uint8_t *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        buf[i] = (uint8_t)(i * 31u + 7u);
    }
}

static void test_empty(void **state)
{
    (void)state;
    char hex[KILN_SHA256_HEX_SIZE];
    hex_of_string("", hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

    /* An empty update with a NULL pointer is part of the contract and must change nothing. */
    kiln__sha256 h;
    uint8_t digest[KILN_SHA256_DIGEST_SIZE];
    kiln__sha256_init(&h);
    kiln__sha256_update(&h, NULL, 0);
    kiln__sha256_final(&h, digest);
    kiln__sha256_hex(digest, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_abc(void **state)
{
    (void)state;
    char hex[KILN_SHA256_HEX_SIZE];
    hex_of_string("abc", hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_448_bit(void **state)
{
    (void)state;
    char hex[KILN_SHA256_HEX_SIZE];
    hex_of_string("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_896_bit(void **state)
{
    (void)state;
    char hex[KILN_SHA256_HEX_SIZE];
    hex_of_string("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
                  "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
                  hex);
    assert_string_equal(hex, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

static void test_million_a(void **state)
{
    (void)state;
    /* Chunk sizes straddle the 64-byte block so that updates start and end at every kind of
     * offset within a block, not just block-aligned ones. */
    static const size_t chunks[] = {1, 63, 64, 65, 1000};
    static uint8_t a_buf[1000];
    memset(a_buf, 'a', sizeof a_buf);

    kiln__sha256 h;
    kiln__sha256_init(&h);
    size_t left = 1000000;
    for (size_t i = 0; left > 0; i++) {
        size_t n = chunks[i % (sizeof chunks / sizeof chunks[0])];
        if (n > left) {
            n = left;
        }
        kiln__sha256_update(&h, a_buf, n);
        left -= n;
    }
    assert_int_equal(h.n_bytes, 1000000);

    uint8_t digest[KILN_SHA256_DIGEST_SIZE];
    char hex[KILN_SHA256_HEX_SIZE];
    kiln__sha256_final(&h, digest);
    kiln__sha256_hex(digest, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* Every prefix length from 0 to 200 bytes, hashed in one call, must equal the same prefix
 * hashed as two updates split at every possible point. This walks the buffering code through
 * every fill level of a partial block and every padding case. */
static void test_split_points(void **state)
{
    (void)state;
    uint8_t buf[PATTERN_SIZE];
    fill_pattern(buf, sizeof buf);

    for (size_t len = 0; len <= PATTERN_SIZE; len++) {
        uint8_t whole[KILN_SHA256_DIGEST_SIZE];
        kiln__sha256_buffer(buf, len, whole);
        for (size_t split = 0; split <= len; split++) {
            kiln__sha256 h;
            uint8_t parts[KILN_SHA256_DIGEST_SIZE];
            kiln__sha256_init(&h);
            kiln__sha256_update(&h, buf, split);
            kiln__sha256_update(&h, buf + split, len - split);
            kiln__sha256_final(&h, parts);
            assert_memory_equal(whole, parts, sizeof whole);
        }
    }
}

/* Self-consistency alone would miss a padding bug shared by both paths, so the boundary
 * lengths are also pinned to digests computed independently (sha256sum / Python hashlib). */
static void test_pattern_boundaries(void **state)
{
    (void)state;
    static const struct {
        size_t len;
        const char *hex;
    } cases[] = {
        {55, "8aa994584139d128848eeebc4e815639ba5ab6e6e39574195a63ac4f14f7c43b"},
        {56, "ad574708f75c044c9b85de64cb568ee7711ff4f36448c6242f053ba8f6cc2b63"},
        {63, "280ed3e8ff1df845b2e7dfe6ac6cee817bef20e783cc65abc41b818b4d2fe076"},
        {64, "c6ab9724ade5b6a7a1edfffb12f3aa9181351355af8fd08c919952ad211339dd"},
        {119, "3d610547d68216dedf7435a4fb6260353911f6b3fd3f18805ddb8be285d726fe"},
        {120, "1f80156a804cb7862ad113e8200e9d74499723e7c7854d5f48776d3148e09656"},
        {200, "44cae5223d431caed4a9e32271d6abf17c3f2f4abac45fcdb48a99fcc6072a09"},
    };
    uint8_t buf[PATTERN_SIZE];
    fill_pattern(buf, sizeof buf);

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t digest[KILN_SHA256_DIGEST_SIZE];
        char hex[KILN_SHA256_HEX_SIZE];
        kiln__sha256_buffer(buf, cases[i].len, digest);
        kiln__sha256_hex(digest, hex);
        assert_string_equal(hex, cases[i].hex);
    }
}

static void test_hex_format(void **state)
{
    (void)state;
    uint8_t digest[KILN_SHA256_DIGEST_SIZE];
    for (size_t i = 0; i < sizeof digest; i++) {
        digest[i] = (uint8_t)(i * 8u + 1u);
    }
    digest[0] = 0x00;
    digest[31] = 0xff;

    /* Pre-fill with a marker so a missing terminator or a short write would show up. */
    char hex[KILN_SHA256_HEX_SIZE];
    memset(hex, 'X', sizeof hex);
    kiln__sha256_hex(digest, hex);
    assert_int_equal(hex[KILN_SHA256_HEX_SIZE - 1], '\0');
    assert_int_equal(strlen(hex), 64);
    assert_string_equal(hex, "0009111921293139414951596169717981899199a1a9b1b9c1c9d1d9e1e9f1ff");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_abc),
        cmocka_unit_test(test_448_bit),
        cmocka_unit_test(test_896_bit),
        cmocka_unit_test(test_million_a),
        cmocka_unit_test(test_split_points),
        cmocka_unit_test(test_pattern_boundaries),
        cmocka_unit_test(test_hex_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
