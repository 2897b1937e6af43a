/*
 * Callbacks (include/kiln/callbacks.h): the improvement tracker and mode resolution that
 * early stopping and the checkpoint decision share, early stopping itself, and the checkpoint
 * decision. Pure host logic over caller-owned structs; path templates are expanded by
 * path_template.c. Acting on a decision (copying weights, writing files) is the runner's job.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/context.h"
#include "kiln/callbacks.h"
#include "kiln/metrics.h"
#include "train/callbacks_internal.h"

/* ---- Records ---- */

const kiln_metric_value *kiln__record_lookup(const kiln_epoch_record *record, const char *name,
                                             size_t name_len)
{
    for (size_t i = 0; i < record->n_values; i++) {
        const char *have = record->values[i].name;
        if (have != NULL && strncmp(have, name, name_len) == 0 && have[name_len] == '\0')
            return &record->values[i];
    }
    return NULL;
}

void kiln__list_names(char *out, size_t capacity, const char *first, const char *const *names,
                      size_t n_names, const char *brace_open, const char *brace_close)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n_names + (first != NULL); i++) {
        const char *name = first != NULL ? (i == 0 ? first : names[i - 1]) : names[i];
        int n = snprintf(out + used, capacity - used, "%s%s%s%s", i ? ", " : "", brace_open,
                         name != NULL ? name : "(null)", brace_close);
        if (n < 0 || (size_t)n >= capacity - used) {
            /* Too many names for the message: end with an ellipsis that fits. */
            size_t cut = capacity > 6 ? capacity - 6 : 0; /* room for ", ..." */
            if (used > cut)
                used = cut;
            snprintf(out + used, capacity - used, ", ...");
            return;
        }
        used += (size_t)n;
    }
}

/* The record's names, for messages. */
static void record_names(const kiln_epoch_record *record, char *out, size_t capacity)
{
    const char *names[64];
    size_t n = record->n_values < 64 ? record->n_values : 64;
    for (size_t i = 0; i < n; i++)
        names[i] = record->values[i].name;
    kiln__list_names(out, capacity, NULL, names, n, "", "");
    if (record->n_values > n)
        strncat(out, ", ...", capacity - strlen(out) - 1);
}

static kiln_status check_record(kiln_context *ctx, const char *fn, const kiln_epoch_record *record)
{
    if (record == NULL || (record->n_values > 0 && record->values == NULL))
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn, "the epoch record is not set");
    if (record->epoch < 0)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn,
                           "record.epoch must be >= 0 (epochs count from 0), got %lld",
                           (long long)record->epoch);
    return KILN_OK;
}

static kiln_status find_value(kiln_context *ctx, const char *fn, const kiln_epoch_record *record,
                              const char *name, double *out)
{
    const kiln_metric_value *v = kiln__record_lookup(record, name, strlen(name));
    if (v != NULL) {
        *out = v->value;
        return KILN_OK;
    }
    char have[512];
    record_names(record, have, sizeof have);
    return kiln__error(ctx, KILN_ERR_NOT_FOUND, fn,
                       "'%s' is not in the record of epoch %lld, which has: %s", name,
                       (long long)record->epoch + 1, record->n_values ? have : "(nothing)");
}

kiln_status kiln_epoch_record_find(kiln_context *ctx, const kiln_epoch_record *record,
                                   const char *name, double *out)
{
    kiln_status rc = check_record(ctx, __func__, record);
    if (rc == KILN_OK && (name == NULL || out == NULL))
        rc = kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, __func__, "name and out must be set");
    if (rc == KILN_OK)
        rc = find_value(ctx, __func__, record, name, out);
    return rc;
}

/* ---- Improvement ---- */

static bool ends_with(const char *text, const char *suffix)
{
    size_t n = strlen(text), k = strlen(suffix);
    return n >= k && strcmp(text + n - k, suffix) == 0;
}

kiln_status kiln_monitor_resolve_mode(kiln_context *ctx, const char *monitor,
                                      kiln_monitor_mode mode, kiln_monitor_mode *out)
{
    if (out == NULL)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, __func__, "out must be set");
    if (mode == KILN_MONITOR_MIN || mode == KILN_MONITOR_MAX) {
        *out = mode;
        return KILN_OK;
    }
    if (mode != KILN_MONITOR_AUTO)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, __func__,
                           "mode %d is not a monitor mode (AUTO, MIN or MAX)", (int)mode);
    if (monitor == NULL || monitor[0] == '\0')
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, __func__,
                           "mode auto needs a monitor name");
    if (ends_with(monitor, "loss")) {
        *out = KILN_MONITOR_MIN;
        return KILN_OK;
    }
    size_t n = strlen(monitor);
    for (int k = 0; k < KILN_METRIC_N_KINDS; k++) {
        const kiln_metric_info *info = kiln_metric_info_of((kiln_metric_kind)k);
        size_t len = strlen(info->name);
        if (ends_with(monitor, info->name) && (n == len || monitor[n - len - 1] == '_')) {
            *out = info->higher_is_better ? KILN_MONITOR_MAX : KILN_MONITOR_MIN;
            return KILN_OK;
        }
    }
    return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, __func__,
                       "mode auto cannot tell whether '%s' should fall or rise: it is not a "
                       "loss (a name ending in 'loss') nor a known metric (accuracy, top_k, "
                       "precision, recall, f1, mse, mae, r2, dice, iou, optionally after a "
                       "prefix such as 'val_'); set mode min or max",
                       monitor);
}

kiln_status kiln_tracker_init(kiln_context *ctx, kiln_tracker *t, const char *monitor,
                              kiln_monitor_mode mode, double min_delta)
{
    if (t == NULL)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, __func__, "tracker must be set");
    if (!(isfinite(min_delta) && min_delta >= 0))
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, __func__,
                           "min_delta must be a finite number >= 0, got %g", min_delta);
    memset(t, 0, sizeof *t);
    kiln_status rc = kiln_monitor_resolve_mode(ctx, monitor, mode, &t->mode);
    t->min_delta = min_delta;
    t->best = NAN;
    t->best_epoch = -1;
    return rc;
}

bool kiln_tracker_beats(const kiln_tracker *t, double value, double reference)
{
    if (!isfinite(value))
        return false;
    if (t->mode == KILN_MONITOR_MAX)
        return value - t->min_delta > reference;
    return value + t->min_delta < reference;
}

bool kiln_tracker_update(kiln_tracker *t, int64_t epoch, double value)
{
    if (!isfinite(value) || (t->has_best && !kiln_tracker_beats(t, value, t->best)))
        return false;
    t->has_best = true;
    t->best = value;
    t->best_epoch = epoch;
    return true;
}

/* ---- Early stopping ---- */

const char *kiln_stop_reason_name(kiln_stop_reason reason)
{
    switch (reason) {
    case KILN_STOP_NONE:
        return "none";
    case KILN_STOP_PATIENCE:
        return "patience";
    case KILN_STOP_EPOCHS_EXHAUSTED:
        return "epochs_exhausted";
    case KILN_STOP_NAN:
        return "nan";
    case KILN_STOP_INTERRUPTED:
        return "interrupted";
    case KILN_STOP_BASELINE:
        return "baseline";
    }
    return "unknown";
}

void kiln_early_stopping_config_init(kiln_early_stopping_config *c)
{
    memset(c, 0, sizeof *c);
    c->monitor = "val_loss";
    c->mode = KILN_MONITOR_AUTO;
}

kiln_status kiln_early_stopping_init(kiln_context *ctx, kiln_early_stopping *es,
                                     const kiln_early_stopping_config *c)
{
    const char *fn = __func__;
    if (es == NULL || c == NULL)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn, "es and config must be set");
    if (c->monitor == NULL || c->monitor[0] == '\0')
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn, "config.monitor must be named");
    if (c->patience < 0)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn,
                           "config.patience must be >= 0 epochs, got %lld", (long long)c->patience);
    if (c->start_from_epoch < 0)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn,
                           "config.start_from_epoch must be >= 0, got %lld",
                           (long long)c->start_from_epoch);
    if (c->has_baseline && !isfinite(c->baseline))
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn,
                           "config.baseline must be finite, got %g", c->baseline);
    if (!(isfinite(c->min_delta) && c->min_delta >= 0))
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn,
                           "config.min_delta must be a finite number >= 0, got %g", c->min_delta);
    memset(es, 0, sizeof *es);
    kiln_status rc = kiln_tracker_init(ctx, &es->tracker, c->monitor, c->mode, c->min_delta);
    if (rc != KILN_OK)
        return rc;
    es->config = *c;
    es->baseline_beaten = !c->has_baseline;
    es->last_epoch = -1;
    es->reason = KILN_STOP_NONE;
    es->stop_epoch = -1;
    es->stop_value = NAN;
    return KILN_OK;
}

static void stop(kiln_early_stopping *es, kiln_epoch_decision *d, kiln_stop_reason reason,
                 int64_t epoch, double value)
{
    es->reason = reason;
    es->stop_epoch = epoch;
    es->stop_value = value;
    d->stop = true;
    d->reason = reason;
}

kiln_status kiln_early_stopping_update(kiln_context *ctx, kiln_early_stopping *es,
                                       const kiln_epoch_record *record, kiln_epoch_decision *d)
{
    const char *fn = __func__;
    if (es == NULL || d == NULL)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn, "es and decision must be set");
    kiln_status rc = check_record(ctx, fn, record);
    if (rc != KILN_OK)
        return rc;
    if (es->reason != KILN_STOP_NONE)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn,
                           "training already ended after epoch %lld (%s)",
                           (long long)es->stop_epoch + 1, kiln_stop_reason_name(es->reason));
    if (record->epoch <= es->last_epoch)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn,
                           "epoch %lld does not follow epoch %lld: epochs must increase",
                           (long long)record->epoch + 1, (long long)es->last_epoch + 1);
    double value;
    rc = find_value(ctx, fn, record, es->config.monitor, &value);
    if (rc != KILN_OK)
        return rc;
    memset(d, 0, sizeof *d);
    int64_t epoch = record->epoch;
    es->last_epoch = epoch;
    if (!isfinite(value)) {
        stop(es, d, KILN_STOP_NAN, epoch, value);
        return KILN_OK;
    }
    if (epoch < es->config.start_from_epoch)
        return KILN_OK;
    es->wait++;
    if (kiln_tracker_update(&es->tracker, epoch, value)) {
        d->new_best = true;
        if (!es->config.has_baseline ||
            kiln_tracker_beats(&es->tracker, value, es->config.baseline)) {
            es->wait = 0;
            es->baseline_beaten = true;
        }
    }
    if (es->wait > 0 && es->wait >= es->config.patience)
        stop(es, d, es->baseline_beaten ? KILN_STOP_PATIENCE : KILN_STOP_BASELINE, epoch, value);
    return KILN_OK;
}

void kiln_early_stopping_end(kiln_early_stopping *es, kiln_stop_reason reason)
{
    if (es->reason != KILN_STOP_NONE || reason == KILN_STOP_NONE)
        return;
    es->reason = reason;
    es->stop_epoch = es->last_epoch;
    es->stop_value = NAN;
}

int64_t kiln_early_stopping_best_epoch(const kiln_early_stopping *es)
{
    return es->tracker.has_best ? es->tracker.best_epoch : -1;
}

bool kiln_early_stopping_restore_due(const kiln_early_stopping *es)
{
    return es->config.restore_best && es->tracker.has_best &&
           es->tracker.best_epoch != es->last_epoch;
}

size_t kiln_early_stopping_describe(const kiln_early_stopping *es, char *out, size_t capacity)
{
    const kiln_early_stopping_config *c = &es->config;
    char best[160] = "no best epoch yet";
    if (es->tracker.has_best)
        snprintf(best, sizeof best, "best %s %g at epoch %lld", c->monitor, es->tracker.best,
                 (long long)es->tracker.best_epoch + 1);
    char head[96];
    snprintf(head, sizeof head, "stopped after epoch %lld (%s)", (long long)es->stop_epoch + 1,
             kiln_stop_reason_name(es->reason));
    int n = 0;
    switch (es->reason) {
    case KILN_STOP_NONE:
        n = snprintf(out, capacity, "still training; %s", best);
        break;
    case KILN_STOP_PATIENCE:
        n = snprintf(out, capacity, "%s: %s did not improve by more than %g for %lld epochs; %s",
                     head, c->monitor, c->min_delta, (long long)es->wait, best);
        break;
    case KILN_STOP_BASELINE:
        n = snprintf(out, capacity, "%s: %s did not beat the baseline %g within %lld epochs; %s",
                     head, c->monitor, c->baseline, (long long)es->wait, best);
        break;
    case KILN_STOP_NAN:
        n = snprintf(out, capacity, "%s: %s was %g; %s", head, c->monitor, es->stop_value, best);
        break;
    case KILN_STOP_EPOCHS_EXHAUSTED:
    case KILN_STOP_INTERRUPTED:
        n = snprintf(out, capacity, "%s; %s", head, best);
        break;
    }
    return n > 0 ? (size_t)n : 0;
}

/* ---- Checkpoint decision ---- */

void kiln_checkpoint_config_init(kiln_checkpoint_config *c)
{
    memset(c, 0, sizeof *c);
    c->monitor = "val_loss";
    c->mode = KILN_MONITOR_AUTO;
}

static bool has_name(const char *const *names, size_t n_names, const char *name)
{
    for (size_t i = 0; i < n_names; i++)
        if (names[i] != NULL && strcmp(names[i], name) == 0)
            return true;
    return false;
}

kiln_status kiln_checkpoint_init(kiln_context *ctx, kiln_checkpoint *cp,
                                 const kiln_checkpoint_config *c, const char *const *names,
                                 size_t n_names)
{
    const char *fn = __func__;
    if (cp == NULL || c == NULL || (n_names > 0 && names == NULL))
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn,
                           "cp, config and (with n_names > 0) names must be set");
    if (c->path == NULL || c->path[0] == '\0')
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn, "config.path must be set");
    if (c->monitor == NULL || c->monitor[0] == '\0')
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn, "config.monitor must be named");
    if (c->save_last && (c->last_path == NULL || c->last_path[0] == '\0'))
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn,
                           "config.save_last needs config.last_path");
    if (c->save_best_only && n_names > 0 && !has_name(names, n_names, c->monitor)) {
        char known[512];
        kiln__list_names(known, sizeof known, NULL, names, n_names, "", "");
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn,
                           "config.monitor '%s' is not among the values each epoch records: %s",
                           c->monitor, known);
    }
    kiln_status rc = kiln_path_template_check(ctx, c->path, names, n_names);
    if (rc == KILN_OK && c->save_last)
        rc = kiln_path_template_check(ctx, c->last_path, names, n_names);
    if (rc != KILN_OK)
        return rc;
    memset(cp, 0, sizeof *cp);
    rc = kiln_tracker_init(ctx, &cp->tracker, c->monitor, c->mode, c->min_delta);
    cp->config = *c;
    cp->last_epoch = -1;
    return rc;
}

kiln_status kiln_checkpoint_update(kiln_context *ctx, kiln_checkpoint *cp,
                                   const kiln_epoch_record *record, kiln_checkpoint_decision *d)
{
    const char *fn = __func__;
    if (cp == NULL || d == NULL)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn, "cp and decision must be set");
    kiln_status rc = check_record(ctx, fn, record);
    if (rc != KILN_OK)
        return rc;
    if (record->epoch <= cp->last_epoch)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn,
                           "epoch %lld does not follow epoch %lld: epochs must increase",
                           (long long)record->epoch + 1, (long long)cp->last_epoch + 1);
    const char *monitor = cp->config.monitor;
    const kiln_metric_value *v = kiln__record_lookup(record, monitor, strlen(monitor));
    double value;
    if (v == NULL && cp->config.save_best_only)
        return find_value(ctx, fn, record, monitor, &value); /* records the error */
    d->save = d->new_best = d->save_last = false;
    d->path[0] = d->last_path[0] = '\0';
    /* The shared tracker judges the epoch on a copy, kept only when the paths expand. */
    kiln_tracker next = cp->tracker;
    bool new_best = v != NULL && kiln_tracker_update(&next, record->epoch, v->value);
    bool save = cp->config.save_best_only ? new_best : true;
    if (save)
        rc = kiln_path_template_expand(ctx, cp->config.path, record, d->path, sizeof d->path);
    if (rc == KILN_OK && cp->config.save_last)
        rc = kiln_path_template_expand(ctx, cp->config.last_path, record, d->last_path,
                                       sizeof d->last_path);
    if (rc != KILN_OK)
        return rc; /* nothing recorded: the epoch can be judged again */
    cp->tracker = next;
    cp->last_epoch = record->epoch;
    d->save = save;
    d->new_best = new_best;
    d->save_last = cp->config.save_last;
    return KILN_OK;
}
