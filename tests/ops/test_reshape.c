/*
 * reshape and flatten on the test device: every case of tests/ref/reshape.c (an inferred -1,
 * scalars, a million elements), and target shapes that cannot hold the input.
 */
#include "support/kiln_test.h"

static void test_checks(void **state)
{
    (void)state;
    kiln_test_run_suite("reshape");
}

static void test_bad_shapes(void **state)
{
    (void)state;
    kiln_shape x[1] = {{3, {2, 3, 4}}};
    kiln_reshape_params count = {{2, {5, 4}}};
    kiln_test_expect_infer_error("reshape", &count, x, 1, KILN_ERR_SHAPE,
                                 "(5, 4) has 20 elements, the input 24");
    kiln_reshape_params too_many = {{2, {5, 7}}};
    kiln_test_expect_infer_error("reshape", &too_many, x, 1, KILN_ERR_SHAPE,
                                 "holds more than the input's 24 elements");
    kiln_reshape_params indivisible = {{2, {5, -1}}};
    kiln_test_expect_infer_error("reshape", &indivisible, x, 1, KILN_ERR_SHAPE,
                                 "cannot infer the -1 of target shape (5, -1)");
    kiln_reshape_params two = {{3, {-1, 4, -1}}};
    kiln_test_expect_infer_error("reshape", &two, x, 1, KILN_ERR_SHAPE, "more than one -1");
    kiln_reshape_params zero = {{3, {2, 0, 12}}};
    kiln_test_expect_infer_error("reshape", &zero, x, 1, KILN_ERR_SHAPE, "size 0 on axis 1");
    kiln_reshape_params negative = {{2, {-2, -12}}};
    kiln_test_expect_infer_error("reshape", &negative, x, 1, KILN_ERR_SHAPE, "size -2 on axis 0");
    kiln_reshape_params huge = {{3, {INT64_MAX, INT64_MAX, -1}}};
    kiln_test_expect_infer_error("reshape", &huge, x, 1, KILN_ERR_SHAPE,
                                 "holds more than the input's 24 elements");
    kiln_reshape_params deep = {{7, {1, 1, 1, 1, 1, 1}}};
    kiln_test_expect_infer_error("reshape", &deep, x, 1, KILN_ERR_SHAPE, "has 7 axes");
    kiln_test_expect_infer_error("reshape", NULL, x, 1, KILN_ERR_INVALID_ARGUMENT,
                                 "needs parameters");
    kiln_shape scalar[1] = {{0, {0}}};
    kiln_test_expect_infer_error("flatten", NULL, scalar, 1, KILN_ERR_SHAPE, "no batch axis");
}

int main(void)
{
    kiln_test_require_device();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checks),
        cmocka_unit_test(test_bad_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
