/*
 * Pointwise activations: relu, leaky_relu, sigmoid, tanh and gelu (exact erf form), with
 * PyTorch's semantics (torch.nn.ReLU, LeakyReLU, Sigmoid, Tanh, GELU(approximate='none')).
 * Output shape = input shape; nothing is saved: relu, leaky_relu and gelu differentiate from
 * the input, sigmoid and tanh from their output (dy/dx = y (1 - y), 1 - y^2).
 *
 * Every op launches the same kernel signatures from cl/activation.cl, so one forward and one
 * backward function serve the whole family; `variant` picks the kernel pair.
 */
#include <math.h>

#include "ops/op.h"

enum { ACT_RELU, ACT_LEAKY_RELU, ACT_SIGMOID, ACT_TANH, ACT_GELU };

static const char *const FWD_KERNELS[] = {"relu_fwd", "leaky_relu_fwd", "sigmoid_fwd", "tanh_fwd",
                                          "gelu_fwd"};
static const char *const BWD_KERNELS[] = {"relu_bwd_x", "leaky_relu_bwd_x", "sigmoid_bwd_x",
                                          "tanh_bwd_x", "gelu_bwd_x"};

/* The negative slope for leaky_relu; the other kernels take it and ignore it. */
static float slope_of(const kiln_op *op, const void *params)
{
    return op->variant == ACT_LEAKY_RELU ? ((const kiln_leaky_relu_params *)params)->slope : 0.0f;
}

static kiln_status leaky_relu_infer(kiln_context *ctx, const kiln_op *op, const void *params,
                                    const kiln_shape *in, int n_in, kiln_shape *out,
                                    kiln_shape *saved)
{
    const kiln_leaky_relu_params *p = params;
    /* Any finite slope is a valid PyTorch negative_slope (even one above 1 or below 0). */
    if (!isfinite(p->slope))
        return kiln__param_error(ctx, op, "slope must be finite, got %g", (double)p->slope);
    return kiln__infer_same_shape(ctx, op, params, in, n_in, out, saved);
}

/* y = f(x). x, y: any shape, n elements. */
static kiln_status activation_forward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    uint32_t n = (uint32_t)kiln_tensor_count(a->output);
    kiln__arg args[] = {KILN__ARG_T(a->inputs[0]), KILN__ARG_T(a->output),
                        KILN__ARG_FLOAT(slope_of(op, a->params)), KILN__ARG_UINT(n)};
    return kiln__launch_1d(dev, "activation", FWD_KERNELS[op->variant], args, 4, n);
}

/* gx += g * f'(x) (gx = ... when fresh), with f' from x or from y = f(x). x, y, g, gx: n
 * elements. */
static kiln_status activation_backward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    if (a->grad_inputs == NULL || a->grad_inputs[0] == NULL)
        return KILN_OK;
    uint32_t n = (uint32_t)kiln_tensor_count(a->inputs[0]);
    kiln__arg args[] = {KILN__ARG_T(a->inputs[0]),
                        KILN__ARG_T(a->output),
                        KILN__ARG_T(a->grad_output),
                        KILN__ARG_T(a->grad_inputs[0]),
                        KILN__ARG_FLOAT(slope_of(op, a->params)),
                        KILN__ARG_UINT(n),
                        KILN__ARG_INT(kiln__grad_fresh(a, 0) ? 0 : 1)};
    return kiln__launch_1d(dev, "activation", BWD_KERNELS[op->variant], args, 7, n);
}

#define ACTIVATION_OP(symbol, op_name, code, params_type, infer_fn, kind)                          \
    const kiln_op symbol = {                                                                       \
        .name = op_name,                                                                           \
        .program = "activation",                                                                   \
        .n_inputs = 1,                                                                             \
        .params_size = params_type,                                                                \
        .infer = infer_fn,                                                                         \
        .forward = activation_forward,                                                             \
        .backward = activation_backward,                                                           \
        .writes_fresh_grads = 1u,                                                                  \
        .activation = kind,                                                                        \
        .variant = code,                                                                           \
    }

ACTIVATION_OP(kiln__op_relu, "relu", ACT_RELU, 0, kiln__infer_same_shape, KILN_ACTIVATION_RELU);
ACTIVATION_OP(kiln__op_leaky_relu, "leaky_relu", ACT_LEAKY_RELU, sizeof(kiln_leaky_relu_params),
              leaky_relu_infer, KILN_ACTIVATION_NONE);
ACTIVATION_OP(kiln__op_sigmoid, "sigmoid", ACT_SIGMOID, 0, kiln__infer_same_shape,
              KILN_ACTIVATION_NONE);
ACTIVATION_OP(kiln__op_tanh, "tanh", ACT_TANH, 0, kiln__infer_same_shape, KILN_ACTIVATION_NONE);
ACTIVATION_OP(kiln__op_gelu, "gelu", ACT_GELU, 0, kiln__infer_same_shape, KILN_ACTIVATION_NONE);
