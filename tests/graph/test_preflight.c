/*
 * Executor preflight: kiln_executor_estimate_bytes equals the planned bytes in every mode, with
 * and without planning; creation builds every program the graph uses (gradient fills only in
 * train mode) before running anything; an MLP whose batch makes the plan exceed the device's
 * global memory (each tensor under the allocation limit) fails with KILN_ERR_DEVICE_OOM before
 * allocating, suggesting the largest batch size that fits; a graph too large at batch size 1
 * says so; one whose batch is fixed by a reshape gets a linear estimate; allocation failures
 * during creation leak nothing.
 */
#include <stdlib.h>
#include <string.h>

#include "kiln/model.h"
#include "support/kiln_test.h"

enum { IN = 784, CLASSES = 10 };

typedef struct mlp {
    kiln_graph *g;
    kiln_model *model;
} mlp;

/* x (N, 784) -> dense(hidden) -> relu -> dense(hidden) -> relu -> dense(10) -> cross-entropy. */
static void build(kiln_context *ctx, kiln_device *dev, int64_t n, int64_t hidden, mlp *m)
{
    kiln_shape xs = {2, {n, IN}}, ls = {1, {n}};
    kiln_value x, labels, h, a, loss;
    assert_int_equal(kiln_graph_create(ctx, &m->g), KILN_OK);
    assert_int_equal(kiln_graph_input(m->g, "x", &xs, KILN_F32, &x), KILN_OK);
    assert_int_equal(kiln_graph_input(m->g, "labels", &ls, KILN_I32, &labels), KILN_OK);
    assert_int_equal(kiln_graph_dense(m->g, "fc1", x, hidden, true, &h), KILN_OK);
    assert_int_equal(kiln_graph_unary(m->g, "act1", "relu", NULL, h, &a), KILN_OK);
    assert_int_equal(kiln_graph_dense(m->g, "fc2", a, hidden, true, &h), KILN_OK);
    assert_int_equal(kiln_graph_unary(m->g, "act2", "relu", NULL, h, &a), KILN_OK);
    assert_int_equal(kiln_graph_dense(m->g, "fc3", a, CLASSES, true, &h), KILN_OK);
    kiln_cross_entropy_params ce = {0};
    kiln_value in[2] = {h, labels};
    assert_int_equal(kiln_graph_op(m->g, "loss", "softmax_cross_entropy", &ce, in, 2, &loss),
                     KILN_OK);
    assert_int_equal(kiln_graph_set_loss(m->g, loss), KILN_OK);
    assert_int_equal(kiln_model_create(m->g, dev, 1, &m->model), KILN_OK);
}

static void destroy(mlp *m)
{
    kiln_model_destroy(m->model);
    kiln_graph_destroy(m->g);
}

static uint64_t estimate(mlp *m, kiln_mode mode, bool plan)
{
    kiln_executor_options o = {.mode = mode, .plan_memory = plan};
    uint64_t bytes = 0;
    assert_int_equal(kiln_executor_estimate_bytes(m->model, &o, &bytes), KILN_OK);
    return bytes;
}

static void test_estimate_equals_planned(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, getenv("KILN_CACHE_DIR"));
    mlp m;
    build(ctx, dev, 8, 32, &m);
    kiln_mode modes[3] = {KILN_MODE_TRAIN, KILN_MODE_EVAL, KILN_MODE_INFER};
    for (int i = 0; i < 6; i++) {
        kiln_executor_options o = {.mode = modes[i / 2], .plan_memory = i % 2 == 1};
        kiln_executor *ex = NULL;
        uint64_t before = kiln_device_get_allocated_bytes(dev);
        uint64_t bytes = estimate(&m, o.mode, o.plan_memory);
        assert_int_equal(kiln_device_get_allocated_bytes(dev), before); /* nothing allocated */
        assert_int_equal(kiln_executor_create(m.model, &o, &ex), KILN_OK);
        assert_true(bytes > 0);
        assert_int_equal(bytes, kiln_executor_planned_bytes(ex));
        kiln_executor_destroy(ex);
    }
    assert_true(estimate(&m, KILN_MODE_TRAIN, true) < estimate(&m, KILN_MODE_TRAIN, false));
    assert_true(estimate(&m, KILN_MODE_INFER, true) < estimate(&m, KILN_MODE_TRAIN, true));
    /* The argument checks are creation's. */
    kiln_graph *bare = NULL;
    kiln_model *bare_model = NULL;
    kiln_shape xs = {2, {2, 3}};
    kiln_value x, y;
    assert_int_equal(kiln_graph_create(ctx, &bare), KILN_OK);
    assert_int_equal(kiln_graph_input(bare, "x", &xs, KILN_F32, &x), KILN_OK);
    assert_int_equal(kiln_graph_unary(bare, "act", "relu", NULL, x, &y), KILN_OK);
    assert_int_equal(kiln_model_create(bare, dev, 1, &bare_model), KILN_OK);
    kiln_executor_options to = {.mode = KILN_MODE_TRAIN, .plan_memory = true};
    uint64_t bytes = 1;
    assert_int_equal(kiln_executor_estimate_bytes(bare_model, &to, &bytes),
                     KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), "kiln_graph_set_loss");
    assert_int_equal(bytes, 0);
    kiln_model_destroy(bare_model);
    kiln_graph_destroy(bare);
    destroy(&m);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

/* Whether `program` was already built on `dev` (asking builds it, so ask once per device). */
static bool built(kiln_device *dev, const char *program)
{
    kiln_program_origin origin = KILN_PROGRAM_FROM_SOURCE;
    assert_int_equal(kiln_device_prepare(dev, program, &origin), KILN_OK);
    return origin == KILN_PROGRAM_IN_MEMORY;
}

static void test_programs_built_at_creation(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    for (int train = 0; train < 2; train++) {
        kiln_device *dev = kiln_test_open_device(ctx, getenv("KILN_CACHE_DIR"));
        mlp m;
        build(ctx, dev, 4, 8, &m);
        kiln_executor_options o = {.mode = train ? KILN_MODE_TRAIN : KILN_MODE_EVAL, .plan_memory = true};
        kiln_executor *ex = NULL;
        assert_int_equal(kiln_executor_create(m.model, &o, &ex), KILN_OK);
        /* Nothing has run yet: only preflight can have built these. */
        assert_true(built(dev, kiln_op_program_name(kiln_op_find("dense"))));
        assert_true(built(dev, kiln_op_program_name(kiln_op_find("relu"))));
        assert_true(built(dev, kiln_op_program_name(kiln_op_find("softmax_cross_entropy"))));
        assert_int_equal(built(dev, "fill"), train == 1); /* gradient fills: train mode only */
        assert_false(built(dev, "upsample"));             /* no op of the graph uses it */
        kiln_executor_destroy(ex);
        destroy(&m);
        kiln_device_destroy(dev);
    }
    kiln_context_destroy(ctx);
}

/* The batch size after "at most " in an out-of-memory message, or -1. */
static int64_t suggested_batch(const char *message)
{
    const char *at = strstr(message, "at most ");
    return at != NULL ? strtoll(at + strlen("at most "), NULL, 10) : -1;
}

/* Whether a train-mode MLP of batch n fits beside what the device holds, inputs included. */
static bool fits(kiln_context *ctx, kiln_device *dev, int64_t n, int64_t hidden)
{
    mlp m;
    build(ctx, dev, n, hidden, &m);
    const kiln_device_info *info = kiln_device_get_info(dev);
    uint64_t need = estimate(&m, KILN_MODE_TRAIN, true) + (uint64_t)n * (IN + 1) * 4;
    bool ok = need + kiln_device_get_allocated_bytes(dev) <= info->global_mem_bytes;
    destroy(&m);
    return ok;
}

static void test_huge_batch_suggests_one_that_fits(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, getenv("KILN_CACHE_DIR"));
    const kiln_device_info *info = kiln_device_get_info(dev);
    enum { HIDDEN = 1024, PROBE = 1000 };
    /* Bytes per sample from a small batch (an overestimate: fixed costs are included), then
     * a batch needing about 1.3 times the device's memory. */
    mlp m;
    build(ctx, dev, PROBE, HIDDEN, &m);
    double per_sample = (double)estimate(&m, KILN_MODE_TRAIN, true) / PROBE + (IN + 1) * 4;
    destroy(&m);
    int64_t n = (int64_t)(1.3 * (double)info->global_mem_bytes / per_sample);
    if ((uint64_t)n * HIDDEN * 4 >= info->max_alloc_bytes ||
        (uint64_t)n * IN * 4 >= info->max_alloc_bytes)
        skip(); /* this device allows too little per allocation for the test's premise */

    build(ctx, dev, n, HIDDEN, &m);
    uint64_t params = kiln_device_get_allocated_bytes(dev);
    assert_true(estimate(&m, KILN_MODE_TRAIN, true) > info->global_mem_bytes);
    kiln_executor_options o = {.mode = KILN_MODE_TRAIN, .plan_memory = true};
    kiln_executor *ex = NULL;
    assert_int_equal(kiln_executor_create(m.model, &o, &ex), KILN_ERR_DEVICE_OOM);
    assert_null(ex);
    assert_int_equal(kiln_device_get_allocated_bytes(dev), params); /* refused up front */
    const char *message = kiln_context_last_error(ctx);
    char has[32];
    assert_contains(message, "batch size");
    assert_contains(message, info->name);
    assert_contains(message, kiln_format_bytes(info->global_mem_bytes, has, sizeof has));
    int64_t best = suggested_batch(message);
    if (best < 1 || best >= n)
        fail_msg("no batch size in 1..%lld suggested: %s", (long long)n, message);
    destroy(&m);
    /* The suggestion fits, and is the largest that does. */
    assert_true(fits(ctx, dev, best, HIDDEN));
    assert_false(fits(ctx, dev, best + 1, HIDDEN));
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

/* Nearest upsampling of a (2, 1, 1024, 1024) image by a factor whose output alone is larger
 * than the device at batch size 1. */
static void test_batch_one_too_large(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, getenv("KILN_CACHE_DIR"));
    const kiln_device_info *info = kiln_device_get_info(dev);
    int scale = 2;
    while ((uint64_t)scale * scale * (4u << 20) <= info->global_mem_bytes)
        scale++;
    if ((uint64_t)scale * scale * 2 * (1u << 20) >= UINT32_MAX)
        skip(); /* the output at batch 2 would pass the kernels' 32-bit element limit */
    kiln_graph *g = NULL;
    kiln_model *model = NULL;
    kiln_executor *ex = NULL;
    kiln_shape xs = {4, {2, 1, 1024, 1024}};
    kiln_upsample_params up = {.n_spatial = 2, .scale = {scale, scale, 1}};
    kiln_value x, y;
    assert_int_equal(kiln_graph_create(ctx, &g), KILN_OK);
    assert_int_equal(kiln_graph_input(g, "x", &xs, KILN_F32, &x), KILN_OK);
    assert_int_equal(kiln_graph_unary(g, "up", "upsample2d", &up, x, &y), KILN_OK);
    assert_int_equal(kiln_model_create(g, dev, 1, &model), KILN_OK);
    kiln_executor_options o = {.mode = KILN_MODE_INFER, .plan_memory = true};
    assert_int_equal(kiln_executor_create(model, &o, &ex), KILN_ERR_DEVICE_OOM);
    assert_contains(kiln_context_last_error(ctx), "Even batch size 1 does not fit");
    assert_int_equal(kiln_device_get_allocated_bytes(dev), 0);
    kiln_model_destroy(model);
    kiln_graph_destroy(g);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

/* A reshape to a fixed batch size keeps the graph from being re-inferred at another one: the
 * suggestion is then a linear estimate. */
static void test_fixed_batch_estimates_linearly(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, getenv("KILN_CACHE_DIR"));
    const kiln_device_info *info = kiln_device_get_info(dev);
    int64_t n = (int64_t)(info->global_mem_bytes / (256 * 256 * 4)) + 1000;
    if ((uint64_t)n * 256 * 256 >= UINT32_MAX)
        skip(); /* the output would pass the kernels' 32-bit element limit */
    kiln_graph *g = NULL;
    kiln_model *model = NULL;
    kiln_executor *ex = NULL;
    kiln_shape xs = {2, {n, 1024}};
    kiln_reshape_params rs = {{4, {n, 1, 32, 32}}};
    kiln_upsample_params up = {.n_spatial = 2, .scale = {8, 8, 1}};
    kiln_value x, y, z;
    assert_int_equal(kiln_graph_create(ctx, &g), KILN_OK);
    assert_int_equal(kiln_graph_input(g, "x", &xs, KILN_F32, &x), KILN_OK);
    assert_int_equal(kiln_graph_unary(g, "image", "reshape", &rs, x, &y), KILN_OK);
    assert_int_equal(kiln_graph_unary(g, "up", "upsample2d", &up, y, &z), KILN_OK);
    assert_int_equal(kiln_model_create(g, dev, 1, &model), KILN_OK);
    /* Eval without planning: the message then also suggests plan_memory. */
    kiln_executor_options o = {.mode = KILN_MODE_EVAL, .plan_memory = false};
    assert_int_equal(kiln_executor_create(model, &o, &ex), KILN_ERR_DEVICE_OOM);
    const char *message = kiln_context_last_error(ctx);
    assert_contains(message, "use a batch size of about ");
    assert_contains(message, "plan_memory");
    int64_t guess = strtoll(strstr(message, "about ") + strlen("about "), NULL, 10);
    if (guess < 1 || guess >= n)
        fail_msg("suggested %lld for batch size %lld: %s", (long long)guess, (long long)n, message);
    kiln_model_destroy(model);
    kiln_graph_destroy(g);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

/* Failing each host allocation of kiln_executor_create in turn (preflight included): every
 * failure reports KILN_ERR_NO_MEMORY and frees the device memory it had taken; nothing leaks
 * by the end (the device keeps the kernels it built until it is destroyed). */
static void test_allocation_failures(void **state)
{
    (void)state;
    kiln_test_allocator a;
    kiln_test_allocator_init(&a, -1);
    kiln_context_options options = {.allocator = &a.allocator};
    kiln_context *ctx = NULL;
    assert_int_equal(kiln_context_create(&options, &ctx), KILN_OK);
    kiln_device *dev = kiln_test_open_device(ctx, getenv("KILN_CACHE_DIR"));
    mlp m;
    build(ctx, dev, 4, 8, &m);
    uint64_t held = kiln_device_get_allocated_bytes(dev);
    for (long budget = 0;; budget++) {
        kiln_executor *ex = NULL;
        kiln_executor_options o = {.mode = KILN_MODE_TRAIN, .plan_memory = true};
        a.budget = budget;
        kiln_status rc = kiln_executor_create(m.model, &o, &ex);
        a.budget = -1;
        if (rc == KILN_OK) {
            kiln_executor_destroy(ex);
            break;
        }
        if (rc != KILN_ERR_NO_MEMORY)
            fail_msg("allocation %ld failed: %s, %s", budget, kiln_status_name(rc),
                     kiln_context_last_error(ctx));
        assert_null(ex);
        assert_int_equal(kiln_device_get_allocated_bytes(dev), held);
    }
    destroy(&m);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
    assert_int_equal(a.live, 0);
}

int main(void)
{
    kiln_test_require_device();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_estimate_equals_planned),
        cmocka_unit_test(test_programs_built_at_creation),
        cmocka_unit_test(test_huge_batch_suggests_one_that_fits),
        cmocka_unit_test(test_batch_one_too_large),
        cmocka_unit_test(test_fixed_batch_estimates_linearly),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
