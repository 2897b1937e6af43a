/*
 * The model section of the config schema: the input shape, and the layers, each written as a
 * kind alone ("relu"), a one-key mapping ({dense: {units: 10}}), or a named node with `op`
 * and `inputs` for graphs that are not a chain. Every kind's keys come from the library's
 * kiln_layer_spec (include/kiln/spec.h), whose *_init functions give the defaults; names and
 * inputs are checked here, with the layer's file position, before the library sees them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

#define SPEC(member) .offset = offsetof(config_layer, spec.member)

static const char *const LAYER_NAMES[] = {
#define KILN__CONFIG_LAYER_NAME(value, name) #name,
    KILN_LAYER_KIND_LIST(KILN__CONFIG_LAYER_NAME)
#undef KILN__CONFIG_LAYER_NAME
};
static const char *const INIT_NAMES[] = {"constant", "he_uniform", "he_normal", "xavier_uniform",
                                         "xavier_normal"};
static const char *const NODE_KEYS[] = {"op", "name", "inputs", NULL};
static const char *const CHAIN_KEYS[] = {"name", "inputs", NULL};
enum { NAME_BYTES = KILN_SPEC_MAX_NAME + 1, N_INITS = 5 };

/* ---- per-axis integers, padding and weight init ---- */

/* An integer for every spatial axis, or a list of f->size of them. */
static kiln_status parse_axes(cfg_parser *p, int node, const char *path, const cfg_field *f,
                              void *base)
{
    int *axes = (int *)((char *)base + f->offset);
    yaml_node_t *n = cfg_node(p, node);
    char expected[128], got[128], item[CFG_PATH_BYTES];
    cfg_field one = *f;
    one.type = CFG_INT;
    int64_t v = 0;
    if (n->type == YAML_SCALAR_NODE) {
        kiln_status rc = cfg_parse_int(p, node, path, &one, &v);
        for (size_t a = 0; rc == KILN_OK && a < f->size; a++)
            axes[a] = (int)v;
        return rc;
    }
    size_t count = n->type == YAML_SEQUENCE_NODE
                       ? (size_t)(n->data.sequence.items.top - n->data.sequence.items.start)
                       : 0;
    if (n->type != YAML_SEQUENCE_NODE || count != f->size) {
        cfg_expected(&one, expected, sizeof expected);
        if (n->type == YAML_SEQUENCE_NODE)
            snprintf(got, sizeof got, "a list of %zu", count);
        else
            cfg_describe(n, got, sizeof got);
        return cfg_fail(p, node, path,
                        "expected %s or a list of %zu of them (one per spatial "
                        "axis), got %s",
                        expected, f->size, got);
    }
    for (size_t a = 0; a < count; a++) {
        int id = cfg_node(p, node)->data.sequence.items.start[a];
        kiln_status rc = cfg_parse_int(p, id, cfg_path_index(path, a, item), &one, &v);
        if (rc != KILN_OK)
            return rc;
        axes[a] = (int)v;
    }
    return KILN_OK;
}

static void write_axes(cfg_writer *w, const cfg_field *f, const void *base)
{
    const int *axes = (const int *)((const char *)base + f->offset);
    bool same = true;
    for (size_t a = 1; a < f->size; a++)
        same = same && axes[a] == axes[0];
    if (same) {
        cfg_write_int(w, axes[0]);
        return;
    }
    cfg_write_list_start(w, true);
    for (size_t a = 0; a < f->size; a++)
        cfg_write_int(w, axes[a]);
    cfg_write_list_end(w);
}

static bool equal_axes(const cfg_field *f, const void *a, const void *b, char *path)
{
    (void)path;
    return memcmp((const char *)a + f->offset, (const char *)b + f->offset,
                  f->size * sizeof(int)) == 0;
}

const cfg_custom cfg_axes_type = {parse_axes, write_axes, equal_axes, NULL};

/* `same`, or per-axis numbers; aux is the layer's `same` flag. */
static kiln_status parse_padding(cfg_parser *p, int node, const char *path, const cfg_field *f,
                                 void *base)
{
    bool *same = (bool *)((char *)base + f->aux);
    const char *text = cfg_text(cfg_node(p, node));
    if (text != NULL && strcmp(text, "same") == 0) {
        *same = true;
        memset((char *)base + f->offset, 0, f->size * sizeof(int));
        return KILN_OK;
    }
    kiln_status rc = parse_axes(p, node, path, f, base);
    bool word =
        text != NULL && ((text[0] >= 'a' && text[0] <= 'z') || (text[0] >= 'A' && text[0] <= 'Z'));
    if (rc != KILN_OK && word)
        rc = cfg_fail(p, node, path,
                      "expected same, an integer >= 0 or a list of %zu of them, "
                      "got '%.80s'",
                      f->size, text);
    if (rc == KILN_OK)
        *same = false;
    return rc;
}

static void write_padding(cfg_writer *w, const cfg_field *f, const void *base)
{
    if (*(const bool *)((const char *)base + f->aux))
        cfg_write_plain(w, "same");
    else
        write_axes(w, f, base);
}

static bool equal_padding(const cfg_field *f, const void *a, const void *b, char *path)
{
    bool same = *(const bool *)((const char *)a + f->aux);
    return same == *(const bool *)((const char *)b + f->aux) && (same || equal_axes(f, a, b, path));
}

static const cfg_custom PADDING_TYPE = {parse_padding, write_padding, equal_padding, NULL};

/* A kind's name, or {constant: VALUE}; aux is the constant's float. */
static kiln_status parse_init(cfg_parser *p, int node, const char *path, const cfg_field *f,
                              void *base)
{
    kiln_init_kind *kind = (kiln_init_kind *)((char *)base + f->offset);
    cfg_field value = {.key = "constant", .type = CFG_FLOAT, .offset = f->aux};
    char child[CFG_PATH_BYTES];
    int k = 0, params = 0;
    kiln_status rc =
        cfg_parse_choice(p, node, path, "weight init", INIT_NAMES, N_INITS, &k, &params, child);
    if (rc != KILN_OK)
        return rc;
    if (k == KILN_INIT_CONSTANT && params == 0)
        return cfg_fail(p, node, path, "constant needs its value, as in {constant: 0.1}");
    if (k != KILN_INIT_CONSTANT && params != 0)
        return cfg_fail(p, params, child, "takes no value; write init: %s", INIT_NAMES[k]);
    if (params != 0)
        rc = cfg_parse_field(p, params, child, &value, base);
    if (rc == KILN_OK)
        *kind = (kiln_init_kind)k;
    return rc;
}

static void write_init(cfg_writer *w, const cfg_field *f, const void *base)
{
    kiln_init_kind kind = *(const kiln_init_kind *)((const char *)base + f->offset);
    if (kind != KILN_INIT_CONSTANT) {
        cfg_write_plain(w, INIT_NAMES[kind]);
        return;
    }
    cfg_write_map_start(w, true);
    cfg_write_plain(w, "constant");
    cfg_write_float(w, *(const float *)((const char *)base + f->aux));
    cfg_write_map_end(w);
}

static bool equal_init(const cfg_field *f, const void *a, const void *b, char *path)
{
    kiln_init_kind kind = *(const kiln_init_kind *)((const char *)a + f->offset);
    (void)path;
    if (kind != *(const kiln_init_kind *)((const char *)b + f->offset))
        return false;
    return kind != KILN_INIT_CONSTANT ||
           *(const float *)((const char *)a + f->aux) == *(const float *)((const char *)b + f->aux);
}

static const cfg_custom INIT_TYPE = {parse_init, write_init, equal_init, NULL};

/* ---- the kinds' keys ---- */

#define AXES(name, member, n, flags_, low)                                                         \
    {                                                                                              \
        .key = name, .type = CFG_CUSTOM, .flags = (flags_) | CFG_MIN, .min = low, SPEC(member),    \
        .size = n, .custom = &cfg_axes_type                                                        \
    }
#define BIAS(member)                                                                               \
    {                                                                                              \
        .key = "bias", .type = CFG_BOOL, SPEC(member.bias)                                         \
    }
#define INIT(member)                                                                               \
    {                                                                                              \
        .key = "init", .type = CFG_CUSTOM, SPEC(member.init),                                      \
        .aux = offsetof(config_layer, spec.member.init_value), .custom = &INIT_TYPE                \
    }
#define CONV_FIELDS(n)                                                                             \
    {.key = "filters",                                                                             \
     .type = CFG_INT64,                                                                            \
     .flags = CFG_REQUIRED | CFG_MIN,                                                              \
     .min = 1,                                                                                     \
     SPEC(conv.filters)},                                                                          \
        AXES("kernel", conv.kernel, n, CFG_REQUIRED, 1), AXES("stride", conv.stride, n, 0, 1),     \
        {.key = "padding",                                                                         \
         .type = CFG_CUSTOM,                                                                       \
         .flags = CFG_MIN,                                                                         \
         .min = 0,                                                                                 \
         SPEC(conv.padding),                                                                       \
         .aux = offsetof(config_layer, spec.conv.same),                                            \
         .size = n,                                                                                \
         .custom = &PADDING_TYPE},                                                                 \
        AXES("dilation", conv.dilation, n, 0, 1), BIAS(conv), INIT(conv)

static const cfg_field DENSE_FIELDS[] = {
    {.key = "units",
     .type = CFG_INT64,
     .flags = CFG_REQUIRED | CFG_MIN,
     .min = 1,
     SPEC(dense.units)},
    BIAS(dense),
    INIT(dense),
};
static const cfg_field CONV2D_FIELDS[] = {CONV_FIELDS(2)};
static const cfg_field CONV3D_FIELDS[] = {CONV_FIELDS(3)};
static const cfg_field POOL2D_FIELDS[] = {AXES("size", pool.size, 2, CFG_REQUIRED, 1),
                                          AXES("stride", pool.stride, 2, 0, 1)};
static const cfg_field POOL3D_FIELDS[] = {AXES("size", pool.size, 3, CFG_REQUIRED, 1),
                                          AXES("stride", pool.stride, 3, 0, 1)};
static const cfg_field UPSAMPLE2D_FIELDS[] = {AXES("scale", upsample.scale, 2, CFG_REQUIRED, 1)};
static const cfg_field UPSAMPLE3D_FIELDS[] = {AXES("scale", upsample.scale, 3, CFG_REQUIRED, 1)};
static const cfg_field BATCHNORM_FIELDS[] = {
    {.key = "momentum",
     .type = CFG_FLOAT,
     .flags = CFG_MIN | CFG_MAX,
     .min = 0,
     .max = 1,
     SPEC(batchnorm.momentum)},
    {.key = "eps", .type = CFG_FLOAT, .flags = CFG_MIN_OPEN, .min = 0, SPEC(batchnorm.eps)},
};
static const cfg_field DROPOUT_FIELDS[] = {
    {.key = "rate",
     .type = CFG_FLOAT,
     .flags = CFG_REQUIRED | CFG_MIN | CFG_MAX_OPEN,
     .min = 0,
     .max = 1,
     SPEC(dropout.rate)},
};
static const cfg_field LEAKY_RELU_FIELDS[] = {
    {.key = "slope", .type = CFG_FLOAT, .flags = CFG_MIN, .min = 0, SPEC(leaky_relu.slope)},
};
static const cfg_field AXIS_FIELDS[] = {{.key = "axis", .type = CFG_INT, SPEC(axis.axis)}};

/* Pool strides default to the window size (Keras); the effective config spells them out. */
static kiln_status finish_pool(cfg_parser *p, int node, const char *path, void *base)
{
    config_layer *l = base;
    (void)p;
    (void)node;
    (void)path;
    for (int a = 0; a < 3; a++) {
        if (l->spec.pool.stride[a] == 0)
            l->spec.pool.stride[a] = l->spec.pool.size[a];
    }
    return KILN_OK;
}

static const cfg_table DENSE_TABLE = CFG_TABLE(DENSE_FIELDS, NULL);
static const cfg_table CONV2D_TABLE = CFG_TABLE(CONV2D_FIELDS, NULL);
static const cfg_table CONV3D_TABLE = CFG_TABLE(CONV3D_FIELDS, NULL);
static const cfg_table POOL2D_TABLE = CFG_TABLE(POOL2D_FIELDS, finish_pool);
static const cfg_table POOL3D_TABLE = CFG_TABLE(POOL3D_FIELDS, finish_pool);
static const cfg_table UPSAMPLE2D_TABLE = CFG_TABLE(UPSAMPLE2D_FIELDS, NULL);
static const cfg_table UPSAMPLE3D_TABLE = CFG_TABLE(UPSAMPLE3D_FIELDS, NULL);
static const cfg_table BATCHNORM_TABLE = CFG_TABLE(BATCHNORM_FIELDS, NULL);
static const cfg_table DROPOUT_TABLE = CFG_TABLE(DROPOUT_FIELDS, NULL);
static const cfg_table LEAKY_RELU_TABLE = CFG_TABLE(LEAKY_RELU_FIELDS, NULL);
static const cfg_table AXIS_TABLE = CFG_TABLE(AXIS_FIELDS, NULL);
static const cfg_table NO_FIELDS = {NULL, 0, NULL};

static const cfg_table *layer_table(kiln_layer_kind kind)
{
    switch (kind) {
    case KILN_LAYER_DENSE:
        return &DENSE_TABLE;
    case KILN_LAYER_CONV2D:
        return &CONV2D_TABLE;
    case KILN_LAYER_CONV3D:
        return &CONV3D_TABLE;
    case KILN_LAYER_MAXPOOL2D:
    case KILN_LAYER_AVGPOOL2D:
        return &POOL2D_TABLE;
    case KILN_LAYER_MAXPOOL3D:
    case KILN_LAYER_AVGPOOL3D:
        return &POOL3D_TABLE;
    case KILN_LAYER_UPSAMPLE2D:
        return &UPSAMPLE2D_TABLE;
    case KILN_LAYER_UPSAMPLE3D:
        return &UPSAMPLE3D_TABLE;
    case KILN_LAYER_BATCHNORM:
        return &BATCHNORM_TABLE;
    case KILN_LAYER_DROPOUT:
        return &DROPOUT_TABLE;
    case KILN_LAYER_LEAKY_RELU:
        return &LEAKY_RELU_TABLE;
    case KILN_LAYER_SOFTMAX:
    case KILN_LAYER_CONCAT:
        return &AXIS_TABLE;
    default: /* add ignores an axis, so it takes none */
        return &NO_FIELDS;
    }
}

/* ---- names and inputs ---- */

static bool is_merge(kiln_layer_kind kind)
{
    return kind == KILN_LAYER_CONCAT || kind == KILN_LAYER_ADD;
}

/* The name the library will give layer i: its own, or "<kind><i>". */
static const char *layer_name(const config_layer *l, size_t i, char *out)
{
    if (l->name[0] != '\0')
        return l->name;
    snprintf(out, NAME_BYTES, "%s%zu", kiln_layer_kind_name(l->spec.kind), i);
    return out;
}

static kiln_status parse_layer_name(cfg_parser *p, int node, const char *path, size_t index,
                                    config_layer *layer)
{
    char fallback[NAME_BYTES], other[NAME_BYTES];
    snprintf(fallback, sizeof fallback, "%s%zu", kiln_layer_kind_name(layer->spec.kind), index);
    kiln_status rc = cfg_parse_string(p, node, path, "a layer name", layer->name, NAME_BYTES);
    if (rc != KILN_OK)
        return rc;
    const char *name = layer->name;
    if (name[0] == '\0')
        return cfg_fail(p, node, path,
                        "expected a layer name, got an empty string; leave the "
                        "key out for the default '%s'",
                        fallback);
    if (strchr(name, '.') != NULL)
        return cfg_fail(p, node, path,
                        "'%s' contains '.', which separates a layer from its "
                        "parameters ('%s.weight'); use '_' or '-'",
                        name, name);
    if (strcmp(name, "input") == 0 || strcmp(name, "target") == 0 || strcmp(name, "loss") == 0)
        return cfg_fail(p, node, path, "'%s' is reserved for the model's %s; choose another name",
                        name, name);
    for (size_t j = 0; j < index; j++) {
        if (strcmp(layer_name(&p->layers[j], j, other), name) == 0)
            return cfg_fail(p, node, path,
                            "'%s' is already the name of model.layers[%zu]; names "
                            "must be unique",
                            name, j);
    }
    return KILN_OK;
}

/* Checks that `name` is "input" or an earlier layer's name. */
static kiln_status check_input(cfg_parser *p, int node, const char *path, size_t index,
                               const char *name)
{
    char *names = malloc((index + 1) * NAME_BYTES);
    const char **known = malloc((index + 1) * sizeof *known);
    kiln_status rc = KILN_OK;
    if (names == NULL || known == NULL) {
        rc = cfg_fail_memory(p);
        goto cleanup;
    }
    known[0] = "input";
    for (size_t j = 0; j < index; j++)
        known[j + 1] = layer_name(&p->layers[j], j, names + j * NAME_BYTES);
    for (size_t j = 0; j <= index; j++) {
        if (strcmp(known[j], name) == 0)
            goto cleanup;
    }
    const char *near = cfg_suggest(name, known, index + 1);
    char list[600];
    if (near != NULL)
        rc = cfg_fail(p, node, path,
                      "no layer named '%.80s' comes before this one; did you mean "
                      "'%s'?",
                      name, near);
    else
        rc = cfg_fail(p, node, path,
                      "no layer named '%.80s' comes before this one; known names: "
                      "%s",
                      name, cfg_join(known, index + 1, list, sizeof list));
cleanup:
    free(names);
    free(known);
    return rc;
}

static kiln_status parse_inputs(cfg_parser *p, int node, const char *path, size_t index,
                                config_layer *layer)
{
    yaml_node_t *n = cfg_node(p, node);
    char got[128], item[CFG_PATH_BYTES];
    const char *kind = kiln_layer_kind_name(layer->spec.kind);
    size_t count = 1;
    if (n->type == YAML_SEQUENCE_NODE)
        count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    else if (n->type != YAML_SCALAR_NODE || cfg_is_null(n))
        return cfg_fail(p, node, path, "expected a layer name or a list of names, got %s",
                        cfg_describe(n, got, sizeof got));
    if (is_merge(layer->spec.kind) && (count < 2 || count > KILN_SPEC_MAX_INPUTS))
        return cfg_fail(p, node, path, "%s needs 2 to %d inputs, got %zu", kind,
                        KILN_SPEC_MAX_INPUTS, count);
    if (!is_merge(layer->spec.kind) && count != 1)
        return cfg_fail(p, node, path, "%s takes one input, got %zu (concat and add take several)",
                        kind, count);
    for (size_t k = 0; k < count; k++) {
        int id = n->type == YAML_SEQUENCE_NODE ? n->data.sequence.items.start[k] : node;
        const char *at = n->type == YAML_SEQUENCE_NODE ? cfg_path_index(path, k, item) : path;
        kiln_status rc = cfg_parse_string(p, id, at, "a layer name", layer->inputs[k], NAME_BYTES);
        if (rc == KILN_OK)
            rc = check_input(p, id, at, index, layer->inputs[k]);
        if (rc != KILN_OK)
            return rc;
    }
    layer->spec.n_inputs = (int)count;
    return KILN_OK;
}

/* ---- layers ---- */

static kiln_status parse_kind(cfg_parser *p, int node, const char *path, kiln_layer_kind *out)
{
    int k = 0;
    kiln_status rc = cfg_parse_name(p, node, path, "layer", LAYER_NAMES, KILN_LAYER_KIND_COUNT, &k);
    if (rc == KILN_OK && kiln_layer_kind_from_name(LAYER_NAMES[k], out) != KILN_OK)
        rc = cfg_fail(p, node, path, "internal error: layer '%s' has no kind", LAYER_NAMES[k]);
    return rc;
}

static kiln_status parse_layer(cfg_parser *p, int node, const char *path, size_t index,
                               config_layer *layer)
{
    yaml_node_t *n = cfg_node(p, node);
    char params_path[CFG_PATH_BYTES], child[CFG_PATH_BYTES], got[128], fallback[NAME_BYTES],
        other[NAME_BYTES];
    int params = 0, holder = 0;
    const char *const *extra = CHAIN_KEYS;
    kiln_layer_kind kind = KILN_LAYER_RELU;
    kiln_status rc = KILN_OK;
    yaml_node_pair_t *op = cfg_find_pair(p, node, "op");
    size_t pairs = n->type == YAML_MAPPING_NODE
                       ? (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start)
                       : 0;
    if (n->type == YAML_SCALAR_NODE && !cfg_is_null(n)) { /* relu */
        rc = parse_kind(p, node, path, &kind);
        cfg_path_key(path, cfg_text(n), params_path);
    } else if (op != NULL) { /* {name: skip1, op: concat, inputs: [up1, enc1]} */
        rc = parse_kind(p, op->value, cfg_path_key(path, "op", child), &kind);
        params = holder = node;
        extra = NODE_KEYS;
        snprintf(params_path, sizeof params_path, "%s", path);
    } else if (pairs == 1) { /* {dense: {units: 10}} */
        yaml_node_pair_t *pair = n->data.mapping.pairs.start;
        rc = parse_kind(p, pair->key, path, &kind);
        cfg_path_key(path, cfg_text(cfg_node(p, pair->key)), params_path);
        params = holder = pair->value;
    } else {
        return cfg_fail(p, node, path,
                        "expected a layer: a kind such as relu, a mapping such as {dense: "
                        "{units: 10}}, or a node such as {name: skip1, op: concat, inputs: [a, "
                        "b]}; got %s",
                        pairs > 1 ? "a mapping of several keys without 'op'"
                                  : cfg_describe(n, got, sizeof got));
    }
    if (rc != KILN_OK)
        return rc;
    kiln_layer_spec_init(&layer->spec, kind);
    rc = cfg_parse_params(p, params, node, params_path, layer_table(kind), layer, extra);
    yaml_node_pair_t *name = rc == KILN_OK ? cfg_find_pair(p, holder, "name") : NULL;
    yaml_node_pair_t *inputs = rc == KILN_OK ? cfg_find_pair(p, holder, "inputs") : NULL;
    if (name != NULL)
        rc = parse_layer_name(p, name->value, cfg_path_key(params_path, "name", child), index,
                              layer);
    if (rc == KILN_OK && inputs != NULL)
        rc = parse_inputs(p, inputs->value, cfg_path_key(params_path, "inputs", child), index,
                          layer);
    else if (rc == KILN_OK && is_merge(kind))
        rc = cfg_fail(p, holder != 0 ? holder : node, params_path,
                      "missing required key 'inputs' (the names of the layers to %s)",
                      kind == KILN_LAYER_ADD ? "sum" : "join");
    if (rc != KILN_OK)
        return rc;
    layer_name(layer, index, fallback);
    for (size_t j = 0; layer->name[0] == '\0' && j < index; j++) {
        if (strcmp(layer_name(&p->layers[j], j, other), fallback) == 0)
            return cfg_fail(p, node, path,
                            "its default name '%s' is already the name of "
                            "model.layers[%zu]; give this layer a name",
                            fallback, j);
    }
    if (!cfg_is_override(p, node)) {
        layer->line = (int)n->start_mark.line + 1;
        layer->column = (int)n->start_mark.column + 1;
    }
    return KILN_OK;
}

static kiln_status parse_layers(cfg_parser *p, int node, const char *path, const cfg_field *f,
                                void *base)
{
    config_model *m = base;
    yaml_node_t *n = cfg_node(p, node);
    char got[128], item[CFG_PATH_BYTES];
    (void)f;
    if (n->type != YAML_SEQUENCE_NODE)
        return cfg_fail(p, node, path,
                        "expected a list of layers, such as [flatten, {dense: {units: 10}}], got "
                        "%s",
                        cfg_describe(n, got, sizeof got));
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count == 0)
        return cfg_fail(p, node, path, "expected at least one layer, got an empty list");
    free(m->layers);
    m->n_layers = 0;
    m->layers = calloc(count, sizeof *m->layers);
    if (m->layers == NULL)
        return cfg_fail_memory(p);
    p->layers = m->layers;
    for (size_t i = 0; i < count; i++) {
        p->n_layers = i;
        int id = cfg_node(p, node)->data.sequence.items.start[i];
        kiln_status rc = parse_layer(p, id, cfg_path_index(path, i, item), i, &m->layers[i]);
        if (rc != KILN_OK)
            return rc;
        m->n_layers = i + 1;
    }
    return KILN_OK;
}

static void write_layers(cfg_writer *w, const cfg_field *f, const void *base)
{
    const config_model *m = base;
    (void)f;
    cfg_write_list_start(w, false);
    for (size_t i = 0; i < m->n_layers; i++) {
        const config_layer *l = &m->layers[i];
        const cfg_table *t = layer_table(l->spec.kind);
        const char *kind = kiln_layer_kind_name(l->spec.kind);
        if (l->name[0] != '\0' || l->spec.n_inputs > 0) {
            cfg_write_map_start(w, true);
            if (l->name[0] != '\0') {
                cfg_write_plain(w, "name");
                cfg_write_string(w, l->name);
            }
            cfg_write_plain(w, "op");
            cfg_write_plain(w, kind);
            if (l->spec.n_inputs > 0) {
                cfg_write_plain(w, "inputs");
                cfg_write_list_start(w, true);
                for (int k = 0; k < l->spec.n_inputs; k++)
                    cfg_write_string(w, l->inputs[k]);
                cfg_write_list_end(w);
            }
            cfg_write_fields(w, t, l);
            cfg_write_map_end(w);
        } else if (t->n_fields == 0) {
            cfg_write_plain(w, kind);
        } else {
            cfg_write_map_start(w, true);
            cfg_write_plain(w, kind);
            cfg_write_table(w, t, l, true);
            cfg_write_map_end(w);
        }
    }
    cfg_write_list_end(w);
}

static bool equal_layers(const cfg_field *f, const void *a, const void *b, char *path)
{
    const config_model *x = a, *y = b;
    char item[CFG_PATH_BYTES];
    (void)f;
    if (x->n_layers != y->n_layers)
        return false;
    for (size_t i = 0; i < x->n_layers; i++) {
        const config_layer *s = &x->layers[i], *t = &y->layers[i];
        cfg_path_index(path, i, item);
        memcpy(path, item, strlen(item) + 1);
        if (s->spec.kind != t->spec.kind || strcmp(s->name, t->name) != 0 ||
            s->spec.n_inputs != t->spec.n_inputs)
            return false;
        for (int k = 0; k < s->spec.n_inputs; k++) {
            if (strcmp(s->inputs[k], t->inputs[k]) != 0)
                return false;
        }
        cfg_path_key(path, kiln_layer_kind_name(s->spec.kind), item);
        memcpy(path, item, strlen(item) + 1);
        if (!cfg_equal_table(layer_table(s->spec.kind), s, t, path))
            return false;
        *strrchr(path, '[') = '\0';
    }
    return true;
}

/* Layer keys are listed as "KIND.KEY" ("dense.units"), as docs/CONFIG.md's layer table has
 * them, plus the node keys. */
static void visit_layers(const cfg_field *f, const char *path, void (*fn)(const char *, void *),
                         void *user)
{
    (void)f;
    (void)path;
    for (size_t k = 0; NODE_KEYS[k] != NULL; k++)
        fn(NODE_KEYS[k], user);
    for (int k = 0; k < KILN_LAYER_KIND_COUNT; k++) {
        fn(LAYER_NAMES[k], user);
        cfg_visit_table(layer_table((kiln_layer_kind)k), LAYER_NAMES[k], fn, user);
    }
}

static const cfg_custom LAYERS_TYPE = {parse_layers, write_layers, equal_layers, visit_layers};

/* ---- input shape ---- */

static kiln_status parse_shape(cfg_parser *p, int node, const char *path, const cfg_field *f,
                               void *base)
{
    kiln_shape *shape = (kiln_shape *)((char *)base + f->offset);
    yaml_node_t *n = cfg_node(p, node);
    cfg_field dim = {.key = "input", .type = CFG_INT64, .flags = CFG_MIN, .min = 1};
    char got[128], item[CFG_PATH_BYTES];
    size_t count = n->type == YAML_SEQUENCE_NODE
                       ? (size_t)(n->data.sequence.items.top - n->data.sequence.items.start)
                       : 0;
    if (count < 1 || count >= KILN_MAX_DIMS) {
        if (n->type == YAML_SEQUENCE_NODE)
            snprintf(got, sizeof got, "a list of %zu", count);
        else
            cfg_describe(n, got, sizeof got);
        return cfg_fail(p, node, path,
                        "expected one sample's shape without the batch axis: a list of 1 to %d "
                        "integers >= 1, such as [1, 28, 28]; got %s",
                        KILN_MAX_DIMS - 1, got);
    }
    shape->ndim = (int)count;
    for (size_t d = 0; d < count; d++) {
        int id = cfg_node(p, node)->data.sequence.items.start[d];
        kiln_status rc = cfg_parse_int(p, id, cfg_path_index(path, d, item), &dim, &shape->dim[d]);
        if (rc != KILN_OK)
            return rc;
    }
    return KILN_OK;
}

static void write_shape(cfg_writer *w, const cfg_field *f, const void *base)
{
    const kiln_shape *shape = (const kiln_shape *)((const char *)base + f->offset);
    cfg_write_list_start(w, true);
    for (int d = 0; d < shape->ndim; d++)
        cfg_write_int(w, shape->dim[d]);
    cfg_write_list_end(w);
}

static bool equal_shape(const cfg_field *f, const void *a, const void *b, char *path)
{
    (void)path;
    return kiln_shape_equal((const kiln_shape *)((const char *)a + f->offset),
                            (const kiln_shape *)((const char *)b + f->offset));
}

static const cfg_custom SHAPE_TYPE = {parse_shape, write_shape, equal_shape, NULL};

static const cfg_field MODEL_FIELDS[] = {
    {.key = "input",
     .type = CFG_CUSTOM,
     .flags = CFG_REQUIRED,
     .offset = offsetof(config_model, input),
     .custom = &SHAPE_TYPE},
    {.key = "layers",
     .type = CFG_CUSTOM,
     .flags = CFG_REQUIRED,
     .offset = 0,
     .custom = &LAYERS_TYPE},
};
const cfg_table cfg_model_table = CFG_TABLE(MODEL_FIELDS, NULL);
