/*
 * Executor modes on a model with batch-norm and dropout (x -> bn -> dropout -> flatten ->
 * dense, mse loss): eval output against a host computation with the running statistics and
 * identity dropout; dropout is the identity in eval and infer (bit for bit against the same
 * network without the dropout node) and active in train; eval and infer change no parameter
 * or buffer while train mode moves the running statistics as PyTorch does; infer and eval
 * have no gradients and plan fewer bytes than train.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/model.h"
#include "support/kiln_test.h"

/* x (N, C, H, W); the dense layer maps the flattened (N, C H W) to (N, OUT). */
enum { N = 4, C = 3, H = 3, W = 3, HW = H * W, FEAT = C * HW, OUT = 2 };
static const float MOMENTUM = 0.1f, EPS = 1e-3f, RATE = 0.5f;

typedef struct net {
    kiln_graph *g;
    kiln_value x, target, bn, drop, fc, loss;
} net;

static void build(kiln_context *ctx, bool with_dropout, net *n)
{
    kiln_shape xs = {4, {N, C, H, W}}, ts = {2, {N, OUT}};
    kiln_value flat;
    n->drop = -1;
    assert_int_equal(kiln_graph_create(ctx, &n->g), KILN_OK);
    assert_int_equal(kiln_graph_input(n->g, "x", &xs, KILN_F32, &n->x), KILN_OK);
    assert_int_equal(kiln_graph_input(n->g, "target", &ts, KILN_F32, &n->target), KILN_OK);
    assert_int_equal(kiln_graph_batchnorm(n->g, "bn", n->x, MOMENTUM, EPS, &n->bn), KILN_OK);
    kiln_value before_flatten = n->bn;
    if (with_dropout) {
        kiln_dropout_params dp = {.rate = RATE};
        assert_int_equal(kiln_graph_unary(n->g, "drop", "dropout", &dp, n->bn, &n->drop), KILN_OK);
        before_flatten = n->drop;
    }
    assert_int_equal(kiln_graph_unary(n->g, "flat", "flatten", NULL, before_flatten, &flat),
                     KILN_OK);
    assert_int_equal(kiln_graph_dense(n->g, "fc", flat, OUT, true, &n->fc), KILN_OK);
    kiln_value in[2] = {n->fc, n->target};
    assert_int_equal(kiln_graph_op(n->g, "loss", "mse", NULL, in, 2, &n->loss), KILN_OK);
    assert_int_equal(kiln_graph_set_loss(n->g, n->loss), KILN_OK);
}

/* Inputs whose batch statistics are far from the running statistics set below, so that a
 * mode using the wrong ones is caught. */
static void feed(kiln_executor *ex, const net *n)
{
    float x[N * FEAT], t[N * OUT];
    for (int i = 0; i < N * FEAT; i++)
        x[i] = 1.5f + 2.0f * (float)sin(1.3 * i + 0.2);
    for (int i = 0; i < N * OUT; i++)
        t[i] = (float)cos(0.9 * i);
    assert_int_equal(kiln_executor_set_input(ex, n->x, x, N * FEAT), KILN_OK);
    assert_int_equal(kiln_executor_set_input(ex, n->target, t, N * OUT), KILN_OK);
}

static const float GAMMA[C] = {1.5f, -0.5f, 2.0f}, BETA[C] = {0.1f, 0.2f, -0.3f},
                   MEAN[C] = {0.2f, -0.1f, 0.5f}, VAR[C] = {0.5f, 2.0f, 1.25f};

static void set_bn_state(kiln_model *m)
{
    assert_int_equal(kiln_model_write_state(m, "bn.weight", GAMMA, C), KILN_OK);
    assert_int_equal(kiln_model_write_state(m, "bn.bias", BETA, C), KILN_OK);
    assert_int_equal(kiln_model_write_state(m, "bn.running_mean", MEAN, C), KILN_OK);
    assert_int_equal(kiln_model_write_state(m, "bn.running_var", VAR, C), KILN_OK);
}

/* An executor that keeps every node output readable (infer mode always plans, and these
 * tests inspect intermediate values). */
static kiln_executor *executor(kiln_model *m, kiln_mode mode, bool plan)
{
    kiln_executor *ex = NULL;
    kiln_graph *g = kiln_model_get_graph(m);
    kiln_value all[64];
    size_t n_all = 0;
    for (size_t v = 0; v < kiln_graph_n_values(g) && n_all < 64; v++)
        if (kiln_graph_value_kind(g, (kiln_value)v) == KILN_VALUE_NODE)
            all[n_all++] = (kiln_value)v;
    kiln_executor_options o = {.mode = mode, .plan_memory = plan, .keep = all, .n_keep = n_all};
    assert_int_equal(kiln_executor_create(m, &o, &ex), KILN_OK);
    return ex;
}

static void run(kiln_executor *ex, const net *n, uint64_t step)
{
    feed(ex, n);
    assert_int_equal(kiln_executor_forward(ex, step), KILN_OK);
}

static void test_eval_uses_running_statistics(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, getenv("KILN_CACHE_DIR"));
    net n;
    build(ctx, true, &n);
    kiln_model *m = NULL;
    assert_int_equal(kiln_model_create(n.g, dev, 4, &m), KILN_OK);
    set_bn_state(m);
    float wt[FEAT * OUT], b[OUT], x[N * FEAT];
    assert_int_equal(kiln_model_read_state(m, "fc.weight", wt, FEAT * OUT), KILN_OK);
    assert_int_equal(kiln_model_read_state(m, "fc.bias", b, OUT), KILN_OK);
    for (int mode = KILN_MODE_EVAL; mode <= KILN_MODE_INFER; mode++) {
        kiln_executor *ex = executor(m, (kiln_mode)mode, false);
        run(ex, &n, 7);
        float bn[N * FEAT], out[N * OUT];
        assert_int_equal(kiln_executor_read(ex, n.x, x, N * FEAT), KILN_OK);
        assert_int_equal(kiln_executor_read(ex, n.bn, bn, N * FEAT), KILN_OK);
        assert_int_equal(kiln_executor_read(ex, n.fc, out, N * OUT), KILN_OK);
        /* Host: y = (x - running_mean) / sqrt(running_var + eps) gamma + beta, dropout the
         * identity, then the dense layer, in double. Float on the device rounds a handful of
         * operations per bn element (~1e-7 relative); a float sum of 28 terms is within
         * 28 * 6e-8 of the sum of their magnitudes, hence 5e-6 of it for the dense output. */
        double ref_bn[N * FEAT];
        for (int i = 0; i < N * FEAT; i++) {
            int c = (i / HW) % C;
            ref_bn[i] = ((double)x[i] - MEAN[c]) / sqrt((double)VAR[c] + EPS) * GAMMA[c] + BETA[c];
            if (fabs(bn[i] - ref_bn[i]) > 1e-6 + 1e-5 * fabs(ref_bn[i]))
                fail_msg("mode %d: bn[%d] = %.9g, host %.9g", mode, i, (double)bn[i], ref_bn[i]);
        }
        for (int r = 0; r < N; r++)
            for (int o = 0; o < OUT; o++) {
                double ref = b[o], scale = fabs(b[o]);
                for (int k = 0; k < FEAT; k++) {
                    ref += ref_bn[r * FEAT + k] * wt[k * OUT + o];
                    scale += fabs(ref_bn[r * FEAT + k] * wt[k * OUT + o]);
                }
                if (fabs(out[r * OUT + o] - ref) > 5e-6 * scale)
                    fail_msg("mode %d: out[%d][%d] = %.9g, host %.9g", mode, r, o,
                             (double)out[r * OUT + o], ref);
            }
        kiln_executor_destroy(ex);
    }
    kiln_model_destroy(m);
    kiln_graph_destroy(n.g);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

static void test_dropout_is_identity_outside_train(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, getenv("KILN_CACHE_DIR"));
    net with, without;
    build(ctx, true, &with);
    build(ctx, false, &without);
    kiln_model *mw = NULL, *mo = NULL;
    /* The same seed: parameters are initialised by name, so both models start equal. */
    assert_int_equal(kiln_model_create(with.g, dev, 12, &mw), KILN_OK);
    assert_int_equal(kiln_model_create(without.g, dev, 12, &mo), KILN_OK);
    set_bn_state(mw);
    set_bn_state(mo);
    for (int mode = KILN_MODE_EVAL; mode <= KILN_MODE_INFER; mode++) {
        kiln_executor *ew = executor(mw, (kiln_mode)mode, false);
        kiln_executor *eo = executor(mo, (kiln_mode)mode, false);
        run(ew, &with, 3);
        run(eo, &without, 3);
        float bn[N * FEAT], drop[N * FEAT], a[N * OUT], b[N * OUT], la, lb;
        assert_int_equal(kiln_executor_read(ew, with.bn, bn, N * FEAT), KILN_OK);
        assert_int_equal(kiln_executor_read(ew, with.drop, drop, N * FEAT), KILN_OK);
        assert_memory_equal(bn, drop, sizeof bn);
        assert_int_equal(kiln_executor_read(ew, with.fc, a, N * OUT), KILN_OK);
        assert_int_equal(kiln_executor_read(eo, without.fc, b, N * OUT), KILN_OK);
        assert_memory_equal(a, b, sizeof a);
        assert_int_equal(kiln_executor_read(ew, with.loss, &la, 1), KILN_OK);
        assert_int_equal(kiln_executor_read(eo, without.loss, &lb, 1), KILN_OK);
        assert_memory_equal(&la, &lb, sizeof la);
        kiln_executor_destroy(ew);
        kiln_executor_destroy(eo);
    }
    /* Train mode: each element is dropped (0) or kept and scaled by 1 / (1 - 0.5) = 2, which
     * is exact in float, and both happen. */
    kiln_executor *tr = executor(mw, KILN_MODE_TRAIN, false);
    run(tr, &with, 3);
    float bn[N * FEAT], drop[N * FEAT];
    assert_int_equal(kiln_executor_read(tr, with.bn, bn, N * FEAT), KILN_OK);
    assert_int_equal(kiln_executor_read(tr, with.drop, drop, N * FEAT), KILN_OK);
    int dropped = 0, kept = 0;
    for (int i = 0; i < N * FEAT; i++) {
        assert_true(bn[i] != 0.0f);
        if (drop[i] == 0.0f)
            dropped++;
        else if (drop[i] == 2.0f * bn[i])
            kept++;
        else
            fail_msg("train dropout[%d] = %.9g for input %.9g", i, (double)drop[i], (double)bn[i]);
    }
    assert_true(dropped > 0 && kept > 0);
    kiln_executor_destroy(tr);
    kiln_model_destroy(mw);
    kiln_model_destroy(mo);
    kiln_graph_destroy(with.g);
    kiln_graph_destroy(without.g);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

/* Every parameter and buffer of the model, concatenated in value order. */
static size_t read_all_state(kiln_model *m, const net *n, float *out, size_t capacity)
{
    size_t at = 0;
    for (size_t v = 0; v < kiln_graph_n_values(n->g); v++) {
        kiln_value_kind kind = kiln_graph_value_kind(n->g, (kiln_value)v);
        if (kind != KILN_VALUE_PARAMETER && kind != KILN_VALUE_BUFFER)
            continue;
        int64_t count = kiln_shape_count(kiln_graph_value_shape(n->g, (kiln_value)v));
        assert_true(at + (size_t)count <= capacity);
        assert_int_equal(
            kiln_model_read_state(m, kiln_graph_value_name(n->g, (kiln_value)v), out + at, count),
            KILN_OK);
        at += (size_t)count;
    }
    return at;
}

enum { STATE_CAP = 4 * C + FEAT * OUT + OUT };

static void test_only_train_changes_state(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, getenv("KILN_CACHE_DIR"));
    net n;
    build(ctx, true, &n);
    kiln_model *m = NULL;
    assert_int_equal(kiln_model_create(n.g, dev, 21, &m), KILN_OK);
    set_bn_state(m);
    float before[STATE_CAP], after[STATE_CAP];
    size_t total = read_all_state(m, &n, before, STATE_CAP);
    assert_int_equal(total, STATE_CAP);
    for (int mode = KILN_MODE_EVAL; mode <= KILN_MODE_INFER; mode++)
        for (int plan = 0; plan < 2; plan++) {
            kiln_executor *ex = executor(m, (kiln_mode)mode, plan);
            run(ex, &n, 1);
            run(ex, &n, 2);
            float loss;
            assert_int_equal(kiln_executor_read(ex, n.loss, &loss, 1), KILN_OK);
            kiln_executor_destroy(ex);
            read_all_state(m, &n, after, STATE_CAP);
            assert_memory_equal(before, after, sizeof before);
        }

    /* Train mode: forward moves the running statistics towards the batch's (unbiased
     * variance, PyTorch's momentum convention); backward without an optimiser step changes
     * no parameter. */
    kiln_executor *tr = executor(m, KILN_MODE_TRAIN, true);
    run(tr, &n, 1);
    assert_int_equal(kiln_executor_backward(tr), KILN_OK);
    float x[N * FEAT], mean[C], var[C];
    assert_int_equal(kiln_executor_read(tr, n.x, x, N * FEAT), KILN_OK);
    assert_int_equal(kiln_model_read_state(m, "bn.running_mean", mean, C), KILN_OK);
    assert_int_equal(kiln_model_read_state(m, "bn.running_var", var, C), KILN_OK);
    for (int c = 0; c < C; c++) {
        double sum = 0, sq = 0;
        for (int r = 0; r < N; r++)
            for (int i = 0; i < HW; i++)
                sum += x[(r * C + c) * HW + i];
        double mu = sum / (N * HW);
        for (int r = 0; r < N; r++)
            for (int i = 0; i < HW; i++)
                sq += pow(x[(r * C + c) * HW + i] - mu, 2);
        double want_mean = (1 - MOMENTUM) * MEAN[c] + MOMENTUM * mu;
        double want_var = (1 - MOMENTUM) * VAR[c] + MOMENTUM * sq / (N * HW - 1);
        /* Float sums of 36 values: a few ulps of the statistics. */
        if (fabs(mean[c] - want_mean) > 1e-5 + 1e-5 * fabs(want_mean) ||
            fabs(var[c] - want_var) > 1e-5 + 1e-5 * fabs(want_var))
            fail_msg("channel %d: running mean %.9g var %.9g, host %.9g %.9g", c, (double)mean[c],
                     (double)var[c], want_mean, want_var);
    }
    read_all_state(m, &n, after, STATE_CAP);
    size_t at = 0;
    for (size_t v = 0; v < kiln_graph_n_values(n.g); v++) {
        kiln_value_kind kind = kiln_graph_value_kind(n.g, (kiln_value)v);
        if (kind != KILN_VALUE_PARAMETER && kind != KILN_VALUE_BUFFER)
            continue;
        size_t count = (size_t)kiln_shape_count(kiln_graph_value_shape(n.g, (kiln_value)v));
        if (kind == KILN_VALUE_PARAMETER)
            assert_memory_equal(before + at, after + at, count * sizeof *before);
        at += count;
    }
    kiln_executor_destroy(tr);
    kiln_model_destroy(m);
    kiln_graph_destroy(n.g);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

static void test_no_gradients_outside_train(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, getenv("KILN_CACHE_DIR"));
    net n;
    build(ctx, true, &n);
    kiln_model *m = NULL;
    assert_int_equal(kiln_model_create(n.g, dev, 2, &m), KILN_OK);
    kiln_executor *tr = executor(m, KILN_MODE_TRAIN, true);
    kiln_executor *ev = executor(m, KILN_MODE_EVAL, true);
    kiln_executor *ev_unplanned = executor(m, KILN_MODE_EVAL, false);
    kiln_executor *in = executor(m, KILN_MODE_INFER, true);
    int n_params = 0;
    for (size_t v = 0; v < kiln_graph_n_values(n.g); v++) {
        kiln_value_kind kind = kiln_graph_value_kind(n.g, (kiln_value)v);
        if (kind != KILN_VALUE_PARAMETER && kind != KILN_VALUE_BUFFER)
            continue;
        /* Parameters have gradients in train mode only; buffers never do. */
        if (kind == KILN_VALUE_PARAMETER) {
            assert_non_null(kiln_executor_get_grad(tr, (kiln_value)v));
            n_params++;
        } else {
            assert_null(kiln_executor_get_grad(tr, (kiln_value)v));
        }
        assert_null(kiln_executor_get_grad(ev, (kiln_value)v));
        assert_null(kiln_executor_get_grad(in, (kiln_value)v));
    }
    assert_int_equal(n_params, 4);
    uint64_t train_bytes = kiln_executor_planned_bytes(tr);
    uint64_t eval_bytes = kiln_executor_planned_bytes(ev);
    uint64_t eval_unplanned_bytes = kiln_executor_planned_bytes(ev_unplanned);
    uint64_t infer_bytes = kiln_executor_planned_bytes(in);
    print_message("planned bytes: train %llu, eval %llu (unplanned %llu), infer %llu\n",
                  (unsigned long long)train_bytes, (unsigned long long)eval_bytes,
                  (unsigned long long)eval_unplanned_bytes, (unsigned long long)infer_bytes);
    assert_true(infer_bytes > 0);
    assert_true(infer_bytes < train_bytes);
    assert_true(infer_bytes <= eval_bytes);
    assert_true(infer_bytes < eval_unplanned_bytes);
    kiln_executor_destroy(tr);
    kiln_executor_destroy(ev);
    kiln_executor_destroy(ev_unplanned);
    kiln_executor_destroy(in);
    kiln_model_destroy(m);
    kiln_graph_destroy(n.g);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

int main(void)
{
    kiln_test_require_device();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eval_uses_running_statistics),
        cmocka_unit_test(test_dropout_is_identity_outside_train),
        cmocka_unit_test(test_only_train_changes_state),
        cmocka_unit_test(test_no_gradients_outside_train),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
