/*
 * Splits: the three parts are disjoint, cover every sample, list it in ascending order and
 * have round(fraction * n) samples; the same seed gives the same split and another seed
 * another one; stratified splits keep every class's proportion within one sample (classes of
 * 500, 301, 180 and 19 samples) with exact totals; kiln_dataset_split copies the samples
 * (features and labels) of each part into datasets named "<name> [part]"; bad fractions,
 * parts that would be empty, and stratifying without class labels are errors. Subsets check
 * their indices; files of one data set are checked for matching shapes and label kinds; a
 * split survives every allocation failure without leaks.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/data.h"
#include "support/kiln_test.h"

enum { N = 1000 };
static const int64_t CLASS_SIZES[4] = {500, 301, 180, 19};

/* N samples; feature 0 is the sample's index, feature 1 its class; classes interleaved. */
static kiln_dataset *make_dataset(kiln_context *ctx)
{
    kiln_dataset *ds = NULL;
    kiln_shape shape = kiln_shape_of(1, (int64_t[]){2});
    assert_int_equal(kiln_dataset_create(ctx, "toy", N, &shape, KILN_LABELS_CLASS, NULL, &ds),
                     KILN_OK);
    int64_t left[4];
    memcpy(left, CLASS_SIZES, sizeof left);
    for (int64_t i = 0, c = 0; i < N; i++) {
        while (left[c % 4] == 0)
            c++;
        ds->classes[i] = (int32_t)(c % 4);
        left[c % 4]--;
        c++;
        ds->features[2 * i] = (float)i;
        ds->features[2 * i + 1] = (float)ds->classes[i];
    }
    ds->n_classes = 4;
    return ds;
}

/* Every index once, each part ascending. */
static void check_partition(const int64_t *index, const int64_t counts[3], int64_t n)
{
    assert_int_equal(counts[0] + counts[1] + counts[2], n);
    char *seen = calloc((size_t)n, 1);
    int64_t k = 0;
    for (int p = 0; p < 3; p++) {
        for (int64_t m = 0; m < counts[p]; m++, k++) {
            assert_true(index[k] >= 0 && index[k] < n);
            assert_false(seen[index[k]]);
            seen[index[k]] = 1;
            if (m > 0)
                assert_true(index[k] > index[k - 1]);
        }
    }
    free(seen);
}

static void test_random_split(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_dataset *ds = make_dataset(ctx);
    kiln_split_options o = {.validation = 0.15, .test = 0.2, .seed = 7};
    int64_t a[N], b[N], counts[3], counts_b[3];
    assert_int_equal(kiln_dataset_split_indices(ds, &o, a, counts), KILN_OK);
    check_partition(a, counts, N);
    assert_int_equal(counts[0], 650);
    assert_int_equal(counts[1], 150);
    assert_int_equal(counts[2], 200);
    /* Deterministic for a seed. */
    assert_int_equal(kiln_dataset_split_indices(ds, &o, b, counts_b), KILN_OK);
    assert_memory_equal(a, b, sizeof a);
    /* Another seed chooses other samples. */
    o.seed = 8;
    assert_int_equal(kiln_dataset_split_indices(ds, &o, b, counts_b), KILN_OK);
    check_partition(b, counts_b, N);
    assert_memory_not_equal(a, b, sizeof a);
    /* Not the identity either: validation is not simply the first samples. */
    assert_true(a[650] != 0 || a[651] != 1 || a[652] != 2);
    /* No test part. */
    o.test = 0;
    o.validation = 0.1;
    assert_int_equal(kiln_dataset_split_indices(ds, &o, b, counts_b), KILN_OK);
    check_partition(b, counts_b, N);
    assert_int_equal(counts_b[1], 100);
    assert_int_equal(counts_b[2], 0);
    kiln_dataset_destroy(ds);
    kiln_context_destroy(ctx);
}

static void test_stratified_split(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_dataset *ds = make_dataset(ctx);
    const double fractions[][2] = {{0.1, 0.2}, {0.15, 0.15}, {0.33, 0.0}, {0.05, 0.5}};
    for (size_t f = 0; f < sizeof fractions / sizeof fractions[0]; f++) {
        for (uint64_t seed = 1; seed <= 3; seed++) {
            kiln_split_options o = {.validation = fractions[f][0],
                                    .test = fractions[f][1],
                                    .seed = seed,
                                    .stratify = true};
            int64_t index[N], counts[3];
            assert_int_equal(kiln_dataset_split_indices(ds, &o, index, counts), KILN_OK);
            check_partition(index, counts, N);
            assert_int_equal(counts[1], (int64_t)floor(o.validation * N + 0.5));
            assert_int_equal(counts[2], (int64_t)floor(o.test * N + 0.5));
            int64_t per[3][4] = {{0}};
            for (int p = 0, k = 0; p < 3; p++)
                for (int64_t m = 0; m < counts[p]; m++, k++)
                    per[p][ds->classes[index[k]]]++;
            for (int c = 0; c < 4; c++) {
                assert_true(fabs((double)per[1][c] - o.validation * (double)CLASS_SIZES[c]) < 1);
                assert_true(fabs((double)per[2][c] - o.test * (double)CLASS_SIZES[c]) < 1);
                assert_int_equal(per[0][c] + per[1][c] + per[2][c], CLASS_SIZES[c]);
            }
        }
    }
    kiln_dataset_destroy(ds);
    kiln_context_destroy(ctx);
}

static void test_split_copies(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_dataset *ds = make_dataset(ctx);
    kiln_split_options o = {.validation = 0.1, .test = 0.1, .seed = 42, .stratify = true};
    kiln_dataset *train = NULL, *val = NULL, *test = NULL;
    assert_int_equal(kiln_dataset_split(ds, &o, &train, &val, &test), KILN_OK);
    assert_int_equal(train->n, 800);
    assert_int_equal(val->n, 100);
    assert_int_equal(test->n, 100);
    assert_string_equal(train->name, "toy [train]");
    assert_string_equal(val->name, "toy [validation]");
    assert_string_equal(test->name, "toy [test]");
    int64_t index[N], counts[3];
    assert_int_equal(kiln_dataset_split_indices(ds, &o, index, counts), KILN_OK);
    const kiln_dataset *parts[3] = {train, val, test};
    for (int p = 0, k = 0; p < 3; p++) {
        assert_int_equal(parts[p]->n_classes, 4);
        for (int64_t m = 0; m < parts[p]->n; m++, k++) {
            /* Feature 0 is the original index; labels travel with their rows. */
            assert_true(parts[p]->features[2 * m] == (float)index[k]);
            assert_int_equal(parts[p]->classes[m], ds->classes[index[k]]);
            assert_true(parts[p]->features[2 * m + 1] == (float)parts[p]->classes[m]);
        }
    }
    kiln_dataset_destroy(train);
    kiln_dataset_destroy(val);
    kiln_dataset_destroy(test);
    /* Without a test fraction there is no test part. */
    o.test = 0;
    assert_int_equal(kiln_dataset_split(ds, &o, &train, &val, &test), KILN_OK);
    assert_null(test);
    assert_int_equal(train->n + val->n, N);
    kiln_dataset_destroy(train);
    kiln_dataset_destroy(val);
    kiln_dataset_destroy(ds);
    kiln_context_destroy(ctx);
}

static void test_errors(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_dataset *ds = make_dataset(ctx);
    int64_t index[N], counts[3];
    kiln_split_options o = {.validation = 0.6, .test = 0.4};
    assert_int_equal(kiln_dataset_split_indices(ds, &o, index, counts), KILN_ERR_INVALID_ARGUMENT);
    assert_string_equal(
        kiln_context_last_error(ctx),
        "kiln_dataset_split_indices: fractions validation 0.6 and test 0.4 must each be "
        "in [0, 1) and sum to less than 1 (the rest is train)");
    o = (kiln_split_options){.validation = -0.1};
    assert_int_equal(kiln_dataset_split_indices(ds, &o, index, counts), KILN_ERR_INVALID_ARGUMENT);
    o = (kiln_split_options){.validation = NAN};
    assert_int_equal(kiln_dataset_split_indices(ds, &o, index, counts), KILN_ERR_INVALID_ARGUMENT);
    o = (kiln_split_options){.validation = 0.0004};
    assert_int_equal(kiln_dataset_split_indices(ds, &o, index, counts), KILN_ERR_INVALID_ARGUMENT);
    assert_string_equal(kiln_context_last_error(ctx),
                        "kiln_dataset_split_indices: the validation part of 'toy' would be "
                        "empty: fraction 0.0004 of 1000 samples; raise the fraction or set it "
                        "to 0");
    o = (kiln_split_options){.validation = 0.5, .test = 0.4996};
    assert_int_equal(kiln_dataset_split_indices(ds, &o, index, counts), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), "the train part of 'toy' would be empty");
    /* Stratify needs class labels. */
    kiln_dataset *reg = NULL;
    kiln_shape one = kiln_shape_of(1, (int64_t[]){1});
    assert_int_equal(kiln_dataset_create(ctx, "reg", 10, &one, KILN_LABELS_TARGET, &one, &reg),
                     KILN_OK);
    o = (kiln_split_options){.validation = 0.2, .stratify = true};
    kiln_dataset *train = NULL, *val = NULL, *test = NULL;
    assert_int_equal(kiln_dataset_split(reg, &o, &train, &val, &test), KILN_ERR_INVALID_ARGUMENT);
    assert_string_equal(
        kiln_context_last_error(ctx),
        "kiln_dataset_split_indices: stratify needs class labels, but 'reg' has float "
        "targets");
    assert_null(train);
    assert_null(val);
    kiln_dataset_destroy(reg);
    kiln_dataset_destroy(ds);
    kiln_context_destroy(ctx);
}

static void test_subset_and_compatible(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_dataset *ds = make_dataset(ctx);
    kiln_dataset *sub = NULL;
    const int64_t pick[3] = {5, 5, 999};
    assert_int_equal(kiln_dataset_subset(ds, pick, 3, "picked", &sub), KILN_OK);
    assert_int_equal(sub->n, 3);
    assert_true(sub->features[0] == 5 && sub->features[2] == 5 && sub->features[4] == 999);
    assert_int_equal(kiln_dataset_check_compatible(ds, sub), KILN_OK);
    kiln_dataset_destroy(sub);
    const int64_t bad[2] = {0, 1000};
    assert_int_equal(kiln_dataset_subset(ds, bad, 2, "bad", &sub), KILN_ERR_INVALID_ARGUMENT);
    assert_string_equal(kiln_context_last_error(ctx),
                        "kiln_dataset_subset: index[1] = 1000 is outside 'toy', which has 1000 "
                        "samples");
    assert_null(sub);
    kiln_dataset *other = NULL;
    kiln_shape image = kiln_shape_of(3, (int64_t[]){1, 2, 1});
    assert_int_equal(kiln_dataset_create(ctx, "images", 2, &image, KILN_LABELS_CLASS, NULL, &other),
                     KILN_OK);
    assert_int_equal(kiln_dataset_check_compatible(ds, other), KILN_ERR_SHAPE);
    assert_string_equal(kiln_context_last_error(ctx),
                        "kiln_dataset_check_compatible: 'images' has samples of shape (1, 2, 1) "
                        "but 'toy' has (2,); they must match");
    kiln_dataset_destroy(other);
    kiln_shape two = kiln_shape_of(1, (int64_t[]){2});
    assert_int_equal(
        kiln_dataset_create(ctx, "unlabelled", 2, &two, KILN_LABELS_NONE, NULL, &other), KILN_OK);
    assert_int_equal(kiln_dataset_check_compatible(ds, other), KILN_ERR_SHAPE);
    assert_string_equal(kiln_context_last_error(ctx),
                        "kiln_dataset_check_compatible: 'unlabelled' has labels of kind 'none' "
                        "but 'toy' has 'class indices'; they must match");
    kiln_dataset_destroy(other);
    /* Bad shapes for create. */
    kiln_shape zero = kiln_shape_of(2, (int64_t[]){3, 0});
    assert_int_equal(kiln_dataset_create(ctx, "z", 2, &zero, KILN_LABELS_NONE, NULL, &other),
                     KILN_ERR_SHAPE);
    assert_string_equal(kiln_context_last_error(ctx),
                        "kiln_dataset_create: per-sample feature shape (3, 0) needs 1 to 5 "
                        "dimensions, each >= 1, and fewer than 2^31 elements");
    assert_int_equal(kiln_dataset_create(ctx, "z", 0, &two, KILN_LABELS_NONE, NULL, &other),
                     KILN_ERR_INVALID_ARGUMENT);
    kiln_dataset_destroy(ds);
    kiln_context_destroy(ctx);
}

static void test_out_of_memory(void **state)
{
    (void)state;
    for (long budget = 0;; budget++) {
        kiln_test_allocator a;
        kiln_context *ctx = kiln_test_counted_context(&a);
        kiln_dataset *ds = make_dataset(ctx);
        a.budget = budget;
        kiln_split_options o = {.validation = 0.1, .test = 0.1, .seed = 3, .stratify = true};
        kiln_dataset *train = NULL, *val = NULL, *test = NULL;
        kiln_status rc = kiln_dataset_split(ds, &o, &train, &val, &test);
        a.budget = -1;
        kiln_dataset_destroy(train);
        kiln_dataset_destroy(val);
        kiln_dataset_destroy(test);
        kiln_dataset_destroy(ds);
        kiln_context_destroy(ctx);
        if (kiln_test_oom_round_done(&a, rc))
            break;
        assert_null(train);
        assert_null(val);
        assert_null(test);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subset_and_compatible), cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_random_split),          cmocka_unit_test(test_stratified_split),
        cmocka_unit_test(test_split_copies),          cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
