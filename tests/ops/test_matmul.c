/*
 * The matmul family on the test device: every case of tests/ref/matmul.c (forward, backward
 * and the reference against finite differences, for matmul in all four transpose
 * combinations, batched and shared, and dense with and without bias), and the shapes and
 * input counts that infer must reject.
 */
#include "support/kiln_test.h"

static void test_checks(void **state)
{
    (void)state;
    kiln_test_run_suite("matmul");
}

static void test_matmul_bad_shapes(void **state)
{
    (void)state;
    kiln_matmul_params nn = {false, false}, tn = {true, false};
    kiln_shape inner[2] = {{2, {7, 13}}, {2, {12, 5}}};
    kiln_test_expect_infer_error("matmul", &nn, inner, 2, KILN_ERR_SHAPE,
                                 "inner dimensions differ");
    /* (13, 7) x (13, 5) fits only with a transposed. */
    kiln_shape stored_t[2] = {{2, {13, 7}}, {2, {13, 5}}};
    kiln_test_expect_infer_error("matmul", &nn, stored_t, 2, KILN_ERR_SHAPE, "K = 7");
    kiln_shape fits_nn[2] = {{2, {7, 13}}, {2, {13, 5}}};
    kiln_test_expect_infer_error("matmul", &tn, fits_nn, 2, KILN_ERR_SHAPE, "(a transposed)");
    kiln_shape vector[2] = {{1, {13}}, {2, {13, 5}}};
    kiln_test_expect_infer_error("matmul", &nn, vector, 2, KILN_ERR_SHAPE, "a is 1-D");
    kiln_shape vector_b[2] = {{2, {7, 13}}, {1, {13}}};
    kiln_test_expect_infer_error("matmul", &nn, vector_b, 2, KILN_ERR_SHAPE, "b is 1-D");
    kiln_shape four[2] = {{4, {2, 3, 7, 13}}, {2, {13, 5}}};
    kiln_test_expect_infer_error("matmul", &nn, four, 2, KILN_ERR_SHAPE, "a is 4-D");
    kiln_shape batches[2] = {{3, {3, 7, 13}}, {3, {4, 13, 5}}};
    kiln_test_expect_infer_error("matmul", &nn, batches, 2, KILN_ERR_SHAPE,
                                 "batch sizes differ: a has 3, b has 4");
    kiln_shape b_only[2] = {{2, {7, 13}}, {3, {3, 13, 5}}};
    kiln_test_expect_infer_error("matmul", &nn, b_only, 2, KILN_ERR_SHAPE,
                                 "b is batched but a is not");
    kiln_test_expect_infer_error("matmul", NULL, fits_nn, 2, KILN_ERR_INVALID_ARGUMENT,
                                 "needs parameters");
}

static void test_dense_bad_shapes(void **state)
{
    (void)state;
    kiln_dense_params bias = {true}, no_bias = {false};
    kiln_shape fine[3] = {{2, {7, 13}}, {2, {13, 5}}, {1, {5}}};
    kiln_test_expect_infer_error("dense", &bias, fine, 2, KILN_ERR_SHAPE,
                                 "has_bias is true, so it takes 3 inputs (x, w, b), got 2");
    kiln_test_expect_infer_error("dense", &no_bias, fine, 3, KILN_ERR_SHAPE,
                                 "has_bias is false, so it takes 2 inputs (x, w), got 3");
    kiln_test_expect_infer_error("dense", &bias, fine, 1, KILN_ERR_SHAPE, "got 1");
    kiln_shape wrong_in[3] = {{2, {7, 13}}, {2, {12, 5}}, {1, {5}}};
    kiln_test_expect_infer_error("dense", &bias, wrong_in, 3, KILN_ERR_SHAPE,
                                 "w must have IN = 13 rows");
    kiln_shape wrong_out[3] = {{2, {7, 13}}, {2, {13, 5}}, {1, {6}}};
    kiln_test_expect_infer_error("dense", &bias, wrong_out, 3, KILN_ERR_SHAPE,
                                 "bias must have shape (5,)");
    kiln_shape bias_2d[3] = {{2, {7, 13}}, {2, {13, 5}}, {2, {1, 5}}};
    kiln_test_expect_infer_error("dense", &bias, bias_2d, 3, KILN_ERR_SHAPE,
                                 "bias must have shape (5,)");
    kiln_shape image[2] = {{4, {7, 1, 28, 28}}, {2, {784, 5}}};
    kiln_test_expect_infer_error("dense", &no_bias, image, 2, KILN_ERR_SHAPE, "x is 4-D");
    kiln_test_expect_infer_error("dense", NULL, fine, 3, KILN_ERR_INVALID_ARGUMENT,
                                 "needs parameters");
}

int main(void)
{
    kiln_test_require_device();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checks),
        cmocka_unit_test(test_matmul_bad_shapes),
        cmocka_unit_test(test_dense_bad_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
