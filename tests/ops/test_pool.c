/*
 * The pooling family on the test device: every case of tests/ref/pool.c (max and average
 * pooling in 2-D and 3-D, overlapping windows, strides past the window, global average
 * pooling), and inputs or parameters that do not fit.
 */
#include "support/kiln_test.h"

static void test_checks(void **state)
{
    (void)state;
    kiln_test_run_suite("pool");
}

static void test_bad_shapes(void **state)
{
    (void)state;
    kiln_pool_params p2 = {2, {2, 2}, {0, 0}};
    kiln_shape five[1] = {{5, {1, 2, 4, 4, 4}}};
    kiln_test_expect_infer_error("maxpool2d", &p2, five, 1, KILN_ERR_SHAPE, "(N, C, H, W)");
    kiln_shape small[1] = {{4, {1, 2, 1, 4}}};
    kiln_test_expect_infer_error("avgpool2d", &p2, small, 1, KILN_ERR_SHAPE,
                                 "larger than spatial axis 0");
    kiln_pool_params p3 = {3, {2, 2, 2}, {0, 0, 0}};
    kiln_shape four[1] = {{4, {1, 2, 4, 4}}};
    kiln_test_expect_infer_error("maxpool3d", &p3, four, 1, KILN_ERR_SHAPE, "(N, C, D, H, W)");
    kiln_shape flat[1] = {{2, {3, 4}}};
    kiln_test_expect_infer_error("global_avgpool", NULL, flat, 1, KILN_ERR_SHAPE,
                                 "at least one spatial axis");
}

static void test_bad_params(void **state)
{
    (void)state;
    kiln_shape x4[1] = {{4, {1, 2, 6, 6}}};
    kiln_shape x5[1] = {{5, {1, 2, 6, 6, 6}}};
    kiln_pool_params p3 = {3, {2, 2, 2}, {0, 0, 0}};
    kiln_test_expect_infer_error("maxpool2d", &p3, x4, 1, KILN_ERR_INVALID_ARGUMENT,
                                 "n_spatial is 3");
    kiln_pool_params p2 = {2, {2, 2}, {0, 0}};
    kiln_test_expect_infer_error("avgpool3d", &p2, x5, 1, KILN_ERR_INVALID_ARGUMENT,
                                 "n_spatial is 2");
    kiln_pool_params zero = {2, {2, 0}, {0, 0}};
    kiln_test_expect_infer_error("avgpool2d", &zero, x4, 1, KILN_ERR_INVALID_ARGUMENT,
                                 "window size 0");
    kiln_pool_params negative = {3, {2, 2, 2}, {1, -1, 1}};
    kiln_test_expect_infer_error("maxpool3d", &negative, x5, 1, KILN_ERR_INVALID_ARGUMENT,
                                 "stride -1");
    kiln_test_expect_infer_error("maxpool2d", NULL, x4, 1, KILN_ERR_INVALID_ARGUMENT,
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
