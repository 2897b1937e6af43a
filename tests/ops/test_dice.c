/*
 * The dice loss on the test device: every case of tests/ref/dice.c (including empty masks,
 * whose loss must be exactly 0, and single-voxel volumes), the 128^3 volume whose sums must
 * match double precision to 1e-5, a batch mixing an empty, a full and a single-voxel mask whose
 * loss must be the mean of the per-sample losses (not one ratio pooled over the batch), and bad
 * shapes and parameters.
 */
#include <math.h>
#include <stdlib.h>

#include "kiln/ops.h"
#include "support/kiln_test.h"

static void test_checks(void **state)
{
    (void)state;
    kiln_test_run_suite("dice");
}

/* Four volumes of 2x2x2 voxels, smooth 1, exact values for predictions and masks:
 *   0: prediction and mask empty                        dice (0 + 1) / (0 + 0 + 1) = 1
 *   1: prediction and mask full                          (16 + 1) / (8 + 8 + 1)    = 1
 *   2: one voxel in both                                 (2 + 1) / (1 + 1 + 1)     = 1
 *   3: prediction empty, mask full                       (0 + 1) / (0 + 8 + 1)     = 1/9
 * loss = 1 - mean = (8/9) / 4 = 2/9. One ratio over the batch would give 1 - 19/27 = 8/27. */
static void test_mixed_batch(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, getenv("KILN_CACHE_DIR"));
    enum { N = 4, V = 8 };
    float p[N * V] = {0}, t[N * V] = {0};
    for (int v = 0; v < V; v++) {
        p[1 * V + v] = t[1 * V + v] = 1.0f;
        t[3 * V + v] = 1.0f;
    }
    p[2 * V + 5] = t[2 * V + 5] = 1.0f;
    const kiln_op *op = kiln_op_find("dice");
    kiln_dice_params smooth = {1.0f};
    kiln_shape shapes[2] = {{5, {N, 1, 2, 2, 2}}, {5, {N, 1, 2, 2, 2}}};
    kiln_shape out_shape, saved_shapes[KILN_OP_MAX_SAVED];
    assert_int_equal(kiln_op_infer(ctx, op, &smooth, shapes, 2, &out_shape, saved_shapes), KILN_OK);
    kiln_tensor *in[2], *out = NULL, *saved[3];
    const float *host[2] = {p, t};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(kiln_tensor_create(dev, &shapes[i], KILN_F32, "in", &in[i]), KILN_OK);
        assert_int_equal(kiln_tensor_upload(in[i], host[i], N * V), KILN_OK);
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(kiln_tensor_create(dev, &saved_shapes[i], KILN_F32, "saved", &saved[i]),
                         KILN_OK);
    assert_int_equal(kiln_tensor_create(dev, &out_shape, KILN_F32, "loss", &out), KILN_OK);
    kiln_buffer *workspace = NULL;
    size_t ws = kiln_op_workspace_bytes(op, &smooth, shapes, 2);
    if (ws > 0)
        assert_int_equal(kiln_buffer_create(dev, ws, "workspace", &workspace), KILN_OK);
    kiln_op_args args = {.params = &smooth,
                         .inputs = in,
                         .n_inputs = 2,
                         .output = out,
                         .saved = saved,
                         .workspace = workspace};
    assert_int_equal(kiln_op_forward(dev, op, &args), KILN_OK);
    float loss = NAN;
    assert_int_equal(kiln_tensor_download(out, &loss, 1), KILN_OK);
    assert_float_equal(loss, 2.0 / 9.0, 1e-6);
    for (int i = 0; i < 2; i++)
        kiln_tensor_destroy(in[i]);
    for (int i = 0; i < 3; i++)
        kiln_tensor_destroy(saved[i]);
    kiln_tensor_destroy(out);
    kiln_buffer_destroy(workspace);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

static void test_errors(void **state)
{
    (void)state;
    kiln_dice_params smooth = {1.0f}, negative = {-0.5f};
    kiln_shape fine[2] = {{4, {2, 1, 8, 8}}, {4, {2, 1, 8, 8}}};
    kiln_test_expect_infer_error("dice", &negative, fine, 2, KILN_ERR_INVALID_ARGUMENT,
                                 "smooth -0.5 must be >= 0");
    kiln_test_expect_infer_error("dice", NULL, fine, 2, KILN_ERR_INVALID_ARGUMENT,
                                 "needs parameters");
    kiln_shape mismatched[2] = {{4, {2, 1, 8, 8}}, {4, {2, 1, 8, 7}}};
    kiln_test_expect_infer_error("dice", &smooth, mismatched, 2, KILN_ERR_SHAPE,
                                 "must have equal shapes");
    kiln_shape flat[2] = {{1, {64}}, {1, {64}}};
    kiln_test_expect_infer_error("dice", &smooth, flat, 2, KILN_ERR_SHAPE,
                                 "at least 2 dimensions, got 1");
    kiln_shape scalars[2] = {{0, {0}}, {0, {0}}};
    kiln_test_expect_infer_error("dice", &smooth, scalars, 2, KILN_ERR_SHAPE,
                                 "at least 2 dimensions, got 0");
}

int main(void)
{
    kiln_test_require_device();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checks),
        cmocka_unit_test(test_mixed_batch),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
