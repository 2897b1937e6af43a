/*
 * Whole-graph gradient checks: every parameter's backward gradient, computed by a planned
 * train-mode executor, against central differences of the loss computed in float on the
 * device. Three graphs: a small CNN in train mode (conv2d, batchnorm with batch statistics,
 * relu, dropout with a fixed mask, maxpool, flatten, dense, softmax cross-entropy); a 3-D net
 * whose first activation fans out to a conv and to a concat skip connection (dice loss); and
 * an MLP whose hidden value is used three times by two nodes and whose "gain" parameter is
 * used by two nodes, so gradients must accumulate at each fan-out.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/model.h"
#include "support/kiln_test.h"

enum { MAX_INPUTS = 4, MAX_CHECKED = 32 };

/* A graph with its loss and the host data of its inputs. */
typedef struct net {
    kiln_graph *g;
    kiln_value loss;
    int n_inputs;
    kiln_value inputs[MAX_INPUTS];
    const void *data[MAX_INPUTS];
    int64_t counts[MAX_INPUTS];
} net;

static void add_input(net *n, kiln_value v, const void *data, int64_t count)
{
    n->inputs[n->n_inputs] = v;
    n->data[n->n_inputs] = data;
    n->counts[n->n_inputs] = count;
    n->n_inputs++;
}

/* Deterministic uniform numbers in [-1, 1) from a 64-bit LCG (Knuth's MMIX constants). */
static float uniform(uint64_t *state)
{
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(*state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void fill_uniform(float *x, int64_t n, uint64_t seed)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = uniform(&seed);
}

static void feed(kiln_executor *ex, const net *n)
{
    for (int i = 0; i < n->n_inputs; i++)
        assert_int_equal(kiln_executor_set_input(ex, n->inputs[i], n->data[i], n->counts[i]),
                         KILN_OK);
}

/* The loss at the model's current parameters. The step is always the same, so dropout's mask
 * (keyed by the model's seed, the step and the node) is the one backward differentiated. */
static double loss_at(kiln_executor *ex, const net *n, uint64_t step)
{
    float loss = 0;
    assert_int_equal(kiln_executor_forward(ex, step), KILN_OK);
    assert_int_equal(kiln_executor_read(ex, n->loss, &loss, 1), KILN_OK);
    assert_true(isfinite(loss));
    return loss;
}

/* Central difference of the loss along element e of parameter `name` (w holds its values). */
static double central_difference(kiln_model *model, kiln_executor *ex, const net *n, uint64_t step,
                                 const char *name, float *w, int64_t count, int64_t e, float h)
{
    float saved = w[e];
    w[e] = saved + h;
    assert_int_equal(kiln_model_write_state(model, name, w, count), KILN_OK);
    double up = loss_at(ex, n, step);
    w[e] = saved - h;
    assert_int_equal(kiln_model_write_state(model, name, w, count), KILN_OK);
    double down = loss_at(ex, n, step);
    w[e] = saved;
    assert_int_equal(kiln_model_write_state(model, name, w, count), KILN_OK);
    /* The step actually taken is the difference of the rounded arguments. */
    return (up - down) / ((double)(saved + h) - (double)(saved - h));
}

/*
 * Tolerances. The loss is a float computed through a few hundred roundings; measured here,
 * one evaluation is off by about 1.2e-7 |L| (|L| ~ 1), and the two evaluations of a central
 * difference with step h put up to ~1.2e-7 |L| / h into it. NOISE = 2.5e-7 allows twice that;
 * RTOL = 1e-2 covers the truncation error h^2 f''' / 6 and the float rounding of the backward
 * sums. A gradient bug (a missing or doubled contribution, a wrong mask) is an error of the
 * gradient's own size, tens of percent at least.
 *
 * ReLU and max-pool are piecewise linear: when the +-h probe crosses a kink (a pre-activation,
 * or the gap between a window's two largest values, within ~h of 0) the difference averages
 * two slopes. Random inputs make kinks rare per unit of h, but a conv weight moves hundreds of
 * pre-activations at once. An element that fails at the first step is therefore retried with
 * steps 3x, 10x and 30x smaller (each crossing a kink that much less often), with the noise
 * allowance growing as 1 / h; at most a quarter of the elements may need it. A wrong gradient
 * fails at every step.
 */
static const double NOISE = 2.5e-7, RTOL = 1e-2;
enum { N_STEPS = 4 };
static const float STEP_DIVISOR[N_STEPS] = {1, 3, 10, 30};

static bool close_enough(double fd, double grad, double loss, float h)
{
    return fabs(fd - grad) <= NOISE * fabs(loss) / h + RTOL * fabs(fd);
}

/* Elements to check: all of a small parameter, an even spread of a large one. */
static int64_t element(int64_t k, int64_t count)
{
    return count <= MAX_CHECKED ? k : (k * count) / MAX_CHECKED + (k * 7) % (count / MAX_CHECKED);
}

/* Checks every parameter of `n` on a model initialised from `seed`, running forward at `step`,
 * with first step h0. */
static void check_gradients(kiln_device *dev, net *n, uint64_t seed, uint64_t step, float h0)
{
    kiln_model *model = NULL;
    assert_int_equal(kiln_model_create(n->g, dev, seed, &model), KILN_OK);
    /* Gradients from a planned executor; differences from an unplanned one of the same mode,
     * which shares the model's parameters (and so sees every write_state). */
    kiln_executor *train = NULL, *probe = NULL;
    kiln_executor_options to = {.mode = KILN_MODE_TRAIN, .plan_memory = true}, po = {.mode = KILN_MODE_TRAIN, .plan_memory = false};
    assert_int_equal(kiln_executor_create(model, &to, &train), KILN_OK);
    assert_int_equal(kiln_executor_create(model, &po, &probe), KILN_OK);
    feed(train, n);
    feed(probe, n);
    double base = loss_at(train, n, step);
    assert_int_equal(kiln_executor_backward(train), KILN_OK);
    /* Same loss from both executors: the probe really evaluates the differentiated function. */
    double probe_base = loss_at(probe, n, step);
    assert_true(base == probe_base);

    /* Download every gradient before probing: with planning, gradient buffers may share
     * memory with activations that later forward passes overwrite. */
    size_t n_values = kiln_graph_n_values(n->g);
    float **grads = calloc(n_values, sizeof *grads);
    assert_non_null(grads);
    int n_params = 0;
    for (size_t v = 0; v < n_values; v++) {
        if (kiln_graph_value_kind(n->g, (kiln_value)v) != KILN_VALUE_PARAMETER)
            continue;
        kiln_tensor *gt = kiln_executor_get_grad(train, (kiln_value)v);
        assert_non_null(gt);
        int64_t count = kiln_tensor_count(gt);
        grads[v] = malloc((size_t)count * sizeof **grads);
        assert_non_null(grads[v]);
        assert_int_equal(kiln_tensor_download(gt, grads[v], count), KILN_OK);
        n_params++;
    }
    assert_true(n_params > 0);

    int retries = 0, checked = 0;
    for (size_t v = 0; v < n_values; v++) {
        if (grads[v] == NULL)
            continue;
        const char *name = kiln_graph_value_name(n->g, (kiln_value)v);
        int64_t count = kiln_shape_count(kiln_graph_value_shape(n->g, (kiln_value)v));
        float *w = malloc((size_t)count * sizeof *w);
        assert_non_null(w);
        assert_int_equal(kiln_model_read_state(model, name, w, count), KILN_OK);
        int64_t n_checked = count < MAX_CHECKED ? count : MAX_CHECKED;
        for (int64_t k = 0; k < n_checked; k++) {
            int64_t e = element(k, count);
            double g = grads[v][e], fd[N_STEPS];
            int s = 0;
            for (; s < N_STEPS; s++) {
                float h = h0 / STEP_DIVISOR[s];
                fd[s] = central_difference(model, probe, n, step, name, w, count, e, h);
                if (close_enough(fd[s], g, base, h))
                    break;
            }
            checked++;
            retries += s > 0;
            if (s == N_STEPS)
                fail_msg("%s[%lld]: backward %.7g; central differences %.7g, %.7g, %.7g, %.7g "
                         "at h = %g / (1, 3, 10, 30)",
                         name, (long long)e, g, fd[0], fd[1], fd[2], fd[3], (double)h0);
        }
        free(w);
    }
    if (4 * retries > checked)
        fail_msg("%d of %d elements needed a smaller step than %g (at most a quarter expected "
                 "from kinks)",
                 retries, checked, (double)h0);
    print_message("%d elements checked, %d needed a smaller step than %g\n", checked, retries,
                  (double)h0);
    for (size_t v = 0; v < n_values; v++)
        free(grads[v]);
    free(grads);
    kiln_executor_destroy(train);
    kiln_executor_destroy(probe);
    kiln_model_destroy(model);
}

/* ---- a: CNN in train mode ---- */

enum { CN = 2, CLASSES = 3 };

static void test_cnn_train_mode(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, getenv("KILN_CACHE_DIR"));
    net n = {0};
    assert_int_equal(kiln_graph_create(ctx, &n.g), KILN_OK);
    /* x (N, 1, 8, 8) -> conv (N, 4, 8, 8) -> bn -> relu -> dropout -> pool (N, 4, 4, 4)
     * -> flatten (N, 64) -> dense (N, 3) -> softmax cross-entropy against labels (N,). */
    kiln_shape xs = {4, {CN, 1, 8, 8}}, ls = {1, {CN}};
    kiln_value x, labels, conv, bn, act, drop, pool, flat, logits;
    assert_int_equal(kiln_graph_input(n.g, "x", &xs, KILN_F32, &x), KILN_OK);
    assert_int_equal(kiln_graph_input(n.g, "labels", &ls, KILN_I32, &labels), KILN_OK);
    int k3[3] = {3, 3, 1};
    assert_int_equal(kiln_graph_conv(n.g, "conv", x, 2, 4, k3, NULL, NULL, true, NULL, true, &conv),
                     KILN_OK);
    assert_int_equal(kiln_graph_batchnorm(n.g, "bn", conv, 0.1f, 1e-5f, &bn), KILN_OK);
    assert_int_equal(kiln_graph_unary(n.g, "act", "relu", NULL, bn, &act), KILN_OK);
    kiln_dropout_params dp = {.rate = 0.3f};
    assert_int_equal(kiln_graph_unary(n.g, "drop", "dropout", &dp, act, &drop), KILN_OK);
    kiln_pool_params pp = {.n_spatial = 2, .size = {2, 2, 1}, .stride = {2, 2, 1}};
    assert_int_equal(kiln_graph_unary(n.g, "pool", "maxpool2d", &pp, drop, &pool), KILN_OK);
    assert_int_equal(kiln_graph_unary(n.g, "flat", "flatten", NULL, pool, &flat), KILN_OK);
    assert_int_equal(kiln_graph_dense(n.g, "fc", flat, CLASSES, true, &logits), KILN_OK);
    kiln_cross_entropy_params ce = {0};
    kiln_value in[2] = {logits, labels};
    assert_int_equal(kiln_graph_op(n.g, "loss", "softmax_cross_entropy", &ce, in, 2, &n.loss),
                     KILN_OK);
    assert_int_equal(kiln_graph_set_loss(n.g, n.loss), KILN_OK);
    float xd[CN * 64];
    int32_t ld[CN] = {0, 2};
    fill_uniform(xd, CN * 64, 11);
    add_input(&n, x, xd, CN * 64);
    add_input(&n, labels, ld, CN);
    /* 83 elements are probed: all of conv, bn and fc.bias, 32 of fc.weight. */
    check_gradients(dev, &n, 5, 3, 1e-2f);
    kiln_graph_destroy(n.g);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

/* ---- b: 3-D net with a concat skip connection ---- */

static void test_3d_skip_connection(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, getenv("KILN_CACHE_DIR"));
    net n = {0};
    assert_int_equal(kiln_graph_create(ctx, &n.g), KILN_OK);
    /* x (1, 2, 4, 4, 4) -> c1 (1, 3, ...) -> relu = e1 -> c2 (1, 3, ...) -> relu = e2;
     * concat [e1, e2] (1, 6, ...) -> head 1x1x1 (1, 1, ...) -> sigmoid -> dice vs target.
     * e1 has two consumers (c2 and the concat): its gradient is the sum of both. */
    kiln_shape xs = {5, {1, 2, 4, 4, 4}}, ts = {5, {1, 1, 4, 4, 4}};
    kiln_value x, target, c1, e1, c2, e2, cat, head, prob;
    assert_int_equal(kiln_graph_input(n.g, "x", &xs, KILN_F32, &x), KILN_OK);
    assert_int_equal(kiln_graph_input(n.g, "target", &ts, KILN_F32, &target), KILN_OK);
    int k3[3] = {3, 3, 3}, k1[3] = {1, 1, 1};
    assert_int_equal(kiln_graph_conv(n.g, "c1", x, 3, 3, k3, NULL, NULL, true, NULL, true, &c1),
                     KILN_OK);
    assert_int_equal(kiln_graph_unary(n.g, "e1", "relu", NULL, c1, &e1), KILN_OK);
    assert_int_equal(kiln_graph_conv(n.g, "c2", e1, 3, 3, k3, NULL, NULL, true, NULL, true, &c2),
                     KILN_OK);
    assert_int_equal(kiln_graph_unary(n.g, "e2", "relu", NULL, c2, &e2), KILN_OK);
    kiln_axis_params axis = {.axis = 1};
    kiln_value pair[2] = {e1, e2};
    assert_int_equal(kiln_graph_op(n.g, "cat", "concat", &axis, pair, 2, &cat), KILN_OK);
    assert_int_equal(
        kiln_graph_conv(n.g, "head", cat, 3, 1, k1, NULL, NULL, true, NULL, true, &head), KILN_OK);
    assert_int_equal(kiln_graph_unary(n.g, "prob", "sigmoid", NULL, head, &prob), KILN_OK);
    kiln_dice_params dice = {.smooth = 1.0f};
    kiln_value in[2] = {prob, target};
    assert_int_equal(kiln_graph_op(n.g, "loss", "dice", &dice, in, 2, &n.loss), KILN_OK);
    assert_int_equal(kiln_graph_set_loss(n.g, n.loss), KILN_OK);
    float xd[2 * 64], td[64];
    fill_uniform(xd, 2 * 64, 23);
    uint64_t s = 99;
    for (int i = 0; i < 64; i++)
        td[i] = uniform(&s) > 0 ? 1.0f : 0.0f;
    add_input(&n, x, xd, 2 * 64);
    add_input(&n, target, td, 64);
    /* Each c1 weight moves all 192 pre-activations of e1 by up to ~h: at h = 1e-2 about one
     * of them crosses 0 per probe, so this net starts at h = 1e-3 (its loss is ~0.5). */
    check_gradients(dev, &n, 17, 0, 1e-3f);
    kiln_graph_destroy(n.g);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

/* ---- c: MLP with values and a parameter used more than once ---- */

enum { MN = 4, IN = 6, HIDDEN = 5 };

static void test_mlp_reused_values(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, getenv("KILN_CACHE_DIR"));
    net n = {0};
    assert_int_equal(kiln_graph_create(ctx, &n.g), KILN_OK);
    /* x (N, 6) -> fc1 (N, 5) -> relu = y;  twice = add(y, y);  scaled = mul(y, gain);
     * z = add(twice, scaled);  zg = mul(z, gain);  fc2 (N, 3) -> cross-entropy.
     * y feeds three input slots of two nodes; gain (5,) feeds two nodes (broadcast over N). */
    kiln_shape xs = {2, {MN, IN}}, ls = {1, {MN}}, gs = {1, {HIDDEN}};
    kiln_value x, labels, gain, h, y, twice, scaled, z, zg, logits;
    assert_int_equal(kiln_graph_input(n.g, "x", &xs, KILN_F32, &x), KILN_OK);
    assert_int_equal(kiln_graph_input(n.g, "labels", &ls, KILN_I32, &labels), KILN_OK);
    kiln_init half = {KILN_INIT_CONSTANT, 0.5f, 0, 0};
    assert_int_equal(kiln_graph_parameter(n.g, "gain", &gs, &half, &gain), KILN_OK);
    assert_int_equal(kiln_graph_dense(n.g, "fc1", x, HIDDEN, true, &h), KILN_OK);
    assert_int_equal(kiln_graph_unary(n.g, "y", "relu", NULL, h, &y), KILN_OK);
    kiln_value yy[2] = {y, y}, yg[2] = {y, gain};
    assert_int_equal(kiln_graph_op(n.g, "twice", "add", NULL, yy, 2, &twice), KILN_OK);
    assert_int_equal(kiln_graph_op(n.g, "scaled", "mul", NULL, yg, 2, &scaled), KILN_OK);
    kiln_value ts[2] = {twice, scaled};
    assert_int_equal(kiln_graph_op(n.g, "z", "add", NULL, ts, 2, &z), KILN_OK);
    kiln_value zgain[2] = {z, gain};
    assert_int_equal(kiln_graph_op(n.g, "zg", "mul", NULL, zgain, 2, &zg), KILN_OK);
    assert_int_equal(kiln_graph_dense(n.g, "fc2", zg, CLASSES, true, &logits), KILN_OK);
    kiln_cross_entropy_params ce = {0};
    kiln_value in[2] = {logits, labels};
    assert_int_equal(kiln_graph_op(n.g, "loss", "softmax_cross_entropy", &ce, in, 2, &n.loss),
                     KILN_OK);
    assert_int_equal(kiln_graph_set_loss(n.g, n.loss), KILN_OK);
    float xd[MN * IN];
    int32_t ld[MN] = {1, 0, 2, 1};
    fill_uniform(xd, MN * IN, 5);
    add_input(&n, x, xd, MN * IN);
    add_input(&n, labels, ld, MN);
    check_gradients(dev, &n, 8, 0, 1e-2f);
    kiln_graph_destroy(n.g);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

int main(void)
{
    kiln_test_require_device();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cnn_train_mode),
        cmocka_unit_test(test_3d_skip_connection),
        cmocka_unit_test(test_mlp_reused_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
