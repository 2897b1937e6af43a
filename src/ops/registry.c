/*
 * The op table: every op Kiln has, in one list. Each family file defines its entries; this
 * file only collects them, so adding an op is one line here and nothing in the executor.
 */
#include "ops/op.h"

extern const kiln_op kiln__op_fill, kiln__op_copy;
extern const kiln_op kiln__op_add, kiln__op_sub, kiln__op_mul, kiln__op_div;
extern const kiln_op kiln__op_scale, kiln__op_bias_add;
extern const kiln_op kiln__op_reduce_sum, kiln__op_reduce_mean, kiln__op_reduce_max;
extern const kiln_op kiln__op_matmul, kiln__op_dense;

const kiln_op *const kiln__ops[] = {
    &kiln__op_fill,       &kiln__op_copy,        &kiln__op_add,        &kiln__op_sub,
    &kiln__op_mul,        &kiln__op_div,         &kiln__op_scale,      &kiln__op_bias_add,
    &kiln__op_reduce_sum, &kiln__op_reduce_mean, &kiln__op_reduce_max,
    &kiln__op_matmul,     &kiln__op_dense,
};
const size_t kiln__n_ops = sizeof kiln__ops / sizeof kiln__ops[0];
