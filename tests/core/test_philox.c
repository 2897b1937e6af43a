/*
 * Tests for core/philox: Philox4x32-10 against the known answers of Random123's
 * tests/kat_vectors (D. E. Shaw Research; the three "philox4x32 10" lines: counter words,
 * key words -> output words), that the output may alias the counter, that neighbouring
 * counters and keys give unrelated words (a round or key-schedule slip shows here), and the
 * uniform conversion's ends and exactness. The device copy in cl/dropout.cl is checked
 * against this one bit for bit by the dropout suite.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/philox.h"

static const struct {
    uint32_t counter[4];
    uint32_t key[2];
    uint32_t out[4];
} KAT[] = {
    {{0x00000000, 0x00000000, 0x00000000, 0x00000000},
     {0x00000000, 0x00000000},
     {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
    {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
     {0xffffffff, 0xffffffff},
     {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
    {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
     {0xa4093822, 0x299f31d0},
     {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
};

static void test_known_answers(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof KAT / sizeof KAT[0]; k++) {
        uint32_t out[4];
        kiln__philox4x32_10(KAT[k].counter, KAT[k].key, out);
        for (int w = 0; w < 4; w++)
            assert_int_equal(out[w], KAT[k].out[w]);
        /* In place: out aliasing counter. */
        uint32_t c[4] = {KAT[k].counter[0], KAT[k].counter[1], KAT[k].counter[2],
                         KAT[k].counter[3]};
        kiln__philox4x32_10(c, KAT[k].key, c);
        for (int w = 0; w < 4; w++)
            assert_int_equal(c[w], KAT[k].out[w]);
    }
}

static int popcount32(uint32_t v)
{
    int n = 0;
    for (; v != 0; v &= v - 1)
        n++;
    return n;
}

/* Flipping any one input bit changes about half of the 128 output bits (avalanche): over all
 * 192 single-bit flips of the pi vector the mean is within 2 bits of 64 and none is below 32. */
static void test_avalanche(void **state)
{
    (void)state;
    uint32_t base[4];
    kiln__philox4x32_10(KAT[2].counter, KAT[2].key, base);
    long total = 0;
    for (int bit = 0; bit < 192; bit++) {
        uint32_t c[4] = {KAT[2].counter[0], KAT[2].counter[1], KAT[2].counter[2],
                         KAT[2].counter[3]};
        uint32_t k[2] = {KAT[2].key[0], KAT[2].key[1]};
        if (bit < 128)
            c[bit / 32] ^= 1u << (bit % 32);
        else
            k[(bit - 128) / 32] ^= 1u << (bit % 32);
        uint32_t out[4];
        kiln__philox4x32_10(c, k, out);
        int changed = 0;
        for (int w = 0; w < 4; w++)
            changed += popcount32(out[w] ^ base[w]);
        assert_true(changed >= 32);
        total += changed;
    }
    double mean = (double)total / 192.0;
    assert_true(mean > 62.0 && mean < 66.0);
}

static void test_uniform(void **state)
{
    (void)state;
    assert_true(kiln__philox_uniform(0) == 0.0f);
    assert_true(kiln__philox_uniform(0xff) == 0.0f); /* the low 8 bits are dropped */
    assert_true(kiln__philox_uniform(0x100) == 0x1p-24f);
    assert_true(kiln__philox_uniform(0x80000000u) == 0.5f);
    /* The largest value stays below 1: 1 - 2^-24 is a float, not rounded up to 1. */
    assert_true(kiln__philox_uniform(0xffffffffu) == 1.0f - 0x1p-24f);
    assert_true(kiln__philox_uniform(0xffffffffu) < 1.0f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answers),
        cmocka_unit_test(test_avalanche),
        cmocka_unit_test(test_uniform),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
