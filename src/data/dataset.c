/*
 * The dataset struct: allocation with checked sizes, destruction, copies of chosen samples
 * (the basis of splits), compatibility checks between files of one data set, missing-value
 * counts, and in-place row compaction for the steps that drop samples. Reading files belongs
 * to idx.c, csv.c and npy.c; choosing samples to split to split.c.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "data/data_internal.h"

/* Checks a per-sample shape: 1 to KILN_MAX_DIMS - 1 dims (the batch adds one), each >= 1. */
static kiln_status check_sample_shape(kiln_context *ctx, const char *function, const char *what,
                                      const kiln_shape *shape)
{
    if (shape == NULL)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, function, "the %s shape is NULL", what);
    bool ok = shape->ndim >= 1 && shape->ndim <= KILN_MAX_DIMS - 1;
    int64_t count = 1;
    for (int i = 0; ok && i < shape->ndim; i++) {
        ok = shape->dim[i] >= 1 && shape->dim[i] <= INT32_MAX / count;
        count *= ok ? shape->dim[i] : 1;
    }
    if (!ok) {
        char text[128] = "(invalid rank)";
        if (shape->ndim >= 0 && shape->ndim <= KILN_MAX_DIMS)
            kiln_shape_format(shape, text, sizeof text);
        return kiln__error(ctx, KILN_ERR_SHAPE, function,
                           "per-sample %s shape %s needs 1 to %d dimensions, each >= 1, and "
                           "fewer than 2^31 elements",
                           what, text, KILN_MAX_DIMS - 1);
    }
    return KILN_OK;
}

/* n * per elements of `size` bytes, or 0 when it overflows. */
static size_t array_bytes(int64_t n, int64_t per, size_t size)
{
    if (n < 0 || per < 0)
        return 0;
    uint64_t count = (uint64_t)n;
    if (per != 0 && count > (uint64_t)INT64_MAX / (uint64_t)per)
        return 0;
    count *= (uint64_t)per;
    if (count > SIZE_MAX / size)
        return 0;
    return (size_t)count * size;
}

kiln_status kiln__dataset_alloc(kiln_context *ctx, const char *function, const char *name,
                                int64_t n, const kiln_shape *feature_shape, kiln_label_kind labels,
                                const kiln_shape *label_shape, kiln_dataset **out)
{
    kiln_status rc = KILN_OK;
    kiln_dataset *ds = NULL;
    *out = NULL;
    KILN_CHECK(check_sample_shape(ctx, function, "feature", feature_shape));
    if (labels == KILN_LABELS_TARGET)
        KILN_CHECK(check_sample_shape(ctx, function, "label", label_shape));
    else if (labels != KILN_LABELS_NONE && labels != KILN_LABELS_CLASS)
        KILN__FAIL_AS(function, ctx, KILN_ERR_INVALID_ARGUMENT,
                      "label kind %d is not NONE, CLASS or TARGET", (int)labels);
    if (n < 1)
        KILN__FAIL_AS(function, ctx, KILN_ERR_INVALID_ARGUMENT,
                      "'%s' needs at least one sample, got %lld", name != NULL ? name : "dataset",
                      (long long)n);
    ds = kiln__calloc(ctx, 1, sizeof *ds);
    if (ds == NULL)
        KILN__FAIL_AS(function, ctx, KILN_ERR_NO_MEMORY, "no memory for a dataset");
    ds->ctx = ctx;
    ds->n = n;
    ds->feature_shape = *feature_shape;
    ds->n_features = kiln_shape_count(feature_shape);
    ds->label_kind = labels;
    ds->n_classes = labels == KILN_LABELS_CLASS ? 1 : 0; /* every label is 0 so far */
    ds->name = kiln__strdup(ctx, name != NULL ? name : "dataset");
    size_t feature_bytes = array_bytes(n, ds->n_features, sizeof(float));
    if (ds->name == NULL || feature_bytes == 0)
        KILN__FAIL_AS(function, ctx, KILN_ERR_NO_MEMORY,
                      "no memory for %lld samples of %lld features", (long long)n,
                      (long long)ds->n_features);
    ds->features = kiln__alloc(ctx, feature_bytes);
    if (ds->features == NULL)
        KILN__FAIL_AS(function, ctx, KILN_ERR_NO_MEMORY,
                      "no memory for %lld samples of %lld features", (long long)n,
                      (long long)ds->n_features);
    memset(ds->features, 0, feature_bytes);
    if (labels == KILN_LABELS_CLASS) {
        ds->classes = kiln__calloc(ctx, (size_t)n, sizeof(int32_t));
        if (ds->classes == NULL)
            KILN__FAIL_AS(function, ctx, KILN_ERR_NO_MEMORY, "no memory for %lld class labels",
                          (long long)n);
    } else if (labels == KILN_LABELS_TARGET) {
        ds->label_shape = *label_shape;
        ds->n_label_values = kiln_shape_count(label_shape);
        size_t target_bytes = array_bytes(n, ds->n_label_values, sizeof(float));
        ds->targets = target_bytes == 0 ? NULL : kiln__alloc(ctx, target_bytes);
        if (ds->targets == NULL)
            KILN__FAIL_AS(function, ctx, KILN_ERR_NO_MEMORY,
                          "no memory for %lld targets of %lld values", (long long)n,
                          (long long)ds->n_label_values);
        memset(ds->targets, 0, target_bytes);
    }
    *out = ds;
    ds = NULL;
cleanup:
    kiln_dataset_destroy(ds);
    return rc;
}

kiln_status kiln_dataset_create(kiln_context *ctx, const char *name, int64_t n,
                                const kiln_shape *feature_shape, kiln_label_kind labels,
                                const kiln_shape *label_shape, kiln_dataset **out)
{
    if (out == NULL)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, __func__, "out is NULL");
    return kiln__dataset_alloc(ctx, __func__, name, n, feature_shape, labels, label_shape, out);
}

void kiln_dataset_destroy(kiln_dataset *ds)
{
    if (ds == NULL)
        return;
    kiln_context *ctx = ds->ctx;
    if (ds->feature_names != NULL) {
        for (int64_t i = 0; i < ds->n_features; i++)
            kiln__free(ctx, ds->feature_names[i]);
        kiln__free(ctx, ds->feature_names);
    }
    kiln__free(ctx, ds->label_name);
    if (ds->mapping != NULL) {
        kiln__dataset_release_mapping(ds); /* the arrays are views of a mapped file */
    } else {
        kiln__free(ctx, ds->targets);
        kiln__free(ctx, ds->classes);
        kiln__free(ctx, ds->features);
    }
    kiln__free(ctx, ds->name);
    kiln__free(ctx, ds);
}

/* Copies names and label name from `from` to `to` (same feature count). */
static kiln_status copy_names(const kiln_dataset *from, kiln_dataset *to)
{
    kiln_context *ctx = to->ctx;
    if (from->label_name != NULL) {
        to->label_name = kiln__strdup(ctx, from->label_name);
        if (to->label_name == NULL)
            return kiln__error(ctx, KILN_ERR_NO_MEMORY, "kiln_dataset_subset",
                               "no memory for the label name");
    }
    if (from->feature_names == NULL)
        return KILN_OK;
    to->feature_names = kiln__calloc(ctx, (size_t)from->n_features, sizeof(char *));
    if (to->feature_names == NULL)
        return kiln__error(ctx, KILN_ERR_NO_MEMORY, "kiln_dataset_subset",
                           "no memory for %lld feature names", (long long)from->n_features);
    for (int64_t i = 0; i < from->n_features; i++) {
        to->feature_names[i] = kiln__strdup(ctx, from->feature_names[i]);
        if (to->feature_names[i] == NULL)
            return kiln__error(ctx, KILN_ERR_NO_MEMORY, "kiln_dataset_subset",
                               "no memory for feature names");
    }
    return KILN_OK;
}

kiln_status kiln_dataset_subset(const kiln_dataset *ds, const int64_t *index, int64_t n,
                                const char *name, kiln_dataset **out)
{
    kiln_status rc = KILN_OK;
    kiln_dataset *sub = NULL;
    if (out == NULL || ds == NULL)
        return ds == NULL
                   ? KILN_ERR_INVALID_ARGUMENT
                   : kiln__error(ds->ctx, KILN_ERR_INVALID_ARGUMENT, __func__, "out is NULL");
    *out = NULL;
    kiln_context *ctx = ds->ctx;
    if (n > 0 && index == NULL)
        KILN_FAIL(ctx, KILN_ERR_INVALID_ARGUMENT, "index is NULL");
    for (int64_t k = 0; k < n; k++) {
        if (index[k] < 0 || index[k] >= ds->n)
            KILN_FAIL(ctx, KILN_ERR_INVALID_ARGUMENT,
                      "index[%lld] = %lld is outside '%s', which has %lld samples", (long long)k,
                      (long long)index[k], ds->name, (long long)ds->n);
    }
    KILN_CHECK(kiln__dataset_alloc(ctx, __func__, name, n, &ds->feature_shape, ds->label_kind,
                                   &ds->label_shape, &sub));
    sub->n_classes = ds->n_classes;
    size_t row = (size_t)ds->n_features * sizeof(float);
    size_t target_row = (size_t)ds->n_label_values * sizeof(float);
    for (int64_t k = 0; k < n; k++) {
        memcpy(sub->features + k * ds->n_features, ds->features + index[k] * ds->n_features, row);
        if (ds->classes != NULL)
            sub->classes[k] = ds->classes[index[k]];
        if (ds->targets != NULL)
            memcpy(sub->targets + k * ds->n_label_values,
                   ds->targets + index[k] * ds->n_label_values, target_row);
    }
    KILN_CHECK(copy_names(ds, sub));
    *out = sub;
    sub = NULL;
cleanup:
    kiln_dataset_destroy(sub);
    return rc;
}

kiln_status kiln_dataset_check_compatible(const kiln_dataset *ds, const kiln_dataset *other)
{
    static const char *KIND[] = {"none", "class indices", "targets", "auto"};
    char a[128], b[128];
    if (ds == NULL || other == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    if (!kiln_shape_equal(&ds->feature_shape, &other->feature_shape))
        return kiln__error(ds->ctx, KILN_ERR_SHAPE, __func__,
                           "'%s' has samples of shape %s but '%s' has %s; they must match",
                           other->name, kiln_shape_format(&other->feature_shape, b, sizeof b),
                           ds->name, kiln_shape_format(&ds->feature_shape, a, sizeof a));
    if (ds->label_kind != other->label_kind)
        return kiln__error(ds->ctx, KILN_ERR_SHAPE, __func__,
                           "'%s' has labels of kind '%s' but '%s' has '%s'; they must match",
                           other->name, KIND[other->label_kind & 3], ds->name,
                           KIND[ds->label_kind & 3]);
    if (ds->label_kind == KILN_LABELS_TARGET &&
        !kiln_shape_equal(&ds->label_shape, &other->label_shape))
        return kiln__error(ds->ctx, KILN_ERR_SHAPE, __func__,
                           "'%s' has targets of shape %s but '%s' has %s; they must match",
                           other->name, kiln_shape_format(&other->label_shape, b, sizeof b),
                           ds->name, kiln_shape_format(&ds->label_shape, a, sizeof a));
    return KILN_OK;
}

int64_t kiln_dataset_n_missing(const kiln_dataset *ds)
{
    /* Blocks of a fixed 64 values, each counted into a 32-bit sum, so that the compiler
     * vectorises the inner loop even at -O2 (a loop of unknown length is not); x != x is
     * isnan without the call. 70,000 Fashion-MNIST images: ~110 ms -> ~15 ms. */
    enum { BLOCK = 64 };
    const float *x = ds->features;
    int64_t missing = 0, total = ds->n * ds->n_features, i = 0;
    for (; i + BLOCK <= total; i += BLOCK) {
        int32_t block = 0;
        for (int j = 0; j < BLOCK; j++)
            block += x[i + j] != x[i + j];
        missing += block;
    }
    for (; i < total; i++)
        missing += x[i] != x[i];
    return missing;
}

void kiln__dataset_keep_rows(kiln_dataset *ds, const bool *keep)
{
    int64_t kept = 0;
    size_t row = (size_t)ds->n_features * sizeof(float);
    size_t target_row = (size_t)ds->n_label_values * sizeof(float);
    for (int64_t i = 0; i < ds->n; i++) {
        if (!keep[i])
            continue;
        if (kept != i) {
            memmove(ds->features + kept * ds->n_features, ds->features + i * ds->n_features, row);
            if (ds->classes != NULL)
                ds->classes[kept] = ds->classes[i];
            if (ds->targets != NULL)
                memmove(ds->targets + kept * ds->n_label_values,
                        ds->targets + i * ds->n_label_values, target_row);
        }
        kept++;
    }
    ds->n = kept;
}

void kiln__dataset_count_classes(kiln_dataset *ds)
{
    int32_t top = -1;
    for (int64_t i = 0; ds->classes != NULL && i < ds->n; i++)
        top = ds->classes[i] > top ? ds->classes[i] : top;
    ds->n_classes = top + 1;
}

bool kiln__dataset_labels_equal(const kiln_dataset *a, int64_t i, const kiln_dataset *b, int64_t j)
{
    if (a->classes != NULL)
        return a->classes[i] == b->classes[j];
    if (a->targets != NULL)
        return kiln__row_equal(a->targets + i * a->n_label_values,
                               b->targets + j * b->n_label_values, a->n_label_values);
    return true;
}
