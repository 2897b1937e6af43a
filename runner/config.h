/*
 * The runner's config: a YAML file (docs/CONFIG.md documents every key) read with libyaml into
 * the plain structs below. Every key is checked, and a bad one is an error naming
 * file:line:column, the key path and what was expected; defaults are filled for every optional
 * key; `--set KEY=VALUE` overrides are applied before the checks; and the effective config can
 * be written back as YAML that reads back to the same struct. config_spec.c hands the model
 * section to the library as a kiln_spec. YAML never reaches the library.
 */
#ifndef KILN_RUNNER_CONFIG_H
#define KILN_RUNNER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kiln/context.h"
#include "kiln/metrics.h"
#include "kiln/spec.h"
#include "kiln/status.h"
#include "kiln/train.h"

enum {
    CONFIG_MAX_PATH = 1024,     /* bytes of a resolved path, with its terminating zero */
    CONFIG_MAX_TEXT = 256,      /* names, device specs, monitors */
    CONFIG_MAX_METRICS = 16,    /* entries of `metrics` */
    CONFIG_MAX_PREPROCESS = 16, /* steps of `data.preprocess` */
    CONFIG_MAX_OVERRIDES = 64,  /* `--set` options per run */
    CONFIG_MAX_ERROR = 2048,
};

/* One message: "FILE:LINE:COLUMN: KEY.PATH: what was wrong and what was expected", or
 * "--set KEY=VALUE: KEY.PATH: ..." when an override is at fault. */
typedef struct config_error {
    char message[CONFIG_MAX_ERROR];
} config_error;

typedef enum config_format {
    CONFIG_FORMAT_IDX = 0,       /* images and labels files, optionally .gz */
    CONFIG_FORMAT_CSV = 1,       /* one file, one sample per row, the label in a column */
    CONFIG_FORMAT_NPY = 2,       /* images and labels .npy files */
    CONFIG_FORMAT_SYNTHETIC = 3, /* generated: data.synthetic */
} config_format;

/* data.synthetic: spheres3d (kiln/synthetic.h): n volumes for training and validation, then
 * `test` more, never seen in training, for the test split. */
typedef struct config_spheres3d {
    int64_t n;                        /* 200 */
    int64_t test;                     /* 40; 0: no test split */
    int size[3];                      /* depth, height, width: 16 */
    int64_t min_objects, max_objects; /* 1, 3 */
    double min_radius, max_radius;    /* 2, 5 */
    double ellipsoids;                /* 0.5 */
    double noise;                     /* 0.2 */
    double intensity_variation;       /* 0.3 */
    int64_t seed;                     /* 0 */
} config_spheres3d;

/* The files of one split. Paths are resolved (absolute, or relative to the working directory
 * when the config file's path was); unused ones are empty. */
typedef struct config_files {
    char images[CONFIG_MAX_PATH];     /* idx, npy: required */
    char labels[CONFIG_MAX_PATH];     /* idx, npy: required */
    char file[CONFIG_MAX_PATH];       /* csv: required */
    int64_t label_column;             /* csv: 0, the label's column from 0 (unless label_name) */
    char label_name[CONFIG_MAX_TEXT]; /* csv: "", else the label column's header name */
    bool header;                      /* csv: true, the first row holds column names */
} config_files;

/* The steps of data.preprocess; every statistic is fitted on the training split only. */
typedef enum config_preprocess_kind {
    CONFIG_PREPROCESS_SCALE = 0,        /* x * factor */
    CONFIG_PREPROCESS_STANDARDIZE = 1,  /* (x - mean) / std */
    CONFIG_PREPROCESS_MINMAX = 2,       /* (x - min) / (max - min) per feature */
    CONFIG_PREPROCESS_IMPUTE = 3,       /* missing values (NaN) -> a fill value per feature */
    CONFIG_PREPROCESS_DROP_MISSING = 4, /* drop samples with a missing value */
} config_preprocess_kind;

typedef enum config_standardize {
    CONFIG_STANDARDIZE_GLOBAL = 0,      /* one mean and std over every value */
    CONFIG_STANDARDIZE_PER_FEATURE = 1, /* one per feature (value of a sample) */
    CONFIG_STANDARDIZE_PER_CHANNEL = 2, /* one per channel: axis 0 of model.input (C, ...) */
} config_standardize;

typedef enum config_impute {
    CONFIG_IMPUTE_MEAN = 0,     /* the feature's mean */
    CONFIG_IMPUTE_MEDIAN = 1,   /* the feature's median */
    CONFIG_IMPUTE_CONSTANT = 2, /* config_preprocess.fill */
} config_impute;

typedef struct config_preprocess {
    config_preprocess_kind kind;
    double scale;                   /* SCALE: finite, not 0 */
    config_standardize standardize; /* STANDARDIZE: global */
    config_impute impute;           /* IMPUTE: required */
    double fill;                    /* IMPUTE CONSTANT: finite */
} config_preprocess;

typedef struct config_data {
    config_format format; /* required */
    bool has_train;       /* required, except for format synthetic */
    config_files train;
    bool has_test; /* false: no test files */
    config_files test;
    double validation_fraction; /* 0: no validation split; in [0, 1) */
    bool stratify;              /* false: keep class proportions in the validation split */
    bool remove_duplicates;     /* false: drop repeated samples from the training split */
    bool cache;                 /* true: keep the prepared splits in the cache directory */
    bool has_synthetic;         /* format synthetic: required; otherwise not allowed */
    config_spheres3d spheres3d;
    config_preprocess preprocess[CONFIG_MAX_PREPROCESS]; /* applied in order */
    int n_preprocess;
} config_data;

/* A layer: the library's spec (name and input pointers left NULL; config_fill_spec sets them
 * to the strings here) and where it was written. */
typedef struct config_layer {
    kiln_layer_spec spec;
    char name[KILN_SPEC_MAX_NAME + 1];                         /* "": "<kind><index>" */
    char inputs[KILN_SPEC_MAX_INPUTS][KILN_SPEC_MAX_NAME + 1]; /* spec.n_inputs of them */
    int line, column; /* 1-based position in the file; 0 for a layer from an override */
} config_layer;

typedef struct config_model {
    kiln_shape input;     /* one sample, without the batch axis; required */
    config_layer *layers; /* owned; at least one */
    size_t n_layers;
} config_model;

/* One entry of `metrics`: a metric of the library's registry (include/kiln/metrics.h) with
 * its settings. Which metrics a loss allows: the classification ones (accuracy, top_k,
 * precision, recall, f1) need softmax_cross_entropy, the regression ones (mse, mae, r2) mse or
 * l1, the segmentation ones (dice, iou) dice, dice_bce or bce_with_logits. */
typedef struct config_metric {
    kiln_metric_kind kind;
    int64_t k;        /* top_k: 5 */
    double threshold; /* dice, iou: 0.5 with loss dice (probabilities), else 0 (logits) */
    double smooth;    /* dice, iou: 1 */
} config_metric;

enum { CONFIG_MAX_COLUMN = 48 };

/* The name of the metric's column in the epoch lines, logs and monitors: the registry name,
 * except top_k, which is "top<k>_accuracy" ("top5_accuracy"). Returns `out`. */
const char *config_metric_column(const config_metric *m, char *out, size_t capacity);

/* Whether a monitored value improves by going down or up. AUTO exists only while parsing: it
 * is resolved from the monitor's name by the library's rule (kiln_monitor_resolve_mode: min
 * for a loss, else the direction of the metric in the registry), config_mode_for. */
typedef enum config_mode {
    CONFIG_MODE_AUTO = 0,
    CONFIG_MODE_MIN = 1,
    CONFIG_MODE_MAX = 2,
} config_mode;

typedef enum config_threshold_mode {
    CONFIG_THRESHOLD_REL = 0,
    CONFIG_THRESHOLD_ABS = 1,
} config_threshold_mode;

/* The learning-rate schedule (kiln_schedule's fields; config_fill_schedule makes one). */
typedef struct config_schedule {
    kiln_schedule_kind kind;              /* constant */
    int64_t warmup_steps;                 /* 0 */
    int64_t step_size;                    /* step: required, >= 1 */
    double gamma;                         /* step: 0.1 */
    int64_t t_max;                        /* cosine: train.epochs */
    double min_lr;                        /* cosine, plateau: 0 */
    char monitor[CONFIG_MAX_TEXT];        /* plateau: val_loss with a validation split, else loss */
    config_mode mode;                     /* plateau: by the monitor */
    double factor;                        /* plateau: 0.1 */
    int64_t patience;                     /* plateau: 10 */
    double min_delta;                     /* plateau: 1e-4 */
    config_threshold_mode threshold_mode; /* plateau: rel */
    int64_t cooldown;                     /* plateau: 0 */
    double eps;                           /* plateau: 1e-8 */
} config_schedule;

typedef struct config_early_stopping {
    bool enabled; /* the key is present */
    char monitor[CONFIG_MAX_TEXT];
    config_mode mode;
    int64_t patience;  /* 0 */
    double min_delta;  /* 0 */
    bool has_baseline; /* false */
    double baseline;
    int64_t start_from_epoch; /* 0 */
    bool restore_best;        /* false */
} config_early_stopping;

typedef struct config_checkpoint {
    bool enabled;               /* the key is present */
    char path[CONFIG_MAX_PATH]; /* required */
    char monitor[CONFIG_MAX_TEXT];
    config_mode mode;
    bool save_best_only; /* false */
    bool save_last;      /* false */
} config_checkpoint;

typedef struct config_diagnose {
    bool eval_train;  /* false */
    double threshold; /* 0.25 */
} config_diagnose;

typedef struct config_train {
    int64_t epochs;                  /* 10 */
    int64_t batch_size;              /* 32 */
    kiln_optimizer_config optimizer; /* adam with PyTorch's defaults */
    config_schedule schedule;
    config_early_stopping early_stopping;
    config_checkpoint checkpoint;
    config_diagnose diagnose;
    bool drop_last; /* false */
    bool shuffle;   /* true */
} config_train;

typedef struct config {
    char source[CONFIG_MAX_PATH]; /* the file it was read from, for messages */
    char name[CONFIG_MAX_TEXT];   /* the file name without its extension */
    int64_t seed;                 /* 0 */
    char device[CONFIG_MAX_TEXT]; /* "auto"; checked by the library when opened */
    config_data data;
    config_model model;
    kiln_loss_spec loss; /* required */
    config_metric metrics[CONFIG_MAX_METRICS];
    int n_metrics;
    config_train train;
} config;

/* Whether the config has a test split: test files, or held-out synthetic volumes. */
bool config_has_test(const config *cfg);

/* Sets every field to its default; there are no layers yet. */
void config_init(config *cfg);
/* Frees the layers and leaves *cfg as config_init does. config_deinit(NULL) does nothing. */
void config_deinit(config *cfg);

/* Reads a config file: parses the YAML, applies `overrides` ("train.batch_size=64"; list
 * items by index, "model.layers[1].dense.units=512" or "model.layers.1.dense.units=512"; the
 * value is YAML), then checks every key and fills the defaults. Relative paths in the file
 * are relative to its directory; in an override, to the working directory. On success *out
 * holds the config (config_deinit it). On failure *out is as config_init leaves it, `err`
 * says what and where, and the status is KILN_ERR_IO (unreadable file),
 * KILN_ERR_INVALID_ARGUMENT (a bad config or override) or KILN_ERR_NO_MEMORY. */
kiln_status config_load_file(const char *path, const char *const *overrides, size_t n_overrides,
                             config *out, config_error *err);
/* The same for `length` bytes of YAML text; `source` names it in messages and gives the
 * default name; relative paths are relative to `base_dir` (NULL: the working directory). */
kiln_status config_load_string(const char *text, size_t length, const char *source,
                               const char *base_dir, const char *const *overrides,
                               size_t n_overrides, config *out, config_error *err);

/* `--device SPEC`: replaces the device spec (checked by the library when it is opened).
 * KILN_ERR_INVALID_ARGUMENT when it is too long. */
kiln_status config_set_device(config *cfg, const char *device, config_error *err);

/* The effective config as YAML: every key, defaults included, after the overrides; reading
 * it back gives a config equal to `cfg`. _file writes to `out`; _string returns a new string
 * (free it). KILN_ERR_IO or KILN_ERR_NO_MEMORY on failure. */
kiln_status config_write_file(const config *cfg, FILE *out, config_error *err);
kiln_status config_write_string(const config *cfg, char **out_text, config_error *err);
/* The `data` section alone (every key, defaults included), without a header comment: what
 * the prepared-data cache's key is made of. */
kiln_status config_write_data_string(const config *cfg, char **out_text, config_error *err);

/* True when every key has the same value in both (where they came from is not compared).
 * Otherwise `where` (may be NULL) receives the path of the first key that differs. */
bool config_equal(const config *a, const config *b, char *where, size_t capacity);

/* min or max for a monitor that names the loss or a metric column ("val_loss", "top5_accuracy",
 * "val_r2"), by kiln_monitor_resolve_mode; CONFIG_MODE_AUTO for a name it cannot resolve. */
config_mode config_mode_for(const char *monitor);

/* The model as a library spec: `layers` (cfg->model.n_layers entries, caller-owned) receives
 * the layers with their names and inputs pointing into `cfg`, which must outlive `out`. */
void config_fill_spec(const config *cfg, kiln_layer_spec *layers, kiln_spec *out);
/* The schedule, starting from the optimiser's learning rate. */
void config_fill_schedule(const config *cfg, kiln_schedule *out);
/* kiln_spec_build on the config's spec (same outputs and statuses). On failure `err` holds the
 * library's message behind the file position of the layer it names, such as
 * "models/x.yaml:14:7: model.layers[3]: layer 3 'dense3' (dense): input (32, 1, 28, 28): ...". */
kiln_status config_build_graph(const config *cfg, kiln_context *ctx, kiln_graph **out_graph,
                               kiln_value *out_input, kiln_value *out_target,
                               kiln_value *out_output, kiln_value *out_loss, config_error *err);
/* "FILE:LINE:COLUMN: model.layers[I]" for layer i, to put before a kiln_spec_build error that
 * names that layer; "--set: model.layers[I]" for a layer from an override. Returns `out`. */
const char *config_layer_where(const config *cfg, size_t i, char *out, size_t capacity);

/* Calls fn once for every key of the schema ("train.optimizer.adam.lr"; layer keys as
 * "dense.units"), in documentation order; the docs test uses it. */
void config_visit_keys(void (*fn)(const char *path, void *user), void *user);

#endif
