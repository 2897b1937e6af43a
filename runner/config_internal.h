/*
 * What the config files share and nothing else sees: the parser (a libyaml document plus where
 * each node came from), the schema (tables of fields with their type, place in a struct, range
 * and default rules), and the writer (a libyaml emitter). config_yaml.c loads documents and
 * applies overrides; config_schema.c walks tables to parse and compare, config_write.c to
 * write; config.c, config_data.c, config_model.c and config_train.c hold the tables and the
 * custom types.
 */
#ifndef KILN_RUNNER_CONFIG_INTERNAL_H
#define KILN_RUNNER_CONFIG_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include <yaml.h>

#include "config.h"

enum { CFG_MAX_DEPTH = 32, CFG_MAX_VISITS = 1000000, CFG_PATH_BYTES = 512 };

typedef struct cfg_parser {
    yaml_document_t doc;
    bool has_doc;
    const char *source;                           /* the file's name, for messages */
    char base_dir[CONFIG_MAX_PATH];               /* relative paths in the file start here */
    char work_dir[CONFIG_MAX_PATH];               /* relative paths in overrides start here */
    int override_first[CONFIG_MAX_OVERRIDES + 1]; /* first node id of each override */
    const char *override_text[CONFIG_MAX_OVERRIDES];
    int n_overrides;
    config *root;               /* what has been parsed so far */
    const config_layer *layers; /* the layers parsed so far (while parsing model.layers) */
    size_t n_layers;
    config_error *err;
} cfg_parser;

typedef struct cfg_writer {
    yaml_emitter_t emitter;
    bool failed;
    const config *root;
} cfg_writer;

typedef struct cfg_field cfg_field;
typedef struct cfg_table cfg_table;

typedef enum cfg_type {
    CFG_INT64,   /* int64_t */
    CFG_INT,     /* int */
    CFG_DOUBLE,  /* double */
    CFG_FLOAT,   /* float (range-checked as a 32-bit float) */
    CFG_BOOL,    /* bool: true or false */
    CFG_STRING,  /* char[size] */
    CFG_PATH,    /* char[size], resolved against the file's directory */
    CFG_ENUM,    /* an enum (int-sized) indexing `names` */
    CFG_SECTION, /* a struct described by `sub` */
    CFG_CUSTOM,  /* parsed, written and compared by `custom` */
} cfg_type;

enum {
    CFG_REQUIRED = 1 << 0,
    CFG_MIN = 1 << 1,      /* value >= min */
    CFG_MIN_OPEN = 1 << 2, /* value > min */
    CFG_MAX = 1 << 3,      /* value <= max */
    CFG_MAX_OPEN = 1 << 4, /* value < max */
    CFG_OPTIONAL = 1 << 5, /* a bool at `aux` says whether the key was given; absent keys are
                            * not written */
    CFG_NONEMPTY = 1 << 6, /* strings */
    CFG_NONZERO = 1 << 7,  /* numbers */
};

typedef struct cfg_custom {
    /* Parses `node` (0: the key is absent and not required) into base + f->offset. */
    kiln_status (*parse)(cfg_parser *p, int node, const char *path, const cfg_field *f, void *base);
    void (*write)(cfg_writer *w, const cfg_field *f, const void *base);
    /* On a difference, returns false with `path` (holding the field's path) extended. */
    bool (*equal)(const cfg_field *f, const void *a, const void *b, char *path);
    /* Calls fn for the keys below the field (NULL: the field is a leaf). */
    void (*visit)(const cfg_field *f, const char *path, void (*fn)(const char *, void *),
                  void *user);
} cfg_custom;

struct cfg_field {
    const char *key;
    cfg_type type;
    unsigned flags;
    size_t offset;            /* of the value in the table's struct */
    size_t aux;               /* CFG_OPTIONAL's bool; a custom type's second field */
    double min, max;          /* with CFG_MIN/MAX(_OPEN) */
    size_t size;              /* string capacity; number of axes */
    const char *const *names; /* CFG_ENUM, NULL-terminated */
    const cfg_table *sub;     /* CFG_SECTION */
    const cfg_custom *custom; /* CFG_CUSTOM */
};

struct cfg_table {
    const cfg_field *fields;
    size_t n_fields;
    /* Called after the fields, to fill defaults that depend on other keys and check keys
     * together; `node` is the mapping (or 0). May be NULL. */
    kiln_status (*finish)(cfg_parser *p, int node, const char *path, void *base);
};

#define CFG_TABLE(fields, finish)                                                                  \
    {                                                                                              \
        (fields), sizeof(fields) / sizeof((fields)[0]), (finish)                                   \
    }

/* ---- config_yaml.c: documents, locations, messages, overrides ---- */

/* Loads `text` as the one document of p->doc; the root becomes a mapping when empty. */
kiln_status cfg_load(cfg_parser *p, const char *text, size_t length);
/* Duplicate keys, keys that are not scalars, nesting and alias expansion limits. */
kiln_status cfg_check_tree(cfg_parser *p, yaml_document_t *doc, int node, const char *path,
                           int depth, long *visits);
kiln_status cfg_apply_override(cfg_parser *p, const char *text);
void cfg_parser_deinit(cfg_parser *p);

yaml_node_t *cfg_node(cfg_parser *p, int id);
bool cfg_is_null(const yaml_node_t *n);
/* A plain or quoted scalar's text, NULL for a collection. */
const char *cfg_text(const yaml_node_t *n);
bool cfg_is_override(const cfg_parser *p, int id);
/* "a mapping", "a list", "null", "'text'"; returns out. */
const char *cfg_describe(const yaml_node_t *n, char *out, size_t capacity);
/* Records "WHERE: PATH: message" for `node` and returns KILN_ERR_INVALID_ARGUMENT. */
kiln_status cfg_fail(cfg_parser *p, int node, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
kiln_status cfg_fail_memory(cfg_parser *p);
/* The closest candidate within edit distance 2 (transpositions count 1), or NULL. */
const char *cfg_suggest(const char *word, const char *const *candidates, size_t n);
/* "a, b, c" into out. */
const char *cfg_join(const char *const *words, size_t n, char *out, size_t capacity);
/* path + "." + key, or path + "[i]", into out (truncated at CFG_PATH_BYTES). */
const char *cfg_path_key(const char *path, const char *key, char *out);
const char *cfg_path_index(const char *path, size_t i, char *out);
/* The pair of mapping `node` whose key is `key`, or NULL. */
yaml_node_pair_t *cfg_find_pair(cfg_parser *p, int node, const char *key);

/* ---- config_schema.c: tables ---- */

/* Parses mapping `node` (0 or null: no keys) into `base`. `extra_keys` (NULL-terminated, may be
 * NULL) are accepted without being parsed: the caller reads them. */
kiln_status cfg_parse_table(cfg_parser *p, int node, const char *path, const cfg_table *t,
                            void *base, const char *const *extra_keys);
/* cfg_parse_table for a choice's settings: `params` 0 (the name given alone) blames a missing
 * required key on `owner`, the node that named the choice. */
kiln_status cfg_parse_params(cfg_parser *p, int params, int owner, const char *path,
                             const cfg_table *t, void *base, const char *const *extra_keys);
kiln_status cfg_parse_field(cfg_parser *p, int node, const char *path, const cfg_field *f,
                            void *base);
/* A whole-number or number scalar with the field's range; `out` is not changed on error. */
kiln_status cfg_parse_int(cfg_parser *p, int node, const char *path, const cfg_field *f,
                          int64_t *out);
kiln_status cfg_parse_number(cfg_parser *p, int node, const char *path, const cfg_field *f,
                             double *out);
kiln_status cfg_parse_string(cfg_parser *p, int node, const char *path, const char *what, char *out,
                             size_t capacity);
/* A scalar among `names`; unknown names get a suggestion. */
kiln_status cfg_parse_name(cfg_parser *p, int node, const char *path, const char *what,
                           const char *const *names, size_t n, int *out);
/* "an integer >= 1", "a number in [0, 1)", ... for the field. */
const char *cfg_expected(const cfg_field *f, char *out, size_t capacity);

/* Extends a comparison's path in place with ".key"; returns it. */
char *cfg_append_key(char *path, const char *key);
bool cfg_equal_table(const cfg_table *t, const void *a, const void *b, char *path);
bool cfg_equal_field(const cfg_field *f, const void *a, const void *b, char *path);
void cfg_visit_table(const cfg_table *t, const char *path, void (*fn)(const char *, void *),
                     void *user);

/* One-of values: a name, or a mapping {name: {params}} with exactly one key. On success *kind
 * is the name's index and *params the parameter node (0 for the name alone). */
kiln_status cfg_parse_choice(cfg_parser *p, int node, const char *path, const char *what,
                             const char *const *names, size_t n, int *kind, int *params,
                             char *params_path);

/* ---- config_write.c: the emitter ---- */

void cfg_write_table(cfg_writer *w, const cfg_table *t, const void *base, bool flow);
/* The table's keys and values, inside a mapping the caller opened. */
void cfg_write_fields(cfg_writer *w, const cfg_table *t, const void *base);
void cfg_write_field_value(cfg_writer *w, const cfg_field *f, const void *base);
void cfg_write_map_start(cfg_writer *w, bool flow);
void cfg_write_map_end(cfg_writer *w);
void cfg_write_list_start(cfg_writer *w, bool flow);
void cfg_write_list_end(cfg_writer *w);
void cfg_write_plain(cfg_writer *w, const char *text);
void cfg_write_string(cfg_writer *w, const char *text);
void cfg_write_int(cfg_writer *w, int64_t value);
void cfg_write_double(cfg_writer *w, double value);
void cfg_write_float(cfg_writer *w, float value);
void cfg_write_bool(cfg_writer *w, bool value);

/* ---- config.c and config_model.c: the schema ---- */

extern const cfg_table cfg_config_table;
extern const cfg_table cfg_data_table;
extern const cfg_table cfg_model_table;
/* An integer for every axis, or a list of f->size of them (int[f->size] at the offset). */
extern const cfg_custom cfg_axes_type;
/* Defaults of data.synthetic's generators (config_init). */
void cfg_synthetic_defaults(config_data *d);
extern const cfg_table cfg_train_table;
/* The defaults of a schedule of `kind` (kiln_schedule_init's; t_max 0 until train.epochs is
 * known, mode auto). */
void cfg_schedule_defaults(config_schedule *s, kiln_schedule_kind kind);
/* The metric `column` names ("f1", "top3_accuracy"; no "val_" prefix) in *out, with its
 * settings at their defaults; false for a name that is no metric's column. */
bool cfg_metric_of_column(const char *column, config_metric *out);
/* How the metric is written in `metrics` ("f1", "{top_k: 3}"), for messages. Returns out. */
const char *cfg_metric_spelling(const config_metric *m, char *out, size_t capacity);
extern const char *const cfg_mode_names[];
/* Checks a monitor ("loss", "val_accuracy") against the metrics and the validation split. */
kiln_status cfg_check_monitor(cfg_parser *p, int node, const char *path, char *monitor);

#endif
