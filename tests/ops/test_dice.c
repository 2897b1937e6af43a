/*
 * The dice loss on the test device: every case of tests/ref/dice.c (including empty masks,
 * whose loss must be exactly 0), the 128^3 volume whose sums must match double precision to
 * 1e-5, and bad shapes and parameters.
 */
#include "support/kiln_test.h"

static void test_checks(void **state)
{
    (void)state;
    kiln_test_run_suite("dice");
}

static void test_errors(void **state)
{
    (void)state;
    kiln_dice_params smooth = {1.0f}, negative = {-0.5f};
    kiln_shape fine[2] = {{4, {2, 1, 8, 8}}, {4, {2, 1, 8, 8}}};
    kiln_test_expect_infer_error("dice", &negative, fine, 2, KILN_ERR_INVALID_ARGUMENT,
                                 "smooth -0.5 must be >= 0");
    kiln_test_expect_infer_error("dice", NULL, fine, 2, KILN_ERR_INVALID_ARGUMENT,
                                 "needs parameters");
    kiln_shape mismatched[2] = {{4, {2, 1, 8, 8}}, {4, {2, 1, 8, 7}}};
    kiln_test_expect_infer_error("dice", &smooth, mismatched, 2, KILN_ERR_SHAPE,
                                 "must have equal shapes");
    kiln_shape flat[2] = {{1, {64}}, {1, {64}}};
    kiln_test_expect_infer_error("dice", &smooth, flat, 2, KILN_ERR_SHAPE,
                                 "at least 2 dimensions, got 1");
    kiln_shape scalars[2] = {{0, {0}}, {0, {0}}};
    kiln_test_expect_infer_error("dice", &smooth, scalars, 2, KILN_ERR_SHAPE,
                                 "at least 2 dimensions, got 0");
}

int main(void)
{
    kiln_test_require_device();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checks),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
