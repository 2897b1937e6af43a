/*
 * `kiln train` internals shared by its files: the data it loads (train_data.c), the epoch
 * loop over a model (train_loop.c) and the run directory's logs and terminal output
 * (train_log.c). Every function returns a kiln_status; a failure found by the runner itself
 * leaves its message in `err`, a library failure leaves err->message empty and its message
 * on the context.
 */
#ifndef KILN_RUNNER_TRAINER_H
#define KILN_RUNNER_TRAINER_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "kiln/checkpoint.h"
#include "kiln/data.h"
#include "kiln/device.h"

/* loss and metrics, for training and validation, and diagnose's two losses */
enum { TRAIN_MAX_VALUES = 4 + 2 * CONFIG_MAX_METRICS, TRAIN_MAX_NAME = 64 };

/* Formats a runner error into err and returns `status`. */
kiln_status train_error(config_error *err, kiln_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Set by `kiln train`'s SIGINT handler (and nothing else): the epoch loop stops after the
 * step it is running (train_loop.c). */
extern volatile sig_atomic_t train_interrupt;

/* ---- train_data.c ---- */

typedef struct train_data {
    kiln_dataset *train, *validation, *test; /* validation and test may be NULL */
    kiln_preprocess *preprocess;             /* fitted on train; NULL without steps */
    const char *cache; /* data.cache: "read", "written", "not written" or "off" (summary.json) */
} train_data;

/* Reads the files, holds out the validation split (seeded, stratified as configured), removes
 * duplicate training samples (data.remove_duplicates), fits the preprocessing on the training
 * split and applies it to the others, and says on stderr how many duplicates and missing
 * values there were and when samples occur in more than one split. KILN_ERR_INVALID_ARGUMENT
 * (message in err) when missing values are left after data.preprocess. */
kiln_status train_data_load(const config *cfg, kiln_context *ctx, train_data *out,
                            config_error *err);
void train_data_deinit(train_data *data);
/* The pipeline of data.preprocess for `ds`'s features, unfitted; NULL without steps. */
kiln_status train_make_preprocess(const config *cfg, kiln_context *ctx, const kiln_dataset *ds,
                                  kiln_preprocess **out);

/* ---- train_data_cache.c: the prepared-data cache (data.cache) ---- */

typedef struct train_data_cache {
    char dir[CONFIG_MAX_PATH];       /* the cache directory */
    char path[CONFIG_MAX_PATH + 80]; /* "<dir>/<key>.kdata" */
} train_data_cache;

/* Where this config's prepared data are cached; false when data.cache is off, the cache is
 * disabled (KILN_NO_CACHE) or has no location, or a data file cannot be examined. */
bool train_data_cache_locate(const config *cfg, kiln_context *ctx, train_data_cache *out);
/* Fills `out` from the cache file and repeats the preparation's messages on stderr; false
 * (with a warning when the file exists but cannot be used) when the data must be prepared. */
bool train_data_cache_read(const train_data_cache *c, const config *cfg, kiln_context *ctx,
                           train_data *out);
/* Caches prepared data with the messages their preparation printed, then keeps the newest
 * files only; false after a warning on stderr when it cannot. */
bool train_data_cache_write(const train_data_cache *c, kiln_context *ctx, const train_data *d,
                            const char *note);

/* `kiln eval`: the validation split (held out of the training file with the run's seed, as
 * train_data_load does) or the test split, preprocessed with the statistics saved in
 * `checkpoint` (never refitted). */
kiln_status train_data_load_split(const config *cfg, kiln_context *ctx, bool test,
                                  const kiln_safetensors *checkpoint, kiln_dataset **out,
                                  config_error *err);
/* `kiln predict`: inputs without labels, read by the extension of `path` (.csv, .npy, else
 * IDX for .idx, .gz and -ubyte files), preprocessed with the checkpoint's statistics. A CSV
 * file has the training file's columns (and header setting), with or without its label
 * column: with one more column than the model's input, data.train.label_column is dropped. */
kiln_status train_data_read_input(const config *cfg, kiln_context *ctx, const char *path,
                                  const kiln_safetensors *checkpoint, kiln_dataset **out,
                                  config_error *err);

/* ---- train_log.c ---- */

/* One epoch's named values in a fixed order: loss, metrics, then val_loss and val metrics
 * (when there is a validation split), lr and seconds are separate. */
typedef struct train_epoch_values {
    int64_t epoch; /* from 0 */
    int n;
    char names[TRAIN_MAX_VALUES][TRAIN_MAX_NAME];
    double values[TRAIN_MAX_VALUES];
    double lr;
    double seconds;
} train_epoch_values;

typedef struct train_log {
    char dir[CONFIG_MAX_PATH];
    bool quiet;
    bool progress;                     /* stderr is a terminal */
    bool plain;                        /* NO_COLOR: no escape sequences */
    double last_progress, epoch_start; /* train_now() seconds */
    double first_step_end; /* train_now() when the process's first training step ended, or 0 */
    train_epoch_values *history;
    int64_t n_history, capacity;
} train_log;

/* Creates `dir` (and its parents). */
kiln_status train_log_open(train_log *log, const char *dir, bool quiet, config_error *err);
/* Writes the effective config to dir/config.yaml (train_run does, once a resumed run's
 * config is known to match). */
kiln_status train_log_write_config(const train_log *log, const config *cfg, config_error *err);
void train_log_close(train_log *log);
/* For --resume: reads the first `n_epochs` epochs back from dir/log.csv into the history, so
 * that the logs and the plot written next hold every epoch of the run. */
kiln_status train_log_resume(train_log *log, int64_t n_epochs, config_error *err);
/* Prints the epoch line (unless quiet) and rewrites log.jsonl and log.csv atomically. */
kiln_status train_log_epoch(train_log *log, const train_epoch_values *values, int64_t n_epochs,
                            config_error *err);
/* The progress line on stderr while an epoch trains, when stderr is a terminal: epoch,
 * step/total with a bar, ETA, running loss and `metrics` (text such as "  accuracy 0.91", may
 * be NULL). Throttled to five lines a second; train_log_progress_due says whether the next call
 * would print, so that callers format their metrics only then. _end clears the line. Called
 * after every training step, quiet or not; the first call sets log->first_step_end. */
bool train_log_progress_due(const train_log *log);
void train_log_progress(train_log *log, int64_t epoch, int64_t n_epochs, int64_t batch,
                        int64_t n_batches, double loss, const char *metrics);
void train_log_progress_end(train_log *log);
/* A growing string; train_append sets `failed` (and appends nothing more) when out of memory. */
typedef struct train_text {
    char *data;
    size_t length, capacity;
    bool failed;
} train_text;
void train_append(train_text *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Writes `text` to `path` atomically (a temporary file beside it, then rename). */
kiln_status train_write_atomic(const char *path, const char *text, size_t length,
                               config_error *err);
/* Writes `text` to dir/name atomically (an out-of-memory error when text->failed) and frees
 * it, success or not. */
kiln_status train_write_text(const char *dir, const char *name, train_text *text,
                             config_error *err);
/* mkdir -p. */
kiln_status train_make_dirs(const char *dir, config_error *err);
double train_now(void);

/* ---- train_loop.c ---- */

typedef struct train_result {
    int64_t epochs_run; /* counting the epochs of the run resumed from */
    int64_t best_epoch; /* -1 without early stopping or checkpoint monitor */
    const char *stop_reason;
    bool restored;
    double batch_load_seconds; /* training steps: preparing and uploading batches */
    bool has_test;
    int n_test;
    char test_names[TRAIN_MAX_VALUES][TRAIN_MAX_NAME]; /* loss, then metrics */
    double test_values[TRAIN_MAX_VALUES];
    /* classification: the test split's (n_classes, n_classes) counts, row = true class,
     * column = predicted class (owned; NULL otherwise) */
    int64_t *confusion;
    int64_t n_classes;
} train_result;

/* Frees the confusion matrix. */
void train_result_deinit(train_result *r);
/* The confusion matrix, labelled, after a test line ("rows: true class, columns: predicted");
 * a note instead when it has too many classes to read. Nothing without a matrix. */
void train_confusion_print(FILE *out, const train_result *r);
/* dir/confusion.csv, atomically: a header "true/predicted,0,1,..." then one row per true
 * class. Nothing without a matrix. */
kiln_status train_confusion_write(const char *dir, const train_result *r, config_error *err);

/* ---- train_plot.c ---- */

/* Rewrites log->dir/plot.svg: one panel per quantity of the epochs in log->history (loss,
 * then each metric) with the training and validation curves against the epoch. */
kiln_status train_plot_write(const train_log *log, config_error *err);
/* Writes log->dir/summary.json: epochs run, stop reason, best epoch, the best value of
 * `monitor` (NULL when nothing is monitored), the test loss and metrics, the test confusion
 * matrix (when there is one), `seconds`, the part of the training steps spent preparing
 * batches (the device waits meanwhile) and `first_step_seconds` (null when negative: no step
 * ran). */
kiln_status train_summary_write(const train_log *log, const train_result *result,
                                const char *data_cache, const char *monitor, double seconds,
                                double first_step_seconds, config_error *err);

/* Builds the model on `dev`, trains it for the configured epochs with the callbacks, and
 * evaluates the test split. Every epoch ends by writing log->dir/last.safetensors, the state
 * to resume from (train_resume.c). With `resume` (a path to such a file), training continues
 * after the epochs it holds. */
kiln_status train_run(const config *cfg, kiln_context *ctx, kiln_device *dev,
                      const train_data *data, train_log *log, const char *resume,
                      train_result *result, config_error *err);

/* Builds the model on `dev` in eval mode, loads the checkpoint's weights (exit status 2 in
 * the command when names or shapes differ) and evaluates `ds`: loss and metrics in
 * result->test_names and test_values. */
kiln_status train_evaluate(const config *cfg, kiln_context *ctx, kiln_device *dev,
                           const kiln_dataset *ds, const kiln_safetensors *checkpoint,
                           train_result *result, config_error *err);
/* The same in infer mode over unlabelled `ds`: *out_values receives (ds->n, *out_per_row)
 * raw outputs (free() it). */
kiln_status train_predict(const config *cfg, kiln_context *ctx, kiln_device *dev,
                          const kiln_dataset *ds, const kiln_safetensors *checkpoint,
                          float **out_values, int64_t *out_per_row, config_error *err);

#endif
