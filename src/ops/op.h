/*
 * Internal view of the op table for the op family files: the table entry, the helpers every
 * family uses (shape errors naming the op and shapes, tensor kernel arguments, 1-D launches,
 * broadcast index collapsing) and the shared reduction and GEMM entry points.
 */
#ifndef KILN_OPS_OP_H
#define KILN_OPS_OP_H

#include "core/context.h"
#include "device/device.h"
#include "kiln/ops.h"
#include "tensor/tensor.h"

struct kiln_op {
    const char *name;
    const char *program; /* the cl/<program>.cl file holding its kernels */
    int n_inputs;        /* exact, or the maximum when variadic */
    bool variadic;       /* accepts 1..n_inputs inputs */
    int n_saved;
    size_t params_size;
    uint32_t no_grad_inputs; /* bit i: input i never receives a gradient */
    uint32_t i32_inputs;     /* bit i: input i is i32 */
    /* Bit i: backward sets gradient i, without reading it, when args->grad_fresh has bit i
     * (kiln_op_backward only passes it so). Other fresh gradients are zero-filled first. */
    uint32_t writes_fresh_grads;
    /* When set, the same mask for one call, for ops that can set a gradient only for some
     * parameters and shapes (max pooling 2 x 2 over evenly sized inputs); overrides
     * writes_fresh_grads. */
    uint32_t (*fresh_grads)(const kiln_op *op, const kiln_op_args *args);
    /* Forward copies input 0 unchanged (same elements in the same order, another shape): the
     * executor may give the output input 0's buffer and skip the launch (kiln_op_is_view). */
    bool view;
    /* The activation this op is (relu: KILN_ACTIVATION_RELU), for kiln_op_activation. */
    kiln_activation activation;
    /* Whether forward and backward can apply `act` to the output themselves
     * (kiln_op_args.activation) for these parameters and input shapes; NULL: never. */
    bool (*fuses)(const kiln_op *op, const void *params, const kiln_shape *in, int n_in,
                  kiln_activation act);
    kiln_status (*infer)(kiln_context *ctx, const kiln_op *op, const void *params,
                         const kiln_shape *in, int n_in, kiln_shape *out, kiln_shape *saved);
    /* NULL means no workspace. */
    size_t (*workspace)(const kiln_op *op, const void *params, const kiln_shape *in, int n_in);
    kiln_status (*forward)(kiln_device *dev, const kiln_op *op, const kiln_op_args *args);
    /* NULL means explicitly not differentiable. */
    kiln_status (*backward)(kiln_device *dev, const kiln_op *op, const kiln_op_args *args);
    int variant; /* lets one family share functions between ops (e.g. add vs mul) */
};

/* The table (registry.c). */
extern const kiln_op *const kiln__ops[];
extern const size_t kiln__n_ops;

/* Records KILN_ERR_SHAPE: "op 'name': <why>; inputs (2, 3), (4,)". */
kiln_status kiln__shape_error(kiln_context *ctx, const kiln_op *op, const kiln_shape *in,
                              int n_in, const char *fmt, ...) KILN__PRINTF(5, 6);
/* Records KILN_ERR_INVALID_ARGUMENT naming the op. */
kiln_status kiln__param_error(kiln_context *ctx, const kiln_op *op, const char *fmt, ...)
    KILN__PRINTF(3, 4);

/* A tensor as a kernel argument. */
#define KILN__ARG_T(t) KILN__ARG_BUF(kiln__tensor_buffer(t))

/* Launches a 1-D kernel over n work-items, the driver choosing the work-group size. */
kiln_status kiln__launch_1d(kiln_device *dev, const char *program, const char *kernel,
                            const kiln__arg *args, size_t n_args, size_t n);

/* Shape inference for ops whose output has the first input's shape. */
kiln_status kiln__infer_same_shape(kiln_context *ctx, const kiln_op *op, const void *params,
                                   const kiln_shape *in, int n_in, kiln_shape *out,
                                   kiln_shape *saved);

/* Whether backward sets gradient i instead of adding to it (args->grad_fresh, as
 * kiln_op_backward passes it: only for ops whose writes_fresh_grads has bit i). */
static inline bool kiln__grad_fresh(const kiln_op_args *args, int i)
{
    return (args->grad_fresh >> i & 1u) != 0;
}

/* gx += alpha * g, or gx = alpha * g when `fresh`, for tensors of equal element count
 * (elementwise.c). */
kiln_status kiln__accumulate_grad(kiln_device *dev, const kiln_tensor *g, kiln_tensor *gx,
                                  float alpha, bool fresh);

/* Resolves a possibly negative axis against ndim; -1 when out of range. */
int kiln__axis(int axis, int ndim);

/* ---- broadcasting (broadcast.c) ---- */

/* Up to 4 collapsed dimensions (fastest last) and each operand's element strides over them
 * (0 where the operand is broadcast). */
typedef struct kiln__bcast {
    uint32_t dims[4];
    uint32_t strides[3][4];
    int n_operands;
} kiln__bcast;

/* NumPy broadcasting of two shapes into `out`; false when incompatible. */
bool kiln__broadcast_shape(const kiln_shape *a, const kiln_shape *b, kiln_shape *out);
/* Collapses `out` and operands (each broadcastable to `out`, right-aligned) to at most 4
 * dimensions. KILN_ERR_UNSUPPORTED (naming the op) when more than 4 remain. */
kiln_status kiln__bcast_plan(kiln_context *ctx, const kiln_op *op, const kiln_shape *out,
                             const kiln_shape *operands, int n_operands, kiln__bcast *plan);

/* ---- reductions (reduce.c) ---- */

typedef enum kiln__reduce_kind { KILN__REDUCE_SUM, KILN__REDUCE_MAX } kiln__reduce_kind;

/* dst (dst_shape, right-aligned, each dim 1 or equal to src's) = scale * reduce(src) over the
 * axes where dst has 1; with `accumulate`, dst += instead. Sums are compensated per work-item
 * and combined in a work-group tree, never one long serial float sum. */
kiln_status kiln__reduce_to(kiln_device *dev, const kiln_op *op, const kiln_buffer *src,
                            const kiln_shape *src_shape, const kiln_buffer *dst,
                            const kiln_shape *dst_shape, kiln__reduce_kind kind, float scale,
                            bool accumulate);
/* The same, writing the result `dst_at` elements into dst, so that an op can keep several
 * reductions in one workspace instead of allocating or copying. */
kiln_status kiln__reduce_to_at(kiln_device *dev, const kiln_op *op, const kiln_buffer *src,
                               const kiln_shape *src_shape, const kiln_buffer *dst,
                               size_t dst_at, const kiln_shape *dst_shape,
                               kiln__reduce_kind kind, float scale, bool accumulate);

#endif
