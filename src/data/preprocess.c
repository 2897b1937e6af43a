/*
 * Preprocessing pipelines: scale, standardize (global, per feature or per channel), min-max,
 * imputation
 * (mean, median, constant) and dropping rows with missing values. Statistics are fitted on
 * the training split only (fit_transform), then applied unchanged to any split (transform),
 * and live in named float arrays that checkpoints save and restore. Fitting sums in double
 * and ignores NaN, as scikit-learn's scalers do; applying uses float arithmetic on the stored
 * floats only, so a restored pipeline transforms bit for bit like the original.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"

typedef struct stat_slot {
    char *name;
    int64_t size;
    float *values;
    bool written;
} stat_slot;

struct kiln_preprocess {
    kiln_context *ctx;
    kiln_preprocess_step *steps;
    size_t n_steps;
    int64_t n_features;
    stat_slot *stats;
    size_t n_stats;
    size_t *first_stat; /* per step: its first statistic's index */
};

static const char *kind_name(kiln_preprocess_kind kind)
{
    static const char *const NAMES[] = {"scale",           "standardize",  "standardize_features",
                                        "minmax",          "impute_mean",  "impute_median",
                                        "impute_constant", "drop_missing", "standardize_channels"};
    return (unsigned)kind < sizeof NAMES / sizeof NAMES[0] ? NAMES[kind] : NULL;
}

/* How many values each statistic of `step` holds: one overall, one per channel or one per
 * feature. A statistic's value j covers features [j * F / width, (j + 1) * F / width). */
static int64_t stat_width(const kiln_preprocess_step *step, int64_t n_features)
{
    if (step->kind == KILN_PREPROCESS_STANDARDIZE)
        return 1;
    return step->kind == KILN_PREPROCESS_STANDARDIZE_CHANNELS ? step->channels : n_features;
}

/* The names of a step's statistics (up to two) and their count. */
static int step_stats(kiln_preprocess_kind kind, const char *names[2])
{
    switch (kind) {
    case KILN_PREPROCESS_STANDARDIZE:
    case KILN_PREPROCESS_STANDARDIZE_FEATURES:
    case KILN_PREPROCESS_STANDARDIZE_CHANNELS:
        names[0] = "mean";
        names[1] = "std";
        return 2;
    case KILN_PREPROCESS_MINMAX:
        names[0] = "min";
        names[1] = "max";
        return 2;
    case KILN_PREPROCESS_IMPUTE_MEAN:
    case KILN_PREPROCESS_IMPUTE_MEDIAN:
    case KILN_PREPROCESS_IMPUTE_CONSTANT:
        names[0] = "fill";
        return 1;
    default:
        return 0;
    }
}

kiln_status kiln_preprocess_create(kiln_context *ctx, const kiln_preprocess_step *steps,
                                   size_t n_steps, int64_t n_features, kiln_preprocess **out)
{
    kiln_status rc = KILN_OK;
    kiln_preprocess *pp = NULL;
    if (out == NULL)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, __func__, "out is NULL");
    *out = NULL;
    if (n_steps > 0 && steps == NULL)
        KILN_FAIL(ctx, KILN_ERR_INVALID_ARGUMENT, "steps is NULL");
    if (n_features < 1 || n_features > INT32_MAX)
        KILN_FAIL(ctx, KILN_ERR_INVALID_ARGUMENT, "n_features must be in [1, 2^31), got %lld",
                  (long long)n_features);
    size_t n_stats = 0;
    for (size_t k = 0; k < n_steps; k++) {
        const char *names[2];
        if (kind_name(steps[k].kind) == NULL)
            KILN_FAIL(ctx, KILN_ERR_INVALID_ARGUMENT, "step %zu has unknown kind %d", k,
                      (int)steps[k].kind);
        bool uses_value = steps[k].kind == KILN_PREPROCESS_SCALE ||
                          steps[k].kind == KILN_PREPROCESS_IMPUTE_CONSTANT;
        if (uses_value && !isfinite(steps[k].value))
            KILN_FAIL(ctx, KILN_ERR_INVALID_ARGUMENT, "step %zu (%s) needs a finite value, got %g",
                      k, kind_name(steps[k].kind), steps[k].value);
        int64_t channels = steps[k].channels;
        if (steps[k].kind == KILN_PREPROCESS_STANDARDIZE_CHANNELS &&
            (channels < 1 || n_features % channels != 0))
            KILN_FAIL(ctx, KILN_ERR_INVALID_ARGUMENT,
                      "step %zu (standardize_channels) needs a channel count that divides the "
                      "%lld features of a sample, got %lld",
                      k, (long long)n_features, (long long)channels);
        n_stats += (size_t)step_stats(steps[k].kind, names);
    }
    pp = kiln__calloc(ctx, 1, sizeof *pp);
    if (pp == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "no memory for a preprocessing pipeline");
    pp->ctx = ctx;
    pp->n_features = n_features;
    pp->steps = kiln__calloc(ctx, n_steps + 1, sizeof *pp->steps);
    pp->first_stat = kiln__calloc(ctx, n_steps + 1, sizeof *pp->first_stat);
    pp->stats = kiln__calloc(ctx, n_stats + 1, sizeof *pp->stats);
    if (pp->steps == NULL || pp->first_stat == NULL || pp->stats == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "no memory for a preprocessing pipeline");
    if (n_steps > 0)
        memcpy(pp->steps, steps, n_steps * sizeof *steps);
    pp->n_steps = n_steps;
    for (size_t k = 0; k < n_steps; k++) {
        const char *names[2];
        int n = step_stats(steps[k].kind, names);
        pp->first_stat[k] = pp->n_stats;
        for (int s = 0; s < n; s++) {
            stat_slot *slot = &pp->stats[pp->n_stats++];
            slot->size = stat_width(&steps[k], n_features);
            slot->name =
                kiln__format(ctx, "preprocess.%zu.%s.%s", k, kind_name(steps[k].kind), names[s]);
            slot->values = kiln__calloc(ctx, (size_t)slot->size, sizeof(float));
            if (slot->name == NULL || slot->values == NULL)
                KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "no memory for preprocessing statistics");
        }
    }
    *out = pp;
    pp = NULL;
cleanup:
    kiln_preprocess_destroy(pp);
    return rc;
}

void kiln_preprocess_destroy(kiln_preprocess *pp)
{
    if (pp == NULL)
        return;
    for (size_t s = 0; pp->stats != NULL && s < pp->n_stats; s++) {
        kiln__free(pp->ctx, pp->stats[s].name);
        kiln__free(pp->ctx, pp->stats[s].values);
    }
    kiln__free(pp->ctx, pp->stats);
    kiln__free(pp->ctx, pp->first_stat);
    kiln__free(pp->ctx, pp->steps);
    kiln__free(pp->ctx, pp);
}

bool kiln_preprocess_is_fitted(const kiln_preprocess *pp)
{
    for (size_t s = 0; s < pp->n_stats; s++) {
        if (!pp->stats[s].written)
            return false;
    }
    return true;
}

/* What statistic j of a step of `width` values covers, for messages: "the data", "channel 2",
 * "feature 'sepal_width'" or "feature index 3". */
static const char *group_label(const kiln_dataset *ds, int64_t width, int64_t f, char *out,
                               size_t capacity)
{
    if (width == 1)
        snprintf(out, capacity, "the data");
    else if (width != ds->n_features)
        snprintf(out, capacity, "channel %lld", (long long)f);
    else if (ds->feature_names != NULL)
        snprintf(out, capacity, "feature '%s'", ds->feature_names[f]);
    else
        snprintf(out, capacity, "feature index %lld", (long long)f);
    return out;
}

static int compare_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Fits step k on ds (already transformed by steps 0..k-1). */
static kiln_status fit_step(kiln_preprocess *pp, size_t k, const kiln_dataset *ds)
{
    kiln_status rc = KILN_OK;
    kiln_context *ctx = pp->ctx;
    const kiln_preprocess_step *step = &pp->steps[k];
    stat_slot *stat = &pp->stats[pp->first_stat[k]];
    int64_t F = ds->n_features, n = ds->n;
    int64_t width = stat_width(step, F), inner = F / width; /* features per statistic */
    double *a = kiln__calloc(ctx, (size_t)width, sizeof(double));
    double *b = kiln__calloc(ctx, (size_t)width, sizeof(double));
    int64_t *count = kiln__calloc(ctx, (size_t)width, sizeof(int64_t));
    float *column = NULL;
    char name[160];
    if (a == NULL || b == NULL || count == NULL)
        KILN__FAIL_AS("kiln_preprocess_fit_transform", ctx, KILN_ERR_NO_MEMORY,
                      "no memory to fit step %zu", k);
    if (step->kind == KILN_PREPROCESS_SCALE || step->kind == KILN_PREPROCESS_DROP_MISSING)
        goto cleanup;
    /* a: sum (then mean) or min; b: squared deviations or max; count: values seen. */
    /* Loops run statistic by statistic over its `inner` features (no division per value);
     * each statistic still sees its values in sample-then-feature order. */
    for (int64_t i = 0; i < n; i++) {
        const float *x = ds->features + i * F;
        for (int64_t j = 0; j < width; j++) {
            for (int64_t f = j * inner; f < (j + 1) * inner; f++) {
                if (isnan(x[f]))
                    continue;
                if (step->kind == KILN_PREPROCESS_MINMAX) {
                    a[j] = count[j] == 0 || x[f] < a[j] ? x[f] : a[j];
                    b[j] = count[j] == 0 || x[f] > b[j] ? x[f] : b[j];
                } else {
                    a[j] += x[f];
                }
                count[j]++;
            }
        }
    }
    for (int64_t j = 0; j < width; j++) {
        if (count[j] == 0)
            KILN__FAIL_AS("kiln_preprocess_fit_transform", ctx, KILN_ERR_INVALID_ARGUMENT,
                          "step %zu (%s) has nothing to fit: %s has no value in any of the %lld "
                          "samples of '%s'",
                          k, kind_name(step->kind), group_label(ds, width, j, name, sizeof name),
                          (long long)n, ds->name);
        if (step->kind != KILN_PREPROCESS_MINMAX)
            a[j] /= (double)count[j];
    }
    switch (step->kind) {
    case KILN_PREPROCESS_STANDARDIZE:
    case KILN_PREPROCESS_STANDARDIZE_FEATURES:
    case KILN_PREPROCESS_STANDARDIZE_CHANNELS:
        /* Two passes: the deviations from the mean avoid cancellation in E[x^2] - E[x]^2. */
        for (int64_t i = 0; i < n; i++) {
            const float *x = ds->features + i * F;
            for (int64_t j = 0; j < width; j++) {
                double mean = a[j], sum = b[j];
                for (int64_t f = j * inner; f < (j + 1) * inner; f++)
                    if (!isnan(x[f]))
                        sum += (x[f] - mean) * (x[f] - mean);
                b[j] = sum;
            }
        }
        for (int64_t j = 0; j < width; j++) {
            float std = (float)sqrt(b[j] / (double)count[j]);
            stat[0].values[j] = (float)a[j];
            stat[1].values[j] = std > 0 ? std : 1.0f;
        }
        break;
    case KILN_PREPROCESS_MINMAX:
        for (int64_t j = 0; j < F; j++) {
            stat[0].values[j] = (float)a[j];
            stat[1].values[j] = (float)b[j];
        }
        break;
    case KILN_PREPROCESS_IMPUTE_MEAN:
        for (int64_t j = 0; j < F; j++)
            stat[0].values[j] = (float)a[j];
        break;
    case KILN_PREPROCESS_IMPUTE_MEDIAN:
        column = kiln__calloc(ctx, (size_t)n, sizeof(float));
        if (column == NULL)
            KILN__FAIL_AS("kiln_preprocess_fit_transform", ctx, KILN_ERR_NO_MEMORY,
                          "no memory for a column of %lld values", (long long)n);
        for (int64_t f = 0; f < F; f++) {
            int64_t m = 0;
            for (int64_t i = 0; i < n; i++) {
                float v = ds->features[i * F + f];
                if (!isnan(v))
                    column[m++] = v;
            }
            qsort(column, (size_t)m, sizeof(float), compare_float);
            /* numpy.median: the mean of the two middle values for an even count. */
            double median =
                m % 2 == 1 ? column[m / 2] : ((double)column[m / 2 - 1] + column[m / 2]) / 2;
            stat[0].values[f] = (float)median;
        }
        break;
    case KILN_PREPROCESS_IMPUTE_CONSTANT:
        for (int64_t j = 0; j < F; j++)
            stat[0].values[j] = (float)step->value;
        break;
    default:
        break;
    }
    const char *names[2];
    int n_stats = step_stats(step->kind, names);
    for (int s = 0; s < n_stats; s++)
        stat[s].written = true;
cleanup:
    kiln__free(ctx, column);
    kiln__free(ctx, count);
    kiln__free(ctx, b);
    kiln__free(ctx, a);
    return rc;
}

/* Applies step k to ds in place; adds dropped samples to *dropped. */
static kiln_status apply_step(const kiln_preprocess *pp, size_t k, kiln_dataset *ds,
                              const char *function, int64_t *dropped)
{
    const kiln_preprocess_step *step = &pp->steps[k];
    const stat_slot *stat = &pp->stats[pp->first_stat[k]];
    int64_t F = ds->n_features, n = ds->n;
    float *x = ds->features;
    switch (step->kind) {
    case KILN_PREPROCESS_SCALE: {
        float factor = (float)step->value;
        for (int64_t i = 0; i < n * F; i++)
            x[i] *= factor;
        return KILN_OK;
    }
    case KILN_PREPROCESS_STANDARDIZE:
    case KILN_PREPROCESS_STANDARDIZE_FEATURES:
    case KILN_PREPROCESS_STANDARDIZE_CHANNELS: {
        int64_t width = stat_width(step, F), inner = F / width; /* features per statistic */
        for (int64_t i = 0; i < n; i++) {
            for (int64_t j = 0; j < width; j++) {
                float mean = stat[0].values[j], std = stat[1].values[j];
                float *row = x + i * F + j * inner;
                for (int64_t f = 0; f < inner; f++)
                    row[f] = (row[f] - mean) / std;
            }
        }
        return KILN_OK;
    }
    case KILN_PREPROCESS_MINMAX:
        for (int64_t i = 0; i < n; i++) {
            for (int64_t f = 0; f < F; f++) {
                float range = stat[1].values[f] - stat[0].values[f];
                x[i * F + f] = (x[i * F + f] - stat[0].values[f]) / (range > 0 ? range : 1.0f);
            }
        }
        return KILN_OK;
    case KILN_PREPROCESS_IMPUTE_MEAN:
    case KILN_PREPROCESS_IMPUTE_MEDIAN:
    case KILN_PREPROCESS_IMPUTE_CONSTANT:
        for (int64_t i = 0; i < n; i++) {
            for (int64_t f = 0; f < F; f++) {
                if (isnan(x[i * F + f]))
                    x[i * F + f] = stat[0].values[f];
            }
        }
        return KILN_OK;
    case KILN_PREPROCESS_DROP_MISSING:
    default: {
        bool *keep = kiln__calloc(pp->ctx, (size_t)n, sizeof(bool));
        if (keep == NULL)
            return kiln__error(pp->ctx, KILN_ERR_NO_MEMORY, function, "no memory for %lld flags",
                               (long long)n);
        int64_t kept = 0;
        for (int64_t i = 0; i < n; i++) {
            keep[i] = true;
            for (int64_t f = 0; f < F && keep[i]; f++)
                keep[i] = !isnan(x[i * F + f]);
            kept += keep[i] ? 1 : 0;
        }
        if (kept == 0) {
            kiln__free(pp->ctx, keep);
            return kiln__error(pp->ctx, KILN_ERR_INVALID_ARGUMENT, function,
                               "step %zu (drop_missing) would drop all %lld samples of '%s': "
                               "every one has a missing value; impute instead",
                               k, (long long)n, ds->name);
        }
        kiln__dataset_keep_rows(ds, keep);
        kiln__free(pp->ctx, keep);
        *dropped += n - kept;
        return KILN_OK;
    }
    }
}

static kiln_status check_dataset(const kiln_preprocess *pp, const kiln_dataset *ds,
                                 const char *function)
{
    if (ds == NULL)
        return kiln__error(pp->ctx, KILN_ERR_INVALID_ARGUMENT, function, "the dataset is NULL");
    if (ds->n_features != pp->n_features)
        return kiln__error(pp->ctx, KILN_ERR_SHAPE, function,
                           "'%s' has %lld features per sample; the pipeline was made for %lld",
                           ds->name, (long long)ds->n_features, (long long)pp->n_features);
    return KILN_OK;
}

kiln_status kiln_preprocess_fit_transform(kiln_preprocess *pp, kiln_dataset *train,
                                          int64_t *n_dropped)
{
    int64_t dropped = 0;
    if (n_dropped != NULL)
        *n_dropped = 0;
    kiln_status rc = check_dataset(pp, train, __func__);
    for (size_t k = 0; rc == KILN_OK && k < pp->n_steps; k++) {
        rc = fit_step(pp, k, train);
        if (rc == KILN_OK)
            rc = apply_step(pp, k, train, __func__, &dropped);
    }
    if (n_dropped != NULL)
        *n_dropped = dropped;
    return rc;
}

kiln_status kiln_preprocess_transform(const kiln_preprocess *pp, kiln_dataset *ds,
                                      int64_t *n_dropped)
{
    int64_t dropped = 0;
    if (n_dropped != NULL)
        *n_dropped = 0;
    kiln_status rc = check_dataset(pp, ds, __func__);
    if (rc == KILN_OK && !kiln_preprocess_is_fitted(pp))
        rc = kiln__error(pp->ctx, KILN_ERR_INVALID_ARGUMENT, __func__,
                         "the pipeline is not fitted: call kiln_preprocess_fit_transform on the "
                         "training split, or write every statistic from a checkpoint");
    for (size_t k = 0; rc == KILN_OK && k < pp->n_steps; k++)
        rc = apply_step(pp, k, ds, __func__, &dropped);
    if (n_dropped != NULL)
        *n_dropped = dropped;
    return rc;
}

size_t kiln_preprocess_n_stats(const kiln_preprocess *pp)
{
    return pp->n_stats;
}

const char *kiln_preprocess_stat_name(const kiln_preprocess *pp, size_t i)
{
    return i < pp->n_stats ? pp->stats[i].name : NULL;
}

int64_t kiln_preprocess_stat_size(const kiln_preprocess *pp, size_t i)
{
    return i < pp->n_stats ? pp->stats[i].size : 0;
}

/* The slot called `name`, or NULL with KILN_ERR_NOT_FOUND recorded (listing the names). */
static stat_slot *find_stat(const kiln_preprocess *pp, const char *name, const char *function)
{
    for (size_t s = 0; name != NULL && s < pp->n_stats; s++) {
        if (strcmp(pp->stats[s].name, name) == 0)
            return &pp->stats[s];
    }
    kiln__error(pp->ctx, KILN_ERR_NOT_FOUND, function,
                "no preprocessing statistic is named '%s'; this pipeline has",
                name != NULL ? name : "(null)");
    for (size_t s = 0; s < pp->n_stats; s++)
        kiln__error_append(pp->ctx, "%s %s", s > 0 ? "," : "", pp->stats[s].name);
    if (pp->n_stats == 0)
        kiln__error_append(pp->ctx, " none");
    return NULL;
}

kiln_status kiln_preprocess_read_stat(const kiln_preprocess *pp, const char *name, float *values,
                                      int64_t n)
{
    stat_slot *slot = find_stat(pp, name, __func__);
    if (slot == NULL)
        return KILN_ERR_NOT_FOUND;
    if (n != slot->size || values == NULL)
        return kiln__error(pp->ctx, KILN_ERR_SHAPE, __func__,
                           "'%s' holds %lld values; got room for %lld", name, (long long)slot->size,
                           (long long)n);
    if (!kiln_preprocess_is_fitted(pp))
        return kiln__error(pp->ctx, KILN_ERR_INVALID_ARGUMENT, __func__,
                           "'%s' cannot be read: the pipeline is not fitted", name);
    memcpy(values, slot->values, (size_t)n * sizeof(float));
    return KILN_OK;
}

kiln_status kiln_preprocess_write_stat(kiln_preprocess *pp, const char *name, const float *values,
                                       int64_t n)
{
    stat_slot *slot = find_stat(pp, name, __func__);
    if (slot == NULL)
        return KILN_ERR_NOT_FOUND;
    if (n != slot->size || values == NULL)
        return kiln__error(pp->ctx, KILN_ERR_SHAPE, __func__, "'%s' holds %lld values; got %lld",
                           name, (long long)slot->size, (long long)n);
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(values[i]))
            return kiln__error(pp->ctx, KILN_ERR_INVALID_ARGUMENT, __func__,
                               "'%s'[%lld] is %g; statistics must be finite", name, (long long)i,
                               values[i]);
    }
    memcpy(slot->values, values, (size_t)n * sizeof(float));
    slot->written = true;
    return KILN_OK;
}
