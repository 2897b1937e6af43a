/*
 * Optimisers on a small MLP (dense, relu, dense, softmax cross-entropy) through a train-mode
 * executor: three steps of SGD (plain, and momentum with Nesterov) and Adam and AdamW, with
 * gradient clipping off and on, each equal to a double-precision host reference applied to
 * the parameters and gradients read back (and the clipping norm to the reference norm);
 * saving the optimiser state, creating a fresh optimiser and writing it back continues
 * bit-identically to an uninterrupted run (and not without the state); lr 0 moves nothing;
 * state names and zero initialisation; bad configs and misuse give the right status and a
 * message naming the field; allocation failures during creation leak nothing.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/train.h"
#include "support/kiln_test.h"

enum { N = 4, IN = 6, HIDDEN = 5, CLASSES = 3, N_PARAMS = 4 };
enum { TOTAL = IN * HIDDEN + HIDDEN + HIDDEN * CLASSES + CLASSES };

static const char *const PARAMS[N_PARAMS] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};
static const int64_t COUNTS[N_PARAMS] = {IN * HIDDEN, HIDDEN, HIDDEN *CLASSES, CLASSES};

/* A device, the MLP's graph and model, and a train-mode executor over it. */
typedef struct rig {
    kiln_context *ctx;
    kiln_device *dev;
    kiln_graph *g;
    kiln_model *model;
    kiln_executor *ex;
    kiln_value x, labels, params[N_PARAMS];
} rig;

static void rig_open_in(rig *r, kiln_context *ctx)
{
    r->ctx = ctx;
    r->dev = kiln_test_open_device(r->ctx, getenv("KILN_CACHE_DIR"));
    kiln_shape xs = {2, {N, IN}}, ls = {1, {N}};
    kiln_value h, a, logits, loss;
    assert_int_equal(kiln_graph_create(r->ctx, &r->g), KILN_OK);
    assert_int_equal(kiln_graph_input(r->g, "x", &xs, KILN_F32, &r->x), KILN_OK);
    assert_int_equal(kiln_graph_input(r->g, "labels", &ls, KILN_I32, &r->labels), KILN_OK);
    assert_int_equal(kiln_graph_dense(r->g, "fc1", r->x, HIDDEN, true, &h), KILN_OK);
    assert_int_equal(kiln_graph_unary(r->g, "act1", "relu", NULL, h, &a), KILN_OK);
    assert_int_equal(kiln_graph_dense(r->g, "fc2", a, CLASSES, true, &logits), KILN_OK);
    kiln_cross_entropy_params ce = {0};
    kiln_value in[2] = {logits, r->labels};
    assert_int_equal(kiln_graph_op(r->g, "loss", "softmax_cross_entropy", &ce, in, 2, &loss),
                     KILN_OK);
    assert_int_equal(kiln_graph_set_loss(r->g, loss), KILN_OK);
    for (int p = 0; p < N_PARAMS; p++)
        r->params[p] = kiln_graph_find(r->g, PARAMS[p]);
    assert_int_equal(kiln_model_create(r->g, r->dev, 42, &r->model), KILN_OK);
    kiln_executor_options o = {.mode = KILN_MODE_TRAIN, .plan_memory = true};
    assert_int_equal(kiln_executor_create(r->model, &o, &r->ex), KILN_OK);
}

static void rig_open(rig *r)
{
    rig_open_in(r, kiln_test_context());
}

static void rig_close(rig *r)
{
    kiln_executor_destroy(r->ex);
    kiln_model_destroy(r->model);
    kiln_graph_destroy(r->g);
    kiln_device_destroy(r->dev);
    kiln_context_destroy(r->ctx);
}

/* Forward and backward on a batch that differs from step to step. */
static void forward_backward(rig *r, int step)
{
    float x[N * IN];
    int32_t labels[N];
    for (int i = 0; i < N * IN; i++)
        x[i] = (float)sin(0.7 * i + 0.3 + 1.9 * step);
    for (int i = 0; i < N; i++)
        labels[i] = (i + step) % CLASSES;
    assert_int_equal(kiln_executor_set_input(r->ex, r->x, x, N * IN), KILN_OK);
    assert_int_equal(kiln_executor_set_input(r->ex, r->labels, labels, N), KILN_OK);
    assert_int_equal(kiln_executor_forward(r->ex, (uint64_t)step), KILN_OK);
    assert_int_equal(kiln_executor_backward(r->ex), KILN_OK);
}

/* Every parameter (or gradient) concatenated in PARAMS order. */
static void read_all(rig *r, bool grads, float *out)
{
    for (int p = 0, at = 0; p < N_PARAMS; at += (int)COUNTS[p], p++) {
        if (grads)
            assert_int_equal(kiln_tensor_download(kiln_executor_get_grad(r->ex, r->params[p]),
                                                  out + at, COUNTS[p]),
                             KILN_OK);
        else
            assert_int_equal(kiln_model_read_state(r->model, PARAMS[p], out + at, COUNTS[p]),
                             KILN_OK);
    }
}

/* The reference: PyTorch's update formulas in double on one parameter vector. Returns the
 * gradient norm before clipping. */
typedef struct reference {
    double velocity[TOTAL], m[TOTAL], v[TOTAL];
    uint64_t step;
} reference;

static double reference_step(reference *ref, const kiln_optimizer_config *c, const float *param,
                             const float *grad, double *out)
{
    double norm = 0, scale = 1;
    for (int i = 0; i < TOTAL; i++)
        norm += (double)grad[i] * grad[i];
    norm = sqrt(norm);
    if (c->clip_norm > 0) /* torch.nn.utils.clip_grad_norm_ */
        scale = fmin(1.0, c->clip_norm / (norm + 1e-6));
    uint64_t t = ++ref->step;
    double lr = c->lr, wd = c->weight_decay, mu = c->momentum, b1 = c->beta1, b2 = c->beta2;
    for (int i = 0; i < TOTAL; i++) {
        double p = param[i], g = grad[i] * scale;
        if (c->kind == KILN_OPTIMIZER_SGD) {
            g += wd * p;
            double update = g;
            if (mu > 0) {
                ref->velocity[i] = mu * ref->velocity[i] + g;
                update = c->nesterov ? g + mu * ref->velocity[i] : ref->velocity[i];
            }
            out[i] = p - lr * update;
            continue;
        }
        if (c->kind == KILN_OPTIMIZER_ADAMW)
            p *= 1 - lr * wd;
        else
            g += wd * p;
        ref->m[i] = b1 * ref->m[i] + (1 - b1) * g;
        ref->v[i] = b2 * ref->v[i] + (1 - b2) * g * g;
        double m_hat = ref->m[i] / (1 - pow(b1, (double)t));
        double v_hat = ref->v[i] / (1 - pow(b2, (double)t));
        out[i] = p - lr * m_hat / (sqrt(v_hat) + c->eps);
    }
    return norm;
}

static void check_three_steps(const kiln_optimizer_config *c, const char *what)
{
    rig r;
    rig_open(&r);
    kiln_optimizer *opt = NULL;
    assert_int_equal(kiln_optimizer_create(r.model, c, &opt), KILN_OK);
    reference ref;
    memset(&ref, 0, sizeof ref);
    bool clipped = false;
    for (int step = 0; step < 3; step++) {
        float param[TOTAL], grad[TOTAL], got[TOTAL];
        double want[TOTAL];
        forward_backward(&r, step);
        read_all(&r, false, param);
        read_all(&r, true, grad);
        double norm = reference_step(&ref, c, param, grad, want);
        clipped = clipped || norm > c->clip_norm;
        assert_int_equal(kiln_optimizer_step(opt, r.ex), KILN_OK);
        assert_int_equal(kiln_optimizer_get_step(opt), step + 1);
        read_all(&r, false, got);
        int moved = 0;
        for (int i = 0; i < TOTAL; i++) {
            double err = fabs(got[i] - want[i]);
            if (!(err <= 1e-8 + 1e-6 * fabs(want[i])))
                fail_msg("%s, step %d, element %d: got %.9g, reference %.9g (was %.9g)", what,
                         step + 1, i, (double)got[i], want[i], (double)param[i]);
            moved += got[i] != param[i];
        }
        assert_true(moved > TOTAL / 2); /* the comparison is not of unchanged values */
        if (c->clip_norm > 0) {
            float device_norm = 0;
            assert_int_equal(
                kiln_tensor_download(kiln_optimizer_get_grad_norm(opt), &device_norm, 1), KILN_OK);
            if (fabs(device_norm - norm) > 1e-6 * norm)
                fail_msg("%s, step %d: norm %.9g, reference %.9g", what, step + 1,
                         (double)device_norm, norm);
        }
    }
    if (c->clip_norm > 0 && !clipped)
        fail_msg("%s: clip_norm %g never clipped; lower it", what, (double)c->clip_norm);
    kiln_optimizer_destroy(opt);
    rig_close(&r);
}

static void test_matches_reference(void **state)
{
    (void)state;
    kiln_optimizer_config c;
    kiln_optimizer_config_init(&c, KILN_OPTIMIZER_SGD);
    c.lr = 0.1f;
    c.weight_decay = 0.01f;
    check_three_steps(&c, "SGD");
    c.momentum = 0.9f;
    c.nesterov = true;
    check_three_steps(&c, "SGD with Nesterov momentum");
    c.clip_norm = 0.3f;
    check_three_steps(&c, "SGD with Nesterov momentum, clipped");
    kiln_optimizer_config_init(&c, KILN_OPTIMIZER_ADAM);
    c.lr = 0.01f;
    c.weight_decay = 0.05f;
    check_three_steps(&c, "Adam");
    kiln_optimizer_config_init(&c, KILN_OPTIMIZER_ADAMW);
    c.lr = 0.01f;
    c.beta1 = 0.8f;
    check_three_steps(&c, "AdamW");
    c.clip_norm = 0.3f;
    check_three_steps(&c, "AdamW, clipped");
}

/* Runs steps [from, to) of the optimiser. */
static void run_steps(rig *r, kiln_optimizer *opt, int from, int to)
{
    for (int step = from; step < to; step++) {
        forward_backward(r, step);
        assert_int_equal(kiln_optimizer_step(opt, r->ex), KILN_OK);
    }
}

/* Five steps, interrupted after three: with `restore`, by saving every state tensor and the
 * step count and writing them into a fresh optimiser; without, by a fresh optimiser alone. */
static void run_five(rig *r, const kiln_optimizer_config *c, bool interrupt, bool restore,
                     float *out)
{
    kiln_optimizer *opt = NULL;
    assert_int_equal(kiln_model_initialize(r->model, 42), KILN_OK);
    assert_int_equal(kiln_optimizer_create(r->model, c, &opt), KILN_OK);
    run_steps(r, opt, 0, 3);
    if (interrupt) {
        size_t n = kiln_optimizer_n_states(opt);
        float *saved = calloc(n * TOTAL, sizeof *saved);
        uint64_t step = kiln_optimizer_get_step(opt);
        for (size_t i = 0; i < n; i++) {
            const char *name = kiln_optimizer_state_name(opt, i);
            int64_t count = kiln_tensor_count(kiln_optimizer_get_state(opt, name));
            assert_int_equal(kiln_optimizer_read_state(opt, name, saved + i * TOTAL, count),
                             KILN_OK);
        }
        kiln_optimizer_destroy(opt);
        assert_int_equal(kiln_optimizer_create(r->model, c, &opt), KILN_OK);
        for (size_t i = 0; restore && i < n; i++) {
            const char *name = kiln_optimizer_state_name(opt, i);
            int64_t count = kiln_tensor_count(kiln_optimizer_get_state(opt, name));
            assert_int_equal(kiln_optimizer_write_state(opt, name, saved + i * TOTAL, count),
                             KILN_OK);
        }
        if (restore)
            kiln_optimizer_set_step(opt, step);
        free(saved);
    }
    run_steps(r, opt, 3, 5);
    assert_int_equal(kiln_optimizer_get_step(opt), interrupt && !restore ? 2 : 5);
    read_all(r, false, out);
    kiln_optimizer_destroy(opt);
}

static void test_resume_is_exact(void **state)
{
    (void)state;
    rig r;
    rig_open(&r);
    kiln_optimizer_config configs[2];
    kiln_optimizer_config_init(&configs[0], KILN_OPTIMIZER_SGD);
    configs[0].lr = 0.1f;
    configs[0].momentum = 0.9f;
    configs[0].nesterov = true;
    kiln_optimizer_config_init(&configs[1], KILN_OPTIMIZER_ADAMW);
    configs[1].lr = 0.01f;
    configs[1].clip_norm = 0.3f;
    for (int k = 0; k < 2; k++) {
        float straight[TOTAL], resumed[TOTAL], forgot[TOTAL];
        run_five(&r, &configs[k], false, false, straight);
        run_five(&r, &configs[k], true, true, resumed);
        run_five(&r, &configs[k], true, false, forgot);
        assert_memory_equal(straight, resumed, sizeof straight);
        assert_memory_not_equal(straight, forgot, sizeof straight);
    }
    rig_close(&r);
}

static void test_state_names_and_lr(void **state)
{
    (void)state;
    rig r;
    rig_open(&r);
    kiln_optimizer_config c;
    kiln_optimizer_config_init(&c, KILN_OPTIMIZER_ADAM);
    assert_true(c.lr == 1e-3f && c.beta1 == 0.9f && c.beta2 == 0.999f && c.eps == 1e-8f);
    assert_true(c.weight_decay == 0 && c.clip_norm == 0);
    kiln_optimizer *opt = NULL;
    assert_int_equal(kiln_optimizer_create(r.model, &c, &opt), KILN_OK);
    assert_null(kiln_optimizer_get_grad_norm(opt));
    assert_int_equal(kiln_optimizer_n_states(opt), 2 * N_PARAMS);
    assert_string_equal(kiln_optimizer_state_name(opt, 0), "fc1.weight.adam_m");
    assert_string_equal(kiln_optimizer_state_name(opt, 3), "fc1.bias.adam_v");
    assert_null(kiln_optimizer_state_name(opt, 2 * N_PARAMS));
    kiln_tensor *m = kiln_optimizer_get_state(opt, "fc2.weight.adam_m");
    assert_non_null(m);
    assert_true(
        kiln_shape_equal(kiln_tensor_get_shape(m), kiln_graph_value_shape(r.g, r.params[2])));
    float host[IN * HIDDEN];
    memset(host, 0xff, sizeof host);
    assert_int_equal(kiln_optimizer_read_state(opt, "fc1.weight.adam_v", host, IN * HIDDEN),
                     KILN_OK);
    for (int i = 0; i < IN * HIDDEN; i++)
        assert_true(host[i] == 0.0f);
    assert_int_equal(kiln_optimizer_read_state(opt, "fc1.weight.momentum", host, IN * HIDDEN),
                     KILN_ERR_NOT_FOUND);
    assert_contains(kiln_context_last_error(r.ctx), "'fc1.weight.momentum'");
    assert_contains(kiln_context_last_error(r.ctx), "adam_m");
    assert_int_equal(kiln_optimizer_write_state(opt, "fc1.weight.adam_v", host, 3), KILN_ERR_SHAPE);
    assert_contains(kiln_context_last_error(r.ctx), "(6, 5)");

    /* lr 0 (a schedule's floor): the step counts, nothing moves. */
    float before[TOTAL], after[TOTAL];
    assert_int_equal(kiln_optimizer_set_lr(opt, 0.0f), KILN_OK);
    forward_backward(&r, 0);
    read_all(&r, false, before);
    assert_int_equal(kiln_optimizer_step(opt, r.ex), KILN_OK);
    read_all(&r, false, after);
    assert_memory_equal(before, after, sizeof before);
    assert_int_equal(kiln_optimizer_get_step(opt), 1);
    assert_int_equal(kiln_optimizer_set_lr(opt, 0.25f), KILN_OK);
    assert_true(kiln_optimizer_get_lr(opt) == 0.25f);
    assert_int_equal(kiln_optimizer_set_lr(opt, -1.0f), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(r.ctx), "lr must be");
    assert_int_equal(kiln_optimizer_set_lr(opt, NAN), KILN_ERR_INVALID_ARGUMENT);
    assert_true(kiln_optimizer_get_lr(opt) == 0.25f);
    kiln_optimizer_destroy(opt);

    kiln_optimizer_config_init(&c, KILN_OPTIMIZER_SGD);
    assert_true(c.lr == 1e-3f && c.momentum == 0 && !c.nesterov && c.weight_decay == 0);
    assert_int_equal(kiln_optimizer_create(r.model, &c, &opt), KILN_OK);
    assert_int_equal(kiln_optimizer_n_states(opt), 0);
    kiln_optimizer_destroy(opt);
    c.momentum = 0.5f;
    assert_int_equal(kiln_optimizer_create(r.model, &c, &opt), KILN_OK);
    assert_int_equal(kiln_optimizer_n_states(opt), N_PARAMS);
    assert_string_equal(kiln_optimizer_state_name(opt, 1), "fc1.bias.momentum");
    kiln_optimizer_destroy(opt);
    kiln_optimizer_config_init(&c, KILN_OPTIMIZER_ADAMW);
    assert_true(c.weight_decay == 0.01f);
    rig_close(&r);
}

/* One bad field: creation fails with KILN_ERR_INVALID_ARGUMENT naming it. */
static void expect_bad(rig *r, const kiln_optimizer_config *c, const char *needle)
{
    kiln_optimizer *opt = (kiln_optimizer *)r;
    assert_int_equal(kiln_optimizer_create(r->model, c, &opt), KILN_ERR_INVALID_ARGUMENT);
    assert_null(opt);
    assert_contains(kiln_context_last_error(r->ctx), needle);
}

static void test_bad_configs(void **state)
{
    (void)state;
    rig r;
    rig_open(&r);
    uint64_t held = kiln_device_get_allocated_bytes(r.dev);
    kiln_optimizer_config c, ok;
    kiln_optimizer_config_init(&ok, KILN_OPTIMIZER_SGD);
    c = ok, c.lr = 0;
    expect_bad(&r, &c, "config.lr must be a finite number > 0, got 0");
    c = ok, c.lr = NAN;
    expect_bad(&r, &c, "config.lr");
    c = ok, c.momentum = -0.5f;
    expect_bad(&r, &c, "config.momentum must be a finite number >= 0, got -0.5");
    c = ok, c.nesterov = true;
    expect_bad(&r, &c, "config.nesterov needs config.momentum > 0");
    c = ok, c.weight_decay = -1;
    expect_bad(&r, &c, "config.weight_decay");
    c = ok, c.clip_norm = -1;
    expect_bad(&r, &c, "config.clip_norm");
    c = ok, c.clip_norm = INFINITY;
    expect_bad(&r, &c, "config.clip_norm");
    c = ok, c.kind = (kiln_optimizer_kind)7;
    expect_bad(&r, &c, "config.kind 7");
    kiln_optimizer_config_init(&ok, KILN_OPTIMIZER_ADAMW);
    c = ok, c.beta1 = 1.0f;
    expect_bad(&r, &c, "config.beta1 must be in [0, 1), got 1");
    c = ok, c.beta2 = -0.1f;
    expect_bad(&r, &c, "config.beta2");
    c = ok, c.eps = 0;
    expect_bad(&r, &c, "config.eps");
    assert_int_equal(kiln_device_get_allocated_bytes(r.dev), held);

    /* Stepping with an executor it cannot use. */
    kiln_optimizer *opt = NULL;
    assert_int_equal(kiln_optimizer_create(r.model, &ok, &opt), KILN_OK);
    kiln_executor *eval = NULL;
    kiln_executor_options eo = {.mode = KILN_MODE_EVAL, .plan_memory = true};
    assert_int_equal(kiln_executor_create(r.model, &eo, &eval), KILN_OK);
    assert_int_equal(kiln_optimizer_step(opt, eval), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(r.ctx), "not in train mode");
    kiln_executor_destroy(eval);
    kiln_model *other = NULL;
    kiln_executor *other_ex = NULL;
    kiln_executor_options to = {.mode = KILN_MODE_TRAIN, .plan_memory = true};
    assert_int_equal(kiln_model_create(r.g, r.dev, 1, &other), KILN_OK);
    assert_int_equal(kiln_executor_create(other, &to, &other_ex), KILN_OK);
    assert_int_equal(kiln_optimizer_step(opt, other_ex), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(r.ctx), "another model");
    assert_int_equal(kiln_optimizer_get_step(opt), 0);
    kiln_executor_destroy(other_ex);
    kiln_model_destroy(other);
    kiln_optimizer_destroy(opt);
    rig_close(&r);
}

/* Failing each host allocation of kiln_optimizer_create in turn: every failure reports
 * KILN_ERR_NO_MEMORY and frees the device memory it had taken; nothing leaks by the end. */
static void test_allocation_failures(void **state)
{
    (void)state;
    kiln_test_allocator a;
    kiln_test_allocator_init(&a, -1);
    kiln_context_options options = {.allocator = &a.allocator};
    kiln_context *ctx = NULL;
    assert_int_equal(kiln_context_create(&options, &ctx), KILN_OK);
    rig r;
    rig_open_in(&r, ctx);
    kiln_optimizer_config c;
    kiln_optimizer_config_init(&c, KILN_OPTIMIZER_ADAMW);
    c.clip_norm = 1.0f;
    uint64_t held = kiln_device_get_allocated_bytes(r.dev);
    for (long budget = 0;; budget++) {
        kiln_optimizer *opt = NULL;
        a.budget = budget;
        kiln_status rc = kiln_optimizer_create(r.model, &c, &opt);
        a.budget = -1;
        if (rc == KILN_OK) {
            kiln_optimizer_destroy(opt);
            break;
        }
        if (rc != KILN_ERR_NO_MEMORY)
            fail_msg("allocation %ld failed: %s, %s", budget, kiln_status_name(rc),
                     kiln_context_last_error(ctx));
        assert_null(opt);
        assert_int_equal(kiln_device_get_allocated_bytes(r.dev), held);
    }
    rig_close(&r);
    assert_int_equal(a.live, 0); /* kernels cached by the device live until it goes */
}

int main(void)
{
    kiln_test_require_device();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_reference),   cmocka_unit_test(test_resume_is_exact),
        cmocka_unit_test(test_state_names_and_lr),  cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
