/*
 * The activations on the test device: every case of tests/ref/activation.c (forward,
 * backward, reference against finite differences, and +-inf/NaN inputs), a bad leaky_relu
 * slope and missing parameters.
 */
#include <math.h>

#include "support/kiln_test.h"

static void test_checks(void **state)
{
    (void)state;
    kiln_test_run_suite("activation");
}

static void test_bad_inputs(void **state)
{
    (void)state;
    kiln_shape x[1] = {{2, {3, 4}}};
    kiln_test_expect_infer_error("leaky_relu", NULL, x, 1, KILN_ERR_INVALID_ARGUMENT,
                                 "needs parameters");
    kiln_leaky_relu_params nan_slope = {NAN};
    kiln_test_expect_infer_error("leaky_relu", &nan_slope, x, 1, KILN_ERR_INVALID_ARGUMENT,
                                 "slope must be finite");
    kiln_shape two[2] = {{2, {3, 4}}, {2, {3, 4}}};
    kiln_test_expect_infer_error("gelu", NULL, two, 2, KILN_ERR_SHAPE, "takes 1 input(s), got 2");
    kiln_test_expect_infer_error("sigmoid", NULL, two, 0, KILN_ERR_SHAPE,
                                 "takes 1 input(s), got 0");
}

int main(void)
{
    kiln_test_require_device();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checks),
        cmocka_unit_test(test_bad_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
