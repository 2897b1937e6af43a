/*
 * The op table, publicly: every op by name, with its arity, shape inference, workspace size,
 * forward and backward launches, and the tensors it saves for backward. The graph executor
 * and `kiln selftest` both drive ops only through this interface.
 *
 * Conventions: fp32 tensors in NCHW / NCDHW; class labels are i32. Backward *accumulates*
 * into the gradient tensors it is given (grad += ...), so a value used twice gets both
 * contributions; callers zero gradients first, or mark a gradient that holds nothing yet in
 * kiln_op_args.grad_fresh and let backward write it (no zero-fill launch where the op can
 * write instead of add). Launches are queued, not waited for.
 */
#ifndef KILN_OPS_H
#define KILN_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln/op_params.h"
#include "kiln/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln_op kiln_op;

/* An activation an op can apply to its own output (kiln_op_args.activation) instead of a
 * separate activation op running over it: "bias plus activation" in the producer's last
 * pass. */
typedef enum kiln_activation {
    KILN_ACTIVATION_NONE = 0,
    KILN_ACTIVATION_RELU = 1, /* y = x <= 0 ? 0 : x, as the relu op (NaN passes through) */
} kiln_activation;

enum { KILN_OP_MAX_INPUTS = 8, KILN_OP_MAX_SAVED = 4 };

/* Executor modes (DESIGN.md): train uses batch statistics and active dropout; eval and infer
 * use running statistics and identity dropout. */
typedef enum kiln_mode {
    KILN_MODE_TRAIN = 0,
    KILN_MODE_EVAL = 1,
    KILN_MODE_INFER = 2,
} kiln_mode;

size_t kiln_op_count(void);
/* The i-th op of the table, or NULL past the end. */
const kiln_op *kiln_op_at(size_t i);
/* The op named `name`, or NULL. */
const kiln_op *kiln_op_find(const char *name);

const char *kiln_op_name(const kiln_op *op);
/* The embedded program (cl/<name>.cl, for kiln_device_prepare) holding the op's kernels. */
const char *kiln_op_program_name(const kiln_op *op);
/* Number of inputs; for variadic ops (concat) the maximum, with kiln_op_is_variadic true. */
int kiln_op_n_inputs(const kiln_op *op);
bool kiln_op_is_variadic(const kiln_op *op);
/* Number of tensors forward saves for backward (shapes from kiln_op_infer). */
int kiln_op_n_saved(const kiln_op *op);
/* False for ops that are explicitly not differentiable (fill). */
bool kiln_op_has_backward(const kiln_op *op);
/* True for ops whose output is input 0's elements in the same order under another shape
 * (reshape, flatten): running one copies; an executor can instead let the output share the
 * input's memory and run nothing. */
bool kiln_op_is_view(const kiln_op *op);
/* The activation an op computes, for an executor fusing it into its producer: RELU for relu,
 * NONE for every other op. */
kiln_activation kiln_op_activation(const kiln_op *op);
/* Whether the op can apply `act` to its output itself (kiln_op_args.activation) for these
 * parameters and input shapes (conv2d and conv3d take relu on their column path). */
bool kiln_op_fuses_activation(const kiln_op *op, const void *params, const kiln_shape *inputs,
                              int n_inputs, kiln_activation act);
/* Whether input i can receive a gradient (labels and running statistics cannot). */
bool kiln_op_input_differentiable(const kiln_op *op, int input);
/* The dtype input i must have. */
kiln_dtype kiln_op_input_dtype(const kiln_op *op, int input);
/* Size of the op's parameter struct (0 when it takes none). */
size_t kiln_op_params_size(const kiln_op *op);

/* Infers the output shape and the saved tensors' shapes (`out_saved` may be NULL) from the
 * input shapes. Returns KILN_ERR_SHAPE with a message naming the op and every shape when the
 * inputs do not fit, KILN_ERR_INVALID_ARGUMENT for bad parameters. */
kiln_status kiln_op_infer(kiln_context *ctx, const kiln_op *op, const void *params,
                          const kiln_shape *inputs, int n_inputs, kiln_shape *out_shape,
                          kiln_shape *out_saved);

/* Bytes of scratch device memory forward or backward needs (0 for most ops). */
size_t kiln_op_workspace_bytes(const kiln_op *op, const void *params, const kiln_shape *inputs,
                               int n_inputs);

typedef struct kiln_op_args {
    const void *params; /* the op's parameter struct (op_params.h), or NULL */
    kiln_mode mode;
    uint64_t seed; /* dropout: the run's seed */
    uint64_t step; /* dropout: the training step */
    uint32_t node; /* dropout: which op in the graph, so masks differ between layers */
    kiln_tensor *const *inputs;
    int n_inputs;
    kiln_tensor *output;
    kiln_tensor *const *saved; /* kiln_op_n_saved tensors, shapes from kiln_op_infer */
    kiln_buffer *workspace;    /* kiln_op_workspace_bytes, or NULL when 0 */
    /* backward only */
    kiln_tensor *grad_output;
    kiln_tensor *const *grad_inputs; /* n_inputs entries; NULL where no gradient is wanted */
    /* Bit i: grad_inputs[i] holds no value yet (its memory may be anything), so backward sets
     * it to the gradient instead of adding to it. 0: accumulate into every gradient. */
    uint32_t grad_fresh;
    /* Forward writes act(the op's result) to output; backward then takes `output` as that
     * activated output and grad_output as the gradient of it, and differentiates through the
     * activation first. Only where kiln_op_fuses_activation says so; NONE for a plain op. */
    kiln_activation activation;
} kiln_op_args;

/* Queues the forward computation. Checks arity, dtypes and shapes against kiln_op_infer first
 * (KILN_ERR_SHAPE with the op and shapes on mismatch). */
kiln_status kiln_op_forward(kiln_device *dev, const kiln_op *op, const kiln_op_args *args);
/* Queues the backward computation, accumulating into args->grad_inputs (or setting those
 * args->grad_fresh marks). Needs the inputs, output and saved tensors of the matching forward
 * call. KILN_ERR_UNSUPPORTED for an op that is not differentiable. */
kiln_status kiln_op_backward(kiln_device *dev, const kiln_op *op, const kiln_op_args *args);
/* Queues t := value through the fill op (its whole shape). */
kiln_status kiln_op_fill(kiln_device *dev, kiln_tensor *t, float value);

#ifdef __cplusplus
}
#endif

#endif
