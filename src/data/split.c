/*
 * Train/validation/test splits of one dataset by fraction. Samples are chosen by a Philox
 * Fisher-Yates shuffle keyed by the seed (the same permutation as epoch shuffles, on its own
 * stream), of the whole set or, stratified, of each class, whose part sizes come from the
 * largest-remainder method so that every class keeps its proportion within one sample and
 * the totals equal round(fraction * n). Each part lists its samples in ascending order, and
 * kiln_dataset_split copies them into new datasets. Splits from separate files need nothing
 * here: each file is its own dataset.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "data/data_internal.h"

enum { PART_TRAIN = 0, PART_VALIDATION = 1, PART_TEST = 2, N_PARTS = 3 };
static const char *const PART_NAME[N_PARTS] = {"train", "validation", "test"};

static int64_t round_count(double fraction, int64_t n)
{
    return (int64_t)floor(fraction * (double)n + 0.5);
}

/* Per-class counts summing to `total`: floor(fraction * size[c]) for every class, then one
 * more for the classes with the largest remainders (ties to the lower class). */
static void largest_remainder(const int64_t *size, int64_t n_classes, double fraction,
                              int64_t total, int64_t *take, double *remainder)
{
    int64_t given = 0;
    for (int64_t c = 0; c < n_classes; c++) {
        double exact = fraction * (double)size[c];
        take[c] = (int64_t)floor(exact);
        remainder[c] = take[c] < size[c] ? exact - (double)take[c] : -1.0;
        given += take[c];
    }
    for (; given < total; given++) {
        int64_t best = -1;
        for (int64_t c = 0; c < n_classes; c++) {
            if (remainder[c] >= 0 && (best < 0 || remainder[c] > remainder[best]))
                best = c;
        }
        if (best < 0)
            break;
        take[best]++;
        remainder[best] = -1.0;
    }
}

static kiln_status check_options(const kiln_dataset *ds, const kiln_split_options *o)
{
    kiln_context *ctx = ds->ctx;
    const char *fn = "kiln_dataset_split_indices";
    if (!(o->validation >= 0 && o->validation < 1) || !(o->test >= 0 && o->test < 1) ||
        !(o->validation + o->test < 1))
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn,
                           "fractions validation %g and test %g must each be in [0, 1) and sum "
                           "to less than 1 (the rest is train)",
                           o->validation, o->test);
    if (o->stratify && ds->label_kind != KILN_LABELS_CLASS)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn,
                           "stratify needs class labels, but '%s' has %s", ds->name,
                           ds->label_kind == KILN_LABELS_TARGET ? "float targets" : "no labels");
    return KILN_OK;
}

/* part[i] for every sample, stratified by class. */
static kiln_status assign_stratified(const kiln_dataset *ds, const kiln_split_options *o,
                                     unsigned char *part)
{
    kiln_status rc = KILN_OK;
    kiln_context *ctx = ds->ctx;
    int64_t k = ds->n_classes > 0 ? ds->n_classes : 1;
    int64_t *size = kiln__calloc(ctx, (size_t)k, sizeof(int64_t));
    int64_t *start = kiln__calloc(ctx, (size_t)k + 1, sizeof(int64_t));
    int64_t *take_val = kiln__calloc(ctx, (size_t)k, sizeof(int64_t));
    int64_t *take_test = kiln__calloc(ctx, (size_t)k, sizeof(int64_t));
    double *remainder = kiln__calloc(ctx, (size_t)k, sizeof(double));
    int64_t *members = kiln__calloc(ctx, (size_t)ds->n, sizeof(int64_t));
    if (size == NULL || start == NULL || take_val == NULL || take_test == NULL ||
        remainder == NULL || members == NULL)
        KILN__FAIL_AS("kiln_dataset_split_indices", ctx, KILN_ERR_NO_MEMORY,
                      "no memory to stratify %lld samples", (long long)ds->n);
    for (int64_t i = 0; i < ds->n; i++) {
        int32_t c = ds->classes[i];
        if (c < 0 || c >= k)
            KILN__FAIL_AS("kiln_dataset_split_indices", ctx, KILN_ERR_INVALID_ARGUMENT,
                          "sample %lld of '%s' has class %d, outside [0, n_classes = %lld)",
                          (long long)i, ds->name, (int)c, (long long)k);
        size[c]++;
    }
    /* Members of each class, ascending, then shuffled within the class. */
    for (int64_t c = 0; c < k; c++)
        start[c + 1] = start[c] + size[c];
    int64_t *fill = take_test; /* scratch until the counts are computed */
    memcpy(fill, start, (size_t)k * sizeof(int64_t));
    for (int64_t i = 0; i < ds->n; i++)
        members[fill[ds->classes[i]]++] = i;
    for (int64_t c = 0; c < k; c++)
        kiln__permute(members + start[c], size[c], o->seed, (uint32_t)c, KILN__STREAM_SPLIT);
    largest_remainder(size, k, o->validation, round_count(o->validation, ds->n), take_val,
                      remainder);
    largest_remainder(size, k, o->test, round_count(o->test, ds->n), take_test, remainder);
    for (int64_t c = 0; c < k; c++) {
        if (take_test[c] > size[c] - take_val[c])
            take_test[c] = size[c] - take_val[c];
        for (int64_t m = 0; m < size[c]; m++) {
            int64_t i = members[start[c] + m];
            part[i] = m < take_val[c]                  ? PART_VALIDATION
                      : m < take_val[c] + take_test[c] ? PART_TEST
                                                       : PART_TRAIN;
        }
    }
cleanup:
    kiln__free(ctx, members);
    kiln__free(ctx, remainder);
    kiln__free(ctx, take_test);
    kiln__free(ctx, take_val);
    kiln__free(ctx, start);
    kiln__free(ctx, size);
    return rc;
}

kiln_status kiln_dataset_split_indices(const kiln_dataset *ds, const kiln_split_options *options,
                                       int64_t *index, int64_t counts[3])
{
    kiln_status rc = KILN_OK;
    unsigned char *part = NULL;
    int64_t *order = NULL;
    if (ds == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    kiln_context *ctx = ds->ctx;
    if (options == NULL || index == NULL || counts == NULL)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, __func__,
                           "options, index or counts is NULL");
    KILN_CHECK(check_options(ds, options));
    part = kiln__calloc(ctx, (size_t)ds->n, 1);
    if (part == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "no memory to split %lld samples", (long long)ds->n);
    if (options->stratify) {
        KILN_CHECK(assign_stratified(ds, options, part));
    } else {
        order = kiln__calloc(ctx, (size_t)ds->n, sizeof(int64_t));
        if (order == NULL)
            KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "no memory to split %lld samples", (long long)ds->n);
        for (int64_t i = 0; i < ds->n; i++)
            order[i] = i;
        kiln__permute(order, ds->n, options->seed, UINT32_MAX, KILN__STREAM_SPLIT);
        int64_t n_val = round_count(options->validation, ds->n);
        int64_t n_test = round_count(options->test, ds->n);
        for (int64_t m = 0; m < ds->n; m++)
            part[order[m]] = m < n_val            ? PART_VALIDATION
                             : m < n_val + n_test ? PART_TEST
                                                  : PART_TRAIN;
    }
    int64_t count[N_PARTS] = {0};
    for (int64_t i = 0; i < ds->n; i++)
        count[part[i]]++;
    double fraction[N_PARTS] = {1 - options->validation - options->test, options->validation,
                                options->test};
    for (int p = 0; p < N_PARTS; p++) {
        if (count[p] == 0 && fraction[p] > 0)
            KILN_FAIL(ctx, KILN_ERR_INVALID_ARGUMENT,
                      "the %s part of '%s' would be empty: fraction %g of %lld samples%s",
                      PART_NAME[p], ds->name, fraction[p], (long long)ds->n,
                      p == PART_TRAIN ? "; lower the validation and test fractions"
                                      : "; raise the fraction or set it to 0");
    }
    int64_t next[N_PARTS] = {0, count[0], count[0] + count[1]};
    for (int64_t i = 0; i < ds->n; i++)
        index[next[part[i]]++] = i;
    for (int p = 0; p < N_PARTS; p++)
        counts[p] = count[p];
cleanup:
    kiln__free(ctx, order);
    kiln__free(ctx, part);
    return rc;
}

kiln_status kiln_dataset_split(const kiln_dataset *ds, const kiln_split_options *options,
                               kiln_dataset **train, kiln_dataset **validation, kiln_dataset **test)
{
    kiln_status rc = KILN_OK;
    kiln_dataset *parts[N_PARTS] = {NULL, NULL, NULL};
    int64_t *index = NULL;
    char *name = NULL;
    if (ds == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    kiln_context *ctx = ds->ctx;
    kiln_dataset **out[N_PARTS] = {train, validation, test};
    for (int p = 0; p < N_PARTS; p++) {
        if (out[p] == NULL)
            return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, __func__, "%s is NULL",
                               PART_NAME[p]);
        *out[p] = NULL;
    }
    index = kiln__calloc(ctx, (size_t)ds->n, sizeof(int64_t));
    if (index == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "no memory to split %lld samples", (long long)ds->n);
    int64_t counts[N_PARTS];
    KILN_CHECK(kiln_dataset_split_indices(ds, options, index, counts));
    for (int p = 0; p < N_PARTS; p++) {
        int64_t offset = p == 0 ? 0 : p == 1 ? counts[0] : counts[0] + counts[1];
        if (counts[p] == 0)
            continue;
        name = kiln__format(ctx, "%s [%s]", ds->name, PART_NAME[p]);
        if (name == NULL)
            KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "no memory for a split's name");
        KILN_CHECK(kiln_dataset_subset(ds, index + offset, counts[p], name, &parts[p]));
        kiln__free(ctx, name);
        name = NULL;
    }
    for (int p = 0; p < N_PARTS; p++) {
        *out[p] = parts[p];
        parts[p] = NULL;
    }
cleanup:
    for (int p = 0; p < N_PARTS; p++)
        kiln_dataset_destroy(parts[p]);
    kiln__free(ctx, name);
    kiln__free(ctx, index);
    return rc;
}
