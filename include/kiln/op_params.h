/*
 * Parameter structs of the ops, one per op family, passed as kiln_op_args.params. Shapes in
 * comments use N batch, C channels, D/H/W spatial, F filters, K reduced size, with the
 * semantics of the reference framework named (PyTorch unless said otherwise).
 */
#ifndef KILN_OP_PARAMS_H
#define KILN_OP_PARAMS_H

#include <stdbool.h>
#include <stdint.h>

#include "kiln/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* fill: no inputs; output `shape` filled with `value`. copy: y = x. */
typedef struct kiln_fill_params {
    kiln_shape shape;
    float value;
} kiln_fill_params;

/* scale: y = alpha * x. */
typedef struct kiln_scale_params {
    float alpha;
} kiln_scale_params;

/* bias_add: x (N, C, ...), b (C,): y = x + b broadcast along `axis` (NCHW channels: 1; the
 * params are required, so a zeroed struct means axis 0). */
typedef struct kiln_axis_params {
    int axis; /* negative counts from the end */
} kiln_axis_params;

/* leaky_relu: y = x for x > 0, slope * x otherwise. */
typedef struct kiln_leaky_relu_params {
    float slope;
} kiln_leaky_relu_params;

/* reduce_sum / reduce_mean / reduce_max over the axes whose bit is set in `axes` (bit i is
 * axis i); `keepdims` keeps them as size 1 (NumPy semantics). */
typedef struct kiln_reduce_params {
    uint32_t axes;
    bool keepdims;
} kiln_reduce_params;

/* matmul: a (..., M, K) x b (..., K, N) -> (..., M, N), with a leading batch dimension
 * allowed on both (equal) or on a only (b shared); transposes apply to the last two axes. */
typedef struct kiln_matmul_params {
    bool transpose_a;
    bool transpose_b;
} kiln_matmul_params;

/* dense: x (N, IN), w (IN, OUT) [Keras layout], optional b (OUT,): y = x w + b. */
typedef struct kiln_dense_params {
    bool has_bias;
} kiln_dense_params;

/* conv (2D or 3D, PyTorch Conv2d/Conv3d semantics, groups = 1): x (N, C, [D,] H, W),
 * w (F, C, [KD,] KH, KW), optional b (F,). Index 0 of each array is the first spatial axis. */
typedef struct kiln_conv_params {
    int n_spatial; /* 2 or 3 */
    int stride[3];
    int padding[3];
    int dilation[3];
    bool has_bias;
} kiln_conv_params;

/* maxpool / avgpool (2D or 3D, no padding, floor mode; avg divides by the window size). */
typedef struct kiln_pool_params {
    int n_spatial;
    int size[3];
    int stride[3]; /* 0 means equal to size */
} kiln_pool_params;

/* upsample: nearest-neighbour by an integer factor per spatial axis. */
typedef struct kiln_upsample_params {
    int n_spatial;
    int scale[3];
} kiln_upsample_params;

/* concat: inputs equal except along `axis` (kiln_axis_params). reshape: */
typedef struct kiln_reshape_params {
    kiln_shape shape; /* one dimension may be -1 (inferred) */
} kiln_reshape_params;

/* batchnorm (PyTorch BatchNorm1d/2d/3d): x (N, C) or (N, C, H, W) or (N, C, D, H, W); inputs
 * x, gamma (C,), beta (C,), running_mean (C,), running_var (C,). Train mode normalises with
 * the batch statistics (biased variance) and updates the running ones in place with
 * running = (1 - momentum) * running + momentum * batch (unbiased variance). Saved: mean and
 * inverse standard deviation (C,). */
typedef struct kiln_batchnorm_params {
    float momentum;
    float eps;
} kiln_batchnorm_params;

/* dropout: train mode zeroes each element with probability `rate` and scales the rest by
 * 1 / (1 - rate); the mask comes from Philox keyed by (seed, step, node, element), so
 * backward regenerates it. Eval and infer: identity. */
typedef struct kiln_dropout_params {
    float rate;
} kiln_dropout_params;

/* softmax_cross_entropy: logits (N, C), labels (N,) i32 -> scalar mean loss, with optional
 * label smoothing (PyTorch CrossEntropyLoss(label_smoothing=...)). A label outside [0, C)
 * makes the loss (and that row's gradient) NaN rather than an error. */
typedef struct kiln_cross_entropy_params {
    float label_smoothing;
} kiln_cross_entropy_params;

/* dice: probabilities p and targets t of equal shape (N, ...): per sample
 * dice = (2 * sum(p t) + smooth) / (sum p + sum t + smooth) over every non-batch axis;
 * loss = 1 - mean over the batch (DESIGN.md). */
typedef struct kiln_dice_params {
    float smooth;
} kiln_dice_params;

#ifdef __cplusplus
}
#endif

#endif
