/*
 * Training callbacks as pure decisions over each epoch's record of named values: early
 * stopping (Keras' EarlyStopping semantics, differences listed below) and the checkpoint
 * decision (when to save, and the path from a template such as "ckpt-{epoch}-{val_loss}").
 * Both judge improvement with one shared tracker, so they never disagree about the best epoch.
 *
 * The runner calls these after each epoch and acts on the decisions: copying the weights,
 * writing files, stopping. The structs are caller-owned plain data (save them with a
 * checkpoint to resume); nothing here allocates. Not thread-safe.
 */
#ifndef KILN_CALLBACKS_H
#define KILN_CALLBACKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln/context.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- An epoch's record ---- */

/* One named value of an epoch: "loss", "val_loss", "val_accuracy" ... */
typedef struct kiln_metric_value {
    const char *name;
    double value;
} kiln_metric_value;

/* Epochs count from 0, as Keras' callbacks do; messages and "{epoch}" show epoch + 1, as Keras
 * prints them. Every array and string is borrowed. */
typedef struct kiln_epoch_record {
    int64_t epoch;
    const kiln_metric_value *values;
    size_t n_values;
} kiln_epoch_record;

/* The value called `name` in *out; KILN_ERR_NOT_FOUND naming the epoch and listing the names
 * the record has. */
kiln_status kiln_epoch_record_find(kiln_context *ctx, const kiln_epoch_record *record,
                                   const char *name, double *out);

/* ---- Improvement ---- */

typedef enum kiln_monitor_mode {
    KILN_MONITOR_AUTO = 0,
    KILN_MONITOR_MIN = 1,
    KILN_MONITOR_MAX = 2,
} kiln_monitor_mode;

/* Resolves AUTO from the monitored name: MIN for a name ending in "loss"; otherwise the
 * direction of the registry metric (include/kiln/metrics.h) that the name is or ends with
 * after an underscore ("val_mse" and "mae" are MIN; "val_accuracy", "train_f1", "val_top_k",
 * "r2" MAX). Any other name is KILN_ERR_INVALID_ARGUMENT asking for mode min or max (Keras
 * raises the same). MIN and MAX come back unchanged. */
kiln_status kiln_monitor_resolve_mode(kiln_context *ctx, const char *monitor,
                                      kiln_monitor_mode mode, kiln_monitor_mode *out);

/* The best value seen and its epoch. A value beats a reference when it is better by MORE than
 * min_delta: in MIN mode value + min_delta < reference, in MAX mode value - min_delta >
 * reference (Keras' _is_improvement), so a change of exactly min_delta is no improvement.
 * Only finite values improve; the first finite value always does. */
typedef struct kiln_tracker {
    kiln_monitor_mode mode; /* MIN or MAX, after init */
    double min_delta;       /* >= 0 */
    bool has_best;
    double best;
    int64_t best_epoch; /* -1 before the first improvement */
} kiln_tracker;

/* Resolves `mode` for `monitor` and starts with no best. KILN_ERR_INVALID_ARGUMENT for a
 * negative or non-finite min_delta (Keras takes its absolute value; Kiln refuses it) or an
 * unresolvable AUTO. */
kiln_status kiln_tracker_init(kiln_context *ctx, kiln_tracker *tracker, const char *monitor,
                              kiln_monitor_mode mode, double min_delta);
/* Whether `value` beats `reference` (false for a non-finite value). */
bool kiln_tracker_beats(const kiln_tracker *tracker, double value, double reference);
/* Records `value` of `epoch` as the best when it improves on the best so far; returns that. */
bool kiln_tracker_update(kiln_tracker *tracker, int64_t epoch, double value);

/* ---- Early stopping ----
 *
 * Per epoch, from start_from_epoch on (earlier epochs are ignored, except for NaN):
 *   - a NaN or infinite monitored value stops training at once, reason NAN, at any epoch
 *     (Keras has a separate TerminateOnNaN for the batch loss; Kiln folds it in here);
 *   - otherwise `wait` grows by one; an improvement on the best records the new best and
 *     resets `wait` to 0 when it also beats the baseline (or there is none);
 *   - training stops when wait >= max(patience, 1): reason BASELINE while the baseline has
 *     never been beaten, PATIENCE otherwise.
 * So patience p stops after p epochs in a row without improvement (patience 0: the first), and
 * with a baseline, after p epochs that never beat it (0: the first epoch must). Differences
 * from Keras 3: Keras skips the stop test on epochs that improve on the best without beating
 * the baseline, so slow progress under the baseline runs on indefinitely (Kiln stops it, as
 * the docs' "stop if the model doesn't show improvement over the baseline" says); Keras never
 * stops at epoch 0; a monitor missing from the record is an error here, not a warning.
 * restore_best: the runner copies the weights whenever an epoch reports new_best, and restores
 * that copy however training ends when kiln_early_stopping_restore_due says so (Keras 3
 * restores on train end too). */

typedef enum kiln_stop_reason {
    KILN_STOP_NONE = 0,             /* still training */
    KILN_STOP_PATIENCE = 1,         /* no improvement for `patience` epochs */
    KILN_STOP_EPOCHS_EXHAUSTED = 2, /* the runner ran every epoch */
    KILN_STOP_NAN = 3,              /* the monitored value was NaN or infinite */
    KILN_STOP_INTERRUPTED = 4,      /* the runner was interrupted (a signal) */
    KILN_STOP_BASELINE = 5,         /* the baseline was not beaten within `patience` epochs */
} kiln_stop_reason;

/* "none", "patience", "epochs_exhausted", "nan", "interrupted", "baseline"; "unknown" for
 * other values. Static; thread-safe. */
const char *kiln_stop_reason_name(kiln_stop_reason reason);

typedef struct kiln_early_stopping_config {
    const char *monitor; /* "val_loss"; borrowed, must outlive the early stopping */
    kiln_monitor_mode mode;
    double min_delta; /* 0, finite, >= 0 */
    int64_t patience; /* 0, >= 0 */
    bool has_baseline;
    double baseline;          /* finite, when has_baseline */
    int64_t start_from_epoch; /* 0, >= 0 */
    bool restore_best;        /* false */
} kiln_early_stopping_config;

typedef struct kiln_early_stopping {
    kiln_early_stopping_config config;
    kiln_tracker tracker;
    int64_t wait;         /* considered epochs since the last reset of the count */
    bool baseline_beaten; /* some epoch beat the baseline (true without one) */
    int64_t last_epoch;   /* -1 before the first record */
    kiln_stop_reason reason;
    int64_t stop_epoch; /* the last epoch trained when stopped, else -1 */
    double stop_value;  /* the monitored value then (NaN when the runner ended it) */
} kiln_early_stopping;

/* What the runner does after an epoch. */
typedef struct kiln_epoch_decision {
    bool stop;               /* end training now */
    kiln_stop_reason reason; /* why, when stop */
    bool new_best;           /* this epoch is the new best: with restore_best, copy weights */
} kiln_epoch_decision;

/* Keras' defaults: monitor "val_loss", mode AUTO, min_delta 0, patience 0, no baseline,
 * start_from_epoch 0, restore_best false. */
void kiln_early_stopping_config_init(kiln_early_stopping_config *config);

/* KILN_ERR_INVALID_ARGUMENT naming the field for a bad config or an unresolvable AUTO. */
kiln_status kiln_early_stopping_init(kiln_context *ctx, kiln_early_stopping *es,
                                     const kiln_early_stopping_config *config);

/* Judges one epoch. Epochs must increase; KILN_ERR_INVALID_ARGUMENT otherwise and after a
 * stop; KILN_ERR_NOT_FOUND when the monitor is not in the record. */
kiln_status kiln_early_stopping_update(kiln_context *ctx, kiln_early_stopping *es,
                                       const kiln_epoch_record *record,
                                       kiln_epoch_decision *decision);

/* The runner ended training itself (EPOCHS_EXHAUSTED or INTERRUPTED); ignored when the
 * callback already stopped it, so the first reason stays. */
void kiln_early_stopping_end(kiln_early_stopping *es, kiln_stop_reason reason);

/* The best epoch among those considered, or -1. */
int64_t kiln_early_stopping_best_epoch(const kiln_early_stopping *es);

/* True when restore_best is on and the best epoch is not the last epoch trained: the runner
 * should load the weights it copied at the best epoch. */
bool kiln_early_stopping_restore_due(const kiln_early_stopping *es);

/* One line for the log ("stopped after epoch 7 (patience): val_loss did not improve ...").
 * Writes at most `capacity` bytes, NUL-terminated; returns the length it needed. */
size_t kiln_early_stopping_describe(const kiln_early_stopping *es, char *out, size_t capacity);

/* ---- Checkpoint decision ----
 *
 * Path templates: "{name}" expands to the record's value called `name`, "{epoch}" to the
 * epoch counted from 1 (Keras' ModelCheckpoint writes epoch + 1), "{{" and "}}" to single
 * braces. A placeholder may carry a format spec as in Python's str.format: "{epoch:03d}",
 * "{val_loss:.4f}": [0][width][.precision][type], type d for epoch, f, e or g for values.
 * Values default to "%g" (Keras prints the full repr; Kiln keeps names short). An unknown
 * name, an unclosed or stray brace, or a bad spec is KILN_ERR_INVALID_ARGUMENT naming the
 * template, the column and the names known. */

enum { KILN_CHECKPOINT_PATH_MAX = 4096 };

/* Checks a template's syntax and that every placeholder is "epoch" or one of `names`. */
kiln_status kiln_path_template_check(kiln_context *ctx, const char *path_template,
                                     const char *const *names, size_t n_names);

/* Expands a template for `record` into out[capacity]; KILN_ERR_INVALID_ARGUMENT also when the
 * result does not fit. */
kiln_status kiln_path_template_expand(kiln_context *ctx, const char *path_template,
                                      const kiln_epoch_record *record, char *out, size_t capacity);

typedef struct kiln_checkpoint_config {
    const char *path;    /* template; borrowed */
    const char *monitor; /* "val_loss"; borrowed */
    kiln_monitor_mode mode;
    double min_delta;    /* 0 (Keras' ModelCheckpoint has none; the tracker takes one) */
    bool save_best_only; /* false: save every epoch (to a path that may repeat) */
    bool save_last;      /* false: also write last_path after every epoch, for resuming */
    const char *last_path;
} kiln_checkpoint_config;

typedef struct kiln_checkpoint {
    kiln_checkpoint_config config;
    kiln_tracker tracker;
    int64_t last_epoch;
} kiln_checkpoint;

typedef struct kiln_checkpoint_decision {
    bool save;     /* write the checkpoint to `path` */
    bool new_best; /* the monitored value improved (false when it is not in the record) */
    bool save_last;
    char path[KILN_CHECKPOINT_PATH_MAX];      /* expanded, when save */
    char last_path[KILN_CHECKPOINT_PATH_MAX]; /* expanded, when save_last */
} kiln_checkpoint_decision;

/* monitor "val_loss", mode AUTO, min_delta 0, save_best_only false, save_last false; path
 * and last_path NULL. */
void kiln_checkpoint_config_init(kiln_checkpoint_config *config);

/* Checks the config and both templates against `names`, the values each epoch's record will
 * hold (n_names 0: only the syntax is checked), and, with save_best_only, that the monitor
 * is one of them. KILN_ERR_INVALID_ARGUMENT naming the field. */
kiln_status kiln_checkpoint_init(kiln_context *ctx, kiln_checkpoint *cp,
                                 const kiln_checkpoint_config *config, const char *const *names,
                                 size_t n_names);

/* Decides for one epoch. With save_best_only, saves exactly when the tracker reports a new best
 * (the same rule as early stopping), and the monitor must be in the record (KILN_ERR_NOT_FOUND);
 * without it, saves every epoch. Epochs must increase. */
kiln_status kiln_checkpoint_update(kiln_context *ctx, kiln_checkpoint *cp,
                                   const kiln_epoch_record *record,
                                   kiln_checkpoint_decision *decision);

#ifdef __cplusplus
}
#endif

#endif
