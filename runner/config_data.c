/*
 * The config's data section: the format, each split's files (keys that depend on the format),
 * the validation split, duplicate removal, and data.preprocess, a list of steps each written
 * as a name alone or a one-key mapping to its setting ({scale: F}, standardize or
 * {standardize: global|per_feature|per_channel}, minmax, {impute: mean|median} or
 * {impute: {constant: F}}, drop_missing). train_data.c turns the steps into the library's.
 */
#include <stdio.h>
#include <string.h>

#include "config_internal.h"
#include "kiln/synthetic.h"

#define FIELD(struct_, member) .offset = offsetof(struct_, member)

static const char *const FORMAT_NAMES[] = {"idx", "csv", "npy", "synthetic", NULL};
static const char *const SYNTHETIC_NAMES[] = {"spheres3d"};
static const char *const PREPROCESS_NAMES[] = {"scale", "standardize", "minmax", "impute",
                                               "drop_missing"};
static const char *const STANDARDIZE_NAMES[] = {"global", "per_feature", "per_channel", NULL};
static const char *const IMPUTE_NAMES[] = {"mean", "median", "constant"};
enum { N_STEP_KINDS = 5, N_STANDARDIZE = 3, N_IMPUTE = 3 };

/* data.*.label_column: a column index from 0, or a header name (a string that is not an
 * integer; quote a name that looks like one). */
static kiln_status parse_label_column(cfg_parser *p, int node, const char *path, const cfg_field *f,
                                      void *base)
{
    config_files *files =
        (config_files *)((char *)base + f->offset - offsetof(config_files, label_column));
    yaml_node_t *n = cfg_node(p, node);
    const char *text = cfg_text(n);
    bool quoted = n->type == YAML_SCALAR_NODE && n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
    char *end = NULL;
    if (text != NULL && !quoted)
        (void)strtoll(text, &end, 10);
    files->label_name[0] = '\0';
    if (text == NULL || quoted || end == text || *end != '\0') {
        char got[128];
        if (text == NULL || text[0] == '\0')
            return cfg_fail(p, node, path, "expected a column index >= 0 or a column name, got %s",
                            cfg_describe(n, got, sizeof got));
        return cfg_parse_string(p, node, path, "column name", files->label_name,
                                sizeof files->label_name);
    }
    cfg_field index = *f;
    index.type = CFG_INT64;
    return cfg_parse_int(p, node, path, &index, &files->label_column);
}

static void write_label_column(cfg_writer *w, const cfg_field *f, const void *base)
{
    const config_files *files = (const config_files *)((const char *)base + f->offset -
                                                       offsetof(config_files, label_column));
    if (files->label_name[0] != '\0')
        cfg_write_string(w, files->label_name);
    else
        cfg_write_int(w, files->label_column);
}

static bool equal_label_column(const cfg_field *f, const void *a, const void *b, char *path)
{
    (void)path;
    size_t at = f->offset - offsetof(config_files, label_column);
    const config_files *x = (const config_files *)((const char *)a + at);
    const config_files *y = (const config_files *)((const char *)b + at);
    return strcmp(x->label_name, y->label_name) == 0 &&
           (x->label_name[0] != '\0' || x->label_column == y->label_column);
}

static const cfg_custom LABEL_COLUMN_TYPE = {parse_label_column, write_label_column,
                                             equal_label_column, NULL};

/* A label column given by name needs the header that names it. */
static kiln_status finish_csv(cfg_parser *p, int node, const char *path, void *base)
{
    const config_files *files = base;
    if (files->label_name[0] != '\0' && !files->header)
        return cfg_fail(p, node, path, "label_column '%s' names a column, which needs header: true",
                        files->label_name);
    return KILN_OK;
}

static const cfg_field FILES_FIELDS[] = {
    {.key = "images",
     .type = CFG_PATH,
     .flags = CFG_REQUIRED,
     FIELD(config_files, images),
     .size = CONFIG_MAX_PATH},
    {.key = "labels",
     .type = CFG_PATH,
     .flags = CFG_REQUIRED,
     FIELD(config_files, labels),
     .size = CONFIG_MAX_PATH},
};
static const cfg_field CSV_FIELDS[] = {
    {.key = "file",
     .type = CFG_PATH,
     .flags = CFG_REQUIRED,
     FIELD(config_files, file),
     .size = CONFIG_MAX_PATH},
    {.key = "label_column",
     .type = CFG_CUSTOM,
     .flags = CFG_MIN,
     .min = 0,
     FIELD(config_files, label_column),
     .custom = &LABEL_COLUMN_TYPE},
    {.key = "header", .type = CFG_BOOL, FIELD(config_files, header)},
};
static const cfg_table FILES_TABLE = CFG_TABLE(FILES_FIELDS, NULL);
static const cfg_table CSV_TABLE = CFG_TABLE(CSV_FIELDS, finish_csv);

/* A split's keys depend on data.format, parsed before it. */
static const cfg_table *files_table(const config_data *d)
{
    return d->format == CONFIG_FORMAT_CSV ? &CSV_TABLE : &FILES_TABLE;
}

static kiln_status parse_files(cfg_parser *p, int node, const char *path, const cfg_field *f,
                               void *base)
{
    return cfg_parse_table(p, node, path, files_table(base), (char *)base + f->offset, NULL);
}

static void write_files(cfg_writer *w, const cfg_field *f, const void *base)
{
    cfg_write_table(w, files_table(base), (const char *)base + f->offset, false);
}

static bool equal_files(const cfg_field *f, const void *a, const void *b, char *path)
{
    return cfg_equal_table(files_table(a), (const char *)a + f->offset, (const char *)b + f->offset,
                           path);
}

static void visit_files(const cfg_field *f, const char *path, void (*fn)(const char *, void *),
                        void *user)
{
    (void)f;
    cfg_visit_table(&FILES_TABLE, path, fn, user);
    cfg_visit_table(&CSV_TABLE, path, fn, user);
}

static const cfg_custom FILES_TYPE = {parse_files, write_files, equal_files, visit_files};

/* ---- data.preprocess ---- */

static const cfg_field SCALE_FIELD = {
    .key = "scale", .type = CFG_DOUBLE, .flags = CFG_NONZERO, FIELD(config_preprocess, scale)};
static const cfg_field STANDARDIZE_FIELD = {.key = "standardize",
                                            .type = CFG_ENUM,
                                            FIELD(config_preprocess, standardize),
                                            .names = STANDARDIZE_NAMES};
static const cfg_field FILL_FIELD = {
    .key = "constant", .type = CFG_DOUBLE, FIELD(config_preprocess, fill)};

/* A step's setting node: 0 when the name was written alone or mapped to null. */
static int setting(cfg_parser *p, int params)
{
    return params != 0 && !cfg_is_null(cfg_node(p, params)) ? params : 0;
}

/* {impute: mean}, {impute: median} or {impute: {constant: F}} at `params`. */
static kiln_status parse_impute(cfg_parser *p, int step, int params, const char *path,
                                config_preprocess *s)
{
    char child[CFG_PATH_BYTES];
    int strategy = 0, value = 0;
    if (params == 0)
        return cfg_fail(p, step, path,
                        "impute needs a strategy: {impute: mean}, {impute: median} or "
                        "{impute: {constant: 0}}");
    kiln_status rc = cfg_parse_choice(p, params, path, "imputation strategy", IMPUTE_NAMES,
                                      N_IMPUTE, &strategy, &value, child);
    if (rc != KILN_OK)
        return rc;
    s->impute = (config_impute)strategy;
    value = setting(p, value);
    if (strategy != CONFIG_IMPUTE_CONSTANT && value != 0)
        return cfg_fail(p, value, child, "%s takes no value; write {impute: %s}",
                        IMPUTE_NAMES[strategy], IMPUTE_NAMES[strategy]);
    if (strategy == CONFIG_IMPUTE_CONSTANT && value == 0)
        return cfg_fail(p, params, child,
                        "constant needs its fill value, as in {impute: {constant: 0}}");
    return strategy == CONFIG_IMPUTE_CONSTANT ? cfg_parse_field(p, value, child, &FILL_FIELD, s)
                                              : KILN_OK;
}

static kiln_status parse_step(cfg_parser *p, int step, const char *item, config_preprocess *s)
{
    char child[CFG_PATH_BYTES];
    int kind = 0, params = 0;
    kiln_status rc = cfg_parse_choice(p, step, item, "preprocessing step", PREPROCESS_NAMES,
                                      N_STEP_KINDS, &kind, &params, child);
    if (rc != KILN_OK)
        return rc;
    memset(s, 0, sizeof *s);
    s->kind = (config_preprocess_kind)kind;
    s->scale = 1.0;
    s->standardize = CONFIG_STANDARDIZE_GLOBAL;
    int value = setting(p, params);
    switch (s->kind) {
    case CONFIG_PREPROCESS_SCALE:
        if (params == 0)
            return cfg_fail(p, step, item, "scale needs its factor, as in {scale: 0.00392}");
        return cfg_parse_field(p, params, child, &SCALE_FIELD, s);
    case CONFIG_PREPROCESS_STANDARDIZE:
        rc = value != 0 ? cfg_parse_name(p, value, child, "standardize mode", STANDARDIZE_NAMES,
                                         N_STANDARDIZE, &kind)
                        : KILN_OK;
        if (value != 0 && rc == KILN_OK)
            s->standardize = (config_standardize)kind;
        return rc;
    case CONFIG_PREPROCESS_IMPUTE:
        return parse_impute(p, step, value, child, s);
    case CONFIG_PREPROCESS_MINMAX:
    case CONFIG_PREPROCESS_DROP_MISSING:
    default:
        if (value != 0)
            return cfg_fail(p, value, child, "%s takes no setting; write it alone, as in [%s]",
                            PREPROCESS_NAMES[kind], PREPROCESS_NAMES[kind]);
        return KILN_OK;
    }
}

static kiln_status parse_preprocess(cfg_parser *p, int node, const char *path, const cfg_field *f,
                                    void *base)
{
    config_data *d = base;
    yaml_node_t *n = cfg_node(p, node);
    char item[CFG_PATH_BYTES], got[128];
    (void)f;
    d->n_preprocess = 0;
    if (cfg_is_null(n))
        return KILN_OK;
    if (n->type != YAML_SEQUENCE_NODE)
        return cfg_fail(p, node, path,
                        "expected a list of steps such as [{scale: 0.00392}, {standardize: "
                        "global}], got %s",
                        cfg_describe(n, got, sizeof got));
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count > CONFIG_MAX_PREPROCESS)
        return cfg_fail(p, node, path, "has %zu steps; the limit is %d", count,
                        CONFIG_MAX_PREPROCESS);
    for (size_t i = 0; i < count; i++) {
        int step = cfg_node(p, node)->data.sequence.items.start[i];
        kiln_status rc = parse_step(p, step, cfg_path_index(path, i, item), &d->preprocess[i]);
        if (rc != KILN_OK)
            return rc;
        d->n_preprocess++;
    }
    return KILN_OK;
}

static void write_preprocess(cfg_writer *w, const cfg_field *f, const void *base)
{
    const config_data *d = base;
    (void)f;
    cfg_write_list_start(w, true);
    for (int i = 0; i < d->n_preprocess; i++) {
        const config_preprocess *s = &d->preprocess[i];
        const char *name = PREPROCESS_NAMES[s->kind];
        if (s->kind == CONFIG_PREPROCESS_MINMAX || s->kind == CONFIG_PREPROCESS_DROP_MISSING) {
            cfg_write_plain(w, name);
            continue;
        }
        cfg_write_map_start(w, true);
        cfg_write_plain(w, name);
        if (s->kind == CONFIG_PREPROCESS_SCALE) {
            cfg_write_field_value(w, &SCALE_FIELD, s);
        } else if (s->kind == CONFIG_PREPROCESS_STANDARDIZE) {
            cfg_write_field_value(w, &STANDARDIZE_FIELD, s);
        } else if (s->impute != CONFIG_IMPUTE_CONSTANT) {
            cfg_write_plain(w, IMPUTE_NAMES[s->impute]);
        } else {
            cfg_write_map_start(w, true);
            cfg_write_plain(w, IMPUTE_NAMES[s->impute]);
            cfg_write_field_value(w, &FILL_FIELD, s);
            cfg_write_map_end(w);
        }
        cfg_write_map_end(w);
    }
    cfg_write_list_end(w);
}

/* Whether two steps of the same kind have the same setting; on a difference `path` (the
 * step's) is extended to the setting's key. */
static bool equal_step(const config_preprocess *s, const config_preprocess *t, char *path)
{
    cfg_append_key(path, PREPROCESS_NAMES[s->kind]);
    switch (s->kind) {
    case CONFIG_PREPROCESS_SCALE:
        return cfg_equal_field(&SCALE_FIELD, s, t, path);
    case CONFIG_PREPROCESS_STANDARDIZE:
        return cfg_equal_field(&STANDARDIZE_FIELD, s, t, path);
    case CONFIG_PREPROCESS_IMPUTE:
        if (s->impute != t->impute)
            return false;
        return s->impute != CONFIG_IMPUTE_CONSTANT ||
               cfg_equal_field(&FILL_FIELD, s, t, cfg_append_key(path, "constant"));
    default:
        return true;
    }
}

static bool equal_preprocess(const cfg_field *f, const void *a, const void *b, char *path)
{
    const config_data *x = a, *y = b;
    (void)f;
    if (x->n_preprocess != y->n_preprocess)
        return false;
    for (int i = 0; i < x->n_preprocess; i++) {
        const config_preprocess *s = &x->preprocess[i], *t = &y->preprocess[i];
        if (s->kind != t->kind)
            return cfg_path_index(path, (size_t)i, path), false;
        char step[CFG_PATH_BYTES];
        cfg_path_index(path, (size_t)i, step);
        if (!equal_step(s, t, step))
            return snprintf(path, CFG_PATH_BYTES, "%s", step), false;
    }
    return true;
}

static void visit_preprocess(const cfg_field *f, const char *path, void (*fn)(const char *, void *),
                             void *user)
{
    char child[CFG_PATH_BYTES];
    (void)f;
    for (int k = 0; k < N_STEP_KINDS; k++) {
        snprintf(child, sizeof child, "%s[].%s", path, PREPROCESS_NAMES[k]);
        fn(child, user);
    }
    snprintf(child, sizeof child, "%s[].impute.constant", path);
    fn(child, user);
}

static const cfg_custom PREPROCESS_TYPE = {parse_preprocess, write_preprocess, equal_preprocess,
                                           visit_preprocess};

static const cfg_field VALIDATION_FIELDS[] = {
    {.key = "fraction",
     .type = CFG_DOUBLE,
     .flags = CFG_MIN | CFG_MAX_OPEN,
     .min = 0,
     .max = 1,
     FIELD(config_data, validation_fraction)},
    {.key = "stratify", .type = CFG_BOOL, FIELD(config_data, stratify)},
};
static const cfg_table VALIDATION_TABLE = CFG_TABLE(VALIDATION_FIELDS, NULL);

/* ---- data.synthetic ---- */

static kiln_status finish_spheres3d(cfg_parser *p, int node, const char *path, void *base)
{
    const config_spheres3d *s = base;
    int smallest = s->size[0] < s->size[1] ? s->size[0] : s->size[1];
    smallest = smallest < s->size[2] ? smallest : s->size[2];
    if (s->max_objects < s->min_objects)
        return cfg_fail(p, node, path, "max_objects (%lld) is below min_objects (%lld)",
                        (long long)s->max_objects, (long long)s->min_objects);
    if (s->max_radius < s->min_radius)
        return cfg_fail(p, node, path, "max_radius (%g) is below min_radius (%g)", s->max_radius,
                        s->min_radius);
    if (s->max_radius > 0.5 * smallest)
        return cfg_fail(p, node, path,
                        "max_radius (%g) is more than half the smallest size (%d): objects "
                        "would not fit",
                        s->max_radius, smallest);
    return KILN_OK;
}

static const cfg_field SPHERES3D_FIELDS[] = {
    {.key = "n", .type = CFG_INT64, .flags = CFG_MIN, .min = 1, FIELD(config_spheres3d, n)},
    {.key = "test", .type = CFG_INT64, .flags = CFG_MIN, .min = 0, FIELD(config_spheres3d, test)},
    {.key = "size",
     .type = CFG_CUSTOM,
     .flags = CFG_MIN,
     .min = 4,
     FIELD(config_spheres3d, size),
     .size = 3,
     .custom = &cfg_axes_type},
    {.key = "min_objects",
     .type = CFG_INT64,
     .flags = CFG_MIN | CFG_MAX,
     .min = 1,
     .max = 64,
     FIELD(config_spheres3d, min_objects)},
    {.key = "max_objects",
     .type = CFG_INT64,
     .flags = CFG_MIN | CFG_MAX,
     .min = 1,
     .max = 64,
     FIELD(config_spheres3d, max_objects)},
    {.key = "min_radius",
     .type = CFG_DOUBLE,
     .flags = CFG_MIN,
     .min = 1,
     FIELD(config_spheres3d, min_radius)},
    {.key = "max_radius",
     .type = CFG_DOUBLE,
     .flags = CFG_MIN,
     .min = 1,
     FIELD(config_spheres3d, max_radius)},
    {.key = "ellipsoids",
     .type = CFG_DOUBLE,
     .flags = CFG_MIN | CFG_MAX,
     .min = 0,
     .max = 1,
     FIELD(config_spheres3d, ellipsoids)},
    {.key = "noise",
     .type = CFG_DOUBLE,
     .flags = CFG_MIN,
     .min = 0,
     FIELD(config_spheres3d, noise)},
    {.key = "intensity_variation",
     .type = CFG_DOUBLE,
     .flags = CFG_MIN | CFG_MAX,
     .min = 0,
     .max = 0.9,
     FIELD(config_spheres3d, intensity_variation)},
    {.key = "seed", .type = CFG_INT64, .flags = CFG_MIN, .min = 0, FIELD(config_spheres3d, seed)},
};
static const cfg_table SPHERES3D_TABLE = CFG_TABLE(SPHERES3D_FIELDS, finish_spheres3d);

void cfg_synthetic_defaults(config_data *d)
{
    /* The library's defaults, except the counts: enough volumes for a validation split and a
     * held-out test split. */
    kiln_spheres3d_options o;
    kiln_spheres3d_options_init(&o);
    config_spheres3d *s = &d->spheres3d;
    memset(s, 0, sizeof *s);
    s->n = 200;
    s->test = 40;
    s->size[0] = (int)o.depth;
    s->size[1] = (int)o.height;
    s->size[2] = (int)o.width;
    s->min_objects = o.min_objects;
    s->max_objects = o.max_objects;
    s->min_radius = o.min_radius;
    s->max_radius = o.max_radius;
    s->ellipsoids = o.ellipsoids;
    s->noise = o.noise;
    s->intensity_variation = o.intensity_variation;
    s->seed = (int64_t)o.seed;
}

/* `spheres3d` alone or `{spheres3d: {settings}}`; the only generator so far. */
static kiln_status parse_synthetic(cfg_parser *p, int node, const char *path, const cfg_field *f,
                                   void *base)
{
    config_data *d = base;
    char child[CFG_PATH_BYTES];
    int kind = 0, params = 0;
    (void)f;
    kiln_status rc = cfg_parse_choice(p, node, path, "synthetic data set", SYNTHETIC_NAMES, 1,
                                      &kind, &params, child);
    return rc == KILN_OK
               ? cfg_parse_params(p, params, node, child, &SPHERES3D_TABLE, &d->spheres3d, NULL)
               : rc;
}

static void write_synthetic(cfg_writer *w, const cfg_field *f, const void *base)
{
    const config_data *d = base;
    (void)f;
    cfg_write_map_start(w, true);
    cfg_write_plain(w, SYNTHETIC_NAMES[0]);
    cfg_write_table(w, &SPHERES3D_TABLE, &d->spheres3d, true);
    cfg_write_map_end(w);
}

static bool equal_synthetic(const cfg_field *f, const void *a, const void *b, char *path)
{
    (void)f;
    const config_data *x = a, *y = b;
    return cfg_equal_table(&SPHERES3D_TABLE, &x->spheres3d, &y->spheres3d,
                           cfg_append_key(path, SYNTHETIC_NAMES[0]));
}

static void visit_synthetic(const cfg_field *f, const char *path, void (*fn)(const char *, void *),
                            void *user)
{
    char child[CFG_PATH_BYTES];
    (void)f;
    fn(cfg_path_key(path, SYNTHETIC_NAMES[0], child), user);
    cfg_visit_table(&SPHERES3D_TABLE, child, fn, user);
}

static const cfg_custom SYNTHETIC_TYPE = {parse_synthetic, write_synthetic, equal_synthetic,
                                          visit_synthetic};

/* data.train is required except for generated data, which takes neither train nor test
 * files; data.synthetic goes with format synthetic only. */
static kiln_status finish_data(cfg_parser *p, int node, const char *path, void *base)
{
    const config_data *d = base;
    bool synthetic = d->format == CONFIG_FORMAT_SYNTHETIC;
    if (!synthetic && !d->has_train)
        return cfg_fail(p, node, path, "missing required key 'train'");
    if (synthetic && !d->has_synthetic)
        return cfg_fail(p, node, path,
                        "missing required key 'synthetic' (format synthetic generates its data, "
                        "e.g. synthetic: spheres3d)");
    if (!synthetic && d->has_synthetic)
        return cfg_fail(p, node, path, "'synthetic' needs format: synthetic (the format is %s)",
                        FORMAT_NAMES[d->format]);
    if (synthetic && (d->has_train || d->has_test))
        return cfg_fail(p, node, path,
                        "format synthetic generates its splits: remove '%s' (the test split is "
                        "synthetic.spheres3d.test held-out volumes)",
                        d->has_train ? "train" : "test");
    return KILN_OK;
}

bool config_has_test(const config *cfg)
{
    if (cfg->data.format == CONFIG_FORMAT_SYNTHETIC)
        return cfg->data.spheres3d.test > 0;
    return cfg->data.has_test;
}

static const cfg_field DATA_FIELDS[] = {
    {.key = "format",
     .type = CFG_ENUM,
     .flags = CFG_REQUIRED,
     FIELD(config_data, format),
     .names = FORMAT_NAMES},
    {.key = "train",
     .type = CFG_CUSTOM,
     .flags = CFG_OPTIONAL,
     FIELD(config_data, train),
     .aux = offsetof(config_data, has_train),
     .custom = &FILES_TYPE},
    {.key = "test",
     .type = CFG_CUSTOM,
     .flags = CFG_OPTIONAL,
     FIELD(config_data, test),
     .aux = offsetof(config_data, has_test),
     .custom = &FILES_TYPE},
    {.key = "validation", .type = CFG_SECTION, .offset = 0, .sub = &VALIDATION_TABLE},
    {.key = "remove_duplicates", .type = CFG_BOOL, FIELD(config_data, remove_duplicates)},
    {.key = "preprocess", .type = CFG_CUSTOM, .offset = 0, .custom = &PREPROCESS_TYPE},
    {.key = "cache", .type = CFG_BOOL, FIELD(config_data, cache)},
    {.key = "synthetic",
     .type = CFG_CUSTOM,
     .flags = CFG_OPTIONAL,
     .offset = 0,
     .aux = offsetof(config_data, has_synthetic),
     .custom = &SYNTHETIC_TYPE},
};
const cfg_table cfg_data_table = CFG_TABLE(DATA_FIELDS, finish_data);
