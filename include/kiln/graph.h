/*
 * Graphs: values with shapes, nodes that reference the op table, and named parameters, built
 * call by call. Shapes are inferred as each node is added, so a mismatch is reported at build
 * time with the node's name and the shapes involved. A graph holds no device memory; a
 * kiln_model (model.h) binds it to a device.
 *
 * Values are small integers (kiln_value) valid only in their graph. A graph is not thread-safe.
 */
#ifndef KILN_GRAPH_H
#define KILN_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln_graph kiln_graph;
typedef int32_t kiln_value;

typedef enum kiln_value_kind {
    KILN_VALUE_INPUT = 0,     /* fed by the caller each step (images, labels) */
    KILN_VALUE_PARAMETER = 1, /* trainable, initialised by the model, saved in checkpoints */
    KILN_VALUE_BUFFER = 2,    /* non-trainable state saved in checkpoints (BN running stats) */
    KILN_VALUE_NODE = 3,      /* the output of a node */
} kiln_value_kind;

/* How a parameter starts. Fan-in and fan-out follow PyTorch's torch.nn.init: for a weight of
 * shape (out, in, k...) or Kiln's dense (in, out) layout, with the receptive field multiplied
 * in. Constants use `value`. */
typedef enum kiln_init_kind {
    KILN_INIT_CONSTANT = 0,
    KILN_INIT_HE_UNIFORM,
    KILN_INIT_HE_NORMAL,
    KILN_INIT_XAVIER_UNIFORM,
    KILN_INIT_XAVIER_NORMAL,
} kiln_init_kind;

typedef struct kiln_init {
    kiln_init_kind kind;
    float value; /* KILN_INIT_CONSTANT */
    int fan_in_axis, fan_out_axis; /* axes of the shape holding fan-in and fan-out */
} kiln_init;

kiln_status kiln_graph_create(kiln_context *ctx, kiln_graph **out);
void kiln_graph_destroy(kiln_graph *graph);
kiln_context *kiln_graph_get_context(const kiln_graph *graph);

/* Leaves. Names must be unique in the graph (KILN_ERR_INVALID_ARGUMENT otherwise). */
kiln_status kiln_graph_input(kiln_graph *g, const char *name, const kiln_shape *shape,
                             kiln_dtype dtype, kiln_value *out);
kiln_status kiln_graph_parameter(kiln_graph *g, const char *name, const kiln_shape *shape,
                                 const kiln_init *init, kiln_value *out);
kiln_status kiln_graph_buffer(kiln_graph *g, const char *name, const kiln_shape *shape,
                              float value, kiln_value *out);

/* A node applying op `op_name` to `inputs`; `params` (kiln_op_params_size bytes) is copied.
 * Infers the output shape now: KILN_ERR_SHAPE names the node, the op and the input shapes. */
kiln_status kiln_graph_op(kiln_graph *g, const char *node_name, const char *op_name,
                          const void *params, const kiln_value *inputs, int n_inputs,
                          kiln_value *out);

/* The scalar that training minimises (a loss node's output). */
kiln_status kiln_graph_set_loss(kiln_graph *g, kiln_value loss);
kiln_value kiln_graph_get_loss(const kiln_graph *g); /* -1 when none */

/* ---- inspection ---- */
size_t kiln_graph_n_values(const kiln_graph *g);
size_t kiln_graph_n_nodes(const kiln_graph *g);
const kiln_shape *kiln_graph_value_shape(const kiln_graph *g, kiln_value v);
kiln_dtype kiln_graph_value_dtype(const kiln_graph *g, kiln_value v);
kiln_value_kind kiln_graph_value_kind(const kiln_graph *g, kiln_value v);
const char *kiln_graph_value_name(const kiln_graph *g, kiln_value v);
/* The value named `name` (leaf name or node name), or -1. */
kiln_value kiln_graph_find(const kiln_graph *g, const char *name);

/* ---- layers: Keras-like builders that add parameters and nodes named "<name>.weight", ... ---- */

/* x (N, IN) -> (N, units); weight (IN, units) He-uniform, bias zeros. */
kiln_status kiln_graph_dense(kiln_graph *g, const char *name, kiln_value x, int64_t units,
                             bool bias, kiln_value *out);
/* x (N, C, [D,] H, W) -> (N, filters, ...); weight (F, C, k...) He-uniform, bias zeros.
 * `same` pads so that stride 1 keeps the spatial size (odd kernels). */
kiln_status kiln_graph_conv(kiln_graph *g, const char *name, kiln_value x, int n_spatial,
                            int64_t filters, const int kernel[3], const int stride[3],
                            const int padding[3], bool same, const int dilation[3], bool bias,
                            kiln_value *out);
/* Batch-norm with gamma ones, beta zeros, running mean zeros, running var ones. */
kiln_status kiln_graph_batchnorm(kiln_graph *g, const char *name, kiln_value x, float momentum,
                                 float eps, kiln_value *out);
/* Unary ops without parameters or with a small params struct (relu, dropout, softmax, ...). */
kiln_status kiln_graph_unary(kiln_graph *g, const char *name, const char *op_name,
                             const void *params, kiln_value x, kiln_value *out);

#ifdef __cplusplus
}
#endif

#endif
