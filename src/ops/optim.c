/*
 * Optimiser updates (include/kiln/optim.h): SGD, Adam/AdamW and global gradient-norm
 * clipping. Not entries of the op table (they work in place and have no backward); they live
 * here beside the ops because they are kernels over tensors like them (cl/optim.cl). This file
 * checks arguments, derives the step-dependent scalars in double and queues the kernels; it
 * never reads anything back, so an optimiser step never waits for the device.
 */
#include <math.h>
#include <stdio.h>

#include "kiln/optim.h"
#include "ops/op.h"

/* kiln__reduce_to names its caller through an op in its errors; clipping is not in the table. */
static const kiln_op CLIP_OP = {.name = "clip_grad_norm"};

/* Records KILN_ERR_INVALID_ARGUMENT as "fn: <why>". */
static kiln_status bad_argument(kiln_device *dev, const char *fn, const char *fmt, ...)
    KILN__PRINTF(3, 4);

static kiln_status bad_argument(kiln_device *dev, const char *fn, const char *fmt, ...)
{
    char why[512];
    va_list args;
    va_start(args, fmt);
    vsnprintf(why, sizeof why, fmt, args);
    va_end(args);
    return kiln__error(dev->ctx, KILN_ERR_INVALID_ARGUMENT, fn, "%s", why);
}

/* A hyperparameter must be finite and at least `lo` (above `lo` when `strict`). */
static kiln_status check_scalar(kiln_device *dev, const char *fn, const char *name, float x,
                                float lo, bool strict)
{
    bool ok = isfinite(x) && (strict ? x > lo : x >= lo);
    if (ok)
        return KILN_OK;
    return bad_argument(dev, fn, "%s must be a finite number %s %g, got %g", name,
                        strict ? ">" : ">=", (double)lo, (double)x);
}

/* beta1 and beta2: in [0, 1), so that the bias corrections 1 - beta^t are never 0. */
static kiln_status check_beta(kiln_device *dev, const char *fn, const char *name, float beta)
{
    if (beta >= 0 && beta < 1)
        return KILN_OK;
    return bad_argument(dev, fn, "%s must be in [0, 1), got %g", name, (double)beta);
}

/* A tensor argument as errors name it: `role` alone ("norm", the "grad" of a single step) or
 * with its index ("grad[3]" in a group). Formatted only when an error is reported, so the
 * checks of every step cost no string formatting. */
typedef struct role_ref {
    const char *role;
    size_t index;
    bool indexed;
} role_ref;

static const char *role_text(role_ref r, char *buf, size_t size)
{
    if (!r.indexed)
        return r.role;
    snprintf(buf, size, "%s[%zu]", r.role, r.index);
    return buf;
}

/* A tensor argument: present, f32, on `dev`, and countable by the kernels' uint. */
static kiln_status check_tensor(kiln_device *dev, const char *fn, role_ref r, const kiln_tensor *t)
{
    bool counts = t != NULL && kiln_tensor_count(t) <= (int64_t)UINT32_MAX;
    if (t != NULL && t->dtype == KILN_F32 && t->dev == dev && counts)
        return KILN_OK;
    char name[48], s[96];
    const char *role = role_text(r, name, sizeof name);
    if (t == NULL)
        return bad_argument(dev, fn, "%s is NULL", role);
    if (t->dtype != KILN_F32)
        return bad_argument(dev, fn, "%s '%s' is %s; optimisers work on f32 tensors", role, t->name,
                            kiln_dtype_name(t->dtype));
    if (t->dev != dev)
        return bad_argument(dev, fn, "%s '%s' lives on another device", role, t->name);
    return kiln__error(dev->ctx, KILN_ERR_UNSUPPORTED, fn,
                       "%s '%s' %s has more than 2^32 - 1 elements", role, t->name,
                       kiln_shape_format(&t->shape, s, sizeof s));
}

/* A gradient or state tensor that must have the shape of `param`. */
static kiln_status check_like_param(kiln_device *dev, const char *fn, role_ref r,
                                    const kiln_tensor *t, const kiln_tensor *param)
{
    kiln_status rc = check_tensor(dev, fn, r, t);
    if (rc != KILN_OK || kiln_shape_equal(&t->shape, &param->shape))
        return rc;
    char name[48], a[96], b[96];
    return kiln__error(dev->ctx, KILN_ERR_SHAPE, fn,
                       "%s '%s' has shape %s but param '%s' has shape %s; gradients and "
                       "optimiser state must have their parameter's shape",
                       role_text(r, name, sizeof name), t->name,
                       kiln_shape_format(&t->shape, a, sizeof a), param->name,
                       kiln_shape_format(&param->shape, b, sizeof b));
}

/* ---- grouped launches: cl/optim.cl steps up to OPTIM_SLOTS tensors per launch ---- */

enum { OPTIM_SLOTS = 8, OPTIM_RUN = 16, OPTIM_MAX_ROLES = 4 };

/*
 * Queues `kernel` over tensors [0, n) of the roles (role 0 the parameters; a NULL role array
 * or entry, which the kernel does not touch, takes the parameter's buffer), OPTIM_SLOTS tensors
 * a launch: the role buffers slot by slot, then `scalars`, then each slot's first work-item and
 * element count (unused slots: no elements).
 */
static kiln_status launch_group(kiln_device *dev, const char *kernel,
                                const kiln_tensor *const *const *roles, size_t n_roles, size_t n,
                                const kiln__arg *scalars, size_t n_scalars)
{
    kiln__arg args[OPTIM_MAX_ROLES * OPTIM_SLOTS + 8 + 2];
    kiln_status rc = KILN_OK;
    for (size_t from = 0; rc == KILN_OK && from < n; from += OPTIM_SLOTS) {
        size_t used = n - from < OPTIM_SLOTS ? n - from : OPTIM_SLOTS, items = 0, a = 0;
        uint32_t first[OPTIM_SLOTS], count[OPTIM_SLOTS];
        for (size_t k = 0; k < OPTIM_SLOTS; k++) {
            size_t t = from + (k < used ? k : 0);
            count[k] = k < used ? (uint32_t)kiln_tensor_count(roles[0][t]) : 0;
            first[k] = (uint32_t)items;
            items += ((size_t)count[k] + OPTIM_RUN - 1) / OPTIM_RUN;
        }
        for (size_t r = 0; r < n_roles; r++) {
            for (size_t k = 0; k < OPTIM_SLOTS; k++) {
                size_t t = from + (k < used ? k : 0);
                const kiln_tensor *x = roles[r] != NULL ? roles[r][t] : NULL;
                args[a++] = KILN__ARG_T(x != NULL ? x : roles[0][t]);
            }
        }
        for (size_t i = 0; i < n_scalars; i++)
            args[a++] = scalars[i];
        args[a++] = kiln__arg_u32x8(first);
        args[a++] = kiln__arg_u32x8(count);
        rc = kiln__launch_1d(dev, "optim", kernel, args, a, items);
    }
    return rc;
}

/* ---- SGD ---- */

static kiln_status check_sgd(kiln_device *dev, const char *fn, const kiln_sgd_params *p)
{
    if (p == NULL)
        return bad_argument(dev, fn, "params is NULL");
    kiln_status rc = check_scalar(dev, fn, "lr", p->lr, 0, true);
    if (rc == KILN_OK)
        rc = check_scalar(dev, fn, "momentum", p->momentum, 0, false);
    if (rc == KILN_OK)
        rc = check_scalar(dev, fn, "weight_decay", p->weight_decay, 0, false);
    if (rc == KILN_OK && p->nesterov && p->momentum == 0)
        rc = bad_argument(dev, fn, "nesterov needs momentum > 0 (PyTorch's rule as well)");
    return rc;
}

static kiln_status check_sgd_tensors(kiln_device *dev, const char *fn, const kiln_sgd_params *p,
                                     size_t i, bool group, const kiln_tensor *param,
                                     const kiln_tensor *grad, const kiln_tensor *velocity)
{
    kiln_status rc = check_tensor(dev, fn, (role_ref){"param", i, group}, param);
    if (rc == KILN_OK)
        rc = check_like_param(dev, fn, (role_ref){"grad", i, group}, grad, param);
    if (rc != KILN_OK || p->momentum == 0)
        return rc;
    role_ref velocity_role = {"velocity", i, group};
    if (velocity == NULL) {
        char name[48];
        return bad_argument(dev, fn,
                            "%s is NULL but momentum is %g; pass a zero-filled tensor "
                            "of the parameter's shape",
                            role_text(velocity_role, name, sizeof name), (double)p->momentum);
    }
    return check_like_param(dev, fn, velocity_role, velocity, param);
}

/* The SGD step of every entry point: checks everything, then queues the grouped launches. */
static kiln_status sgd_group(kiln_device *dev, const char *fn, const kiln_sgd_params *params,
                             size_t n, kiln_tensor *const *param, const kiln_tensor *const *grad,
                             kiln_tensor *const *velocity, bool group)
{
    kiln_status rc = check_sgd(dev, fn, params);
    if (rc == KILN_OK && n > 0 && (param == NULL || grad == NULL))
        rc = bad_argument(dev, fn, "%s is NULL with n %zu", param == NULL ? "param" : "grad", n);
    for (size_t i = 0; rc == KILN_OK && i < n; i++)
        rc = check_sgd_tensors(dev, fn, params, i, group, param[i], grad[i],
                               velocity != NULL ? velocity[i] : NULL);
    if (rc != KILN_OK)
        return rc;
    bool has_momentum = params->momentum != 0;
    /* Without momentum the kernel never touches its velocity arguments. */
    const kiln_tensor *const *roles[] = {(const kiln_tensor *const *)param, grad,
                                         has_momentum ? (const kiln_tensor *const *)velocity
                                                      : NULL};
    kiln__arg scalars[] = {KILN__ARG_FLOAT(params->lr), KILN__ARG_FLOAT(params->momentum),
                           KILN__ARG_FLOAT(params->weight_decay),
                           KILN__ARG_INT(has_momentum ? 1 : 0),
                           KILN__ARG_INT(params->nesterov ? 1 : 0)};
    return launch_group(dev, "sgd_step", roles, 3, n, scalars, 5);
}

kiln_status kiln_optim_sgd_step(kiln_device *dev, const kiln_sgd_params *params, kiln_tensor *param,
                                const kiln_tensor *grad, kiln_tensor *velocity)
{
    if (dev == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    return sgd_group(dev, __func__, params, 1, &param, &grad, &velocity, false);
}

kiln_status kiln_optim_sgd_step_group(kiln_device *dev, const kiln_sgd_params *params, size_t n,
                                      kiln_tensor *const *param, const kiln_tensor *const *grad,
                                      kiln_tensor *const *velocity)
{
    if (dev == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    return sgd_group(dev, __func__, params, n, param, grad, velocity, true);
}

/* ---- Adam and AdamW ---- */

static kiln_status check_adam(kiln_device *dev, const char *fn, const kiln_adam_params *p,
                              uint64_t step)
{
    if (p == NULL)
        return bad_argument(dev, fn, "params is NULL");
    kiln_status rc = check_scalar(dev, fn, "lr", p->lr, 0, true);
    if (rc == KILN_OK)
        rc = check_beta(dev, fn, "beta1", p->beta1);
    if (rc == KILN_OK)
        rc = check_beta(dev, fn, "beta2", p->beta2);
    if (rc == KILN_OK)
        rc = check_scalar(dev, fn, "eps", p->eps, 0, true);
    if (rc == KILN_OK)
        rc = check_scalar(dev, fn, "weight_decay", p->weight_decay, 0, false);
    if (rc == KILN_OK && step == 0)
        rc = bad_argument(dev, fn, "step must count from 1 (the first step is 1), got 0");
    return rc;
}

static kiln_status check_adam_tensors(kiln_device *dev, const char *fn, size_t i, bool group,
                                      const kiln_tensor *param, const kiln_tensor *grad,
                                      const kiln_tensor *m, const kiln_tensor *v)
{
    kiln_status rc = check_tensor(dev, fn, (role_ref){"param", i, group}, param);
    if (rc == KILN_OK)
        rc = check_like_param(dev, fn, (role_ref){"grad", i, group}, grad, param);
    if (rc == KILN_OK)
        rc = check_like_param(dev, fn, (role_ref){"m", i, group}, m, param);
    if (rc == KILN_OK)
        rc = check_like_param(dev, fn, (role_ref){"v", i, group}, v, param);
    return rc;
}

/* The Adam step of every entry point: checks everything, then queues the grouped launches. */
static kiln_status adam_group(kiln_device *dev, const char *fn, const kiln_adam_params *params,
                              uint64_t step, size_t n, kiln_tensor *const *param,
                              const kiln_tensor *const *grad, kiln_tensor *const *m,
                              kiln_tensor *const *v, bool group)
{
    kiln_status rc = check_adam(dev, fn, params, step);
    if (rc == KILN_OK && n > 0 && (param == NULL || grad == NULL || m == NULL || v == NULL))
        rc = bad_argument(dev, fn, "param, grad, m and v must not be NULL with n %zu", n);
    for (size_t i = 0; rc == KILN_OK && i < n; i++)
        rc = check_adam_tensors(dev, fn, i, group, param[i], grad[i], m[i], v[i]);
    if (rc != KILN_OK)
        return rc;
    /* The step-dependent scalars in double, as PyTorch computes them in Python floats; beta < 1
     * keeps both corrections above 0 for every step. */
    double lr = params->lr, wd = params->weight_decay;
    double bc1 = 1.0 - pow((double)params->beta1, (double)step);
    double bc2 = 1.0 - pow((double)params->beta2, (double)step);
    double decay = params->decoupled ? 1.0 - lr * wd : 1.0;
    double grad_decay = params->decoupled ? 0.0 : wd;
    const kiln_tensor *const *roles[] = {(const kiln_tensor *const *)param, grad,
                                         (const kiln_tensor *const *)m,
                                         (const kiln_tensor *const *)v};
    kiln__arg scalars[] = {KILN__ARG_FLOAT(decay),         KILN__ARG_FLOAT(grad_decay),
                           KILN__ARG_FLOAT(params->beta1), KILN__ARG_FLOAT(params->beta2),
                           KILN__ARG_FLOAT(lr / bc1),      KILN__ARG_FLOAT(sqrt(bc2)),
                           KILN__ARG_FLOAT(params->eps)};
    return launch_group(dev, "adam_step", roles, 4, n, scalars, 7);
}

kiln_status kiln_optim_adam_step(kiln_device *dev, const kiln_adam_params *params, uint64_t step,
                                 kiln_tensor *param, const kiln_tensor *grad, kiln_tensor *m,
                                 kiln_tensor *v)
{
    if (dev == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    return adam_group(dev, __func__, params, step, 1, &param, &grad, &m, &v, false);
}

kiln_status kiln_optim_adam_step_group(kiln_device *dev, const kiln_adam_params *params,
                                       uint64_t step, size_t n, kiln_tensor *const *param,
                                       const kiln_tensor *const *grad, kiln_tensor *const *m,
                                       kiln_tensor *const *v)
{
    if (dev == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    return adam_group(dev, __func__, params, step, n, param, grad, m, v, true);
}

/* ---- global gradient-norm clipping ----
 *
 * Workspace (floats): [0, S) scratch for one gradient's squares, S = max(largest gradient,
 * n_grads); [S, S + n_grads) each gradient's sum of squares. kiln__reduce_to reads and writes
 * whole buffers from offset 0, so each gradient's sum is reduced into the norm tensor, then
 * stashed in its slot; at the end the slots move to offset 0 (S >= n_grads keeps the move free
 * of overlap) and are reduced into the norm tensor once more. Every sum is a compensated tree,
 * and so is the sum of sums.
 */

static size_t clip_scratch_floats(kiln_tensor *const *grads, size_t n_grads)
{
    size_t most = n_grads;
    for (size_t i = 0; i < n_grads; i++) {
        if (grads[i] != NULL && (size_t)kiln_tensor_count(grads[i]) > most)
            most = (size_t)kiln_tensor_count(grads[i]);
    }
    return most;
}

size_t kiln_optim_clip_grad_norm_workspace_bytes(kiln_tensor *const *grads, size_t n_grads)
{
    if (grads == NULL || n_grads == 0)
        return 0;
    return (clip_scratch_floats(grads, n_grads) + n_grads) * sizeof(float);
}

static kiln_status check_clip(kiln_device *dev, const char *fn, kiln_tensor *const *grads,
                              size_t n_grads, float max_norm, const kiln_tensor *norm,
                              const kiln_buffer *workspace)
{
    kiln_status rc = check_scalar(dev, fn, "max_norm", max_norm, 0, true);
    if (rc == KILN_OK)
        rc = check_tensor(dev, fn, (role_ref){"norm", 0, false}, norm);
    if (rc != KILN_OK)
        return rc;
    if (kiln_tensor_count(norm) != 1) {
        char s[96];
        return kiln__error(dev->ctx, KILN_ERR_SHAPE, fn,
                           "norm '%s' has shape %s; it must hold exactly one element", norm->name,
                           kiln_shape_format(&norm->shape, s, sizeof s));
    }
    if (n_grads > 0 && grads == NULL)
        return bad_argument(dev, fn, "grads is NULL with n_grads %zu", n_grads);
    for (size_t i = 0; i < n_grads && rc == KILN_OK; i++)
        rc = check_tensor(dev, fn, (role_ref){"grads", i, true}, grads[i]);
    if (rc != KILN_OK)
        return rc;
    size_t need = kiln_optim_clip_grad_norm_workspace_bytes(grads, n_grads);
    if (need / sizeof(float) > UINT32_MAX)
        return kiln__error(dev->ctx, KILN_ERR_UNSUPPORTED, fn,
                           "%zu gradients need a workspace of %zu floats, more than 2^32 - 1",
                           n_grads, need / sizeof(float));
    if (need > 0 && (workspace == NULL || workspace->n_bytes < need || workspace->dev != dev))
        return bad_argument(dev, fn,
                            "needs a workspace of %zu bytes on this device "
                            "(kiln_optim_clip_grad_norm_workspace_bytes), got %s",
                            need,
                            workspace == NULL           ? "none"
                            : workspace->dev != dev     ? "one on another device"
                            : workspace->n_bytes < need ? "a smaller one"
                                                        : "?");
    return KILN_OK;
}

/* Sums the squares of `grad` into its slot of the workspace. */
static kiln_status sum_squares(kiln_device *dev, const kiln_tensor *grad, kiln_tensor *norm,
                               kiln_buffer *ws, uint32_t slot)
{
    uint32_t n = (uint32_t)kiln_tensor_count(grad);
    kiln_shape flat = kiln_shape_of(1, (int64_t[]){n}), one = kiln_shape_of(1, (int64_t[]){1});
    kiln__arg square[] = {KILN__ARG_T(grad), KILN__ARG_BUF(ws), KILN__ARG_UINT(n)};
    kiln_status rc = kiln__launch_1d(dev, "optim", "clip_grad_norm_square", square, 3, n);
    if (rc == KILN_OK)
        rc = kiln__reduce_to(dev, &CLIP_OP, ws, &flat, kiln__tensor_buffer(norm), &one,
                             KILN__REDUCE_SUM, 1.0f, false);
    kiln__arg stash[] = {KILN__ARG_T(norm), KILN__ARG_BUF(ws), KILN__ARG_UINT(slot)};
    if (rc == KILN_OK)
        rc = kiln__launch_1d(dev, "optim", "clip_grad_norm_stash", stash, 3, 1);
    return rc;
}

kiln_status kiln_optim_clip_grad_norm(kiln_device *dev, kiln_tensor *const *grads, size_t n_grads,
                                      float max_norm, kiln_tensor *norm, kiln_buffer *workspace)
{
    if (dev == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    kiln_status rc = check_clip(dev, __func__, grads, n_grads, max_norm, norm, workspace);
    if (rc != KILN_OK)
        return rc;
    kiln__arg finish[] = {KILN__ARG_T(norm), KILN__ARG_INT(n_grads > 0 ? 1 : 0)};
    if (n_grads == 0)
        return kiln__launch_1d(dev, "optim", "clip_grad_norm_finish", finish, 2, 1);
    uint32_t offset = (uint32_t)clip_scratch_floats(grads, n_grads);
    for (size_t i = 0; i < n_grads && rc == KILN_OK; i++)
        rc = sum_squares(dev, grads[i], norm, workspace, offset + (uint32_t)i);
    kiln__arg gather[] = {KILN__ARG_BUF(workspace), KILN__ARG_UINT(offset),
                          KILN__ARG_UINT(n_grads)};
    if (rc == KILN_OK)
        rc = kiln__launch_1d(dev, "optim", "clip_grad_norm_gather", gather, 3, n_grads);
    kiln_shape sums = kiln_shape_of(1, (int64_t[]){(int64_t)n_grads});
    kiln_shape one = kiln_shape_of(1, (int64_t[]){1});
    if (rc == KILN_OK)
        rc = kiln__reduce_to(dev, &CLIP_OP, workspace, &sums, kiln__tensor_buffer(norm), &one,
                             KILN__REDUCE_SUM, 1.0f, false);
    if (rc == KILN_OK)
        rc = kiln__launch_1d(dev, "optim", "clip_grad_norm_finish", finish, 2, 1);
    for (size_t i = 0; i < n_grads && rc == KILN_OK; i++) {
        uint32_t n = (uint32_t)kiln_tensor_count(grads[i]);
        kiln__arg scale[] = {KILN__ARG_T(grads[i]), KILN__ARG_T(norm), KILN__ARG_FLOAT(max_norm),
                             KILN__ARG_UINT(n)};
        rc = kiln__launch_1d(dev, "optim", "clip_grad_norm_scale", scale, 4, n);
    }
    return rc;
}
