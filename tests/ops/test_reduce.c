/*
 * Reductions on the test device: every case of tests/ref/reduce.c, including a million-value
 * sum that a serial float sum would get wrong, and bad axis sets.
 */
#include "support/kiln_test.h"

static void test_checks(void **state)
{
    (void)state;
    kiln_test_run_suite("reduce");
}

static void test_bad_axes(void **state)
{
    (void)state;
    kiln_shape x[1] = {{2, {3, 4}}};
    kiln_reduce_params none = {0, false};
    kiln_test_expect_infer_error("reduce_sum", &none, x, 1, KILN_ERR_SHAPE, "axis mask 0x0");
    kiln_reduce_params past = {0x4, false};
    kiln_test_expect_infer_error("reduce_max", &past, x, 1, KILN_ERR_SHAPE, "axis mask 0x4");
}

int main(void)
{
    kiln_test_require_device();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checks),
        cmocka_unit_test(test_bad_axes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
