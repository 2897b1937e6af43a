/*
 * Batch normalisation on the test device: every case of tests/ref/batchnorm.c (train and eval
 * forward and backward for (N, C), (N, C, L), (N, C, H, W) and (N, C, D, H, W), the running
 * statistics update and their being left alone in eval mode), shapes and parameters that
 * infer must refuse, and the train-mode refusal of a single value per channel.
 */
#include <math.h>

#include "support/kiln_test.h"

static void test_checks(void **state)
{
    (void)state;
    kiln_test_run_suite("batchnorm");
}

static void test_bad_shapes(void **state)
{
    (void)state;
    kiln_batchnorm_params p = {0.1f, 1e-5f};
    kiln_shape flat[5] = {{1, {6}}, {1, {6}}, {1, {6}}, {1, {6}}, {1, {6}}};
    kiln_test_expect_infer_error("batchnorm", &p, flat, 5, KILN_ERR_SHAPE, "got 1 axes");
    kiln_shape deep[5] = {{6, {2, 3, 2, 2, 2, 2}}, {1, {3}}, {1, {3}}, {1, {3}}, {1, {3}}};
    kiln_test_expect_infer_error("batchnorm", &p, deep, 5, KILN_ERR_SHAPE, "got 6 axes");
    kiln_shape gamma[5] = {{4, {2, 3, 4, 4}}, {1, {4}}, {1, {3}}, {1, {3}}, {1, {3}}};
    kiln_test_expect_infer_error("batchnorm", &p, gamma, 5, KILN_ERR_SHAPE,
                                 "gamma (input 1) must have shape (3,)");
    kiln_shape var[5] = {{2, {5, 3}}, {1, {3}}, {1, {3}}, {1, {3}}, {2, {3, 1}}};
    kiln_test_expect_infer_error("batchnorm", &p, var, 5, KILN_ERR_SHAPE,
                                 "running_var (input 4) must have shape (3,)");
    kiln_test_expect_infer_error("batchnorm", &p, var, 4, KILN_ERR_SHAPE,
                                 "takes 5 input(s), got 4");
}

static void test_bad_params(void **state)
{
    (void)state;
    kiln_shape ok[5] = {{2, {5, 3}}, {1, {3}}, {1, {3}}, {1, {3}}, {1, {3}}};
    kiln_batchnorm_params zero_eps = {0.1f, 0.0f};
    kiln_test_expect_infer_error("batchnorm", &zero_eps, ok, 5, KILN_ERR_INVALID_ARGUMENT,
                                 "eps 0 must be positive");
    kiln_batchnorm_params nan_eps = {0.1f, (float)NAN};
    kiln_test_expect_infer_error("batchnorm", &nan_eps, ok, 5, KILN_ERR_INVALID_ARGUMENT,
                                 "must be positive and finite");
    kiln_batchnorm_params big_momentum = {1.5f, 1e-5f};
    kiln_test_expect_infer_error("batchnorm", &big_momentum, ok, 5, KILN_ERR_INVALID_ARGUMENT,
                                 "momentum 1.5 must be in [0, 1]");
    kiln_batchnorm_params negative_momentum = {-0.1f, 1e-5f};
    kiln_test_expect_infer_error("batchnorm", &negative_momentum, ok, 5, KILN_ERR_INVALID_ARGUMENT,
                                 "momentum -0.1");
    kiln_test_expect_infer_error("batchnorm", NULL, ok, 5, KILN_ERR_INVALID_ARGUMENT,
                                 "needs parameters");
}

/* PyTorch refuses to train on one value per channel (no variance to estimate); so do we, in
 * forward, since infer does not know the mode. Eval mode accepts the same shapes. */
static void test_single_value_per_channel(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, NULL);
    const kiln_op *op = kiln_op_find("batchnorm");
    kiln_batchnorm_params p = {0.1f, 1e-5f};
    kiln_shape x = {4, {1, 3, 1, 1}}, c = {1, {3}};
    kiln_tensor *in[5] = {0}, *out = NULL, *saved[2] = {0};
    kiln_buffer *ws = NULL;
    float values[3] = {0.5f, 1.0f, 2.0f};
    assert_int_equal(kiln_tensor_create(dev, &x, KILN_F32, "x", &in[0]), KILN_OK);
    for (int i = 1; i < 5; i++)
        assert_int_equal(kiln_tensor_create(dev, &c, KILN_F32, "stat", &in[i]), KILN_OK);
    for (int i = 0; i < 5; i++)
        assert_int_equal(kiln_tensor_upload(in[i], values, 3), KILN_OK);
    assert_int_equal(kiln_tensor_create(dev, &x, KILN_F32, "y", &out), KILN_OK);
    assert_int_equal(kiln_tensor_create(dev, &c, KILN_F32, "mean", &saved[0]), KILN_OK);
    assert_int_equal(kiln_tensor_create(dev, &c, KILN_F32, "invstd", &saved[1]), KILN_OK);
    assert_int_equal(kiln_buffer_create(dev, kiln_op_workspace_bytes(op, &p, (kiln_shape[]){x}, 1),
                                        "workspace", &ws),
                     KILN_OK);
    kiln_op_args args = {.params = &p,
                         .mode = KILN_MODE_TRAIN,
                         .inputs = in,
                         .n_inputs = 5,
                         .output = out,
                         .saved = saved,
                         .workspace = ws};
    assert_int_equal(kiln_op_forward(dev, op, &args), KILN_ERR_SHAPE);
    const char *message = kiln_context_last_error(ctx);
    assert_contains(message, "'batchnorm'");
    assert_contains(message, "more than one value per channel");
    assert_contains(message, "(1, 3, 1, 1)");
    args.mode = KILN_MODE_EVAL;
    assert_int_equal(kiln_op_forward(dev, op, &args), KILN_OK);
    assert_int_equal(kiln_device_finish(dev), KILN_OK);
    for (int i = 0; i < 5; i++)
        kiln_tensor_destroy(in[i]);
    kiln_tensor_destroy(out);
    kiln_tensor_destroy(saved[0]);
    kiln_tensor_destroy(saved[1]);
    kiln_buffer_destroy(ws);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

int main(void)
{
    kiln_test_require_device();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checks),
        cmocka_unit_test(test_bad_shapes),
        cmocka_unit_test(test_bad_params),
        cmocka_unit_test(test_single_value_per_channel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
