/*
 * concat on the test device: every case of tests/ref/concat.c (the U-Net skip shape, 1 to 8
 * inputs, negative axes, sizes of 1), and inputs that do not fit together.
 */
#include "support/kiln_test.h"

static void test_checks(void **state)
{
    (void)state;
    kiln_test_run_suite("concat");
}

static void test_bad_shapes(void **state)
{
    (void)state;
    kiln_axis_params axis1 = {1};
    kiln_shape off_axis[2] = {{4, {2, 3, 5, 7}}, {4, {2, 4, 5, 6}}};
    kiln_test_expect_infer_error("concat", &axis1, off_axis, 2, KILN_ERR_SHAPE,
                                 "input 1 has size 6 on axis 3");
    kiln_shape ranks[2] = {{4, {2, 3, 5, 7}}, {3, {2, 3, 5}}};
    kiln_test_expect_infer_error("concat", &axis1, ranks, 2, KILN_ERR_SHAPE, "same rank");
    kiln_axis_params far = {4};
    kiln_shape fine[2] = {{4, {2, 3, 5, 7}}, {4, {2, 4, 5, 7}}};
    kiln_test_expect_infer_error("concat", &far, fine, 2, KILN_ERR_SHAPE, "axis 4");
    kiln_axis_params below = {-5};
    kiln_test_expect_infer_error("concat", &below, fine, 2, KILN_ERR_SHAPE, "axis -5");
    kiln_shape nine[9];
    for (int i = 0; i < 9; i++)
        nine[i] = fine[0];
    kiln_test_expect_infer_error("concat", &axis1, nine, 9, KILN_ERR_SHAPE,
                                 "takes 1 to 8 input(s), got 9");
    kiln_test_expect_infer_error("concat", &axis1, nine, 0, KILN_ERR_SHAPE,
                                 "takes 1 to 8 input(s), got 0");
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
