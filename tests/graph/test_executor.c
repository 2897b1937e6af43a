/*
 * The executor on a small MLP (dense, relu, dense, softmax cross-entropy): every parameter's
 * backward gradient against central differences of the eval-mode loss on the same model; the
 * same loss and gradients bit for bit with and without memory planning; eval changes no
 * parameter; errors for backward outside train mode and for reading a reused intermediate;
 * a step queued with the non-blocking upload and reads gives the blocking step's values.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/model.h"
#include "support/kiln_test.h"

enum { N = 4, IN = 6, HIDDEN = 5, CLASSES = 3 };

typedef struct mlp {
    kiln_graph *g;
    kiln_value x, labels, loss, params[4];
} mlp;

static void build(kiln_context *ctx, mlp *m)
{
    kiln_shape xs = {2, {N, IN}}, ls = {1, {N}};
    assert_int_equal(kiln_graph_create(ctx, &m->g), KILN_OK);
    assert_int_equal(kiln_graph_input(m->g, "x", &xs, KILN_F32, &m->x), KILN_OK);
    assert_int_equal(kiln_graph_input(m->g, "labels", &ls, KILN_I32, &m->labels), KILN_OK);
    kiln_value h, a, logits;
    assert_int_equal(kiln_graph_dense(m->g, "fc1", m->x, HIDDEN, true, &h), KILN_OK);
    assert_int_equal(kiln_graph_unary(m->g, "act1", "relu", NULL, h, &a), KILN_OK);
    assert_int_equal(kiln_graph_dense(m->g, "fc2", a, CLASSES, true, &logits), KILN_OK);
    kiln_cross_entropy_params ce = {0};
    kiln_value in[2] = {logits, m->labels};
    assert_int_equal(kiln_graph_op(m->g, "loss", "softmax_cross_entropy", &ce, in, 2, &m->loss),
                     KILN_OK);
    assert_int_equal(kiln_graph_set_loss(m->g, m->loss), KILN_OK);
    const char *names[4] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};
    for (int i = 0; i < 4; i++)
        m->params[i] = kiln_graph_find(m->g, names[i]);
}

static void feed(kiln_executor *ex, const mlp *m)
{
    float x[N * IN];
    int32_t labels[N] = {0, 2, 1, 2};
    for (int i = 0; i < N * IN; i++)
        x[i] = (float)sin(0.7 * i + 0.3);
    assert_int_equal(kiln_executor_set_input(ex, m->x, x, N * IN), KILN_OK);
    assert_int_equal(kiln_executor_set_input(ex, m->labels, labels, N), KILN_OK);
}

static float loss_of(kiln_executor *ex, const mlp *m)
{
    float loss = 0;
    assert_int_equal(kiln_executor_forward(ex, 0), KILN_OK);
    assert_int_equal(kiln_executor_read(ex, m->loss, &loss, 1), KILN_OK);
    return loss;
}

static void test_gradients_match_finite_differences(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, getenv("KILN_CACHE_DIR"));
    mlp m;
    build(ctx, &m);
    kiln_model *model = NULL;
    assert_int_equal(kiln_model_create(m.g, dev, 42, &model), KILN_OK);
    kiln_executor *train = NULL, *eval = NULL;
    kiln_executor_options to = {.mode = KILN_MODE_TRAIN, .plan_memory = true},
                          eo = {.mode = KILN_MODE_EVAL, .plan_memory = false};
    assert_int_equal(kiln_executor_create(model, &to, &train), KILN_OK);
    assert_int_equal(kiln_executor_create(model, &eo, &eval), KILN_OK);
    feed(train, &m);
    feed(eval, &m);
    loss_of(train, &m);
    assert_int_equal(kiln_executor_backward(train), KILN_OK);
    for (int p = 0; p < 4; p++) {
        kiln_tensor *gt = kiln_executor_get_grad(train, m.params[p]);
        assert_non_null(gt);
        int64_t n = kiln_tensor_count(gt);
        float *grad = malloc((size_t)n * sizeof *grad), *w = malloc((size_t)n * sizeof *w);
        assert_int_equal(kiln_tensor_download(gt, grad, n), KILN_OK);
        const char *name = kiln_graph_value_name(m.g, m.params[p]);
        assert_int_equal(kiln_model_read_state(model, name, w, n), KILN_OK);
        for (int64_t e = 0; e < n; e++) {
            /* Central differences in float: h = 1e-2 keeps rounding (~1e-7 |L| / h) small. */
            float saved = w[e], h = 1e-2f;
            w[e] = saved + h;
            assert_int_equal(kiln_model_write_state(model, name, w, n), KILN_OK);
            float up = loss_of(eval, &m);
            w[e] = saved - h;
            assert_int_equal(kiln_model_write_state(model, name, w, n), KILN_OK);
            float down = loss_of(eval, &m);
            w[e] = saved;
            assert_int_equal(kiln_model_write_state(model, name, w, n), KILN_OK);
            double fd = ((double)up - (double)down) / (2.0 * h);
            if (fabs(fd - grad[e]) > 2e-3 + 2e-2 * fabs(fd))
                fail_msg("%s[%lld]: backward %g, central difference %g", name, (long long)e,
                         (double)grad[e], fd);
        }
        free(grad);
        free(w);
    }
    kiln_executor_destroy(train);
    kiln_executor_destroy(eval);
    kiln_model_destroy(model);
    kiln_graph_destroy(m.g);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

/* Loss and every gradient, with or without planning: must agree bit for bit. */
static void run_once(kiln_device *dev, kiln_context *ctx, bool plan, float *loss, float *grads,
                     uint64_t *bytes)
{
    mlp m;
    build(ctx, &m);
    kiln_model *model = NULL;
    assert_int_equal(kiln_model_create(m.g, dev, 7, &model), KILN_OK);
    kiln_executor *ex = NULL;
    kiln_executor_options o = {.mode = KILN_MODE_TRAIN, .plan_memory = plan};
    assert_int_equal(kiln_executor_create(model, &o, &ex), KILN_OK);
    feed(ex, &m);
    *loss = loss_of(ex, &m);
    assert_int_equal(kiln_executor_backward(ex), KILN_OK);
    size_t at = 0;
    for (int p = 0; p < 4; p++) {
        kiln_tensor *gt = kiln_executor_get_grad(ex, m.params[p]);
        int64_t n = kiln_tensor_count(gt);
        assert_int_equal(kiln_tensor_download(gt, grads + at, n), KILN_OK);
        at += (size_t)n;
    }
    *bytes = kiln_executor_planned_bytes(ex);
    if (plan) { /* an intermediate value may have been reused: reading it is refused */
        float h[N * HIDDEN];
        assert_int_equal(kiln_executor_read(ex, kiln_graph_find(m.g, "fc1"), h, N * HIDDEN),
                         KILN_ERR_INVALID_ARGUMENT);
        assert_contains(kiln_context_last_error(ctx), "reuses");
    }
    kiln_executor_destroy(ex);
    kiln_model_destroy(model);
    kiln_graph_destroy(m.g);
}

static void test_planning_changes_nothing(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, getenv("KILN_CACHE_DIR"));
    enum { G = IN * HIDDEN + HIDDEN + HIDDEN * CLASSES + CLASSES };
    float l1, l2, g1[G], g2[G];
    uint64_t b1, b2;
    run_once(dev, ctx, false, &l1, g1, &b1);
    run_once(dev, ctx, true, &l2, g2, &b2);
    assert_memory_equal(&l1, &l2, sizeof l1);
    assert_memory_equal(g1, g2, sizeof g1);
    assert_true(b2 < b1);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

static void test_modes(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, getenv("KILN_CACHE_DIR"));
    mlp m;
    build(ctx, &m);
    kiln_model *model = NULL;
    assert_int_equal(kiln_model_create(m.g, dev, 3, &model), KILN_OK);
    kiln_executor *eval = NULL, *infer = NULL;
    kiln_executor_options eo = {.mode = KILN_MODE_EVAL, .plan_memory = true},
                          io = {.mode = KILN_MODE_INFER, .plan_memory = true};
    assert_int_equal(kiln_executor_create(model, &eo, &eval), KILN_OK);
    assert_int_equal(kiln_executor_create(model, &io, &infer), KILN_OK);
    assert_int_equal(kiln_executor_backward(eval), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), "train-mode");
    assert_null(kiln_executor_get_grad(infer, m.params[0]));
    float before[IN * HIDDEN], after[IN * HIDDEN];
    assert_int_equal(kiln_model_read_state(model, "fc1.weight", before, IN * HIDDEN), KILN_OK);
    feed(eval, &m);
    feed(infer, &m);
    float le = loss_of(eval, &m), li = loss_of(infer, &m);
    assert_memory_equal(&le, &li, sizeof le);
    assert_int_equal(kiln_model_read_state(model, "fc1.weight", after, IN * HIDDEN), KILN_OK);
    assert_memory_equal(before, after, sizeof before);
    kiln_executor_destroy(eval);
    kiln_executor_destroy(infer);
    kiln_model_destroy(model);
    kiln_graph_destroy(m.g);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

/* A loss that depends on no parameter: backward has nothing to do and must not fail. Keep
 * makes a planned intermediate readable; infer plans even when not asked. */
static void test_edges(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, getenv("KILN_CACHE_DIR"));
    kiln_graph *g = NULL;
    assert_int_equal(kiln_graph_create(ctx, &g), KILN_OK);
    kiln_shape xs = {2, {2, 3}};
    kiln_value x, r, loss;
    assert_int_equal(kiln_graph_input(g, "x", &xs, KILN_F32, &x), KILN_OK);
    assert_int_equal(kiln_graph_unary(g, "r", "relu", NULL, x, &r), KILN_OK);
    kiln_reduce_params all = {0x3, false};
    assert_int_equal(kiln_graph_unary(g, "loss", "reduce_sum", &all, r, &loss), KILN_OK);
    assert_int_equal(kiln_graph_set_loss(g, loss), KILN_OK);
    kiln_model *model = NULL;
    assert_int_equal(kiln_model_create(g, dev, 1, &model), KILN_OK);
    kiln_executor *ex = NULL;
    kiln_value keep[1] = {r};
    kiln_executor_options o = {
        .mode = KILN_MODE_TRAIN, .plan_memory = true, .keep = keep, .n_keep = 1};
    assert_int_equal(kiln_executor_create(model, &o, &ex), KILN_OK);
    float in[6] = {-1, 2, -3, 4, 5, -6}, out[6], total = 0;
    assert_int_equal(kiln_executor_set_input(ex, x, in, 6), KILN_OK);
    assert_int_equal(kiln_executor_forward(ex, 0), KILN_OK);
    assert_int_equal(kiln_executor_backward(ex), KILN_OK);
    assert_int_equal(kiln_executor_read(ex, r, out, 6), KILN_OK); /* kept, so readable */
    assert_int_equal(kiln_executor_read(ex, loss, &total, 1), KILN_OK);
    assert_true(out[1] == 2 && out[0] == 0 && total == 11);
    /* The same step queued: upload, forward and reads without waiting, then one wait (the
     * queue is in order, so the last read's ticket covers the rest). */
    float in2[6] = {1, 1, 1, -1, 2, 3}, out2[6] = {0}, total2 = 0;
    kiln_transfer *up = NULL, *read_r = NULL, *read_loss = NULL;
    assert_int_equal(kiln_executor_set_input_async(ex, x, in2, 6, &up), KILN_OK);
    assert_int_equal(kiln_executor_forward(ex, 1), KILN_OK);
    assert_int_equal(kiln_executor_read_async(ex, r, out2, 6, &read_r), KILN_OK);
    assert_int_equal(kiln_executor_read_async(ex, loss, &total2, 1, &read_loss), KILN_OK);
    assert_int_equal(kiln_transfer_wait(read_loss), KILN_OK);
    assert_true(out2[0] == 1 && out2[3] == 0 && out2[5] == 3 && total2 == 8);
    kiln_transfer_release(up);
    kiln_transfer_release(read_r);
    kiln_transfer_release(read_loss);
    /* Their argument errors are the blocking forms': no ticket, a message. */
    up = (kiln_transfer *)(uintptr_t)1;
    assert_int_equal(kiln_executor_set_input_async(ex, r, in2, 6, &up), KILN_ERR_INVALID_ARGUMENT);
    assert_null(up);
    assert_contains(kiln_context_last_error(ctx), "not an input");
    assert_int_equal(kiln_executor_read_async(ex, loss, out2, 6, &read_r), KILN_ERR_SHAPE);
    assert_null(read_r);
    assert_contains(kiln_context_last_error(ctx), "kiln_tensor_download_async");
    kiln_executor_destroy(ex);
    kiln_model_destroy(model);
    kiln_graph_destroy(g);
    /* On the MLP, infer (which always plans) needs less than eval without planning. */
    mlp m;
    build(ctx, &m);
    assert_int_equal(kiln_model_create(m.g, dev, 1, &model), KILN_OK);
    uint64_t eval_bytes = 0, infer_bytes = 0;
    kiln_executor_options eo = {.mode = KILN_MODE_EVAL}, io = {.mode = KILN_MODE_INFER};
    assert_int_equal(kiln_executor_estimate_bytes(model, &eo, &eval_bytes), KILN_OK);
    assert_int_equal(kiln_executor_estimate_bytes(model, &io, &infer_bytes), KILN_OK);
    assert_true(infer_bytes < eval_bytes);
    kiln_model_destroy(model);
    kiln_graph_destroy(m.g);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

static void test_build_errors(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_graph *g = NULL;
    assert_int_equal(kiln_graph_create(ctx, &g), KILN_OK);
    kiln_shape xs = {2, {4, 6}};
    kiln_value x, y, z;
    assert_int_equal(kiln_graph_input(g, "x", &xs, KILN_F32, &x), KILN_OK);
    assert_int_equal(kiln_graph_input(g, "x", &xs, KILN_F32, &y), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), "'x' is already used");
    kiln_shape ys = {2, {5, 6}};
    assert_int_equal(kiln_graph_input(g, "y", &ys, KILN_F32, &y), KILN_OK);
    kiln_value in[2] = {x, y};
    assert_int_equal(kiln_graph_op(g, "sum1", "add", NULL, in, 2, &z), KILN_ERR_SHAPE);
    assert_contains(kiln_context_last_error(ctx), "node 'sum1'");
    assert_contains(kiln_context_last_error(ctx), "(4, 6)");
    assert_contains(kiln_context_last_error(ctx), "(5, 6)");
    assert_int_equal(kiln_graph_op(g, "n", "no_such_op", NULL, in, 2, &z), KILN_ERR_NOT_FOUND);
    kiln_shape img = {4, {2, 3, 8, 8}};
    kiln_value im;
    assert_int_equal(kiln_graph_input(g, "img", &img, KILN_F32, &im), KILN_OK);
    assert_int_equal(kiln_graph_dense(g, "fc", im, 10, true, &z), KILN_ERR_SHAPE);
    assert_contains(kiln_context_last_error(ctx), "layer 'fc'");
    assert_contains(kiln_context_last_error(ctx), "flatten");
    assert_int_equal(kiln_graph_set_loss(g, x), KILN_ERR_INVALID_ARGUMENT);
    kiln_graph_destroy(g);
    kiln_context_destroy(ctx);
}

/* The test device with every launch timed, so a test can count launches by kernel. */
static kiln_device *profiled_device(kiln_context *ctx)
{
    kiln_device_options options = {.spec = kiln_test_device_spec(),
                                    .cache_dir = getenv("KILN_CACHE_DIR"),
                                    .profile = true};
    kiln_device *dev = NULL;
    assert_int_equal(kiln_device_create(ctx, &options, &dev), KILN_OK);
    return dev;
}

/*
 * Views run nothing and share memory: x (2, 3, 4) -> flat = flatten(x) -> act = relu(flat) ->
 * back = reshape(act) (4, 6); neg = scale(flat, -1) -> negr = reshape(neg) (4, 6); y = back +
 * negr = relu(x) - x. The infer executor (which always plans memory) must launch no copy for
 * the four views, and y must be right: `neg` is computed after the last node that reads `act`
 * directly, so if `back` did not keep act's buffer alive, neg would take it and overwrite it.
 */
static void test_views_share_memory(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = profiled_device(ctx);
    kiln_graph *g = NULL;
    assert_int_equal(kiln_graph_create(ctx, &g), KILN_OK);
    kiln_shape xs = {3, {2, 3, 4}};
    kiln_value x, flat, act, back, neg, negr, y;
    assert_int_equal(kiln_graph_input(g, "x", &xs, KILN_F32, &x), KILN_OK);
    assert_int_equal(kiln_graph_unary(g, "flat", "flatten", NULL, x, &flat), KILN_OK);
    assert_int_equal(kiln_graph_unary(g, "act", "relu", NULL, flat, &act), KILN_OK);
    kiln_reshape_params to = {.shape = {2, {4, 6}}};
    assert_int_equal(kiln_graph_unary(g, "back", "reshape", &to, act, &back), KILN_OK);
    kiln_scale_params minus = {.alpha = -1.0f};
    assert_int_equal(kiln_graph_unary(g, "neg", "scale", &minus, flat, &neg), KILN_OK);
    assert_int_equal(kiln_graph_unary(g, "negr", "reshape", &to, neg, &negr), KILN_OK);
    kiln_value pair[2] = {back, negr};
    assert_int_equal(kiln_graph_op(g, "y", "add", NULL, pair, 2, &y), KILN_OK);
    kiln_model *m = NULL;
    assert_int_equal(kiln_model_create(g, dev, 1, &m), KILN_OK);
    float xv[24], got[24];
    for (int i = 0; i < 24; i++)
        xv[i] = (float)((i * 7) % 11) - 5.0f;
    kiln_executor_options o = {.mode = KILN_MODE_INFER};
    kiln_executor *ex = NULL;
    assert_int_equal(kiln_executor_create(m, &o, &ex), KILN_OK);
    assert_int_equal(kiln_executor_set_input(ex, x, xv, 24), KILN_OK);
    kiln_device_profile_reset(dev);
    assert_int_equal(kiln_executor_forward(ex, 0), KILN_OK);
    assert_int_equal(kiln_executor_read(ex, y, got, 24), KILN_OK);
    for (int i = 0; i < 24; i++)
        assert_float_equal(got[i], fmaxf(xv[i], 0.0f) - xv[i], 0);
    const kiln_profile_row *rows = NULL;
    size_t n_rows = 0;
    assert_int_equal(kiln_device_profile(dev, &rows, &n_rows), KILN_OK);
    for (size_t i = 0; i < n_rows; i++) {
        if (strstr(rows[i].name, "copy") != NULL)
            fail_msg("a view launched '%s' %llu time(s)", rows[i].name,
                     (unsigned long long)rows[i].launches);
    }
    kiln_executor_destroy(ex);
    kiln_model_destroy(m);
    kiln_graph_destroy(g);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

/*
 * relu fused into the convolution before it: x (3, 2, 6, 5) -> c1 = conv 4 -> a1 = relu(c1)
 * -> c2 = conv 3 -> a2 = relu(c2), s = a2 + c2 -> flatten -> dense 5 -> cross-entropy. With
 * plan_memory a1 is fused (c1 has one reader), a2 is not (c2 is also read by the add). A train
 * step must give the loss and every parameter gradient bit for bit as without planning (no
 * fusion), launch relu forward and backward once each (a2's) instead of twice, and plan
 * fewer bytes; an eval executor agrees on the loss too.
 */
typedef struct conv_net_run {
    float loss, eval_loss;
    float grads[2 * 2 * 9 + 4 * 2 * 9 + 4 + 3 * 4 * 9 + 3 + 90 * 5 + 5];
    uint64_t relu_fwd, relu_bwd, bytes;
} conv_net_run;

static uint64_t launches_of(kiln_device *dev, const char *kernel)
{
    const kiln_profile_row *rows = NULL;
    size_t n_rows = 0;
    assert_int_equal(kiln_device_profile(dev, &rows, &n_rows), KILN_OK);
    uint64_t n = 0;
    for (size_t i = 0; i < n_rows; i++) {
        const char *colon = strchr(rows[i].name, ':');
        if (colon != NULL && strcmp(colon + 1, kernel) == 0)
            n += rows[i].launches;
    }
    return n;
}

static void run_conv_net(kiln_device *dev, kiln_context *ctx, bool plan, conv_net_run *out)
{
    kiln_graph *g = NULL;
    assert_int_equal(kiln_graph_create(ctx, &g), KILN_OK);
    kiln_shape xs = {4, {3, 2, 6, 5}}, ls = {1, {3}};
    kiln_value x, labels, c0, c1, a1, c2, a2, sum, flat, logits, loss;
    int k3[3] = {3, 3, 1};
    assert_int_equal(kiln_graph_input(g, "x", &xs, KILN_F32, &x), KILN_OK);
    assert_int_equal(kiln_graph_input(g, "labels", &ls, KILN_I32, &labels), KILN_OK);
    assert_int_equal(kiln_graph_conv(g, "c0", x, 2, 2, k3, NULL, NULL, true, NULL, false, &c0),
                     KILN_OK);
    assert_int_equal(kiln_graph_conv(g, "c1", c0, 2, 4, k3, NULL, NULL, true, NULL, true, &c1),
                     KILN_OK);
    assert_int_equal(kiln_graph_unary(g, "a1", "relu", NULL, c1, &a1), KILN_OK);
    assert_int_equal(kiln_graph_conv(g, "c2", a1, 2, 3, k3, NULL, NULL, true, NULL, true, &c2),
                     KILN_OK);
    assert_int_equal(kiln_graph_unary(g, "a2", "relu", NULL, c2, &a2), KILN_OK);
    kiln_value pair[2] = {a2, c2};
    assert_int_equal(kiln_graph_op(g, "s", "add", NULL, pair, 2, &sum), KILN_OK);
    assert_int_equal(kiln_graph_unary(g, "flat", "flatten", NULL, sum, &flat), KILN_OK);
    assert_int_equal(kiln_graph_dense(g, "fc", flat, 5, true, &logits), KILN_OK);
    kiln_cross_entropy_params ce = {0};
    kiln_value in[2] = {logits, labels};
    assert_int_equal(kiln_graph_op(g, "loss", "softmax_cross_entropy", &ce, in, 2, &loss),
                     KILN_OK);
    assert_int_equal(kiln_graph_set_loss(g, loss), KILN_OK);
    kiln_model *model = NULL;
    assert_int_equal(kiln_model_create(g, dev, 11, &model), KILN_OK);
    float xv[180];
    int32_t lv[3] = {4, 0, 2};
    for (int i = 0; i < 180; i++)
        xv[i] = (float)((i * 37) % 23) / 11.0f - 1.0f;
    kiln_executor *train = NULL, *eval = NULL;
    kiln_executor_options to = {.mode = KILN_MODE_TRAIN, .plan_memory = plan},
                          eo = {.mode = KILN_MODE_EVAL, .plan_memory = plan};
    assert_int_equal(kiln_executor_create(model, &to, &train), KILN_OK);
    assert_int_equal(kiln_executor_create(model, &eo, &eval), KILN_OK);
    kiln_executor *both[2] = {train, eval};
    for (int e = 0; e < 2; e++) {
        assert_int_equal(kiln_executor_set_input(both[e], x, xv, 180), KILN_OK);
        assert_int_equal(kiln_executor_set_input(both[e], labels, lv, 3), KILN_OK);
    }
    kiln_device_profile_reset(dev);
    assert_int_equal(kiln_executor_forward(train, 0), KILN_OK);
    assert_int_equal(kiln_executor_backward(train), KILN_OK);
    assert_int_equal(kiln_executor_read(train, loss, &out->loss, 1), KILN_OK);
    out->relu_fwd = launches_of(dev, "relu_fwd");
    out->relu_bwd = launches_of(dev, "relu_bwd_x");
    out->bytes = kiln_executor_planned_bytes(train);
    const char *params[] = {"c0.weight", "c1.weight", "c1.bias", "c2.weight", "c2.bias", "fc.weight",
                            "fc.bias"};
    size_t at = 0;
    for (size_t p = 0; p < sizeof params / sizeof params[0]; p++) {
        kiln_tensor *gt = kiln_executor_get_grad(train, kiln_graph_find(g, params[p]));
        assert_non_null(gt);
        int64_t n = kiln_tensor_count(gt);
        assert_true(at + (size_t)n <= sizeof out->grads / sizeof out->grads[0]);
        assert_int_equal(kiln_tensor_download(gt, out->grads + at, n), KILN_OK);
        at += (size_t)n;
    }
    assert_int_equal(at, sizeof out->grads / sizeof out->grads[0]);
    assert_int_equal(kiln_executor_forward(eval, 0), KILN_OK);
    assert_int_equal(kiln_executor_read(eval, loss, &out->eval_loss, 1), KILN_OK);
    kiln_executor_destroy(train);
    kiln_executor_destroy(eval);
    kiln_model_destroy(model);
    kiln_graph_destroy(g);
}

static void test_conv_relu_fused(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = profiled_device(ctx);
    conv_net_run plain, fused;
    run_conv_net(dev, ctx, false, &plain);
    run_conv_net(dev, ctx, true, &fused);
    assert_true(isfinite(plain.loss) && plain.loss > 0);
    assert_memory_equal(&plain.loss, &fused.loss, sizeof plain.loss);
    assert_memory_equal(plain.grads, fused.grads, sizeof plain.grads);
    assert_memory_equal(&plain.eval_loss, &fused.eval_loss, sizeof plain.eval_loss);
    assert_int_equal(plain.relu_fwd, 2);
    assert_int_equal(plain.relu_bwd, 2);
    assert_int_equal(fused.relu_fwd, 1);
    assert_int_equal(fused.relu_bwd, 1);
    assert_true(fused.bytes < plain.bytes);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

int main(void)
{
    kiln_test_require_device();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradients_match_finite_differences),
        cmocka_unit_test(test_planning_changes_nothing),
        cmocka_unit_test(test_modes),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_views_share_memory),
        cmocka_unit_test(test_conv_relu_fused),
        cmocka_unit_test(test_build_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
