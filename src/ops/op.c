/*
 * The public op interface over the table: lookup, properties, and forward/backward calls that
 * check arity, dtypes and shapes against the op's own inference before any kernel is queued,
 * so that a bad graph fails with the op's name and shapes rather than a driver fault.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ops/op.h"

extern const kiln_op kiln__op_fill; /* zeroes the fresh gradients an op cannot write */

size_t kiln_op_count(void)
{
    return kiln__n_ops;
}

const kiln_op *kiln_op_at(size_t i)
{
    return i < kiln__n_ops ? kiln__ops[i] : NULL;
}

const kiln_op *kiln_op_find(const char *name)
{
    for (size_t i = 0; name != NULL && i < kiln__n_ops; i++) {
        if (strcmp(kiln__ops[i]->name, name) == 0)
            return kiln__ops[i];
    }
    return NULL;
}

const char *kiln_op_name(const kiln_op *op)
{
    return op->name;
}

const char *kiln_op_program_name(const kiln_op *op)
{
    return op->program;
}

int kiln_op_n_inputs(const kiln_op *op)
{
    return op->n_inputs;
}

bool kiln_op_is_variadic(const kiln_op *op)
{
    return op->variadic;
}

int kiln_op_n_saved(const kiln_op *op)
{
    return op->n_saved;
}

bool kiln_op_has_backward(const kiln_op *op)
{
    return op->backward != NULL;
}

bool kiln_op_is_view(const kiln_op *op)
{
    return op->view;
}

kiln_activation kiln_op_activation(const kiln_op *op)
{
    return op->activation;
}

bool kiln_op_fuses_activation(const kiln_op *op, const void *params, const kiln_shape *inputs,
                              int n_inputs, kiln_activation act)
{
    return act == KILN_ACTIVATION_NONE ||
           (op->fuses != NULL && op->fuses(op, params, inputs, n_inputs, act));
}

bool kiln_op_input_differentiable(const kiln_op *op, int input)
{
    return op->backward != NULL && (op->no_grad_inputs & (1u << input)) == 0;
}

kiln_dtype kiln_op_input_dtype(const kiln_op *op, int input)
{
    return (op->i32_inputs & (1u << input)) != 0 ? KILN_I32 : KILN_F32;
}

size_t kiln_op_params_size(const kiln_op *op)
{
    return op->params_size;
}

static void append_shapes(kiln_context *ctx, const kiln_shape *in, int n_in)
{
    char text[96];
    kiln__error_append(ctx, n_in == 0 ? "; no inputs" : "; input shapes");
    for (int i = 0; i < n_in; i++)
        kiln__error_append(ctx, "%s %s", i > 0 ? "," : "",
                           kiln_shape_format(&in[i], text, sizeof text));
}

kiln_status kiln__shape_error(kiln_context *ctx, const kiln_op *op, const kiln_shape *in,
                              int n_in, const char *fmt, ...)
{
    char why[512];
    va_list args;
    va_start(args, fmt);
    vsnprintf(why, sizeof why, fmt, args);
    va_end(args);
    kiln_status rc = kiln__error(ctx, KILN_ERR_SHAPE, "kiln_op_infer", "op '%s': %s", op->name,
                                 why);
    append_shapes(ctx, in, n_in);
    return rc;
}

kiln_status kiln__param_error(kiln_context *ctx, const kiln_op *op, const char *fmt, ...)
{
    char why[512];
    va_list args;
    va_start(args, fmt);
    vsnprintf(why, sizeof why, fmt, args);
    va_end(args);
    return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, "kiln_op_infer", "op '%s': %s", op->name,
                       why);
}

kiln_status kiln__infer_same_shape(kiln_context *ctx, const kiln_op *op, const void *params,
                                   const kiln_shape *in, int n_in, kiln_shape *out,
                                   kiln_shape *saved)
{
    (void)ctx;
    (void)op;
    (void)params;
    (void)n_in;
    (void)saved;
    *out = in[0];
    return KILN_OK;
}

int kiln__axis(int axis, int ndim)
{
    if (axis < 0)
        axis += ndim;
    return axis >= 0 && axis < ndim ? axis : -1;
}

kiln_status kiln__launch_1d(kiln_device *dev, const char *program, const char *kernel,
                            const kiln__arg *args, size_t n_args, size_t n)
{
    return kiln__launch(dev, program, kernel, args, n_args, 1, &n, NULL);
}

kiln_status kiln_op_infer(kiln_context *ctx, const kiln_op *op, const void *params,
                          const kiln_shape *inputs, int n_inputs, kiln_shape *out_shape,
                          kiln_shape *out_saved)
{
    if (ctx == NULL || op == NULL || out_shape == NULL || (n_inputs > 0 && inputs == NULL))
        return KILN_ERR_INVALID_ARGUMENT;
    bool arity_ok = op->variadic ? (n_inputs >= 1 && n_inputs <= op->n_inputs)
                                 : n_inputs == op->n_inputs;
    if (!arity_ok)
        return kiln__shape_error(ctx, op, inputs, n_inputs, "takes %s%d input(s), got %d",
                                 op->variadic ? "1 to " : "", op->n_inputs, n_inputs);
    if (op->params_size > 0 && params == NULL)
        return kiln__param_error(ctx, op, "needs parameters, got NULL");
    for (int i = 0; i < n_inputs; i++) {
        if (!kiln_shape_is_valid(&inputs[i]))
            return kiln__shape_error(ctx, op, inputs, n_inputs, "input %d has an invalid shape",
                                     i);
    }
    kiln_shape saved[KILN_OP_MAX_SAVED];
    memset(saved, 0, sizeof saved);
    memset(out_shape, 0, sizeof *out_shape);
    kiln_status rc = op->infer(ctx, op, params, inputs, n_inputs, out_shape, saved);
    /* Kernels index elements with 32-bit integers. */
    for (int i = 0; rc == KILN_OK && i <= n_inputs; i++) {
        const kiln_shape *s = i < n_inputs ? &inputs[i] : out_shape;
        if (kiln_shape_count(s) >= ((int64_t)1 << 32))
            rc = kiln__shape_error(ctx, op, inputs, n_inputs,
                                   "%s has 2^32 or more elements; kernels index with 32 bits",
                                   i < n_inputs ? "an input" : "the output");
    }
    if (rc == KILN_OK && out_saved != NULL)
        memcpy(out_saved, saved, (size_t)op->n_saved * sizeof *saved);
    return rc;
}

size_t kiln_op_workspace_bytes(const kiln_op *op, const void *params, const kiln_shape *inputs,
                               int n_inputs)
{
    return op->workspace != NULL ? op->workspace(op, params, inputs, n_inputs) : 0;
}

/* Checks a call against the op's inference: input dtypes, output and saved shapes, workspace. */
static kiln_status check_call(kiln_device *dev, const kiln_op *op, const kiln_op_args *args,
                              bool backward)
{
    kiln_context *ctx = kiln_device_get_context(dev);
    char want[96], got[96];
    if (args == NULL || args->n_inputs < 0 || args->n_inputs > KILN_OP_MAX_INPUTS ||
        (args->n_inputs > 0 && args->inputs == NULL))
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, __func__, "op '%s': bad arguments",
                           op->name);
    kiln_shape in[KILN_OP_MAX_INPUTS];
    for (int i = 0; i < args->n_inputs; i++) {
        if (args->inputs[i] == NULL)
            return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, __func__,
                               "op '%s': input %d is NULL", op->name, i);
        in[i] = args->inputs[i]->shape;
        if (args->inputs[i]->dtype != kiln_op_input_dtype(op, i))
            return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, __func__,
                               "op '%s': input %d ('%s') is %s, expected %s", op->name, i,
                               args->inputs[i]->name, kiln_dtype_name(args->inputs[i]->dtype),
                               kiln_dtype_name(kiln_op_input_dtype(op, i)));
    }
    kiln_shape out, saved[KILN_OP_MAX_SAVED];
    kiln_status rc = kiln_op_infer(ctx, op, args->params, in, args->n_inputs, &out, saved);
    if (rc != KILN_OK)
        return rc;
    if (op->n_saved > 0 && args->saved == NULL)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, __func__,
                           "op '%s': needs %d saved tensor(s), got none", op->name, op->n_saved);
    for (int s = 0; s < op->n_saved; s++) {
        if (args->saved[s] == NULL || !kiln_shape_equal(&args->saved[s]->shape, &saved[s]))
            return kiln__error(ctx, KILN_ERR_SHAPE, __func__,
                               "op '%s': saved tensor %d must have shape %s, got %s", op->name,
                               s, kiln_shape_format(&saved[s], want, sizeof want),
                               args->saved[s] == NULL
                                   ? "none"
                                   : kiln_shape_format(&args->saved[s]->shape, got, sizeof got));
    }
    if (backward && args->output == NULL)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, __func__,
                           "op '%s': backward needs the forward call's output tensor", op->name);
    if (args->output != NULL && !kiln_shape_equal(&args->output->shape, &out))
        return kiln__error(ctx, KILN_ERR_SHAPE, __func__,
                           "op '%s': output '%s' has shape %s, the inputs give %s", op->name,
                           args->output->name,
                           kiln_shape_format(&args->output->shape, got, sizeof got),
                           kiln_shape_format(&out, want, sizeof want));
    if (!kiln_op_fuses_activation(op, args->params, in, args->n_inputs, args->activation))
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, __func__,
                           "op '%s' cannot apply activation %d to its output for these "
                           "parameters and inputs (kiln_op_fuses_activation); run the "
                           "activation as an op of its own",
                           op->name, (int)args->activation);
    size_t ws = kiln_op_workspace_bytes(op, args->params, in, args->n_inputs);
    if (ws > 0 && (args->workspace == NULL || kiln_buffer_get_size(args->workspace) < ws))
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, __func__,
                           "op '%s': needs a workspace of %zu bytes", op->name, ws);
    if (!backward)
        return KILN_OK;
    if (args->grad_output == NULL || !kiln_shape_equal(&args->grad_output->shape, &out))
        return kiln__error(ctx, KILN_ERR_SHAPE, __func__,
                           "op '%s': the output gradient must have shape %s", op->name,
                           kiln_shape_format(&out, want, sizeof want));
    for (int i = 0; args->grad_inputs != NULL && i < args->n_inputs; i++) {
        kiln_tensor *g = args->grad_inputs[i];
        if (g == NULL)
            continue;
        if (!kiln_op_input_differentiable(op, i))
            return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, __func__,
                               "op '%s': input %d takes no gradient", op->name, i);
        if (!kiln_shape_equal(&g->shape, &in[i]))
            return kiln__error(ctx, KILN_ERR_SHAPE, __func__,
                               "op '%s': gradient of input %d has shape %s, the input %s",
                               op->name, i, kiln_shape_format(&g->shape, got, sizeof got),
                               kiln_shape_format(&in[i], want, sizeof want));
    }
    return KILN_OK;
}

kiln_status kiln_op_forward(kiln_device *dev, const kiln_op *op, const kiln_op_args *args)
{
    if (dev == NULL || op == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    kiln_status rc = check_call(dev, op, args, false);
    if (rc != KILN_OK)
        return rc;
    if (args->output == NULL)
        return kiln__error(kiln_device_get_context(dev), KILN_ERR_INVALID_ARGUMENT, __func__,
                           "op '%s': no output tensor", op->name);
    return op->forward(dev, op, args);
}

kiln_status kiln_op_fill(kiln_device *dev, kiln_tensor *t, float value)
{
    kiln_fill_params p = {.shape = t->shape, .value = value};
    kiln_op_args fill = {.params = &p, .output = t};
    return kiln_op_forward(dev, &kiln__op_fill, &fill);
}

/*
 * The fresh marks an op's backward sees: those it can honour (op->fresh_grads for this call,
 * else op->writes_fresh_grads) on a gradient no other input of the call shares. Any other
 * gradient marked fresh is zero-filled here first (once for a shared gradient: at its first
 * input marked fresh), so every op gives the same result with or without marks.
 */
static kiln_status resolve_fresh(kiln_device *dev, const kiln_op *op, const kiln_op_args *args,
                                 uint32_t *fresh)
{
    *fresh = 0;
    uint32_t writes = op->fresh_grads != NULL ? op->fresh_grads(op, args) : op->writes_fresh_grads;
    for (int i = 0; args->grad_inputs != NULL && i < args->n_inputs; i++) {
        kiln_tensor *g = args->grad_inputs[i];
        if (g == NULL || (args->grad_fresh >> i & 1u) == 0)
            continue;
        bool shared = false, first = true;
        for (int j = 0; j < args->n_inputs; j++) {
            if (j != i && args->grad_inputs[j] == g) {
                shared = true;
                first = first && (j > i || (args->grad_fresh >> j & 1u) == 0);
            }
        }
        if (!shared && (writes >> i & 1u) != 0) {
            *fresh |= 1u << i;
            continue;
        }
        if (!first)
            continue;
        kiln_status rc = kiln_op_fill(dev, g, 0.0f);
        if (rc != KILN_OK)
            return rc;
    }
    return KILN_OK;
}

kiln_status kiln_op_backward(kiln_device *dev, const kiln_op *op, const kiln_op_args *args)
{
    if (dev == NULL || op == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    if (op->backward == NULL)
        return kiln__error(kiln_device_get_context(dev), KILN_ERR_UNSUPPORTED, __func__,
                           "op '%s' is not differentiable", op->name);
    kiln_status rc = check_call(dev, op, args, true);
    if (rc != KILN_OK)
        return rc;
    kiln_op_args resolved = *args;
    rc = resolve_fresh(dev, op, args, &resolved.grad_fresh);
    if (rc != KILN_OK)
        return rc;
    return op->backward(dev, op, &resolved);
}
