/*
 * Dropout on the test device: every case of tests/ref/dropout.c (the device's Philox mask
 * against the host reference bit for bit, forward and regenerated in backward; eval, infer
 * and rate 0 as the identity), the kept fraction over a million elements, masks that change
 * with every counter and key word and repeat for the same ones, and rates infer refuses.
 */
#include <math.h>

#include "support/kiln_test.h"

static void test_checks(void **state)
{
    (void)state;
    kiln_test_run_suite("dropout");
}

static void test_bad_rates(void **state)
{
    (void)state;
    kiln_shape x[1] = {{2, {3, 4}}};
    kiln_dropout_params one = {1.0f};
    kiln_test_expect_infer_error("dropout", &one, x, 1, KILN_ERR_INVALID_ARGUMENT,
                                 "rate 1 must be in [0, 1)");
    kiln_dropout_params negative = {-0.25f};
    kiln_test_expect_infer_error("dropout", &negative, x, 1, KILN_ERR_INVALID_ARGUMENT,
                                 "rate -0.25 must be in [0, 1)");
    kiln_dropout_params nan = {(float)NAN};
    kiln_test_expect_infer_error("dropout", &nan, x, 1, KILN_ERR_INVALID_ARGUMENT,
                                 "must be in [0, 1)");
    kiln_test_expect_infer_error("dropout", NULL, x, 1, KILN_ERR_INVALID_ARGUMENT,
                                 "needs parameters");
    kiln_shape two[2] = {{1, {3}}, {1, {3}}};
    kiln_dropout_params half = {0.5f};
    kiln_test_expect_infer_error("dropout", &half, two, 2, KILN_ERR_SHAPE,
                                 "takes 1 input(s), got 2");
}

int main(void)
{
    kiln_test_require_device();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checks),
        cmocka_unit_test(test_bad_rates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
