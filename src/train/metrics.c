/*
 * Metrics (include/kiln/metrics.h): the registry by name, and accumulators that fold host
 * batches into int64 counts (a confusion matrix, top-k hits, mask overlaps) and compensated
 * double sums (errors, per-sample Dice and IoU, target moments merged batch by batch with
 * Chan et al.'s update), then finalise one number per epoch. Reading device tensors back is
 * the runner's job; nothing here touches a device.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/context.h"
#include "kiln/metrics.h"

static const kiln_metric_info INFOS[KILN_METRIC_N_KINDS] = {
    {"accuracy", KILN_METRIC_ACCURACY, KILN_METRIC_INPUT_CLASSES, true},
    {"top_k", KILN_METRIC_TOP_K, KILN_METRIC_INPUT_CLASSES, true},
    {"precision", KILN_METRIC_PRECISION, KILN_METRIC_INPUT_CLASSES, true},
    {"recall", KILN_METRIC_RECALL, KILN_METRIC_INPUT_CLASSES, true},
    {"f1", KILN_METRIC_F1, KILN_METRIC_INPUT_CLASSES, true},
    {"mse", KILN_METRIC_MSE, KILN_METRIC_INPUT_VALUES, false},
    {"mae", KILN_METRIC_MAE, KILN_METRIC_INPUT_VALUES, false},
    {"r2", KILN_METRIC_R2, KILN_METRIC_INPUT_VALUES, true},
    {"dice", KILN_METRIC_DICE, KILN_METRIC_INPUT_MASKS, true},
    {"iou", KILN_METRIC_IOU, KILN_METRIC_INPUT_MASKS, true},
};

static const char *const INPUT_NAMES[] = {
    "class scores and labels (kiln_metric_update_classes)",
    "predictions and targets (kiln_metric_update_values)",
    "probabilities and masks (kiln_metric_update_masks)",
};

/* Neumaier's compensated sum: the running sum and the low-order bits it lost. */
typedef struct ksum {
    double sum;
    double carry;
} ksum;

static void ksum_add(ksum *s, double x)
{
    double t = s->sum + x;
    if (fabs(s->sum) >= fabs(x))
        s->carry += (s->sum - t) + x;
    else
        s->carry += (x - t) + s->sum;
    s->sum = t;
}

static double ksum_value(const ksum *s)
{
    return s->sum + s->carry;
}

struct kiln_metric {
    kiln_context *ctx;
    kiln_metric_config config;
    const kiln_metric_info *info;
    int64_t n;          /* rows, elements or samples since the reset */
    int64_t *confusion; /* (C, C), rows = true class; accuracy, precision, recall, f1 */
    int64_t hits;       /* top_k: rows whose label ranks below k */
    ksum error;         /* mse, mae, r2: sum of squared (absolute for mae) errors */
    double target_mean; /* r2: mean of the targets so far */
    double target_m2;   /* r2: sum of squared deviations from that mean (SS_tot) */
    float target_min;   /* r2: exact test for constant targets */
    float target_max;   /* r2 */
    ksum score;         /* dice, iou: sum of per-sample scores */
};

const kiln_metric_info *kiln_metric_info_of(kiln_metric_kind kind)
{
    if ((int)kind < 0 || (int)kind >= KILN_METRIC_N_KINDS)
        return NULL;
    return &INFOS[kind];
}

kiln_status kiln_metric_find(kiln_context *ctx, const char *name, const kiln_metric_info **out)
{
    if (name == NULL || out == NULL)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, __func__, "name and out must be set");
    for (int i = 0; i < KILN_METRIC_N_KINDS; i++) {
        if (strcmp(INFOS[i].name, name) == 0) {
            *out = &INFOS[i];
            return KILN_OK;
        }
    }
    char known[256] = "";
    size_t used = 0;
    for (int i = 0; i < KILN_METRIC_N_KINDS && used < sizeof known; i++)
        used += (size_t)snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "",
                                 INFOS[i].name);
    return kiln__error(ctx, KILN_ERR_NOT_FOUND, __func__,
                       "unknown metric '%s'; the known metrics are: %s", name, known);
}

void kiln_metric_config_init(kiln_metric_config *config, kiln_metric_kind kind)
{
    memset(config, 0, sizeof *config);
    config->kind = kind;
    config->k = 5;
    config->threshold = 0.5;
    config->smooth = 1.0;
}

static kiln_status check_config(kiln_context *ctx, const kiln_metric_config *c,
                                const kiln_metric_info *info)
{
    const char *fn = "kiln_metric_create";
    if (info == NULL)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn,
                           "config.kind %d is not a metric kind (0 to %d)", (int)c->kind,
                           KILN_METRIC_N_KINDS - 1);
    if (info->input == KILN_METRIC_INPUT_CLASSES && c->n_classes < 2)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn,
                           "metric '%s': config.n_classes must be >= 2, got %lld (a binary "
                           "classifier with one logit z passes two columns, 0 and z)",
                           info->name, (long long)c->n_classes);
    if (c->kind == KILN_METRIC_TOP_K && c->k < 1)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn,
                           "metric 'top_k': config.k must be >= 1, got %lld", (long long)c->k);
    if (c->kind == KILN_METRIC_TOP_K && c->k > c->n_classes)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn,
                           "metric 'top_k': config.k %lld exceeds config.n_classes %lld",
                           (long long)c->k, (long long)c->n_classes);
    if (info->input == KILN_METRIC_INPUT_MASKS && !isfinite(c->threshold))
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn,
                           "metric '%s': config.threshold must be finite, got %g", info->name,
                           c->threshold);
    if (info->input == KILN_METRIC_INPUT_MASKS && !(isfinite(c->smooth) && c->smooth >= 0))
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn,
                           "metric '%s': config.smooth must be a finite number >= 0, got %g",
                           info->name, c->smooth);
    return KILN_OK;
}

static bool has_confusion(kiln_metric_kind kind)
{
    return kind == KILN_METRIC_ACCURACY || kind == KILN_METRIC_PRECISION ||
           kind == KILN_METRIC_RECALL || kind == KILN_METRIC_F1;
}

kiln_status kiln_metric_create(kiln_context *ctx, const kiln_metric_config *config,
                               kiln_metric **out)
{
    kiln_status rc = KILN_OK;
    kiln_metric *m = NULL;
    if (config == NULL || out == NULL)
        KILN_FAIL(ctx, KILN_ERR_INVALID_ARGUMENT, "config and out must be set");
    *out = NULL;
    const kiln_metric_info *info = kiln_metric_info_of(config->kind);
    KILN_CHECK(check_config(ctx, config, info));
    m = kiln__calloc(ctx, 1, sizeof *m);
    if (m == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "no memory for metric '%s'", info->name);
    m->ctx = ctx;
    m->config = *config;
    m->info = info;
    if (has_confusion(config->kind)) {
        int64_t c = config->n_classes;
        if (c > (int64_t)(SIZE_MAX / sizeof(int64_t)) / c)
            KILN_FAIL(ctx, KILN_ERR_NO_MEMORY,
                      "metric '%s': a %lld x %lld confusion matrix "
                      "does not fit in memory",
                      info->name, (long long)c, (long long)c);
        m->confusion = kiln__calloc(ctx, (size_t)(c * c), sizeof(int64_t));
        if (m->confusion == NULL)
            KILN_FAIL(ctx, KILN_ERR_NO_MEMORY,
                      "metric '%s': no memory for a %lld x %lld confusion matrix", info->name,
                      (long long)c, (long long)c);
    }
    kiln_metric_reset(m);
    *out = m;
    m = NULL;
cleanup:
    kiln_metric_destroy(m);
    return rc;
}

void kiln_metric_destroy(kiln_metric *m)
{
    if (m == NULL)
        return;
    kiln__free(m->ctx, m->confusion);
    kiln__free(m->ctx, m);
}

void kiln_metric_reset(kiln_metric *m)
{
    m->n = 0;
    m->hits = 0;
    if (m->confusion != NULL) {
        size_t c = (size_t)m->config.n_classes;
        memset(m->confusion, 0, c * c * sizeof *m->confusion);
    }
    m->error = (ksum){0, 0};
    m->target_mean = 0;
    m->target_m2 = 0;
    m->target_min = INFINITY;
    m->target_max = -INFINITY;
    m->score = (ksum){0, 0};
}

const kiln_metric_info *kiln_metric_get_info(const kiln_metric *m)
{
    return m->info;
}

const kiln_metric_config *kiln_metric_get_config(const kiln_metric *m)
{
    return &m->config;
}

int64_t kiln_metric_n_samples(const kiln_metric *m)
{
    return m->n;
}

const int64_t *kiln_metric_get_confusion(const kiln_metric *m)
{
    return m->confusion;
}

/* The checks every update shares: the metric takes this input, n >= 0, arrays set. */
static kiln_status check_update(kiln_metric *m, const char *fn, kiln_metric_input input,
                                const void *a, const void *b, int64_t n)
{
    if (m->info->input != input)
        return kiln__error(m->ctx, KILN_ERR_INVALID_ARGUMENT, fn, "metric '%s' takes %s, not %s",
                           m->info->name, INPUT_NAMES[m->info->input], INPUT_NAMES[input]);
    if (n < 0)
        return kiln__error(m->ctx, KILN_ERR_INVALID_ARGUMENT, fn,
                           "metric '%s': the count must be >= 0, got %lld", m->info->name,
                           (long long)n);
    if (n > 0 && (a == NULL || b == NULL))
        return kiln__error(m->ctx, KILN_ERR_INVALID_ARGUMENT, fn,
                           "metric '%s': NULL input arrays for %lld rows", m->info->name,
                           (long long)n);
    return KILN_OK;
}

/* Whether class i with score a ranks above class j with score b: a NaN above every number
 * (NaNs among themselves by index), then the higher score, then the lower index. */
static bool ranks_above(float a, int64_t i, float b, int64_t j)
{
    bool a_nan = isnan(a), b_nan = isnan(b);
    if (a_nan || b_nan)
        return a_nan && b_nan ? i < j : a_nan;
    return a > b || (a == b && i < j);
}

kiln_status kiln_metric_update_classes(kiln_metric *m, const float *scores, const int32_t *labels,
                                       int64_t n, int64_t n_classes)
{
    const char *fn = __func__;
    kiln_status rc = check_update(m, fn, KILN_METRIC_INPUT_CLASSES, scores, labels, n);
    if (rc != KILN_OK)
        return rc;
    int64_t c = m->config.n_classes;
    if (n_classes != c)
        return kiln__error(m->ctx, KILN_ERR_SHAPE, fn,
                           "metric '%s': scores (%lld, %lld) have %lld columns, but the metric "
                           "counts %lld classes",
                           m->info->name, (long long)n, (long long)n_classes, (long long)n_classes,
                           (long long)c);
    /* Every label is checked before anything is counted, so a bad batch changes nothing. */
    for (int64_t r = 0; r < n; r++)
        if (labels[r] < 0 || labels[r] >= c)
            return kiln__error(m->ctx, KILN_ERR_INVALID_ARGUMENT, fn,
                               "metric '%s': label %d of row %lld is outside [0, %lld)",
                               m->info->name, (int)labels[r], (long long)r, (long long)c);
    for (int64_t r = 0; r < n; r++) {
        const float *row = scores + r * c;
        int64_t y = labels[r];
        if (m->config.kind == KILN_METRIC_TOP_K) {
            int64_t rank = 0; /* classes that beat the label */
            for (int64_t j = 0; j < c && rank < m->config.k; j++)
                rank += j != y && ranks_above(row[j], j, row[y], y);
            m->hits += rank < m->config.k;
        } else {
            int64_t best = 0;
            for (int64_t j = 1; j < c; j++)
                if (ranks_above(row[j], j, row[best], best))
                    best = j;
            m->confusion[y * c + best]++;
        }
    }
    m->n += n;
    return KILN_OK;
}

kiln_status kiln_metric_update_values(kiln_metric *m, const float *pred, const float *target,
                                      int64_t n)
{
    kiln_status rc = check_update(m, __func__, KILN_METRIC_INPUT_VALUES, pred, target, n);
    if (rc != KILN_OK || n == 0)
        return rc;
    bool absolute = m->config.kind == KILN_METRIC_MAE;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)pred[i] - (double)target[i];
        ksum_add(&m->error, absolute ? fabs(d) : d * d);
    }
    if (m->config.kind == KILN_METRIC_R2) {
        /* The batch's own mean and squared deviations (two passes), merged into the running
         * ones with Chan, Golub and LeVeque's pairwise update: no sum of squares minus a
         * squared sum, which cancels catastrophically for targets far from 0. */
        ksum s = {0, 0};
        for (int64_t i = 0; i < n; i++) {
            ksum_add(&s, target[i]);
            if (target[i] < m->target_min)
                m->target_min = target[i];
            if (target[i] > m->target_max)
                m->target_max = target[i];
        }
        double mean_b = ksum_value(&s) / (double)n;
        ksum m2 = {0, 0};
        for (int64_t i = 0; i < n; i++) {
            double d = (double)target[i] - mean_b;
            ksum_add(&m2, d * d);
        }
        double n_a = (double)m->n, n_b = (double)n, n_ab = n_a + n_b;
        double delta = mean_b - m->target_mean;
        m->target_mean += delta * (n_b / n_ab);
        m->target_m2 += ksum_value(&m2) + delta * delta * (n_a * n_b / n_ab);
    }
    m->n += n;
    return KILN_OK;
}

kiln_status kiln_metric_update_masks(kiln_metric *m, const float *prob, const float *target,
                                     int64_t n, int64_t sample_size)
{
    const char *fn = __func__;
    kiln_status rc = check_update(m, fn, KILN_METRIC_INPUT_MASKS, prob, target, n);
    if (rc != KILN_OK)
        return rc;
    if (sample_size < 1 || (n > 0 && sample_size > INT64_MAX / n))
        return kiln__error(m->ctx, KILN_ERR_SHAPE, fn,
                           "metric '%s': masks (%lld, %lld) need a sample size >= 1 and fewer "
                           "than 2^63 elements",
                           m->info->name, (long long)n, (long long)sample_size);
    double threshold = m->config.threshold, s = m->config.smooth;
    for (int64_t b = 0; b < n; b++) {
        const float *p = prob + b * sample_size, *t = target + b * sample_size;
        int64_t inter = 0, n_pred = 0, n_true = 0;
        for (int64_t i = 0; i < sample_size; i++) {
            bool pred = (double)p[i] > threshold, truth = t[i] > 0.5f;
            n_pred += pred;
            n_true += truth;
            inter += pred && truth;
        }
        double num, den;
        if (m->config.kind == KILN_METRIC_DICE) {
            num = 2.0 * (double)inter + s;
            den = (double)(n_pred + n_true) + s;
        } else {
            num = (double)inter + s;
            den = (double)(n_pred + n_true - inter) + s;
        }
        ksum_add(&m->score, den > 0 ? num / den : 1.0); /* 0 / 0: both masks empty */
    }
    m->n += n;
    return KILN_OK;
}

/* Macro precision, recall or f1 over the classes that occur as a label or a prediction. */
static double macro_average(const kiln_metric *m)
{
    int64_t c = m->config.n_classes;
    double total = 0;
    int64_t counted = 0;
    for (int64_t k = 0; k < c; k++) {
        int64_t tp = m->confusion[k * c + k], n_true = 0, n_pred = 0;
        for (int64_t j = 0; j < c; j++) {
            n_true += m->confusion[k * c + j];
            n_pred += m->confusion[j * c + k];
        }
        if (n_true == 0 && n_pred == 0)
            continue; /* absent from labels and predictions: not averaged */
        int64_t den = m->config.kind == KILN_METRIC_PRECISION ? n_pred
                      : m->config.kind == KILN_METRIC_RECALL  ? n_true
                                                              : n_pred + n_true;
        int64_t num = m->config.kind == KILN_METRIC_F1 ? 2 * tp : tp;
        total += den > 0 ? (double)num / (double)den : 0.0; /* zero_division=0 */
        counted++;
    }
    return total / (double)counted;
}

static double r2(const kiln_metric *m)
{
    double ss_res = ksum_value(&m->error), ss_tot = m->target_m2;
    if (isnan(ss_res) || isnan(ss_tot))
        return NAN;
    if (m->target_min == m->target_max) /* constant targets: SS_tot is 0 */
        return ss_res == 0 ? 1.0 : 0.0;
    return 1.0 - ss_res / ss_tot;
}

kiln_status kiln_metric_result(kiln_metric *m, double *out)
{
    if (out == NULL)
        return kiln__error(m->ctx, KILN_ERR_INVALID_ARGUMENT, __func__, "out must be set");
    if (m->n == 0)
        return kiln__error(m->ctx, KILN_ERR_INVALID_ARGUMENT, __func__,
                           "metric '%s' has no samples since its last reset: an epoch without "
                           "data has no %s",
                           m->info->name, m->info->name);
    double n = (double)m->n;
    switch (m->config.kind) {
    case KILN_METRIC_ACCURACY: {
        int64_t c = m->config.n_classes, correct = 0;
        for (int64_t k = 0; k < c; k++)
            correct += m->confusion[k * c + k];
        *out = (double)correct / n;
        break;
    }
    case KILN_METRIC_TOP_K:
        *out = (double)m->hits / n;
        break;
    case KILN_METRIC_PRECISION:
    case KILN_METRIC_RECALL:
    case KILN_METRIC_F1:
        *out = macro_average(m);
        break;
    case KILN_METRIC_MSE:
    case KILN_METRIC_MAE:
        *out = ksum_value(&m->error) / n;
        break;
    case KILN_METRIC_R2:
        *out = r2(m);
        break;
    case KILN_METRIC_DICE:
    case KILN_METRIC_IOU:
        *out = ksum_value(&m->score) / n;
        break;
    }
    return KILN_OK;
}
