/*
 * Optimiser updates: one SGD or Adam/AdamW step on a parameter tensor and its state, and
 * global gradient-norm clipping over a list of gradients, with PyTorch's semantics.
 *
 * These are not ops of the op table: they update tensors in place, have no output and no
 * backward. Every call only queues kernels (nothing is read back to the host, so a training
 * step never waits on the device); all arguments are checked before anything is queued, so a
 * call that fails has changed nothing. All tensors are f32 and live on `dev`. Like the rest
 * of a device, these functions are used from one thread at a time per device.
 */
#ifndef KILN_OPTIM_H
#define KILN_OPTIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* torch.optim.SGD with dampening 0. Needs lr > 0, momentum >= 0, weight_decay >= 0, all
 * finite, and momentum > 0 for nesterov (as PyTorch does). */
typedef struct kiln_sgd_params {
    float lr;
    float momentum;
    float weight_decay;
    bool nesterov;
} kiln_sgd_params;

/* One SGD step, in place:
 *     g = grad + weight_decay * param
 *     velocity = momentum * velocity + g
 *     param -= lr * (nesterov ? g + momentum * velocity : velocity)
 * PyTorch sets the momentum buffer to g on the first step instead; with `velocity` created
 * zero-filled the formula gives exactly that, so callers zero the velocity once at the start.
 * `velocity` may be NULL only when momentum is 0; with momentum 0 it is neither read nor
 * written. `param`, `grad` and `velocity` must have equal shapes (KILN_ERR_SHAPE naming the
 * function, the tensors and their shapes). Returns KILN_ERR_INVALID_ARGUMENT for bad
 * hyperparameters (the message says which), a NULL or non-f32 tensor or one on another
 * device, KILN_ERR_UNSUPPORTED past 2^32 - 1 elements, and launch errors. Borrows every
 * tensor. */
kiln_status kiln_optim_sgd_step(kiln_device *dev, const kiln_sgd_params *params, kiln_tensor *param,
                                const kiln_tensor *grad, kiln_tensor *velocity);

/* The same SGD step for n parameters (param[i], grad[i], velocity[i]) at once: one kernel
 * launch per 8 parameters instead of one each, which is what a step of a small model spends
 * its time on. Every tensor is checked before anything is queued; errors name the entry
 * ("grad[3] 'fc2.w' has shape ..."). `velocity` (the array or an entry) may be NULL only when
 * momentum is 0. n 0 does nothing. */
kiln_status kiln_optim_sgd_step_group(kiln_device *dev, const kiln_sgd_params *params, size_t n,
                                      kiln_tensor *const *param, const kiln_tensor *const *grad,
                                      kiln_tensor *const *velocity);

/* torch.optim.Adam (decoupled false: weight decay is added to the gradient) and
 * torch.optim.AdamW (decoupled true: the parameter decays by lr * weight_decay first), without
 * amsgrad. Needs lr > 0, beta1 and beta2 in [0, 1), eps > 0, weight_decay >= 0, all finite. */
typedef struct kiln_adam_params {
    float lr;
    float beta1;
    float beta2;
    float eps;
    float weight_decay;
    bool decoupled;
} kiln_adam_params;

/* One Adam or AdamW step number `step` (1 for the first step), in place:
 *     AdamW: param *= 1 - lr * weight_decay;  Adam: g = grad + weight_decay * param
 *     m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g * g
 *     param -= lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
 * `m` and `v` start zero-filled (as PyTorch's state does) and must not be NULL. Shapes must
 * all equal the parameter's (KILN_ERR_SHAPE); step 0 and bad hyperparameters give
 * KILN_ERR_INVALID_ARGUMENT; other errors as kiln_optim_sgd_step. Borrows every tensor. */
kiln_status kiln_optim_adam_step(kiln_device *dev, const kiln_adam_params *params, uint64_t step,
                                 kiln_tensor *param, const kiln_tensor *grad, kiln_tensor *m,
                                 kiln_tensor *v);

/* The same Adam or AdamW step for n parameters at once, one launch per 8 of them; checks and
 * errors as kiln_optim_sgd_step_group. */
kiln_status kiln_optim_adam_step_group(kiln_device *dev, const kiln_adam_params *params,
                                       uint64_t step, size_t n, kiln_tensor *const *param,
                                       const kiln_tensor *const *grad, kiln_tensor *const *m,
                                       kiln_tensor *const *v);

/* Bytes of workspace kiln_optim_clip_grad_norm needs for these gradients (0 when n_grads is
 * 0). Depends only on their element counts, so it can be computed once per model. */
size_t kiln_optim_clip_grad_norm_workspace_bytes(kiln_tensor *const *grads, size_t n_grads);

/* torch.nn.utils.clip_grad_norm_ with the 2-norm: the total norm of all gradients together,
 * norm = sqrt(sum over every element of every gradient of g^2), is written to `norm` (one
 * element, any shape of count 1), and every gradient is multiplied in place by
 * min(1, max_norm / (norm + 1e-6)). The norm stays on the device: the scale is computed there,
 * so no host synchronisation happens. Sums are compensated tree reductions per gradient and
 * then over the per-gradient sums. As in PyTorch (without error_if_nonfinite), a non-finite
 * gradient is not an error: a NaN makes the norm and every gradient NaN; an infinity makes
 * the norm inf and scales the gradients by 0 (inf ones become NaN), as PyTorch does. Callers
 * that skip such steps test the norm. With n_grads 0 the
 * norm is 0 and `grads` and `workspace` may be NULL.
 * `workspace` holds at least kiln_optim_clip_grad_norm_workspace_bytes (its contents are
 * scratch). Returns KILN_ERR_INVALID_ARGUMENT for max_norm <= 0 or not finite, a NULL or
 * non-f32 gradient, a missing or small workspace; KILN_ERR_SHAPE when `norm` has more than
 * one element. Borrows everything. */
kiln_status kiln_optim_clip_grad_norm(kiln_device *dev, kiln_tensor *const *grads, size_t n_grads,
                                      float max_norm, kiln_tensor *norm, kiln_buffer *workspace);

#ifdef __cplusplus
}
#endif

#endif
