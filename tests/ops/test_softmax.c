/*
 * softmax and log_softmax on the test device: every case of tests/ref/softmax.c (axis first,
 * middle and last, rows past a work-group, logits that overflow exp without the maximum
 * subtracted), bad axes, and the workspace the op declares.
 */
#include "kiln/ops.h"
#include "support/kiln_test.h"

static void test_checks(void **state)
{
    (void)state;
    kiln_test_run_suite("softmax");
}

static void test_bad_axes(void **state)
{
    (void)state;
    kiln_shape x[1] = {{2, {3, 4}}};
    kiln_axis_params past = {2};
    kiln_test_expect_infer_error("softmax", &past, x, 1, KILN_ERR_SHAPE,
                                 "axis 2 is outside the input's 2 axes (valid: -2 to 1)");
    kiln_axis_params before = {-3};
    kiln_test_expect_infer_error("log_softmax", &before, x, 1, KILN_ERR_SHAPE, "axis -3");
    kiln_shape scalar[1] = {{0, {0}}};
    kiln_test_expect_infer_error("softmax", &past, scalar, 1, KILN_ERR_SHAPE, "(valid: -1 to 0)");
    kiln_test_expect_infer_error("softmax", NULL, x, 1, KILN_ERR_INVALID_ARGUMENT,
                                 "needs parameters");
}

/* The forward needs the row statistics (and log_softmax the kept maxima); softmax's
 * backward needs the prior gradient too. (N, C) = (3, 4) along C: 3 rows, 12 elements. */
static void test_workspace(void **state)
{
    (void)state;
    kiln_shape x[1] = {{2, {3, 4}}};
    kiln_axis_params last = {-1};
    assert_int_equal(kiln_op_workspace_bytes(kiln_op_find("softmax"), &last, x, 1),
                     (3 + 12) * sizeof(float));
    assert_int_equal(kiln_op_workspace_bytes(kiln_op_find("log_softmax"), &last, x, 1),
                     (3 + 3) * sizeof(float));
    kiln_axis_params first = {0};
    assert_int_equal(kiln_op_workspace_bytes(kiln_op_find("log_softmax"), &first, x, 1),
                     (4 + 4) * sizeof(float));
}

int main(void)
{
    kiln_test_require_device();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checks),
        cmocka_unit_test(test_bad_axes),
        cmocka_unit_test(test_workspace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
