/*
 * Shuffling and batching. Every permutation here is a Fisher-Yates shuffle whose draw for
 * position i is Philox4x32-10 (core/philox.h) with the seed as key and (i, sub, stream) as
 * counter, so an epoch's order is a pure function of (seed, epoch) and a resumed run replays
 * it exactly; splits use the same permutation on another stream. A batcher copies the
 * samples of one batch into caller-provided host buffers; uploading them is the caller's job.
 */
#include <string.h>

#include "core/philox.h"
#include "data/data_internal.h"

void kiln__permute(int64_t *items, int64_t n, uint64_t seed, uint32_t sub, uint32_t stream)
{
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    for (int64_t i = n - 1; i > 0; i--) {
        uint32_t counter[4] = {(uint32_t)i, (uint32_t)((uint64_t)i >> 32), sub, stream};
        uint32_t word[4];
        kiln__philox4x32_10(counter, key, word);
        /* A 64-bit draw reduced modulo i + 1: the bias, below (i + 1) / 2^64, is far under
         * anything a shuffle of a data set could show. */
        uint64_t draw = (uint64_t)word[0] << 32 | word[1];
        int64_t j = (int64_t)(draw % (uint64_t)(i + 1));
        int64_t t = items[i];
        items[i] = items[j];
        items[j] = t;
    }
}

void kiln_shuffle_order(uint64_t seed, int64_t epoch, int64_t n, int64_t *order)
{
    for (int64_t i = 0; i < n; i++)
        order[i] = i;
    kiln__permute(order, n, seed, (uint32_t)epoch, KILN__STREAM_SHUFFLE);
}

struct kiln_batcher {
    const kiln_dataset *ds;
    kiln_batcher_options options;
    int64_t n;      /* the dataset's size when the batcher was made */
    int64_t *order; /* the order of `epoch` */
    int64_t epoch;  /* -1 before the first fill */
};

kiln_status kiln_batcher_create(const kiln_dataset *ds, const kiln_batcher_options *options,
                                kiln_batcher **out)
{
    kiln_status rc = KILN_OK;
    kiln_batcher *b = NULL;
    if (ds == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    kiln_context *ctx = ds->ctx;
    if (out == NULL || options == NULL)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, __func__, "out or options is NULL");
    *out = NULL;
    if (options->batch_size < 1)
        KILN_FAIL(ctx, KILN_ERR_INVALID_ARGUMENT, "batch_size must be >= 1, got %lld",
                  (long long)options->batch_size);
    if (options->drop_last && options->batch_size > ds->n)
        KILN_FAIL(ctx, KILN_ERR_INVALID_ARGUMENT,
                  "batch_size %lld with drop_last leaves no batch: '%s' has only %lld samples",
                  (long long)options->batch_size, ds->name, (long long)ds->n);
    b = kiln__calloc(ctx, 1, sizeof *b);
    if (b != NULL) {
        b->ds = ds;
        b->order = kiln__calloc(ctx, (size_t)ds->n, sizeof(int64_t));
    }
    if (b == NULL || b->order == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "no memory for the order of %lld samples",
                  (long long)ds->n);
    b->options = *options;
    b->n = ds->n;
    b->epoch = -1;
    *out = b;
    b = NULL;
cleanup:
    kiln_batcher_destroy(b);
    return rc;
}

void kiln_batcher_destroy(kiln_batcher *b)
{
    if (b == NULL)
        return;
    kiln__free(b->ds->ctx, b->order);
    kiln__free(b->ds->ctx, b);
}

int64_t kiln_batcher_n_batches(const kiln_batcher *b)
{
    int64_t size = b->options.batch_size;
    return b->options.drop_last ? b->n / size : (b->n + size - 1) / size;
}

kiln_status kiln_batcher_fill(kiln_batcher *b, int64_t epoch, int64_t index,
                              const kiln_batch *batch, int64_t *n_rows)
{
    kiln_status rc = KILN_OK;
    const kiln_dataset *ds = b->ds;
    kiln_context *ctx = ds->ctx;
    int64_t size = b->options.batch_size;
    if (n_rows != NULL)
        *n_rows = 0;
    if (ds->n != b->n)
        KILN_FAIL(ctx, KILN_ERR_INVALID_ARGUMENT,
                  "'%s' has %lld samples but had %lld when the batcher was made; make a new "
                  "batcher after removing samples",
                  ds->name, (long long)ds->n, (long long)b->n);
    if (epoch < 0 || epoch > (int64_t)UINT32_MAX)
        KILN_FAIL(ctx, KILN_ERR_INVALID_ARGUMENT, "epoch %lld is outside [0, 2^32)",
                  (long long)epoch);
    if (index < 0 || index >= kiln_batcher_n_batches(b))
        KILN_FAIL(ctx, KILN_ERR_INVALID_ARGUMENT,
                  "batch %lld is outside [0, %lld) for '%s' (%lld samples, batch size %lld%s)",
                  (long long)index, (long long)kiln_batcher_n_batches(b), ds->name,
                  (long long)ds->n, (long long)size, b->options.drop_last ? ", drop_last" : "");
    if (batch == NULL || batch->features == NULL ||
        (ds->label_kind == KILN_LABELS_CLASS && batch->classes == NULL) ||
        (ds->label_kind == KILN_LABELS_TARGET && batch->targets == NULL))
        KILN_FAIL(ctx, KILN_ERR_INVALID_ARGUMENT, "the batch needs a features buffer%s",
                  ds->label_kind == KILN_LABELS_CLASS    ? " and a classes buffer"
                  : ds->label_kind == KILN_LABELS_TARGET ? " and a targets buffer"
                                                         : "");
    if (epoch != b->epoch) {
        if (b->options.shuffle) {
            kiln_shuffle_order(b->options.seed, epoch, b->n, b->order);
        } else {
            for (int64_t i = 0; i < b->n; i++)
                b->order[i] = i;
        }
        b->epoch = epoch;
    }
    int64_t first = index * size;
    int64_t rows = b->n - first < size ? b->n - first : size;
    size_t row_bytes = (size_t)ds->n_features * sizeof(float);
    size_t target_bytes = (size_t)ds->n_label_values * sizeof(float);
    /* repeat_last: rows past the real ones cycle through them, r -> r mod rows. */
    int64_t filled = b->options.repeat_last ? size : rows;
    for (int64_t r = 0; r < filled; r++) {
        int64_t s = b->order[first + r % rows];
        memcpy(batch->features + r * ds->n_features, ds->features + s * ds->n_features, row_bytes);
        if (ds->label_kind == KILN_LABELS_CLASS)
            batch->classes[r] = ds->classes[s];
        else if (ds->label_kind == KILN_LABELS_TARGET)
            memcpy(batch->targets + r * ds->n_label_values, ds->targets + s * ds->n_label_values,
                   target_bytes);
    }
    if (filled < size) {
        size_t tail = (size_t)(size - rows);
        memset(batch->features + rows * ds->n_features, 0, tail * row_bytes);
        if (ds->label_kind == KILN_LABELS_CLASS)
            memset(batch->classes + rows, 0, tail * sizeof(int32_t));
        else if (ds->label_kind == KILN_LABELS_TARGET)
            memset(batch->targets + rows * ds->n_label_values, 0, tail * target_bytes);
    }
    if (n_rows != NULL)
        *n_rows = rows;
cleanup:
    return rc;
}
