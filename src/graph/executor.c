/*
 * The executor: runs a model's graph in one mode. It derives the schedule (forward nodes in
 * graph order; in train mode, the loss seed and then the nodes' backward calls in reverse),
 * which values need gradients (reverse-mode autodiff from the op table: no per-op code here),
 * each value's lifetime on that schedule, and lets the planner map values to device buffers.
 * Creation is preflighted: every op's program is built and the plan is checked against the
 * device's memory (suggesting a batch size that fits) before anything is allocated.
 *
 * Activation fusion: with shared buffers (plan_memory, or infer mode), where an activation
 * node (relu) is the only reader of a node's output and that node's op can apply it itself
 * (kiln_op_fuses_activation: conv on its column path), the producer runs with
 * kiln_op_args.activation and writes the activation's output; the activation node runs
 * nothing, forward or backward, and the value between them is never allocated.
 *
 * Step numbering: node i's forward runs at step i; with N nodes, step N seeds d(loss) = 1 and
 * node i's backward runs at step 2N - i. A gradient's first writer marks it fresh (the op sets
 * it, or kiln_op_backward zero-fills it first), so its lifetime starts there; gradients of a
 * fanned-out value accumulate from each later consumer.
 */
#include <math.h>
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
    kiln_tensor **values; /* per value: owned for inputs and node outputs */
    kiln_tensor **grads;  /* per value, train mode; NULL where no gradient flows */
    kiln_tensor **saved;  /* per node, KILN_OP_MAX_SAVED each */
    int32_t *absorbs;     /* per node: the activation node it applies itself, or -1 */
    int32_t *absorbed_by; /* per node: the node applying it as its activation, or -1 */
    bool *kept;           /* per value: readable after forward */
    bool *written;        /* per value: gradient written (or zeroed) in the current backward */
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

/* Whether node i's output shares its input's buffer instead of being computed: a view op
 * (reshape, flatten) over a graph input or a node output. A parameter or buffer is copied,
 * since the model may replace its tensor (loading a checkpoint). */
static bool aliases_input(const kiln_graph *g, size_t i)
{
    const kiln__node *node = &g->nodes[i];
    kiln_value_kind kind = g->values[node->inputs[0]].kind;
    return kiln_op_is_view(node->op) && (kind == KILN_VALUE_INPUT || kind == KILN_VALUE_NODE);
}

/* Infer mode always shares buffers; the others when asked. */
static bool shares(const kiln_executor_options *o)
{
    return o->plan_memory || o->mode == KILN_MODE_INFER;
}

/* Which nodes apply a following activation themselves (absorbs[i] = j, absorbed_by[j] = i):
 * j's op is an activation, its one input is i's output, nothing else reads that value, it is
 * not kept (the loss, or asked for), and i's op can apply the activation for its parameters
 * and input shapes. Only with shared buffers: without them every value stays readable, and a
 * fused one would not exist. */
static void fuse_activations(const kiln_graph *g, bool share, const bool *kept, int32_t *absorbs,
                             int32_t *absorbed_by)
{
    for (size_t i = 0; i < g->n_nodes; i++)
        absorbs[i] = absorbed_by[i] = -1;
    for (size_t j = 0; share && j < g->n_nodes; j++) {
        const kiln__node *act = &g->nodes[j];
        kiln_activation kind = kiln_op_activation(act->op);
        kiln_value in = act->inputs[0];
        int32_t i = g->values[in].producer;
        if (kind == KILN_ACTIVATION_NONE || act->n_inputs != 1 || i < 0 || kept[in] ||
            absorbs[i] >= 0 || absorbed_by[i] >= 0)
            continue;
        size_t readers = 0;
        for (size_t k = 0; k < g->n_nodes; k++)
            for (int m = 0; m < g->nodes[k].n_inputs; m++)
                readers += g->nodes[k].inputs[m] == in;
        const kiln__node *producer = &g->nodes[i];
        kiln_shape shapes[KILN_OP_MAX_INPUTS];
        for (int m = 0; m < producer->n_inputs; m++)
            shapes[m] = g->values[producer->inputs[m]].shape;
        if (readers == 1 && kiln_op_fuses_activation(producer->op, producer->params, shapes,
                                                     producer->n_inputs, kind)) {
            absorbs[i] = (int32_t)j;
            absorbed_by[j] = i;
        }
    }
}

/* The value node i writes: its own output, or that of the activation it absorbs. */
static kiln_value written_value(const kiln_graph *g, const int32_t *absorbs, size_t i)
{
    return absorbs[i] >= 0 ? g->nodes[absorbs[i]].output : g->nodes[i].output;
}

/* Values nobody consumes are the graph's outputs: they stay readable, and so do the loss and
 * the values the caller asked to keep. */
static void keep_flags(const kiln_graph *g, const kiln_executor_options *o, bool *kept)
{
    for (size_t v = 0; v < g->n_values; v++)
        kept[v] = g->values[v].kind == KILN_VALUE_NODE;
    for (size_t i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_inputs; k++)
            kept[g->nodes[i].inputs[k]] = false;
    if (g->loss >= 0)
        kept[g->loss] = true;
    for (size_t i = 0; o->keep != NULL && i < o->n_keep; i++)
        if (o->keep[i] >= 0 && (size_t)o->keep[i] < g->n_values)
            kept[o->keep[i]] = true;
}

/* The shapes a plan is made from: the graph's own, or re-inferred at another batch size. */
typedef struct plan_shapes {
    kiln_shape *values; /* per value */
    kiln_shape *saved;  /* per node, KILN_OP_MAX_SAVED each */
    size_t workspace;   /* the largest workspace of any node */
} plan_shapes;

/* What the planner places: node outputs, saved tensors and gradients. */
typedef enum item_kind { ITEM_VALUE, ITEM_SAVED, ITEM_GRAD } item_kind;

typedef struct item_ref {
    item_kind kind;
    size_t index; /* value, or node * KILN_OP_MAX_SAVED + k */
} item_ref;

/* A memory plan: every planned tensor with its slot, and the sizes of the buffers behind it. */
typedef struct plan {
    kiln__plan_item *items;
    item_ref *refs;
    size_t n_items;
    size_t *slot_bytes;
    size_t n_slots;
    size_t workspace;
    uint64_t bytes;   /* slots and workspace: kiln_executor_planned_bytes */
    uint64_t inputs;  /* the input tensors, allocated beside the plan */
    uint64_t largest; /* the largest single buffer, inputs included */
} plan;

static void extend(kiln__plan_item *it, int32_t step)
{
    if (step > it->end)
        it->end = step;
}

/* What a plan is made for, decided once per executor or estimate (and kept for the plans at
 * other batch sizes an out-of-memory message tries): the mode, whether buffers are shared,
 * which values stay readable (`kept`, per value) and which nodes apply a following activation
 * themselves (`absorbs` and `absorbed_by`, per node: fuse_activations). */
typedef struct schedule {
    kiln_mode mode;
    bool share;
    const bool *kept;
    const int32_t *absorbs, *absorbed_by;
} schedule;

/* Fills `kept` (g->n_values) and `fused` (2 g->n_nodes: absorbs, then absorbed_by) for the
 * options, and returns the schedule over them. */
static schedule schedule_of(const kiln_graph *g, const kiln_executor_options *o, bool *kept,
                            int32_t *fused)
{
    keep_flags(g, o, kept);
    fuse_activations(g, shares(o), kept, fused, fused + g->n_nodes);
    return (schedule){o->mode, shares(o), kept, fused, fused + g->n_nodes};
}

/* Builds the plan items of every planned tensor and returns their count. */
static size_t build_items(const kiln_graph *g, const schedule *s, const bool *grad,
                          const plan_shapes *sh, kiln__plan_item *items, item_ref *refs,
                          size_t *item_of_value)
{
    const bool *kept = s->kept;
    const int32_t *absorbs = s->absorbs, *absorbed_by = s->absorbed_by;
    bool train = s->mode == KILN_MODE_TRAIN;
    int32_t last = (int32_t)(2 * g->n_nodes + 1); /* past every step: read by the caller */
    size_t n = 0;
    for (size_t v = 0; v < g->n_values; v++)
        item_of_value[v] = SIZE_MAX;
    for (size_t i = 0; i < g->n_nodes; i++) {
        const kiln__node *node = &g->nodes[i];
        if (absorbed_by[i] >= 0) {
            /* Its producer wrote its output; its input is never materialised. */
            item_of_value[node->inputs[0]] = item_of_value[node->output];
            continue;
        }
        if (aliases_input(g, i)) {
            /* The output is the input's buffer: it lives as long as either is needed. */
            size_t in = item_of_value[node->inputs[0]];
            item_of_value[node->output] = in;
            if (in != SIZE_MAX && kept[node->output])
                items[in].end = last;
            if (in != SIZE_MAX && train && grad[node->output])
                extend(&items[in], step_backward(g, i));
            continue;
        }
        kiln_value out = written_value(g, absorbs, i);
        kiln__plan_item *it = &items[n];
        it->bytes = (size_t)kiln_shape_count(&sh->values[out]) * 4;
        it->start = it->end = (int32_t)i;
        if (kept[out])
            it->end = last;
        if (train && grad[out])
            extend(it, step_backward(g, i)); /* backward reads its output */
        refs[n] = (item_ref){ITEM_VALUE, out};
        item_of_value[out] = n++;
        for (int k = 0; k < kiln_op_n_saved(node->op); k++) {
            kiln__plan_item *sv = &items[n];
            sv->bytes = (size_t)kiln_shape_count(&sh->saved[i * KILN_OP_MAX_SAVED + k]) * 4;
            sv->start = sv->end = (int32_t)i;
            if (train && grad[out])
                sv->end = step_backward(g, i);
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
        int32_t producer = g->values[v].producer;
        if (!grad[v] || (producer >= 0 && absorbs[producer] >= 0))
            continue; /* no gradient, or a fused pre-activation: its producer masks instead */
        kiln__plan_item *it = &items[n];
        it->bytes = (size_t)kiln_shape_count(&sh->values[v]) * 4;
        it->start = INT32_MAX;
        it->end = -1;
        if ((kiln_value)v == g->loss)
            it->start = (int32_t)g->n_nodes;
        for (size_t j = 0; j < g->n_nodes; j++) { /* from the first backward writer */
            const kiln__node *node = &g->nodes[j];
            for (int k = 0; k < node->n_inputs; k++)
                if ((size_t)node->inputs[k] == v && grad[node->output] &&
                    kiln_op_input_differentiable(node->op, k) && step_backward(g, j) < it->start)
                    it->start = step_backward(g, j);
        }
        /* Read until its producer's backward; for a fused activation's output, the backward
         * of the node that applied it. */
        if (producer >= 0 && absorbed_by[producer] >= 0)
            producer = absorbed_by[producer];
        it->end = producer >= 0 ? step_backward(g, (size_t)producer) : last;
        if (it->end < it->start)
            it->end = it->start;
        refs[n++] = (item_ref){ITEM_GRAD, v};
    }
    return n;
}

static void shapes_free(kiln_context *ctx, plan_shapes *sh)
{
    kiln__free(ctx, sh->values);
    kiln__free(ctx, sh->saved);
    memset(sh, 0, sizeof *sh);
}

/* The graph's shapes with every input whose leading dimension is `batch` changed to
 * `new_batch`, the nodes re-inferred from them (so the graph's own shapes when the two are
 * equal). Fails, with the op's message, where an op cannot take the new batch size (a reshape
 * to a fixed batch, say). */
static kiln_status shapes_at_batch(kiln_graph *g, int64_t batch, int64_t new_batch, plan_shapes *sh)
{
    kiln_status rc = KILN_OK;
    kiln_context *ctx = g->ctx;
    sh->values = kiln__calloc(ctx, g->n_values + 1, sizeof *sh->values);
    sh->saved = kiln__calloc(ctx, g->n_nodes * KILN_OP_MAX_SAVED + 1, sizeof *sh->saved);
    sh->workspace = 0;
    if (sh->values == NULL || sh->saved == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory planning the executor");
    for (size_t v = 0; v < g->n_values; v++) {
        sh->values[v] = g->values[v].shape;
        if (new_batch != batch && g->values[v].kind == KILN_VALUE_INPUT &&
            sh->values[v].ndim >= 1 && sh->values[v].dim[0] == batch)
            sh->values[v].dim[0] = new_batch;
    }
    for (size_t i = 0; i < g->n_nodes; i++) {
        const kiln__node *node = &g->nodes[i];
        kiln_shape *saved = &sh->saved[i * KILN_OP_MAX_SAVED];
        size_t ws = node->workspace_bytes;
        if (new_batch == batch) {
            memcpy(saved, node->saved, sizeof node->saved);
        } else {
            kiln_shape in[KILN_OP_MAX_INPUTS];
            for (int k = 0; k < node->n_inputs; k++)
                in[k] = sh->values[node->inputs[k]];
            KILN_CHECK(kiln_op_infer(ctx, node->op, node->params, in, node->n_inputs,
                                     &sh->values[node->output], saved));
            ws = kiln_op_workspace_bytes(node->op, node->params, in, node->n_inputs);
        }
        sh->workspace = ws > sh->workspace ? ws : sh->workspace;
    }
cleanup:
    if (rc != KILN_OK)
        shapes_free(ctx, sh);
    return rc;
}

static void plan_free(kiln_context *ctx, plan *p)
{
    kiln__free(ctx, p->items);
    kiln__free(ctx, p->refs);
    kiln__free(ctx, p->slot_bytes);
    memset(p, 0, sizeof *p);
}

/* The batch size: the leading dimension of the graph's first input (0 when it has none). */
static int64_t batch_of(const kiln_graph *g)
{
    for (size_t v = 0; v < g->n_values; v++)
        if (g->values[v].kind == KILN_VALUE_INPUT && g->values[v].shape.ndim >= 1)
            return g->values[v].shape.dim[0];
    return 0;
}

/* Plans the executor of schedule `s` at batch size `new_batch` (the graph's own when 0)
 * without allocating any device memory: the one planning path of both creation and
 * estimates. */
static kiln_status plan_at_batch(kiln_model *m, const schedule *s, int64_t new_batch, plan *p)
{
    kiln_status rc = KILN_OK;
    kiln_graph *g = m->graph;
    kiln_context *ctx = g->ctx;
    int64_t batch = batch_of(g);
    plan_shapes sh = {0};
    memset(p, 0, sizeof *p);
    size_t cap = g->n_nodes * (1 + KILN_OP_MAX_SAVED) + g->n_values + 1;
    size_t *item_of_value = kiln__calloc(ctx, g->n_values + 1, sizeof *item_of_value);
    bool *grad = gradient_flags(g);
    p->items = kiln__calloc(ctx, cap, sizeof *p->items);
    p->refs = kiln__calloc(ctx, cap, sizeof *p->refs);
    if (p->items == NULL || p->refs == NULL || item_of_value == NULL || grad == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory planning the executor");
    KILN_CHECK(shapes_at_batch(g, batch, new_batch > 0 ? new_batch : batch, &sh));
    if (s->mode != KILN_MODE_TRAIN)
        memset(grad, 0, g->n_values * sizeof *grad);
    p->n_items = build_items(g, s, grad, &sh, p->items, p->refs, item_of_value);
    KILN_CHECK(kiln__plan_assign(ctx, p->items, p->n_items, s->share, &p->slot_bytes, &p->n_slots));
    p->workspace = sh.workspace;
    p->bytes = p->workspace;
    p->largest = p->workspace;
    for (size_t k = 0; k < p->n_slots; k++) {
        p->bytes += p->slot_bytes[k];
        p->largest = p->slot_bytes[k] > p->largest ? p->slot_bytes[k] : p->largest;
    }
    for (size_t v = 0; v < g->n_values; v++) {
        if (g->values[v].kind != KILN_VALUE_INPUT)
            continue;
        uint64_t b =
            (uint64_t)kiln_shape_count(&sh.values[v]) * kiln_dtype_size(g->values[v].dtype);
        p->inputs += b;
        p->largest = b > p->largest ? b : p->largest;
    }
cleanup:
    kiln__free(ctx, item_of_value);
    kiln__free(ctx, grad);
    shapes_free(ctx, &sh);
    if (rc != KILN_OK)
        plan_free(ctx, p);
    return rc;
}

/* Whether a plan fits on the device beside the `held` bytes already allocated there. */
static bool plan_fits(const kiln_device_info *info, uint64_t held, const plan *p)
{
    uint64_t need = p->bytes + p->inputs;
    return held <= info->global_mem_bytes && need <= info->global_mem_bytes - held &&
           p->largest <= info->max_alloc_bytes;
}

/* The largest batch size below `batch` whose plan fits, by bisection over re-inferred plans
 * (memory is not quite linear in the batch size: parameter gradients and some workspaces
 * are fixed). 0 when even batch size 1 does not fit, -1 when the graph cannot be re-inferred
 * at another batch size. */
static int64_t largest_batch(kiln_model *m, const schedule *s, int64_t batch, uint64_t held)
{
    const kiln_device_info *info = kiln_device_get_info(m->dev);
    int64_t lo = 0, hi = batch - 1; /* lo fits (0: nothing does); nothing above hi fits */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo + 1) / 2;
        plan p;
        if (plan_at_batch(m, s, mid, &p) != KILN_OK)
            return -1;
        bool fits = plan_fits(info, held, &p);
        plan_free(m->graph->ctx, &p);
        if (fits)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

static const char *mode_name(kiln_mode mode)
{
    return mode == KILN_MODE_TRAIN ? "train" : mode == KILN_MODE_EVAL ? "eval" : "infer";
}

/* Refuses, before anything is allocated, a plan that cannot fit on the device: one
 * KILN_ERR_DEVICE_OOM saying what is needed, what the device has, and the largest batch size
 * that fits. */
static kiln_status check_fits(kiln_model *m, const schedule *s, const plan *p)
{
    kiln_context *ctx = m->graph->ctx;
    const kiln_device_info *info = kiln_device_get_info(m->dev);
    uint64_t held = kiln_device_get_allocated_bytes(m->dev);
    if (plan_fits(info, held, p))
        return KILN_OK;
    char need[32], planned[32], inputs[32], has[32], held_text[32], largest[32], max_alloc[32];
    int64_t batch = batch_of(m->graph);
    int64_t best = batch > 1 ? largest_batch(m, s, batch, held) : 0;
    kiln__error(ctx, KILN_ERR_DEVICE_OOM, "kiln_executor_create",
                "the %s-mode executor needs %s of device memory (%s planned for activations, "
                "saved tensors, gradients and workspace, plus %s of inputs) beside the %s "
                "already allocated (parameters, buffers, other executors), but device '%s' "
                "has %s of global memory",
                mode_name(s->mode), kiln_format_bytes(p->bytes + p->inputs, need, sizeof need),
                kiln_format_bytes(p->bytes, planned, sizeof planned),
                kiln_format_bytes(p->inputs, inputs, sizeof inputs),
                kiln_format_bytes(held, held_text, sizeof held_text), info->name,
                kiln_format_bytes(info->global_mem_bytes, has, sizeof has));
    if (p->largest > info->max_alloc_bytes)
        kiln__error_append(ctx,
                           ", and its largest buffer (%s) exceeds the device's %s limit "
                           "for one allocation",
                           kiln_format_bytes(p->largest, largest, sizeof largest),
                           kiln_format_bytes(info->max_alloc_bytes, max_alloc, sizeof max_alloc));
    if (best > 0) {
        kiln__error_append(ctx,
                           ". The inputs have batch size %lld; use a batch size of at "
                           "most %lld, the largest that fits",
                           (long long)batch, (long long)best);
    } else if (best < 0) {
        /* The graph pins its batch size somewhere; scale linearly as a rough guide. */
        uint64_t avail = held < info->global_mem_bytes ? info->global_mem_bytes - held : 0;
        double guess = floor((double)batch * (double)avail / (double)(p->bytes + p->inputs));
        kiln__error_append(ctx,
                           ". The inputs have batch size %lld; use a batch size of "
                           "about %lld or less",
                           (long long)batch, (long long)(guess >= 1 ? guess : 1));
    } else if (batch >= 1) {
        kiln__error_append(ctx, ". Even batch size 1 does not fit: use a smaller model or a "
                                "device with more memory");
    } else {
        kiln__error_append(ctx, ". Use a smaller model or a device with more memory");
    }
    if (!s->share)
        kiln__error_append(ctx, " (plan_memory, which shares buffers between values, needs "
                                "less)");
    return KILN_ERR_DEVICE_OOM;
}

/* Builds every program the graph's ops use (and in train mode the executor's gradient fills),
 * so that an op the device cannot compile fails now, naming its node, not during a step. */
static kiln_status prepare_programs(kiln_graph *g, kiln_device *dev, kiln_mode mode)
{
    const char *device = kiln_device_get_info(dev)->name;
    for (size_t i = 0; i <= g->n_nodes; i++) {
        bool fills = i == g->n_nodes;
        if (fills && mode != KILN_MODE_TRAIN)
            break;
        const char *program = fills ? "fill" : kiln_op_program_name(g->nodes[i].op);
        bool seen = program == NULL;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(program, kiln_op_program_name(g->nodes[j].op)) == 0;
        if (seen)
            continue;
        kiln_status rc = kiln_device_prepare(dev, program, NULL);
        if (rc == KILN_OK)
            continue;
        char *detail = kiln__strdup(g->ctx, kiln_context_last_error(g->ctx));
        if (fills)
            kiln__error(g->ctx, rc, "kiln_executor_create",
                        "the gradient fills of a train-mode executor cannot run on device "
                        "'%s': program 'fill' failed to build: %s",
                        device, detail != NULL ? detail : "(out of memory)");
        else
            kiln__error(g->ctx, rc, "kiln_executor_create",
                        "node '%s' (op '%s') cannot run on device '%s': its program '%s' "
                        "failed to build: %s",
                        g->nodes[i].name, kiln_op_name(g->nodes[i].op), device, program,
                        detail != NULL ? detail : "(out of memory)");
        kiln__free(g->ctx, detail);
        return rc;
    }
    return KILN_OK;
}

/* Creates the tensors of every planned item on its slot's buffer. */
static kiln_status bind_items(kiln_executor *ex, const plan *p)
{
    kiln_graph *g = ex->g;
    kiln_status rc = KILN_OK;
    for (size_t i = 0; rc == KILN_OK && i < p->n_items; i++) {
        kiln_buffer *buffer = ex->slots[p->items[i].slot];
        const item_ref *r = &p->refs[i];
        if (r->kind == ITEM_SAVED) {
            size_t node = r->index / KILN_OP_MAX_SAVED, k = r->index % KILN_OP_MAX_SAVED;
            rc = kiln__tensor_wrap(ex->dev, buffer, &g->nodes[node].saved[k], KILN_F32,
                                   g->nodes[node].name, &ex->saved[r->index]);
        } else {
            const kiln__value *v = &g->values[r->index];
            kiln_tensor **slot =
                r->kind == ITEM_VALUE ? &ex->values[r->index] : &ex->grads[r->index];
            rc = kiln__tensor_wrap(ex->dev, buffer, &v->shape, KILN_F32, v->name, slot);
        }
    }
    return rc;
}

/* Allocates the input tensors and the planned buffers, and binds the planned tensors. */
static kiln_status allocate(kiln_executor *ex, const plan *p)
{
    kiln_status rc = KILN_OK;
    kiln_graph *g = ex->g;
    kiln_context *ctx = g->ctx;
    for (size_t v = 0; v < g->n_values; v++) {
        const kiln__value *val = &g->values[v];
        if (val->kind == KILN_VALUE_INPUT)
            KILN_CHECK(
                kiln_tensor_create(ex->dev, &val->shape, val->dtype, val->name, &ex->values[v]));
    }
    ex->slots = kiln__calloc(ctx, p->n_slots + 1, sizeof *ex->slots);
    if (ex->slots == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory planning the executor");
    ex->n_slots = p->n_slots;
    for (size_t s = 0; s < ex->n_slots; s++) {
        char purpose[64];
        snprintf(purpose, sizeof purpose, "activation buffer %zu of %zu", s + 1, ex->n_slots);
        KILN_CHECK(kiln_buffer_create(ex->dev, p->slot_bytes[s], purpose, &ex->slots[s]));
    }
    KILN_CHECK(bind_items(ex, p));
    for (size_t i = 0; i < g->n_nodes; i++) { /* in graph order: a view of a view works */
        if (!aliases_input(g, i))
            continue;
        const kiln__node *node = &g->nodes[i];
        const kiln__value *out = &g->values[node->output];
        kiln_tensor *in = ex->values[node->inputs[0]];
        KILN_CHECK(kiln__tensor_wrap(ex->dev, in->buffer, &out->shape, KILN_F32, out->name,
                                     &ex->values[node->output]));
    }
    if (p->workspace > 0)
        KILN_CHECK(kiln_buffer_create(ex->dev, p->workspace, "op workspace", &ex->workspace));
    ex->planned_bytes = p->bytes;
cleanup:
    return rc;
}

/* The checks creation and estimates share. */
static kiln_status check_model(kiln_model *m, const kiln_executor_options *o, const char *fn)
{
    kiln_graph *g = m->graph;
    if (o->mode == KILN_MODE_TRAIN && g->loss < 0)
        return kiln__error(g->ctx, KILN_ERR_INVALID_ARGUMENT, fn,
                           "train mode needs a loss: call kiln_graph_set_loss");
    if (m->n_state != g->n_values)
        return kiln__error(g->ctx, KILN_ERR_INVALID_ARGUMENT, fn,
                           "the graph changed after its model was created; create the model "
                           "from the finished graph");
    return KILN_OK;
}

kiln_status kiln_executor_estimate_bytes(kiln_model *m, const kiln_executor_options *o,
                                         uint64_t *out)
{
    if (m == NULL || o == NULL || out == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    *out = 0;
    kiln_status rc = check_model(m, o, __func__);
    if (rc != KILN_OK)
        return rc;
    kiln_context *ctx = m->graph->ctx;
    bool *kept = kiln__calloc(ctx, m->graph->n_values + 1, sizeof *kept);
    int32_t *fused = kiln__calloc(ctx, 2 * m->graph->n_nodes + 1, sizeof *fused);
    if (kept == NULL || fused == NULL) {
        kiln__free(ctx, kept);
        kiln__free(ctx, fused);
        return kiln__error(ctx, KILN_ERR_NO_MEMORY, __func__, "out of memory");
    }
    schedule s = schedule_of(m->graph, o, kept, fused);
    plan p;
    rc = plan_at_batch(m, &s, 0, &p);
    if (rc == KILN_OK)
        *out = p.bytes;
    plan_free(ctx, &p);
    kiln__free(ctx, kept);
    kiln__free(ctx, fused);
    return rc;
}

kiln_status kiln_executor_create(kiln_model *m, const kiln_executor_options *o, kiln_executor **out)
{
    kiln_status rc = KILN_OK;
    if (m == NULL || o == NULL || out == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    *out = NULL;
    kiln_graph *g = m->graph;
    kiln_context *ctx = g->ctx;
    rc = check_model(m, o, __func__);
    if (rc != KILN_OK)
        return rc;
    plan p = {0};
    kiln_executor *ex = kiln__calloc(ctx, 1, sizeof *ex);
    if (ex == NULL)
        return kiln__error(ctx, KILN_ERR_NO_MEMORY, __func__, "out of memory");
    ex->model = m;
    ex->g = g;
    ex->dev = m->dev;
    ex->mode = o->mode;
    ex->plan = shares(o);
    ex->values = kiln__calloc(ctx, g->n_values, sizeof *ex->values);
    ex->grads = kiln__calloc(ctx, g->n_values, sizeof *ex->grads);
    ex->kept = kiln__calloc(ctx, g->n_values, sizeof *ex->kept);
    ex->written = kiln__calloc(ctx, g->n_values, sizeof *ex->written);
    ex->saved = kiln__calloc(ctx, g->n_nodes * KILN_OP_MAX_SAVED + 1, sizeof *ex->saved);
    ex->absorbs = kiln__calloc(ctx, 2 * g->n_nodes + 1, sizeof *ex->absorbs);
    if (ex->values == NULL || ex->grads == NULL || ex->kept == NULL || ex->written == NULL ||
        ex->saved == NULL || ex->absorbs == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory creating an executor");
    ex->absorbed_by = ex->absorbs + g->n_nodes;
    schedule s = schedule_of(g, o, ex->kept, ex->absorbs);
    /* Preflight: every op builds on this device and the plan fits, before any allocation. */
    KILN_CHECK(prepare_programs(g, ex->dev, ex->mode));
    KILN_CHECK(plan_at_batch(m, &s, 0, &p));
    KILN_CHECK(check_fits(m, &s, &p));
    KILN_CHECK(allocate(ex, &p));
    *out = ex;
    ex = NULL;
cleanup:
    plan_free(ctx, &p);
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
    kiln__free(ctx, ex->absorbs);
    kiln__free(ctx, ex->kept);
    kiln__free(ctx, ex->written);
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

/* The tensor of input `input`, or NULL with the error recorded. */
static kiln_tensor *input_tensor(const kiln_executor *ex, kiln_value input, const char *function)
{
    const kiln__value *v = kiln__graph_value(ex->g, input);
    if (v == NULL || v->kind != KILN_VALUE_INPUT) {
        kiln__error(ex->g->ctx, KILN_ERR_INVALID_ARGUMENT, function,
                    "value %d is not an input of the graph", (int)input);
        return NULL;
    }
    return ex->values[input];
}

kiln_status kiln_executor_set_input(kiln_executor *ex, kiln_value input, const void *host,
                                    int64_t n)
{
    kiln_tensor *t = input_tensor(ex, input, __func__);
    return t != NULL ? kiln_tensor_upload(t, host, n) : KILN_ERR_INVALID_ARGUMENT;
}

kiln_status kiln_executor_set_input_async(kiln_executor *ex, kiln_value input, const void *host,
                                          int64_t n, kiln_transfer **out_transfer)
{
    if (out_transfer != NULL)
        *out_transfer = NULL;
    kiln_tensor *t = input_tensor(ex, input, __func__);
    return t != NULL ? kiln_tensor_upload_async(t, host, n, out_transfer)
                     : KILN_ERR_INVALID_ARGUMENT;
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
    args->output = ex->values[written_value(ex->g, ex->absorbs, i)];
    args->saved = &ex->saved[i * KILN_OP_MAX_SAVED];
    args->workspace = ex->workspace;
    if (ex->absorbs[i] >= 0)
        args->activation = kiln_op_activation(ex->g->nodes[ex->absorbs[i]].op);
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
        if (aliases_input(ex->g, i) || ex->absorbed_by[i] >= 0)
            continue; /* its output already holds its input's elements, or its producer
                       * applied it */
        node_args(ex, i, step, inputs, &args);
        kiln_status rc = kiln_op_forward(ex->dev, ex->g->nodes[i].op, &args);
        if (rc != KILN_OK)
            return node_failed(ex, i, "forward", rc);
    }
    ex->last_step = step;
    return KILN_OK;
}

kiln_status kiln_executor_backward(kiln_executor *ex)
{
    kiln_graph *g = ex->g;
    if (ex->mode != KILN_MODE_TRAIN)
        return kiln__error(g->ctx, KILN_ERR_INVALID_ARGUMENT, __func__,
                           "backward needs a train-mode executor (eval and infer keep no tape)");
    memset(ex->written, 0, g->n_values * sizeof *ex->written);
    if (ex->grads[g->loss] == NULL)
        return KILN_OK; /* the loss depends on no parameter: there is nothing to compute */
    kiln_status rc = kiln_op_fill(ex->dev, ex->grads[g->loss], 1.0f);
    if (rc != KILN_OK)
        return rc;
    ex->written[g->loss] = true;
    kiln_tensor *inputs[KILN_OP_MAX_INPUTS], *grads[KILN_OP_MAX_INPUTS];
    kiln_op_args args;
    for (size_t i = g->n_nodes; i-- > 0;) {
        const kiln__node *node = &g->nodes[i];
        kiln_value out = written_value(g, ex->absorbs, i);
        if (ex->grads[out] == NULL || !kiln_op_has_backward(node->op) || ex->absorbed_by[i] >= 0)
            continue;
        node_args(ex, i, ex->last_step, inputs, &args);
        bool any = false;
        for (int k = 0; k < node->n_inputs; k++) {
            kiln_value in = node->inputs[k];
            grads[k] = kiln_op_input_differentiable(node->op, k) ? ex->grads[in] : NULL;
            if (grads[k] != NULL && !ex->written[in]) {
                args.grad_fresh |= 1u << k; /* the op writes it, or zero-fills it first */
                ex->written[in] = true;
            }
            any = any || grads[k] != NULL;
        }
        if (!any)
            continue;
        args.grad_output = ex->grads[out];
        args.grad_inputs = grads;
        rc = kiln_op_backward(ex->dev, node->op, &args);
        if (rc != KILN_OK)
            return node_failed(ex, i, "backward", rc);
    }
    return KILN_OK;
}

/* The tensor holding readable value v, or NULL with the error recorded. */
static kiln_tensor *readable_tensor(const kiln_executor *ex, kiln_value v, const char *function)
{
    const kiln__value *val = kiln__graph_value(ex->g, v);
    if (val == NULL) {
        kiln__error(ex->g->ctx, KILN_ERR_INVALID_ARGUMENT, function, "no value %d", (int)v);
        return NULL;
    }
    if (val->kind == KILN_VALUE_NODE && ex->plan && !ex->kept[v]) {
        kiln__error(ex->g->ctx, KILN_ERR_INVALID_ARGUMENT, function,
                    "'%s' is an intermediate value whose buffer the memory plan reuses; read "
                    "graph outputs or the loss, or create the executor without plan_memory",
                    val->name);
        return NULL;
    }
    return tensor_of(ex, v);
}

kiln_status kiln_executor_read(kiln_executor *ex, kiln_value v, void *host, int64_t n)
{
    kiln_tensor *t = readable_tensor(ex, v, __func__);
    return t != NULL ? kiln_tensor_download(t, host, n) : KILN_ERR_INVALID_ARGUMENT;
}

kiln_status kiln_executor_read_async(kiln_executor *ex, kiln_value v, void *host, int64_t n,
                                     kiln_transfer **out_transfer)
{
    if (out_transfer != NULL)
        *out_transfer = NULL;
    kiln_tensor *t = readable_tensor(ex, v, __func__);
    return t != NULL ? kiln_tensor_download_async(t, host, n, out_transfer)
                     : KILN_ERR_INVALID_ARGUMENT;
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

kiln_model *kiln_executor_get_model(const kiln_executor *ex)
{
    return ex->model;
}
