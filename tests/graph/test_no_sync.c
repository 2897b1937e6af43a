/*
 * A training step never waits on the device: forward, backward and an SGD update of every
 * parameter, on a CNN with conv, batch-norm, dropout, max-pool, dense and cross-entropy, make
 * no blocking OpenCL call (clFinish, clWaitForEvents, blocking reads or writes). The public
 * API cannot observe this, so this executable defines those OpenCL entry points itself: the
 * static library's calls (and CLBlast's) bind to these definitions, which count and forward
 * to the real ones found with dlsym(RTLD_NEXT). A blocking read inside the counted region
 * checks that the counting works. Linux (glibc) only; elsewhere the test skips.
 */
#if defined(__linux__)
#define _GNU_SOURCE
#include <dlfcn.h>
#endif
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/model.h"
#include "kiln/optim.h"
#include "support/kiln_test.h"

#if defined(__linux__)

/* The few OpenCL types these entry points use, as the ABI defines them (cl_platform.h);
 * CL/cl.h stays inside src/device. */
typedef int32_t cl_int;
typedef uint32_t cl_uint;
typedef uint32_t cl_bool;
typedef struct _cl_command_queue *cl_command_queue;
typedef struct _cl_mem *cl_mem;
typedef struct _cl_event *cl_event;

cl_int clFinish(cl_command_queue queue);
cl_int clWaitForEvents(cl_uint n_events, const cl_event *events);
cl_int clEnqueueReadBuffer(cl_command_queue queue, cl_mem buffer, cl_bool blocking, size_t offset,
                           size_t size, void *host, cl_uint n_wait, const cl_event *wait,
                           cl_event *event);
cl_int clEnqueueWriteBuffer(cl_command_queue queue, cl_mem buffer, cl_bool blocking, size_t offset,
                            size_t size, const void *host, cl_uint n_wait, const cl_event *wait,
                            cl_event *event);

static bool counting;
static int n_blocking;
static char first_blocking[64];

static void note(const char *what, bool blocks)
{
    if (counting && blocks && n_blocking++ == 0)
        snprintf(first_blocking, sizeof first_blocking, "%s", what);
}

/* The next definition of `name` after this executable's: the OpenCL ICD loader's. */
static void *real(const char *name)
{
    void *f = dlsym(RTLD_NEXT, name);
    if (f == NULL) {
        fprintf(stderr, "dlsym(RTLD_NEXT, %s) failed\n", name);
        abort();
    }
    return f;
}

cl_int clFinish(cl_command_queue queue)
{
    cl_int (*f)(cl_command_queue);
    void *p = real("clFinish");
    memcpy(&f, &p, sizeof f);
    note("clFinish", true);
    return f(queue);
}

cl_int clWaitForEvents(cl_uint n_events, const cl_event *events)
{
    cl_int (*f)(cl_uint, const cl_event *);
    void *p = real("clWaitForEvents");
    memcpy(&f, &p, sizeof f);
    note("clWaitForEvents", true);
    return f(n_events, events);
}

cl_int clEnqueueReadBuffer(cl_command_queue queue, cl_mem buffer, cl_bool blocking, size_t offset,
                           size_t size, void *host, cl_uint n_wait, const cl_event *wait,
                           cl_event *event)
{
    cl_int (*f)(cl_command_queue, cl_mem, cl_bool, size_t, size_t, void *, cl_uint,
                const cl_event *, cl_event *);
    void *p = real("clEnqueueReadBuffer");
    memcpy(&f, &p, sizeof f);
    note("blocking clEnqueueReadBuffer", blocking != 0);
    return f(queue, buffer, blocking, offset, size, host, n_wait, wait, event);
}

cl_int clEnqueueWriteBuffer(cl_command_queue queue, cl_mem buffer, cl_bool blocking, size_t offset,
                            size_t size, const void *host, cl_uint n_wait, const cl_event *wait,
                            cl_event *event)
{
    cl_int (*f)(cl_command_queue, cl_mem, cl_bool, size_t, size_t, const void *, cl_uint,
                const cl_event *, cl_event *);
    void *p = real("clEnqueueWriteBuffer");
    memcpy(&f, &p, sizeof f);
    note("blocking clEnqueueWriteBuffer", blocking != 0);
    return f(queue, buffer, blocking, offset, size, host, n_wait, wait, event);
}

/* x (N, 1, 8, 8) -> conv 4 -> bn -> relu -> dropout -> pool (N, 4, 4, 4) -> flatten (N, 64)
 * -> dense (N, 3) -> softmax cross-entropy. */
enum { N = 4, S = 8, CLASSES = 3, MAX_STATE = 256 };

static void test_training_step_never_waits(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, getenv("KILN_CACHE_DIR"));
    kiln_graph *g = NULL;
    assert_int_equal(kiln_graph_create(ctx, &g), KILN_OK);
    kiln_shape xs = {4, {N, 1, S, S}}, ls = {1, {N}};
    kiln_value x, labels, v, loss;
    assert_int_equal(kiln_graph_input(g, "x", &xs, KILN_F32, &x), KILN_OK);
    assert_int_equal(kiln_graph_input(g, "labels", &ls, KILN_I32, &labels), KILN_OK);
    int k3[3] = {3, 3, 1};
    assert_int_equal(kiln_graph_conv(g, "conv", x, 2, 4, k3, NULL, NULL, true, NULL, true, &v),
                     KILN_OK);
    assert_int_equal(kiln_graph_batchnorm(g, "bn", v, 0.1f, 1e-5f, &v), KILN_OK);
    assert_int_equal(kiln_graph_unary(g, "act", "relu", NULL, v, &v), KILN_OK);
    kiln_dropout_params dp = {.rate = 0.25f};
    assert_int_equal(kiln_graph_unary(g, "drop", "dropout", &dp, v, &v), KILN_OK);
    kiln_pool_params pp = {.n_spatial = 2, .size = {2, 2, 1}};
    assert_int_equal(kiln_graph_unary(g, "pool", "maxpool2d", &pp, v, &v), KILN_OK);
    assert_int_equal(kiln_graph_unary(g, "flat", "flatten", NULL, v, &v), KILN_OK);
    assert_int_equal(kiln_graph_dense(g, "fc", v, CLASSES, true, &v), KILN_OK);
    kiln_cross_entropy_params ce = {0};
    kiln_value in[2] = {v, labels};
    assert_int_equal(kiln_graph_op(g, "loss", "softmax_cross_entropy", &ce, in, 2, &loss), KILN_OK);
    assert_int_equal(kiln_graph_set_loss(g, loss), KILN_OK);
    kiln_model *m = NULL;
    assert_int_equal(kiln_model_create(g, dev, 9, &m), KILN_OK);
    kiln_executor *ex = NULL;
    kiln_executor_options o = {.mode = KILN_MODE_TRAIN, .plan_memory = true};
    assert_int_equal(kiln_executor_create(m, &o, &ex), KILN_OK);

    size_t n_values = kiln_graph_n_values(g);
    kiln_tensor **velocity = calloc(n_values, sizeof *velocity);
    assert_non_null(velocity);
    static const float zeros[MAX_STATE] = {0};
    for (size_t p = 0; p < n_values; p++) {
        if (kiln_graph_value_kind(g, (kiln_value)p) != KILN_VALUE_PARAMETER)
            continue;
        const kiln_shape *shape = kiln_graph_value_shape(g, (kiln_value)p);
        assert_true(kiln_shape_count(shape) <= MAX_STATE);
        assert_int_equal(kiln_tensor_create(dev, shape, KILN_F32, "velocity", &velocity[p]),
                         KILN_OK);
        assert_int_equal(kiln_tensor_upload(velocity[p], zeros, kiln_shape_count(shape)), KILN_OK);
    }
    float xd[N * S * S];
    int32_t ld[N] = {0, 1, 2, 1};
    kiln_sgd_params sgd = {.lr = 0.05f, .momentum = 0.9f};
    /* Step 0 compiles the kernels (and may wait for that); steps 1 and 2 are counted. */
    for (uint64_t step = 0; step < 3; step++) {
        for (int i = 0; i < N * S * S; i++)
            xd[i] = (float)sin(0.3 * i + (double)step);
        assert_int_equal(kiln_executor_set_input(ex, x, xd, N * S * S), KILN_OK);
        assert_int_equal(kiln_executor_set_input(ex, labels, ld, N), KILN_OK);
        counting = step > 0;
        assert_int_equal(kiln_executor_forward(ex, step), KILN_OK);
        assert_int_equal(kiln_executor_backward(ex), KILN_OK);
        for (size_t p = 0; p < n_values; p++)
            if (velocity[p] != NULL)
                assert_int_equal(
                    kiln_optim_sgd_step(dev, &sgd, kiln_model_get_state(m, (kiln_value)p),
                                        kiln_executor_get_grad(ex, (kiln_value)p), velocity[p]),
                    KILN_OK);
        counting = false;
        if (n_blocking != 0)
            fail_msg("step %llu made %d blocking OpenCL call(s), the first a %s",
                     (unsigned long long)step, n_blocking, first_blocking);
        float l;
        assert_int_equal(kiln_executor_read(ex, loss, &l, 1), KILN_OK);
        assert_true(isfinite(l));
    }

    /* The counting works: a blocking read in the counted region is seen. */
    counting = true;
    float l;
    assert_int_equal(kiln_executor_read(ex, loss, &l, 1), KILN_OK);
    counting = false;
    assert_int_equal(n_blocking, 1);
    assert_string_equal(first_blocking, "blocking clEnqueueReadBuffer");

    for (size_t p = 0; p < n_values; p++)
        kiln_tensor_destroy(velocity[p]);
    free(velocity);
    kiln_executor_destroy(ex);
    kiln_model_destroy(m);
    kiln_graph_destroy(g);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

int main(void)
{
    kiln_test_require_device();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_training_step_never_waits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else

int main(void)
{
    fprintf(stderr, "counting OpenCL calls needs dlsym(RTLD_NEXT) on Linux; skipped\n");
    return KILN_TEST_SKIP;
}

#endif
