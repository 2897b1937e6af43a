/*
 * Optimiser updates on the test device: the "optim" check suite (SGD, Adam and AdamW
 * trajectories, gradient-norm clipping; tests/ref/optim.c), then the argument checks: each bad
 * shape or hyperparameter gives the right status, a message naming the function and what is
 * wrong, and leaves every tensor unchanged (for a group, naming the entry); plus clipping an
 * empty list.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/optim.h"
#include "support/kiln_test.h"

/* A device and a few small tensors, created for each test. */
typedef struct fixture {
    kiln_context *ctx;
    kiln_device *dev;
    kiln_tensor *param, *grad, *state, *state2, *wrong, *labels, *norm;
} fixture;

static kiln_tensor *make(fixture *f, int ndim, const int64_t *dims, kiln_dtype dtype,
                         const char *name, float value)
{
    kiln_shape shape = kiln_shape_of(ndim, dims);
    kiln_tensor *t = NULL;
    assert_int_equal(kiln_tensor_create(f->dev, &shape, dtype, name, &t), KILN_OK);
    int64_t n = kiln_shape_count(&shape);
    float host[12];
    for (int64_t i = 0; i < n; i++)
        host[i] = value; /* an i32 tensor gets float bits; only its dtype matters here */
    assert_int_equal(kiln_tensor_upload(t, host, n), KILN_OK);
    return t;
}

static int set_up(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->ctx = kiln_test_context();
    f->dev = kiln_test_open_device(f->ctx, getenv("KILN_CACHE_DIR"));
    f->param = make(f, 2, (int64_t[]){3, 4}, KILN_F32, "w", 1.0f);
    f->grad = make(f, 2, (int64_t[]){3, 4}, KILN_F32, "w.grad", 0.5f);
    f->state = make(f, 2, (int64_t[]){3, 4}, KILN_F32, "w.m", 0.0f);
    f->state2 = make(f, 2, (int64_t[]){3, 4}, KILN_F32, "w.v", 0.0f);
    f->wrong = make(f, 2, (int64_t[]){4, 3}, KILN_F32, "b", 0.0f);
    f->labels = make(f, 2, (int64_t[]){3, 4}, KILN_I32, "labels", 0.0f);
    f->norm = make(f, 0, NULL, KILN_F32, "norm", -1.0f);
    *state = f;
    return 0;
}

static int tear_down(void **state)
{
    fixture *f = *state;
    kiln_tensor *all[] = {f->param, f->grad, f->state, f->state2, f->wrong, f->labels, f->norm};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        kiln_tensor_destroy(all[i]);
    assert_int_equal(kiln_device_get_allocated_bytes(f->dev), 0);
    kiln_device_destroy(f->dev);
    kiln_context_destroy(f->ctx);
    free(f);
    return 0;
}

/* Asserts the status and that the message names `fn` and contains each needle (up to 3). */
static void expect(fixture *f, kiln_status got, kiln_status want, const char *fn, const char *n1,
                   const char *n2, const char *n3)
{
    const char *message = kiln_context_last_error(f->ctx);
    if (got != want)
        fail_msg("expected %s, got %s (%s)", kiln_status_name(want), kiln_status_name(got),
                 message);
    assert_contains(message, fn);
    const char *needles[] = {n1, n2, n3};
    for (int i = 0; i < 3; i++) {
        if (needles[i] != NULL)
            assert_contains(message, needles[i]);
    }
}

/* Asserts that every element of t still equals `value` (a failed call changed nothing). */
static void expect_all(fixture *f, const kiln_tensor *t, float value)
{
    (void)f;
    float host[12];
    int64_t n = kiln_tensor_count(t);
    assert_int_equal(kiln_tensor_download(t, host, n), KILN_OK);
    for (int64_t i = 0; i < n; i++)
        assert_float_equal(host[i], value, 0);
}

static void test_checks(void **state)
{
    (void)state;
    kiln_test_run_suite("optim");
}

static void test_sgd_bad_arguments(void **state)
{
    fixture *f = *state;
    const char *fn = "kiln_optim_sgd_step";
    kiln_sgd_params ok = {0.1f, 0.9f, 0, false};
    expect(f, kiln_optim_sgd_step(f->dev, &ok, f->param, f->wrong, f->state), KILN_ERR_SHAPE, fn,
           "grad 'b' has shape (4, 3)", "param 'w' has shape (3, 4)", NULL);
    expect(f, kiln_optim_sgd_step(f->dev, &ok, f->param, f->grad, f->wrong), KILN_ERR_SHAPE, fn,
           "velocity 'b' has shape (4, 3)", "(3, 4)", NULL);
    expect(f, kiln_optim_sgd_step(f->dev, &ok, f->param, f->grad, NULL), KILN_ERR_INVALID_ARGUMENT,
           fn, "velocity is NULL but momentum is 0.9", NULL, NULL);
    expect(f, kiln_optim_sgd_step(f->dev, &ok, f->param, f->labels, f->state),
           KILN_ERR_INVALID_ARGUMENT, fn, "grad 'labels' is i32", NULL, NULL);
    expect(f, kiln_optim_sgd_step(f->dev, NULL, f->param, f->grad, f->state),
           KILN_ERR_INVALID_ARGUMENT, fn, "params is NULL", NULL, NULL);
    expect(f, kiln_optim_sgd_step(f->dev, &ok, NULL, f->grad, f->state), KILN_ERR_INVALID_ARGUMENT,
           fn, "param is NULL", NULL, NULL);
    kiln_sgd_params zero_lr = {0, 0.9f, 0, false};
    expect(f, kiln_optim_sgd_step(f->dev, &zero_lr, f->param, f->grad, f->state),
           KILN_ERR_INVALID_ARGUMENT, fn, "lr must be a finite number > 0, got 0", NULL, NULL);
    kiln_sgd_params nan_lr = {NAN, 0.9f, 0, false};
    expect(f, kiln_optim_sgd_step(f->dev, &nan_lr, f->param, f->grad, f->state),
           KILN_ERR_INVALID_ARGUMENT, fn, "lr must be", NULL, NULL);
    kiln_sgd_params negative = {0.1f, -0.5f, 0, false};
    expect(f, kiln_optim_sgd_step(f->dev, &negative, f->param, f->grad, f->state),
           KILN_ERR_INVALID_ARGUMENT, fn, "momentum must be a finite number >= 0, got -0.5", NULL,
           NULL);
    kiln_sgd_params decay = {0.1f, 0.9f, -1, false};
    expect(f, kiln_optim_sgd_step(f->dev, &decay, f->param, f->grad, f->state),
           KILN_ERR_INVALID_ARGUMENT, fn, "weight_decay", NULL, NULL);
    kiln_sgd_params nesterov = {0.1f, 0, 0, true};
    expect(f, kiln_optim_sgd_step(f->dev, &nesterov, f->param, f->grad, NULL),
           KILN_ERR_INVALID_ARGUMENT, fn, "nesterov needs momentum > 0", NULL, NULL);
    assert_int_equal(kiln_optim_sgd_step(NULL, &ok, f->param, f->grad, f->state),
                     KILN_ERR_INVALID_ARGUMENT);
    assert_int_equal(kiln_device_finish(f->dev), KILN_OK);
    expect_all(f, f->param, 1.0f);
    expect_all(f, f->state, 0.0f);
}

/* With momentum 0 the velocity may be NULL, and one that is passed is left alone. */
static void test_sgd_without_momentum(void **state)
{
    fixture *f = *state;
    kiln_sgd_params plain = {0.5f, 0, 0, false};
    assert_int_equal(kiln_optim_sgd_step(f->dev, &plain, f->param, f->grad, NULL), KILN_OK);
    assert_int_equal(kiln_optim_sgd_step(f->dev, &plain, f->param, f->grad, f->state), KILN_OK);
    expect_all(f, f->param, 1.0f - 2 * 0.5f * 0.5f);
    expect_all(f, f->state, 0.0f);
}

static void test_adam_bad_arguments(void **state)
{
    fixture *f = *state;
    const char *fn = "kiln_optim_adam_step";
    kiln_adam_params ok = {1e-3f, 0.9f, 0.999f, 1e-8f, 0, false};
    expect(f, kiln_optim_adam_step(f->dev, &ok, 1, f->param, f->grad, f->wrong, f->state2),
           KILN_ERR_SHAPE, fn, "m 'b' has shape (4, 3)", "param 'w' has shape (3, 4)", NULL);
    expect(f, kiln_optim_adam_step(f->dev, &ok, 1, f->param, f->grad, f->state, f->wrong),
           KILN_ERR_SHAPE, fn, "v 'b' has shape (4, 3)", NULL, NULL);
    expect(f, kiln_optim_adam_step(f->dev, &ok, 1, f->param, f->wrong, f->state, f->state2),
           KILN_ERR_SHAPE, fn, "grad 'b'", NULL, NULL);
    expect(f, kiln_optim_adam_step(f->dev, &ok, 1, f->param, f->grad, NULL, f->state2),
           KILN_ERR_INVALID_ARGUMENT, fn, "m is NULL", NULL, NULL);
    expect(f, kiln_optim_adam_step(f->dev, &ok, 0, f->param, f->grad, f->state, f->state2),
           KILN_ERR_INVALID_ARGUMENT, fn, "step must count from 1", NULL, NULL);
    kiln_adam_params bad[] = {
        {0, 0.9f, 0.999f, 1e-8f, 0, false},        {1e-3f, 1.0f, 0.999f, 1e-8f, 0, false},
        {1e-3f, 0.9f, -0.1f, 1e-8f, 0, false},     {1e-3f, 0.9f, 0.999f, 0, 0, true},
        {1e-3f, 0.9f, 0.999f, 1e-8f, -0.1f, true}, {1e-3f, 0.9f, NAN, 1e-8f, 0, false},
    };
    const char *why[] = {"lr must be",
                         "beta1 must be in [0, 1), got 1",
                         "beta2 must be in [0, 1), got -0.1",
                         "eps must be a finite number > 0",
                         "weight_decay",
                         "beta2 must be in [0, 1), got nan"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect(f, kiln_optim_adam_step(f->dev, &bad[i], 1, f->param, f->grad, f->state, f->state2),
               KILN_ERR_INVALID_ARGUMENT, fn, why[i], NULL, NULL);
    assert_int_equal(kiln_device_finish(f->dev), KILN_OK);
    expect_all(f, f->param, 1.0f);
    expect_all(f, f->state, 0.0f);
    expect_all(f, f->state2, 0.0f);
}

static void test_clip_bad_arguments(void **state)
{
    fixture *f = *state;
    const char *fn = "kiln_optim_clip_grad_norm";
    kiln_tensor *grads[] = {f->grad, f->wrong, f->labels};
    size_t need = kiln_optim_clip_grad_norm_workspace_bytes(grads, 3);
    assert_int_equal(need, (12 + 3) * sizeof(float));
    kiln_buffer *ws = NULL, *small = NULL;
    assert_int_equal(kiln_buffer_create(f->dev, need, "ws", &ws), KILN_OK);
    assert_int_equal(kiln_buffer_create(f->dev, need - 4, "small", &small), KILN_OK);
    /* The i32 gradient comes last: nothing may be scaled before it is found. */
    expect(f, kiln_optim_clip_grad_norm(f->dev, grads, 3, 1.0f, f->norm, ws),
           KILN_ERR_INVALID_ARGUMENT, fn, "grads[2] 'labels' is i32", NULL, NULL);
    expect(f, kiln_optim_clip_grad_norm(f->dev, grads, 2, 0.0f, f->norm, ws),
           KILN_ERR_INVALID_ARGUMENT, fn, "max_norm must be a finite number > 0, got 0", NULL,
           NULL);
    expect(f, kiln_optim_clip_grad_norm(f->dev, grads, 2, INFINITY, f->norm, ws),
           KILN_ERR_INVALID_ARGUMENT, fn, "max_norm", NULL, NULL);
    expect(f, kiln_optim_clip_grad_norm(f->dev, grads, 2, 1.0f, f->grad, ws), KILN_ERR_SHAPE, fn,
           "norm 'w.grad' has shape (3, 4)", "exactly one element", NULL);
    kiln_tensor *fine[] = {f->grad, f->wrong, f->state};
    expect(f, kiln_optim_clip_grad_norm(f->dev, fine, 3, 1.0f, f->norm, small),
           KILN_ERR_INVALID_ARGUMENT, fn, "needs a workspace of 60 bytes", "a smaller one", NULL);
    expect(f, kiln_optim_clip_grad_norm(f->dev, grads, 2, 1.0f, f->norm, NULL),
           KILN_ERR_INVALID_ARGUMENT, fn, "got none", NULL, NULL);
    kiln_tensor *with_null[] = {f->grad, NULL};
    expect(f, kiln_optim_clip_grad_norm(f->dev, with_null, 2, 1.0f, f->norm, ws),
           KILN_ERR_INVALID_ARGUMENT, fn, "grads[1] is NULL", NULL, NULL);
    expect(f, kiln_optim_clip_grad_norm(f->dev, NULL, 2, 1.0f, f->norm, ws),
           KILN_ERR_INVALID_ARGUMENT, fn, "grads is NULL", NULL, NULL);
    assert_int_equal(kiln_device_finish(f->dev), KILN_OK);
    expect_all(f, f->grad, 0.5f);
    expect_all(f, f->norm, -1.0f);
    kiln_buffer_destroy(ws);
    kiln_buffer_destroy(small);
}

/* No gradients: the norm is 0, as PyTorch returns for an empty list. */
static void test_clip_empty(void **state)
{
    fixture *f = *state;
    assert_int_equal(kiln_optim_clip_grad_norm_workspace_bytes(NULL, 0), 0);
    assert_int_equal(kiln_optim_clip_grad_norm(f->dev, NULL, 0, 1.0f, f->norm, NULL), KILN_OK);
    expect_all(f, f->norm, 0.0f);
}

/* A group step checks every entry before queueing anything: a bad later entry names its index
 * and leaves the good earlier ones unchanged; NULL arrays are refused; n 0 does nothing. */
static void test_group_bad_arguments(void **state)
{
    fixture *f = *state;
    kiln_sgd_params sgd = {0.1f, 0.9f, 0.0f, false};
    kiln_adam_params adam = {0.01f, 0.9f, 0.999f, 1e-8f, 0.0f, false};
    kiln_tensor *param[3] = {f->param, f->param, f->param};
    const kiln_tensor *grad[3] = {f->grad, f->grad, f->wrong};
    kiln_tensor *velocity[3] = {f->state, f->state, f->state};
    kiln_tensor *v[3] = {f->state2, f->state2, f->state2};
    const char *sgd_fn = "kiln_optim_sgd_step_group", *adam_fn = "kiln_optim_adam_step_group";
    expect(f, kiln_optim_sgd_step_group(f->dev, &sgd, 3, param, grad, velocity), KILN_ERR_SHAPE,
           sgd_fn, "grad[2] 'b'", "(4, 3)", NULL);
    expect(f, kiln_optim_adam_step_group(f->dev, &adam, 1, 3, param, grad, velocity, v),
           KILN_ERR_SHAPE, adam_fn, "grad[2] 'b'", "(4, 3)", NULL);
    grad[2] = f->grad;
    velocity[1] = NULL;
    expect(f, kiln_optim_sgd_step_group(f->dev, &sgd, 3, param, grad, velocity),
           KILN_ERR_INVALID_ARGUMENT, sgd_fn, "velocity[1] is NULL", "momentum", NULL);
    expect(f, kiln_optim_sgd_step_group(f->dev, &sgd, 3, param, NULL, velocity),
           KILN_ERR_INVALID_ARGUMENT, sgd_fn, "grad is NULL", NULL, NULL);
    expect(f, kiln_optim_adam_step_group(f->dev, &adam, 1, 3, param, grad, NULL, v),
           KILN_ERR_INVALID_ARGUMENT, adam_fn, "must not be NULL", NULL, NULL);
    expect_all(f, f->param, 1.0f);
    expect_all(f, f->state, 0.0f);
    expect_all(f, f->state2, 0.0f);
    assert_int_equal(kiln_optim_sgd_step_group(f->dev, &sgd, 0, NULL, NULL, NULL), KILN_OK);
    expect_all(f, f->param, 1.0f);
}

int main(void)
{
    kiln_test_require_device();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checks),
        cmocka_unit_test_setup_teardown(test_sgd_bad_arguments, set_up, tear_down),
        cmocka_unit_test_setup_teardown(test_sgd_without_momentum, set_up, tear_down),
        cmocka_unit_test_setup_teardown(test_adam_bad_arguments, set_up, tear_down),
        cmocka_unit_test_setup_teardown(test_clip_bad_arguments, set_up, tear_down),
        cmocka_unit_test_setup_teardown(test_clip_empty, set_up, tear_down),
        cmocka_unit_test_setup_teardown(test_group_bad_arguments, set_up, tear_down),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
