/*
 * The state of one `kiln train` run shared by train_loop.c (model, batches, evaluation) and
 * train_fit.c (the epoch loop with its callbacks, checkpoints and the host-side eval loss).
 */
#ifndef KILN_RUNNER_TRAIN_LOOP_H
#define KILN_RUNNER_TRAIN_LOOP_H

#include "kiln/callbacks.h"
#include "kiln/checkpoint.h"
#include "kiln/metrics.h"
#include "kiln/train.h"
#include "trainer.h"

/* One batch's host memory: what the batcher fills and uploads, and what the step's reads land
 * in. The loops keep two, so that the device runs one batch's step while the host uses the
 * previous batch's results and prepares the next (train_loop.c, run_batches). */
enum { TRAINER_SLOT_TRANSFERS = 4 };
typedef struct trainer_slot {
    float *features, *targets, *ftargets, *outputs;
    int32_t *classes;
    float loss;     /* the device's batch loss, when the loop reads it */
    int64_t n_rows; /* the batch's real rows (the rest are zero or repeated) */
    /* transfers queued from or into this memory, not yet released */
    kiln_transfer *transfers[TRAINER_SLOT_TRANSFERS];
    int n_transfers;
} trainer_slot;

typedef struct trainer {
    const config *cfg;
    kiln_context *ctx;
    const train_data *data;
    train_log *log;
    kiln_graph *graph;
    kiln_value input, target, output, loss;
    kiln_model *model;
    kiln_executor *train_ex, *eval_ex, *infer_ex; /* train_ex and opt: training only */
    kiln_optimizer *opt;
    kiln_schedule schedule;
    kiln_metric *metrics[CONFIG_MAX_METRICS];
    char metric_names[CONFIG_MAX_METRICS][CONFIG_MAX_COLUMN]; /* the columns, "top5_accuracy" */
    int n_metrics;
    kiln_metric *confusion; /* classification: the confusion matrix of an evaluation */
    int64_t batch, n_features, out_per_row;
    bool class_target; /* the target input is i32 class indices */
    trainer_slot slots[2];
    uint64_t step;
    double batch_load_seconds; /* training steps: time spent preparing and queuing batches */
    /* restore_best: host copies of every parameter and buffer at the best epoch */
    kiln_value *state_values;
    float **best_state;
    size_t n_state;
    bool has_best_state;
    bool cut_short;           /* the last epoch stopped early on train_interrupt */
    int64_t start_epoch;      /* the first epoch to train (after a resume) */
    kiln_safetensors *resume; /* the file resumed from, until trainer_fit has read it */
} trainer;

/* What a loop over batches does with each (run by trainer_run_batches): `enqueue` queues the
 * batch's device work through `ex` (its inputs are already queued) and the reads of its results
 * into the slot, with trainer_slot_ticket; `consume` uses those results, which have arrived, for
 * batch `index`. Either returns a failure to stop the loop. */
typedef struct trainer_batch_fns {
    kiln_status (*enqueue)(trainer *t, trainer_slot *s, void *state);
    kiln_status (*consume)(trainer *t, const trainer_slot *s, int64_t index, void *state);
    bool interruptible;   /* stop before a batch once train_interrupt is set (t->cut_short) */
    double *load_seconds; /* when not NULL, receives the time spent preparing batches */
} trainer_batch_fns;

/* Runs every batch of `b` (over `ds`, for `epoch`) through `ex`, pipelined: batch i's work is
 * queued before batch i-1's results are waited for and consumed and batch i+1 is filled and its
 * upload queued, so the device never waits for the host between batches. Device commands run in
 * the same order as a loop that waits after each batch, so the results are the same. Every
 * transfer has completed when it returns, also after a failure. */
kiln_status trainer_run_batches(trainer *t, kiln_batcher *b, const kiln_dataset *ds,
                                kiln_executor *ex, int64_t epoch, const trainer_batch_fns *fns,
                                void *state);
/* A place for the ticket of a transfer from or into `s` (released by trainer_run_batches). */
kiln_transfer **trainer_slot_ticket(trainer_slot *s);
kiln_status trainer_epoch(trainer *t, int64_t epoch, train_epoch_values *v, config_error *err);
kiln_status trainer_evaluate(trainer *t, const kiln_dataset *ds, const char *prefix,
                             train_epoch_values *v);
kiln_status trainer_fit(trainer *t, train_result *result, config_error *err);

/* train_fit.c: saves model, optimiser, `metadata` plus the config, name, epoch, monitor and
 * best, and the preprocessing statistics plus `extra` as extra tensors. */
kiln_status trainer_save_checkpoint(trainer *t, const char *path, int64_t epoch,
                                    const char *monitor, double best, const char *config_text,
                                    const kiln_metadata_entry *metadata, size_t n_metadata,
                                    const kiln_host_tensor *extra, size_t n_extra,
                                    config_error *err);
/* Copies the model state (parameters, buffers) named by `values` between the device and the
 * host arrays `host` (to_device: host to model; else model to host). */
kiln_status trainer_copy_state(trainer *t, const kiln_value *values, float *const *host, size_t n,
                               bool to_device);
/* Host arrays for the model's buffers (buffers_only) or parameters and buffers: *values and
 * *host receive *n entries (free each host array, then both lists, also after a failure). */
kiln_status trainer_alloc_state(const trainer *t, bool buffers_only, kiln_value **values,
                                float ***host, size_t *n, config_error *err);
/* Allocates the host copies for restore_best (once). */
kiln_status trainer_alloc_best(trainer *t, config_error *err);

/* ---- train_diagnose.c ---- */

/* diagnose.eval_train: scores the training split's full batches with the current weights in
 * train mode and in eval mode, appends train_mode_loss and eval_mode_loss to `v`, and warns on
 * stderr when they differ by more than the configured fraction. The model's state (batch-norm
 * running statistics) is left as it was. */
kiln_status trainer_diagnose(trainer *t, int64_t epoch, train_epoch_values *v, config_error *err);

/* ---- train_resume.c ---- */

/* Writes log->dir/last.safetensors after `epochs_done` epochs: the checkpoint plus the
 * metadata and best weights a resume needs. es and cp may be NULL (callback off). */
kiln_status trainer_save_resume(trainer *t, int64_t epochs_done, const kiln_early_stopping *es,
                                const kiln_checkpoint *cp, const char *config_text,
                                config_error *err);
/* Loads `path` into the model and optimiser and sets the step, schedule, start epoch and best
 * weights; keeps the file in t->resume for trainer_resume_callbacks. */
kiln_status trainer_load_resume(trainer *t, const char *path, config_error *err);
/* Restores the callbacks' state from t->resume (either may be NULL), then releases it. */
kiln_status trainer_resume_callbacks(trainer *t, kiln_early_stopping *es, kiln_checkpoint *cp,
                                     config_error *err);

/* Whether trainer_host_loss computes the loss exactly from the outputs (else it weights the
 * device's batch-mean loss by the real rows, approximate on a padded batch). */
bool trainer_host_loss_exact(const trainer *t);
/* The loss summed over the slot's real rows (s->n_rows) of s->outputs against its labels, or
 * the device's batch-mean loss s->loss weighted by them. */
double trainer_host_loss(const trainer *t, const trainer_slot *s);

#endif
