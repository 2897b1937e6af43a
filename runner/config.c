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

const char *const cfg_metric_names[] = {"accuracy", "mae", "mse", "dice", "iou", NULL};
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

static kiln_status parse_metrics(cfg_parser *p, int node, const char *path, const cfg_field *f,
                                 void *base)
{
    config *c = base;
    yaml_node_t *n = cfg_node(p, node);
    char item[CFG_PATH_BYTES], got[128];
    (void)f;
    c->n_metrics = 0;
    if (cfg_is_null(n))
        return KILN_OK;
    if (n->type != YAML_SEQUENCE_NODE)
        return cfg_fail(p, node, path, "expected a list such as [accuracy], got %s",
                        cfg_describe(n, got, sizeof got));
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    for (size_t i = 0; i < count; i++) {
        int id = n->data.sequence.items.start[i], m = 0;
        cfg_path_index(path, i, item);
        kiln_status rc = cfg_parse_name(p, id, item, "metric", cfg_metric_names, CFG_N_METRICS, &m);
        if (rc != KILN_OK)
            return rc;
        for (int j = 0; j < c->n_metrics; j++) {
            if (c->metrics[j] == (config_metric)m)
                return cfg_fail(p, id, item, "'%s' is already listed", cfg_metric_names[m]);
        }
        c->metrics[c->n_metrics++] = (config_metric)m; /* distinct, so at most CFG_N_METRICS */
    }
    return KILN_OK;
}

static void write_metrics(cfg_writer *w, const cfg_field *f, const void *base)
{
    const config *c = base;
    (void)f;
    cfg_write_list_start(w, true);
    for (int i = 0; i < c->n_metrics; i++)
        cfg_write_plain(w, cfg_metric_names[c->metrics[i]]);
    cfg_write_list_end(w);
}

static bool equal_metrics(const cfg_field *f, const void *a, const void *b, char *path)
{
    const config *x = a, *y = b;
    (void)f;
    (void)path;
    if (x->n_metrics != y->n_metrics)
        return false;
    return memcmp(x->metrics, y->metrics, (size_t)x->n_metrics * sizeof x->metrics[0]) == 0;
}

static const cfg_custom METRICS_TYPE = {parse_metrics, write_metrics, equal_metrics, NULL};

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
