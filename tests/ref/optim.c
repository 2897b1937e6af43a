/*
 * References and checks for the optimiser updates of include/kiln/optim.h, after the PyTorch
 * documentation of torch.optim.SGD (dampening 0), torch.optim.Adam, torch.optim.AdamW and
 * torch.nn.utils.clip_grad_norm_ (2-norm). These are not op-table entries, so the whole suite
 * is custom checks, reporting rows under the names "sgd", "adam", "adamw" and
 * "clip_grad_norm" (which run->only_op selects):
 *   trajectories  several steps with a new gradient each, from zero state (PyTorch's first
 *                 step) or a resumed one, final parameter and state vs a double reference
 *   clipping      the returned norm and the scaled gradients, norm above and below max_norm,
 *                 over gradients of different sizes, many small ones, and a NaN
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/optim.h"
#include "ref/ref.h"

/* ---- references, in double: param, grad and state are (n,) ---- */

/* g = grad + wd param; velocity = momentum velocity + g; param -= lr (nesterov ? g +
 * momentum velocity : velocity). velocity is NULL when momentum is 0. */
static void ref_sgd_step(const kiln_sgd_params *p, double *param, const double *grad,
                         double *velocity, size_t n)
{
    double lr = p->lr, mu = p->momentum, wd = p->weight_decay;
    for (size_t i = 0; i < n; i++) {
        double g = grad[i] + wd * param[i];
        double step = g;
        if (mu != 0) {
            velocity[i] = mu * velocity[i] + g;
            step = p->nesterov ? g + mu * velocity[i] : velocity[i];
        }
        param[i] -= lr * step;
    }
}

/* Adam: g = grad + wd param. AdamW: param *= 1 - lr wd. Then m, v (first and second moment
 * estimates) and the bias-corrected update of step t (1-based). */
static void ref_adam_step(const kiln_adam_params *p, uint64_t t, double *param, const double *grad,
                          double *m, double *v, size_t n)
{
    double lr = p->lr, b1 = p->beta1, b2 = p->beta2, eps = p->eps, wd = p->weight_decay;
    double bc1 = 1 - pow(b1, (double)t), bc2 = 1 - pow(b2, (double)t);
    for (size_t i = 0; i < n; i++) {
        double g = grad[i];
        if (p->decoupled)
            param[i] *= 1 - lr * wd;
        else
            g += wd * param[i];
        m[i] = b1 * m[i] + (1 - b1) * g;
        v[i] = b2 * v[i] + (1 - b2) * g * g;
        double m_hat = m[i] / bc1, v_hat = v[i] / bc2;
        param[i] -= lr * m_hat / (sqrt(v_hat) + eps);
    }
}

/* The total 2-norm of grads[k] (counts[k] elements each); scales them all by
 * min(1, max_norm / (norm + 1e-6)) and returns the norm before scaling. */
static double ref_clip(double *const *grads, const size_t *counts, size_t n_grads, double max_norm)
{
    double sum = 0;
    for (size_t k = 0; k < n_grads; k++) {
        for (size_t i = 0; i < counts[k]; i++)
            sum += grads[k][i] * grads[k][i];
    }
    double norm = sqrt(sum);
    double coef = max_norm / (norm + 1e-6);
    coef = coef > 1 ? 1 : coef; /* torch.clamp(max=1): NaN stays NaN */
    for (size_t k = 0; k < n_grads; k++) {
        for (size_t i = 0; i < counts[k]; i++)
            grads[k][i] *= coef;
    }
    return norm;
}

/* ---- device plumbing ---- */

static bool selected(const kiln_check_run *run, const char *op)
{
    return run->only_op == NULL || strcmp(run->only_op, op) == 0;
}

/* Uploads doubles (already float-representable) into an f32 tensor of n elements. */
static bool upload(kiln_check_run *run, const char *op, const char *label, kiln_tensor *t,
                   const double *values, size_t n)
{
    float *host = malloc(n * sizeof *host);
    for (size_t i = 0; host != NULL && i < n; i++)
        host[i] = (float)values[i];
    bool ok = host != NULL && kiln_tensor_upload(t, host, (int64_t)n) == KILN_OK;
    if (!ok)
        kiln_check_fail(run, op, label, "setup",
                        kiln_context_last_error(kiln_device_get_context(run->dev)));
    free(host);
    return ok;
}

/* Downloads n elements of t and compares them with ref in one row named `what`. */
static void compare_tensor(kiln_check_run *run, const char *op, const char *label, const char *what,
                           const kiln_tensor *t, const double *ref, size_t n, double atol,
                           double rtol, double ms)
{
    float *got = malloc(n * sizeof *got);
    if (got == NULL || kiln_tensor_download(t, got, (int64_t)n) != KILN_OK)
        kiln_check_fail(run, op, label, what,
                        kiln_context_last_error(kiln_device_get_context(run->dev)));
    else
        kiln_check_compare(run, op, label, what, got, ref, n, atol, rtol, ms);
    free(got);
}

/* ---- trajectories ---- */

enum { N_STEPS = 5 };

typedef struct trajectory {
    const char *op;   /* "sgd", "adam" or "adamw" */
    const char *what; /* the setting, shown after the size */
    bool adam;
    kiln_sgd_params sgd;
    kiln_adam_params adam_params;
    uint64_t first_step; /* Adam: 1 from zero state; later from a random, resumed state */
} trajectory;

#define SGD(name, lr, momentum, wd, nesterov)                                                      \
    {                                                                                              \
        .op = "sgd", .what = name, .sgd = { lr, momentum, wd, nesterov }                           \
    }
#define ADAM_LIKE(op_name, decoupled, name, lr, beta1, beta2, eps, wd, first)                      \
    {                                                                                              \
        .op = op_name, .what = name, .adam = true,                                                 \
        .adam_params = {lr, beta1, beta2, eps, wd, decoupled}, .first_step = first                 \
    }
#define ADAM(...) ADAM_LIKE("adam", false, __VA_ARGS__)
#define ADAMW(...) ADAM_LIKE("adamw", true, __VA_ARGS__)

static const trajectory TRAJECTORIES[] = {
    SGD("plain", 0.1f, 0, 0, false),
    SGD("wd 0.1", 0.1f, 0, 0.1f, false),
    SGD("mom 0.9", 0.05f, 0.9f, 0, false),
    SGD("nesterov 0.9", 0.05f, 0.9f, 0, true),
    SGD("nesterov 0.5 wd 0.01", 0.05f, 0.5f, 0.01f, true),
    ADAM("default", 0.01f, 0.9f, 0.999f, 1e-8f, 0, 1),
    ADAM("wd 0.1", 0.01f, 0.9f, 0.999f, 1e-8f, 0.1f, 1),
    /* A large eps and other betas: a misplaced eps or swapped betas would show. */
    ADAM("b 0.8/0.99 eps 0.1", 0.02f, 0.8f, 0.99f, 0.1f, 0, 1),
    ADAMW("wd 0.1", 0.01f, 0.9f, 0.999f, 1e-8f, 0.1f, 1),
    /* Resumed at step 1000 with random moments: bias corrections far from step 1. */
    ADAMW("wd 0.1 from step 1000", 0.01f, 0.9f, 0.999f, 1e-8f, 0.1f, 1000),
};

/* Single steps at these sizes: 1, below, at and just past one work-item's run of 16
 * elements, and a large odd size. */
static const size_t SIZES[] = {1, 7, 16, 17, 1000003};

/* Group steps (kiln_optim_*_step_group) over these tensors: more than one launch's 8 slots,
 * single-element tensors, runs cut short, and a large one among small ones. */
static const size_t GROUP_SIZES[] = {3, 2, 1, 16, 33, 100003, 7, 1, 250, 17, 5};

enum { MAX_GROUP = sizeof GROUP_SIZES / sizeof GROUP_SIZES[0] };

/* Host arrays and device tensors of one tensor of a trajectory: param and up to two state
 * tensors. */
typedef struct traj_state {
    size_t n;
    double *param, *grad, *s0, *s1;
    kiln_tensor *t_param, *t_grad, *t_s0, *t_s1;
} traj_state;

static void traj_release(traj_state *s)
{
    free(s->param);
    free(s->grad);
    free(s->s0);
    free(s->s1);
    kiln_tensor_destroy(s->t_param);
    kiln_tensor_destroy(s->t_grad);
    kiln_tensor_destroy(s->t_s0);
    kiln_tensor_destroy(s->t_s1);
}

/* Generates the starting values of s->n elements and puts them on the device; false after
 * reporting. */
static bool traj_set_up(kiln_check_run *run, const trajectory *t, uint64_t seed, const char *label,
                        traj_state *s)
{
    kiln_check_gen normal = {KILN_GEN_NORMAL, 0, 0, 0};
    kiln_check_gen small = {KILN_GEN_NORMAL, 0, 0.1, 0};
    kiln_check_gen positive = {KILN_GEN_UNIFORM, 0.05, 0.5, 0};
    size_t n = s->n;
    kiln_shape shape = kiln_shape_of(1, (int64_t[]){(int64_t)n});
    bool has_s0 = t->adam || t->sgd.momentum != 0;
    s->param = malloc((n + 1) * sizeof(double));
    s->grad = malloc((n + 1) * sizeof(double));
    s->s0 = has_s0 ? calloc(n + 1, sizeof(double)) : NULL;
    s->s1 = t->adam ? calloc(n + 1, sizeof(double)) : NULL;
    if (s->param == NULL || s->grad == NULL || (has_s0 && s->s0 == NULL) ||
        (t->adam && s->s1 == NULL)) {
        kiln_check_fail(run, t->op, label, "setup", "out of host memory");
        return false;
    }
    kiln_check_generate(&normal, seed, s->param, n);
    if (t->adam && t->first_step > 1) {
        kiln_check_generate(&small, seed + 1, s->s0, n);
        kiln_check_generate(&positive, seed + 2, s->s1, n);
    }
    s->t_param = kiln_check_tensor(run, t->op, &shape, KILN_F32, s->param, "param");
    s->t_grad = kiln_check_tensor(run, t->op, &shape, KILN_F32, NULL, "grad");
    if (s->t_param == NULL || s->t_grad == NULL)
        return false;
    if (has_s0 && (s->t_s0 = kiln_check_tensor(run, t->op, &shape, KILN_F32, s->s0,
                                               t->adam ? "m" : "velocity")) == NULL)
        return false;
    if (t->adam && (s->t_s1 = kiln_check_tensor(run, t->op, &shape, KILN_F32, s->s1, "v")) == NULL)
        return false;
    return true;
}

/* One step of every tensor of the trajectory on the device: one call per tensor, or one
 * group call for all of them. */
static kiln_status device_step(kiln_check_run *run, const trajectory *t, uint64_t step,
                               traj_state *s, size_t n_tensors, bool group)
{
    kiln_tensor *param[MAX_GROUP], *s0[MAX_GROUP], *s1[MAX_GROUP];
    const kiln_tensor *grad[MAX_GROUP];
    for (size_t i = 0; i < n_tensors; i++) {
        param[i] = s[i].t_param;
        grad[i] = s[i].t_grad;
        s0[i] = s[i].t_s0;
        s1[i] = s[i].t_s1;
    }
    if (group)
        return t->adam ? kiln_optim_adam_step_group(run->dev, &t->adam_params, step, n_tensors,
                                                    param, grad, s0, s1)
                       : kiln_optim_sgd_step_group(run->dev, &t->sgd, n_tensors, param, grad, s0);
    kiln_status rc = KILN_OK;
    for (size_t i = 0; rc == KILN_OK && i < n_tensors; i++)
        rc = t->adam ? kiln_optim_adam_step(run->dev, &t->adam_params, step, param[i], grad[i],
                                            s0[i], s1[i])
                     : kiln_optim_sgd_step(run->dev, &t->sgd, param[i], grad[i], s0[i]);
    return rc;
}

/*
 * N_STEPS steps, each with a fresh N(0, 1) gradient, on the device and in double; then the
 * parameter and the state are compared with TRAJ_ATOL + TRAJ_RTOL |ref|. Each step rounds
 * about 4 times per element (2^-24 relative each), so 5 steps stay within ~20 roundings of
 * the values involved: ~1e-6 relative. Where a value cancels towards 0 its error is set by its
 * terms instead: a velocity sums up to 1 + 0.9 + ... + 0.9^4 = 4.1 gradients of up to ~5 over
 * a million N(0, 1) draws, so ~20 roundings near 20 are possible; hence the atol of 2e-6
 * (seen: 6.7e-7 on a velocity of -0.019; 1.2e-6 on an AdamW parameter of 2, whose decay
 * factor 1 - lr wd is itself rounded to float). Adam's sqrt and division may be off by 3 and
 * 2.5 ulp in OpenCL 1.2, but that error scales a step of size lr <= 0.02, adding < 1e-8.
 * Adam's v sums positive terms only (no cancellation) and is small (~(1 - beta2) g^2), so it
 * gets the relative tolerance alone, with a floor far below its values.
 */
#define TRAJ_ATOL 2e-6
#define TRAJ_RTOL 1e-6

/* Runs trajectory t over tensors of `sizes` (one tensor unless `group`). */
static void run_trajectory(kiln_check_run *run, const trajectory *t, const size_t *sizes,
                           size_t n_tensors, bool group, uint64_t seed)
{
    char label[96];
    if (group)
        snprintf(label, sizeof label, "group of %zu %s", n_tensors, t->what);
    else
        snprintf(label, sizeof label, "(%zu,) %s", sizes[0], t->what);
    kiln_context *ctx = kiln_device_get_context(run->dev);
    kiln_check_gen normal = {KILN_GEN_NORMAL, 0, 0, 0};
    traj_state s[MAX_GROUP];
    memset(s, 0, sizeof s);
    bool ok = true;
    for (size_t i = 0; ok && i < n_tensors; i++) {
        s[i].n = sizes[i];
        ok = traj_set_up(run, t, seed + 97 * i, label, &s[i]);
    }
    double ms = 0;
    for (int k = 0; ok && k < N_STEPS; k++) {
        uint64_t step = t->first_step + (uint64_t)k;
        for (size_t i = 0; ok && i < n_tensors; i++) {
            kiln_check_generate(&normal, seed * 7919 + 101 + (uint64_t)k + 13 * i, s[i].grad,
                                s[i].n);
            ok = upload(run, t->op, label, s[i].t_grad, s[i].grad, s[i].n);
        }
        if (!ok)
            break;
        double t0 = kiln_check_now_ms();
        kiln_status rc = device_step(run, t, step, s, n_tensors, group);
        if (rc == KILN_OK)
            rc = kiln_device_finish(run->dev);
        ms += kiln_check_now_ms() - t0;
        if (rc != KILN_OK) {
            kiln_check_fail(run, t->op, label, "step", kiln_context_last_error(ctx));
            ok = false;
            break;
        }
        for (size_t i = 0; i < n_tensors; i++) {
            if (t->adam)
                ref_adam_step(&t->adam_params, step, s[i].param, s[i].grad, s[i].s0, s[i].s1,
                              s[i].n);
            else
                ref_sgd_step(&t->sgd, s[i].param, s[i].grad, s[i].s0, s[i].n);
        }
    }
    for (size_t i = 0; ok && i < n_tensors; i++) {
        char what[3][32];
        snprintf(what[0], sizeof what[0], group ? "param[%zu]" : "param", i);
        snprintf(what[1], sizeof what[1], group ? "%s[%zu]" : "%s", t->adam ? "m" : "velocity", i);
        snprintf(what[2], sizeof what[2], group ? "v[%zu]" : "v", i);
        compare_tensor(run, t->op, label, what[0], s[i].t_param, s[i].param, s[i].n, TRAJ_ATOL,
                       TRAJ_RTOL, i == 0 ? ms : 0);
        if (s[i].t_s0 != NULL)
            compare_tensor(run, t->op, label, what[1], s[i].t_s0, s[i].s0, s[i].n, TRAJ_ATOL,
                           TRAJ_RTOL, 0);
        if (s[i].t_s1 != NULL)
            compare_tensor(run, t->op, label, what[2], s[i].t_s1, s[i].s1, s[i].n, 1e-12, TRAJ_RTOL,
                           0);
    }
    for (size_t i = 0; i < n_tensors; i++)
        traj_release(&s[i]);
}

/* ---- clipping ---- */

enum { CLIP_MAX_GRADS = 80 };

typedef struct clip_case {
    int n_grads;
    kiln_shape shapes[3]; /* the first 3 gradients; the rest are (1 + k % 5,) */
    double max_norm;
    bool plant_nan;
} clip_case;

static const clip_case CLIPS[] = {
    /* Norm ~1000: clipped to 1. */
    {3, {S0(), S2(33, 65), S1(1000003)}, 1.0, false},
    /* Gradients of the same shapes under a larger max_norm: left as they are. */
    {3, {S0(), S2(33, 65), S1(1000003)}, 5000.0, false},
    {3, {S1(7), S3(2, 3, 129), S1(1)}, 0.5, false},
    /* More gradients than the largest has elements (and than a work-group): the sums' slots
     * and their move to the workspace's start. */
    {80, {S1(3), S1(1), S1(5)}, 2.0, false},
    /* A NaN anywhere: norm NaN, every gradient NaN, as PyTorch without error_if_nonfinite. */
    {3, {S1(5), S1(300), S1(2)}, 1.0, true},
};

/* Everything one clipping check allocates. */
typedef struct clip_state {
    double *ref[CLIP_MAX_GRADS];
    size_t counts[CLIP_MAX_GRADS];
    kiln_tensor *grads[CLIP_MAX_GRADS], *norm;
    kiln_buffer *workspace;
    float *got;
    double *want;
} clip_state;

static void clip_release(clip_state *s)
{
    for (int k = 0; k < CLIP_MAX_GRADS; k++) {
        free(s->ref[k]);
        kiln_tensor_destroy(s->grads[k]);
    }
    kiln_tensor_destroy(s->norm);
    kiln_buffer_destroy(s->workspace);
    free(s->got);
    free(s->want);
}

static bool clip_set_up(kiln_check_run *run, const clip_case *c, uint64_t seed, const char *label,
                        clip_state *s)
{
    kiln_check_gen normal = {KILN_GEN_NORMAL, 0, 0, 0};
    kiln_context *ctx = kiln_device_get_context(run->dev);
    for (int k = 0; k < c->n_grads; k++) {
        kiln_shape shape = k < 3 ? c->shapes[k] : kiln_shape_of(1, (int64_t[]){1 + k % 5});
        s->counts[k] = (size_t)kiln_shape_count(&shape);
        s->ref[k] = malloc(s->counts[k] * sizeof(double));
        if (s->ref[k] == NULL)
            return false;
        kiln_check_generate(&normal, seed + 17 * (uint64_t)k, s->ref[k], s->counts[k]);
        if (c->plant_nan && k == 1)
            s->ref[k][s->counts[k] / 2] = NAN;
        s->grads[k] = kiln_check_tensor(run, "clip_grad_norm", &shape, KILN_F32, s->ref[k], "grad");
        if (s->grads[k] == NULL)
            return false;
    }
    s->norm = kiln_check_tensor(run, "clip_grad_norm", &(kiln_shape)S0(), KILN_F32, NULL, "norm");
    size_t bytes = kiln_optim_clip_grad_norm_workspace_bytes(s->grads, (size_t)c->n_grads);
    if (s->norm == NULL ||
        kiln_buffer_create(run->dev, bytes, "clip workspace", &s->workspace) != KILN_OK) {
        kiln_check_fail(run, "clip_grad_norm", label, "setup", kiln_context_last_error(ctx));
        return false;
    }
    return true;
}

/*
 * Tolerances: the norm's sums are compensated trees (error ~1 ulp) and its sqrt may be off by
 * 3 ulp in OpenCL 1.2, so 1e-6 relative; each gradient is scaled by max_norm / (norm + 1e-6)
 * in float (division within 2.5 ulp, the norm's error, one product rounding): < 8e-7
 * relative. A product does not cancel, so the atol is only a floor for values near 0.
 */
static void run_clip(kiln_check_run *run, const clip_case *c, uint64_t seed)
{
    char label[96], shapes[64];
    kiln_check_shapes_label(c->shapes, 3, shapes, sizeof shapes);
    if (c->n_grads > 3)
        snprintf(label, sizeof label, "%d grads, max %g", c->n_grads, c->max_norm);
    else
        snprintf(label, sizeof label, "%s max %g%s", shapes, c->max_norm,
                 c->plant_nan ? " NaN" : "");
    kiln_context *ctx = kiln_device_get_context(run->dev);
    clip_state s;
    memset(&s, 0, sizeof s);
    if (!clip_set_up(run, c, seed, label, &s)) {
        clip_release(&s);
        return;
    }
    double t0 = kiln_check_now_ms();
    kiln_status rc = kiln_optim_clip_grad_norm(run->dev, s.grads, (size_t)c->n_grads,
                                               (float)c->max_norm, s.norm, s.workspace);
    if (rc == KILN_OK)
        rc = kiln_device_finish(run->dev);
    double ms = kiln_check_now_ms() - t0;
    if (rc != KILN_OK) {
        kiln_check_fail(run, "clip_grad_norm", label, "clip", kiln_context_last_error(ctx));
        clip_release(&s);
        return;
    }
    double norm = ref_clip(s.ref, s.counts, (size_t)c->n_grads, c->max_norm);
    compare_tensor(run, "clip_grad_norm", label, "norm", s.norm, &norm, 1, 0, 1e-6, ms);
    size_t total = 0;
    for (int k = 0; k < c->n_grads; k++)
        total += s.counts[k];
    s.got = malloc(total * sizeof *s.got);
    s.want = malloc(total * sizeof *s.want);
    size_t at = 0;
    for (int k = 0; s.got != NULL && s.want != NULL && k < c->n_grads; k++) {
        if (kiln_tensor_download(s.grads[k], s.got + at, (int64_t)s.counts[k]) != KILN_OK)
            break;
        memcpy(s.want + at, s.ref[k], s.counts[k] * sizeof(double));
        at += s.counts[k];
    }
    if (at != total)
        kiln_check_fail(run, "clip_grad_norm", label, "grads", kiln_context_last_error(ctx));
    else
        kiln_check_compare(run, "clip_grad_norm", label, "grads", s.got, s.want, total, 1e-12, 1e-6,
                           0);
    clip_release(&s);
}

static void optim_custom(kiln_check_run *run)
{
    size_t n_traj = sizeof TRAJECTORIES / sizeof TRAJECTORIES[0];
    for (size_t i = 0; i < n_traj; i++) {
        if (!selected(run, TRAJECTORIES[i].op))
            continue;
        for (size_t j = 0; j < sizeof SIZES / sizeof SIZES[0]; j++)
            run_trajectory(run, &TRAJECTORIES[i], &SIZES[j], 1, false, 1000 + 10 * i + j);
        run_trajectory(run, &TRAJECTORIES[i], GROUP_SIZES, MAX_GROUP, true, 3000 + 10 * i);
    }
    for (size_t i = 0; i < sizeof CLIPS / sizeof CLIPS[0]; i++) {
        if (selected(run, "clip_grad_norm"))
            run_clip(run, &CLIPS[i], 5000 + 100 * i);
    }
}

const kiln_check_suite kiln_check_suite_optim = {
    .name = "optim",
    .custom = optim_custom,
};
