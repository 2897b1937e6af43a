/*
 * Optimisers over a model: the per-parameter state tensors (velocity, or Adam's moments) and
 * step count, the clipping workspace, and one step that clips and then updates every
 * parameter with a gradient through the ops layer's kernels (include/kiln/optim.h). The
 * update arithmetic lives in those kernels; this file owns the bookkeeping, the argument
 * checks that name the config field, and state access by name for checkpoints.
 */
#include <math.h>
#include <string.h>

#include "core/context.h"
#include "kiln/optim.h"
#include "kiln/train.h"

struct kiln_optimizer {
    kiln_model *model;
    kiln_graph *g;
    kiln_device *dev;
    kiln_context *ctx;
    kiln_optimizer_config config;
    size_t n_params;
    kiln_value *params;  /* the graph's parameters, in graph order */
    int n_slots;         /* state tensors per parameter: 0, 1 (velocity) or 2 (m, v) */
    kiln_tensor **state; /* n_params * n_slots, parameter-major */
    char **names;        /* the state tensors' names, same order */
    uint64_t step;
    kiln_tensor **grads; /* n_params, scratch for one step: the gradients that exist */
    /* n_params each, scratch for one step, in the order of `grads`: those gradients'
     * parameters, state slot 0 and state slot 1 (one allocation, from step_params) */
    kiln_tensor **step_params, **step_slot0, **step_slot1;
    kiln_tensor *norm; /* clipping only */
    kiln_buffer *clip_workspace;
};

void kiln_optimizer_config_init(kiln_optimizer_config *c, kiln_optimizer_kind kind)
{
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->lr = 1e-3f;
    c->beta1 = 0.9f;
    c->beta2 = 0.999f;
    c->eps = 1e-8f;
    c->weight_decay = kind == KILN_OPTIMIZER_ADAMW ? 1e-2f : 0.0f;
}

/* Records KILN_ERR_INVALID_ARGUMENT for config field `field` unless `ok`. */
static kiln_status check_field(kiln_context *ctx, bool ok, const char *field, const char *rule,
                               double value)
{
    if (ok)
        return KILN_OK;
    return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, "kiln_optimizer_create",
                       "config.%s must be %s, got %g", field, rule, value);
}

static kiln_status check_config(kiln_context *ctx, const kiln_optimizer_config *c)
{
    bool sgd = c->kind == KILN_OPTIMIZER_SGD;
    if (!sgd && c->kind != KILN_OPTIMIZER_ADAM && c->kind != KILN_OPTIMIZER_ADAMW)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, "kiln_optimizer_create",
                           "config.kind %d is not an optimiser (SGD, ADAM or ADAMW)", (int)c->kind);
    kiln_status rc =
        check_field(ctx, isfinite(c->lr) && c->lr > 0, "lr", "a finite number > 0", c->lr);
    if (rc == KILN_OK)
        rc = check_field(ctx, isfinite(c->weight_decay) && c->weight_decay >= 0, "weight_decay",
                         "a finite number >= 0", c->weight_decay);
    if (rc == KILN_OK)
        rc = check_field(ctx, isfinite(c->clip_norm) && c->clip_norm >= 0, "clip_norm",
                         "a finite number >= 0 (0 turns clipping off)", c->clip_norm);
    if (rc == KILN_OK && sgd)
        rc = check_field(ctx, isfinite(c->momentum) && c->momentum >= 0, "momentum",
                         "a finite number >= 0", c->momentum);
    if (rc == KILN_OK && sgd && c->nesterov && c->momentum == 0)
        rc = kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, "kiln_optimizer_create",
                         "config.nesterov needs config.momentum > 0 (as in PyTorch)");
    if (rc == KILN_OK && !sgd)
        rc = check_field(ctx, c->beta1 >= 0 && c->beta1 < 1, "beta1", "in [0, 1)", c->beta1);
    if (rc == KILN_OK && !sgd)
        rc = check_field(ctx, c->beta2 >= 0 && c->beta2 < 1, "beta2", "in [0, 1)", c->beta2);
    if (rc == KILN_OK && !sgd)
        rc = check_field(ctx, isfinite(c->eps) && c->eps > 0, "eps", "a finite number > 0", c->eps);
    return rc;
}

/* Creates the state tensors of parameter i, zero-filled. */
static kiln_status create_state(kiln_optimizer *opt, size_t i)
{
    static const char *const SGD_SLOTS[] = {"momentum"};
    static const char *const ADAM_SLOTS[] = {"adam_m", "adam_v"};
    const char *const *slots = opt->config.kind == KILN_OPTIMIZER_SGD ? SGD_SLOTS : ADAM_SLOTS;
    const char *param = kiln_graph_value_name(opt->g, opt->params[i]);
    const kiln_shape *shape = kiln_graph_value_shape(opt->g, opt->params[i]);
    for (int s = 0; s < opt->n_slots; s++) {
        size_t at = i * (size_t)opt->n_slots + (size_t)s;
        opt->names[at] = kiln__format(opt->ctx, "%s.%s", param, slots[s]);
        if (opt->names[at] == NULL)
            return kiln__error(opt->ctx, KILN_ERR_NO_MEMORY, "kiln_optimizer_create",
                               "out of memory naming the state of '%s'", param);
        kiln_status rc =
            kiln_tensor_create(opt->dev, shape, KILN_F32, opt->names[at], &opt->state[at]);
        if (rc == KILN_OK)
            rc = kiln_op_fill(opt->dev, opt->state[at], 0.0f);
        if (rc != KILN_OK)
            return rc;
    }
    return KILN_OK;
}

/* The norm tensor and a workspace sized for every parameter's gradient: a step clips at most
 * those, and the workspace only grows with the set. */
static kiln_status create_clipping(kiln_optimizer *opt)
{
    kiln_shape scalar = {0, {0}};
    kiln_status rc = kiln_tensor_create(opt->dev, &scalar, KILN_F32, "gradient norm", &opt->norm);
    for (size_t i = 0; i < opt->n_params; i++)
        opt->grads[i] = kiln_model_get_state(opt->model, opt->params[i]); /* same counts */
    size_t bytes = kiln_optim_clip_grad_norm_workspace_bytes(opt->grads, opt->n_params);
    if (rc == KILN_OK && bytes > 0)
        rc = kiln_buffer_create(opt->dev, bytes, "gradient clipping workspace",
                                &opt->clip_workspace);
    return rc;
}

kiln_status kiln_optimizer_create(kiln_model *model, const kiln_optimizer_config *config,
                                  kiln_optimizer **out)
{
    kiln_status rc = KILN_OK;
    if (model == NULL || config == NULL || out == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    *out = NULL;
    kiln_graph *g = kiln_model_get_graph(model);
    kiln_context *ctx = kiln_graph_get_context(g);
    rc = check_config(ctx, config);
    if (rc != KILN_OK)
        return rc;
    kiln_optimizer *opt = kiln__calloc(ctx, 1, sizeof *opt);
    if (opt == NULL)
        return kiln__error(ctx, KILN_ERR_NO_MEMORY, __func__, "out of memory");
    opt->model = model;
    opt->g = g;
    opt->dev = kiln_model_get_device(model);
    opt->ctx = ctx;
    opt->config = *config;
    opt->n_slots = config->kind != KILN_OPTIMIZER_SGD ? 2 : config->momentum > 0 ? 1 : 0;
    for (size_t v = 0; v < kiln_graph_n_values(g); v++)
        opt->n_params += kiln_graph_value_kind(g, (kiln_value)v) == KILN_VALUE_PARAMETER;
    size_t n_state = opt->n_params * (size_t)opt->n_slots;
    opt->params = kiln__calloc(ctx, opt->n_params + 1, sizeof *opt->params);
    opt->grads = kiln__calloc(ctx, opt->n_params + 1, sizeof *opt->grads);
    opt->step_params = kiln__calloc(ctx, 3 * opt->n_params + 1, sizeof *opt->step_params);
    opt->state = kiln__calloc(ctx, n_state + 1, sizeof *opt->state);
    opt->names = kiln__calloc(ctx, n_state + 1, sizeof *opt->names);
    if (opt->params == NULL || opt->grads == NULL || opt->step_params == NULL ||
        opt->state == NULL || opt->names == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory creating an optimiser");
    opt->step_slot0 = opt->step_params + opt->n_params;
    opt->step_slot1 = opt->step_slot0 + opt->n_params;
    for (size_t v = 0, i = 0; v < kiln_graph_n_values(g); v++)
        if (kiln_graph_value_kind(g, (kiln_value)v) == KILN_VALUE_PARAMETER)
            opt->params[i++] = (kiln_value)v;
    for (size_t i = 0; i < opt->n_params; i++)
        KILN_CHECK(create_state(opt, i));
    if (config->clip_norm > 0)
        KILN_CHECK(create_clipping(opt));
    *out = opt;
    opt = NULL;
cleanup:
    kiln_optimizer_destroy(opt);
    return rc;
}

void kiln_optimizer_destroy(kiln_optimizer *opt)
{
    if (opt == NULL)
        return;
    size_t n_state = opt->n_params * (size_t)opt->n_slots;
    for (size_t i = 0; opt->state != NULL && i < n_state; i++)
        kiln_tensor_destroy(opt->state[i]);
    for (size_t i = 0; opt->names != NULL && i < n_state; i++)
        kiln__free(opt->ctx, opt->names[i]);
    kiln_tensor_destroy(opt->norm);
    kiln_buffer_destroy(opt->clip_workspace);
    kiln__free(opt->ctx, opt->params);
    kiln__free(opt->ctx, opt->grads);
    kiln__free(opt->ctx, opt->step_params);
    kiln__free(opt->ctx, opt->state);
    kiln__free(opt->ctx, opt->names);
    kiln__free(opt->ctx, opt);
}

/* Updates the n parameters that kiln_optimizer_step gathered (opt->grads, opt->step_params and
 * the state slots) for step number `t`, as one group. */
static kiln_status update(kiln_optimizer *opt, size_t n, uint64_t t)
{
    const kiln_optimizer_config *c = &opt->config;
    kiln_tensor **param = opt->step_params, **s0 = opt->step_slot0, **s1 = opt->step_slot1;
    const kiln_tensor *const *grad = (const kiln_tensor *const *)opt->grads;
    if (c->kind == KILN_OPTIMIZER_SGD) {
        kiln_sgd_params p = {c->lr, c->momentum, c->weight_decay, c->nesterov};
        return kiln_optim_sgd_step_group(opt->dev, &p, n, param, grad, s0);
    }
    kiln_adam_params p = {c->lr,  c->beta1,        c->beta2,
                          c->eps, c->weight_decay, c->kind == KILN_OPTIMIZER_ADAMW};
    return kiln_optim_adam_step_group(opt->dev, &p, t, n, param, grad, s0, s1);
}

kiln_status kiln_optimizer_step(kiln_optimizer *opt, kiln_executor *ex)
{
    if (opt == NULL || ex == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    if (kiln_executor_get_model(ex) != opt->model)
        return kiln__error(opt->ctx, KILN_ERR_INVALID_ARGUMENT, __func__,
                           "the executor runs another model than the optimiser's; create the "
                           "optimiser from the executor's model");
    if (kiln_executor_get_mode(ex) != KILN_MODE_TRAIN)
        return kiln__error(opt->ctx, KILN_ERR_INVALID_ARGUMENT, __func__,
                           "the executor is not in train mode, so it has no gradients; step "
                           "with the train-mode executor after kiln_executor_backward");
    size_t n = 0;
    for (size_t i = 0; i < opt->n_params; i++) {
        kiln_tensor *grad = kiln_executor_get_grad(ex, opt->params[i]);
        if (grad == NULL)
            continue;
        kiln_tensor **state = &opt->state[i * (size_t)opt->n_slots];
        opt->grads[n] = grad;
        opt->step_params[n] = kiln_model_get_state(opt->model, opt->params[i]);
        opt->step_slot0[n] = opt->n_slots > 0 ? state[0] : NULL;
        opt->step_slot1[n] = opt->n_slots > 1 ? state[1] : NULL;
        n++;
    }
    if (n == 0)
        return KILN_OK;
    kiln_status rc = KILN_OK;
    if (opt->config.clip_norm > 0)
        rc = kiln_optim_clip_grad_norm(opt->dev, opt->grads, n, opt->config.clip_norm, opt->norm,
                                       opt->clip_workspace);
    uint64_t t = opt->step + 1;
    if (rc == KILN_OK && opt->config.lr > 0)
        rc = update(opt, n, t);
    if (rc == KILN_OK)
        opt->step = t;
    return rc;
}

float kiln_optimizer_get_lr(const kiln_optimizer *opt)
{
    return opt->config.lr;
}

kiln_status kiln_optimizer_set_lr(kiln_optimizer *opt, float lr)
{
    if (opt == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    if (!isfinite(lr) || lr < 0)
        return kiln__error(opt->ctx, KILN_ERR_INVALID_ARGUMENT, __func__,
                           "lr must be a finite number >= 0, got %g", (double)lr);
    opt->config.lr = lr;
    return KILN_OK;
}

const kiln_optimizer_config *kiln_optimizer_get_config(const kiln_optimizer *opt)
{
    return &opt->config;
}

kiln_tensor *kiln_optimizer_get_grad_norm(const kiln_optimizer *opt)
{
    return opt->norm;
}

uint64_t kiln_optimizer_get_step(const kiln_optimizer *opt)
{
    return opt->step;
}

void kiln_optimizer_set_step(kiln_optimizer *opt, uint64_t step)
{
    opt->step = step;
}

size_t kiln_optimizer_n_states(const kiln_optimizer *opt)
{
    return opt->n_params * (size_t)opt->n_slots;
}

const char *kiln_optimizer_state_name(const kiln_optimizer *opt, size_t i)
{
    return i < kiln_optimizer_n_states(opt) ? opt->names[i] : NULL;
}

kiln_tensor *kiln_optimizer_get_state(const kiln_optimizer *opt, const char *name)
{
    for (size_t i = 0; name != NULL && i < kiln_optimizer_n_states(opt); i++)
        if (strcmp(opt->names[i], name) == 0)
            return opt->state[i];
    return NULL;
}

static const char *kind_name(kiln_optimizer_kind kind)
{
    return kind == KILN_OPTIMIZER_SGD ? "SGD" : kind == KILN_OPTIMIZER_ADAM ? "Adam" : "AdamW";
}

/* The state tensor `name` holding exactly n elements, or an error naming what exists. */
static kiln_status find_state(kiln_optimizer *opt, const char *name, int64_t n, const char *fn,
                              kiln_tensor **out)
{
    kiln_tensor *t = kiln_optimizer_get_state(opt, name);
    if (t == NULL) {
        const char *suffix = opt->n_slots == 0 ? NULL
                             : opt->config.kind == KILN_OPTIMIZER_SGD
                                 ? "'<parameter>.momentum'"
                                 : "'<parameter>.adam_m' and '<parameter>.adam_v'";
        return kiln__error(opt->ctx, KILN_ERR_NOT_FOUND, fn,
                           "this %s optimiser has no state named '%s'; its states are %s",
                           kind_name(opt->config.kind), name != NULL ? name : "(null)",
                           suffix != NULL ? suffix : "none (SGD without momentum)");
    }
    if (n != kiln_tensor_count(t)) {
        char text[96];
        return kiln__error(opt->ctx, KILN_ERR_SHAPE, fn,
                           "'%s' has shape %s (%lld elements), the data has %lld", name,
                           kiln_shape_format(kiln_tensor_get_shape(t), text, sizeof text),
                           (long long)kiln_tensor_count(t), (long long)n);
    }
    *out = t;
    return KILN_OK;
}

kiln_status kiln_optimizer_read_state(kiln_optimizer *opt, const char *name, float *host, int64_t n)
{
    kiln_tensor *t = NULL;
    kiln_status rc = find_state(opt, name, n, __func__, &t);
    return rc == KILN_OK ? kiln_tensor_download(t, host, n) : rc;
}

kiln_status kiln_optimizer_write_state(kiln_optimizer *opt, const char *name, const float *host,
                                       int64_t n)
{
    kiln_tensor *t = NULL;
    kiln_status rc = find_state(opt, name, n, __func__, &t);
    return rc == KILN_OK ? kiln_tensor_upload(t, host, n) : rc;
}
