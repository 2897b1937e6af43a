/*
 * `kiln train`'s epoch loop with its callbacks: early stopping (with a host copy of the best
 * weights for restore_best), checkpoints (weights, optimiser state, effective config,
 * preprocessing statistics), the plateau schedule; and the evaluation loss computed on the
 * host from the read-back outputs, so that zero-padded rows of a last partial batch do not
 * count.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/callbacks.h"
#include "kiln/checkpoint.h"
#include "train_loop.h"

bool trainer_host_loss_exact(const trainer *t)
{
    kiln_loss_kind k = t->cfg->loss.kind;
    return k == KILN_LOSS_SOFTMAX_CROSS_ENTROPY || k == KILN_LOSS_BCE_WITH_LOGITS ||
           k == KILN_LOSS_MSE || k == KILN_LOSS_L1;
}

double trainer_host_loss(const trainer *t, const trainer_slot *s)
{
    int64_t n_rows = s->n_rows;
    int64_t c = t->out_per_row;
    double sum = 0;
    switch (t->cfg->loss.kind) {
    case KILN_LOSS_SOFTMAX_CROSS_ENTROPY: {
        double eps = t->cfg->loss.label_smoothing;
        for (int64_t r = 0; r < n_rows; r++) {
            const float *z = s->outputs + r * c;
            double max = z[0], total = 0, mean_z = 0;
            for (int64_t j = 1; j < c; j++)
                max = z[j] > max ? z[j] : max;
            for (int64_t j = 0; j < c; j++) {
                total += exp(z[j] - max);
                mean_z += z[j];
            }
            double lse = max + log(total);
            mean_z /= (double)c;
            sum += (1 - eps) * (lse - z[s->classes[r]]) + eps * (lse - mean_z);
        }
        return sum;
    }
    case KILN_LOSS_BCE_WITH_LOGITS:
    case KILN_LOSS_MSE:
    case KILN_LOSS_L1:
        for (int64_t i = 0; i < n_rows * c; i++) {
            double z = s->outputs[i], y = s->ftargets[i];
            if (t->cfg->loss.kind == KILN_LOSS_MSE)
                sum += (z - y) * (z - y);
            else if (t->cfg->loss.kind == KILN_LOSS_L1)
                sum += fabs(z - y);
            else
                sum += fmax(z, 0) - z * y + log1p(exp(-fabs(z)));
        }
        return sum / (double)c;
    default:
        return (double)s->loss * (double)n_rows;
    }
}

/* ---- restore_best ---- */

kiln_status trainer_alloc_state(const trainer *t, bool buffers_only, kiln_value **values,
                                float ***host, size_t *n_out, config_error *err)
{
    size_t n = kiln_graph_n_values(t->graph);
    *n_out = 0;
    *values = calloc(n + 1, sizeof **values);
    *host = calloc(n + 1, sizeof **host);
    if (*values == NULL || *host == NULL)
        return train_error(err, KILN_ERR_NO_MEMORY, "out of memory for a copy of the model");
    for (size_t v = 0; v < n; v++) {
        kiln_value_kind kind = kiln_graph_value_kind(t->graph, (kiln_value)v);
        if (kind != KILN_VALUE_BUFFER && (buffers_only || kind != KILN_VALUE_PARAMETER))
            continue;
        int64_t count = kiln_shape_count(kiln_graph_value_shape(t->graph, (kiln_value)v));
        (*values)[*n_out] = (kiln_value)v;
        (*host)[*n_out] = malloc((size_t)count * sizeof(float));
        if ((*host)[(*n_out)++] == NULL)
            return train_error(err, KILN_ERR_NO_MEMORY, "out of memory for a copy of the model");
    }
    return KILN_OK;
}

kiln_status trainer_alloc_best(trainer *t, config_error *err)
{
    if (t->best_state != NULL)
        return KILN_OK;
    return trainer_alloc_state(t, false, &t->state_values, &t->best_state, &t->n_state, err);
}

kiln_status trainer_copy_state(trainer *t, const kiln_value *values, float *const *host, size_t n,
                               bool to_device)
{
    for (size_t i = 0; i < n; i++) {
        const char *name = kiln_graph_value_name(t->graph, values[i]);
        int64_t count = kiln_shape_count(kiln_graph_value_shape(t->graph, values[i]));
        kiln_status rc = to_device ? kiln_model_write_state(t->model, name, host[i], count)
                                   : kiln_model_read_state(t->model, name, host[i], count);
        if (rc != KILN_OK)
            return rc;
    }
    return KILN_OK;
}

static kiln_status save_best_state(trainer *t, config_error *err)
{
    kiln_status rc = trainer_alloc_best(t, err);
    if (rc == KILN_OK)
        rc = trainer_copy_state(t, t->state_values, t->best_state, t->n_state, false);
    t->has_best_state = rc == KILN_OK;
    return rc;
}

/* ---- checkpoints ---- */

kiln_status trainer_save_checkpoint(trainer *t, const char *path, int64_t epoch,
                                    const char *monitor, double best, const char *config_text,
                                    const kiln_metadata_entry *metadata, size_t n_metadata,
                                    const kiln_host_tensor *more, size_t n_more, config_error *err)
{
    char dir[CONFIG_MAX_PATH];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash != NULL && slash != dir) {
        *slash = '\0';
        kiln_status rc = train_make_dirs(dir, err);
        if (rc != KILN_OK)
            return rc;
    }
    char epoch_text[32], best_text[64];
    snprintf(epoch_text, sizeof epoch_text, "%lld", (long long)epoch + 1);
    snprintf(best_text, sizeof best_text, "%.9g", best);
    kiln_metadata_entry base[] = {{"config", config_text},
                                  {"name", t->cfg->name},
                                  {"epoch", epoch_text},
                                  {"monitor", monitor},
                                  {"best", best_text}};
    size_t n_base = sizeof base / sizeof base[0];
    const kiln_preprocess *pp = t->data->preprocess;
    size_t n_extra = pp != NULL ? kiln_preprocess_n_stats(pp) : 0;
    kiln_host_tensor *extra = calloc(n_extra + n_more + 1, sizeof *extra);
    float **values = calloc(n_extra + 1, sizeof *values);
    kiln_metadata_entry *meta = calloc(n_base + n_metadata, sizeof *meta);
    kiln_status rc = KILN_OK;
    if (extra == NULL || values == NULL || meta == NULL)
        rc = train_error(err, KILN_ERR_NO_MEMORY, "out of memory for the checkpoint");
    if (rc == KILN_OK) {
        memcpy(meta, base, sizeof base);
        if (n_metadata > 0)
            memcpy(meta + n_base, metadata, n_metadata * sizeof *meta);
        if (n_more > 0)
            memcpy(extra + n_extra, more, n_more * sizeof *extra);
    }
    for (size_t i = 0; i < n_extra && rc == KILN_OK; i++) {
        int64_t n = kiln_preprocess_stat_size(pp, i);
        values[i] = malloc((size_t)n * sizeof(float));
        if (values[i] == NULL) {
            rc = train_error(err, KILN_ERR_NO_MEMORY, "out of memory for the checkpoint");
            break;
        }
        extra[i].name = kiln_preprocess_stat_name(pp, i);
        extra[i].dtype = KILN_SAFETENSORS_F32;
        extra[i].shape = kiln_shape_of(1, &n);
        extra[i].data = values[i];
        rc = kiln_preprocess_read_stat(pp, extra[i].name, values[i], n);
    }
    if (rc == KILN_OK)
        rc = kiln_checkpoint_save(path, t->model, t->opt, meta, n_base + n_metadata, extra,
                                  n_extra + n_more);
    for (size_t i = 0; values != NULL && i < n_extra; i++)
        free(values[i]);
    free(values);
    free(meta);
    free(extra);
    return rc;
}

/* ---- the loop ---- */

static kiln_monitor_mode monitor_mode_of(config_mode m)
{
    if (m == CONFIG_MODE_MIN)
        return KILN_MONITOR_MIN;
    return m == CONFIG_MODE_MAX ? KILN_MONITOR_MAX : KILN_MONITOR_AUTO;
}

static const char *default_last_path(const config *cfg, char *out, size_t capacity)
{
    snprintf(out, capacity, "%s", cfg->train.checkpoint.path);
    char *slash = strrchr(out, '/');
    size_t at = slash != NULL ? (size_t)(slash - out) + 1 : 0;
    snprintf(out + at, capacity - at, "last.safetensors");
    return out;
}

kiln_status trainer_fit(trainer *t, train_result *result, config_error *err)
{
    const config *cfg = t->cfg;
    const config_train *tr = &cfg->train;
    kiln_early_stopping es;
    kiln_checkpoint cp;
    char last_path[CONFIG_MAX_PATH];
    char *config_text = NULL;
    kiln_status rc = KILN_OK;
    if (tr->early_stopping.enabled) {
        kiln_early_stopping_config ec;
        kiln_early_stopping_config_init(&ec);
        ec.monitor = tr->early_stopping.monitor;
        ec.mode = monitor_mode_of(tr->early_stopping.mode);
        ec.min_delta = tr->early_stopping.min_delta;
        ec.patience = tr->early_stopping.patience;
        ec.has_baseline = tr->early_stopping.has_baseline;
        ec.baseline = tr->early_stopping.baseline;
        ec.start_from_epoch = tr->early_stopping.start_from_epoch;
        ec.restore_best = tr->early_stopping.restore_best;
        rc = kiln_early_stopping_init(t->ctx, &es, &ec);
    }
    if (rc == KILN_OK && tr->checkpoint.enabled) {
        kiln_checkpoint_config cc;
        kiln_checkpoint_config_init(&cc);
        cc.path = tr->checkpoint.path;
        cc.monitor = tr->checkpoint.monitor;
        cc.mode = monitor_mode_of(tr->checkpoint.mode);
        cc.save_best_only = tr->checkpoint.save_best_only;
        cc.save_last = tr->checkpoint.save_last;
        cc.last_path = default_last_path(cfg, last_path, sizeof last_path);
        rc = kiln_checkpoint_init(t->ctx, &cp, &cc, NULL, 0);
    }
    if (rc == KILN_OK)
        rc = config_write_string(cfg, &config_text, err);
    if (rc == KILN_OK)
        rc = trainer_resume_callbacks(t, tr->early_stopping.enabled ? &es : NULL,
                                      tr->checkpoint.enabled ? &cp : NULL, err);
    int64_t epoch = t->start_epoch;
    kiln_stop_reason reason = KILN_STOP_EPOCHS_EXHAUSTED;
    for (; epoch < tr->epochs && rc == KILN_OK; epoch++) {
        train_epoch_values v;
        rc = trainer_epoch(t, epoch, &v, err);
        if (rc == KILN_OK && t->cut_short) {
            /* Interrupted within the epoch: its steps are not logged, and last.safetensors
             * stays at the end of the previous epoch, the state a resume repeats exactly. */
            reason = KILN_STOP_INTERRUPTED;
            break;
        }
        if (rc == KILN_OK)
            rc = train_log_epoch(t->log, &v, tr->epochs, err);
        if (rc != KILN_OK)
            break;
        kiln_metric_value record_values[TRAIN_MAX_VALUES];
        for (int i = 0; i < v.n; i++)
            record_values[i] = (kiln_metric_value){v.names[i], v.values[i]};
        kiln_epoch_record record = {epoch, record_values, (size_t)v.n};
        if (tr->schedule.kind == KILN_SCHEDULE_PLATEAU) {
            double value = 0;
            rc = kiln_epoch_record_find(t->ctx, &record, tr->schedule.monitor, &value);
            if (rc == KILN_OK)
                kiln_schedule_report(&t->schedule, value);
        }
        if (rc == KILN_OK && tr->checkpoint.enabled) {
            kiln_checkpoint_decision d;
            rc = kiln_checkpoint_update(t->ctx, &cp, &record, &d);
            if (rc == KILN_OK && d.save)
                rc = trainer_save_checkpoint(t, d.path, epoch, cp.config.monitor, cp.tracker.best,
                                             config_text, NULL, 0, NULL, 0, err);
            if (rc == KILN_OK && d.save_last)
                rc = trainer_save_checkpoint(t, d.last_path, epoch, cp.config.monitor,
                                             cp.tracker.best, config_text, NULL, 0, NULL, 0, err);
            result->best_epoch = cp.tracker.best_epoch;
        }
        if (rc == KILN_OK && tr->early_stopping.enabled) {
            kiln_epoch_decision d;
            rc = kiln_early_stopping_update(t->ctx, &es, &record, &d);
            if (rc == KILN_OK && d.new_best && tr->early_stopping.restore_best)
                rc = save_best_state(t, err);
            if (rc == KILN_OK && d.stop)
                reason = d.reason;
        }
        if (rc == KILN_OK)
            rc = trainer_save_resume(t, epoch + 1, tr->early_stopping.enabled ? &es : NULL,
                                     tr->checkpoint.enabled ? &cp : NULL, config_text, err);
        if (rc == KILN_OK && reason == KILN_STOP_EPOCHS_EXHAUSTED && train_interrupt)
            reason = KILN_STOP_INTERRUPTED;
        if (rc == KILN_OK && reason != KILN_STOP_EPOCHS_EXHAUSTED) {
            epoch++;
            break;
        }
    }
    free(config_text);
    if (rc != KILN_OK)
        return rc;
    result->epochs_run = epoch;
    if (tr->early_stopping.enabled) {
        kiln_early_stopping_end(&es, reason == KILN_STOP_INTERRUPTED ? KILN_STOP_INTERRUPTED
                                                                     : KILN_STOP_EPOCHS_EXHAUSTED);
        reason = es.reason;
        result->best_epoch = kiln_early_stopping_best_epoch(&es);
        /* Cut short within an epoch, the weights have moved past the last complete epoch,
         * so the best one is restored even when it was that epoch. */
        bool due = kiln_early_stopping_restore_due(&es) ||
                   (t->cut_short && tr->early_stopping.restore_best &&
                    kiln_early_stopping_best_epoch(&es) >= 0);
        if (due && t->has_best_state) {
            rc = trainer_copy_state(t, t->state_values, t->best_state, t->n_state, true);
            result->restored = rc == KILN_OK;
        }
    }
    result->stop_reason = kiln_stop_reason_name(reason);
    return rc;
}
