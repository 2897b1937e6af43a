/*
 * Internal view of the graph IR shared by the graph layer's files: values, nodes (in
 * topological order by construction: a node can only use values that exist), and the loss.
 */
#ifndef KILN_GRAPH_GRAPH_H
#define KILN_GRAPH_GRAPH_H

#include "core/context.h"
#include "kiln/graph.h"
#include "kiln/ops.h"

typedef struct kiln__value {
    char *name;
    kiln_value_kind kind;
    kiln_shape shape;
    kiln_dtype dtype;
    kiln_init init;  /* PARAMETER */
    float fill;      /* BUFFER */
    int32_t producer; /* the node whose output this is, or -1 */
} kiln__value;

typedef struct kiln__node {
    char *name;
    const kiln_op *op;
    void *params; /* a copy, op->params_size bytes, or NULL */
    kiln_value inputs[KILN_OP_MAX_INPUTS];
    int n_inputs;
    kiln_value output;
    kiln_shape saved[KILN_OP_MAX_SAVED];
    size_t workspace_bytes;
} kiln__node;

struct kiln_graph {
    kiln_context *ctx;
    kiln__value *values;
    size_t n_values, cap_values;
    kiln__node *nodes;
    size_t n_nodes, cap_nodes;
    kiln_value loss;
};

const kiln__value *kiln__graph_value(const kiln_graph *g, kiln_value v);

#endif
