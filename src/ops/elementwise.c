/*
 * Elementwise arithmetic ops: add, sub, mul, div (NumPy broadcasting between the two inputs),
 * scale (y = alpha x) and bias_add (x (N, C, ...) + b (C,) along an axis).
 *
 * Backward of a broadcast input sums the output gradient over the axes it was repeated
 * along: each term is formed at the output's shape (in the workspace) and reduced into the
 * gradient by reduce.c; an input that was not broadcast is accumulated into directly.
 */
#include <string.h>

#include "ops/op.h"

enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV };

static const char *const FWD_KERNELS[] = {"add_fwd", "sub_fwd", "mul_fwd", "div_fwd"};
/* The term kernel for the gradient of input 0 and input 1 of each op. */
static const char *const TERM_KERNELS[][2] = {
    {"add_bwd_term", "add_bwd_term"},
    {"add_bwd_term", "sub_bwd_b"},
    {"mul_bwd_a", "mul_bwd_b"},
    {"div_bwd_a", "div_bwd_b"},
};

static kiln_status binary_infer(kiln_context *ctx, const kiln_op *op, const void *params,
                                const kiln_shape *in, int n_in, kiln_shape *out,
                                kiln_shape *saved)
{
    (void)params;
    (void)saved;
    if (!kiln__broadcast_shape(&in[0], &in[1], out))
        return kiln__shape_error(ctx, op, in, n_in,
                                 "the shapes do not broadcast (each axis, aligned from the "
                                 "right, must be equal or 1)");
    return KILN_OK;
}

static size_t binary_workspace(const kiln_op *op, const void *params, const kiln_shape *in,
                               int n_in)
{
    (void)op;
    (void)params;
    (void)n_in;
    kiln_shape out;
    if (!kiln__broadcast_shape(&in[0], &in[1], &out))
        return 0;
    bool reduces = !kiln_shape_equal(&in[0], &out) || !kiln_shape_equal(&in[1], &out);
    return reduces ? (size_t)kiln_shape_count(&out) * sizeof(float) : 0;
}

static kiln_status binary_forward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    kiln_shape shapes[2] = {a->inputs[0]->shape, a->inputs[1]->shape};
    kiln__bcast plan;
    kiln_status rc = kiln__bcast_plan(dev->ctx, op, &a->output->shape, shapes, 2, &plan);
    if (rc != KILN_OK)
        return rc;
    uint32_t n = (uint32_t)kiln_tensor_count(a->output);
    kiln__arg args[] = {KILN__ARG_T(a->inputs[0]), KILN__ARG_T(a->inputs[1]),
                        KILN__ARG_T(a->output),    KILN__ARG_UINT(n),
                        kiln__arg_u32x4(plan.dims), kiln__arg_u32x4(plan.strides[0]),
                        kiln__arg_u32x4(plan.strides[1])};
    return kiln__launch_1d(dev, "elementwise", FWD_KERNELS[op->variant], args, 7, n);
}

static kiln_status binary_backward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    const kiln_shape *out = &a->output->shape;
    kiln_shape shapes[2] = {a->inputs[0]->shape, a->inputs[1]->shape};
    kiln__bcast plan;
    kiln_status rc = kiln__bcast_plan(dev->ctx, op, out, shapes, 2, &plan);
    uint32_t n = (uint32_t)kiln_shape_count(out);
    for (int i = 0; rc == KILN_OK && i < 2; i++) {
        kiln_tensor *grad = a->grad_inputs != NULL ? a->grad_inputs[i] : NULL;
        if (grad == NULL)
            continue;
        bool direct = kiln_shape_equal(&shapes[i], out);
        bool fresh = kiln__grad_fresh(a, i);
        const kiln_buffer *target = direct ? kiln__tensor_buffer(grad) : a->workspace;
        kiln__arg args[] = {KILN__ARG_T(a->grad_output),       KILN__ARG_T(a->inputs[0]),
                            KILN__ARG_T(a->inputs[1]),         KILN__ARG_BUF(target),
                            KILN__ARG_UINT(n),                 kiln__arg_u32x4(plan.dims),
                            kiln__arg_u32x4(plan.strides[0]), kiln__arg_u32x4(plan.strides[1]),
                            KILN__ARG_INT(direct && !fresh ? 1 : 0)};
        rc = kiln__launch_1d(dev, "elementwise", TERM_KERNELS[op->variant][i], args, 9, n);
        if (rc == KILN_OK && !direct)
            rc = kiln__reduce_to(dev, op, a->workspace, out, kiln__tensor_buffer(grad),
                                 &shapes[i], KILN__REDUCE_SUM, 1.0f, !fresh);
    }
    return rc;
}

#define BINARY_OP(symbol, op_name, code)                                                       \
    const kiln_op symbol = {                                                                   \
        .name = op_name,                                                                       \
        .program = "elementwise",                                                              \
        .n_inputs = 2,                                                                         \
        .infer = binary_infer,                                                                 \
        .workspace = binary_workspace,                                                         \
        .forward = binary_forward,                                                             \
        .backward = binary_backward,                                                           \
        .writes_fresh_grads = 3u,                                                              \
        .variant = code,                                                                       \
    }

BINARY_OP(kiln__op_add, "add", OP_ADD);
BINARY_OP(kiln__op_sub, "sub", OP_SUB);
BINARY_OP(kiln__op_mul, "mul", OP_MUL);
BINARY_OP(kiln__op_div, "div", OP_DIV);

/* ---- scale ---- */

static kiln_status scale_forward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    (void)op;
    const kiln_scale_params *p = a->params;
    uint32_t n = (uint32_t)kiln_tensor_count(a->output);
    kiln__arg args[] = {KILN__ARG_T(a->inputs[0]), KILN__ARG_T(a->output),
                        KILN__ARG_FLOAT(p->alpha), KILN__ARG_UINT(n)};
    return kiln__launch_1d(dev, "elementwise", "scale_fwd", args, 4, n);
}

kiln_status kiln__accumulate_grad(kiln_device *dev, const kiln_tensor *g, kiln_tensor *gx,
                                  float alpha, bool fresh)
{
    uint32_t n = (uint32_t)kiln_tensor_count(gx);
    kiln__arg args[] = {KILN__ARG_T(g), KILN__ARG_T(gx), KILN__ARG_FLOAT(alpha),
                        KILN__ARG_UINT(n), KILN__ARG_INT(fresh ? 0 : 1)};
    return kiln__launch_1d(dev, "elementwise", "scale_bwd_x", args, 5, n);
}

static kiln_status scale_backward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    (void)op;
    const kiln_scale_params *p = a->params;
    if (a->grad_inputs == NULL || a->grad_inputs[0] == NULL)
        return KILN_OK;
    return kiln__accumulate_grad(dev, a->grad_output, a->grad_inputs[0], p->alpha,
                                 kiln__grad_fresh(a, 0));
}

const kiln_op kiln__op_scale = {
    .name = "scale",
    .program = "elementwise",
    .n_inputs = 1,
    .params_size = sizeof(kiln_scale_params),
    .infer = kiln__infer_same_shape,
    .forward = scale_forward,
    .backward = scale_backward,
    .writes_fresh_grads = 1u,
};

/* ---- bias_add ---- */

/* The bias's shape as a broadcast operand: (C, 1, ..., 1) aligned at `axis` of x. */
static kiln_shape bias_operand(const kiln_shape *x, int axis)
{
    kiln_shape s;
    memset(&s, 0, sizeof s);
    s.ndim = x->ndim - axis;
    s.dim[0] = x->dim[axis];
    for (int i = 1; i < s.ndim; i++)
        s.dim[i] = 1;
    return s;
}

static kiln_status bias_infer(kiln_context *ctx, const kiln_op *op, const void *params,
                              const kiln_shape *in, int n_in, kiln_shape *out, kiln_shape *saved)
{
    (void)saved;
    const kiln_axis_params *p = params;
    int axis = kiln__axis(p->axis, in[0].ndim);
    if (axis < 0)
        return kiln__shape_error(ctx, op, in, n_in, "axis %d is outside the input's %d axes",
                                 p->axis, in[0].ndim);
    if (in[1].ndim != 1 || in[1].dim[0] != in[0].dim[axis])
        return kiln__shape_error(ctx, op, in, n_in,
                                 "the bias must have shape (%lld,), the size of axis %d",
                                 (long long)in[0].dim[axis], axis);
    *out = in[0];
    return KILN_OK;
}

static kiln_status bias_forward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    const kiln_axis_params *p = a->params;
    const kiln_shape *x = &a->inputs[0]->shape;
    kiln_shape shapes[2] = {*x, bias_operand(x, kiln__axis(p->axis, x->ndim))};
    kiln__bcast plan;
    kiln_status rc = kiln__bcast_plan(dev->ctx, op, x, shapes, 2, &plan);
    if (rc != KILN_OK)
        return rc;
    uint32_t n = (uint32_t)kiln_shape_count(x);
    kiln__arg args[] = {KILN__ARG_T(a->inputs[0]), KILN__ARG_T(a->inputs[1]),
                        KILN__ARG_T(a->output),    KILN__ARG_UINT(n),
                        kiln__arg_u32x4(plan.dims), kiln__arg_u32x4(plan.strides[0]),
                        kiln__arg_u32x4(plan.strides[1])};
    return kiln__launch_1d(dev, "elementwise", "add_fwd", args, 7, n);
}

static kiln_status bias_backward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    const kiln_axis_params *p = a->params;
    const kiln_shape *x = &a->inputs[0]->shape;
    kiln_status rc = KILN_OK;
    if (a->grad_inputs == NULL)
        return KILN_OK;
    if (a->grad_inputs[0] != NULL)
        rc = kiln__accumulate_grad(dev, a->grad_output, a->grad_inputs[0], 1.0f,
                                   kiln__grad_fresh(a, 0));
    if (rc == KILN_OK && a->grad_inputs[1] != NULL) {
        kiln_shape b = bias_operand(x, kiln__axis(p->axis, x->ndim));
        rc = kiln__reduce_to(dev, op, kiln__tensor_buffer(a->grad_output), x,
                             kiln__tensor_buffer(a->grad_inputs[1]), &b, KILN__REDUCE_SUM, 1.0f,
                             !kiln__grad_fresh(a, 1));
    }
    return rc;
}

const kiln_op kiln__op_bias_add = {
    .name = "bias_add",
    .program = "elementwise",
    .n_inputs = 2,
    .params_size = sizeof(kiln_axis_params),
    .infer = bias_infer,
    .forward = bias_forward,
    .backward = bias_backward,
    .writes_fresh_grads = 3u,
};
