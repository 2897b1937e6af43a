/*
 * The top of the config schema (the top-level keys, loss and metrics; config_data.c has the
 * data section, config_model.c the model section and config_train.c the train section), the
 * defaults (config_init), and the entry points: loading a file or a string (read, parse,
 * override, check), --device, equality and the key list for the docs test.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_internal.h"

#define FIELD(struct_, member) .offset = offsetof(struct_, member)

enum { MAX_FILE = 16 << 20 };

static const char *const LOSS_NAMES[] = {
#define KILN__CONFIG_LOSS_NAME(value, name) #name,
    KILN_LOSS_KIND_LIST(KILN__CONFIG_LOSS_NAME)
#undef KILN__CONFIG_LOSS_NAME
};
enum { N_LOSSES = sizeof LOSS_NAMES / sizeof LOSS_NAMES[0] };

/* ---- loss and metrics ---- */

static const cfg_field CROSS_ENTROPY_FIELDS[] = {
    {.key = "label_smoothing",
     .type = CFG_FLOAT,
     .flags = CFG_MIN | CFG_MAX_OPEN,
     .min = 0,
     .max = 1,
     FIELD(kiln_loss_spec, label_smoothing)},
};
static const cfg_field DICE_FIELDS[] = {
    {.key = "smooth", .type = CFG_FLOAT, .flags = CFG_MIN, .min = 0, FIELD(kiln_loss_spec, smooth)},
};
static const cfg_table CROSS_ENTROPY_TABLE = CFG_TABLE(CROSS_ENTROPY_FIELDS, NULL);
static const cfg_table DICE_TABLE = CFG_TABLE(DICE_FIELDS, NULL);
static const cfg_table NO_FIELDS = {NULL, 0, NULL};

static const cfg_table *loss_table(kiln_loss_kind kind)
{
    if (kind == KILN_LOSS_SOFTMAX_CROSS_ENTROPY)
        return &CROSS_ENTROPY_TABLE;
    return kind == KILN_LOSS_DICE || kind == KILN_LOSS_DICE_BCE ? &DICE_TABLE : &NO_FIELDS;
}

static kiln_status parse_loss(cfg_parser *p, int node, const char *path, const cfg_field *f,
                              void *base)
{
    kiln_loss_spec *loss = (kiln_loss_spec *)((char *)base + f->offset);
    char child[CFG_PATH_BYTES];
    int index = 0, params = 0;
    kiln_loss_kind kind = KILN_LOSS_NONE;
    /* "none" (no loss, for inference graphs) is not a training config's choice. */
    kiln_status rc = cfg_parse_choice(p, node, path, "loss", LOSS_NAMES + 1, N_LOSSES - 1, &index,
                                      &params, child);
    if (rc != KILN_OK)
        return rc;
    if (kiln_loss_kind_from_name(LOSS_NAMES[index + 1], &kind) != KILN_OK)
        return cfg_fail(p, node, path, "internal error: loss '%s' has no kind",
                        LOSS_NAMES[index + 1]);
    kiln_loss_spec_init(loss, kind);
    return cfg_parse_params(p, params, node, child, loss_table(kind), loss, NULL);
}

static void write_loss(cfg_writer *w, const cfg_field *f, const void *base)
{
    const kiln_loss_spec *loss = (const kiln_loss_spec *)((const char *)base + f->offset);
    const cfg_table *t = loss_table(loss->kind);
    if (t->n_fields == 0) {
        cfg_write_plain(w, kiln_loss_kind_name(loss->kind));
        return;
    }
    cfg_write_map_start(w, true);
    cfg_write_plain(w, kiln_loss_kind_name(loss->kind));
    cfg_write_table(w, t, loss, true);
    cfg_write_map_end(w);
}

static bool equal_loss(const cfg_field *f, const void *a, const void *b, char *path)
{
    const kiln_loss_spec *x = (const kiln_loss_spec *)((const char *)a + f->offset);
    const kiln_loss_spec *y = (const kiln_loss_spec *)((const char *)b + f->offset);
    if (x->kind != y->kind)
        return false;
    return cfg_equal_table(loss_table(x->kind), x, y,
                           cfg_append_key(path, kiln_loss_kind_name(x->kind)));
}

static void visit_loss(const cfg_field *f, const char *path, void (*fn)(const char *, void *),
                       void *user)
{
    char child[CFG_PATH_BYTES];
    (void)f;
    for (int k = 1; k < N_LOSSES; k++) {
        fn(cfg_path_key(path, LOSS_NAMES[k], child), user);
        cfg_visit_table(loss_table((kiln_loss_kind)k), child, fn, user);
    }
}

static const cfg_custom LOSS_TYPE = {parse_loss, write_loss, equal_loss, visit_loss};

/* A metric's settings: top_k takes k as its value ({top_k: 3}); dice and iou a mapping. */
static const cfg_field TOP_K_FIELD = {
    .key = "top_k", .type = CFG_INT64, .flags = CFG_MIN, .min = 1, FIELD(config_metric, k)};
static const cfg_field MASK_METRIC_FIELDS[] = {
    {.key = "threshold", .type = CFG_DOUBLE, FIELD(config_metric, threshold)},
    {.key = "smooth", .type = CFG_DOUBLE, .flags = CFG_MIN, .min = 0, FIELD(config_metric, smooth)},
};
static const cfg_table MASK_METRIC_TABLE = CFG_TABLE(MASK_METRIC_FIELDS, NULL);

static const cfg_table *metric_table(kiln_metric_kind kind)
{
    return kind == KILN_METRIC_DICE || kind == KILN_METRIC_IOU ? &MASK_METRIC_TABLE : &NO_FIELDS;
}

static const char *metric_name(kiln_metric_kind kind)
{
    return kiln_metric_info_of(kind)->name;
}

/* The registry name, or for top_k `top_k_format` with k. */
static const char *metric_text(const config_metric *m, const char *top_k_format, char *out,
                               size_t capacity)
{
    if (m->kind == KILN_METRIC_TOP_K)
        snprintf(out, capacity, top_k_format, (long long)m->k);
    else
        snprintf(out, capacity, "%s", metric_name(m->kind));
    return out;
}

const char *config_metric_column(const config_metric *m, char *out, size_t capacity)
{
    return metric_text(m, "top%lld_accuracy", out, capacity);
}

const char *cfg_metric_spelling(const config_metric *m, char *out, size_t capacity)
{
    return metric_text(m, "{top_k: %lld}", out, capacity);
}

/* The defaults: the library's, with the threshold suiting the loss's output. */
static void metric_defaults(config_metric *m, kiln_metric_kind kind, kiln_loss_kind loss)
{
    kiln_metric_config mc;
    kiln_metric_config_init(&mc, kind);
    m->kind = kind;
    m->k = mc.k;
    m->smooth = mc.smooth;
    m->threshold = loss == KILN_LOSS_DICE ? 0.5 : 0.0; /* probabilities, else logits */
}

bool cfg_metric_of_column(const char *column, config_metric *out)
{
    for (int k = 0; k < KILN_METRIC_N_KINDS; k++) {
        if (k != KILN_METRIC_TOP_K && strcmp(column, metric_name((kiln_metric_kind)k)) == 0) {
            metric_defaults(out, (kiln_metric_kind)k, KILN_LOSS_NONE);
            return true;
        }
    }
    /* "top<k>_accuracy" with k a whole number >= 1 written without leading zeros */
    const char *digits = column + 3;
    char *end = NULL;
    if (strncmp(column, "top", 3) != 0 || digits[0] < '1' || digits[0] > '9')
        return false;
    long long k = strtoll(digits, &end, 10);
    if (strcmp(end, "_accuracy") != 0)
        return false;
    metric_defaults(out, KILN_METRIC_TOP_K, KILN_LOSS_NONE);
    out->k = k;
    return true;
}

/* NULL when the loss gives what the metric takes, else what it needs. */
static const char *metric_needs(kiln_metric_input input, kiln_loss_kind loss)
{
    switch (input) {
    case KILN_METRIC_INPUT_CLASSES:
        return loss == KILN_LOSS_SOFTMAX_CROSS_ENTROPY
                   ? NULL
                   : "a classification metric and needs loss softmax_cross_entropy";
    case KILN_METRIC_INPUT_VALUES:
        return loss == KILN_LOSS_MSE || loss == KILN_LOSS_L1
                   ? NULL
                   : "a regression metric and needs loss mse or l1";
    case KILN_METRIC_INPUT_MASKS:
        return loss == KILN_LOSS_DICE || loss == KILN_LOSS_DICE_BCE ||
                       loss == KILN_LOSS_BCE_WITH_LOGITS
                   ? NULL
                   : "a segmentation metric and needs loss dice, dice_bce or bce_with_logits";
    }
    return "an unknown kind of metric";
}

static kiln_status parse_metric(cfg_parser *p, int id, const char *item, config_metric *m)
{
    const char *names[KILN_METRIC_N_KINDS];
    char child[CFG_PATH_BYTES];
    int kind = 0, params = 0;
    for (int k = 0; k < KILN_METRIC_N_KINDS; k++)
        names[k] = metric_name((kiln_metric_kind)k);
    kiln_status rc =
        cfg_parse_choice(p, id, item, "metric", names, KILN_METRIC_N_KINDS, &kind, &params, child);
    if (rc != KILN_OK)
        return rc;
    kiln_loss_kind loss = p->root->loss.kind;
    metric_defaults(m, (kiln_metric_kind)kind, loss);
    if (kind == KILN_METRIC_TOP_K && params != 0)
        rc = cfg_parse_field(p, params, child, &TOP_K_FIELD, m);
    else if (kind != KILN_METRIC_TOP_K)
        rc = cfg_parse_params(p, params, id, child, metric_table(m->kind), m, NULL);
    if (rc != KILN_OK)
        return rc;
    const char *needs = metric_needs(kiln_metric_info_of(m->kind)->input, loss);
    if (needs != NULL)
        return cfg_fail(p, id, item, "'%s' is %s; the loss is %s", names[kind], needs,
                        kiln_loss_kind_name(loss));
    return KILN_OK;
}

static kiln_status parse_metrics(cfg_parser *p, int node, const char *path, const cfg_field *f,
                                 void *base)
{
    config *c = base;
    yaml_node_t *n = cfg_node(p, node);
    char item[CFG_PATH_BYTES], got[128], column[CONFIG_MAX_COLUMN], other[CONFIG_MAX_COLUMN];
    (void)f;
    c->n_metrics = 0;
    if (cfg_is_null(n))
        return KILN_OK;
    if (n->type != YAML_SEQUENCE_NODE)
        return cfg_fail(p, node, path, "expected a list such as [accuracy, {top_k: 3}], got %s",
                        cfg_describe(n, got, sizeof got));
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count > CONFIG_MAX_METRICS)
        return cfg_fail(p, node, path, "has %zu metrics; the limit is %d", count,
                        CONFIG_MAX_METRICS);
    for (size_t i = 0; i < count; i++) {
        int id = cfg_node(p, node)->data.sequence.items.start[i];
        config_metric *m = &c->metrics[i];
        cfg_path_index(path, i, item);
        kiln_status rc = parse_metric(p, id, item, m);
        if (rc != KILN_OK)
            return rc;
        config_metric_column(m, column, sizeof column);
        for (int j = 0; j < c->n_metrics; j++) {
            if (strcmp(config_metric_column(&c->metrics[j], other, sizeof other), column) == 0)
                return cfg_fail(p, id, item, "'%s' is already listed (metrics[%d])", column, j);
        }
        c->n_metrics++;
    }
    return KILN_OK;
}

static void write_metrics(cfg_writer *w, const cfg_field *f, const void *base)
{
    const config *c = base;
    (void)f;
    cfg_write_list_start(w, true);
    for (int i = 0; i < c->n_metrics; i++) {
        const config_metric *m = &c->metrics[i];
        const cfg_table *t = metric_table(m->kind);
        if (m->kind != KILN_METRIC_TOP_K && t->n_fields == 0) {
            cfg_write_plain(w, metric_name(m->kind));
            continue;
        }
        cfg_write_map_start(w, true);
        cfg_write_plain(w, metric_name(m->kind));
        if (m->kind == KILN_METRIC_TOP_K)
            cfg_write_field_value(w, &TOP_K_FIELD, m);
        else
            cfg_write_table(w, t, m, true);
        cfg_write_map_end(w);
    }
    cfg_write_list_end(w);
}

static bool equal_metrics(const cfg_field *f, const void *a, const void *b, char *path)
{
    const config *x = a, *y = b;
    (void)f;
    if (x->n_metrics != y->n_metrics)
        return false;
    for (int i = 0; i < x->n_metrics; i++) {
        const config_metric *s = &x->metrics[i], *t = &y->metrics[i];
        char at[CFG_PATH_BYTES];
        cfg_path_index(path, (size_t)i, at);
        bool same = s->kind == t->kind;
        if (same) {
            cfg_append_key(at, metric_name(s->kind));
            same = s->kind == KILN_METRIC_TOP_K ? s->k == t->k
                                                : cfg_equal_table(metric_table(s->kind), s, t, at);
        }
        if (!same) {
            memcpy(path, at, strlen(at) + 1);
            return false;
        }
    }
    return true;
}

static void visit_metrics(const cfg_field *f, const char *path, void (*fn)(const char *, void *),
                          void *user)
{
    char item[CFG_PATH_BYTES], child[CFG_PATH_BYTES];
    (void)f;
    snprintf(item, sizeof item, "%s[]", path);
    for (int k = 0; k < KILN_METRIC_N_KINDS; k++) {
        fn(cfg_path_key(item, metric_name((kiln_metric_kind)k), child), user);
        cfg_visit_table(metric_table((kiln_metric_kind)k), child, fn, user);
    }
}

static const cfg_custom METRICS_TYPE = {parse_metrics, write_metrics, equal_metrics, visit_metrics};

/* ---- the whole config ---- */

static kiln_status finish_config(cfg_parser *p, int node, const char *path, void *base)
{
    config *c = base;
    (void)node;
    (void)path;
    if (c->name[0] == '\0') { /* the file's name without directory and extension */
        const char *slash = strrchr(p->source, '/');
        const char *stem = slash != NULL ? slash + 1 : p->source;
        const char *dot = strrchr(stem, '.');
        size_t length = dot != NULL && dot != stem ? (size_t)(dot - stem) : strlen(stem);
        if (length >= sizeof c->name)
            length = sizeof c->name - 1;
        memcpy(c->name, stem, length);
        c->name[length] = '\0';
    }
    return KILN_OK;
}

static const cfg_field CONFIG_FIELDS[] = {
    {.key = "name",
     .type = CFG_STRING,
     .flags = CFG_NONEMPTY,
     FIELD(config, name),
     .size = CONFIG_MAX_TEXT},
    {.key = "seed", .type = CFG_INT64, .flags = CFG_MIN, .min = 0, FIELD(config, seed)},
    {.key = "device", .type = CFG_STRING, FIELD(config, device), .size = CONFIG_MAX_TEXT},
    {.key = "data",
     .type = CFG_SECTION,
     .flags = CFG_REQUIRED,
     FIELD(config, data),
     .sub = &cfg_data_table},
    {.key = "model",
     .type = CFG_SECTION,
     .flags = CFG_REQUIRED,
     FIELD(config, model),
     .sub = &cfg_model_table},
    {.key = "loss",
     .type = CFG_CUSTOM,
     .flags = CFG_REQUIRED,
     FIELD(config, loss),
     .custom = &LOSS_TYPE},
    {.key = "metrics", .type = CFG_CUSTOM, .offset = 0, .custom = &METRICS_TYPE},
    {.key = "train", .type = CFG_SECTION, FIELD(config, train), .sub = &cfg_train_table},
};
const cfg_table cfg_config_table = CFG_TABLE(CONFIG_FIELDS, finish_config);

void config_init(config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    strcpy(cfg->device, "auto");
    cfg->data.format = CONFIG_FORMAT_IDX;
    cfg_synthetic_defaults(&cfg->data);
    cfg->data.cache = true;
    cfg->data.train.header = true;
    cfg->data.test.header = true;
    kiln_loss_spec_init(&cfg->loss, KILN_LOSS_NONE);
    config_train *t = &cfg->train;
    t->epochs = 10;
    t->batch_size = 32;
    kiln_optimizer_config_init(&t->optimizer, KILN_OPTIMIZER_ADAM);
    cfg_schedule_defaults(&t->schedule, KILN_SCHEDULE_CONSTANT);
    t->early_stopping.mode = CONFIG_MODE_AUTO;
    t->checkpoint.mode = CONFIG_MODE_AUTO;
    t->diagnose.threshold = 0.25;
    t->shuffle = true;
}

void config_deinit(config *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->model.layers);
    config_init(cfg);
}

kiln_status config_load_string(const char *text, size_t length, const char *source,
                               const char *base_dir, const char *const *overrides,
                               size_t n_overrides, config *out, config_error *err)
{
    config_init(out);
    err->message[0] = '\0';
    cfg_parser *p = calloc(1, sizeof *p);
    if (p == NULL) {
        snprintf(err->message, sizeof err->message, "out of memory reading the config");
        return KILN_ERR_NO_MEMORY;
    }
    p->source = source != NULL ? source : "<config>";
    p->err = err;
    p->root = out;
    snprintf(out->source, sizeof out->source, "%s", p->source);
    if (getcwd(p->work_dir, sizeof p->work_dir) == NULL)
        p->work_dir[0] = '\0'; /* relative paths stay relative */
    if (base_dir == NULL || base_dir[0] == '\0')
        memcpy(p->base_dir, p->work_dir, sizeof p->base_dir);
    else if (base_dir[0] == '/' || p->work_dir[0] == '\0')
        snprintf(p->base_dir, sizeof p->base_dir, "%s", base_dir);
    else if (snprintf(p->base_dir, sizeof p->base_dir, "%s/%s", p->work_dir, base_dir) >=
             (int)sizeof p->base_dir)
        p->base_dir[0] = '\0'; /* too long to resolve: relative paths stay relative */
    long visits = 0;
    kiln_status rc = cfg_load(p, text, length);
    if (rc == KILN_OK)
        rc = cfg_check_tree(p, &p->doc, 1, "", 0, &visits);
    for (size_t i = 0; rc == KILN_OK && i < n_overrides; i++)
        rc = cfg_apply_override(p, overrides[i]);
    if (rc == KILN_OK)
        rc = cfg_parse_table(p, 1, "", &cfg_config_table, out, NULL);
    cfg_parser_deinit(p);
    free(p);
    if (rc != KILN_OK)
        config_deinit(out);
    return rc;
}

kiln_status config_load_file(const char *path, const char *const *overrides, size_t n_overrides,
                             config *out, config_error *err)
{
    config_init(out);
    FILE *file = fopen(path, "rb");
    char *text = NULL, dir[CONFIG_MAX_PATH];
    size_t length = 0, capacity = 0;
    int error = 0;
    while (file != NULL && !ferror(file) && !feof(file) && length <= MAX_FILE) {
        if (capacity - length < 4096) {
            capacity = capacity == 0 ? 65536 : 2 * capacity;
            char *grown = realloc(text, capacity);
            if (grown == NULL) {
                free(text);
                fclose(file);
                snprintf(err->message, sizeof err->message, "%s: out of memory reading it", path);
                return KILN_ERR_NO_MEMORY;
            }
            text = grown;
        }
        length += fread(text + length, 1, capacity - length, file);
    }
    error = file == NULL || ferror(file) ? errno : 0;
    if (file != NULL)
        fclose(file);
    if (error != 0 || file == NULL || length > MAX_FILE) {
        free(text);
        if (length > MAX_FILE)
            snprintf(err->message, sizeof err->message,
                     "%s: larger than %d MiB; is it really a config?", path, MAX_FILE >> 20);
        else
            snprintf(err->message, sizeof err->message, "cannot read config '%s': %s", path,
                     strerror(error != 0 ? error : EIO));
        return KILN_ERR_IO;
    }
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        dir[0] = '\0'; /* the working directory */
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    kiln_status rc = config_load_string(text != NULL ? text : "", length, path, dir, overrides,
                                        n_overrides, out, err);
    free(text);
    return rc;
}

kiln_status config_set_device(config *cfg, const char *device, config_error *err)
{
    if (device == NULL || strlen(device) >= sizeof cfg->device) {
        snprintf(err->message, sizeof err->message,
                 "--device: expected a device spec of at most %zu bytes", sizeof cfg->device - 1);
        return KILN_ERR_INVALID_ARGUMENT;
    }
    strcpy(cfg->device, device);
    return KILN_OK;
}

bool config_equal(const config *a, const config *b, char *where, size_t capacity)
{
    char path[CFG_PATH_BYTES] = "";
    bool equal = cfg_equal_table(&cfg_config_table, a, b, path);
    if (!equal && where != NULL)
        snprintf(where, capacity, "%s", path);
    return equal;
}

void config_visit_keys(void (*fn)(const char *path, void *user), void *user)
{
    cfg_visit_table(&cfg_config_table, "", fn, user);
}
