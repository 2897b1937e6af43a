/*
 * The executor: runs a model's graph in one mode. It derives the schedule (forward nodes in
 * graph order; in train mode, the loss seed and then the nodes' backward calls in reverse),
 * which values need gradients (reverse-mode autodiff from the op table: no per-op code here),
 * each value's lifetime on that schedule, and lets the planner map values to device buffers.
 *
 * Step numbering: node i's forward runs at step i; with N nodes, step N seeds d(loss) = 1 and
 * node i's backward runs at step 2N - i. A gradient is zero-filled at its first writer's step,
 * so its lifetime starts there; gradients of a fanned-out value accumulate from each consumer.
 */
#include <stdio.h>
#include <string.h>

#include "graph/model_internal.h"
#include "graph/planner.h"
#include "tensor/tensor.h"

struct kiln_executor {
    kiln_model *model;
    kiln_graph *g;
    kiln_device *dev;
    kiln_mode mode;
    bool plan;
    kiln_tensor **values;  /* per value: owned for inputs and node outputs */
    kiln_tensor **grads;   /* per value, train mode; NULL where no gradient flows */
    kiln_tensor **saved;   /* per node, KILN_OP_MAX_SAVED each */
    bool *kept;            /* per value: readable after forward */
    bool *zeroed;          /* per value: gradient zero-filled in the current backward */
    kiln_buffer **slots;
    size_t n_slots;
    kiln_buffer *workspace;
    uint64_t planned_bytes;
    uint64_t last_step; /* the forward's step, so backward regenerates the same masks */
};

static int32_t step_backward(const kiln_graph *g, size_t node)
{
    return (int32_t)(2 * g->n_nodes - node);
}

/* Marks values that need a gradient: they depend on a parameter and the loss depends on them.
 * Returns the per-value flags (caller frees). */
static bool *gradient_flags(kiln_graph *g)
{
    bool *depends = kiln__calloc(g->ctx, g->n_values, sizeof *depends);
    bool *reaches = kiln__calloc(g->ctx, g->n_values, sizeof *reaches);
    if (depends == NULL || reaches == NULL) {
        kiln__free(g->ctx, depends);
        kiln__free(g->ctx, reaches);
        return NULL;
    }
    for (size_t v = 0; v < g->n_values; v++)
        depends[v] = g->values[v].kind == KILN_VALUE_PARAMETER;
    for (size_t i = 0; i < g->n_nodes; i++) {
        const kiln__node *n = &g->nodes[i];
        for (int k = 0; kiln_op_has_backward(n->op) && k < n->n_inputs; k++)
            if (kiln_op_input_differentiable(n->op, k) && depends[n->inputs[k]])
                depends[n->output] = true;
    }
    if (g->loss >= 0)
        reaches[g->loss] = true;
    for (size_t i = g->n_nodes; i-- > 0;) {
        const kiln__node *n = &g->nodes[i];
        if (!reaches[n->output] || !kiln_op_has_backward(n->op))
            continue;
        for (int k = 0; k < n->n_inputs; k++)
            if (kiln_op_input_differentiable(n->op, k))
                reaches[n->inputs[k]] = true;
    }
    for (size_t v = 0; v < g->n_values; v++)
        depends[v] = depends[v] && reaches[v];
    kiln__free(g->ctx, reaches);
    return depends;
}

/* What the planner places: node outputs, saved tensors and gradients. */
typedef enum item_kind { ITEM_VALUE, ITEM_SAVED, ITEM_GRAD } item_kind;

typedef struct item_ref {
    item_kind kind;
    size_t index; /* value, or node * KILN_OP_MAX_SAVED + k */
} item_ref;

static void extend(kiln__plan_item *it, int32_t step)
{
    if (step > it->end)
        it->end = step;
}

/* Builds the plan items of every planned tensor and returns their count. */
static size_t build_items(kiln_executor *ex, const bool *grad, kiln__plan_item *items,
                          item_ref *refs, size_t *item_of_value, size_t *item_of_grad)
{
    kiln_graph *g = ex->g;
    bool train = ex->mode == KILN_MODE_TRAIN;
    int32_t last = (int32_t)(2 * g->n_nodes + 1); /* past every step: read by the caller */
    size_t n = 0;
    for (size_t v = 0; v < g->n_values; v++) {
        item_of_value[v] = SIZE_MAX;
        item_of_grad[v] = SIZE_MAX;
    }
    for (size_t i = 0; i < g->n_nodes; i++) {
        const kiln__node *node = &g->nodes[i];
        kiln__plan_item *it = &items[n];
        it->bytes = (size_t)kiln_shape_count(&g->values[node->output].shape) * 4;
        it->start = it->end = (int32_t)i;
        if (ex->kept[node->output])
            it->end = last;
        if (train && grad[node->output])
            extend(it, step_backward(g, i)); /* backward reads its output */
        refs[n] = (item_ref){ITEM_VALUE, node->output};
        item_of_value[node->output] = n++;
        for (int k = 0; k < kiln_op_n_saved(node->op); k++) {
            kiln__plan_item *s = &items[n];
            s->bytes = (size_t)kiln_shape_count(&node->saved[k]) * 4;
            s->start = s->end = (int32_t)i;
            if (train && grad[node->output])
                s->end = step_backward(g, i);
            refs[n++] = (item_ref){ITEM_SAVED, i * KILN_OP_MAX_SAVED + (size_t)k};
        }
    }
    /* Consumers extend their inputs' lives: forward reads them, and so does their backward. */
    for (size_t j = 0; j < g->n_nodes; j++) {
        const kiln__node *node = &g->nodes[j];
        for (int k = 0; k < node->n_inputs; k++) {
            size_t it = item_of_value[node->inputs[k]];
            if (it == SIZE_MAX)
                continue;
            extend(&items[it], (int32_t)j);
            if (train && grad[node->output])
                extend(&items[it], step_backward(g, j));
        }
    }
    if (!train)
        return n;
    for (size_t v = 0; v < g->n_values; v++) {
        if (!grad[v])
            continue;
        kiln__plan_item *it = &items[n];
        it->bytes = (size_t)kiln_shape_count(&g->values[v].shape) * 4;
        it->start = INT32_MAX;
        it->end = -1;
        if ((kiln_value)v == g->loss)
            it->start = (int32_t)g->n_nodes;
        for (size_t j = 0; j < g->n_nodes; j++) { /* the first backward writer zero-fills */
            const kiln__node *node = &g->nodes[j];
            for (int k = 0; k < node->n_inputs; k++)
                if ((size_t)node->inputs[k] == v && grad[node->output] &&
                    kiln_op_input_differentiable(node->op, k) &&
                    step_backward(g, j) < it->start)
                    it->start = step_backward(g, j);
        }
        int32_t producer = g->values[v].producer;
        it->end = producer >= 0 ? step_backward(g, (size_t)producer) : last;
        if (it->end < it->start)
            it->end = it->start;
        refs[n] = (item_ref){ITEM_GRAD, v};
        item_of_grad[v] = n++;
    }
    return n;
}

/* Creates the tensors of every planned item on its slot's buffer. */
static kiln_status bind_items(kiln_executor *ex, const kiln__plan_item *items,
                              const item_ref *refs, size_t n)
{
    kiln_graph *g = ex->g;
    kiln_status rc = KILN_OK;
    for (size_t i = 0; rc == KILN_OK && i < n; i++) {
        kiln_buffer *buffer = ex->slots[items[i].slot];
        const item_ref *r = &refs[i];
        if (r->kind == ITEM_SAVED) {
            size_t node = r->index / KILN_OP_MAX_SAVED, k = r->index % KILN_OP_MAX_SAVED;
            rc = kiln__tensor_wrap(ex->dev, buffer, &g->nodes[node].saved[k], KILN_F32,
                                   g->nodes[node].name, &ex->saved[r->index]);
        } else {
            const kiln__value *v = &g->values[r->index];
            kiln_tensor **slot = r->kind == ITEM_VALUE ? &ex->values[r->index]
                                                       : &ex->grads[r->index];
            rc = kiln__tensor_wrap(ex->dev, buffer, &v->shape, KILN_F32, v->name, slot);
        }
    }
    return rc;
}

static kiln_status plan_and_allocate(kiln_executor *ex)
{
    kiln_status rc = KILN_OK;
    kiln_graph *g = ex->g;
    kiln_context *ctx = g->ctx;
    size_t cap = g->n_nodes * (1 + KILN_OP_MAX_SAVED) + g->n_values + 1;
    kiln__plan_item *items = kiln__calloc(ctx, cap, sizeof *items);
    item_ref *refs = kiln__calloc(ctx, cap, sizeof *refs);
    size_t *item_of_value = kiln__calloc(ctx, g->n_values + 1, sizeof *item_of_value);
    size_t *item_of_grad = kiln__calloc(ctx, g->n_values + 1, sizeof *item_of_grad);
    size_t *slot_bytes = NULL;
    bool *grad = gradient_flags(g);
    if (items == NULL || refs == NULL || item_of_value == NULL || item_of_grad == NULL ||
        grad == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory planning the executor");
    if (ex->mode != KILN_MODE_TRAIN)
        memset(grad, 0, g->n_values * sizeof *grad);
    size_t n = build_items(ex, grad, items, refs, item_of_value, item_of_grad);
    KILN_CHECK(kiln__plan_assign(ctx, items, n, ex->plan, &slot_bytes, &ex->n_slots));
    ex->slots = kiln__calloc(ctx, ex->n_slots + 1, sizeof *ex->slots);
    if (ex->slots == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory planning the executor");
    for (size_t s = 0; s < ex->n_slots; s++) {
        char purpose[64];
        snprintf(purpose, sizeof purpose, "activation buffer %zu of %zu", s + 1, ex->n_slots);
        KILN_CHECK(kiln_buffer_create(ex->dev, slot_bytes[s], purpose, &ex->slots[s]));
        ex->planned_bytes += slot_bytes[s];
    }
    KILN_CHECK(bind_items(ex, items, refs, n));
    size_t ws = 0;
    for (size_t i = 0; i < g->n_nodes; i++)
        ws = g->nodes[i].workspace_bytes > ws ? g->nodes[i].workspace_bytes : ws;
    if (ws > 0) {
        KILN_CHECK(kiln_buffer_create(ex->dev, ws, "op workspace", &ex->workspace));
        ex->planned_bytes += ws;
    }
cleanup:
    kiln__free(ctx, items);
    kiln__free(ctx, refs);
    kiln__free(ctx, item_of_value);
    kiln__free(ctx, item_of_grad);
    kiln__free(ctx, slot_bytes);
    kiln__free(ctx, grad);
    return rc;
}

kiln_status kiln_executor_create(kiln_model *m, const kiln_executor_options *o,
                                 kiln_executor **out)
{
    kiln_status rc = KILN_OK;
    if (m == NULL || o == NULL || out == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    *out = NULL;
    kiln_graph *g = m->graph;
    kiln_context *ctx = g->ctx;
    if (o->mode == KILN_MODE_TRAIN && g->loss < 0)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, __func__,
                           "train mode needs a loss: call kiln_graph_set_loss");
    if (m->n_state != g->n_values)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, __func__,
                           "the graph changed after its model was created; create the model "
                           "from the finished graph");
    kiln_executor *ex = kiln__calloc(ctx, 1, sizeof *ex);
    if (ex == NULL)
        return kiln__error(ctx, KILN_ERR_NO_MEMORY, __func__, "out of memory");
    ex->model = m;
    ex->g = g;
    ex->dev = m->dev;
    ex->mode = o->mode;
    ex->plan = o->plan_memory;
    ex->values = kiln__calloc(ctx, g->n_values, sizeof *ex->values);
    ex->grads = kiln__calloc(ctx, g->n_values, sizeof *ex->grads);
    ex->kept = kiln__calloc(ctx, g->n_values, sizeof *ex->kept);
    ex->zeroed = kiln__calloc(ctx, g->n_values, sizeof *ex->zeroed);
    ex->saved = kiln__calloc(ctx, g->n_nodes * KILN_OP_MAX_SAVED + 1, sizeof *ex->saved);
    if (ex->values == NULL || ex->grads == NULL || ex->kept == NULL || ex->zeroed == NULL ||
        ex->saved == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory creating an executor");
    /* Values nobody consumes are the graph's outputs: keep them readable. */
    for (size_t v = 0; v < g->n_values; v++)
        ex->kept[v] = g->values[v].kind == KILN_VALUE_NODE;
    for (size_t i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_inputs; k++)
            ex->kept[g->nodes[i].inputs[k]] = false;
    if (g->loss >= 0)
        ex->kept[g->loss] = true;
    for (size_t v = 0; v < g->n_values; v++) {
        const kiln__value *val = &g->values[v];
        if (val->kind == KILN_VALUE_INPUT)
            KILN_CHECK(kiln_tensor_create(ex->dev, &val->shape, val->dtype, val->name,
                                          &ex->values[v]));
    }
    KILN_CHECK(plan_and_allocate(ex));
    *out = ex;
    ex = NULL;
cleanup:
    kiln_executor_destroy(ex);
    return rc;
}

void kiln_executor_destroy(kiln_executor *ex)
{
    if (ex == NULL)
        return;
    kiln_context *ctx = ex->g->ctx;
    for (size_t v = 0; v < ex->g->n_values; v++) {
        if (ex->values != NULL)
            kiln_tensor_destroy(ex->values[v]);
        if (ex->grads != NULL)
            kiln_tensor_destroy(ex->grads[v]);
    }
    for (size_t i = 0; ex->saved != NULL && i < ex->g->n_nodes * KILN_OP_MAX_SAVED; i++)
        kiln_tensor_destroy(ex->saved[i]);
    for (size_t s = 0; ex->slots != NULL && s < ex->n_slots; s++)
        kiln_buffer_destroy(ex->slots[s]);
    kiln_buffer_destroy(ex->workspace);
    kiln__free(ctx, ex->values);
    kiln__free(ctx, ex->grads);
    kiln__free(ctx, ex->saved);
    kiln__free(ctx, ex->kept);
    kiln__free(ctx, ex->zeroed);
    kiln__free(ctx, ex->slots);
    kiln__free(ctx, ex);
}

/* The tensor holding value v during a step: the model's for parameters and buffers. */
static kiln_tensor *tensor_of(const kiln_executor *ex, kiln_value v)
{
    kiln_value_kind kind = ex->g->values[v].kind;
    if (kind == KILN_VALUE_PARAMETER || kind == KILN_VALUE_BUFFER)
        return ex->model->state[v];
    return ex->values[v];
}

kiln_status kiln_executor_set_input(kiln_executor *ex, kiln_value input, const void *host,
                                    int64_t n)
{
    const kiln__value *v = kiln__graph_value(ex->g, input);
    if (v == NULL || v->kind != KILN_VALUE_INPUT)
        return kiln__error(ex->g->ctx, KILN_ERR_INVALID_ARGUMENT, __func__,
                           "value %d is not an input of the graph", (int)input);
    return kiln_tensor_upload(ex->values[input], host, n);
}

static void node_args(kiln_executor *ex, size_t i, uint64_t step, kiln_tensor **inputs,
                      kiln_op_args *args)
{
    const kiln__node *node = &ex->g->nodes[i];
    for (int k = 0; k < node->n_inputs; k++)
        inputs[k] = tensor_of(ex, node->inputs[k]);
    memset(args, 0, sizeof *args);
    args->params = node->params;
    args->mode = ex->mode;
    args->seed = ex->model->seed;
    args->step = step;
    args->node = (uint32_t)i;
    args->inputs = inputs;
    args->n_inputs = node->n_inputs;
    args->output = ex->values[node->output];
    args->saved = &ex->saved[i * KILN_OP_MAX_SAVED];
    args->workspace = ex->workspace;
}

/* Prefixes a failing node's error with its name. */
static kiln_status node_failed(kiln_executor *ex, size_t i, const char *pass, kiln_status rc)
{
    char *detail = kiln__strdup(ex->g->ctx, kiln_context_last_error(ex->g->ctx));
    kiln__error(ex->g->ctx, rc, "kiln_executor", "%s of node '%s' (op '%s'): %s", pass,
                ex->g->nodes[i].name, kiln_op_name(ex->g->nodes[i].op),
                detail != NULL ? detail : "(out of memory)");
    kiln__free(ex->g->ctx, detail);
    return rc;
}

kiln_status kiln_executor_forward(kiln_executor *ex, uint64_t step)
{
    kiln_tensor *inputs[KILN_OP_MAX_INPUTS];
    kiln_op_args args;
    for (size_t i = 0; i < ex->g->n_nodes; i++) {
        node_args(ex, i, step, inputs, &args);
        kiln_status rc = kiln_op_forward(ex->dev, ex->g->nodes[i].op, &args);
        if (rc != KILN_OK)
            return node_failed(ex, i, "forward", rc);
    }
    ex->last_step = step;
    return KILN_OK;
}

/* Queues grad := value (fill). */
static kiln_status fill(kiln_executor *ex, kiln_tensor *t, float value)
{
    kiln_fill_params p = {.shape = *kiln_tensor_get_shape(t), .value = value};
    kiln_op_args args = {.params = &p, .output = t};
    return kiln_op_forward(ex->dev, kiln_op_find("fill"), &args);
}

kiln_status kiln_executor_backward(kiln_executor *ex)
{
    kiln_graph *g = ex->g;
    if (ex->mode != KILN_MODE_TRAIN)
        return kiln__error(g->ctx, KILN_ERR_INVALID_ARGUMENT, __func__,
                           "backward needs a train-mode executor (eval and infer keep no tape)");
    memset(ex->zeroed, 0, g->n_values * sizeof *ex->zeroed);
    kiln_status rc = fill(ex, ex->grads[g->loss], 1.0f);
    if (rc != KILN_OK)
        return rc;
    ex->zeroed[g->loss] = true;
    kiln_tensor *inputs[KILN_OP_MAX_INPUTS], *grads[KILN_OP_MAX_INPUTS];
    kiln_op_args args;
    for (size_t i = g->n_nodes; i-- > 0;) {
        const kiln__node *node = &g->nodes[i];
        if (ex->grads[node->output] == NULL || !kiln_op_has_backward(node->op))
            continue;
        node_args(ex, i, ex->last_step, inputs, &args);
        bool any = false;
        for (int k = 0; k < node->n_inputs; k++) {
            kiln_value in = node->inputs[k];
            grads[k] = kiln_op_input_differentiable(node->op, k) ? ex->grads[in] : NULL;
            if (grads[k] != NULL && !ex->zeroed[in]) {
                rc = fill(ex, grads[k], 0.0f);
                if (rc != KILN_OK)
                    return rc;
                ex->zeroed[in] = true;
            }
            any = any || grads[k] != NULL;
        }
        if (!any)
            continue;
        args.grad_output = ex->grads[node->output];
        args.grad_inputs = grads;
        rc = kiln_op_backward(ex->dev, node->op, &args);
        if (rc != KILN_OK)
            return node_failed(ex, i, "backward", rc);
    }
    return KILN_OK;
}

kiln_status kiln_executor_read(kiln_executor *ex, kiln_value v, void *host, int64_t n)
{
    const kiln__value *val = kiln__graph_value(ex->g, v);
    if (val == NULL)
        return kiln__error(ex->g->ctx, KILN_ERR_INVALID_ARGUMENT, __func__, "no value %d",
                           (int)v);
    if (val->kind == KILN_VALUE_NODE && ex->plan && !ex->kept[v])
        return kiln__error(ex->g->ctx, KILN_ERR_INVALID_ARGUMENT, __func__,
                           "'%s' is an intermediate value whose buffer the memory plan reuses; "
                           "read graph outputs or the loss, or create the executor without "
                           "plan_memory",
                           val->name);
    return kiln_tensor_download(tensor_of(ex, v), host, n);
}

kiln_tensor *kiln_executor_get_grad(const kiln_executor *ex, kiln_value param)
{
    const kiln__value *v = kiln__graph_value(ex->g, param);
    return v != NULL ? ex->grads[param] : NULL;
}

uint64_t kiln_executor_planned_bytes(const kiln_executor *ex)
{
    return ex->planned_bytes;
}

kiln_mode kiln_executor_get_mode(const kiln_executor *ex)
{
    return ex->mode;
}
