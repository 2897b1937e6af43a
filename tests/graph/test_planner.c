/*
 * The memory planner. On the host: random interval sets (fixed seeds) get valid assignments,
 * checked here independently and by kiln__plan_is_valid, and sharing never costs more bytes
 * than one slot per item; hand-made cases where a slot must and must not be reused; the
 * validity check itself rejects bad plans; out of memory. On the device: random graphs of
 * add/mul/relu/tanh/concat/dense give bit-identical losses, gradients and outputs with and
 * without planning; and the Fashion-MNIST CNN at batch 256 plans at most 45% of train mode's
 * bytes in infer mode (executors are created, not run).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/planner.h"
#include "kiln/model.h"
#include "support/kiln_test.h"

/* A 64-bit LCG (Knuth's MMIX constants); the high half is the output. */
static uint32_t next_u32(uint64_t *state)
{
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(*state >> 32);
}

static int pick(uint64_t *state, int n)
{
    return (int)(next_u32(state) % (uint32_t)n);
}

static float uniform(uint64_t *state)
{
    return (float)((double)next_u32(state) / 4294967296.0 * 2.0 - 1.0);
}

/* ---- host: the planner on interval sets ---- */

/* Independent of the planner's own check: no two items of a slot overlap, and every slot holds
 * its items. */
static void expect_valid(const kiln__plan_item *items, size_t n, const size_t *slot_bytes,
                         size_t n_slots)
{
    for (size_t i = 0; i < n; i++) {
        assert_true(items[i].slot >= 0 && (size_t)items[i].slot < n_slots);
        assert_true(slot_bytes[items[i].slot] >= items[i].bytes);
        for (size_t j = 0; j < i; j++)
            if (items[i].slot == items[j].slot && items[i].start <= items[j].end &&
                items[j].start <= items[i].end)
                fail_msg("items %zu [%d, %d] and %zu [%d, %d] share slot %d", j, items[j].start,
                         items[j].end, i, items[i].start, items[i].end, items[i].slot);
    }
    assert_true(kiln__plan_is_valid(items, n, slot_bytes, n_slots));
}

static size_t sum(const size_t *bytes, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += bytes[i];
    return total;
}

/* Plans `items` with sharing on or off and returns the total bytes. */
static size_t plan(kiln_context *ctx, kiln__plan_item *items, size_t n, bool share,
                   size_t *out_slots)
{
    size_t *slot_bytes = NULL, n_slots = 0;
    assert_int_equal(kiln__plan_assign(ctx, items, n, share, &slot_bytes, &n_slots), KILN_OK);
    expect_valid(items, n, slot_bytes, n_slots);
    size_t total = sum(slot_bytes, n_slots);
    kiln__free(ctx, slot_bytes);
    if (out_slots != NULL)
        *out_slots = n_slots;
    return total;
}

static void test_random_intervals(void **state)
{
    (void)state;
    kiln_context *ctx = NULL;
    assert_int_equal(kiln_context_create(NULL, &ctx), KILN_OK);
    enum { MAX_ITEMS = 80 };
    kiln__plan_item items[MAX_ITEMS];
    int shared_less = 0;
    for (uint64_t seed = 1; seed <= 200; seed++) {
        uint64_t s = seed;
        size_t n = 1 + (size_t)pick(&s, MAX_ITEMS);
        int horizon = 1 + pick(&s, 60);
        for (size_t i = 0; i < n; i++) {
            int a = pick(&s, horizon), b = pick(&s, horizon);
            items[i].start = a < b ? a : b;
            /* Mostly short lives, like activations; some span the whole schedule. */
            items[i].end = pick(&s, 4) == 0 ? (a < b ? b : a) : items[i].start + pick(&s, 3);
            /* A few distinct sizes (layers repeat shapes) and some arbitrary ones. */
            items[i].bytes = pick(&s, 2) ? (size_t)(64 << pick(&s, 6)) : 1 + next_u32(&s) % 5000;
            items[i].slot = -1;
        }
        size_t n_shared = 0, n_own = 0;
        size_t own = plan(ctx, items, n, false, &n_own);
        size_t shared = plan(ctx, items, n, true, &n_shared);
        assert_int_equal(n_own, n);
        size_t all = 0;
        for (size_t i = 0; i < n; i++)
            all += items[i].bytes;
        assert_int_equal(own, all);
        if (shared > own)
            fail_msg("seed %llu: sharing plans %zu bytes, separate slots %zu",
                     (unsigned long long)seed, shared, own);
        /* No plan can go below the most bytes live at one step. */
        size_t peak = 0;
        for (int t = 0; t < horizon + 3; t++) {
            size_t live = 0;
            for (size_t i = 0; i < n; i++)
                live += items[i].start <= t && t <= items[i].end ? items[i].bytes : 0;
            peak = live > peak ? live : peak;
        }
        assert_true(shared >= peak);
        shared_less += shared < own;
    }
    assert_true(shared_less > 100); /* reuse does happen on most sets */
    kiln_context_destroy(ctx);
}

static void test_hand_made_plans(void **state)
{
    (void)state;
    kiln_context *ctx = NULL;
    assert_int_equal(kiln_context_create(NULL, &ctx), KILN_OK);
    size_t n_slots = 0;

    /* Disjoint lives in sequence: one slot, as large as the largest item (grown from 50). */
    kiln__plan_item chain[3] = {{50, 0, 1, -1}, {100, 2, 3, -1}, {80, 4, 9, -1}};
    assert_int_equal(plan(ctx, chain, 3, true, &n_slots), 100);
    assert_int_equal(n_slots, 1);

    /* Lives are inclusive: an item ending at step 2 and one starting at 2 (an op reading its
     * input while writing its output) must not share. */
    kiln__plan_item touching[2] = {{100, 0, 2, -1}, {100, 2, 3, -1}};
    assert_int_equal(plan(ctx, touching, 2, true, &n_slots), 200);
    assert_int_equal(n_slots, 2);
    assert_true(touching[0].slot != touching[1].slot);

    /* Best fit: the 100-byte item takes the free 100-byte slot, not the free 1000-byte one,
     * and the later 900-byte item then fits into the large one. */
    kiln__plan_item fit[4] = {{1000, 0, 1, -1}, {100, 0, 1, -1}, {100, 2, 5, -1}, {900, 3, 5, -1}};
    assert_int_equal(plan(ctx, fit, 4, true, &n_slots), 1100);
    assert_int_equal(fit[2].slot, fit[1].slot);
    assert_int_equal(fit[3].slot, fit[0].slot);

    /* No items: no slots. */
    size_t *slot_bytes = NULL;
    assert_int_equal(kiln__plan_assign(ctx, NULL, 0, true, &slot_bytes, &n_slots), KILN_OK);
    assert_int_equal(n_slots, 0);
    kiln__free(ctx, slot_bytes);

    /* The validity check rejects overlapping items in one slot and a slot that is too small. */
    kiln__plan_item bad[2] = {{10, 0, 2, 0}, {10, 2, 4, 0}};
    size_t ten = 10, five = 5;
    assert_false(kiln__plan_is_valid(bad, 2, &ten, 1));
    bad[1].start = 3;
    assert_true(kiln__plan_is_valid(bad, 2, &ten, 1));
    assert_false(kiln__plan_is_valid(bad, 2, &five, 1));
    bad[1].slot = 1;
    assert_false(kiln__plan_is_valid(bad, 2, &ten, 1)); /* slot out of range */
    kiln_context_destroy(ctx);
}

static void test_out_of_memory(void **state)
{
    (void)state;
    kiln__plan_item items[3] = {{8, 0, 1, -1}, {8, 2, 3, -1}, {8, 1, 2, -1}};
    for (long budget = 0; budget < 4; budget++) {
        kiln_test_allocator a;
        kiln_test_allocator_init(&a, -1);
        kiln_context_options options = {.allocator = &a.allocator};
        kiln_context *ctx = NULL;
        assert_int_equal(kiln_context_create(&options, &ctx), KILN_OK);
        a.budget = budget;
        size_t *slot_bytes = NULL, n_slots = 0;
        kiln_status rc = kiln__plan_assign(ctx, items, 3, true, &slot_bytes, &n_slots);
        a.budget = -1;
        if (rc == KILN_OK) {
            assert_true(budget >= 3);
            kiln__free(ctx, slot_bytes);
        } else {
            assert_int_equal(rc, KILN_ERR_NO_MEMORY);
            assert_null(slot_bytes);
            assert_contains(kiln_context_last_error(ctx), "out of memory");
        }
        kiln_context_destroy(ctx);
        assert_int_equal(a.live, 0);
    }
}

/* ---- device: random graphs, planned and unplanned ---- */

enum { RN = 3, MAX_VALUES = 64, MAX_WIDTH = 16 };

typedef struct rgraph {
    kiln_graph *g;
    int n_inputs;
    kiln_value inputs[4];
    int64_t input_count[4];
    kiln_value loss;
    int n_outputs; /* node values no node consumes: readable after forward */
    kiln_value outputs[MAX_VALUES];
} rgraph;

/* A value among the most recent four (3 times in 4: chains), else any (diamonds). */
static int operand(uint64_t *s, int n_vals)
{
    if (n_vals > 4 && pick(s, 4) != 0)
        return n_vals - 1 - pick(s, 4);
    return pick(s, n_vals);
}

/* Values are (RN, width); every node's output is one. The loss depends on a parameter (a
 * graph whose loss does not is a different case). Returns the node count. */
static int build_random(kiln_context *ctx, uint64_t seed, rgraph *r)
{
    uint64_t s = seed * 7919 + 1;
    kiln_value vals[MAX_VALUES];
    int64_t width[MAX_VALUES];
    bool consumed[MAX_VALUES] = {false}, trained[MAX_VALUES] = {false}; /* depends on a weight */
    int n_vals = 0;
    memset(r, 0, sizeof *r);
    assert_int_equal(kiln_graph_create(ctx, &r->g), KILN_OK);
    static const int64_t input_widths[3] = {4, 4, 6};
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "in%d", i);
        kiln_shape shape = {2, {RN, input_widths[i]}};
        assert_int_equal(kiln_graph_input(r->g, name, &shape, KILN_F32, &vals[n_vals]), KILN_OK);
        r->inputs[r->n_inputs] = vals[n_vals];
        r->input_count[r->n_inputs++] = RN * input_widths[i];
        width[n_vals++] = input_widths[i];
    }
    int n_inputs = n_vals, n_nodes = 9 + pick(&s, 21); /* 10 to 30 with the loss */
    for (int k = 0; k <= n_nodes; k++) {
        char name[16];
        snprintf(name, sizeof name, "n%d", k);
        int a = k < 2 ? 2 * k : operand(&s, n_vals), b = -1;
        int op = k < 2 ? 5 : pick(&s, 6); /* two dense layers first: there are parameters */
        if (k == n_nodes) { /* one more node only when the loss would depend on no parameter */
            if (trained[n_vals - 1])
                break;
            a = n_vals - 1;
            op = 5;
        }
        if (op == 2 || op == 3) { /* add, mul: a partner of the same width (perhaps a itself) */
            int candidates[MAX_VALUES], n_c = 0;
            for (int i = 0; i < n_vals; i++)
                if (width[i] == width[a])
                    candidates[n_c++] = i;
            b = candidates[pick(&s, n_c)];
        } else if (op == 4) {
            b = operand(&s, n_vals);
            if (width[a] + width[b] > MAX_WIDTH)
                op = 5;
        }
        kiln_value out;
        int64_t w = width[a];
        kiln_value pair[2] = {vals[a], b >= 0 ? vals[b] : -1};
        kiln_axis_params axis = {.axis = 1};
        switch (op) {
        case 0:
            assert_int_equal(kiln_graph_unary(r->g, name, "relu", NULL, vals[a], &out), KILN_OK);
            break;
        case 1:
            assert_int_equal(kiln_graph_unary(r->g, name, "tanh", NULL, vals[a], &out), KILN_OK);
            break;
        case 2:
            assert_int_equal(kiln_graph_op(r->g, name, "add", NULL, pair, 2, &out), KILN_OK);
            break;
        case 3:
            assert_int_equal(kiln_graph_op(r->g, name, "mul", NULL, pair, 2, &out), KILN_OK);
            break;
        case 4:
            assert_int_equal(kiln_graph_op(r->g, name, "concat", &axis, pair, 2, &out), KILN_OK);
            w = width[a] + width[b];
            break;
        default:
            w = pick(&s, 2) ? 4 : 6;
            b = -1;
            assert_int_equal(kiln_graph_dense(r->g, name, vals[a], w, true, &out), KILN_OK);
            break;
        }
        consumed[a] = true;
        trained[n_vals] = op == 5 || trained[a];
        if (b >= 0 && op != 5) {
            consumed[b] = true;
            trained[n_vals] = trained[n_vals] || trained[b];
        }
        vals[n_vals] = out;
        width[n_vals++] = w;
    }
    /* The loss: the sum of the last value, or its mean squared error against a target. */
    int last = n_vals - 1;
    consumed[last] = true;
    if (seed % 2 == 0) {
        kiln_reduce_params p = {.axes = 3, .keepdims = false};
        assert_int_equal(kiln_graph_unary(r->g, "loss", "reduce_sum", &p, vals[last], &r->loss),
                         KILN_OK);
    } else {
        kiln_shape ts = {2, {RN, width[last]}};
        kiln_value target;
        assert_int_equal(kiln_graph_input(r->g, "target", &ts, KILN_F32, &target), KILN_OK);
        r->inputs[r->n_inputs] = target;
        r->input_count[r->n_inputs++] = RN * width[last];
        kiln_value in[2] = {vals[last], target};
        assert_int_equal(kiln_graph_op(r->g, "loss", "mse", NULL, in, 2, &r->loss), KILN_OK);
    }
    assert_int_equal(kiln_graph_set_loss(r->g, r->loss), KILN_OK);
    for (int i = n_inputs; i < n_vals; i++)
        if (!consumed[i])
            r->outputs[r->n_outputs++] = vals[i];
    return n_vals - n_inputs + 1;
}

static void feed_random(kiln_executor *ex, const rgraph *r, uint64_t seed)
{
    for (int i = 0; i < r->n_inputs; i++) {
        float data[RN * MAX_WIDTH];
        uint64_t s = seed * 31 + (uint64_t)i;
        for (int64_t e = 0; e < r->input_count[i]; e++)
            data[e] = uniform(&s);
        assert_int_equal(kiln_executor_set_input(ex, r->inputs[i], data, r->input_count[i]),
                         KILN_OK);
    }
}

static kiln_executor *executor(kiln_model *m, kiln_mode mode, bool plan)
{
    kiln_executor *ex = NULL;
    kiln_executor_options o = {.mode = mode, .plan_memory = plan};
    assert_int_equal(kiln_executor_create(m, &o, &ex), KILN_OK);
    return ex;
}

static void expect_same_value(kiln_executor *a, kiln_executor *b, const rgraph *r, kiln_value v,
                              uint64_t seed, const char *what)
{
    int64_t n = kiln_shape_count(kiln_graph_value_shape(r->g, v));
    float x[RN * MAX_WIDTH], y[RN * MAX_WIDTH];
    assert_int_equal(kiln_executor_read(a, v, x, n), KILN_OK);
    assert_int_equal(kiln_executor_read(b, v, y, n), KILN_OK);
    if (memcmp(x, y, (size_t)n * sizeof *x) != 0)
        fail_msg("graph %llu: %s '%s' differs with planning", (unsigned long long)seed, what,
                 kiln_graph_value_name(r->g, v));
}

static void compare_random_graph(kiln_context *ctx, kiln_device *dev, uint64_t seed)
{
    rgraph r;
    build_random(ctx, seed, &r);
    kiln_model *m = NULL;
    assert_int_equal(kiln_model_create(r.g, dev, seed, &m), KILN_OK);
    /* Both executors share the model: forward and backward change no parameter here. */
    kiln_executor *plain = executor(m, KILN_MODE_TRAIN, false);
    kiln_executor *planned = executor(m, KILN_MODE_TRAIN, true);
    assert_true(kiln_executor_planned_bytes(planned) <= kiln_executor_planned_bytes(plain));
    int with_grad = 0;
    for (uint64_t step = 0; step < 2; step++) { /* new data each step: no stale buffers */
        kiln_executor *both[2] = {plain, planned};
        for (int e = 0; e < 2; e++) {
            feed_random(both[e], &r, seed + 100 * step);
            assert_int_equal(kiln_executor_forward(both[e], step), KILN_OK);
            assert_int_equal(kiln_executor_backward(both[e]), KILN_OK);
        }
        float loss;
        assert_int_equal(kiln_executor_read(plain, r.loss, &loss, 1), KILN_OK);
        if (!isfinite(loss))
            fail_msg("graph %llu: loss %g", (unsigned long long)seed, (double)loss);
        expect_same_value(plain, planned, &r, r.loss, seed, "train loss");
        for (size_t v = 0; v < kiln_graph_n_values(r.g); v++) {
            if (kiln_graph_value_kind(r.g, (kiln_value)v) != KILN_VALUE_PARAMETER)
                continue;
            kiln_tensor *ga = kiln_executor_get_grad(plain, (kiln_value)v);
            kiln_tensor *gb = kiln_executor_get_grad(planned, (kiln_value)v);
            assert_true((ga == NULL) == (gb == NULL));
            if (ga == NULL)
                continue; /* a parameter the loss does not depend on */
            int64_t n = kiln_tensor_count(ga);
            float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
            assert_non_null(x);
            assert_non_null(y);
            assert_int_equal(kiln_tensor_download(ga, x, n), KILN_OK);
            assert_int_equal(kiln_tensor_download(gb, y, n), KILN_OK);
            if (memcmp(x, y, (size_t)n * sizeof *x) != 0)
                fail_msg("graph %llu step %llu: gradient of '%s' differs with planning",
                         (unsigned long long)seed, (unsigned long long)step,
                         kiln_graph_value_name(r.g, (kiln_value)v));
            free(x);
            free(y);
            with_grad += step == 0;
        }
    }
    assert_true(with_grad > 0);
    kiln_executor_destroy(plain);
    kiln_executor_destroy(planned);

    /* Eval without planning against eval and infer with it: the loss and every output. */
    kiln_executor *eval_plain = executor(m, KILN_MODE_EVAL, false);
    kiln_executor *eval_planned = executor(m, KILN_MODE_EVAL, true);
    kiln_executor *infer_planned = executor(m, KILN_MODE_INFER, true);
    kiln_executor *all[3] = {eval_plain, eval_planned, infer_planned};
    for (int e = 0; e < 3; e++) {
        feed_random(all[e], &r, seed + 7);
        assert_int_equal(kiln_executor_forward(all[e], 0), KILN_OK);
    }
    for (int e = 1; e < 3; e++) {
        expect_same_value(eval_plain, all[e], &r, r.loss, seed, "eval loss");
        for (int o = 0; o < r.n_outputs; o++)
            expect_same_value(eval_plain, all[e], &r, r.outputs[o], seed, "output");
    }
    for (int e = 0; e < 3; e++)
        kiln_executor_destroy(all[e]);
    kiln_model_destroy(m);
    kiln_graph_destroy(r.g);
}

static void test_random_graphs(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, getenv("KILN_CACHE_DIR"));
    for (uint64_t seed = 1; seed <= 16; seed++)
        compare_random_graph(ctx, dev, seed);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

/* ---- the Fashion-MNIST CNN at batch 256 ---- */

static void test_fashion_mnist_infer_bytes(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, getenv("KILN_CACHE_DIR"));
    kiln_graph *g = NULL;
    assert_int_equal(kiln_graph_create(ctx, &g), KILN_OK);
    /* x (256, 1, 28, 28) -> conv 32 -> relu -> pool (256, 32, 14, 14) -> conv 64 -> relu ->
     * pool (256, 64, 7, 7) -> flatten (256, 3136) -> dense 128 -> relu -> dense 10 -> loss. */
    kiln_shape xs = {4, {256, 1, 28, 28}}, ls = {1, {256}};
    kiln_value x, labels, v, loss;
    assert_int_equal(kiln_graph_input(g, "x", &xs, KILN_F32, &x), KILN_OK);
    assert_int_equal(kiln_graph_input(g, "labels", &ls, KILN_I32, &labels), KILN_OK);
    int k3[3] = {3, 3, 1};
    kiln_pool_params pool = {.n_spatial = 2, .size = {2, 2, 1}};
    assert_int_equal(kiln_graph_conv(g, "conv1", x, 2, 32, k3, NULL, NULL, true, NULL, true, &v),
                     KILN_OK);
    assert_int_equal(kiln_graph_unary(g, "relu1", "relu", NULL, v, &v), KILN_OK);
    assert_int_equal(kiln_graph_unary(g, "pool1", "maxpool2d", &pool, v, &v), KILN_OK);
    assert_int_equal(kiln_graph_conv(g, "conv2", v, 2, 64, k3, NULL, NULL, true, NULL, true, &v),
                     KILN_OK);
    assert_int_equal(kiln_graph_unary(g, "relu2", "relu", NULL, v, &v), KILN_OK);
    assert_int_equal(kiln_graph_unary(g, "pool2", "maxpool2d", &pool, v, &v), KILN_OK);
    assert_int_equal(kiln_graph_unary(g, "flat", "flatten", NULL, v, &v), KILN_OK);
    assert_int_equal(kiln_graph_dense(g, "fc1", v, 128, true, &v), KILN_OK);
    assert_int_equal(kiln_graph_unary(g, "relu3", "relu", NULL, v, &v), KILN_OK);
    assert_int_equal(kiln_graph_dense(g, "fc2", v, 10, true, &v), KILN_OK);
    kiln_cross_entropy_params ce = {0};
    kiln_value in[2] = {v, labels};
    assert_int_equal(kiln_graph_op(g, "loss", "softmax_cross_entropy", &ce, in, 2, &loss), KILN_OK);
    assert_int_equal(kiln_graph_set_loss(g, loss), KILN_OK);
    kiln_model *m = NULL;
    assert_int_equal(kiln_model_create(g, dev, 1, &m), KILN_OK);
    kiln_executor *train = executor(m, KILN_MODE_TRAIN, true);
    uint64_t train_bytes = kiln_executor_planned_bytes(train);
    kiln_executor_destroy(train);
    kiln_executor *eval = executor(m, KILN_MODE_EVAL, true);
    uint64_t eval_bytes = kiln_executor_planned_bytes(eval);
    kiln_executor_destroy(eval);
    kiln_executor *infer = executor(m, KILN_MODE_INFER, true);
    uint64_t infer_bytes = kiln_executor_planned_bytes(infer);
    kiln_executor_destroy(infer);
    double ratio = (double)infer_bytes / (double)train_bytes;
    print_message("batch 256: train %.1f MB, eval %.1f MB, infer %.1f MB (planned); "
                  "infer / train = %.3f\n",
                  train_bytes / 1e6, eval_bytes / 1e6, infer_bytes / 1e6, ratio);
    /* 0.39 (150.5 MB train, 58.8 infer) before the executor fused relu into the convolutions,
     * which dropped train mode's pre-activation values and their gradients (92.7 MB) more than
     * infer mode's values (39.6 MB). */
    assert_true(ratio <= 0.45);
    kiln_model_destroy(m);
    kiln_graph_destroy(g);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest host[] = {
        cmocka_unit_test(test_random_intervals),
        cmocka_unit_test(test_hand_made_plans),
        cmocka_unit_test(test_out_of_memory),
    };
    int failed = cmocka_run_group_tests_name("planner (host)", host, NULL, NULL);
    if (failed != 0)
        return failed;
    kiln_test_require_device();
    const struct CMUnitTest device[] = {
        cmocka_unit_test(test_random_graphs),
        cmocka_unit_test(test_fashion_mnist_infer_bytes),
    };
    return cmocka_run_group_tests_name("planner (device)", device, NULL, NULL);
}
