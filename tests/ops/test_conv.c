/*
 * The conv family on the test device: every case of tests/ref/conv.c (forward, backward,
 * reference against finite differences), the multi-sample ones again with chunk boundaries
 * inside the batch, all of them again with each form of the column kernels, shapes and parameters
 * that inference must reject with the op and shapes named, and the workspace each path asks for.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>

#include "check/check.h"
#include "support/kiln_test.h"

/* With the default chunk every case here is one chunk (the whole batch: the chunk bound is
 * far larger than these batches). */
static void test_checks(void **state)
{
    (void)state;
    kiln_test_run_suite("conv");
}

static void print_failure(const kiln_check_row *row, void *user)
{
    if (!row->pass)
        fprintf(stderr, "FAIL  %s  %s %s %s: abs %.3g rel %.3g %s\n", (const char *)user, row->op,
                row->shape, row->what, row->max_abs, row->max_rel, row->note);
}

/* Sets (value non-NULL) or clears environment variable `name`. */
static void set_env(const char *name, const char *value)
{
    if (value != NULL)
        assert_int_equal(setenv(name, value, 1), 0);
    else
        assert_int_equal(unsetenv(name), 0);
}

/*
 * The suite again with KILN_CONV_CHUNK and KILN_CONV_FORM set (each unless NULL).
 *
 * A chunk cap keeps the cases with a batch of 2 or more: with 1, every sample is its own
 * chunk; with 3, batches of 4 and 5 end on a partial chunk and a batch of 3 is one full one. A
 * wrong sample offset in the columns, the products or the column gradients shows in the
 * forward or backward rows.
 *
 * A form runs every case with the column kernels and the chunk copy by elements (a GPU's
 * default) or by planes (a CPU's), so each device also checks the form it would not pick.
 */
static void run_with(const char *cap, const char *form)
{
    static kiln_check_case cases[64];
    size_t n = 0;
    const kiln_check_suite *all = kiln_check_find_suite("conv");
    assert_non_null(all);
    for (size_t i = 0; i < all->n_cases; i++) {
        if (cap == NULL || all->cases[i].inputs[0].dim[0] >= 2) {
            assert_true(n < sizeof cases / sizeof cases[0]);
            cases[n++] = all->cases[i];
        }
    }
    char label[64];
    snprintf(label, sizeof label, "chunks of %s, form %s", cap != NULL ? cap : "any",
             form != NULL ? form : "default");
    kiln_check_suite chosen = {.name = "conv again", .cases = cases, .n_cases = n};
    set_env("KILN_CONV_CHUNK", cap);
    set_env("KILN_CONV_FORM", form);
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, getenv("KILN_CACHE_DIR"));
    kiln_check_run run = {.dev = dev, .on_row = print_failure, .user = label};
    kiln_check_run_suite(&run, &chosen);
    fprintf(stderr, "suite conv, %s: %d rows, %d failed\n", label, run.n_rows, run.n_failed);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
    set_env("KILN_CONV_CHUNK", NULL);
    set_env("KILN_CONV_FORM", NULL);
    assert_true(n >= 4 && run.n_rows > 0);
    assert_int_equal(run.n_failed, 0);
}

static void test_chunks_of_one(void **state)
{
    (void)state;
    run_with("1", NULL);
}

static void test_chunks_of_three(void **state)
{
    (void)state;
    run_with("3", NULL);
}

static void test_by_elements(void **state)
{
    (void)state;
    run_with(NULL, "elements");
    run_with("3", "elements");
}

static void test_by_planes(void **state)
{
    (void)state;
    run_with(NULL, "planes");
    run_with("3", "planes");
}

static const kiln_conv_params SAME2 = {2, {1, 1}, {1, 1}, {1, 1}, true};
static const kiln_conv_params SAME3 = {3, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, true};

static void test_bad_shapes(void **state)
{
    (void)state;
    kiln_shape channels[3] = {{4, {2, 3, 7, 5}}, {4, {4, 2, 3, 3}}, {1, {4}}};
    kiln_test_expect_infer_error("conv2d", &SAME2, channels, 3, KILN_ERR_SHAPE,
                                 "x has 3 channels (axis 1) but w expects 2");
    /* A 3x3 kernel with no padding on a 2x5 input: padded height 2 < kernel extent 3. */
    kiln_conv_params valid = {2, {1, 1}, {0, 0}, {1, 1}, true};
    kiln_shape small[3] = {{4, {1, 3, 2, 5}}, {4, {4, 3, 3, 3}}, {1, {4}}};
    kiln_test_expect_infer_error("conv2d", &valid, small, 3, KILN_ERR_SHAPE,
                                 "the dilated kernel spans 3 but the padded input has only 2");
    /* Dilation makes the same kernel too large for a 5-wide input padded by 1. */
    kiln_conv_params dilated = {2, {1, 1}, {1, 1}, {1, 4}, true};
    kiln_shape fits[3] = {{4, {1, 3, 7, 5}}, {4, {4, 3, 3, 3}}, {1, {4}}};
    kiln_test_expect_infer_error("conv2d", &dilated, fits, 3, KILN_ERR_SHAPE,
                                 "spatial axis 1 the dilated kernel spans 9");
    kiln_shape flat_x[3] = {{3, {2, 3, 7}}, {4, {4, 3, 3, 3}}, {1, {4}}};
    kiln_test_expect_infer_error("conv2d", &SAME2, flat_x, 3, KILN_ERR_SHAPE,
                                 "x must have 4 axes (N, C, H, W), it has 3");
    kiln_shape deep_w[3] = {{4, {2, 3, 7, 5}}, {5, {4, 3, 1, 3, 3}}, {1, {4}}};
    kiln_test_expect_infer_error("conv2d", &SAME2, deep_w, 3, KILN_ERR_SHAPE,
                                 "w must have 4 axes (F, C, KH, KW), it has 5");
    kiln_shape x2d_for_3d[3] = {{4, {2, 3, 7, 5}}, {4, {4, 3, 3, 3}}, {1, {4}}};
    kiln_test_expect_infer_error("conv3d", &SAME3, x2d_for_3d, 3, KILN_ERR_SHAPE,
                                 "x must have 5 axes (N, C, D, H, W), it has 4");
    kiln_shape bias[3] = {{4, {2, 3, 7, 5}}, {4, {4, 3, 3, 3}}, {1, {5}}};
    kiln_test_expect_infer_error("conv2d", &SAME2, bias, 3, KILN_ERR_SHAPE,
                                 "the bias must have shape (4,)");
    kiln_shape bias_2d[3] = {{4, {2, 3, 7, 5}}, {4, {4, 3, 3, 3}}, {2, {4, 1}}};
    kiln_test_expect_infer_error("conv2d", &SAME2, bias_2d, 3, KILN_ERR_SHAPE,
                                 "the bias must have shape (4,)");
    /* The input count must follow has_bias both ways. */
    kiln_test_expect_infer_error("conv2d", &SAME2, bias, 2, KILN_ERR_SHAPE,
                                 "has_bias is true, so it takes 3 inputs (x, w, b), got 2");
    kiln_conv_params no_bias = SAME2;
    no_bias.has_bias = false;
    kiln_test_expect_infer_error("conv2d", &no_bias, channels, 3, KILN_ERR_SHAPE,
                                 "has_bias is false, so it takes 2 inputs (x, w), got 3");
    kiln_test_expect_infer_error("conv2d", &SAME2, channels, 1, KILN_ERR_SHAPE, "takes 3 inputs");
}

static void test_bad_params(void **state)
{
    (void)state;
    kiln_shape x2[3] = {{4, {2, 3, 7, 5}}, {4, {4, 3, 3, 3}}, {1, {4}}};
    kiln_shape x3[3] = {{5, {1, 2, 5, 6, 7}}, {5, {3, 2, 3, 3, 3}}, {1, {3}}};
    kiln_test_expect_infer_error("conv2d", &SAME3, x2, 3, KILN_ERR_INVALID_ARGUMENT,
                                 "params.n_spatial is 3, but conv2d convolves over 2");
    kiln_test_expect_infer_error("conv3d", &SAME2, x3, 3, KILN_ERR_INVALID_ARGUMENT,
                                 "params.n_spatial is 2, but conv3d convolves over 3");
    kiln_conv_params p = SAME2;
    p.stride[1] = 0;
    kiln_test_expect_infer_error("conv2d", &p, x2, 3, KILN_ERR_INVALID_ARGUMENT,
                                 "stride[1] is 0; it must be >= 1");
    p = SAME2;
    p.stride[0] = -2;
    kiln_test_expect_infer_error("conv2d", &p, x2, 3, KILN_ERR_INVALID_ARGUMENT,
                                 "stride[0] is -2; it must be >= 1");
    p = SAME2;
    p.dilation[0] = 0;
    kiln_test_expect_infer_error("conv2d", &p, x2, 3, KILN_ERR_INVALID_ARGUMENT,
                                 "dilation[0] is 0; it must be >= 1");
    p = SAME2;
    p.padding[1] = -1;
    kiln_test_expect_infer_error("conv2d", &p, x2, 3, KILN_ERR_INVALID_ARGUMENT,
                                 "padding[1] is -1; it must be >= 0");
    kiln_conv_params q = SAME3;
    q.dilation[2] = -1;
    kiln_test_expect_infer_error("conv3d", &q, x3, 3, KILN_ERR_INVALID_ARGUMENT,
                                 "dilation[2] is -1; it must be >= 1");
    kiln_test_expect_infer_error("conv3d", NULL, x3, 3, KILN_ERR_INVALID_ARGUMENT,
                                 "needs parameters");
}

/* The column path asks for a chunk's columns (K, S P) and products (F, S P): the whole
 * batch while that fits in 4 MB, else as many samples as fit (at least one), fewer when
 * KILN_CONV_CHUNK caps the chunk; with a bias, N F floats more for the bias gradient's row
 * sums, which are all the direct 1x1 path asks for. */
static void test_workspace(void **state)
{
    (void)state;
    const kiln_op *conv2d = kiln_op_find("conv2d");
    const kiln_op *conv3d = kiln_op_find("conv3d");
    assert_non_null(conv2d);
    assert_non_null(conv3d);
    /* K = 27, F = 4, P = 35, N = 2. */
    kiln_shape x2[3] = {{4, {2, 3, 7, 5}}, {4, {4, 3, 3, 3}}, {1, {4}}};
    assert_int_equal(kiln_op_workspace_bytes(conv2d, &SAME2, x2, 3),
                     (2 * (27 + 4) * 35 + 2 * 4) * sizeof(float));
    /* K = 54, F = 3, P = 210, N = 1. */
    kiln_shape x3[3] = {{5, {1, 2, 5, 6, 7}}, {5, {3, 2, 3, 3, 3}}, {1, {3}}};
    assert_int_equal(kiln_op_workspace_bytes(conv3d, &SAME3, x3, 3),
                     ((54 + 3) * 210 + 3) * sizeof(float));
    kiln_conv_params point = {2, {1, 1}, {0, 0}, {1, 1}, true};
    kiln_shape x1[3] = {{4, {2, 3, 7, 5}}, {4, {4, 3, 1, 1}}, {1, {4}}};
    assert_int_equal(kiln_op_workspace_bytes(conv2d, &point, x1, 3), 2 * 4 * sizeof(float));
    point.has_bias = false;
    assert_int_equal(kiln_op_workspace_bytes(conv2d, &point, x1, 2), 0);
    point.stride[0] = 2;
    assert_int_equal(kiln_op_workspace_bytes(conv2d, &point, x1, 2),
                     2 * (3 + 4) * (4 * 5) * sizeof(float));
    /* The CNN's second layer: (288 + 64) 196 floats a sample, 15 of which fit in 4 MB; a
     * batch of 2 fits whole. */
    size_t cnn2 = (288 + 64) * 196 * sizeof(float);
    kiln_shape batch64[3] = {{4, {64, 32, 14, 14}}, {4, {64, 32, 3, 3}}, {1, {64}}};
    size_t sums64 = 64 * 64 * sizeof(float);
    assert_int_equal(kiln_op_workspace_bytes(conv2d, &SAME2, batch64, 3), 15 * cnn2 + sums64);
    assert_true(15 * cnn2 <= (size_t)4 << 20 && 16 * cnn2 > (size_t)4 << 20);
    kiln_shape batch2[3] = {{4, {2, 32, 14, 14}}, {4, {64, 32, 3, 3}}, {1, {64}}};
    assert_int_equal(kiln_op_workspace_bytes(conv2d, &SAME2, batch2, 3),
                     2 * cnn2 + 2 * 64 * sizeof(float));
    /* One sample past the bound: (216 + 16) 40^3 floats, ~59 MB, a chunk of one. */
    kiln_shape big[3] = {{5, {2, 8, 40, 40, 40}}, {5, {16, 8, 3, 3, 3}}, {1, {16}}};
    assert_int_equal(kiln_op_workspace_bytes(conv3d, &SAME3, big, 3),
                     ((216 + 16) * 64000 + 2 * 16) * sizeof(float));
    assert_int_equal(setenv("KILN_CONV_CHUNK", "2", 1), 0);
    assert_int_equal(kiln_op_workspace_bytes(conv2d, &SAME2, batch64, 3), 2 * cnn2 + sums64);
    assert_int_equal(setenv("KILN_CONV_CHUNK", "not a number", 1), 0);
    assert_int_equal(kiln_op_workspace_bytes(conv2d, &SAME2, batch64, 3), 15 * cnn2 + sums64);
    assert_int_equal(unsetenv("KILN_CONV_CHUNK"), 0);
}

/* relu fuses into the column path only: the direct 1x1 path writes y from its GEMM and reads g
 * in place, so conv offers no other activation and no direct case, and a call asking for one
 * anyway fails naming the op instead of computing without it. Only relu is an activation an
 * executor can fuse. */
static void test_fused_activation_offered(void **state)
{
    (void)state;
    const kiln_op *conv2d = kiln_op_find("conv2d");
    kiln_shape x[3] = {{4, {2, 3, 7, 5}}, {4, {4, 3, 3, 3}}, {1, {4}}};
    kiln_shape x1[3] = {{4, {2, 3, 7, 5}}, {4, {4, 3, 1, 1}}, {1, {4}}};
    kiln_conv_params point = {2, {1, 1}, {0, 0}, {1, 1}, true};
    assert_true(kiln_op_fuses_activation(conv2d, &SAME2, x, 3, KILN_ACTIVATION_RELU));
    assert_true(kiln_op_fuses_activation(conv2d, &SAME2, x, 3, KILN_ACTIVATION_NONE));
    assert_false(kiln_op_fuses_activation(conv2d, &point, x1, 3, KILN_ACTIVATION_RELU));
    assert_false(kiln_op_fuses_activation(conv2d, &SAME2, x, 3, (kiln_activation)7));
    assert_false(kiln_op_fuses_activation(kiln_op_find("add"), NULL, x, 1, KILN_ACTIVATION_RELU));
    assert_int_equal(kiln_op_activation(kiln_op_find("relu")), KILN_ACTIVATION_RELU);
    assert_int_equal(kiln_op_activation(kiln_op_find("leaky_relu")), KILN_ACTIVATION_NONE);
    assert_int_equal(kiln_op_activation(conv2d), KILN_ACTIVATION_NONE);

    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, getenv("KILN_CACHE_DIR"));
    kiln_shape ys = {4, {2, 4, 7, 5}};
    kiln_tensor *t[4] = {NULL, NULL, NULL, NULL};
    assert_int_equal(kiln_tensor_create(dev, &x1[0], KILN_F32, "x", &t[0]), KILN_OK);
    assert_int_equal(kiln_tensor_create(dev, &x1[1], KILN_F32, "w", &t[1]), KILN_OK);
    assert_int_equal(kiln_tensor_create(dev, &x1[2], KILN_F32, "b", &t[2]), KILN_OK);
    assert_int_equal(kiln_tensor_create(dev, &ys, KILN_F32, "y", &t[3]), KILN_OK);
    kiln_op_args args = {.params = &point,
                         .inputs = t,
                         .n_inputs = 3,
                         .output = t[3],
                         .activation = KILN_ACTIVATION_RELU};
    assert_int_equal(kiln_op_forward(dev, conv2d, &args), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), "op 'conv2d' cannot apply activation");
    for (int i = 0; i < 4; i++)
        kiln_tensor_destroy(t[i]);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

int main(void)
{
    kiln_test_require_device();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checks),
        cmocka_unit_test(test_chunks_of_one),
        cmocka_unit_test(test_chunks_of_three),
        cmocka_unit_test(test_by_elements),
        cmocka_unit_test(test_by_planes),
        cmocka_unit_test(test_bad_shapes),
        cmocka_unit_test(test_bad_params),
        cmocka_unit_test(test_workspace),
        cmocka_unit_test(test_fused_activation_offered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
