/*
 * The upsampling family on the test device: every case of tests/ref/upsample.c (factors 1, 2,
 * 3 and mixed per axis, in 2-D and 3-D), and inputs or parameters that do not fit.
 */
#include "support/kiln_test.h"

static void test_checks(void **state)
{
    (void)state;
    kiln_test_run_suite("upsample");
}

static void test_bad_shapes(void **state)
{
    (void)state;
    kiln_upsample_params u2 = {2, {2, 2}};
    kiln_shape three[1] = {{3, {1, 2, 4}}};
    kiln_test_expect_infer_error("upsample2d", &u2, three, 1, KILN_ERR_SHAPE, "(N, C, H, W)");
    kiln_upsample_params u3 = {3, {2, 2, 2}};
    kiln_shape four[1] = {{4, {1, 2, 4, 4}}};
    kiln_test_expect_infer_error("upsample3d", &u3, four, 1, KILN_ERR_SHAPE, "(N, C, D, H, W)");
}

static void test_bad_params(void **state)
{
    (void)state;
    kiln_shape x4[1] = {{4, {1, 2, 3, 3}}};
    kiln_shape x5[1] = {{5, {1, 2, 3, 3, 3}}};
    kiln_upsample_params u3 = {3, {2, 2, 2}};
    kiln_test_expect_infer_error("upsample2d", &u3, x4, 1, KILN_ERR_INVALID_ARGUMENT,
                                 "n_spatial is 3");
    kiln_upsample_params zero = {3, {2, 0, 2}};
    kiln_test_expect_infer_error("upsample3d", &zero, x5, 1, KILN_ERR_INVALID_ARGUMENT,
                                 "scale 0 on spatial axis 1");
    kiln_upsample_params negative = {2, {-2, 2}};
    kiln_test_expect_infer_error("upsample2d", &negative, x4, 1, KILN_ERR_INVALID_ARGUMENT,
                                 "scale -2");
    kiln_test_expect_infer_error("upsample3d", NULL, x5, 1, KILN_ERR_INVALID_ARGUMENT,
                                 "needs parameters");
}

int main(void)
{
    kiln_test_require_device();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checks),
        cmocka_unit_test(test_bad_shapes),
        cmocka_unit_test(test_bad_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
