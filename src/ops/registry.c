/*
 * The op table: every op Kiln has, in one list. Each family file defines its entries; this
 * file only collects them, so adding an op is one line here and nothing in the executor.
 */
#include "ops/op.h"

extern const kiln_op kiln__op_fill;
extern const kiln_op kiln__op_copy;
extern const kiln_op kiln__op_add;
extern const kiln_op kiln__op_sub;
extern const kiln_op kiln__op_mul;
extern const kiln_op kiln__op_div;
extern const kiln_op kiln__op_scale;
extern const kiln_op kiln__op_bias_add;
extern const kiln_op kiln__op_reduce_sum;
extern const kiln_op kiln__op_reduce_mean;
extern const kiln_op kiln__op_reduce_max;
extern const kiln_op kiln__op_conv2d;
extern const kiln_op kiln__op_conv3d;
extern const kiln_op kiln__op_softmax_cross_entropy;
extern const kiln_op kiln__op_bce_with_logits;
extern const kiln_op kiln__op_mse;
extern const kiln_op kiln__op_l1;
extern const kiln_op kiln__op_dice;
extern const kiln_op kiln__op_relu;
extern const kiln_op kiln__op_leaky_relu;
extern const kiln_op kiln__op_sigmoid;
extern const kiln_op kiln__op_tanh;
extern const kiln_op kiln__op_gelu;
extern const kiln_op kiln__op_softmax;
extern const kiln_op kiln__op_log_softmax;
extern const kiln_op kiln__op_maxpool2d;
extern const kiln_op kiln__op_maxpool3d;
extern const kiln_op kiln__op_avgpool2d;
extern const kiln_op kiln__op_avgpool3d;
extern const kiln_op kiln__op_global_avgpool;
extern const kiln_op kiln__op_upsample2d;
extern const kiln_op kiln__op_upsample3d;
extern const kiln_op kiln__op_concat;
extern const kiln_op kiln__op_reshape;
extern const kiln_op kiln__op_flatten;
extern const kiln_op kiln__op_batchnorm;
extern const kiln_op kiln__op_dropout;
extern const kiln_op kiln__op_matmul;
extern const kiln_op kiln__op_dense;

/* clang-format off: one op per line keeps additions to one-line diffs. */
// clang-format off
const kiln_op *const kiln__ops[] = {
    &kiln__op_fill,
    &kiln__op_copy,
    &kiln__op_add,
    &kiln__op_sub,
    &kiln__op_mul,
    &kiln__op_div,
    &kiln__op_scale,
    &kiln__op_bias_add,
    &kiln__op_reduce_sum,
    &kiln__op_reduce_mean,
    &kiln__op_reduce_max,
    &kiln__op_conv2d,
    &kiln__op_conv3d,
    &kiln__op_softmax_cross_entropy,
    &kiln__op_bce_with_logits,
    &kiln__op_mse,
    &kiln__op_l1,
    &kiln__op_dice,
    &kiln__op_relu,
    &kiln__op_leaky_relu,
    &kiln__op_sigmoid,
    &kiln__op_tanh,
    &kiln__op_gelu,
    &kiln__op_softmax,
    &kiln__op_log_softmax,
    &kiln__op_maxpool2d,
    &kiln__op_maxpool3d,
    &kiln__op_avgpool2d,
    &kiln__op_avgpool3d,
    &kiln__op_global_avgpool,
    &kiln__op_upsample2d,
    &kiln__op_upsample3d,
    &kiln__op_concat,
    &kiln__op_reshape,
    &kiln__op_flatten,
    &kiln__op_batchnorm,
    &kiln__op_dropout,
    &kiln__op_matmul,
    &kiln__op_dense,
};
// clang-format on
const size_t kiln__n_ops = sizeof kiln__ops / sizeof kiln__ops[0];
