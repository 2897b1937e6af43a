/*
 * Preprocessing: statistics come from the training split only. Train (values near 10) and
 * test (values near 100) differ; per-feature standardization fitted on train has train's
 * mean and population std, and the test split is transformed with them (bit for bit, in
 * float), leaving it far from mean 0. Global standardization after scaling fits on the scaled
 * data; min-max maps train to [0, 1] and constant features to 0; NaN is ignored by fits and
 * replaced by train's mean, median (odd and even counts) or a constant; drop_missing counts
 * what it drops on each split. Statistics read by name from one pipeline and written into a
 * fresh one give identical transforms. Errors: transforms and reads before fitting, unknown
 * names (listed), wrong sizes, feature-count mismatch, a feature with no value, dropping
 * every row, bad steps. Creating and fitting survive every allocation failure without leaks.
 * Per-channel standardization of (C, H, W) samples matches a double-precision reference
 * (statistics and transformed values, NaN skipped), exports C values per statistic, and
 * refuses a channel count that does not divide the features or a channel with no value.
 * The missing-value count (blocks of 64 values, then a tail) equals a plain isnan count for
 * sizes around the block length, with NaN at block edges, negative NaN and infinities.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/data.h"
#include "support/kiln_test.h"

enum { F = 3 };

/* The next value of a fixed LCG, as u in [-1, 1). */
static double uniform(uint32_t *state)
{
    *state = *state * 1664525u + 1013904223u;
    return (double)(*state >> 8) / (double)(1u << 24) * 2 - 1;
}

/* n samples of F features, x = center + spread * u with u from uniform(). */
static kiln_dataset *make_dataset(kiln_context *ctx, const char *name, int64_t n, double center,
                                  double spread, uint32_t seed)
{
    kiln_dataset *ds = NULL;
    kiln_shape shape = kiln_shape_of(1, (int64_t[]){F});
    assert_int_equal(kiln_dataset_create(ctx, name, n, &shape, KILN_LABELS_CLASS, NULL, &ds),
                     KILN_OK);
    uint32_t state = seed;
    for (int64_t i = 0; i < n * F; i++) {
        ds->features[i] = (float)(center + spread * (double)(i % F + 1) * uniform(&state));
    }
    for (int64_t i = 0; i < n; i++)
        ds->classes[i] = (int32_t)(i % 3);
    ds->n_classes = 3;
    return ds;
}

static kiln_dataset *copy_of(const kiln_dataset *ds)
{
    int64_t *index = malloc((size_t)ds->n * sizeof(int64_t));
    for (int64_t i = 0; i < ds->n; i++)
        index[i] = i;
    kiln_dataset *copy = NULL;
    assert_int_equal(kiln_dataset_subset(ds, index, ds->n, "copy", &copy), KILN_OK);
    free(index);
    return copy;
}

static kiln_preprocess *make_pipeline(kiln_context *ctx, const kiln_preprocess_step *steps,
                                      size_t n)
{
    kiln_preprocess *pp = NULL;
    assert_int_equal(kiln_preprocess_create(ctx, steps, n, F, &pp), KILN_OK);
    return pp;
}

static void test_train_only_statistics(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_dataset *train = make_dataset(ctx, "train", 300, 10, 2, 1);
    kiln_dataset *test = make_dataset(ctx, "test", 50, 100, 5, 2);
    kiln_dataset *raw_test = copy_of(test);
    /* Train's statistics in double. */
    double mean[F] = {0}, var[F] = {0};
    for (int64_t i = 0; i < train->n; i++)
        for (int f = 0; f < F; f++)
            mean[f] += train->features[i * F + f];
    for (int f = 0; f < F; f++)
        mean[f] /= (double)train->n;
    for (int64_t i = 0; i < train->n; i++)
        for (int f = 0; f < F; f++)
            var[f] += pow(train->features[i * F + f] - mean[f], 2);
    kiln_preprocess_step steps[] = {{KILN_PREPROCESS_STANDARDIZE_FEATURES, 0, 0}};
    kiln_preprocess *pp = make_pipeline(ctx, steps, 1);
    assert_false(kiln_preprocess_is_fitted(pp));
    int64_t dropped = -1;
    assert_int_equal(kiln_preprocess_fit_transform(pp, train, &dropped), KILN_OK);
    assert_int_equal(dropped, 0);
    assert_true(kiln_preprocess_is_fitted(pp));
    float m[F], s[F];
    assert_int_equal(kiln_preprocess_read_stat(pp, "preprocess.0.standardize_features.mean", m, F),
                     KILN_OK);
    assert_int_equal(kiln_preprocess_read_stat(pp, "preprocess.0.standardize_features.std", s, F),
                     KILN_OK);
    for (int f = 0; f < F; f++) {
        assert_true(fabs(m[f] - mean[f]) <= 1e-6 * fabs(mean[f]));
        double std = sqrt(var[f] / (double)train->n);
        assert_true(fabs(s[f] - std) <= 1e-6 * std);
    }
    /* Train is now centred and scaled. */
    for (int f = 0; f < F; f++) {
        double sum = 0, sq = 0;
        for (int64_t i = 0; i < train->n; i++) {
            sum += train->features[i * F + f];
            sq += pow(train->features[i * F + f], 2);
        }
        assert_true(fabs(sum / (double)train->n) < 1e-5);
        assert_true(fabs(sq / (double)train->n - 1) < 1e-4);
    }
    /* Test transformed with train's statistics, exactly. */
    assert_int_equal(kiln_preprocess_transform(pp, test, NULL), KILN_OK);
    double test_mean = 0;
    for (int64_t i = 0; i < test->n; i++) {
        for (int f = 0; f < F; f++) {
            float want = (raw_test->features[i * F + f] - m[f]) / s[f];
            assert_true(test->features[i * F + f] == want);
            test_mean += test->features[i * F + f];
        }
    }
    assert_true(test_mean / (double)(test->n * F) > 10); /* not re-centred on test */
    kiln_preprocess_destroy(pp);
    kiln_dataset_destroy(raw_test);
    kiln_dataset_destroy(test);
    kiln_dataset_destroy(train);
    kiln_context_destroy(ctx);
}

static void test_scale_then_global_standardize(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_dataset *train = make_dataset(ctx, "train", 100, 128, 100, 3);
    kiln_dataset *raw = copy_of(train);
    kiln_preprocess_step steps[] = {{KILN_PREPROCESS_SCALE, 1.0 / 255, 0},
                                    {KILN_PREPROCESS_STANDARDIZE, 0, 0}};
    kiln_preprocess *pp = make_pipeline(ctx, steps, 2);
    assert_int_equal(kiln_preprocess_n_stats(pp), 2);
    assert_string_equal(kiln_preprocess_stat_name(pp, 0), "preprocess.1.standardize.mean");
    assert_int_equal(kiln_preprocess_stat_size(pp, 0), 1);
    assert_null(kiln_preprocess_stat_name(pp, 2));
    assert_int_equal(kiln_preprocess_fit_transform(pp, train, NULL), KILN_OK);
    double sum = 0, sq = 0;
    int64_t total = raw->n * F;
    for (int64_t i = 0; i < total; i++)
        sum += raw->features[i] * (float)(1.0 / 255);
    double mean = sum / (double)total;
    for (int64_t i = 0; i < total; i++)
        sq += pow(raw->features[i] * (float)(1.0 / 255) - mean, 2);
    float m, s;
    assert_int_equal(kiln_preprocess_read_stat(pp, "preprocess.1.standardize.mean", &m, 1),
                     KILN_OK);
    assert_int_equal(kiln_preprocess_read_stat(pp, "preprocess.1.standardize.std", &s, 1), KILN_OK);
    assert_true(fabs(m - mean) < 1e-6);
    assert_true(fabs(s - sqrt(sq / (double)total)) < 1e-6);
    for (int64_t i = 0; i < total; i++)
        assert_true(train->features[i] == (raw->features[i] * (float)(1.0 / 255) - m) / s);
    kiln_preprocess_destroy(pp);
    kiln_dataset_destroy(raw);
    kiln_dataset_destroy(train);
    kiln_context_destroy(ctx);
}

static void test_minmax(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_dataset *train = make_dataset(ctx, "train", 40, 0, 3, 4);
    for (int64_t i = 0; i < train->n; i++)
        train->features[i * F + 2] = 7; /* constant */
    kiln_dataset *test = make_dataset(ctx, "test", 2, 0, 3, 5);
    test->features[0] = 100;
    test->features[2] = 8;
    kiln_preprocess_step steps[] = {{KILN_PREPROCESS_MINMAX, 0, 0}};
    kiln_preprocess *pp = make_pipeline(ctx, steps, 1);
    assert_int_equal(kiln_preprocess_fit_transform(pp, train, NULL), KILN_OK);
    float lo = 1, hi = 0;
    for (int64_t i = 0; i < train->n; i++) {
        lo = fminf(lo, train->features[i * F]);
        hi = fmaxf(hi, train->features[i * F]);
        assert_true(train->features[i * F + 2] == 0);
    }
    assert_true(lo == 0 && hi == 1);
    assert_int_equal(kiln_preprocess_transform(pp, test, NULL), KILN_OK);
    assert_true(test->features[0] > 1);     /* outside train's range stays outside */
    assert_true(test->features[2] == 1.0f); /* 8 - 7, the range 0 counted as 1 */
    kiln_preprocess_destroy(pp);
    kiln_dataset_destroy(test);
    kiln_dataset_destroy(train);
    kiln_context_destroy(ctx);
}

/* Train: feature 0 = 1, NaN, 3, 10 (mean 14/3, median 3); feature 1 = 4, 2, NaN, NaN (median
 * 3, even count); feature 2 = 5 everywhere. Test: NaN in each feature. */
static void set_missing(kiln_dataset *train, kiln_dataset *test)
{
    const float T[4][F] = {{1, 4, 5}, {NAN, 2, 5}, {3, NAN, 5}, {10, NAN, 5}};
    memcpy(train->features, T, sizeof T);
    const float S[2][F] = {{NAN, NAN, NAN}, {100, 200, 300}};
    memcpy(test->features, S, sizeof S);
}

static void test_imputation(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    const struct {
        kiln_preprocess_kind kind;
        double value;
        float fill[F];
    } cases[] = {
        {KILN_PREPROCESS_IMPUTE_MEAN, 0, {14.0f / 3, 3, 5}},
        {KILN_PREPROCESS_IMPUTE_MEDIAN, 0, {3, 3, 5}},
        {KILN_PREPROCESS_IMPUTE_CONSTANT, -1.5, {-1.5f, -1.5f, -1.5f}},
    };
    for (size_t c = 0; c < 3; c++) {
        kiln_dataset *train = make_dataset(ctx, "train", 4, 0, 1, 6);
        kiln_dataset *test = make_dataset(ctx, "test", 2, 0, 1, 7);
        set_missing(train, test);
        kiln_preprocess_step steps[] = {{cases[c].kind, cases[c].value, 0}};
        kiln_preprocess *pp = make_pipeline(ctx, steps, 1);
        assert_int_equal(kiln_preprocess_fit_transform(pp, train, NULL), KILN_OK);
        assert_int_equal(kiln_dataset_n_missing(train), 0);
        assert_true(train->features[3] == cases[c].fill[0]);
        assert_true(train->features[7] == cases[c].fill[1]);
        assert_true(train->features[0] == 1); /* present values untouched */
        assert_int_equal(kiln_preprocess_transform(pp, test, NULL), KILN_OK);
        for (int f = 0; f < F; f++) {
            assert_true(test->features[f] == cases[c].fill[f]); /* train's, not test's */
            assert_true(test->features[F + f] == (float)(100 * (f + 1)));
        }
        kiln_preprocess_destroy(pp);
        kiln_dataset_destroy(test);
        kiln_dataset_destroy(train);
    }
    /* Standardize ignores NaN when fitting and keeps it; a later step imputes. */
    kiln_dataset *train = make_dataset(ctx, "train", 4, 0, 1, 6);
    kiln_dataset *test = make_dataset(ctx, "test", 2, 0, 1, 7);
    set_missing(train, test);
    kiln_preprocess_step steps[] = {{KILN_PREPROCESS_STANDARDIZE_FEATURES, 0, 0},
                                    {KILN_PREPROCESS_IMPUTE_CONSTANT, 0, 0}};
    kiln_preprocess *pp = make_pipeline(ctx, steps, 2);
    assert_int_equal(kiln_preprocess_fit_transform(pp, train, NULL), KILN_OK);
    float mean[F];
    assert_int_equal(
        kiln_preprocess_read_stat(pp, "preprocess.0.standardize_features.mean", mean, F), KILN_OK);
    assert_true(fabsf(mean[0] - 14.0f / 3) < 1e-6f && mean[1] == 3 && mean[2] == 5);
    float std[F];
    assert_int_equal(kiln_preprocess_read_stat(pp, "preprocess.0.standardize_features.std", std, F),
                     KILN_OK);
    double m0 = 14.0 / 3, var0 = (pow(1 - m0, 2) + pow(3 - m0, 2) + pow(10 - m0, 2)) / 3;
    assert_true(fabs(std[0] - sqrt(var0)) < 1e-6 && std[1] == 1 && std[2] == 1);
    assert_true(train->features[3] == 0 && train->features[2] == 0);
    kiln_preprocess_destroy(pp);
    kiln_dataset_destroy(test);
    kiln_dataset_destroy(train);
    kiln_context_destroy(ctx);
}

static void test_drop_missing(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_dataset *train = make_dataset(ctx, "train", 4, 0, 1, 6);
    kiln_dataset *test = make_dataset(ctx, "test", 2, 0, 1, 7);
    set_missing(train, test);
    kiln_preprocess_step steps[] = {{KILN_PREPROCESS_DROP_MISSING, 0, 0}};
    kiln_preprocess *pp = make_pipeline(ctx, steps, 1);
    assert_int_equal(kiln_preprocess_n_stats(pp), 0);
    int64_t dropped = 0;
    assert_int_equal(kiln_preprocess_fit_transform(pp, train, &dropped), KILN_OK);
    assert_int_equal(dropped, 3);
    assert_int_equal(train->n, 1);
    assert_true(train->features[0] == 1 && train->features[1] == 4);
    assert_int_equal(train->classes[0], 0);
    assert_int_equal(kiln_preprocess_transform(pp, test, &dropped), KILN_OK);
    assert_int_equal(dropped, 1);
    assert_int_equal(test->n, 1);
    assert_true(test->features[0] == 100);
    assert_int_equal(test->classes[0], 1); /* the label moved with its row */
    /* Every row missing something: an error. */
    test->features[1] = NAN;
    assert_int_equal(kiln_preprocess_transform(pp, test, &dropped), KILN_ERR_INVALID_ARGUMENT);
    assert_string_equal(kiln_context_last_error(ctx),
                        "kiln_preprocess_transform: step 0 (drop_missing) would drop all 1 "
                        "samples of 'test': every one has a missing value; impute instead");
    kiln_preprocess_destroy(pp);
    kiln_dataset_destroy(test);
    kiln_dataset_destroy(train);
    kiln_context_destroy(ctx);
}

static void test_export_import(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_dataset *train = make_dataset(ctx, "train", 64, 3, 2, 8);
    train->features[5] = NAN;
    kiln_dataset *a = make_dataset(ctx, "a", 16, 4, 3, 9);
    a->features[0] = NAN;
    kiln_dataset *b = copy_of(a);
    kiln_preprocess_step steps[] = {
        {KILN_PREPROCESS_IMPUTE_MEDIAN, 0, 0}, {KILN_PREPROCESS_STANDARDIZE_FEATURES, 0, 0},
        {KILN_PREPROCESS_MINMAX, 0, 0},        {KILN_PREPROCESS_SCALE, 2, 0},
        {KILN_PREPROCESS_STANDARDIZE, 0, 0},
    };
    static const char *const NAMES[] = {
        "preprocess.0.impute_median.fill",
        "preprocess.1.standardize_features.mean",
        "preprocess.1.standardize_features.std",
        "preprocess.2.minmax.min",
        "preprocess.2.minmax.max",
        "preprocess.4.standardize.mean",
        "preprocess.4.standardize.std",
    };
    kiln_preprocess *one = make_pipeline(ctx, steps, 5);
    kiln_preprocess *two = make_pipeline(ctx, steps, 5);
    assert_int_equal(kiln_preprocess_fit_transform(one, train, NULL), KILN_OK);
    assert_int_equal(kiln_preprocess_n_stats(one), 7);
    for (size_t i = 0; i < 7; i++) {
        assert_string_equal(kiln_preprocess_stat_name(one, i), NAMES[i]);
        int64_t n = kiln_preprocess_stat_size(one, i);
        assert_int_equal(n, i < 5 ? F : 1);
        float values[F];
        assert_int_equal(kiln_preprocess_read_stat(one, NAMES[i], values, n), KILN_OK);
        assert_false(kiln_preprocess_is_fitted(two));
        assert_int_equal(kiln_preprocess_write_stat(two, NAMES[i], values, n), KILN_OK);
    }
    assert_true(kiln_preprocess_is_fitted(two));
    assert_int_equal(kiln_preprocess_transform(one, a, NULL), KILN_OK);
    assert_int_equal(kiln_preprocess_transform(two, b, NULL), KILN_OK);
    assert_memory_equal(a->features, b->features, (size_t)(a->n * F) * sizeof(float));
    assert_int_equal(kiln_dataset_n_missing(a), 0);
    kiln_preprocess_destroy(two);
    kiln_preprocess_destroy(one);
    kiln_dataset_destroy(b);
    kiln_dataset_destroy(a);
    kiln_dataset_destroy(train);
    kiln_context_destroy(ctx);
}

static void test_errors(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_dataset *train = make_dataset(ctx, "train", 8, 0, 1, 10);
    kiln_preprocess_step steps[] = {{KILN_PREPROCESS_SCALE, 3, 0},
                                    {KILN_PREPROCESS_IMPUTE_MEAN, 0, 0}};
    kiln_preprocess *pp = make_pipeline(ctx, steps, 2);
    assert_int_equal(kiln_preprocess_transform(pp, train, NULL), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), "the pipeline is not fitted");
    float v[F];
    assert_int_equal(kiln_preprocess_read_stat(pp, "preprocess.1.impute_mean.fill", v, F),
                     KILN_ERR_INVALID_ARGUMENT);
    assert_int_equal(kiln_preprocess_read_stat(pp, "preprocess.0.scale", v, F), KILN_ERR_NOT_FOUND);
    assert_string_equal(kiln_context_last_error(ctx),
                        "kiln_preprocess_read_stat: no preprocessing statistic is named "
                        "'preprocess.0.scale'; this pipeline has preprocess.1.impute_mean.fill");
    assert_int_equal(kiln_preprocess_write_stat(pp, "preprocess.1.impute_mean.fill", v, 2),
                     KILN_ERR_SHAPE);
    assert_string_equal(kiln_context_last_error(ctx),
                        "kiln_preprocess_write_stat: 'preprocess.1.impute_mean.fill' holds 3 "
                        "values; got 2");
    v[0] = v[1] = 0;
    v[2] = INFINITY;
    assert_int_equal(kiln_preprocess_write_stat(pp, "preprocess.1.impute_mean.fill", v, F),
                     KILN_ERR_INVALID_ARGUMENT);
    assert_false(kiln_preprocess_is_fitted(pp));
    /* A feature with no value in train, named when the dataset has names. */
    for (int64_t i = 0; i < train->n; i++)
        train->features[i * F + 1] = NAN;
    assert_int_equal(kiln_preprocess_fit_transform(pp, train, NULL), KILN_ERR_INVALID_ARGUMENT);
    assert_string_equal(kiln_context_last_error(ctx),
                        "kiln_preprocess_fit_transform: step 1 (impute_mean) has nothing to fit: "
                        "feature index 1 has no value in any of the 8 samples of 'train'");
    kiln_preprocess_destroy(pp);
    /* Another feature count. */
    kiln_preprocess *wide = NULL;
    assert_int_equal(kiln_preprocess_create(ctx, steps, 1, F + 1, &wide), KILN_OK);
    assert_int_equal(kiln_preprocess_fit_transform(wide, train, NULL), KILN_ERR_SHAPE);
    assert_string_equal(kiln_context_last_error(ctx),
                        "kiln_preprocess_fit_transform: 'train' has 3 features per sample; the "
                        "pipeline was made for 4");
    kiln_preprocess_destroy(wide);
    /* Bad steps. */
    kiln_preprocess_step bad[] = {{KILN_PREPROCESS_SCALE, NAN, 0}};
    assert_int_equal(kiln_preprocess_create(ctx, bad, 1, F, &pp), KILN_ERR_INVALID_ARGUMENT);
    assert_string_equal(kiln_context_last_error(ctx),
                        "kiln_preprocess_create: step 0 (scale) needs a finite value, got nan");
    assert_null(pp);
    bad[0].kind = (kiln_preprocess_kind)42;
    assert_int_equal(kiln_preprocess_create(ctx, bad, 1, F, &pp), KILN_ERR_INVALID_ARGUMENT);
    kiln_dataset_destroy(train);
    kiln_context_destroy(ctx);
}

/* Per-channel standardization: samples (C, H, W) = (3, 2, 5), channel c centred near 10^c with
 * its own spread, a few NaN; statistics and outputs against a reference in double. */
enum { PC_C = 3, PC_INNER = 10, PC_F = PC_C * PC_INNER };

static kiln_dataset *make_images(kiln_context *ctx, const char *name, int64_t n, uint32_t seed)
{
    kiln_dataset *ds = NULL;
    kiln_shape shape = kiln_shape_of(3, (int64_t[]){PC_C, 2, 5});
    assert_int_equal(kiln_dataset_create(ctx, name, n, &shape, KILN_LABELS_CLASS, NULL, &ds),
                     KILN_OK);
    uint32_t state = seed;
    for (int64_t i = 0; i < n * PC_F; i++) {
        int c = (int)(i % PC_F / PC_INNER);
        ds->features[i] = (float)(pow(10, c) + (c + 1) * 3.0 * uniform(&state));
    }
    ds->features[7] = NAN;         /* channel 0 */
    ds->features[PC_F + 25] = NAN; /* channel 2 */
    return ds;
}

static void test_standardize_channels(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_dataset *train = make_images(ctx, "train", 40, 21);
    kiln_dataset *test = make_images(ctx, "test", 9, 22);
    kiln_dataset *raw_train = copy_of(train), *raw_test = copy_of(test);
    double mean[PC_C] = {0}, var[PC_C] = {0}, count[PC_C] = {0};
    for (int pass = 0; pass < 2; pass++) {
        for (int64_t i = 0; i < train->n * PC_F; i++) {
            double x = train->features[i];
            int c = (int)(i % PC_F / PC_INNER);
            if (isnan(x))
                continue;
            if (pass == 0)
                mean[c] += x, count[c]++;
            else
                var[c] += (x - mean[c]) * (x - mean[c]);
        }
        for (int c = 0; pass == 0 && c < PC_C; c++)
            mean[c] /= count[c];
    }
    kiln_preprocess_step steps[] = {{KILN_PREPROCESS_STANDARDIZE_CHANNELS, 0, PC_C}};
    kiln_preprocess *pp = NULL;
    assert_int_equal(kiln_preprocess_create(ctx, steps, 1, PC_F, &pp), KILN_OK);
    assert_int_equal(kiln_preprocess_n_stats(pp), 2);
    assert_string_equal(kiln_preprocess_stat_name(pp, 0), "preprocess.0.standardize_channels.mean");
    assert_string_equal(kiln_preprocess_stat_name(pp, 1), "preprocess.0.standardize_channels.std");
    assert_int_equal(kiln_preprocess_stat_size(pp, 0), PC_C);
    assert_int_equal(kiln_preprocess_stat_size(pp, 1), PC_C);
    assert_int_equal(kiln_preprocess_fit_transform(pp, train, NULL), KILN_OK);
    float m[PC_C], s[PC_C];
    assert_int_equal(
        kiln_preprocess_read_stat(pp, "preprocess.0.standardize_channels.mean", m, PC_C), KILN_OK);
    assert_int_equal(
        kiln_preprocess_read_stat(pp, "preprocess.0.standardize_channels.std", s, PC_C), KILN_OK);
    double std[PC_C];
    for (int c = 0; c < PC_C; c++) {
        std[c] = sqrt(var[c] / count[c]);
        assert_true(fabs(m[c] - mean[c]) <= 1e-6 * fabs(mean[c]));
        assert_true(fabs(s[c] - std[c]) <= 1e-6 * std[c]);
    }
    assert_true(m[2] > 50 && m[0] < 2); /* one statistic per channel, not one overall */
    /* Train and test, element by element, against (x - mean) / std in double. */
    assert_int_equal(kiln_preprocess_transform(pp, test, NULL), KILN_OK);
    const kiln_dataset *got[] = {train, test}, *raw[] = {raw_train, raw_test};
    for (int d = 0; d < 2; d++) {
        for (int64_t i = 0; i < got[d]->n * PC_F; i++) {
            int c = (int)(i % PC_F / PC_INNER);
            double want = (raw[d]->features[i] - mean[c]) / std[c], x = got[d]->features[i];
            if (isnan(raw[d]->features[i]))
                assert_true(isnan(x));
            else if (fabs(x - want) > 1e-5 + 1e-5 * fabs(want))
                fail_msg("split %d value %lld: got %.9g, want %.9g", d, (long long)i, x, want);
        }
    }
    /* A fresh pipeline given the statistics transforms bit for bit like the fitted one. */
    kiln_preprocess *restored = NULL;
    assert_int_equal(kiln_preprocess_create(ctx, steps, 1, PC_F, &restored), KILN_OK);
    assert_int_equal(
        kiln_preprocess_write_stat(restored, "preprocess.0.standardize_channels.mean", m, PC_C),
        KILN_OK);
    assert_int_equal(
        kiln_preprocess_write_stat(restored, "preprocess.0.standardize_channels.std", s, PC_C),
        KILN_OK);
    kiln_dataset *again = copy_of(raw_test);
    assert_int_equal(kiln_preprocess_transform(restored, again, NULL), KILN_OK);
    for (int64_t i = 0; i < again->n * PC_F; i++)
        assert_true(memcmp(&again->features[i], &test->features[i], sizeof(float)) == 0);
    /* Errors: a channel count that does not divide the features; a channel with no value. */
    kiln_preprocess *bad = NULL;
    steps[0].channels = 4;
    assert_int_equal(kiln_preprocess_create(ctx, steps, 1, PC_F, &bad), KILN_ERR_INVALID_ARGUMENT);
    assert_string_equal(kiln_context_last_error(ctx),
                        "kiln_preprocess_create: step 0 (standardize_channels) needs a channel "
                        "count that divides the 30 features of a sample, got 4");
    assert_null(bad);
    steps[0].channels = PC_C;
    assert_int_equal(kiln_preprocess_create(ctx, steps, 1, PC_F, &bad), KILN_OK);
    for (int64_t i = 0; i < again->n; i++)
        for (int f = PC_INNER; f < 2 * PC_INNER; f++)
            again->features[i * PC_F + f] = NAN;
    assert_int_equal(kiln_preprocess_fit_transform(bad, again, NULL), KILN_ERR_INVALID_ARGUMENT);
    assert_string_equal(kiln_context_last_error(ctx),
                        "kiln_preprocess_fit_transform: step 0 (standardize_channels) has nothing "
                        "to fit: channel 1 has no value in any of the 9 samples of 'copy'");
    kiln_preprocess_destroy(bad);
    kiln_dataset_destroy(again);
    kiln_preprocess_destroy(restored);
    kiln_preprocess_destroy(pp);
    kiln_dataset_destroy(raw_test);
    kiln_dataset_destroy(raw_train);
    kiln_dataset_destroy(test);
    kiln_dataset_destroy(train);
    kiln_context_destroy(ctx);
}

static void test_out_of_memory(void **state)
{
    (void)state;
    kiln_preprocess_step steps[] = {{KILN_PREPROCESS_IMPUTE_MEDIAN, 0, 0},
                                    {KILN_PREPROCESS_STANDARDIZE_FEATURES, 0, 0},
                                    {KILN_PREPROCESS_DROP_MISSING, 0, 0}};
    for (long budget = 0;; budget++) {
        kiln_test_allocator a;
        kiln_context *ctx = kiln_test_counted_context(&a);
        kiln_dataset *train = make_dataset(ctx, "train", 20, 0, 1, 11);
        train->features[4] = NAN;
        a.budget = budget;
        kiln_preprocess *pp = NULL;
        kiln_status rc = kiln_preprocess_create(ctx, steps, 3, F, &pp);
        if (rc == KILN_OK)
            rc = kiln_preprocess_fit_transform(pp, train, NULL);
        a.budget = -1;
        kiln_preprocess_destroy(pp);
        kiln_dataset_destroy(train);
        kiln_context_destroy(ctx);
        if (kiln_test_oom_round_done(&a, rc))
            break;
    }
}

static void test_missing_count_sizes(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    const int64_t sizes[][2] = {{1, 1}, {1, 63}, {1, 64}, {1, 65}, {3, 45}, {7, 19}, {13, 77}};
    for (size_t c = 0; c < sizeof sizes / sizeof sizes[0]; c++) {
        int64_t n = sizes[c][0], f = sizes[c][1], total = n * f;
        kiln_shape shape = kiln_shape_of(1, &f);
        kiln_dataset *ds = NULL;
        assert_int_equal(kiln_dataset_create(ctx, "d", n, &shape, KILN_LABELS_NONE, NULL, &ds),
                         KILN_OK);
        uint32_t state_lcg = (uint32_t)c + 1;
        for (int64_t i = 0; i < total; i++) {
            state_lcg = state_lcg * 1664525u + 1013904223u;
            int pick = (int)(state_lcg >> 28);
            ds->features[i] = pick < 3 ? NAN : pick == 3 ? -NAN : pick == 4 ? INFINITY : (float)i;
        }
        const int64_t edges[] = {0, 63, 64, 127, 128, total - 1};
        for (size_t e = 0; e < sizeof edges / sizeof edges[0]; e++) {
            if (edges[e] < total)
                ds->features[edges[e]] = NAN;
        }
        int64_t expected = 0;
        for (int64_t i = 0; i < total; i++)
            expected += isnan(ds->features[i]) ? 1 : 0;
        assert_true(expected > 0);
        assert_int_equal(kiln_dataset_n_missing(ds), expected);
        kiln_dataset_destroy(ds);
    }
    kiln_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_missing_count_sizes),
        cmocka_unit_test(test_train_only_statistics),
        cmocka_unit_test(test_scale_then_global_standardize),
        cmocka_unit_test(test_minmax),
        cmocka_unit_test(test_imputation),
        cmocka_unit_test(test_drop_missing),
        cmocka_unit_test(test_export_import),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_standardize_channels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
