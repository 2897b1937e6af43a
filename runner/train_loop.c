/*
 * `kiln train`'s epoch loop: builds the model from the config, runs every training batch as
 * forward, backward and optimiser step (train mode, memory planned, the output kept for the
 * metrics), evaluates the validation and test splits in eval mode, and acts on the callbacks'
 * decisions: early stopping, restoring the best weights from a host copy, checkpoints.
 * Evaluation pads the last partial batch (the batcher zero-fills it) and counts only its real
 * rows: the loss is computed on the host from the read-back output (train_fit.c). Every loop
 * over batches goes through trainer_run_batches, which queues a batch's work before it waits for
 * the previous batch's results, so the host waits once per step and never idles the device.
 */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/callbacks.h"
#include "kiln/checkpoint.h"
#include "kiln/metrics.h"
#include "train_loop.h"

volatile sig_atomic_t train_interrupt = 0;

static void *alloc_zero(size_t n, size_t size, bool *failed)
{
    void *p = calloc(n > 0 ? n : 1, size);
    if (p == NULL)
        *failed = true;
    return p;
}

/* Builds the graph, the model and its executors: train mode (with the optimiser) when
 * `training`, else eval mode only, plus infer mode when `infer`. The labels of t->data->train
 * are checked against the model's output when it has any. */
static kiln_status setup(trainer *t, kiln_device *dev, bool training, bool infer, config_error *err)
{
    const config *cfg = t->cfg;
    kiln_status rc = config_build_graph(cfg, t->ctx, &t->graph, &t->input, &t->target, &t->output,
                                        &t->loss, err);
    if (rc != KILN_OK)
        return rc;
    const kiln_shape *out_shape = kiln_graph_value_shape(t->graph, t->output);
    t->batch = cfg->train.batch_size;
    t->n_features = t->data->train->n_features;
    t->out_per_row = kiln_shape_count(out_shape) / t->batch;
    t->class_target = kiln_graph_value_dtype(t->graph, t->target) == KILN_I32;
    const kiln_dataset *ds = t->data->train;
    if (ds->label_kind == KILN_LABELS_NONE) {
        /* prediction inputs: nothing to check */
    } else if (!t->class_target && ds->label_kind == KILN_LABELS_TARGET &&
               ds->n_label_values != t->out_per_row)
        return train_error(err, KILN_ERR_SHAPE,
                           "%s: the model's output has %lld values per sample but the "
                           "targets of %s have %lld",
                           cfg->source, (long long)t->out_per_row, ds->name,
                           (long long)ds->n_label_values);
    else if (!t->class_target && ds->label_kind == KILN_LABELS_CLASS && t->out_per_row != 1)
        return train_error(err, KILN_ERR_SHAPE,
                           "%s: loss %s needs targets of the output's shape (%lld values per "
                           "sample), but %s has class labels",
                           cfg->source, kiln_loss_kind_name(cfg->loss.kind),
                           (long long)t->out_per_row, ds->name);
    else if (t->class_target && ds->label_kind != KILN_LABELS_CLASS)
        return train_error(err, KILN_ERR_INVALID_ARGUMENT,
                           "%s: loss softmax_cross_entropy needs class labels, but %s has none",
                           cfg->source, ds->name);
    else if (t->class_target && ds->n_classes > t->out_per_row)
        return train_error(err, KILN_ERR_SHAPE,
                           "%s: %s has %d classes but the model's output has %lld", cfg->source,
                           ds->name, ds->n_classes, (long long)t->out_per_row);
    bool failed = false;
    size_t b = (size_t)t->batch;
    for (int k = 0; k < 2; k++) {
        trainer_slot *slot = &t->slots[k];
        slot->features = alloc_zero(b * (size_t)t->n_features, sizeof(float), &failed);
        slot->classes = alloc_zero(b, sizeof(int32_t), &failed);
        slot->targets = alloc_zero(b * (size_t)t->out_per_row, sizeof(float), &failed);
        slot->ftargets = alloc_zero(b * (size_t)t->out_per_row, sizeof(float), &failed);
        slot->outputs = alloc_zero(b * (size_t)t->out_per_row, sizeof(float), &failed);
    }
    if (failed)
        return train_error(err, KILN_ERR_NO_MEMORY, "out of memory for the batch buffers");

    rc = kiln_model_create(t->graph, dev, (uint64_t)cfg->seed, &t->model);
    kiln_executor_options train_options = {
        .mode = KILN_MODE_TRAIN, .plan_memory = true, .keep = &t->output, .n_keep = 1};
    kiln_executor_options eval_options = {
        .mode = KILN_MODE_EVAL, .plan_memory = true, .keep = &t->output, .n_keep = 1};
    kiln_executor_options infer_options = {
        .mode = KILN_MODE_INFER, .plan_memory = true, .keep = &t->output, .n_keep = 1};
    if (rc == KILN_OK && training)
        rc = kiln_executor_create(t->model, &train_options, &t->train_ex);
    if (rc == KILN_OK)
        rc = kiln_executor_create(t->model, &eval_options, &t->eval_ex);
    if (rc == KILN_OK && infer)
        rc = kiln_executor_create(t->model, &infer_options, &t->infer_ex);
    if (rc == KILN_OK && training)
        rc = kiln_optimizer_create(t->model, &cfg->train.optimizer, &t->opt);
    if (rc != KILN_OK)
        return rc;
    config_fill_schedule(cfg, &t->schedule);
    rc = kiln_schedule_check(t->ctx, &t->schedule);
    if (rc != KILN_OK)
        return rc;

    for (int i = 0; i < cfg->n_metrics; i++) {
        const config_metric *m = &cfg->metrics[i];
        kiln_metric_config mc;
        kiln_metric_config_init(&mc, m->kind);
        mc.n_classes = t->out_per_row;
        mc.k = m->k;
        mc.threshold = m->threshold;
        mc.smooth = m->smooth;
        config_metric_column(m, t->metric_names[i], sizeof t->metric_names[i]);
        if (m->kind == KILN_METRIC_TOP_K && m->k > t->out_per_row)
            return train_error(err, KILN_ERR_INVALID_ARGUMENT,
                               "%s: metrics[%d]: {top_k: %lld} asks for more classes than the "
                               "model's %lld; write {top_k: K} with K <= %lld",
                               cfg->source, i, (long long)m->k, (long long)t->out_per_row,
                               (long long)t->out_per_row);
        rc = kiln_metric_create(t->ctx, &mc, &t->metrics[i]);
        if (rc != KILN_OK)
            return rc;
        t->n_metrics = i + 1;
    }
    if (t->class_target && t->out_per_row >= 2) { /* an evaluation's confusion matrix */
        kiln_metric_config mc;
        kiln_metric_config_init(&mc, KILN_METRIC_ACCURACY);
        mc.n_classes = t->out_per_row;
        rc = kiln_metric_create(t->ctx, &mc, &t->confusion);
    }
    return rc;
}

kiln_transfer **trainer_slot_ticket(trainer_slot *s)
{
    /* A slot holds at most a batch's two uploads and two reads before it is settled. */
    assert(s->n_transfers < TRAINER_SLOT_TRANSFERS);
    return &s->transfers[s->n_transfers++];
}

/* Waits for (when `report`, reporting the first failure) and releases every transfer of `s`;
 * afterwards its memory is the host's again. Without `report` nothing is recorded in the
 * context, so that an earlier failure's message stays. */
static kiln_status slot_settle(trainer_slot *s, bool report)
{
    kiln_status rc = KILN_OK;
    for (int k = 0; k < s->n_transfers; k++) {
        if (report && rc == KILN_OK)
            rc = kiln_transfer_wait(s->transfers[k]);
        kiln_transfer_release(s->transfers[k]);
        s->transfers[k] = NULL;
    }
    s->n_transfers = 0;
    return rc;
}

/* Fills `s` with batch `index` of `epoch` from `b` and queues its upload into `ex`'s inputs.
 * The slot's earlier transfers must have been settled. */
static kiln_status prepare_batch(trainer *t, trainer_slot *s, kiln_batcher *b,
                                 const kiln_dataset *ds, kiln_executor *ex, int64_t epoch,
                                 int64_t index)
{
    kiln_batch batch = {.features = s->features, .classes = s->classes, .targets = s->targets};
    kiln_status rc = kiln_batcher_fill(b, epoch, index, &batch, &s->n_rows);
    if (rc != KILN_OK)
        return rc;
    int64_t n_out = t->batch * t->out_per_row;
    if (ds->label_kind == KILN_LABELS_CLASS && !t->class_target) {
        for (int64_t i = 0; i < t->batch; i++)
            s->ftargets[i] = (float)s->classes[i];
    } else if (ds->label_kind == KILN_LABELS_TARGET) {
        memcpy(s->ftargets, s->targets, (size_t)n_out * sizeof(float));
    }
    rc = kiln_executor_set_input_async(ex, t->input, s->features, t->batch * t->n_features,
                                       trainer_slot_ticket(s));
    if (rc == KILN_OK && t->class_target)
        rc = kiln_executor_set_input_async(ex, t->target, s->classes, t->batch,
                                           trainer_slot_ticket(s));
    else if (rc == KILN_OK)
        rc = kiln_executor_set_input_async(ex, t->target, s->ftargets, n_out,
                                           trainer_slot_ticket(s));
    return rc;
}

/* Waits for the results of the batch in `s` and hands them to fns->consume. */
static kiln_status consume_batch(trainer *t, trainer_slot *s, int64_t index,
                                 const trainer_batch_fns *fns, void *state)
{
    kiln_status rc = slot_settle(s, true);
    return rc == KILN_OK ? fns->consume(t, s, index, state) : rc;
}

kiln_status trainer_run_batches(trainer *t, kiln_batcher *b, const kiln_dataset *ds,
                                kiln_executor *ex, int64_t epoch, const trainer_batch_fns *fns,
                                void *state)
{
    int64_t n_batches = kiln_batcher_n_batches(b), queued = 0;
    double start = train_now();
    kiln_status rc = n_batches > 0 ? prepare_batch(t, &t->slots[0], b, ds, ex, epoch, 0) : KILN_OK;
    double prepare_seconds = train_now() - start;
    /* Batch i lives in slot i % 2. Queue its step behind its upload; while the device runs
     * it, consume batch i - 1 and refill that slot with batch i + 1, whose upload queues
     * behind step i and so cannot overwrite the inputs step i reads. */
    for (int64_t i = 0; i < n_batches && rc == KILN_OK; i++) {
        if (fns->interruptible && train_interrupt) {
            t->cut_short = true; /* the batch before this one was the last */
            break;
        }
        rc = fns->enqueue(t, &t->slots[i % 2], state);
        queued = i + 1;
        if (rc == KILN_OK && i > 0)
            rc = consume_batch(t, &t->slots[(i - 1) % 2], i - 1, fns, state);
        if (rc == KILN_OK && i + 1 < n_batches) {
            start = train_now();
            rc = prepare_batch(t, &t->slots[(i + 1) % 2], b, ds, ex, epoch, i + 1);
            prepare_seconds += train_now() - start;
        }
    }
    if (rc == KILN_OK && queued > 0)
        rc = consume_batch(t, &t->slots[(queued - 1) % 2], queued - 1, fns, state);
    /* After a failure, or an interruption with the next batch's upload queued: nothing may
     * still be copying into or out of the slots once this returns. */
    slot_settle(&t->slots[0], false);
    slot_settle(&t->slots[1], false);
    if (fns->load_seconds != NULL)
        *fns->load_seconds += prepare_seconds;
    return rc;
}

static kiln_status update_metrics(trainer *t, const trainer_slot *s)
{
    kiln_status rc = KILN_OK;
    int64_t n_rows = s->n_rows;
    for (int i = 0; i < t->n_metrics && rc == KILN_OK; i++) {
        switch (kiln_metric_get_info(t->metrics[i])->input) {
        case KILN_METRIC_INPUT_CLASSES:
            rc = kiln_metric_update_classes(t->metrics[i], s->outputs, s->classes, n_rows,
                                            t->out_per_row);
            break;
        case KILN_METRIC_INPUT_VALUES:
            rc = kiln_metric_update_values(t->metrics[i], s->outputs, s->ftargets,
                                           n_rows * t->out_per_row);
            break;
        case KILN_METRIC_INPUT_MASKS:
            rc = kiln_metric_update_masks(t->metrics[i], s->outputs, s->ftargets, n_rows,
                                          t->out_per_row);
            break;
        }
    }
    return rc;
}

/* Appends "PREFIXloss" and "PREFIX<metric>" to `v`. */
static kiln_status add_results(trainer *t, const char *prefix, double loss, train_epoch_values *v)
{
    snprintf(v->names[v->n], TRAIN_MAX_NAME, "%sloss", prefix);
    v->values[v->n++] = loss;
    for (int i = 0; i < t->n_metrics; i++) {
        double value = NAN;
        kiln_status rc = kiln_metric_result(t->metrics[i], &value);
        if (rc != KILN_OK)
            return rc;
        snprintf(v->names[v->n], TRAIN_MAX_NAME, "%s%s", prefix, t->metric_names[i]);
        v->values[v->n++] = value;
    }
    return KILN_OK;
}

static void reset_metrics(trainer *t)
{
    for (int i = 0; i < t->n_metrics; i++)
        kiln_metric_reset(t->metrics[i]);
}

/* The running metrics for the progress line: "  accuracy 0.91  f1 0.88". */
static void progress_metrics(trainer *t, char *out, size_t capacity)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < t->n_metrics && used < capacity; i++) {
        double value = NAN;
        if (kiln_metric_result(t->metrics[i], &value) != KILN_OK) {
            kiln_context_clear_error(t->ctx);
            continue;
        }
        int n = snprintf(out + used, capacity - used, "  %s %.4g", t->metric_names[i], value);
        used += n > 0 ? (size_t)n : 0;
    }
}

/* A training epoch's running totals (train_epoch's loop state). */
typedef struct train_state {
    int64_t epoch, n_batches;
    train_epoch_values *v;
    double loss_sum;
    char metrics_text[256];
} train_state;

/* One training step: the learning rate for it, forward, backward and the optimiser's update,
 * then the reads of the loss and the output. */
static kiln_status train_enqueue(trainer *t, trainer_slot *s, void *state)
{
    train_state *st = state;
    kiln_status rc = KILN_OK;
    double lr = kiln_schedule_lr(&t->schedule, (int64_t)kiln_optimizer_get_step(t->opt), st->epoch);
    if ((float)lr != kiln_optimizer_get_lr(t->opt))
        rc = kiln_optimizer_set_lr(t->opt, (float)lr);
    st->v->lr = lr;
    if (rc == KILN_OK)
        rc = kiln_executor_forward(t->train_ex, t->step++);
    if (rc == KILN_OK)
        rc = kiln_executor_backward(t->train_ex);
    if (rc == KILN_OK)
        rc = kiln_optimizer_step(t->opt, t->train_ex);
    if (rc == KILN_OK)
        rc = kiln_executor_read_async(t->train_ex, t->loss, &s->loss, 1, trainer_slot_ticket(s));
    if (rc == KILN_OK)
        rc = kiln_executor_read_async(t->train_ex, t->output, s->outputs, t->batch * t->out_per_row,
                                      trainer_slot_ticket(s));
    return rc;
}

static kiln_status train_consume(trainer *t, const trainer_slot *s, int64_t index, void *state)
{
    train_state *st = state;
    kiln_status rc = update_metrics(t, s);
    st->loss_sum += s->loss;
    if (rc == KILN_OK && train_log_progress_due(t->log))
        progress_metrics(t, st->metrics_text, sizeof st->metrics_text);
    train_log_progress(t->log, st->epoch, t->cfg->train.epochs, index + 1, st->n_batches,
                       st->loss_sum / (double)(index + 1), st->metrics_text);
    return rc;
}

/* One training epoch: every full batch, and the final smaller one unless train.drop_last. The
 * graph's batch size is fixed, so that batch repeats its samples to fill it (repeat_last):
 * the step averages over them only. Each step's loss and output are read back, without
 * waiting, for the epoch's loss and metrics (trainer_run_batches). */
static kiln_status train_epoch(trainer *t, int64_t epoch, train_epoch_values *v, config_error *err)
{
    const config *cfg = t->cfg;
    kiln_batcher_options options = {.batch_size = t->batch,
                                    .shuffle = cfg->train.shuffle,
                                    .drop_last = cfg->train.drop_last,
                                    .repeat_last = true,
                                    .seed = (uint64_t)cfg->seed};
    kiln_batcher *b = NULL;
    kiln_status rc = kiln_batcher_create(t->data->train, &options, &b);
    if (rc != KILN_OK)
        return rc;
    int64_t n_batches = kiln_batcher_n_batches(b);
    if (n_batches == 0) {
        kiln_batcher_destroy(b);
        return train_error(err, KILN_ERR_INVALID_ARGUMENT,
                           "%s: train.batch_size: %lld is larger than the training split "
                           "(%lld samples)",
                           cfg->source, (long long)t->batch, (long long)t->data->train->n);
    }
    reset_metrics(t);
    t->cut_short = false;
    train_state st = {.epoch = epoch, .n_batches = n_batches, .v = v};
    trainer_batch_fns fns = {.enqueue = train_enqueue,
                             .consume = train_consume,
                             .interruptible = true,
                             .load_seconds = &t->batch_load_seconds};
    rc = trainer_run_batches(t, b, t->data->train, t->train_ex, epoch, &fns, &st);
    kiln_batcher_destroy(b);
    if (rc == KILN_OK && !t->cut_short)
        rc = add_results(t, "", st.loss_sum / (double)n_batches, v);
    return rc;
}

/* An evaluation's running totals (trainer_evaluate's loop state). */
typedef struct eval_state {
    double loss_sum;
    int64_t n_total;
} eval_state;

static kiln_status eval_enqueue(trainer *t, trainer_slot *s, void *state)
{
    (void)state;
    kiln_status rc = kiln_executor_forward(t->eval_ex, 0);
    if (rc == KILN_OK)
        rc = kiln_executor_read_async(t->eval_ex, t->output, s->outputs, t->batch * t->out_per_row,
                                      trainer_slot_ticket(s));
    s->loss = 0;
    if (rc == KILN_OK && !trainer_host_loss_exact(t))
        rc = kiln_executor_read_async(t->eval_ex, t->loss, &s->loss, 1, trainer_slot_ticket(s));
    return rc;
}

static kiln_status eval_consume(trainer *t, const trainer_slot *s, int64_t index, void *state)
{
    (void)index;
    eval_state *st = state;
    kiln_status rc = update_metrics(t, s);
    if (rc == KILN_OK && t->confusion != NULL)
        rc = kiln_metric_update_classes(t->confusion, s->outputs, s->classes, s->n_rows,
                                        t->out_per_row);
    if (rc == KILN_OK)
        st->loss_sum += trainer_host_loss(t, s);
    st->n_total += s->n_rows;
    return rc;
}

kiln_status trainer_evaluate(trainer *t, const kiln_dataset *ds, const char *prefix,
                             train_epoch_values *v)
{
    kiln_batcher_options options = {.batch_size = t->batch, .shuffle = false};
    kiln_batcher *b = NULL;
    kiln_status rc = kiln_batcher_create(ds, &options, &b);
    if (rc != KILN_OK)
        return rc;
    reset_metrics(t);
    if (t->confusion != NULL)
        kiln_metric_reset(t->confusion);
    eval_state st = {0, 0};
    trainer_batch_fns fns = {.enqueue = eval_enqueue, .consume = eval_consume};
    rc = trainer_run_batches(t, b, ds, t->eval_ex, 0, &fns, &st);
    kiln_batcher_destroy(b);
    if (rc == KILN_OK)
        rc = add_results(t, prefix, st.loss_sum / (double)(st.n_total > 0 ? st.n_total : 1), v);
    return rc;
}

/* The test results of `v` and the confusion matrix of the evaluation just run into `r`. */
static kiln_status keep_test(trainer *t, const train_epoch_values *v, train_result *r,
                             config_error *err)
{
    r->has_test = true;
    r->n_test = v->n;
    memcpy(r->test_names, v->names, sizeof v->names);
    memcpy(r->test_values, v->values, sizeof v->values);
    const int64_t *matrix = t->confusion != NULL ? kiln_metric_get_confusion(t->confusion) : NULL;
    if (matrix == NULL)
        return KILN_OK;
    size_t bytes = (size_t)(t->out_per_row * t->out_per_row) * sizeof *matrix;
    r->confusion = malloc(bytes);
    if (r->confusion == NULL)
        return train_error(err, KILN_ERR_NO_MEMORY, "out of memory for the confusion matrix");
    memcpy(r->confusion, matrix, bytes);
    r->n_classes = t->out_per_row;
    return KILN_OK;
}

void train_result_deinit(train_result *r)
{
    if (r == NULL)
        return;
    free(r->confusion);
    r->confusion = NULL;
    r->n_classes = 0;
}

static void trainer_deinit(trainer *t)
{
    kiln_metric_destroy(t->confusion);
    for (int i = 0; i < t->n_metrics; i++)
        kiln_metric_destroy(t->metrics[i]);
    kiln_optimizer_destroy(t->opt);
    kiln_executor_destroy(t->eval_ex);
    kiln_executor_destroy(t->infer_ex);
    kiln_executor_destroy(t->train_ex);
    kiln_model_destroy(t->model);
    kiln_graph_destroy(t->graph);
    kiln_safetensors_destroy(t->resume);
    for (size_t i = 0; i < t->n_state; i++)
        free(t->best_state[i]);
    free(t->best_state);
    free(t->state_values);
    for (int k = 0; k < 2; k++) {
        trainer_slot *slot = &t->slots[k];
        free(slot->features);
        free(slot->classes);
        free(slot->targets);
        free(slot->ftargets);
        free(slot->outputs);
    }
}

kiln_status train_run(const config *cfg, kiln_context *ctx, kiln_device *dev,
                      const train_data *data, train_log *log, const char *resume,
                      train_result *result, config_error *err)
{
    trainer t;
    memset(&t, 0, sizeof t);
    t.cfg = cfg;
    t.ctx = ctx;
    t.data = data;
    t.log = log;
    memset(result, 0, sizeof *result);
    result->best_epoch = -1;
    kiln_status rc = setup(&t, dev, true, false, err);
    if (rc == KILN_OK && resume != NULL)
        rc = trainer_load_resume(&t, resume, err);
    if (rc == KILN_OK && resume != NULL)
        rc = train_log_resume(log, t.start_epoch, err);
    if (rc == KILN_OK)
        rc = train_log_write_config(log, cfg, err);
    if (rc == KILN_OK)
        rc = trainer_fit(&t, result, err);
    result->batch_load_seconds = t.batch_load_seconds;
    if (rc == KILN_OK && data->test != NULL) {
        train_epoch_values v;
        memset(&v, 0, sizeof v);
        rc = trainer_evaluate(&t, data->test, "", &v);
        if (rc == KILN_OK)
            rc = keep_test(&t, &v, result, err);
    }
    trainer_deinit(&t);
    return rc;
}

/* Used by train_callbacks.c: one epoch of training plus validation into `v`. */
kiln_status trainer_epoch(trainer *t, int64_t epoch, train_epoch_values *v, config_error *err)
{
    memset(v, 0, sizeof *v);
    v->epoch = epoch;
    double start = train_now();
    kiln_status rc = train_epoch(t, epoch, v, err);
    if (rc == KILN_OK && t->data->validation != NULL && !t->cut_short)
        rc = trainer_evaluate(t, t->data->validation, "val_", v);
    if (rc == KILN_OK && t->cfg->train.diagnose.eval_train && !t->cut_short)
        rc = trainer_diagnose(t, epoch, v, err);
    v->seconds = train_now() - start;
    return rc;
}

kiln_status train_evaluate(const config *cfg, kiln_context *ctx, kiln_device *dev,
                           const kiln_dataset *ds, const kiln_safetensors *checkpoint,
                           train_result *result, config_error *err)
{
    trainer t;
    memset(&t, 0, sizeof t);
    train_data data = {.train = (kiln_dataset *)ds};
    t.cfg = cfg;
    t.ctx = ctx;
    t.data = &data;
    memset(result, 0, sizeof *result);
    result->best_epoch = -1;
    train_epoch_values v;
    memset(&v, 0, sizeof v);
    kiln_status rc = setup(&t, dev, false, false, err);
    if (rc == KILN_OK)
        rc = kiln_checkpoint_apply(checkpoint, t.model, NULL);
    if (rc == KILN_OK)
        rc = trainer_evaluate(&t, ds, "", &v);
    if (rc == KILN_OK)
        rc = keep_test(&t, &v, result, err);
    trainer_deinit(&t);
    return rc;
}

kiln_status train_predict(const config *cfg, kiln_context *ctx, kiln_device *dev,
                          const kiln_dataset *ds, const kiln_safetensors *checkpoint,
                          float **out_values, int64_t *out_per_row, config_error *err)
{
    trainer t;
    memset(&t, 0, sizeof t);
    train_data data = {.train = (kiln_dataset *)ds};
    t.cfg = cfg;
    t.ctx = ctx;
    t.data = &data;
    *out_values = NULL;
    kiln_status rc = setup(&t, dev, false, true, err);
    if (rc == KILN_OK)
        rc = kiln_checkpoint_apply(checkpoint, t.model, NULL);
    float *values = NULL;
    if (rc == KILN_OK) {
        values = malloc((size_t)ds->n * (size_t)t.out_per_row * sizeof(float));
        if (values == NULL)
            rc = train_error(err, KILN_ERR_NO_MEMORY, "out of memory for the predictions");
    }
    kiln_batcher_options options = {.batch_size = t.batch, .shuffle = false};
    kiln_batcher *b = NULL;
    if (rc == KILN_OK)
        rc = kiln_batcher_create(ds, &options, &b);
    int64_t n_batches = rc == KILN_OK ? kiln_batcher_n_batches(b) : 0, done = 0;
    for (int64_t i = 0; i < n_batches && rc == KILN_OK; i++) {
        /* The last batch is zero-padded to the graph's batch size; only its real rows count. */
        int64_t n_rows = 0;
        trainer_slot *slot = &t.slots[0];
        kiln_batch batch = {
            .features = slot->features, .classes = slot->classes, .targets = slot->targets};
        rc = kiln_batcher_fill(b, 0, i, &batch, &n_rows);
        if (rc == KILN_OK)
            rc = kiln_executor_set_input(t.infer_ex, t.input, slot->features,
                                         t.batch * t.n_features);
        if (rc == KILN_OK)
            rc = kiln_executor_forward(t.infer_ex, 0);
        if (rc == KILN_OK)
            rc = kiln_executor_read(t.infer_ex, t.output, slot->outputs, t.batch * t.out_per_row);
        if (rc == KILN_OK)
            memcpy(values + done * t.out_per_row, slot->outputs,
                   (size_t)(n_rows * t.out_per_row) * sizeof(float));
        done += n_rows;
    }
    kiln_batcher_destroy(b);
    *out_per_row = t.out_per_row;
    trainer_deinit(&t);
    if (rc != KILN_OK) {
        free(values);
        return rc;
    }
    *out_values = values;
    return KILN_OK;
}
