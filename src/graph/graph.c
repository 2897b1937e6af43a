/*
 * The graph IR: adding inputs, parameters, buffers and op nodes, with shape inference at the
 * moment a node is added so that errors name the node. Nodes are stored in the order they are
 * added, which is a topological order because a node can only consume existing values.
 * Layer builders (layers.c) and the model/executor (model.c, executor.c) sit on top.
 */
#include <stdio.h>
#include <string.h>

#include "graph/graph.h"

kiln_status kiln_graph_create(kiln_context *ctx, kiln_graph **out)
{
    if (ctx == NULL || out == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    kiln_graph *g = kiln__calloc(ctx, 1, sizeof *g);
    if (g == NULL)
        return kiln__error(ctx, KILN_ERR_NO_MEMORY, __func__, "out of memory creating a graph");
    g->ctx = ctx;
    g->loss = -1;
    *out = g;
    return KILN_OK;
}

void kiln_graph_destroy(kiln_graph *g)
{
    if (g == NULL)
        return;
    kiln_context *ctx = g->ctx;
    for (size_t i = 0; i < g->n_values; i++)
        kiln__free(ctx, g->values[i].name);
    for (size_t i = 0; i < g->n_nodes; i++) {
        kiln__free(ctx, g->nodes[i].name);
        kiln__free(ctx, g->nodes[i].params);
    }
    kiln__free(ctx, g->values);
    kiln__free(ctx, g->nodes);
    kiln__free(ctx, g);
}

kiln_context *kiln_graph_get_context(const kiln_graph *g)
{
    return g->ctx;
}

const kiln__value *kiln__graph_value(const kiln_graph *g, kiln_value v)
{
    return v >= 0 && (size_t)v < g->n_values ? &g->values[v] : NULL;
}

kiln_value kiln_graph_find(const kiln_graph *g, const char *name)
{
    for (size_t i = 0; name != NULL && i < g->n_values; i++) {
        if (strcmp(g->values[i].name, name) == 0)
            return (kiln_value)i;
    }
    return -1;
}

/* Appends a value; `name` is copied. */
static kiln_status add_value(kiln_graph *g, const char *function, const char *name,
                             kiln_value_kind kind, const kiln_shape *shape, kiln_dtype dtype,
                             kiln_value *out)
{
    char text[96];
    if (name == NULL || name[0] == '\0')
        return kiln__error(g->ctx, KILN_ERR_INVALID_ARGUMENT, function, "a value needs a name");
    if (kiln_graph_find(g, name) >= 0)
        return kiln__error(g->ctx, KILN_ERR_INVALID_ARGUMENT, function,
                           "the name '%s' is already used in this graph", name);
    if (!kiln_shape_is_valid(shape))
        return kiln__error(g->ctx, KILN_ERR_SHAPE, function, "'%s': invalid shape %s", name,
                           kiln_shape_format(shape, text, sizeof text));
    if (g->n_values == g->cap_values) {
        size_t cap = g->cap_values ? 2 * g->cap_values : 32;
        kiln__value *grown = kiln__realloc(g->ctx, g->values, cap * sizeof *grown);
        if (grown == NULL)
            return kiln__error(g->ctx, KILN_ERR_NO_MEMORY, function, "out of memory adding '%s'",
                               name);
        g->values = grown;
        g->cap_values = cap;
    }
    kiln__value *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    v->name = kiln__strdup(g->ctx, name);
    if (v->name == NULL)
        return kiln__error(g->ctx, KILN_ERR_NO_MEMORY, function, "out of memory adding '%s'", name);
    v->kind = kind;
    v->shape = *shape;
    v->dtype = dtype;
    v->producer = -1;
    *out = (kiln_value)g->n_values++;
    return KILN_OK;
}

kiln_status kiln_graph_input(kiln_graph *g, const char *name, const kiln_shape *shape,
                             kiln_dtype dtype, kiln_value *out)
{
    return add_value(g, __func__, name, KILN_VALUE_INPUT, shape, dtype, out);
}

kiln_status kiln_graph_parameter(kiln_graph *g, const char *name, const kiln_shape *shape,
                                 const kiln_init *init, kiln_value *out)
{
    kiln_status rc = add_value(g, __func__, name, KILN_VALUE_PARAMETER, shape, KILN_F32, out);
    if (rc == KILN_OK && init != NULL)
        g->values[*out].init = *init;
    return rc;
}

kiln_status kiln_graph_buffer(kiln_graph *g, const char *name, const kiln_shape *shape, float value,
                              kiln_value *out)
{
    kiln_status rc = add_value(g, __func__, name, KILN_VALUE_BUFFER, shape, KILN_F32, out);
    if (rc == KILN_OK)
        g->values[*out].fill = value;
    return rc;
}

kiln_status kiln_graph_op(kiln_graph *g, const char *node_name, const char *op_name,
                          const void *params, const kiln_value *inputs, int n_inputs,
                          kiln_value *out)
{
    kiln_status rc = KILN_OK;
    const kiln_op *op = kiln_op_find(op_name);
    void *params_copy = NULL;
    char *name_copy = NULL;
    if (g == NULL || out == NULL || (n_inputs > 0 && inputs == NULL))
        return KILN_ERR_INVALID_ARGUMENT;
    if (node_name == NULL || node_name[0] == '\0')
        KILN_FAIL(g->ctx, KILN_ERR_INVALID_ARGUMENT, "a node using op '%s' needs a name",
                  op_name != NULL ? op_name : "?");
    if (op == NULL)
        KILN_FAIL(g->ctx, KILN_ERR_NOT_FOUND,
                  "node '%s': no op named '%s' (`kiln selftest "
                  "--list` names them)",
                  node_name, op_name != NULL ? op_name : "(null)");
    if (n_inputs < 0 || n_inputs > KILN_OP_MAX_INPUTS)
        KILN_FAIL(g->ctx, KILN_ERR_INVALID_ARGUMENT, "node '%s': %d inputs", node_name, n_inputs);
    kiln_shape shapes[KILN_OP_MAX_INPUTS];
    for (int i = 0; i < n_inputs; i++) {
        const kiln__value *v = kiln__graph_value(g, inputs[i]);
        if (v == NULL)
            KILN_FAIL(g->ctx, KILN_ERR_INVALID_ARGUMENT,
                      "node '%s': input %d is not a value of "
                      "this graph",
                      node_name, i);
        if (v->dtype != kiln_op_input_dtype(op, i))
            KILN_FAIL(g->ctx, KILN_ERR_INVALID_ARGUMENT,
                      "node '%s' (op '%s'): input %d '%s' is "
                      "%s, the op wants %s",
                      node_name, kiln_op_name(op), i, v->name, kiln_dtype_name(v->dtype),
                      kiln_dtype_name(kiln_op_input_dtype(op, i)));
        shapes[i] = v->shape;
    }
    kiln_shape out_shape, saved[KILN_OP_MAX_SAVED];
    rc = kiln_op_infer(g->ctx, op, params, shapes, n_inputs, &out_shape, saved);
    if (rc != KILN_OK) {
        /* Put the node's name in front of the op's own message. */
        char *detail = kiln__strdup(g->ctx, kiln_context_last_error(g->ctx));
        kiln__error(g->ctx, rc, __func__, "node '%s': %s", node_name,
                    detail != NULL ? detail : "(out of memory)");
        kiln__free(g->ctx, detail);
        goto cleanup;
    }
    if (kiln_op_params_size(op) > 0) {
        params_copy = kiln__alloc(g->ctx, kiln_op_params_size(op));
        if (params_copy == NULL)
            KILN_FAIL(g->ctx, KILN_ERR_NO_MEMORY, "out of memory adding node '%s'", node_name);
        memcpy(params_copy, params, kiln_op_params_size(op));
    }
    name_copy = kiln__strdup(g->ctx, node_name);
    if (name_copy == NULL)
        KILN_FAIL(g->ctx, KILN_ERR_NO_MEMORY, "out of memory adding node '%s'", node_name);
    if (g->n_nodes == g->cap_nodes) {
        size_t cap = g->cap_nodes ? 2 * g->cap_nodes : 32;
        kiln__node *grown = kiln__realloc(g->ctx, g->nodes, cap * sizeof *grown);
        if (grown == NULL)
            KILN_FAIL(g->ctx, KILN_ERR_NO_MEMORY, "out of memory adding node '%s'", node_name);
        g->nodes = grown;
        g->cap_nodes = cap;
    }
    kiln_value value = 0; /* set by add_value; initialised for gcc -O3's flow analysis */
    KILN_CHECK(add_value(g, __func__, node_name, KILN_VALUE_NODE, &out_shape, KILN_F32, &value));
    kiln__node *node = &g->nodes[g->n_nodes];
    memset(node, 0, sizeof *node);
    node->name = name_copy;
    node->op = op;
    node->params = params_copy;
    node->n_inputs = n_inputs;
    memcpy(node->inputs, inputs, (size_t)n_inputs * sizeof *inputs);
    node->output = value;
    memcpy(node->saved, saved, sizeof saved);
    node->workspace_bytes = kiln_op_workspace_bytes(op, params, shapes, n_inputs);
    g->values[value].producer = (int32_t)g->n_nodes;
    g->n_nodes++;
    name_copy = NULL;
    params_copy = NULL;
    *out = value;
cleanup:
    kiln__free(g->ctx, name_copy);
    kiln__free(g->ctx, params_copy);
    return rc;
}

kiln_status kiln_graph_set_loss(kiln_graph *g, kiln_value loss)
{
    const kiln__value *v = kiln__graph_value(g, loss);
    if (v == NULL || v->kind != KILN_VALUE_NODE || kiln_shape_count(&v->shape) != 1)
        return kiln__error(g->ctx, KILN_ERR_INVALID_ARGUMENT, __func__,
                           "the loss must be a node output with one element%s%s",
                           v != NULL ? "; got " : "", v != NULL ? v->name : "");
    g->loss = loss;
    return KILN_OK;
}

kiln_value kiln_graph_get_loss(const kiln_graph *g)
{
    return g->loss;
}

size_t kiln_graph_n_values(const kiln_graph *g)
{
    return g->n_values;
}

size_t kiln_graph_n_nodes(const kiln_graph *g)
{
    return g->n_nodes;
}

const kiln_shape *kiln_graph_value_shape(const kiln_graph *g, kiln_value v)
{
    const kiln__value *x = kiln__graph_value(g, v);
    return x != NULL ? &x->shape : NULL;
}

kiln_dtype kiln_graph_value_dtype(const kiln_graph *g, kiln_value v)
{
    const kiln__value *x = kiln__graph_value(g, v);
    return x != NULL ? x->dtype : KILN_F32;
}

kiln_value_kind kiln_graph_value_kind(const kiln_graph *g, kiln_value v)
{
    const kiln__value *x = kiln__graph_value(g, v);
    return x != NULL ? x->kind : KILN_VALUE_NODE;
}

const char *kiln_graph_value_name(const kiln_graph *g, kiln_value v)
{
    const kiln__value *x = kiln__graph_value(g, v);
    return x != NULL ? x->name : NULL;
}
