/*
 * The state of one `kiln train` run shared by train_loop.c (model, batches, evaluation) and
 * train_fit.c (the epoch loop with its callbacks, checkpoints and the host-side eval loss).
 */
#ifndef KILN_RUNNER_TRAIN_LOOP_H
#define KILN_RUNNER_TRAIN_LOOP_H

#include "kiln/metrics.h"
#include "kiln/train.h"
#include "trainer.h"

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
    const char *metric_names[CONFIG_MAX_METRICS];
    int n_metrics;
    int64_t batch, n_features, out_per_row;
    bool class_target; /* the target input is i32 class indices */
    float *features, *targets, *ftargets, *outputs;
    int32_t *classes;
    uint64_t step;
    /* restore_best: host copies of every parameter and buffer at the best epoch */
    kiln_value *state_values;
    float **best_state;
    size_t n_state;
    bool has_best_state;
} trainer;

kiln_status trainer_epoch(trainer *t, int64_t epoch, train_epoch_values *v, config_error *err);
kiln_status trainer_evaluate(trainer *t, const kiln_dataset *ds, const char *prefix,
                             train_epoch_values *v);
kiln_status trainer_fit(trainer *t, train_result *result, config_error *err);

/* Whether trainer_host_loss computes the loss exactly from the outputs (else it weights the
 * device's batch-mean loss by the real rows, approximate on a padded batch). */
bool trainer_host_loss_exact(const trainer *t);
/* The loss summed over the first n_rows rows of t->outputs. */
double trainer_host_loss(const trainer *t, int64_t n_rows, float device_loss);

#endif
