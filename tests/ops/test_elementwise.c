/*
 * The elementwise family on the test device: every case of tests/ref/elementwise.c (forward,
 * backward, reference against finite differences), and shapes that do not broadcast.
 */
#include "support/kiln_test.h"

static void test_checks(void **state)
{
    (void)state;
    kiln_test_run_suite("elementwise");
}

static void test_bad_shapes(void **state)
{
    (void)state;
    kiln_shape mismatched[2] = {{2, {3, 4}}, {1, {5}}};
    kiln_test_expect_infer_error("add", NULL, mismatched, 2, KILN_ERR_SHAPE, "do not broadcast");
    kiln_test_expect_infer_error("div", NULL, mismatched, 2, KILN_ERR_SHAPE, "do not broadcast");
    kiln_shape one[1] = {{2, {3, 4}}};
    kiln_test_expect_infer_error("mul", NULL, one, 1, KILN_ERR_SHAPE, "takes 2 input(s), got 1");
    kiln_axis_params axis = {1};
    kiln_shape bias[2] = {{4, {2, 3, 4, 5}}, {1, {4}}};
    kiln_test_expect_infer_error("bias_add", &axis, bias, 2, KILN_ERR_SHAPE, "(3,)");
    kiln_axis_params far = {7};
    kiln_shape fine[2] = {{2, {2, 3}}, {1, {3}}};
    kiln_test_expect_infer_error("bias_add", &far, fine, 2, KILN_ERR_SHAPE, "axis 7");
    kiln_test_expect_infer_error("scale", NULL, one, 1, KILN_ERR_INVALID_ARGUMENT,
                                 "needs parameters");
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
