/*
 * fill and copy on the test device: every case of tests/ref/fill.c, a bad fill shape, and
 * that fill is explicitly not differentiable.
 */
#include "support/kiln_test.h"

static void test_checks(void **state)
{
    (void)state;
    kiln_test_run_suite("fill");
}

static void test_bad_input(void **state)
{
    (void)state;
    kiln_fill_params bad = {.shape = {2, {3, 0}}, .value = 1};
    kiln_test_expect_infer_error("fill", &bad, NULL, 0, KILN_ERR_SHAPE, "fill shape is invalid");
    kiln_shape two[2] = {{1, {3}}, {1, {3}}};
    kiln_test_expect_infer_error("copy", NULL, two, 2, KILN_ERR_SHAPE, "takes 1 input(s), got 2");
    const kiln_op *fill = kiln_op_find("fill");
    assert_non_null(fill);
    assert_false(kiln_op_has_backward(fill));
}

int main(void)
{
    kiln_test_require_device();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checks),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
