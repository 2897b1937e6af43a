/*
 * Duplicates and leakage. Duplicate removal drops exactly the samples equal to an earlier one
 * in features and label (keeping first occurrences in order, -0 equal to +0, NaN equal to
 * NaN), counts samples kept whose features repeat with another label, and works for targets
 * too. Leakage counts, per split and per pair, the samples whose features occur in another
 * split, for a constructed train/validation/test with known overlaps (labels ignored,
 * duplicates within a split not counted as leakage), and refuses splits of different widths.
 * Both survive every allocation failure without leaks.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/data.h"
#include "support/kiln_test.h"

/* n samples of 2 features from `rows` (n x 2) with class labels `classes`. */
static kiln_dataset *make(kiln_context *ctx, const char *name, int64_t n, const float *rows,
                          const int32_t *classes)
{
    kiln_dataset *ds = NULL;
    kiln_shape shape = kiln_shape_of(1, (int64_t[]){2});
    assert_int_equal(kiln_dataset_create(ctx, name, n, &shape, KILN_LABELS_CLASS, NULL, &ds),
                     KILN_OK);
    memcpy(ds->features, rows, (size_t)n * 2 * sizeof(float));
    memcpy(ds->classes, classes, (size_t)n * sizeof(int32_t));
    ds->n_classes = 3;
    return ds;
}

static void test_remove_duplicates(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    const float rows[] = {
        1,     2, /* 0: kept */
        3,     4, /* 1: kept */
        1,     2, /* 2: duplicate of 0 */
        1,     2, /* 3: same features as 0, other label: kept, conflicting */
        -0.0f, 5, /* 4: kept */
        0,     5, /* 5: duplicate of 4 (-0 = +0) */
        NAN,   6, /* 6: kept */
        NAN,   6, /* 7: duplicate of 6 */
        3,     4, /* 8: duplicate of 1 */
        1,     2, /* 9: duplicate of 3 */
    };
    const int32_t classes[] = {0, 1, 0, 2, 1, 1, 0, 0, 1, 2};
    kiln_dataset *ds = make(ctx, "train", 10, rows, classes);
    int64_t removed = -1, conflicting = -1;
    assert_int_equal(kiln_dataset_remove_duplicates(ds, &removed, &conflicting), KILN_OK);
    assert_int_equal(removed, 5);
    assert_int_equal(conflicting, 1);
    assert_int_equal(ds->n, 5);
    const int keep[] = {0, 1, 3, 4, 6};
    for (int k = 0; k < 5; k++) {
        assert_memory_equal(ds->features + 2 * k, rows + 2 * keep[k], 2 * sizeof(float));
        assert_int_equal(ds->classes[k], classes[keep[k]]);
    }
    /* Again: nothing left to remove. */
    assert_int_equal(kiln_dataset_remove_duplicates(ds, &removed, NULL), KILN_OK);
    assert_int_equal(removed, 0);
    assert_int_equal(ds->n, 5);
    kiln_dataset_destroy(ds);

    /* Targets: equal features with equal targets are duplicates, with other targets not. */
    kiln_shape shape = kiln_shape_of(1, (int64_t[]){1});
    assert_int_equal(kiln_dataset_create(ctx, "reg", 4, &shape, KILN_LABELS_TARGET, &shape, &ds),
                     KILN_OK);
    const float x[] = {1, 1, 1, 2}, t[] = {0.5f, 0.5f, 0.25f, 0.5f};
    memcpy(ds->features, x, sizeof x);
    memcpy(ds->targets, t, sizeof t);
    assert_int_equal(kiln_dataset_remove_duplicates(ds, &removed, &conflicting), KILN_OK);
    assert_int_equal(removed, 1);
    assert_int_equal(conflicting, 1);
    assert_int_equal(ds->n, 3);
    assert_true(ds->targets[1] == 0.25f && ds->features[2] == 2);
    kiln_dataset_destroy(ds);
    kiln_context_destroy(ctx);
}

/* Many rows: hashing and probing past the table's first slots. */
static void test_many_duplicates(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    enum { N = 20000, DISTINCT = 1234 };
    float *rows = malloc(N * 2 * sizeof(float));
    int32_t *classes = calloc(N, sizeof(int32_t));
    for (int i = 0; i < N; i++) {
        rows[2 * i] = (float)(i % DISTINCT);
        rows[2 * i + 1] = 0.5f;
    }
    kiln_dataset *ds = make(ctx, "many", N, rows, classes);
    int64_t removed = 0;
    assert_int_equal(kiln_dataset_remove_duplicates(ds, &removed, NULL), KILN_OK);
    assert_int_equal(removed, N - DISTINCT);
    for (int i = 0; i < DISTINCT; i++)
        assert_true(ds->features[2 * i] == (float)i);
    kiln_dataset_destroy(ds);
    free(classes);
    free(rows);
    kiln_context_destroy(ctx);
}

static void test_leakage(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    const float train_rows[] = {1, 1, 2, 2, 3, 3, 4, 4, 4, 4, 5, 5};
    const int32_t train_classes[] = {0, 0, 0, 0, 0, 0};
    const float val_rows[] = {2, 2, 9, 9, 4, 4};
    const int32_t val_classes[] = {1, 1, 1}; /* labels differ from train's: still leakage */
    const float test_rows[] = {4, 4, 7, 7, 2, 2, 2, 2, 8, 8};
    const int32_t test_classes[] = {2, 2, 2, 2, 2};
    kiln_dataset *train = make(ctx, "train", 6, train_rows, train_classes);
    kiln_dataset *val = make(ctx, "validation", 3, val_rows, val_classes);
    kiln_dataset *test = make(ctx, "test", 5, test_rows, test_classes);
    const kiln_dataset *splits[3] = {train, val, test};
    kiln_leakage_report r;
    assert_int_equal(kiln_dataset_count_leakage(ctx, splits, 3, &r), KILN_OK);
    assert_int_equal(r.n_splits, 3);
    /* train: (2,2) and the two (4,4) are elsewhere. */
    assert_int_equal(r.n_leaked[0], 3);
    assert_int_equal(r.n_shared[0][1], 3);
    assert_int_equal(r.n_shared[0][2], 3);
    /* validation: (2,2) and (4,4). */
    assert_int_equal(r.n_leaked[1], 2);
    assert_int_equal(r.n_shared[1][0], 2);
    assert_int_equal(r.n_shared[1][2], 2);
    /* test: (4,4) and both (2,2). */
    assert_int_equal(r.n_leaked[2], 3);
    assert_int_equal(r.n_shared[2][0], 3);
    assert_int_equal(r.n_shared[2][1], 3);
    for (int s = 0; s < 3; s++)
        assert_int_equal(r.n_shared[s][s], 0);
    /* Only validation and test: (2,2) and (4,4) shared. */
    const kiln_dataset *two[2] = {val, test};
    assert_int_equal(kiln_dataset_count_leakage(ctx, two, 2, &r), KILN_OK);
    assert_int_equal(r.n_leaked[0], 2);
    assert_int_equal(r.n_leaked[1], 3);
    /* One split has no leakage, even with duplicates inside it. */
    assert_int_equal(kiln_dataset_count_leakage(ctx, splits, 1, &r), KILN_OK);
    assert_int_equal(r.n_leaked[0], 0);
    /* Other widths. */
    kiln_dataset *wide = NULL;
    kiln_shape shape = kiln_shape_of(1, (int64_t[]){3});
    assert_int_equal(kiln_dataset_create(ctx, "wide", 2, &shape, KILN_LABELS_NONE, NULL, &wide),
                     KILN_OK);
    const kiln_dataset *mixed[2] = {train, wide};
    assert_int_equal(kiln_dataset_count_leakage(ctx, mixed, 2, &r), KILN_ERR_SHAPE);
    assert_string_equal(kiln_context_last_error(ctx),
                        "kiln_dataset_count_leakage: 'wide' has 3 features per sample but "
                        "'train' has 2; leakage is counted between splits of one data set");
    assert_int_equal(kiln_dataset_count_leakage(ctx, splits, 5, &r), KILN_ERR_INVALID_ARGUMENT);
    kiln_dataset_destroy(wide);
    kiln_dataset_destroy(test);
    kiln_dataset_destroy(val);
    kiln_dataset_destroy(train);
    kiln_context_destroy(ctx);
}

static void test_out_of_memory(void **state)
{
    (void)state;
    const float rows[] = {1, 2, 1, 2, 3, 4};
    const int32_t classes[] = {0, 0, 1};
    for (long budget = 0;; budget++) {
        kiln_test_allocator a;
        kiln_context *ctx = kiln_test_counted_context(&a);
        kiln_dataset *x = make(ctx, "x", 3, rows, classes);
        kiln_dataset *y = make(ctx, "y", 3, rows, classes);
        a.budget = budget;
        const kiln_dataset *splits[2] = {x, y};
        kiln_leakage_report r;
        int64_t removed = 0;
        kiln_status rc = kiln_dataset_count_leakage(ctx, splits, 2, &r);
        if (rc == KILN_OK)
            rc = kiln_dataset_remove_duplicates(x, &removed, NULL);
        a.budget = -1;
        kiln_dataset_destroy(x);
        kiln_dataset_destroy(y);
        kiln_context_destroy(ctx);
        if (kiln_test_oom_round_done(&a, rc)) {
            assert_int_equal(r.n_leaked[0], 3);
            assert_int_equal(removed, 1);
            break;
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_remove_duplicates),
        cmocka_unit_test(test_many_duplicates),
        cmocka_unit_test(test_leakage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
