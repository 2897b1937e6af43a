/*
 * Shuffling and batches. kiln_shuffle_order is a permutation, the same for the same (seed,
 * epoch), different for another epoch or seed, not the identity, and pinned to known values
 * (so that a change to the generator, which would break resuming a run, shows here); its
 * positions are spread evenly over many epochs. A batcher fills caller buffers so that each
 * epoch visits every sample exactly once in the epoch's order, with labels (classes or
 * targets) following their features; drop_last drops the short final batch, otherwise that
 * batch reports its size and zeroes the rest, or with repeat_last repeats its samples there;
 * without shuffling the order is the dataset's.
 * Bad batch indices, epochs, buffers, sizes and a dataset that shrank are errors. Creating a
 * batcher survives every allocation failure without leaks.
 */
#include <stdlib.h>
#include <string.h>

#include "kiln/data.h"
#include "support/kiln_test.h"

static bool is_permutation(const int64_t *order, int64_t n)
{
    char *seen = calloc((size_t)n, 1);
    bool ok = true;
    for (int64_t i = 0; i < n && ok; i++) {
        ok = order[i] >= 0 && order[i] < n && !seen[order[i]];
        if (ok)
            seen[order[i]] = 1;
    }
    free(seen);
    return ok;
}

static void test_shuffle_order(void **state)
{
    (void)state;
    enum { N = 1000 };
    int64_t a[N], b[N], c[N], d[N];
    kiln_shuffle_order(42, 0, N, a);
    kiln_shuffle_order(42, 0, N, b);
    kiln_shuffle_order(42, 1, N, c);
    kiln_shuffle_order(43, 0, N, d);
    assert_true(is_permutation(a, N));
    assert_true(is_permutation(c, N));
    assert_true(is_permutation(d, N));
    assert_memory_equal(a, b, sizeof a);
    assert_memory_not_equal(a, c, sizeof a);
    assert_memory_not_equal(a, d, sizeof a);
    int fixed = 0;
    for (int i = 0; i < N; i++)
        fixed += a[i] == i;
    assert_true(fixed < 10); /* about 1 expected */
    /* Pinned: seed 42, epoch 3, ten samples (also what an independent Python Philox4x32-10
     * and Fisher-Yates, as documented in data.h and batch.c, gives). */
    int64_t pinned[10];
    kiln_shuffle_order(42, 3, 10, pinned);
    static const int64_t PINNED[10] = {0, 2, 8, 5, 6, 3, 1, 9, 4, 7};
    assert_memory_equal(pinned, PINNED, sizeof pinned);
    /* Small cases. */
    int64_t one = 7;
    kiln_shuffle_order(1, 0, 1, &one);
    assert_int_equal(one, 0);
    kiln_shuffle_order(1, 0, 0, NULL);
}

/* Over 4000 epochs of 8 samples, each sample lands in each position about 500 times. */
static void test_shuffle_uniform(void **state)
{
    (void)state;
    enum { N = 8, EPOCHS = 4000 };
    int64_t count[N][N] = {{0}};
    for (int e = 0; e < EPOCHS; e++) {
        int64_t order[N];
        kiln_shuffle_order(5, e, N, order);
        for (int p = 0; p < N; p++)
            count[p][order[p]]++;
    }
    for (int p = 0; p < N; p++)
        for (int s = 0; s < N; s++)
            assert_true(count[p][s] > 380 && count[p][s] < 620); /* mean 500, sd about 21 */
}

/* 10 samples of (2,) features (2i, 2i + 1) and class i % 3. */
static kiln_dataset *make_classes(kiln_context *ctx, int64_t n)
{
    kiln_dataset *ds = NULL;
    kiln_shape shape = kiln_shape_of(1, (int64_t[]){2});
    assert_int_equal(kiln_dataset_create(ctx, "toy", n, &shape, KILN_LABELS_CLASS, NULL, &ds),
                     KILN_OK);
    for (int64_t i = 0; i < n; i++) {
        ds->features[2 * i] = (float)(2 * i);
        ds->features[2 * i + 1] = (float)(2 * i + 1);
        ds->classes[i] = (int32_t)(i % 3);
    }
    ds->n_classes = 3;
    return ds;
}

static void test_batches_cover_epoch(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_dataset *ds = make_classes(ctx, 10);
    kiln_batcher_options o = {.batch_size = 4, .shuffle = true, .seed = 9};
    kiln_batcher *b = NULL;
    assert_int_equal(kiln_batcher_create(ds, &o, &b), KILN_OK);
    assert_int_equal(kiln_batcher_n_batches(b), 3);
    float features[4 * 2];
    int32_t classes[4];
    kiln_batch batch = {.features = features, .classes = classes};
    int64_t first_epoch[10];
    for (int64_t epoch = 0; epoch < 3; epoch++) {
        int64_t order[10], seen = 0;
        kiln_shuffle_order(9, epoch, 10, order);
        for (int64_t k = 0; k < 3; k++) {
            int64_t rows = -1;
            memset(features, 0x7f, sizeof features);
            assert_int_equal(kiln_batcher_fill(b, epoch, k, &batch, &rows), KILN_OK);
            assert_int_equal(rows, k < 2 ? 4 : 2);
            for (int64_t r = 0; r < rows; r++, seen++) {
                int64_t s = order[seen];
                assert_true(features[2 * r] == (float)(2 * s));
                assert_true(features[2 * r + 1] == (float)(2 * s + 1));
                assert_int_equal(classes[r], s % 3);
                if (epoch == 0)
                    first_epoch[seen] = s;
            }
            for (int64_t r = rows; r < 4; r++) {
                assert_true(features[2 * r] == 0 && features[2 * r + 1] == 0);
                assert_int_equal(classes[r], 0);
            }
        }
        assert_int_equal(seen, 10);
        if (epoch > 0)
            assert_memory_not_equal(order, first_epoch, sizeof order);
    }
    /* Going back to an earlier epoch replays it. */
    int64_t rows = 0;
    assert_int_equal(kiln_batcher_fill(b, 0, 0, &batch, &rows), KILN_OK);
    assert_true(features[0] == (float)(2 * first_epoch[0]));
    kiln_batcher_destroy(b);

    /* drop_last: two full batches; the third is out of range. */
    o.drop_last = true;
    assert_int_equal(kiln_batcher_create(ds, &o, &b), KILN_OK);
    assert_int_equal(kiln_batcher_n_batches(b), 2);
    assert_int_equal(kiln_batcher_fill(b, 0, 1, &batch, &rows), KILN_OK);
    assert_int_equal(rows, 4);
    assert_int_equal(kiln_batcher_fill(b, 0, 2, &batch, &rows), KILN_ERR_INVALID_ARGUMENT);
    assert_string_equal(kiln_context_last_error(ctx),
                        "kiln_batcher_fill: batch 2 is outside [0, 2) for 'toy' (10 samples, "
                        "batch size 4, drop_last)");
    kiln_batcher_destroy(b);
    /* drop_last with an exact multiple keeps every batch. */
    o.batch_size = 5;
    assert_int_equal(kiln_batcher_create(ds, &o, &b), KILN_OK);
    assert_int_equal(kiln_batcher_n_batches(b), 2);
    kiln_batcher_destroy(b);

    /* No shuffling: dataset order, every epoch. */
    o = (kiln_batcher_options){.batch_size = 3, .shuffle = false, .seed = 9};
    assert_int_equal(kiln_batcher_create(ds, &o, &b), KILN_OK);
    assert_int_equal(kiln_batcher_n_batches(b), 4);
    for (int64_t epoch = 0; epoch < 2; epoch++) {
        assert_int_equal(kiln_batcher_fill(b, epoch, 1, &batch, &rows), KILN_OK);
        assert_int_equal(rows, 3);
        for (int r = 0; r < 3; r++)
            assert_true(features[2 * r] == (float)(2 * (3 + r)));
    }
    assert_int_equal(kiln_batcher_fill(b, 0, 3, &batch, &rows), KILN_OK);
    assert_int_equal(rows, 1);
    kiln_batcher_destroy(b);

    /* repeat_last: the final batch (samples 8 and 9 of 10, batch size 4) repeats its samples
     * in the rows past them, labels included; full batches are unchanged. */
    o = (kiln_batcher_options){.batch_size = 4, .repeat_last = true};
    assert_int_equal(kiln_batcher_create(ds, &o, &b), KILN_OK);
    assert_int_equal(kiln_batcher_n_batches(b), 3);
    assert_int_equal(kiln_batcher_fill(b, 0, 2, &batch, &rows), KILN_OK);
    assert_int_equal(rows, 2);
    for (int r = 0; r < 4; r++) {
        int sample = 8 + r % 2;
        assert_true(features[2 * r] == (float)(2 * sample));
        assert_true(features[2 * r + 1] == (float)(2 * sample + 1));
        assert_int_equal(classes[r], sample % 3);
    }
    assert_int_equal(kiln_batcher_fill(b, 0, 1, &batch, &rows), KILN_OK);
    assert_int_equal(rows, 4);
    assert_true(features[0] == 8.0f && features[6] == 14.0f);
    kiln_batcher_destroy(b);
    kiln_dataset_destroy(ds);
    kiln_context_destroy(ctx);
}

static void test_targets(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_dataset *ds = NULL;
    kiln_shape fshape = kiln_shape_of(3, (int64_t[]){1, 2, 2});
    kiln_shape lshape = kiln_shape_of(3, (int64_t[]){1, 2, 2});
    assert_int_equal(
        kiln_dataset_create(ctx, "masks", 5, &fshape, KILN_LABELS_TARGET, &lshape, &ds), KILN_OK);
    for (int i = 0; i < 20; i++) {
        ds->features[i] = (float)i;
        ds->targets[i] = (float)(-i);
    }
    kiln_batcher_options o = {.batch_size = 2, .shuffle = true, .seed = 1};
    kiln_batcher *b = NULL;
    assert_int_equal(kiln_batcher_create(ds, &o, &b), KILN_OK);
    float features[8], targets[8];
    kiln_batch batch = {.features = features, .targets = targets};
    for (int64_t k = 0; k < kiln_batcher_n_batches(b); k++) {
        int64_t rows = 0;
        assert_int_equal(kiln_batcher_fill(b, 4, k, &batch, &rows), KILN_OK);
        for (int64_t i = 0; i < rows * 4; i++)
            assert_true(targets[i] == -features[i]);
    }
    /* A targets buffer is needed. */
    batch.targets = NULL;
    assert_int_equal(kiln_batcher_fill(b, 0, 0, &batch, NULL), KILN_ERR_INVALID_ARGUMENT);
    assert_string_equal(kiln_context_last_error(ctx),
                        "kiln_batcher_fill: the batch needs a features buffer and a targets "
                        "buffer");
    kiln_batcher_destroy(b);
    kiln_dataset_destroy(ds);
    kiln_context_destroy(ctx);
}

static void test_errors(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_dataset *ds = make_classes(ctx, 10);
    kiln_batcher_options o = {.batch_size = 0};
    kiln_batcher *b = NULL;
    assert_int_equal(kiln_batcher_create(ds, &o, &b), KILN_ERR_INVALID_ARGUMENT);
    assert_string_equal(kiln_context_last_error(ctx),
                        "kiln_batcher_create: batch_size must be >= 1, got 0");
    o = (kiln_batcher_options){.batch_size = 11, .drop_last = true};
    assert_int_equal(kiln_batcher_create(ds, &o, &b), KILN_ERR_INVALID_ARGUMENT);
    assert_string_equal(kiln_context_last_error(ctx),
                        "kiln_batcher_create: batch_size 11 with drop_last leaves no batch: 'toy' "
                        "has only 10 samples");
    assert_null(b);
    o.drop_last = false;
    assert_int_equal(kiln_batcher_create(ds, &o, &b), KILN_OK);
    assert_int_equal(kiln_batcher_n_batches(b), 1);
    float features[22];
    int32_t classes[11];
    kiln_batch batch = {.features = features, .classes = classes};
    assert_int_equal(kiln_batcher_fill(b, -1, 0, &batch, NULL), KILN_ERR_INVALID_ARGUMENT);
    assert_string_equal(kiln_context_last_error(ctx),
                        "kiln_batcher_fill: epoch -1 is outside [0, 2^32)");
    assert_int_equal(kiln_batcher_fill(b, 0, -1, &batch, NULL), KILN_ERR_INVALID_ARGUMENT);
    batch.classes = NULL;
    assert_int_equal(kiln_batcher_fill(b, 0, 0, &batch, NULL), KILN_ERR_INVALID_ARGUMENT);
    batch.classes = classes;
    int64_t removed = 0;
    ds->features[2] = ds->features[0];
    ds->features[3] = ds->features[1];
    ds->classes[1] = ds->classes[0];
    assert_int_equal(kiln_dataset_remove_duplicates(ds, &removed, NULL), KILN_OK);
    assert_int_equal(removed, 1);
    assert_int_equal(kiln_batcher_fill(b, 0, 0, &batch, NULL), KILN_ERR_INVALID_ARGUMENT);
    assert_string_equal(kiln_context_last_error(ctx),
                        "kiln_batcher_fill: 'toy' has 9 samples but had 10 when the batcher was "
                        "made; make a new batcher after removing samples");
    kiln_batcher_destroy(b);
    kiln_batcher_destroy(NULL);
    kiln_dataset_destroy(ds);
    kiln_context_destroy(ctx);
}

static void test_out_of_memory(void **state)
{
    (void)state;
    for (long budget = 0;; budget++) {
        kiln_test_allocator a;
        kiln_context *ctx = kiln_test_counted_context(&a);
        kiln_dataset *ds = make_classes(ctx, 10);
        a.budget = budget;
        kiln_batcher_options o = {.batch_size = 4, .shuffle = true};
        kiln_batcher *b = NULL;
        kiln_status rc = kiln_batcher_create(ds, &o, &b);
        a.budget = -1;
        kiln_batcher_destroy(b);
        kiln_dataset_destroy(ds);
        kiln_context_destroy(ctx);
        if (kiln_test_oom_round_done(&a, rc))
            break;
        assert_null(b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_out_of_memory),   cmocka_unit_test(test_shuffle_order),
        cmocka_unit_test(test_shuffle_uniform), cmocka_unit_test(test_batches_cover_epoch),
        cmocka_unit_test(test_targets),         cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
