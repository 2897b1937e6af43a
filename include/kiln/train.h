/*
 * Training: optimisers that update a model's parameters from a train-mode executor's
 * gradients (SGD, Adam, AdamW with PyTorch's semantics, optional global gradient-norm
 * clipping), their state by name for checkpoints, and learning-rate schedules (step decay,
 * cosine annealing, reduce-on-plateau, each with an optional linear warm-up).
 *
 * An optimiser step only queues kernels; nothing waits for the device. Schedules are plain
 * host arithmetic. Neither an optimiser nor a schedule is thread-safe.
 */
#ifndef KILN_TRAIN_H
#define KILN_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Optimisers ---- */

typedef enum kiln_optimizer_kind {
    KILN_OPTIMIZER_SGD = 0,   /* torch.optim.SGD, dampening 0 */
    KILN_OPTIMIZER_ADAM = 1,  /* torch.optim.Adam: weight decay added to the gradient */
    KILN_OPTIMIZER_ADAMW = 2, /* torch.optim.AdamW: decoupled weight decay */
} kiln_optimizer_kind;

/* Hyperparameters; kiln_optimizer_config_init fills PyTorch's defaults. Fields that the kind
 * does not use are ignored. */
typedef struct kiln_optimizer_config {
    kiln_optimizer_kind kind;
    float lr;           /* 1e-3; finite, > 0 */
    float momentum;     /* SGD: 0; finite, >= 0 */
    bool nesterov;      /* SGD: false; needs momentum > 0 */
    float beta1, beta2; /* Adam(W): 0.9, 0.999; each in [0, 1) */
    float eps;          /* Adam(W): 1e-8; finite, > 0 */
    float weight_decay; /* SGD and Adam: 0, AdamW: 0.01; finite, >= 0 */
    float clip_norm;    /* 0: off; else gradients are clipped to this global 2-norm first */
} kiln_optimizer_config;

typedef struct kiln_optimizer kiln_optimizer;

/* PyTorch's defaults for `kind` (torch.optim.SGD lr 1e-3, Adam, AdamW), clipping off. */
void kiln_optimizer_config_init(kiln_optimizer_config *config, kiln_optimizer_kind kind);

/* An optimiser over every parameter of the model's graph. Creates its state on the model's
 * device, zero-filled as PyTorch's is: "<param>.momentum" for SGD with momentum > 0,
 * "<param>.adam_m" and "<param>.adam_v" for Adam and AdamW; plus a step counter (0) and, with
 * clipping, the norm and its workspace. The model is borrowed and must outlive the optimiser.
 * Returns KILN_ERR_INVALID_ARGUMENT naming the config field for a bad value, and
 * KILN_ERR_DEVICE_OOM or KILN_ERR_NO_MEMORY when the state does not fit. */
kiln_status kiln_optimizer_create(kiln_model *model, const kiln_optimizer_config *config,
                                  kiln_optimizer **out);
void kiln_optimizer_destroy(kiln_optimizer *opt);

/* Queues one update of every parameter that has a gradient in `executor` (a train-mode
 * executor of the same model, after kiln_executor_backward): with clip_norm > 0, the
 * gradients are first scaled in place as torch.nn.utils.clip_grad_norm_ does, the norm
 * staying on the device; then each parameter and its state are updated, and the step count
 * grows by one. With lr 0 (a schedule at a floor of 0) the step is counted but nothing else
 * changes. A step with no gradient at all does nothing. Returns KILN_ERR_INVALID_ARGUMENT
 * for an executor of another model or mode; launch errors from the update kernels. */
kiln_status kiln_optimizer_step(kiln_optimizer *opt, kiln_executor *executor);

float kiln_optimizer_get_lr(const kiln_optimizer *opt);
/* Sets the rate the next steps use (from a schedule): finite and >= 0, else
 * KILN_ERR_INVALID_ARGUMENT. */
kiln_status kiln_optimizer_set_lr(kiln_optimizer *opt, float lr);
const kiln_optimizer_config *kiln_optimizer_get_config(const kiln_optimizer *opt);

/* The one-element device tensor holding the gradient norm of the last step (before
 * clipping), or NULL when clipping is off. Reading it waits for the device. */
kiln_tensor *kiln_optimizer_get_grad_norm(const kiln_optimizer *opt);

/* ---- Optimiser state, for checkpoints: saving every state tensor and the step count, then
 * writing them into a fresh optimiser of the same config, resumes training exactly. ---- */

/* Completed steps (Adam's bias correction uses the count). */
uint64_t kiln_optimizer_get_step(const kiln_optimizer *opt);
void kiln_optimizer_set_step(kiln_optimizer *opt, uint64_t step);

size_t kiln_optimizer_n_states(const kiln_optimizer *opt);
/* Name of the i-th state tensor ("fc1.weight.adam_m"), or NULL past the end. */
const char *kiln_optimizer_state_name(const kiln_optimizer *opt, size_t i);
/* The state tensor called `name` (owned by the optimiser; its shape is its parameter's), or
 * NULL. */
kiln_tensor *kiln_optimizer_get_state(const kiln_optimizer *opt, const char *name);
/* Blocking host copies of a state tensor by name: KILN_ERR_NOT_FOUND for an unknown name (the
 * message says which names this optimiser has), KILN_ERR_SHAPE when n differs from its
 * element count. */
kiln_status kiln_optimizer_read_state(kiln_optimizer *opt, const char *name, float *host,
                                      int64_t n);
kiln_status kiln_optimizer_write_state(kiln_optimizer *opt, const char *name, const float *host,
                                       int64_t n);

/* ---- Learning-rate schedules ----
 *
 * lr(step, epoch) = warmup(step) * main(epoch), with `step` the optimiser steps taken so far
 * and `epoch` the epochs completed (both from 0):
 *   warmup(step) = (step + 1) / (warmup_steps + 1) while step < warmup_steps, else 1
 *   CONSTANT: base_lr
 *   STEP:     base_lr * gamma^floor(epoch / step_size)            (torch StepLR)
 *   COSINE:   min_lr + (base_lr - min_lr) * (1 + cos(pi * min(epoch, t_max) / t_max)) / 2
 *             (torch CosineAnnealingLR, held at min_lr after t_max instead of rising again)
 *   PLATEAU:  plateau_lr, which kiln_schedule_report lowers (torch ReduceLROnPlateau)
 * The warm-up never gives 0, so a warm-up step always moves the parameters. */

typedef enum kiln_schedule_kind {
    KILN_SCHEDULE_CONSTANT = 0,
    KILN_SCHEDULE_STEP = 1,
    KILN_SCHEDULE_COSINE = 2,
    KILN_SCHEDULE_PLATEAU = 3,
} kiln_schedule_kind;

typedef struct kiln_schedule {
    kiln_schedule_kind kind;
    double base_lr;       /* > 0 */
    int64_t warmup_steps; /* 0: no warm-up */
    int64_t step_size;    /* STEP: epochs between decays, >= 1 */
    double gamma;         /* STEP: 0.1, > 0 */
    int64_t t_max;        /* COSINE: epochs to anneal over, >= 1 */
    double min_lr;        /* COSINE and PLATEAU: the floor, 0 */
    /* PLATEAU (PyTorch's defaults): a reported value improves on the best when it is below
     * best * (1 - min_delta) (or above best * (1 + min_delta) with maximize); with `absolute`,
     * below best - min_delta (above best + min_delta). After more than `patience` reports
     * without improvement, the rate becomes max(rate * factor, min_lr), unless that changes it
     * by eps or less; then `cooldown` reports pass before bad reports count again. */
    bool maximize;    /* false: mode min */
    double factor;    /* 0.1, in (0, 1) */
    int64_t patience; /* 10, >= 0 */
    double min_delta; /* 1e-4, >= 0 (PyTorch's threshold) */
    bool absolute;    /* false: relative (PyTorch's threshold_mode "rel") */
    int64_t cooldown; /* 0, >= 0 */
    double eps;       /* 1e-8, >= 0 */
    /* PLATEAU state: save it with checkpoints. plateau_lr 0 means base_lr. */
    double plateau_lr;
    double best;
    bool has_best;
    int64_t bad_epochs;
    int64_t cooldown_left;
} kiln_schedule;

/* A schedule of `kind` from `base_lr` with the defaults above and fresh plateau state. */
void kiln_schedule_init(kiln_schedule *schedule, kiln_schedule_kind kind, double base_lr);
/* KILN_ERR_INVALID_ARGUMENT, naming the field and its value, when the schedule is unusable. */
kiln_status kiln_schedule_check(kiln_context *ctx, const kiln_schedule *schedule);
/* The rate for optimiser step `step` in epoch `epoch` (negative values count as 0). */
double kiln_schedule_lr(const kiln_schedule *schedule, int64_t step, int64_t epoch);
/* Reports the monitored value at the end of an epoch; PLATEAU may lower its rate (returns
 * true when it did). Other kinds ignore reports and return false. */
bool kiln_schedule_report(kiln_schedule *schedule, double value);

#ifdef __cplusplus
}
#endif

#endif
