/*
 * The loss family on the test device: every case of tests/ref/loss.c (softmax cross-entropy
 * with and without label smoothing, bce_with_logits incl. logits far past float's exp range,
 * mse, l1), the NaN contract for out-of-range labels, and bad shapes and parameters.
 */
#include <math.h>

#include "support/kiln_test.h"

static void test_checks(void **state)
{
    (void)state;
    kiln_test_run_suite("loss");
}

static void test_cross_entropy_errors(void **state)
{
    (void)state;
    const char *ce = "softmax_cross_entropy";
    kiln_cross_entropy_params plain = {0.0f};
    kiln_shape flat[2] = {{1, {10}}, {1, {10}}};
    kiln_test_expect_infer_error(ce, &plain, flat, 2, KILN_ERR_SHAPE, "2-D (N, C)");
    kiln_shape short_labels[2] = {{2, {8, 10}}, {1, {7}}};
    kiln_test_expect_infer_error(ce, &plain, short_labels, 2, KILN_ERR_SHAPE, "(8,)");
    kiln_shape matrix_labels[2] = {{2, {8, 10}}, {2, {8, 1}}};
    kiln_test_expect_infer_error(ce, &plain, matrix_labels, 2, KILN_ERR_SHAPE, "(8,)");
    kiln_shape fine[2] = {{2, {8, 10}}, {1, {8}}};
    kiln_cross_entropy_params negative = {-0.1f}, one = {1.0f}, nan = {NAN};
    kiln_test_expect_infer_error(ce, &negative, fine, 2, KILN_ERR_INVALID_ARGUMENT,
                                 "label_smoothing -0.1 must be in [0, 1)");
    kiln_test_expect_infer_error(ce, &one, fine, 2, KILN_ERR_INVALID_ARGUMENT,
                                 "label_smoothing 1 must be in [0, 1)");
    kiln_test_expect_infer_error(ce, &nan, fine, 2, KILN_ERR_INVALID_ARGUMENT, "[0, 1)");
    kiln_test_expect_infer_error(ce, NULL, fine, 2, KILN_ERR_INVALID_ARGUMENT, "needs parameters");
    kiln_test_expect_infer_error(ce, &plain, fine, 1, KILN_ERR_SHAPE, "takes 2 input(s), got 1");
}

static void test_pointwise_shape_errors(void **state)
{
    (void)state;
    static const char *const OPS[] = {"bce_with_logits", "mse", "l1"};
    kiln_shape mismatched[2] = {{2, {3, 4}}, {2, {4, 3}}};
    kiln_shape broadcastable[2] = {{2, {3, 4}}, {1, {4}}};
    for (int i = 0; i < 3; i++) {
        kiln_test_expect_infer_error(OPS[i], NULL, mismatched, 2, KILN_ERR_SHAPE,
                                     "must have equal shapes");
        kiln_test_expect_infer_error(OPS[i], NULL, broadcastable, 2, KILN_ERR_SHAPE,
                                     "must have equal shapes");
    }
}

int main(void)
{
    kiln_test_require_device();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checks),
        cmocka_unit_test(test_cross_entropy_errors),
        cmocka_unit_test(test_pointwise_shape_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
