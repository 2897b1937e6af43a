/*
 * Training metrics: accumulators that take host arrays batch by batch (class scores with
 * labels, regression predictions with targets, or segmentation probabilities with masks) and
 * give one number per epoch; a registry of the metrics by name with the direction in which
 * each improves, which callbacks use to resolve mode "auto".
 *
 * Everything here is host arithmetic: counts in int64, sums in double with compensation. A
 * metric is not thread-safe; use one per thread or serialise calls on it.
 */
#ifndef KILN_METRICS_H
#define KILN_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln/context.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- The registry ----
 *
 * Classification, from scores (N, C) and int32 labels (N,); the predicted class of a row is
 * its highest score, ties going to the lower class index (numpy.argmax), a NaN ranking above
 * every number (as numpy.argmax and torch.argmax do):
 *   accuracy   fraction of rows whose predicted class is the label
 *   top_k      fraction of rows whose label is among the k best classes: the label's rank
 *              (the number of classes whose score beats it, ties won by the lower index) is
 *              below k. With k = 1 it equals accuracy.
 *   precision, recall, f1
 *              macro averages over classes, as scikit-learn's average="macro" with
 *              zero_division=0: per class c, precision tp / (tp + fp), recall tp / (tp + fn),
 *              f1 2 tp / (2 tp + fp + fn), each 0 where its denominator is 0 (a class never
 *              predicted has precision 0); the average runs over the classes that occur as a
 *              label or a prediction (scikit-learn's default labels), so a class absent from
 *              both is left out. Macro f1 is the mean of per-class f1, not the f1 of the
 *              macro precision and recall.
 * A binary classifier with one logit z per row passes two columns (0, z): class 1 wins
 * exactly when z > 0 (or (1 - p, p): class 1 when p > 0.5).
 *
 * Regression, from predictions and targets of equal length, over every element pooled:
 *   mse, mae   mean of (y - t)^2 and of |y - t|
 *   r2         1 - SS_res / SS_tot with SS_tot = sum (t - mean t)^2 (scikit-learn's r2_score
 *              on the flattened arrays). When the targets are all equal (SS_tot = 0, which
 *              includes a single target), r2 is 1 if every prediction is exact and 0 otherwise,
 *              as scikit-learn's force_finite=True gives (scikit-learn returns NaN below two
 *              samples; Kiln applies the same rule there).
 *
 * Binary segmentation, from probabilities and masks (N, S), S the product of every non-batch
 * axis; a pixel is predicted foreground when p > threshold (Keras' and torchmetrics' strict
 * comparison; a NaN is background), and is true foreground when its target is > 0.5. Per
 * sample, over all S pixels (DESIGN.md, "Dice loss"), with I = |pred and true|,
 * P = |pred|, T = |true| and the smooth term s:
 *   dice       (2 I + s) / (P + T + s)
 *   iou        (I + s) / (P + T - I + s)
 * then the mean over every sample of the epoch (per sample, not global pooling). A sample whose
 * masks are both empty scores 1: exactly (s / s) when s > 0, and by definition when s = 0.
 *
 * NaN inputs to the regression metrics give a NaN result, which early stopping treats as a
 * reason to stop. */

typedef enum kiln_metric_kind {
    KILN_METRIC_ACCURACY = 0,
    KILN_METRIC_TOP_K = 1,
    KILN_METRIC_PRECISION = 2,
    KILN_METRIC_RECALL = 3,
    KILN_METRIC_F1 = 4,
    KILN_METRIC_MSE = 5,
    KILN_METRIC_MAE = 6,
    KILN_METRIC_R2 = 7,
    KILN_METRIC_DICE = 8,
    KILN_METRIC_IOU = 9,
} kiln_metric_kind;

enum { KILN_METRIC_N_KINDS = 10 };

/* Which update function a metric takes. */
typedef enum kiln_metric_input {
    KILN_METRIC_INPUT_CLASSES = 0, /* kiln_metric_update_classes */
    KILN_METRIC_INPUT_VALUES = 1,  /* kiln_metric_update_values */
    KILN_METRIC_INPUT_MASKS = 2,   /* kiln_metric_update_masks */
} kiln_metric_input;

typedef struct kiln_metric_info {
    const char *name; /* "accuracy", "top_k", ... as written in a config */
    kiln_metric_kind kind;
    kiln_metric_input input;
    bool higher_is_better; /* false for mse and mae */
} kiln_metric_info;

/* The registry entry of `kind`, or NULL for a value outside the enum. Static; thread-safe. */
const kiln_metric_info *kiln_metric_info_of(kiln_metric_kind kind);

/* The entry called `name` (exact, case-sensitive) in *out. Returns KILN_ERR_NOT_FOUND with a
 * message listing every known name, or KILN_ERR_INVALID_ARGUMENT for a NULL argument. */
kiln_status kiln_metric_find(kiln_context *ctx, const char *name, const kiln_metric_info **out);

/* ---- Accumulators ---- */

typedef struct kiln_metric_config {
    kiln_metric_kind kind;
    int64_t n_classes; /* classification: C >= 2 */
    int64_t k;         /* top_k: 1 <= k <= C; 5 */
    double threshold;  /* dice and iou: finite; 0.5 (0 suits logits) */
    double smooth;     /* dice and iou: finite, >= 0; 1 */
} kiln_metric_config;

typedef struct kiln_metric kiln_metric;

/* The defaults above for `kind`; n_classes 0, which a classification metric must set. */
void kiln_metric_config_init(kiln_metric_config *config, kiln_metric_kind kind);

/* A fresh accumulator. accuracy, precision, recall and f1 keep a (C, C) int64 confusion
 * matrix (8 C^2 bytes). Returns KILN_ERR_INVALID_ARGUMENT naming the field for a bad config
 * (n_classes < 2, k < 1, k > n_classes, a non-finite threshold, a negative smooth), and
 * KILN_ERR_NO_MEMORY. The context is borrowed and must outlive the metric. */
kiln_status kiln_metric_create(kiln_context *ctx, const kiln_metric_config *config,
                               kiln_metric **out);
void kiln_metric_destroy(kiln_metric *metric);

/* Forgets everything accumulated (call at the start of each epoch). */
void kiln_metric_reset(kiln_metric *metric);

const kiln_metric_info *kiln_metric_get_info(const kiln_metric *metric);
const kiln_metric_config *kiln_metric_get_config(const kiln_metric *metric);

/* Rows (classification), elements (regression) or samples (segmentation) accumulated since
 * the last reset. */
int64_t kiln_metric_n_samples(const kiln_metric *metric);

/* Each update either accumulates the whole batch or, on error, leaves the metric unchanged.
 * n = 0 does nothing. All return KILN_ERR_INVALID_ARGUMENT, with a message, for a metric that
 * takes another kind of input, a negative count, or NULL arrays with n > 0. */

/* scores (n, n_classes) row-major and labels (n,). KILN_ERR_SHAPE when n_classes differs
 * from the metric's; KILN_ERR_INVALID_ARGUMENT for a label outside [0, C) (naming the row). */
kiln_status kiln_metric_update_classes(kiln_metric *metric, const float *scores,
                                       const int32_t *labels, int64_t n, int64_t n_classes);

/* predictions (n,) and targets (n,), any shape flattened. */
kiln_status kiln_metric_update_values(kiln_metric *metric, const float *predictions,
                                      const float *targets, int64_t n);

/* probabilities (n, sample_size) and targets (n, sample_size), each sample contiguous;
 * sample_size >= 1. */
kiln_status kiln_metric_update_masks(kiln_metric *metric, const float *probabilities,
                                     const float *targets, int64_t n, int64_t sample_size);

/* The metric over everything accumulated since the last reset. Does not reset. Returns
 * KILN_ERR_INVALID_ARGUMENT when nothing was accumulated (an epoch without samples has no
 * metric; the message says which). */
kiln_status kiln_metric_result(kiln_metric *metric, double *out);

/* The (C, C) confusion matrix, row = true class, column = predicted class, for accuracy,
 * precision, recall and f1 (NULL for other kinds); owned by the metric, valid until it is
 * destroyed, changed by updates and resets. */
const int64_t *kiln_metric_get_confusion(const kiln_metric *metric);

#ifdef __cplusplus
}
#endif

#endif
