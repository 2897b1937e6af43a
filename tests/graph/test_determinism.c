/*
 * Determinism of training: two independent runs (graph, model, executor) with the same seed
 * give bit-identical losses over 5 SGD-with-momentum steps and identical final state, and
 * another seed gives other losses. State transfer: every parameter and buffer of a model
 * trained 3 steps, read by name and written into a fresh model (fresh graph, other seed),
 * gives equal eval outputs bit for bit, and leaving the buffers out does not. There is one
 * OpenCL device here, so both models share it; this is the path that loads a checkpoint on
 * another device.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/model.h"
#include "kiln/optim.h"
#include "support/kiln_test.h"

/* x (N, 1, 6, 6) -> conv 3 (N, 3, 6, 6) -> bn -> relu -> dropout -> pool (N, 3, 3, 3)
 * -> flatten (N, 27) -> dense (N, 3) -> softmax cross-entropy against labels (N,). */
enum { N = 4, S = 6, CLASSES = 3, STEPS = 5, MAX_STATE = 256 };

typedef struct net {
    kiln_graph *g;
    kiln_value x, labels, logits, loss;
} net;

static void build(kiln_context *ctx, net *n)
{
    kiln_shape xs = {4, {N, 1, S, S}}, ls = {1, {N}};
    kiln_value v;
    assert_int_equal(kiln_graph_create(ctx, &n->g), KILN_OK);
    assert_int_equal(kiln_graph_input(n->g, "x", &xs, KILN_F32, &n->x), KILN_OK);
    assert_int_equal(kiln_graph_input(n->g, "labels", &ls, KILN_I32, &n->labels), KILN_OK);
    int k3[3] = {3, 3, 1};
    assert_int_equal(
        kiln_graph_conv(n->g, "conv", n->x, 2, 3, k3, NULL, NULL, true, NULL, true, &v), KILN_OK);
    assert_int_equal(kiln_graph_batchnorm(n->g, "bn", v, 0.1f, 1e-5f, &v), KILN_OK);
    assert_int_equal(kiln_graph_unary(n->g, "act", "relu", NULL, v, &v), KILN_OK);
    kiln_dropout_params dp = {.rate = 0.2f};
    assert_int_equal(kiln_graph_unary(n->g, "drop", "dropout", &dp, v, &v), KILN_OK);
    kiln_pool_params pp = {.n_spatial = 2, .size = {2, 2, 1}};
    assert_int_equal(kiln_graph_unary(n->g, "pool", "maxpool2d", &pp, v, &v), KILN_OK);
    assert_int_equal(kiln_graph_unary(n->g, "flat", "flatten", NULL, v, &v), KILN_OK);
    assert_int_equal(kiln_graph_dense(n->g, "fc", v, CLASSES, true, &n->logits), KILN_OK);
    kiln_cross_entropy_params ce = {0};
    kiln_value in[2] = {n->logits, n->labels};
    assert_int_equal(kiln_graph_op(n->g, "loss", "softmax_cross_entropy", &ce, in, 2, &n->loss),
                     KILN_OK);
    assert_int_equal(kiln_graph_set_loss(n->g, n->loss), KILN_OK);
}

/* The batch of step `step`: different data each step, the same in every run. */
static void feed(kiln_executor *ex, const net *n, uint64_t step)
{
    float x[N * S * S];
    int32_t labels[N];
    for (int i = 0; i < N * S * S; i++)
        x[i] = (float)sin(0.37 * i + 1.1 * (double)step);
    for (int i = 0; i < N; i++)
        labels[i] = (int32_t)((i + step) % CLASSES);
    assert_int_equal(kiln_executor_set_input(ex, n->x, x, N * S * S), KILN_OK);
    assert_int_equal(kiln_executor_set_input(ex, n->labels, labels, N), KILN_OK);
}

static bool is_state(const kiln_graph *g, size_t v)
{
    kiln_value_kind kind = kiln_graph_value_kind(g, (kiln_value)v);
    return kind == KILN_VALUE_PARAMETER || kind == KILN_VALUE_BUFFER;
}

static int64_t count_of(const kiln_graph *g, size_t v)
{
    return kiln_shape_count(kiln_graph_value_shape(g, (kiln_value)v));
}

/* Trains a fresh model of a fresh graph for `steps` steps (forward, backward, SGD with
 * momentum on every parameter), writing the losses. Returns the model; *out_net holds its
 * graph. */
static kiln_model *train(kiln_context *ctx, kiln_device *dev, uint64_t seed, int steps,
                         float *losses, net *out_net)
{
    build(ctx, out_net);
    net *n = out_net;
    kiln_model *m = NULL;
    assert_int_equal(kiln_model_create(n->g, dev, seed, &m), KILN_OK);
    kiln_executor *ex = NULL;
    kiln_executor_options o = {.mode = KILN_MODE_TRAIN, .plan_memory = true};
    assert_int_equal(kiln_executor_create(m, &o, &ex), KILN_OK);
    size_t n_values = kiln_graph_n_values(n->g);
    kiln_tensor **velocity = calloc(n_values, sizeof *velocity);
    assert_non_null(velocity);
    static const float zeros[MAX_STATE] = {0};
    for (size_t v = 0; v < n_values; v++) {
        if (kiln_graph_value_kind(n->g, (kiln_value)v) != KILN_VALUE_PARAMETER)
            continue;
        assert_true(count_of(n->g, v) <= MAX_STATE);
        assert_int_equal(kiln_tensor_create(dev, kiln_graph_value_shape(n->g, (kiln_value)v),
                                            KILN_F32, "velocity", &velocity[v]),
                         KILN_OK);
        assert_int_equal(kiln_tensor_upload(velocity[v], zeros, count_of(n->g, v)), KILN_OK);
    }
    kiln_sgd_params sgd = {.lr = 0.1f, .momentum = 0.9f};
    for (int step = 0; step < steps; step++) {
        feed(ex, n, (uint64_t)step);
        assert_int_equal(kiln_executor_forward(ex, (uint64_t)step), KILN_OK);
        assert_int_equal(kiln_executor_backward(ex), KILN_OK);
        for (size_t v = 0; v < n_values; v++)
            if (velocity[v] != NULL)
                assert_int_equal(
                    kiln_optim_sgd_step(dev, &sgd, kiln_model_get_state(m, (kiln_value)v),
                                        kiln_executor_get_grad(ex, (kiln_value)v), velocity[v]),
                    KILN_OK);
        assert_int_equal(kiln_executor_read(ex, n->loss, &losses[step], 1), KILN_OK);
        assert_true(isfinite(losses[step]));
    }
    for (size_t v = 0; v < n_values; v++)
        kiln_tensor_destroy(velocity[v]);
    free(velocity);
    kiln_executor_destroy(ex);
    return m;
}

/* Every parameter and buffer, concatenated in value order; returns the element count. */
static size_t read_state(kiln_model *m, const kiln_graph *g, float *out)
{
    size_t at = 0;
    for (size_t v = 0; v < kiln_graph_n_values(g); v++) {
        if (!is_state(g, v))
            continue;
        assert_true(at + (size_t)count_of(g, v) <= 4 * MAX_STATE);
        assert_int_equal(kiln_model_read_state(m, kiln_graph_value_name(g, (kiln_value)v), out + at,
                                               count_of(g, v)),
                         KILN_OK);
        at += (size_t)count_of(g, v);
    }
    return at;
}

static void test_same_seed_same_losses(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, getenv("KILN_CACHE_DIR"));
    float a[STEPS], b[STEPS], c[STEPS];
    float sa[4 * MAX_STATE], sb[4 * MAX_STATE];
    net na, nb, nc;
    kiln_model *ma = train(ctx, dev, 2024, STEPS, a, &na);
    kiln_model *mb = train(ctx, dev, 2024, STEPS, b, &nb);
    kiln_model *mc = train(ctx, dev, 2025, STEPS, c, &nc);
    assert_memory_equal(a, b, sizeof a);
    size_t n_state = read_state(ma, na.g, sa);
    assert_int_equal(read_state(mb, nb.g, sb), n_state);
    assert_memory_equal(sa, sb, n_state * sizeof *sa);
    /* Training moved the losses, and another seed starts elsewhere. */
    assert_true(a[STEPS - 1] != a[0]);
    for (int i = 0; i < STEPS; i++)
        if (a[i] == c[i])
            fail_msg("step %d: seeds 2024 and 2025 give the same loss %.9g", i, (double)a[i]);
    kiln_model_destroy(ma);
    kiln_model_destroy(mb);
    kiln_model_destroy(mc);
    kiln_graph_destroy(na.g);
    kiln_graph_destroy(nb.g);
    kiln_graph_destroy(nc.g);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

/* Eval-mode logits and loss on a fixed batch (an unplanned executor keeps the logits). */
static void eval_outputs(kiln_model *m, const net *n, float *logits, float *loss)
{
    kiln_executor *ex = NULL;
    kiln_executor_options o = {.mode = KILN_MODE_EVAL, .plan_memory = false};
    assert_int_equal(kiln_executor_create(m, &o, &ex), KILN_OK);
    feed(ex, n, 99);
    assert_int_equal(kiln_executor_forward(ex, 0), KILN_OK);
    assert_int_equal(kiln_executor_read(ex, n->logits, logits, N * CLASSES), KILN_OK);
    assert_int_equal(kiln_executor_read(ex, n->loss, loss, 1), KILN_OK);
    kiln_executor_destroy(ex);
}

/* Copies every parameter (and, with `buffers`, every buffer) from `from` to `to` by name. */
static void copy_state(kiln_model *from, const net *nf, kiln_model *to, bool buffers)
{
    float host[MAX_STATE];
    for (size_t v = 0; v < kiln_graph_n_values(nf->g); v++) {
        if (!is_state(nf->g, v) ||
            (!buffers && kiln_graph_value_kind(nf->g, (kiln_value)v) == KILN_VALUE_BUFFER))
            continue;
        const char *name = kiln_graph_value_name(nf->g, (kiln_value)v);
        int64_t count = count_of(nf->g, v);
        assert_int_equal(kiln_model_read_state(from, name, host, count), KILN_OK);
        assert_int_equal(kiln_model_write_state(to, name, host, count), KILN_OK);
    }
}

static void test_state_moves_by_name(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, getenv("KILN_CACHE_DIR"));
    float losses[3];
    net trained, fresh, partial;
    kiln_model *mt = train(ctx, dev, 31, 3, losses, &trained);
    float want[N * CLASSES], want_loss;
    eval_outputs(mt, &trained, want, &want_loss);

    /* A fresh graph and a model with another seed, then every parameter and buffer. */
    build(ctx, &fresh);
    kiln_model *mf = NULL;
    assert_int_equal(kiln_model_create(fresh.g, dev, 77, &mf), KILN_OK);
    float got[N * CLASSES], got_loss;
    eval_outputs(mf, &fresh, got, &got_loss);
    assert_true(memcmp(want, got, sizeof want) != 0); /* the seeds differ */
    copy_state(mt, &trained, mf, true);
    eval_outputs(mf, &fresh, got, &got_loss);
    assert_memory_equal(want, got, sizeof want);
    assert_memory_equal(&want_loss, &got_loss, sizeof want_loss);

    /* Without the running statistics, eval mode normalises differently. */
    build(ctx, &partial);
    kiln_model *mp = NULL;
    assert_int_equal(kiln_model_create(partial.g, dev, 77, &mp), KILN_OK);
    copy_state(mt, &trained, mp, false);
    eval_outputs(mp, &partial, got, &got_loss);
    assert_true(memcmp(want, got, sizeof want) != 0);

    kiln_model_destroy(mt);
    kiln_model_destroy(mf);
    kiln_model_destroy(mp);
    kiln_graph_destroy(trained.g);
    kiln_graph_destroy(fresh.g);
    kiln_graph_destroy(partial.g);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

int main(void)
{
    kiln_test_require_device();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_seed_same_losses),
        cmocka_unit_test(test_state_moves_by_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
