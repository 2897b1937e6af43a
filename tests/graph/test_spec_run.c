/*
 * A spec-built graph runs on the device: a small dense net with the dice_bce loss, whose
 * composition (dice on sigmoid(logits) plus bce_with_logits on the same logits) is checked
 * against the loss computed on the host in double from the logits the device produced, and
 * whose parameter gradients (flowing through both branches of the fanned-out logits) are
 * checked against central differences of the eval-mode loss.
 */
#include <math.h>
#include <stdlib.h>

#include "kiln/model.h"
#include "kiln/spec.h"
#include "support/kiln_test.h"

enum { N = 3, IN = 5, HIDDEN = 4, OUT = 2 };

static const float SMOOTH = 0.5f;

typedef struct net {
    kiln_graph *g;
    kiln_value x, t, logits, loss;
} net;

static void build(kiln_context *ctx, net *n)
{
    kiln_layer_spec layers[3];
    kiln_layer_spec_init(&layers[0], KILN_LAYER_DENSE);
    layers[0].name = "hidden";
    layers[0].dense.units = HIDDEN;
    kiln_layer_spec_init(&layers[1], KILN_LAYER_TANH);
    kiln_layer_spec_init(&layers[2], KILN_LAYER_DENSE);
    layers[2].name = "head";
    layers[2].dense.units = OUT;
    kiln_spec s;
    kiln_spec_init(&s);
    s.input = kiln_shape_of(1, (int64_t[]){IN});
    s.batch_size = N;
    s.layers = layers;
    s.n_layers = 3;
    kiln_loss_spec_init(&s.loss, KILN_LOSS_DICE_BCE);
    s.loss.smooth = SMOOTH;
    kiln_status rc = kiln_spec_build(ctx, &s, &n->g, &n->x, &n->t, &n->logits, &n->loss);
    if (rc != KILN_OK)
        fail_msg("%s", kiln_context_last_error(ctx));
}

static void feed(kiln_executor *ex, const net *n)
{
    float x[N * IN], t[N * OUT] = {1, 0, 0, 1, 1, 1};
    for (int i = 0; i < N * IN; i++)
        x[i] = (float)cos(0.9 * i + 0.2);
    assert_int_equal(kiln_executor_set_input(ex, n->x, x, N * IN), KILN_OK);
    assert_int_equal(kiln_executor_set_input(ex, n->t, t, N * OUT), KILN_OK);
}

/* dice(sigmoid(z), t) + bce_with_logits(z, t) in double: DESIGN.md's dice, PyTorch's BCE. */
static double host_loss(const float *z, const float *t)
{
    double dice = 0, bce = 0;
    for (int i = 0; i < N; i++) {
        double inter = 0, p_sum = 0, t_sum = 0;
        for (int c = 0; c < OUT; c++) {
            double zi = z[i * OUT + c], ti = t[i * OUT + c], p = 1 / (1 + exp(-zi));
            inter += p * ti;
            p_sum += p;
            t_sum += ti;
            bce += fmax(zi, 0) - zi * ti + log1p(exp(-fabs(zi)));
        }
        dice += (2 * inter + SMOOTH) / (p_sum + t_sum + SMOOTH);
    }
    return (1 - dice / N) + bce / (N * OUT);
}

static float loss_of(kiln_executor *ex, const net *n)
{
    float loss = 0;
    assert_int_equal(kiln_executor_forward(ex, 0), KILN_OK);
    assert_int_equal(kiln_executor_read(ex, n->loss, &loss, 1), KILN_OK);
    return loss;
}

static void test_dice_bce_runs(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, getenv("KILN_CACHE_DIR"));
    net n;
    build(ctx, &n);
    kiln_model *model = NULL;
    assert_int_equal(kiln_model_create(n.g, dev, 11, &model), KILN_OK);
    kiln_executor *train = NULL, *eval = NULL;
    kiln_executor_options to = {.mode = KILN_MODE_TRAIN, .plan_memory = false}, eo = {.mode = KILN_MODE_EVAL, .plan_memory = false};
    assert_int_equal(kiln_executor_create(model, &to, &train), KILN_OK);
    assert_int_equal(kiln_executor_create(model, &eo, &eval), KILN_OK);
    feed(train, &n);
    feed(eval, &n);
    float loss = loss_of(train, &n), z[N * OUT], t[N * OUT];
    assert_int_equal(kiln_executor_read(train, n.logits, z, N * OUT), KILN_OK);
    assert_int_equal(kiln_executor_read(train, n.t, t, N * OUT), KILN_OK);
    double want = host_loss(z, t);
    if (fabs(loss - want) > 1e-5 + 1e-5 * fabs(want))
        fail_msg("dice_bce loss %.9g, host %.9g", (double)loss, want);
    assert_int_equal(kiln_executor_backward(train), KILN_OK);
    const char *names[4] = {"hidden.weight", "hidden.bias", "head.weight", "head.bias"};
    for (int p = 0; p < 4; p++) {
        kiln_tensor *gt = kiln_executor_get_grad(train, kiln_graph_find(n.g, names[p]));
        assert_non_null(gt);
        int64_t count = kiln_tensor_count(gt);
        float grad[HIDDEN * IN], w[HIDDEN * IN];
        assert_true(count <= HIDDEN * IN);
        assert_int_equal(kiln_tensor_download(gt, grad, count), KILN_OK);
        assert_int_equal(kiln_model_read_state(model, names[p], w, count), KILN_OK);
        for (int64_t e = 0; e < count; e++) {
            /* Float central differences, h = 1e-2: as in test_executor.c. */
            float saved = w[e], h = 1e-2f;
            w[e] = saved + h;
            assert_int_equal(kiln_model_write_state(model, names[p], w, count), KILN_OK);
            float up = loss_of(eval, &n);
            w[e] = saved - h;
            assert_int_equal(kiln_model_write_state(model, names[p], w, count), KILN_OK);
            float down = loss_of(eval, &n);
            w[e] = saved;
            assert_int_equal(kiln_model_write_state(model, names[p], w, count), KILN_OK);
            double fd = ((double)up - (double)down) / (2.0 * h);
            if (fabs(fd - grad[e]) > 2e-3 + 2e-2 * fabs(fd))
                fail_msg("%s[%lld]: backward %g, central difference %g", names[p], (long long)e,
                         (double)grad[e], fd);
        }
    }
    kiln_executor_destroy(train);
    kiln_executor_destroy(eval);
    kiln_model_destroy(model);
    kiln_graph_destroy(n.g);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

int main(void)
{
    kiln_test_require_device();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dice_bce_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
