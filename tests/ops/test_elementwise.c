/*
 * The elementwise family on the test device: every case of tests/ref/elementwise.c (forward,
 * backward, reference against finite differences), shapes that do not broadcast, and one
 * gradient tensor passed for both inputs and marked fresh.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

/* y = op(x, x) with one gradient tensor gx for both inputs, holding NaN and marked fresh for
 * both: kiln_op_backward must zero it once and let both contributions add, so gx = 2 g for add
 * and 2 x g for mul (setting it twice would leave one contribution, reading it NaN). */
static void check_shared_fresh(kiln_device *dev, const char *name)
{
    enum { N = 37 };
    kiln_shape shape = {1, {N}};
    float x[N], g[N], nan_values[N], got[N];
    for (int i = 0; i < N; i++) {
        x[i] = (float)(i % 7) - 2.5f;
        g[i] = 0.25f * (float)(i % 5) - 0.5f;
        nan_values[i] = NAN;
    }
    kiln_tensor *tx = NULL, *ty = NULL, *tg = NULL, *tgx = NULL;
    assert_int_equal(kiln_tensor_create(dev, &shape, KILN_F32, "x", &tx), KILN_OK);
    assert_int_equal(kiln_tensor_create(dev, &shape, KILN_F32, "y", &ty), KILN_OK);
    assert_int_equal(kiln_tensor_create(dev, &shape, KILN_F32, "g", &tg), KILN_OK);
    assert_int_equal(kiln_tensor_create(dev, &shape, KILN_F32, "gx", &tgx), KILN_OK);
    assert_int_equal(kiln_tensor_upload(tx, x, N), KILN_OK);
    assert_int_equal(kiln_tensor_upload(tg, g, N), KILN_OK);
    assert_int_equal(kiln_tensor_upload(tgx, nan_values, N), KILN_OK);
    kiln_tensor *inputs[2] = {tx, tx}, *grads[2] = {tgx, tgx};
    kiln_op_args args = {.inputs = inputs, .n_inputs = 2, .output = ty};
    const kiln_op *op = kiln_op_find(name);
    assert_int_equal(kiln_op_forward(dev, op, &args), KILN_OK);
    args.grad_output = tg;
    args.grad_inputs = grads;
    args.grad_fresh = 3u;
    assert_int_equal(kiln_op_backward(dev, op, &args), KILN_OK);
    assert_int_equal(kiln_tensor_download(tgx, got, N), KILN_OK);
    bool mul = strcmp(name, "mul") == 0;
    for (int i = 0; i < N; i++)
        assert_float_equal(got[i], 2.0f * g[i] * (mul ? x[i] : 1.0f), 1e-6);
    kiln_tensor_destroy(tx);
    kiln_tensor_destroy(ty);
    kiln_tensor_destroy(tg);
    kiln_tensor_destroy(tgx);
}

static void test_shared_fresh_gradient(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, getenv("KILN_CACHE_DIR"));
    check_shared_fresh(dev, "add");
    check_shared_fresh(dev, "mul");
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

int main(void)
{
    kiln_test_require_device();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checks),
        cmocka_unit_test(test_bad_shapes),
        cmocka_unit_test(test_shared_fresh_gradient),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
