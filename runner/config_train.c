/*
 * The train section of the config schema: the optimiser (SGD, Adam, AdamW with PyTorch's
 * defaults), the learning-rate schedule (constant, step, cosine, plateau, each with a warm-up),
 * the callbacks (early stopping, checkpoints, the train-versus-eval diagnosis), and monitors
 * such as "val_loss", checked against the metrics and the validation split so that a typo fails
 * before any training starts. config.c holds the rest of the schema and the loading.
 */
#include <stdio.h>
#include <string.h>

#include "config_internal.h"
#include "kiln/callbacks.h"

#define FIELD(struct_, member) .offset = offsetof(struct_, member)

const char *const cfg_mode_names[] = {"auto", "min", "max", NULL};
static const char *const THRESHOLD_NAMES[] = {"rel", "abs", NULL};
static const char *const OPTIMIZER_NAMES[] = {"sgd", "adam", "adamw"};
static const char *const SCHEDULE_NAMES[] = {"constant", "step", "cosine", "plateau"};

/* ---- monitors ---- */

config_mode config_mode_for(const char *monitor)
{
    /* The library's rule, so that the config and the callbacks agree on every name. */
    kiln_monitor_mode mode = KILN_MONITOR_AUTO;
    if (kiln_monitor_resolve_mode(NULL, monitor, KILN_MONITOR_AUTO, &mode) != KILN_OK)
        return CONFIG_MODE_AUTO;
    return mode == KILN_MONITOR_MAX ? CONFIG_MODE_MAX : CONFIG_MODE_MIN;
}

kiln_status cfg_check_monitor(cfg_parser *p, int node, const char *path, char *monitor)
{
    const config *c = p->root;
    bool validation = c->data.validation_fraction > 0.0;
    if (monitor[0] == '\0') {
        strcpy(monitor, validation ? "val_loss" : "loss");
        return KILN_OK;
    }
    enum { N_KNOWN = 2 * (CONFIG_MAX_METRICS + 1) };
    char names[N_KNOWN][CONFIG_MAX_COLUMN + 4], column[CONFIG_MAX_COLUMN];
    const char *known[N_KNOWN];
    size_t n = 0;
    bool val = strncmp(monitor, "val_", 4) == 0;
    const char *base = val ? monitor + 4 : monitor;
    config_metric wanted;
    bool metric = strcmp(base, "loss") == 0 || cfg_metric_of_column(base, &wanted);
    bool computed = strcmp(base, "loss") == 0;
    for (int i = -1; i < c->n_metrics; i++) {
        const char *name =
            i < 0 ? "loss" : config_metric_column(&c->metrics[i], column, sizeof column);
        computed = computed || strcmp(base, name) == 0;
        snprintf(names[n], sizeof names[n], "%s", name);
        known[n] = names[n];
        n++;
        snprintf(names[n], sizeof names[n], "val_%s", name);
        known[n] = names[n];
        n++;
    }
    char list[N_KNOWN * (CONFIG_MAX_COLUMN + 6)];
    if (metric && !computed)
        return cfg_fail(p, node, path, "'%s' is not computed; add %s to metrics", monitor,
                        cfg_metric_spelling(&wanted, column, sizeof column));
    if (!metric) {
        const char *near = cfg_suggest(monitor, known, n);
        if (near != NULL)
            return cfg_fail(p, node, path, "unknown monitor '%.80s'; did you mean '%s'?", monitor,
                            near);
        return cfg_fail(p, node, path, "unknown monitor '%.80s'; expected one of: %s", monitor,
                        cfg_join(known, n, list, sizeof list));
    }
    if (val && !validation)
        return cfg_fail(p, node, path,
                        "'%s' needs a validation split; set data.validation.fraction, or "
                        "monitor '%s'",
                        monitor, base);
    return KILN_OK;
}

/* Fills the monitor default, checks it, and resolves mode auto. */
static kiln_status finish_monitor(cfg_parser *p, int node, const char *path, char *monitor,
                                  config_mode *mode)
{
    char child[CFG_PATH_BYTES];
    yaml_node_pair_t *pair = cfg_find_pair(p, node, "monitor");
    kiln_status rc =
        cfg_check_monitor(p, pair != NULL ? pair->value : node,
                          pair != NULL ? cfg_path_key(path, "monitor", child) : path, monitor);
    if (rc == KILN_OK && *mode == CONFIG_MODE_AUTO)
        *mode = config_mode_for(monitor);
    if (rc == KILN_OK && *mode == CONFIG_MODE_AUTO)
        rc = cfg_fail(p, node, path,
                      "mode auto cannot tell whether '%s' should fall or rise; set "
                      "mode min or max",
                      monitor);
    return rc;
}

/* ---- optimiser ---- */

static const cfg_field SGD_FIELDS[] = {
    {.key = "lr",
     .type = CFG_FLOAT,
     .flags = CFG_MIN_OPEN,
     .min = 0,
     FIELD(kiln_optimizer_config, lr)},
    {.key = "momentum",
     .type = CFG_FLOAT,
     .flags = CFG_MIN,
     .min = 0,
     FIELD(kiln_optimizer_config, momentum)},
    {.key = "nesterov", .type = CFG_BOOL, FIELD(kiln_optimizer_config, nesterov)},
    {.key = "weight_decay",
     .type = CFG_FLOAT,
     .flags = CFG_MIN,
     .min = 0,
     FIELD(kiln_optimizer_config, weight_decay)},
    {.key = "clip_norm",
     .type = CFG_FLOAT,
     .flags = CFG_MIN,
     .min = 0,
     FIELD(kiln_optimizer_config, clip_norm)},
};
static const cfg_field ADAM_FIELDS[] = {
    {.key = "lr",
     .type = CFG_FLOAT,
     .flags = CFG_MIN_OPEN,
     .min = 0,
     FIELD(kiln_optimizer_config, lr)},
    {.key = "beta1",
     .type = CFG_FLOAT,
     .flags = CFG_MIN | CFG_MAX_OPEN,
     .min = 0,
     .max = 1,
     FIELD(kiln_optimizer_config, beta1)},
    {.key = "beta2",
     .type = CFG_FLOAT,
     .flags = CFG_MIN | CFG_MAX_OPEN,
     .min = 0,
     .max = 1,
     FIELD(kiln_optimizer_config, beta2)},
    {.key = "eps",
     .type = CFG_FLOAT,
     .flags = CFG_MIN_OPEN,
     .min = 0,
     FIELD(kiln_optimizer_config, eps)},
    {.key = "weight_decay",
     .type = CFG_FLOAT,
     .flags = CFG_MIN,
     .min = 0,
     FIELD(kiln_optimizer_config, weight_decay)},
    {.key = "clip_norm",
     .type = CFG_FLOAT,
     .flags = CFG_MIN,
     .min = 0,
     FIELD(kiln_optimizer_config, clip_norm)},
};

static kiln_status finish_sgd(cfg_parser *p, int node, const char *path, void *base)
{
    const kiln_optimizer_config *o = base;
    char child[CFG_PATH_BYTES];
    yaml_node_pair_t *pair = cfg_find_pair(p, node, "nesterov");
    if (o->nesterov && !(o->momentum > 0.0f))
        return cfg_fail(p, pair != NULL ? pair->value : node, cfg_path_key(path, "nesterov", child),
                        "Nesterov momentum needs momentum > 0 (got %g); set momentum, such as 0.9",
                        (double)o->momentum);
    return KILN_OK;
}

static const cfg_table SGD_TABLE = CFG_TABLE(SGD_FIELDS, finish_sgd);
static const cfg_table ADAM_TABLE = CFG_TABLE(ADAM_FIELDS, NULL);

static const cfg_table *optimizer_table(kiln_optimizer_kind kind)
{
    return kind == KILN_OPTIMIZER_SGD ? &SGD_TABLE : &ADAM_TABLE;
}

static kiln_status parse_optimizer(cfg_parser *p, int node, const char *path, const cfg_field *f,
                                   void *base)
{
    kiln_optimizer_config *o = (kiln_optimizer_config *)((char *)base + f->offset);
    char child[CFG_PATH_BYTES];
    int kind = 0, params = 0;
    kiln_status rc =
        cfg_parse_choice(p, node, path, "optimizer", OPTIMIZER_NAMES, 3, &kind, &params, child);
    if (rc != KILN_OK)
        return rc;
    kiln_optimizer_config_init(o, (kiln_optimizer_kind)kind);
    return cfg_parse_params(p, params, node, child, optimizer_table(o->kind), o, NULL);
}

static void write_choice(cfg_writer *w, const char *name, const cfg_table *t, const void *base)
{
    cfg_write_map_start(w, false);
    cfg_write_plain(w, name);
    cfg_write_table(w, t, base, false);
    cfg_write_map_end(w);
}

static void write_optimizer(cfg_writer *w, const cfg_field *f, const void *base)
{
    const kiln_optimizer_config *o = (const void *)((const char *)base + f->offset);
    write_choice(w, OPTIMIZER_NAMES[o->kind], optimizer_table(o->kind), o);
}

static bool equal_optimizer(const cfg_field *f, const void *a, const void *b, char *path)
{
    const kiln_optimizer_config *x = (const void *)((const char *)a + f->offset);
    const kiln_optimizer_config *y = (const void *)((const char *)b + f->offset);
    if (x->kind != y->kind)
        return false;
    return cfg_equal_table(optimizer_table(x->kind), x, y,
                           cfg_append_key(path, OPTIMIZER_NAMES[x->kind]));
}

static void visit_optimizer(const cfg_field *f, const char *path, void (*fn)(const char *, void *),
                            void *user)
{
    char child[CFG_PATH_BYTES];
    (void)f;
    for (int k = 0; k < 3; k++) {
        fn(cfg_path_key(path, OPTIMIZER_NAMES[k], child), user);
        cfg_visit_table(optimizer_table((kiln_optimizer_kind)k), child, fn, user);
    }
}

static const cfg_custom OPTIMIZER_TYPE = {parse_optimizer, write_optimizer, equal_optimizer,
                                          visit_optimizer};

/* ---- schedule ---- */

#define WARMUP_FIELD                                                                               \
    {                                                                                              \
        .key = "warmup_steps", .type = CFG_INT64, .flags = CFG_MIN, .min = 0,                      \
        FIELD(config_schedule, warmup_steps)                                                       \
    }
#define MIN_LR_FIELD                                                                               \
    {                                                                                              \
        .key = "min_lr", .type = CFG_DOUBLE, .flags = CFG_MIN, .min = 0,                           \
        FIELD(config_schedule, min_lr)                                                             \
    }

static const cfg_field CONSTANT_FIELDS[] = {WARMUP_FIELD};
static const cfg_field STEP_FIELDS[] = {
    {.key = "step_size",
     .type = CFG_INT64,
     .flags = CFG_REQUIRED | CFG_MIN,
     .min = 1,
     FIELD(config_schedule, step_size)},
    {.key = "gamma",
     .type = CFG_DOUBLE,
     .flags = CFG_MIN_OPEN,
     .min = 0,
     FIELD(config_schedule, gamma)},
    WARMUP_FIELD,
};
static const cfg_field COSINE_FIELDS[] = {
    {.key = "t_max", .type = CFG_INT64, .flags = CFG_MIN, .min = 1, FIELD(config_schedule, t_max)},
    MIN_LR_FIELD,
    WARMUP_FIELD,
};
static const cfg_field PLATEAU_FIELDS[] = {
    {.key = "monitor",
     .type = CFG_STRING,
     .flags = CFG_NONEMPTY,
     FIELD(config_schedule, monitor),
     .size = CONFIG_MAX_TEXT},
    {.key = "mode", .type = CFG_ENUM, FIELD(config_schedule, mode), .names = cfg_mode_names},
    {.key = "factor",
     .type = CFG_DOUBLE,
     .flags = CFG_MIN_OPEN | CFG_MAX_OPEN,
     .min = 0,
     .max = 1,
     FIELD(config_schedule, factor)},
    {.key = "patience",
     .type = CFG_INT64,
     .flags = CFG_MIN,
     .min = 0,
     FIELD(config_schedule, patience)},
    {.key = "min_delta",
     .type = CFG_DOUBLE,
     .flags = CFG_MIN,
     .min = 0,
     FIELD(config_schedule, min_delta)},
    {.key = "threshold_mode",
     .type = CFG_ENUM,
     FIELD(config_schedule, threshold_mode),
     .names = THRESHOLD_NAMES},
    {.key = "cooldown",
     .type = CFG_INT64,
     .flags = CFG_MIN,
     .min = 0,
     FIELD(config_schedule, cooldown)},
    MIN_LR_FIELD,
    {.key = "eps", .type = CFG_DOUBLE, .flags = CFG_MIN, .min = 0, FIELD(config_schedule, eps)},
    WARMUP_FIELD,
};

static kiln_status finish_cosine(cfg_parser *p, int node, const char *path, void *base)
{
    config_schedule *s = base;
    (void)node;
    (void)path;
    if (s->t_max == 0) /* not given: anneal over the whole run */
        s->t_max = p->root->train.epochs;
    return KILN_OK;
}

static kiln_status finish_plateau(cfg_parser *p, int node, const char *path, void *base)
{
    config_schedule *s = base;
    return finish_monitor(p, node, path, s->monitor, &s->mode);
}

static const cfg_table SCHEDULE_TABLES[] = {
    CFG_TABLE(CONSTANT_FIELDS, NULL),
    CFG_TABLE(STEP_FIELDS, NULL),
    CFG_TABLE(COSINE_FIELDS, finish_cosine),
    CFG_TABLE(PLATEAU_FIELDS, finish_plateau),
};

void cfg_schedule_defaults(config_schedule *s, kiln_schedule_kind kind)
{
    kiln_schedule k;
    kiln_schedule_init(&k, kind, 1e-3);
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->warmup_steps = k.warmup_steps;
    s->step_size = k.step_size;
    s->gamma = k.gamma;
    s->t_max = 0; /* train.epochs, filled once known */
    s->min_lr = k.min_lr;
    s->mode = CONFIG_MODE_AUTO;
    s->factor = k.factor;
    s->patience = k.patience;
    s->min_delta = k.min_delta;
    s->threshold_mode = k.absolute ? CONFIG_THRESHOLD_ABS : CONFIG_THRESHOLD_REL;
    s->cooldown = k.cooldown;
    s->eps = k.eps;
}

static kiln_status parse_schedule(cfg_parser *p, int node, const char *path, const cfg_field *f,
                                  void *base)
{
    config_schedule *s = (config_schedule *)((char *)base + f->offset);
    char child[CFG_PATH_BYTES];
    int kind = 0, params = 0;
    kiln_status rc =
        cfg_parse_choice(p, node, path, "schedule", SCHEDULE_NAMES, 4, &kind, &params, child);
    if (rc != KILN_OK)
        return rc;
    cfg_schedule_defaults(s, (kiln_schedule_kind)kind);
    return cfg_parse_params(p, params, node, child, &SCHEDULE_TABLES[kind], s, NULL);
}

static void write_schedule(cfg_writer *w, const cfg_field *f, const void *base)
{
    const config_schedule *s = (const void *)((const char *)base + f->offset);
    write_choice(w, SCHEDULE_NAMES[s->kind], &SCHEDULE_TABLES[s->kind], s);
}

static bool equal_schedule(const cfg_field *f, const void *a, const void *b, char *path)
{
    const config_schedule *x = (const void *)((const char *)a + f->offset);
    const config_schedule *y = (const void *)((const char *)b + f->offset);
    if (x->kind != y->kind)
        return false;
    return cfg_equal_table(&SCHEDULE_TABLES[x->kind], x, y,
                           cfg_append_key(path, SCHEDULE_NAMES[x->kind]));
}

static void visit_schedule(const cfg_field *f, const char *path, void (*fn)(const char *, void *),
                           void *user)
{
    char child[CFG_PATH_BYTES];
    (void)f;
    for (int k = 0; k < 4; k++) {
        fn(cfg_path_key(path, SCHEDULE_NAMES[k], child), user);
        cfg_visit_table(&SCHEDULE_TABLES[k], child, fn, user);
    }
}

static const cfg_custom SCHEDULE_TYPE = {parse_schedule, write_schedule, equal_schedule,
                                         visit_schedule};

/* ---- callbacks and train ---- */

static kiln_status parse_baseline(cfg_parser *p, int node, const char *path, const cfg_field *f,
                                  void *base)
{
    config_early_stopping *e = base;
    if (cfg_is_null(cfg_node(p, node))) {
        e->has_baseline = false;
        return KILN_OK;
    }
    kiln_status rc = cfg_parse_number(p, node, path, f, &e->baseline);
    e->has_baseline = rc == KILN_OK;
    return rc;
}

static void write_baseline(cfg_writer *w, const cfg_field *f, const void *base)
{
    const config_early_stopping *e = base;
    (void)f;
    if (e->has_baseline)
        cfg_write_double(w, e->baseline);
    else
        cfg_write_plain(w, "null");
}

static bool equal_baseline(const cfg_field *f, const void *a, const void *b, char *path)
{
    const config_early_stopping *x = a, *y = b;
    (void)f;
    (void)path;
    return x->has_baseline == y->has_baseline && (!x->has_baseline || x->baseline == y->baseline);
}

static const cfg_custom BASELINE_TYPE = {parse_baseline, write_baseline, equal_baseline, NULL};

static kiln_status finish_early_stopping(cfg_parser *p, int node, const char *path, void *base)
{
    config_early_stopping *e = base;
    return finish_monitor(p, node, path, e->monitor, &e->mode);
}

static kiln_status finish_checkpoint(cfg_parser *p, int node, const char *path, void *base)
{
    config_checkpoint *c = base;
    return finish_monitor(p, node, path, c->monitor, &c->mode);
}

static const cfg_field EARLY_STOPPING_FIELDS[] = {
    {.key = "monitor",
     .type = CFG_STRING,
     .flags = CFG_NONEMPTY,
     FIELD(config_early_stopping, monitor),
     .size = CONFIG_MAX_TEXT},
    {.key = "mode", .type = CFG_ENUM, FIELD(config_early_stopping, mode), .names = cfg_mode_names},
    {.key = "patience",
     .type = CFG_INT64,
     .flags = CFG_MIN,
     .min = 0,
     FIELD(config_early_stopping, patience)},
    {.key = "min_delta",
     .type = CFG_DOUBLE,
     .flags = CFG_MIN,
     .min = 0,
     FIELD(config_early_stopping, min_delta)},
    {.key = "baseline",
     .type = CFG_CUSTOM,
     FIELD(config_early_stopping, baseline),
     .custom = &BASELINE_TYPE},
    {.key = "start_from_epoch",
     .type = CFG_INT64,
     .flags = CFG_MIN,
     .min = 0,
     FIELD(config_early_stopping, start_from_epoch)},
    {.key = "restore_best", .type = CFG_BOOL, FIELD(config_early_stopping, restore_best)},
};
static const cfg_field CHECKPOINT_FIELDS[] = {
    {.key = "path",
     .type = CFG_PATH,
     .flags = CFG_REQUIRED,
     FIELD(config_checkpoint, path),
     .size = CONFIG_MAX_PATH},
    {.key = "monitor",
     .type = CFG_STRING,
     .flags = CFG_NONEMPTY,
     FIELD(config_checkpoint, monitor),
     .size = CONFIG_MAX_TEXT},
    {.key = "mode", .type = CFG_ENUM, FIELD(config_checkpoint, mode), .names = cfg_mode_names},
    {.key = "save_best_only", .type = CFG_BOOL, FIELD(config_checkpoint, save_best_only)},
    {.key = "save_last", .type = CFG_BOOL, FIELD(config_checkpoint, save_last)},
};
static const cfg_field DIAGNOSE_FIELDS[] = {
    {.key = "eval_train", .type = CFG_BOOL, FIELD(config_diagnose, eval_train)},
    {.key = "threshold",
     .type = CFG_DOUBLE,
     .flags = CFG_MIN_OPEN,
     .min = 0,
     FIELD(config_diagnose, threshold)},
};
static const cfg_table EARLY_STOPPING_TABLE =
    CFG_TABLE(EARLY_STOPPING_FIELDS, finish_early_stopping);
static const cfg_table CHECKPOINT_TABLE = CFG_TABLE(CHECKPOINT_FIELDS, finish_checkpoint);
static const cfg_table DIAGNOSE_TABLE = CFG_TABLE(DIAGNOSE_FIELDS, NULL);

static const cfg_field CALLBACK_FIELDS[] = {
    {.key = "early_stopping",
     .type = CFG_SECTION,
     .flags = CFG_OPTIONAL,
     FIELD(config_train, early_stopping),
     .aux = offsetof(config_train, early_stopping.enabled),
     .sub = &EARLY_STOPPING_TABLE},
    {.key = "checkpoint",
     .type = CFG_SECTION,
     .flags = CFG_OPTIONAL,
     FIELD(config_train, checkpoint),
     .aux = offsetof(config_train, checkpoint.enabled),
     .sub = &CHECKPOINT_TABLE},
    {.key = "diagnose", .type = CFG_SECTION, FIELD(config_train, diagnose), .sub = &DIAGNOSE_TABLE},
};
static const cfg_table CALLBACK_TABLE = CFG_TABLE(CALLBACK_FIELDS, NULL);

static const cfg_field TRAIN_FIELDS[] = {
    {.key = "epochs", .type = CFG_INT64, .flags = CFG_MIN, .min = 1, FIELD(config_train, epochs)},
    {.key = "batch_size",
     .type = CFG_INT64,
     .flags = CFG_MIN,
     .min = 1,
     FIELD(config_train, batch_size)},
    {.key = "optimizer",
     .type = CFG_CUSTOM,
     FIELD(config_train, optimizer),
     .custom = &OPTIMIZER_TYPE},
    {.key = "schedule",
     .type = CFG_CUSTOM,
     FIELD(config_train, schedule),
     .custom = &SCHEDULE_TYPE},
    {.key = "callbacks", .type = CFG_SECTION, .offset = 0, .sub = &CALLBACK_TABLE},
    {.key = "drop_last", .type = CFG_BOOL, FIELD(config_train, drop_last)},
    {.key = "shuffle", .type = CFG_BOOL, FIELD(config_train, shuffle)},
};
const cfg_table cfg_train_table = CFG_TABLE(TRAIN_FIELDS, NULL);
