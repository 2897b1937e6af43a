/*
 * The model-spec builder: defaults and names of the layer and loss kinds, validation of every
 * spec value, and the translation of a kiln_spec into graph inputs, layer-builder calls
 * (layers.c) and loss nodes. Every error is prefixed with the layer's index, name and kind and
 * names the shapes involved. No op logic lives here: shapes that the op table rejects come
 * back with the op's own message behind the layer's prefix.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "graph/graph.h"
#include "kiln/spec.h"

static const char *const LAYER_NAMES[] = {
#define KILN__LAYER_NAME(value, name) #name,
    KILN_LAYER_KIND_LIST(KILN__LAYER_NAME)
#undef KILN__LAYER_NAME
};

static const char *const LOSS_NAMES[] = {
#define KILN__LOSS_NAME(value, name) #name,
    KILN_LOSS_KIND_LIST(KILN__LOSS_NAME)
#undef KILN__LOSS_NAME
};

enum { SHAPE_TEXT = 160, KNOWN_TEXT = 600 };

const char *kiln_layer_kind_name(kiln_layer_kind kind)
{
    return (unsigned)kind < KILN_LAYER_KIND_COUNT ? LAYER_NAMES[kind] : "?";
}

kiln_status kiln_layer_kind_from_name(const char *name, kiln_layer_kind *out)
{
    for (int k = 0; name != NULL && k < KILN_LAYER_KIND_COUNT; k++) {
        if (strcmp(name, LAYER_NAMES[k]) == 0) {
            *out = (kiln_layer_kind)k;
            return KILN_OK;
        }
    }
    return KILN_ERR_NOT_FOUND;
}

const char *kiln_loss_kind_name(kiln_loss_kind kind)
{
    return (unsigned)kind < KILN_LOSS_KIND_COUNT ? LOSS_NAMES[kind] : "?";
}

kiln_status kiln_loss_kind_from_name(const char *name, kiln_loss_kind *out)
{
    for (int k = 0; name != NULL && k < KILN_LOSS_KIND_COUNT; k++) {
        if (strcmp(name, LOSS_NAMES[k]) == 0) {
            *out = (kiln_loss_kind)k;
            return KILN_OK;
        }
    }
    return KILN_ERR_NOT_FOUND;
}

void kiln_spec_init(kiln_spec *spec)
{
    memset(spec, 0, sizeof *spec);
    spec->batch_size = 1;
    kiln_loss_spec_init(&spec->loss, KILN_LOSS_NONE);
}

void kiln_loss_spec_init(kiln_loss_spec *loss, kiln_loss_kind kind)
{
    memset(loss, 0, sizeof *loss);
    loss->kind = kind;
    loss->label_smoothing = 0.0f;
    loss->smooth = 1.0f;
}

void kiln_layer_spec_init(kiln_layer_spec *layer, kiln_layer_kind kind)
{
    memset(layer, 0, sizeof *layer);
    layer->kind = kind;
    switch (kind) {
    case KILN_LAYER_DENSE:
        layer->dense.bias = true;
        layer->dense.init = KILN_INIT_HE_UNIFORM;
        break;
    case KILN_LAYER_CONV2D:
    case KILN_LAYER_CONV3D:
        for (int a = 0; a < 3; a++) {
            layer->conv.stride[a] = 1;
            layer->conv.dilation[a] = 1;
        }
        layer->conv.bias = true;
        layer->conv.init = KILN_INIT_HE_UNIFORM;
        break;
    case KILN_LAYER_BATCHNORM:
        layer->batchnorm.momentum = 0.1f;
        layer->batchnorm.eps = 1e-5f;
        break;
    case KILN_LAYER_DROPOUT:
        layer->dropout.rate = 0.5f;
        break;
    case KILN_LAYER_LEAKY_RELU:
        layer->leaky_relu.slope = 0.01f;
        break;
    case KILN_LAYER_SOFTMAX:
    case KILN_LAYER_CONCAT:
    case KILN_LAYER_ADD:
        layer->axis.axis = 1;
        break;
    default: /* pools and upsampling: every key is required or 0; the rest take none */
        break;
    }
}

/* ---- the build ---- */

typedef struct builder {
    kiln_context *ctx;
    const kiln_spec *spec;
    kiln_graph *g;
    char (*names)[KILN_SPEC_MAX_NAME + 1]; /* per layer, defaults filled in */
    kiln_value *outputs;                   /* per layer, once built */
    kiln_value input;
} builder;

static const char *kind_of(const builder *b, size_t i)
{
    return kiln_layer_kind_name(b->spec->layers[i].kind);
}

static const char *shape_text(const kiln_graph *g, kiln_value v, char *out)
{
    return kiln_shape_format(kiln_graph_value_shape(g, v), out, SHAPE_TEXT);
}

/* Records "layer I 'NAME' (KIND): <message>" and returns `status`. */
static kiln_status layer_fail(const builder *b, size_t i, kiln_status status, const char *fmt, ...)
    KILN__PRINTF(4, 5);
static kiln_status layer_fail(const builder *b, size_t i, kiln_status status, const char *fmt, ...)
{
    char why[768];
    va_list args;
    va_start(args, fmt);
    vsnprintf(why, sizeof why, fmt, args);
    va_end(args);
    return kiln__error(b->ctx, status, "kiln_spec_build", "layer %zu '%s' (%s): %s", i, b->names[i],
                       kind_of(b, i), why);
}

/* Puts the layer's prefix and its input's shape in front of a builder's own message, less
 * the "kiln_graph_op: node 'NAME': " that would repeat the layer's name. */
static kiln_status layer_wrap(const builder *b, size_t i, kiln_value x, kiln_status rc)
{
    char text[SHAPE_TEXT], repeat[KILN_SPEC_MAX_NAME + 32];
    char *detail = kiln__strdup(b->ctx, kiln_context_last_error(b->ctx));
    const char *why = detail != NULL ? detail : "(out of memory)";
    int n = snprintf(repeat, sizeof repeat, "kiln_graph_op: node '%s': ", b->names[i]);
    if (n > 0 && strncmp(why, repeat, (size_t)n) == 0)
        why += n;
    layer_fail(b, i, rc, "input %s: %s", shape_text(b->g, x, text), why);
    kiln__free(b->ctx, detail);
    return rc;
}

static bool is_reserved(const char *name)
{
    return strcmp(name, "input") == 0 || strcmp(name, "target") == 0 || strcmp(name, "loss") == 0;
}

/* Fills b->names and rejects empty, long, dotted, reserved and duplicate names. */
static kiln_status resolve_names(builder *b)
{
    const kiln_spec *s = b->spec;
    for (size_t i = 0; i < s->n_layers; i++) {
        const kiln_layer_spec *l = &s->layers[i];
        if ((unsigned)l->kind >= KILN_LAYER_KIND_COUNT)
            return kiln__error(b->ctx, KILN_ERR_INVALID_ARGUMENT, "kiln_spec_build",
                               "layer %zu: unknown layer kind %d", i, (int)l->kind);
        if (l->name == NULL) {
            snprintf(b->names[i], sizeof b->names[i], "%s%zu", kind_of(b, i), i);
            continue;
        }
        size_t length = strlen(l->name);
        /* Until the name is known to be usable, errors show the default name. */
        snprintf(b->names[i], sizeof b->names[i], "%s%zu", kind_of(b, i), i);
        if (length == 0)
            return layer_fail(b, i, KILN_ERR_INVALID_ARGUMENT,
                              "the name is empty; leave it out for the default '%s'", b->names[i]);
        if (length > KILN_SPEC_MAX_NAME)
            return layer_fail(b, i, KILN_ERR_INVALID_ARGUMENT,
                              "the name '%.40s...' has %zu characters; the limit is %d", l->name,
                              length, KILN_SPEC_MAX_NAME);
        if (strchr(l->name, '.') != NULL)
            return layer_fail(b, i, KILN_ERR_INVALID_ARGUMENT,
                              "the name '%s' contains '.', which separates a layer from its "
                              "parameters ('%s.weight' would be ambiguous); use '_' or '-'",
                              l->name, l->name);
        if (is_reserved(l->name))
            return layer_fail(b, i, KILN_ERR_INVALID_ARGUMENT,
                              "the name '%s' is reserved for the model's %s; choose another",
                              l->name, l->name);
        memcpy(b->names[i], l->name, length + 1);
    }
    for (size_t i = 0; i < s->n_layers; i++) {
        for (size_t j = 0; j < i; j++) {
            if (strcmp(b->names[i], b->names[j]) == 0)
                return layer_fail(b, i, KILN_ERR_INVALID_ARGUMENT,
                                  "the name '%s' is already used by layer %zu (%s); names "
                                  "must be unique",
                                  b->names[i], j, kind_of(b, j));
        }
    }
    return KILN_OK;
}

/* "input, flatten0, dense1, ..." : the names layer i may use, shortened past KNOWN_TEXT. */
static const char *known_names(const builder *b, size_t i, char *out)
{
    size_t used = (size_t)snprintf(out, KNOWN_TEXT, "input");
    for (size_t j = 0; j < i; j++) {
        size_t need = strlen(b->names[j]) + 2;
        if (used + need + 16 >= KNOWN_TEXT) {
            snprintf(out + used, KNOWN_TEXT - used, ", ... (%zu more)", i - j);
            break;
        }
        used += (size_t)snprintf(out + used, KNOWN_TEXT - used, ", %s", b->names[j]);
    }
    return out;
}

static bool is_merge(kiln_layer_kind kind)
{
    return kind == KILN_LAYER_CONCAT || kind == KILN_LAYER_ADD;
}

/* The values layer i reads: its named inputs, or the previous layer's output. */
static kiln_status resolve_inputs(const builder *b, size_t i, kiln_value *inputs, int *n)
{
    const kiln_layer_spec *l = &b->spec->layers[i];
    char known[KNOWN_TEXT];
    if (l->n_inputs < 0 || l->n_inputs > KILN_SPEC_MAX_INPUTS)
        return layer_fail(b, i, KILN_ERR_INVALID_ARGUMENT, "%d input names; the limit is %d",
                          l->n_inputs, KILN_SPEC_MAX_INPUTS);
    if (is_merge(l->kind) && l->n_inputs < 2)
        return layer_fail(
            b, i, KILN_ERR_INVALID_ARGUMENT, "needs `inputs`: 2 to %d named layers to %s, got %d",
            KILN_SPEC_MAX_INPUTS, l->kind == KILN_LAYER_ADD ? "sum" : "join", l->n_inputs);
    if (!is_merge(l->kind) && l->n_inputs > 1)
        return layer_fail(b, i, KILN_ERR_INVALID_ARGUMENT,
                          "takes one input, got %d names (concat and add take several)",
                          l->n_inputs);
    if (l->n_inputs == 0) {
        inputs[0] = i == 0 ? b->input : b->outputs[i - 1];
        *n = 1;
        return KILN_OK;
    }
    for (int k = 0; k < l->n_inputs; k++) {
        const char *want = l->inputs[k];
        if (want == NULL)
            return layer_fail(b, i, KILN_ERR_INVALID_ARGUMENT, "input name %d is NULL", k);
        inputs[k] = -1;
        if (strcmp(want, "input") == 0)
            inputs[k] = b->input;
        for (size_t j = 0; inputs[k] < 0 && j < b->spec->n_layers; j++) {
            if (strcmp(want, b->names[j]) != 0)
                continue;
            if (j >= i)
                return layer_fail(b, i, KILN_ERR_INVALID_ARGUMENT,
                                  "input '%s' is layer %zu, %s; a layer can only use earlier "
                                  "layers",
                                  want, j, j == i ? "this layer itself" : "which comes later");
            inputs[k] = b->outputs[j];
        }
        if (inputs[k] < 0)
            return layer_fail(b, i, KILN_ERR_INVALID_ARGUMENT,
                              "no layer named '%s' comes before it; known names: %s", want,
                              known_names(b, i, known));
    }
    *n = l->n_inputs;
    return KILN_OK;
}

static bool in_range(float x, float low, float high, bool high_open)
{
    return x >= low && (high_open ? x < high : x <= high);
}

/* Checks one "at least `low`" integer per spatial axis, naming the key; a required key left
 * at 0 says so. */
static kiln_status check_axes(const builder *b, size_t i, const char *key, const int *v, int ns,
                              int low, bool required)
{
    for (int a = 0; a < ns; a++) {
        if (v[a] < low)
            return layer_fail(b, i, KILN_ERR_INVALID_ARGUMENT,
                              "%s %d on spatial axis %d must be >= %d%s", key, v[a], a, low,
                              v[a] == 0 && required ? " (the key is required)" : "");
    }
    return KILN_OK;
}

static int n_spatial(kiln_layer_kind kind)
{
    switch (kind) {
    case KILN_LAYER_CONV3D:
    case KILN_LAYER_MAXPOOL3D:
    case KILN_LAYER_AVGPOOL3D:
    case KILN_LAYER_UPSAMPLE3D:
        return 3;
    default:
        return 2;
    }
}

static kiln_status check_init(const builder *b, size_t i, kiln_init_kind init)
{
    if ((unsigned)init > KILN_INIT_XAVIER_NORMAL)
        return layer_fail(b, i, KILN_ERR_INVALID_ARGUMENT, "unknown weight init %d", (int)init);
    return KILN_OK;
}

/* Validates the values of layer i that do not depend on its input's shape. */
static kiln_status check_values(const builder *b, size_t i)
{
    kiln_status rc = KILN_OK;
    const kiln_layer_spec *l = &b->spec->layers[i];
    int ns = n_spatial(l->kind);
    switch (l->kind) {
    case KILN_LAYER_DENSE:
        if (l->dense.units < 1)
            return layer_fail(b, i, KILN_ERR_INVALID_ARGUMENT, "units must be >= 1, got %lld%s",
                              (long long)l->dense.units,
                              l->dense.units == 0 ? " (the key is required)" : "");
        return check_init(b, i, l->dense.init);
    case KILN_LAYER_CONV2D:
    case KILN_LAYER_CONV3D:
        if (l->conv.filters < 1)
            return layer_fail(b, i, KILN_ERR_INVALID_ARGUMENT, "filters must be >= 1, got %lld%s",
                              (long long)l->conv.filters,
                              l->conv.filters == 0 ? " (the key is required)" : "");
        KILN_CHECK(check_axes(b, i, "kernel", l->conv.kernel, ns, 1, true));
        KILN_CHECK(check_axes(b, i, "stride", l->conv.stride, ns, 1, false));
        KILN_CHECK(check_axes(b, i, "dilation", l->conv.dilation, ns, 1, false));
        if (!l->conv.same)
            KILN_CHECK(check_axes(b, i, "padding", l->conv.padding, ns, 0, false));
        for (int a = 0; l->conv.same && a < ns; a++) {
            if (l->conv.kernel[a] % 2 == 0)
                return layer_fail(b, i, KILN_ERR_INVALID_ARGUMENT,
                                  "padding 'same' needs odd kernel sizes, got %d on spatial "
                                  "axis %d; give the padding as a number",
                                  l->conv.kernel[a], a);
        }
        return check_init(b, i, l->conv.init);
    case KILN_LAYER_MAXPOOL2D:
    case KILN_LAYER_MAXPOOL3D:
    case KILN_LAYER_AVGPOOL2D:
    case KILN_LAYER_AVGPOOL3D:
        KILN_CHECK(check_axes(b, i, "size", l->pool.size, ns, 1, true));
        return check_axes(b, i, "stride", l->pool.stride, ns, 0, false);
    case KILN_LAYER_UPSAMPLE2D:
    case KILN_LAYER_UPSAMPLE3D:
        return check_axes(b, i, "scale", l->upsample.scale, ns, 1, true);
    case KILN_LAYER_BATCHNORM:
        if (!in_range(l->batchnorm.momentum, 0.0f, 1.0f, false))
            return layer_fail(b, i, KILN_ERR_INVALID_ARGUMENT,
                              "momentum %g must be in [0, 1] (PyTorch's convention: the "
                              "weight of the batch statistics; Keras' 0.99 is 0.01 here)",
                              (double)l->batchnorm.momentum);
        if (!(l->batchnorm.eps > 0.0f) || isinf(l->batchnorm.eps))
            return layer_fail(b, i, KILN_ERR_INVALID_ARGUMENT, "eps %g must be > 0 and finite",
                              (double)l->batchnorm.eps);
        return KILN_OK;
    case KILN_LAYER_DROPOUT:
        if (!in_range(l->dropout.rate, 0.0f, 1.0f, true))
            return layer_fail(b, i, KILN_ERR_INVALID_ARGUMENT, "rate %g must be in [0, 1)",
                              (double)l->dropout.rate);
        return KILN_OK;
    case KILN_LAYER_LEAKY_RELU:
        if (!(l->leaky_relu.slope >= 0.0f) || isinf(l->leaky_relu.slope))
            return layer_fail(b, i, KILN_ERR_INVALID_ARGUMENT, "slope %g must be finite and >= 0",
                              (double)l->leaky_relu.slope);
        return KILN_OK;
    default:
        return KILN_OK;
    }
cleanup:
    return rc;
}

/* The layout each kind needs, or NULL when any input of rank >= 2 will do. */
static const char *needed_layout(kiln_layer_kind kind, int ndim, const char **hint)
{
    *hint = "";
    switch (kind) {
    case KILN_LAYER_DENSE:
        *hint = ndim > 2 ? "; add a flatten (or a global_avgpool) before it" : "";
        return ndim == 2 ? NULL : "(N, features)";
    case KILN_LAYER_CONV2D:
    case KILN_LAYER_MAXPOOL2D:
    case KILN_LAYER_AVGPOOL2D:
    case KILN_LAYER_UPSAMPLE2D:
        *hint = ndim == 5 ? "; use the 3d layer for volumes" : "";
        return ndim == 4 ? NULL : "(N, C, H, W)";
    case KILN_LAYER_CONV3D:
    case KILN_LAYER_MAXPOOL3D:
    case KILN_LAYER_AVGPOOL3D:
    case KILN_LAYER_UPSAMPLE3D:
        *hint = ndim == 4 ? "; use the 2d layer for images" : "";
        return ndim == 5 ? NULL : "(N, C, D, H, W)";
    case KILN_LAYER_GLOBAL_AVGPOOL:
        return ndim >= 3 ? NULL : "(N, C, spatial...) with at least one spatial axis";
    default:
        return NULL;
    }
}

/* Resolves `axis` against rank `ndim`; refuses the batch axis and axes out of range. */
static kiln_status resolve_axis(const builder *b, size_t i, kiln_value x, int ndim, int *axis)
{
    char text[SHAPE_TEXT];
    int a = b->spec->layers[i].axis.axis;
    int resolved = a < 0 ? a + ndim : a;
    if (resolved < 1 || resolved >= ndim)
        return layer_fail(b, i, KILN_ERR_INVALID_ARGUMENT,
                          "axis %d %s for input %s; use an axis from 1 to %d (or -1 to -%d)", a,
                          resolved == 0 ? "is the batch axis" : "is out of range",
                          shape_text(b->g, x, text), ndim - 1, ndim - 1);
    *axis = resolved;
    return KILN_OK;
}

/* concat and add: equal ranks, and equal shapes (add) or equal off the axis (concat). */
static kiln_status check_merge(const builder *b, size_t i, const kiln_value *in, int n, int *axis)
{
    const kiln_layer_spec *l = &b->spec->layers[i];
    const kiln_shape *first = kiln_graph_value_shape(b->g, in[0]);
    char t0[SHAPE_TEXT], t1[SHAPE_TEXT];
    *axis = -1;
    if (l->kind == KILN_LAYER_CONCAT) {
        kiln_status rc = resolve_axis(b, i, in[0], first->ndim, axis);
        if (rc != KILN_OK)
            return rc;
    }
    for (int k = 1; k < n; k++) {
        const kiln_shape *s = kiln_graph_value_shape(b->g, in[k]);
        bool fits = s->ndim == first->ndim;
        for (int d = 0; fits && d < s->ndim; d++)
            fits = d == *axis || s->dim[d] == first->dim[d];
        if (fits)
            continue;
        return layer_fail(b, i, KILN_ERR_SHAPE, "inputs '%s' %s and '%s' %s %s",
                          kiln_graph_value_name(b->g, in[0]), shape_text(b->g, in[0], t0),
                          kiln_graph_value_name(b->g, in[k]), shape_text(b->g, in[k], t1),
                          l->kind == KILN_LAYER_ADD
                              ? "differ; add needs equal shapes"
                              : "differ off the concat axis; concat needs equal ranks and "
                                "equal sizes except along the axis");
    }
    return KILN_OK;
}

/* Gives a built layer's weight the spec's init, keeping the fan axes the builder chose. */
static void set_weight_init(builder *b, size_t i, kiln_init_kind kind, float value)
{
    char name[KILN_SPEC_MAX_NAME + 16];
    snprintf(name, sizeof name, "%s.weight", b->names[i]);
    kiln_value w = kiln_graph_find(b->g, name);
    if (w >= 0) {
        b->g->values[w].init.kind = kind;
        b->g->values[w].init.value = value;
    }
}

/* add over 2 to 8 inputs: a chain of binary adds, the last one named after the layer. */
static kiln_status build_add(builder *b, size_t i, const kiln_value *in, int n, kiln_value *out)
{
    kiln_value sum = in[0];
    for (int k = 1; k < n; k++) {
        char name[KILN_SPEC_MAX_NAME + 16];
        if (k == n - 1)
            snprintf(name, sizeof name, "%s", b->names[i]);
        else
            snprintf(name, sizeof name, "%s.partial%d", b->names[i], k);
        kiln_value pair[2] = {sum, in[k]};
        kiln_status rc = kiln_graph_op(b->g, name, "add", NULL, pair, 2, &sum);
        if (rc != KILN_OK)
            return rc;
    }
    *out = sum;
    return KILN_OK;
}

/* Builds layer i into b->outputs[i]. */
static kiln_status build_layer(builder *b, size_t i)
{
    const kiln_layer_spec *l = &b->spec->layers[i];
    const char *name = b->names[i];
    kiln_value in[KILN_SPEC_MAX_INPUTS], *out = &b->outputs[i];
    int n = 0, axis = 1;
    char text[SHAPE_TEXT];
    kiln_status rc = check_values(b, i);
    if (rc == KILN_OK)
        rc = resolve_inputs(b, i, in, &n);
    if (rc != KILN_OK)
        return rc;
    const kiln_shape *xs = kiln_graph_value_shape(b->g, in[0]);
    const char *hint;
    const char *layout = needed_layout(l->kind, xs->ndim, &hint);
    if (layout != NULL)
        return layer_fail(b, i, KILN_ERR_SHAPE, "input %s needs %s%s",
                          shape_text(b->g, in[0], text), layout, hint);
    if (is_merge(l->kind))
        rc = check_merge(b, i, in, n, &axis);
    else if (l->kind == KILN_LAYER_SOFTMAX)
        rc = resolve_axis(b, i, in[0], xs->ndim, &axis);
    if (rc != KILN_OK)
        return rc;

    int ns = n_spatial(l->kind);
    switch (l->kind) {
    case KILN_LAYER_DENSE:
        rc = kiln_graph_dense(b->g, name, in[0], l->dense.units, l->dense.bias, out);
        if (rc == KILN_OK)
            set_weight_init(b, i, l->dense.init, l->dense.init_value);
        break;
    case KILN_LAYER_CONV2D:
    case KILN_LAYER_CONV3D:
        rc = kiln_graph_conv(b->g, name, in[0], ns, l->conv.filters, l->conv.kernel, l->conv.stride,
                             l->conv.padding, l->conv.same, l->conv.dilation, l->conv.bias, out);
        if (rc == KILN_OK)
            set_weight_init(b, i, l->conv.init, l->conv.init_value);
        break;
    case KILN_LAYER_MAXPOOL2D:
    case KILN_LAYER_MAXPOOL3D:
    case KILN_LAYER_AVGPOOL2D:
    case KILN_LAYER_AVGPOOL3D: {
        kiln_pool_params p = {.n_spatial = ns};
        memcpy(p.size, l->pool.size, sizeof p.size);
        memcpy(p.stride, l->pool.stride, sizeof p.stride);
        rc = kiln_graph_unary(b->g, name, kind_of(b, i), &p, in[0], out);
        break;
    }
    case KILN_LAYER_UPSAMPLE2D:
    case KILN_LAYER_UPSAMPLE3D: {
        kiln_upsample_params p = {.n_spatial = ns};
        memcpy(p.scale, l->upsample.scale, sizeof p.scale);
        rc = kiln_graph_unary(b->g, name, kind_of(b, i), &p, in[0], out);
        break;
    }
    case KILN_LAYER_BATCHNORM:
        rc = kiln_graph_batchnorm(b->g, name, in[0], l->batchnorm.momentum, l->batchnorm.eps, out);
        break;
    case KILN_LAYER_DROPOUT: {
        kiln_dropout_params p = {.rate = l->dropout.rate};
        rc = kiln_graph_unary(b->g, name, "dropout", &p, in[0], out);
        break;
    }
    case KILN_LAYER_LEAKY_RELU: {
        kiln_leaky_relu_params p = {.slope = l->leaky_relu.slope};
        rc = kiln_graph_unary(b->g, name, "leaky_relu", &p, in[0], out);
        break;
    }
    case KILN_LAYER_SOFTMAX:
    case KILN_LAYER_CONCAT: {
        kiln_axis_params p = {.axis = axis};
        rc = kiln_graph_op(b->g, name, kind_of(b, i), &p, in, n, out);
        break;
    }
    case KILN_LAYER_ADD:
        rc = build_add(b, i, in, n, out);
        break;
    default: /* global_avgpool, flatten, relu, sigmoid, tanh, gelu: no parameters */
        rc = kiln_graph_unary(b->g, name, kind_of(b, i), NULL, in[0], out);
        break;
    }
    return rc == KILN_OK ? KILN_OK : layer_wrap(b, i, in[0], rc);
}

/* Records "loss KIND on layer I 'NAME' (KIND): <message>" and returns `status`. */
static kiln_status loss_fail(const builder *b, kiln_status status, const char *fmt, ...)
    KILN__PRINTF(3, 4);
static kiln_status loss_fail(const builder *b, kiln_status status, const char *fmt, ...)
{
    char why[768];
    size_t last = b->spec->n_layers - 1;
    va_list args;
    va_start(args, fmt);
    vsnprintf(why, sizeof why, fmt, args);
    va_end(args);
    return kiln__error(b->ctx, status, "kiln_spec_build", "loss %s on layer %zu '%s' (%s): %s",
                       kiln_loss_kind_name(b->spec->loss.kind), last, b->names[last],
                       kind_of(b, last), why);
}

/* Checks the loss against the last layer's output y and adds the target and loss nodes. */
static kiln_status build_loss(builder *b, kiln_value y, kiln_value *target, kiln_value *loss)
{
    kiln_status rc = KILN_OK;
    const kiln_loss_spec *ls = &b->spec->loss;
    const kiln_shape *ys = kiln_graph_value_shape(b->g, y);
    kiln_layer_kind last = b->spec->layers[b->spec->n_layers - 1].kind;
    char text[SHAPE_TEXT];
    bool logits = ls->kind == KILN_LOSS_SOFTMAX_CROSS_ENTROPY ||
                  ls->kind == KILN_LOSS_BCE_WITH_LOGITS || ls->kind == KILN_LOSS_DICE_BCE;
    if ((unsigned)ls->kind >= KILN_LOSS_KIND_COUNT)
        return kiln__error(b->ctx, KILN_ERR_INVALID_ARGUMENT, "kiln_spec_build",
                           "unknown loss kind %d", (int)ls->kind);
    if (logits && (last == KILN_LAYER_SOFTMAX || last == KILN_LAYER_SIGMOID))
        return loss_fail(b, KILN_ERR_INVALID_ARGUMENT,
                         "the loss takes logits and applies the %s itself; remove the final "
                         "%s layer",
                         ls->kind == KILN_LOSS_SOFTMAX_CROSS_ENTROPY ? "softmax" : "sigmoid",
                         kiln_layer_kind_name(last));
    if (ls->kind == KILN_LOSS_SOFTMAX_CROSS_ENTROPY) {
        if (ys->ndim != 2)
            return loss_fail(b, KILN_ERR_SHAPE,
                             "output %s needs (N, classes) logits; end with a dense layer%s",
                             shape_text(b->g, y, text),
                             ys->ndim > 2 ? " after a flatten or global_avgpool" : "");
        if (!in_range(ls->label_smoothing, 0.0f, 1.0f, true))
            return loss_fail(b, KILN_ERR_INVALID_ARGUMENT, "label_smoothing %g must be in [0, 1)",
                             (double)ls->label_smoothing);
    }
    if ((ls->kind == KILN_LOSS_DICE || ls->kind == KILN_LOSS_DICE_BCE) &&
        (!(ls->smooth >= 0.0f) || isinf(ls->smooth)))
        return loss_fail(b, KILN_ERR_INVALID_ARGUMENT, "smooth %g must be finite and >= 0",
                         (double)ls->smooth);
    bool labels = ls->kind == KILN_LOSS_SOFTMAX_CROSS_ENTROPY;
    kiln_shape ts = labels ? kiln_shape_of(1, ys->dim) : *ys;
    KILN_CHECK(kiln_graph_input(b->g, "target", &ts, labels ? KILN_I32 : KILN_F32, target));
    kiln_value pair[2] = {y, *target};
    switch (ls->kind) {
    case KILN_LOSS_SOFTMAX_CROSS_ENTROPY: {
        kiln_cross_entropy_params p = {.label_smoothing = ls->label_smoothing};
        KILN_CHECK(kiln_graph_op(b->g, "loss", "softmax_cross_entropy", &p, pair, 2, loss));
        break;
    }
    case KILN_LOSS_DICE: {
        kiln_dice_params p = {.smooth = ls->smooth};
        KILN_CHECK(kiln_graph_op(b->g, "loss", "dice", &p, pair, 2, loss));
        break;
    }
    case KILN_LOSS_DICE_BCE: {
        /* dice(sigmoid(logits), t) + bce_with_logits(logits, t), from existing ops. */
        kiln_dice_params p = {.smooth = ls->smooth};
        kiln_value prob, parts[2];
        KILN_CHECK(kiln_graph_unary(b->g, "loss.sigmoid", "sigmoid", NULL, y, &prob));
        kiln_value dice_in[2] = {prob, *target};
        KILN_CHECK(kiln_graph_op(b->g, "loss.dice", "dice", &p, dice_in, 2, &parts[0]));
        KILN_CHECK(kiln_graph_op(b->g, "loss.bce", "bce_with_logits", NULL, pair, 2, &parts[1]));
        KILN_CHECK(kiln_graph_op(b->g, "loss", "add", NULL, parts, 2, loss));
        break;
    }
    default: /* bce_with_logits, mse, l1: no parameters */
        KILN_CHECK(kiln_graph_op(b->g, "loss", kiln_loss_kind_name(ls->kind), NULL, pair, 2, loss));
        break;
    }
    KILN_CHECK(kiln_graph_set_loss(b->g, *loss));
cleanup:
    if (rc != KILN_OK && rc != KILN_ERR_NO_MEMORY) {
        char *detail = kiln__strdup(b->ctx, kiln_context_last_error(b->ctx));
        loss_fail(b, rc, "output %s: %s", shape_text(b->g, y, text),
                  detail != NULL ? detail : "(out of memory)");
        kiln__free(b->ctx, detail);
    }
    return rc;
}

/* Checks the spec's top level: batch size, input shape and the layer list. */
static kiln_status check_spec(kiln_context *ctx, const kiln_spec *s, kiln_shape *input)
{
    char text[SHAPE_TEXT];
    if (s->batch_size < 1)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, "kiln_spec_build",
                           "batch size %lld must be >= 1", (long long)s->batch_size);
    if (s->input.ndim < 1 || s->input.ndim >= KILN_MAX_DIMS || !kiln_shape_is_valid(&s->input))
        return kiln__error(ctx, KILN_ERR_SHAPE, "kiln_spec_build",
                           "input shape %s: one sample needs 1 to %d axes, each >= 1, without "
                           "the batch axis (e.g. [1, 28, 28])",
                           (s->input.ndim >= 0 && s->input.ndim <= KILN_MAX_DIMS)
                               ? kiln_shape_format(&s->input, text, sizeof text)
                               : "(invalid)",
                           KILN_MAX_DIMS - 1);
    if (s->n_layers == 0 || s->layers == NULL)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, "kiln_spec_build",
                           "the model has no layers");
    input->ndim = s->input.ndim + 1;
    input->dim[0] = s->batch_size;
    for (int d = 0; d < s->input.ndim; d++)
        input->dim[1 + d] = s->input.dim[d];
    return KILN_OK;
}

kiln_status kiln_spec_build(kiln_context *ctx, const kiln_spec *spec, kiln_graph **out_graph,
                            kiln_value *out_input, kiln_value *out_target, kiln_value *out_output,
                            kiln_value *out_loss)
{
    kiln_status rc = KILN_OK;
    builder b = {.ctx = ctx, .spec = spec};
    if (ctx == NULL || spec == NULL || out_graph == NULL || out_input == NULL ||
        out_target == NULL || out_output == NULL || out_loss == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    *out_graph = NULL;
    kiln_value target = -1, loss = -1;
    kiln_shape input;
    KILN_CHECK(check_spec(ctx, spec, &input));
    b.names = kiln__calloc(ctx, spec->n_layers, sizeof *b.names);
    b.outputs = kiln__calloc(ctx, spec->n_layers, sizeof *b.outputs);
    if (b.names == NULL || b.outputs == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory for %zu layers", spec->n_layers);
    KILN_CHECK(resolve_names(&b));
    KILN_CHECK(kiln_graph_create(ctx, &b.g));
    KILN_CHECK(kiln_graph_input(b.g, "input", &input, KILN_F32, &b.input));
    for (size_t i = 0; i < spec->n_layers; i++)
        KILN_CHECK(build_layer(&b, i));
    kiln_value output = b.outputs[spec->n_layers - 1];
    if (spec->loss.kind != KILN_LOSS_NONE)
        KILN_CHECK(build_loss(&b, output, &target, &loss));
    *out_graph = b.g;
    *out_input = b.input;
    *out_target = target;
    *out_output = output;
    *out_loss = loss;
    b.g = NULL;
cleanup:
    kiln_graph_destroy(b.g);
    kiln__free(ctx, b.names);
    kiln__free(ctx, b.outputs);
    return rc;
}
