/*
 * Metrics against hand-computed values: the registry (every name, its direction, an unknown
 * name listing the known ones); a 4-class confusion matrix over two batches with a class never
 * predicted and a class absent from labels and predictions (accuracy, scikit-learn's macro
 * precision, recall and f1 with zero_division=0), argmax ties and NaN scores; top-k with tied
 * scores (the lower index wins) and k = 1 equal to accuracy; mse, mae and r2 (batches merged,
 * a perfect predictor, constant and single targets, targets near 1e6, a million-term sum);
 * per-sample Dice and IoU with empty masks for smooth 1 and 0; bad configs and inputs with
 * their messages, and a rejected batch leaving the metric unchanged. No device needed.
 */
#include <math.h>
#include <stdlib.h>

#include "kiln/metrics.h"
#include "support/kiln_test.h"

static void near(double got, double want, double rtol, int line)
{
    if (!(fabs(got - want) <= rtol * fabs(want) + 1e-300))
        fail_msg("line %d: got %.17g, want %.17g", line, got, want);
}
#define NEAR(got, want) near((got), (want), 1e-14, __LINE__)

static kiln_context *context(void)
{
    kiln_context *ctx = NULL;
    assert_int_equal(kiln_context_create(NULL, &ctx), KILN_OK);
    return ctx;
}

static kiln_metric *make(kiln_context *ctx, kiln_metric_kind kind, int64_t n_classes, int64_t k)
{
    kiln_metric_config c;
    kiln_metric_config_init(&c, kind);
    c.n_classes = n_classes;
    c.k = k;
    kiln_metric *m = NULL;
    assert_int_equal(kiln_metric_create(ctx, &c, &m), KILN_OK);
    return m;
}

static double result(kiln_metric *m)
{
    double r = -1;
    assert_int_equal(kiln_metric_result(m, &r), KILN_OK);
    return r;
}

static void test_registry(void **state)
{
    (void)state;
    kiln_context *ctx = context();
    const char *names[] = {"accuracy", "top_k", "precision", "recall", "f1",
                           "mse",      "mae",   "r2",        "dice",   "iou"};
    const bool higher[] = {true, true, true, true, true, false, false, true, true, true};
    for (int k = 0; k < KILN_METRIC_N_KINDS; k++) {
        const kiln_metric_info *info = NULL;
        assert_int_equal(kiln_metric_find(ctx, names[k], &info), KILN_OK);
        assert_int_equal(info->kind, k);
        assert_ptr_equal(kiln_metric_info_of((kiln_metric_kind)k), info);
        assert_int_equal(info->higher_is_better, higher[k]);
    }
    const kiln_metric_info *info = NULL;
    assert_int_equal(kiln_metric_find(ctx, "acc", &info), KILN_ERR_NOT_FOUND);
    assert_contains(kiln_context_last_error(ctx), "unknown metric 'acc'");
    assert_contains(kiln_context_last_error(ctx),
                    "accuracy, top_k, precision, recall, f1, mse, mae, r2, dice, iou");
    assert_int_equal(kiln_metric_find(ctx, "Accuracy", &info), KILN_ERR_NOT_FOUND);
    assert_null(kiln_metric_info_of((kiln_metric_kind)KILN_METRIC_N_KINDS));
    assert_null(kiln_metric_info_of((kiln_metric_kind)-1));
    kiln_context_destroy(ctx);
}

/* Labels and scores for the classification tests, C = 4. Predicted classes (argmax):
 *   labels 0 0 0 1 | 1 2 2 0
 *   pred   0 1 0 1 | 1 0 1 0
 * Row 2 ties classes 0 and 1 (0 wins); row 4 has a NaN in class 1 (the NaN wins); row 7
 * ties all four (0 wins). Class 2 is never predicted; class 3 never occurs. Confusion (rows
 * true): [3 1 0 0; 0 2 0 0; 1 1 0 0; 0 0 0 0]. Per class (0, 1, 2): precision 3/4, 1/2, 0
 * (0/0); recall 3/4, 1, 0; f1 3/4, 2/3, 0. Class 3 is left out of the macro averages. */
static const float SCORES[8 * 4] = {
    2.0f, 1.0f, 0.0f, -1.0f, /* 0 */
    0.1f, 0.7f, 0.1f, 0.1f,  /* 1 */
    0.5f, 0.5f, 0.2f, 0.4f,  /* 0: tie */
    -3.f, -1.f, -2.f, -4.f,  /* 1 */
    0.9f, NAN,  0.1f, 0.3f,  /* 1: NaN */
    0.4f, 0.3f, 0.2f, 0.1f,  /* 0 */
    0.2f, 0.6f, 0.5f, 0.1f,  /* 1 */
    0.3f, 0.3f, 0.3f, 0.3f,  /* 0: four-way tie */
};
static const int32_t LABELS[8] = {0, 0, 0, 1, 1, 2, 2, 0};

static double classify(kiln_context *ctx, kiln_metric_kind kind, int64_t k)
{
    kiln_metric *m = make(ctx, kind, 4, k);
    assert_int_equal(kiln_metric_update_classes(m, SCORES, LABELS, 4, 4), KILN_OK);
    assert_int_equal(kiln_metric_update_classes(m, SCORES + 16, LABELS + 4, 4, 4), KILN_OK);
    assert_int_equal(kiln_metric_update_classes(m, SCORES, LABELS, 0, 4), KILN_OK);
    assert_int_equal(kiln_metric_n_samples(m), 8);
    double r = result(m);
    kiln_metric_destroy(m);
    return r;
}

static void test_classification(void **state)
{
    (void)state;
    kiln_context *ctx = context();
    NEAR(classify(ctx, KILN_METRIC_ACCURACY, 0), 5.0 / 8.0);
    NEAR(classify(ctx, KILN_METRIC_PRECISION, 0), (0.75 + 0.5 + 0.0) / 3.0);
    NEAR(classify(ctx, KILN_METRIC_RECALL, 0), (0.75 + 1.0 + 0.0) / 3.0);
    NEAR(classify(ctx, KILN_METRIC_F1, 0), (0.75 + 2.0 / 3.0 + 0.0) / 3.0);

    kiln_metric *m = make(ctx, KILN_METRIC_F1, 4, 0);
    assert_int_equal(kiln_metric_update_classes(m, SCORES, LABELS, 8, 4), KILN_OK);
    const int64_t want[16] = {3, 1, 0, 0, 0, 2, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0};
    assert_memory_equal(kiln_metric_get_confusion(m), want, sizeof want);
    /* A batch with one bad label is rejected whole, naming the row, and changes nothing. */
    const int32_t bad[2] = {1, 4};
    assert_int_equal(kiln_metric_update_classes(m, SCORES, bad, 2, 4), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), "label 4 of row 1 is outside [0, 4)");
    const int32_t negative[1] = {-1};
    assert_int_equal(kiln_metric_update_classes(m, SCORES, negative, 1, 4),
                     KILN_ERR_INVALID_ARGUMENT);
    assert_memory_equal(kiln_metric_get_confusion(m), want, sizeof want);
    assert_int_equal(kiln_metric_n_samples(m), 8);
    NEAR(result(m), (0.75 + 2.0 / 3.0) / 3.0);
    /* Reset forgets; one perfect row makes every macro average 1 over the one class seen. */
    kiln_metric_reset(m);
    assert_int_equal(kiln_metric_n_samples(m), 0);
    double r;
    assert_int_equal(kiln_metric_result(m, &r), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), "metric 'f1' has no samples");
    assert_int_equal(kiln_metric_update_classes(m, SCORES, LABELS, 1, 4), KILN_OK);
    NEAR(result(m), 1.0);
    kiln_metric_destroy(m);

    /* Top-k is not a confusion-matrix metric. */
    m = make(ctx, KILN_METRIC_TOP_K, 4, 2);
    assert_null(kiln_metric_get_confusion(m));
    kiln_metric_destroy(m);
    kiln_context_destroy(ctx);
}

/* Rows with ties: the label's rank is the number of classes that beat it, a tie won by the
 * lower index, a NaN beating every number. */
static void test_top_k(void **state)
{
    (void)state;
    kiln_context *ctx = context();
    const float scores[5 * 4] = {
        0.1f, 0.5f, 0.5f, 0.2f, /* label 2: class 1 ties and wins: rank 1 */
        0.1f, 0.5f, 0.5f, 0.2f, /* label 1: rank 0 */
        0.3f, 0.3f, 0.3f, 0.3f, /* label 3: rank 3 */
        0.3f, 0.3f, 0.3f, 0.3f, /* label 1: rank 1 */
        NAN,  0.2f, 0.9f, 0.1f, /* label 2: the NaN beats it: rank 1 */
    };
    const int32_t labels[5] = {2, 1, 3, 1, 2};
    /* hits for k = 1..4: ranks are 1, 0, 3, 1, 1 */
    const double want[4] = {1.0 / 5, 4.0 / 5, 4.0 / 5, 1.0};
    for (int k = 1; k <= 4; k++) {
        kiln_metric *m = make(ctx, KILN_METRIC_TOP_K, 4, k);
        assert_int_equal(kiln_metric_update_classes(m, scores, labels, 5, 4), KILN_OK);
        NEAR(result(m), want[k - 1]);
        kiln_metric_destroy(m);
    }
    /* Top-1 is accuracy, on these rows and on the confusion-matrix rows. */
    kiln_metric *acc = make(ctx, KILN_METRIC_ACCURACY, 4, 0);
    assert_int_equal(kiln_metric_update_classes(acc, scores, labels, 5, 4), KILN_OK);
    NEAR(result(acc), 1.0 / 5);
    kiln_metric_destroy(acc);
    NEAR(classify(ctx, KILN_METRIC_TOP_K, 1), classify(ctx, KILN_METRIC_ACCURACY, 0));
    /* Labels 0 0 0 1 1 2 2 0 against the tables above: the top two miss only row 5. */
    NEAR(classify(ctx, KILN_METRIC_TOP_K, 2), 7.0 / 8.0);
    kiln_context_destroy(ctx);
}

static double regress(kiln_context *ctx, kiln_metric_kind kind, const float *y, const float *t,
                      int64_t n, int64_t split)
{
    kiln_metric *m = make(ctx, kind, 0, 0);
    assert_int_equal(kiln_metric_update_values(m, y, t, split), KILN_OK);
    assert_int_equal(kiln_metric_update_values(m, y + split, t + split, n - split), KILN_OK);
    assert_int_equal(kiln_metric_n_samples(m), n);
    double r = result(m);
    kiln_metric_destroy(m);
    return r;
}

static void test_regression(void **state)
{
    (void)state;
    kiln_context *ctx = context();
    /* errors -0.5, 0, 1, -1; targets' mean 2.625, SS_tot 7.6875, SS_res 2.25 */
    const float y[4] = {1, 2, 3, 4}, t[4] = {1.5f, 2, 2, 5};
    for (int split = 0; split <= 4; split++) {
        NEAR(regress(ctx, KILN_METRIC_MSE, y, t, 4, split), 2.25 / 4);
        NEAR(regress(ctx, KILN_METRIC_MAE, y, t, 4, split), 2.5 / 4);
        NEAR(regress(ctx, KILN_METRIC_R2, y, t, 4, split), 29.0 / 41.0);
    }
    /* A perfect predictor; constant targets (SS_tot = 0) give 1 when exact, else 0; so does a
     * single target. */
    NEAR(regress(ctx, KILN_METRIC_R2, t, t, 4, 1), 1.0);
    const float c[3] = {0.1f, 0.1f, 0.1f}, off[3] = {0.1f, 0.1f, 0.2f};
    NEAR(regress(ctx, KILN_METRIC_R2, c, c, 3, 2), 1.0);
    NEAR(regress(ctx, KILN_METRIC_R2, off, c, 3, 2), 0.0);
    NEAR(regress(ctx, KILN_METRIC_R2, y, y, 1, 1), 1.0);
    NEAR(regress(ctx, KILN_METRIC_R2, y, t, 1, 0), 0.0);
    /* A predictor of the mean scores 0; one worse than it scores below 0. */
    const float mean[4] = {2.625f, 2.625f, 2.625f, 2.625f};
    NEAR(regress(ctx, KILN_METRIC_R2, mean, t, 4, 4), 0.0);
    assert_true(fabs(regress(ctx, KILN_METRIC_R2, mean, t, 4, 3)) < 1e-15);
    NEAR(regress(ctx, KILN_METRIC_R2, t + 0, mean, 4, 2), 0.0); /* constant targets, not exact */

    /* Targets 1e6 + k / 4 (k = 0..7) in batches of 3 and 5, predictions 1/4 high: SS_tot =
     * 42 / 16, SS_res = 8 / 16, r2 = 17 / 21. A sum of squares minus the squared sum
     * would lose about 1e-4 of SS_tot here. */
    float tt[8], yy[8];
    for (int k = 0; k < 8; k++) {
        tt[k] = 1e6f + 0.25f * (float)k;
        yy[k] = tt[k] + 0.25f;
    }
    NEAR(regress(ctx, KILN_METRIC_R2, yy, tt, 8, 3), 17.0 / 21.0);
    NEAR(regress(ctx, KILN_METRIC_MSE, yy, tt, 8, 3), 0.0625);

    /* A million errors of 0.1f: compensated, the mean is 0.1f to the last bits. */
    int64_t big = 1000000;
    float *ones = malloc((size_t)big * sizeof *ones), *tenth = malloc((size_t)big * sizeof *tenth);
    assert_non_null(ones);
    assert_non_null(tenth);
    for (int64_t i = 0; i < big; i++) {
        ones[i] = 1.0f;
        tenth[i] = 1.1f;
    }
    double err = (double)1.1f - 1.0;
    NEAR(regress(ctx, KILN_METRIC_MAE, tenth, ones, big, big / 3), err);
    NEAR(regress(ctx, KILN_METRIC_MSE, tenth, ones, big, 7), err * err);
    free(ones);
    free(tenth);

    /* A NaN makes the metric NaN. */
    const float nan_y[2] = {1, NAN};
    double r;
    kiln_metric *m = make(ctx, KILN_METRIC_R2, 0, 0);
    assert_int_equal(kiln_metric_update_values(m, nan_y, t, 2), KILN_OK);
    assert_int_equal(kiln_metric_result(m, &r), KILN_OK);
    assert_true(isnan(r));
    kiln_metric_destroy(m);
    assert_true(isnan(regress(ctx, KILN_METRIC_MSE, nan_y, t, 2, 1)));
    kiln_context_destroy(ctx);
}

static double segment(kiln_context *ctx, kiln_metric_kind kind, double smooth, double threshold,
                      const float *p, const float *t)
{
    kiln_metric_config c;
    kiln_metric_config_init(&c, kind);
    assert_true(c.smooth == 1.0 && c.threshold == 0.5);
    c.smooth = smooth;
    c.threshold = threshold;
    kiln_metric *m = NULL;
    assert_int_equal(kiln_metric_create(ctx, &c, &m), KILN_OK);
    assert_int_equal(kiln_metric_update_masks(m, p, t, 2, 4), KILN_OK);
    assert_int_equal(kiln_metric_update_masks(m, p + 8, t + 8, 1, 4), KILN_OK);
    assert_int_equal(kiln_metric_n_samples(m), 3);
    double r = result(m);
    kiln_metric_destroy(m);
    return r;
}

static void test_segmentation(void **state)
{
    (void)state;
    kiln_context *ctx = context();
    /* Three samples of four pixels, threshold 0.5 (strict: 0.5 is background):
     *   0: pred 1 1 0 0, true 1 0 1 0: I 1, P 2, T 2
     *   1: both empty (a NaN probability is background)
     *   2: pred empty, true 1 1 0 0: I 0, P 0, T 2 */
    const float p[12] = {0.9f, 0.6f, 0.2f, 0.5f, 0.1f, 0.0f, 0.5f, NAN, 0, 0, 0, 0};
    const float t[12] = {1, 0, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0};
    /* smooth 1: dice 3/5, 1, 1/3; iou 2/4, 1, 1/3 */
    NEAR(segment(ctx, KILN_METRIC_DICE, 1.0, 0.5, p, t), (0.6 + 1.0 + 1.0 / 3.0) / 3.0);
    NEAR(segment(ctx, KILN_METRIC_IOU, 1.0, 0.5, p, t), (0.5 + 1.0 + 1.0 / 3.0) / 3.0);
    /* smooth 0: dice 1/2, 1 (both empty, by definition), 0; iou 1/3, 1, 0. Pooled over the
     * batch instead, dice would be 2 / 6. */
    NEAR(segment(ctx, KILN_METRIC_DICE, 0.0, 0.5, p, t), 0.5);
    NEAR(segment(ctx, KILN_METRIC_IOU, 0.0, 0.5, p, t), 4.0 / 9.0);
    /* Threshold 0 on logits: sample 0 predicts all four pixels (I 2, P 4, T 2), sample 1
     * pixels 0 and 2 (0.1, 0.5; T 0), sample 2 none. */
    NEAR(segment(ctx, KILN_METRIC_DICE, 0.0, 0.0, p, t), (4.0 / 6.0 + 0.0 + 0.0) / 3.0);
    /* Perfect masks score 1 with any smooth. */
    NEAR(segment(ctx, KILN_METRIC_IOU, 0.0, 0.5, t, t), 1.0);
    NEAR(segment(ctx, KILN_METRIC_DICE, 5.0, 0.5, t, t), 1.0);
    kiln_context_destroy(ctx);
}

static void expect_create_error(kiln_context *ctx, const kiln_metric_config *c, const char *needle)
{
    kiln_metric *m = (kiln_metric *)1;
    assert_int_equal(kiln_metric_create(ctx, c, &m), KILN_ERR_INVALID_ARGUMENT);
    assert_null(m);
    assert_contains(kiln_context_last_error(ctx), needle);
}

static void test_bad_inputs(void **state)
{
    (void)state;
    kiln_context *ctx = context();
    kiln_metric_config c;
    kiln_metric_config_init(&c, KILN_METRIC_TOP_K);
    c.n_classes = 4;
    c.k = 0;
    expect_create_error(ctx, &c, "metric 'top_k': config.k must be >= 1, got 0");
    c.k = 5; /* the default */
    expect_create_error(ctx, &c, "config.k 5 exceeds config.n_classes 4");
    kiln_metric_config_init(&c, KILN_METRIC_ACCURACY);
    expect_create_error(ctx, &c, "metric 'accuracy': config.n_classes must be >= 2, got 0");
    c.kind = (kiln_metric_kind)17;
    expect_create_error(ctx, &c, "config.kind 17 is not a metric kind");
    kiln_metric_config_init(&c, KILN_METRIC_DICE);
    c.threshold = NAN;
    expect_create_error(ctx, &c, "metric 'dice': config.threshold must be finite");
    kiln_metric_config_init(&c, KILN_METRIC_IOU);
    c.smooth = -1;
    expect_create_error(ctx, &c, "metric 'iou': config.smooth must be a finite number >= 0");

    /* The wrong update for the metric, a count that does not fit, NULL arrays. */
    const float f[4] = {0, 1, 0, 1};
    const int32_t labels[2] = {0, 1};
    kiln_metric *mse = make(ctx, KILN_METRIC_MSE, 0, 0);
    assert_int_equal(kiln_metric_update_classes(mse, f, labels, 2, 2), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx),
                    "metric 'mse' takes predictions and targets (kiln_metric_update_values), "
                    "not class scores");
    assert_int_equal(kiln_metric_update_masks(mse, f, f, 1, 4), KILN_ERR_INVALID_ARGUMENT);
    assert_int_equal(kiln_metric_update_values(mse, f, f, -1), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), "count must be >= 0, got -1");
    assert_int_equal(kiln_metric_update_values(mse, NULL, f, 2), KILN_ERR_INVALID_ARGUMENT);
    assert_int_equal(kiln_metric_update_values(mse, NULL, NULL, 0), KILN_OK);
    kiln_metric_destroy(mse);

    kiln_metric *acc = make(ctx, KILN_METRIC_ACCURACY, 3, 0);
    assert_int_equal(kiln_metric_update_values(acc, f, f, 2), KILN_ERR_INVALID_ARGUMENT);
    assert_int_equal(kiln_metric_update_classes(acc, f, labels, 2, 2), KILN_ERR_SHAPE);
    assert_contains(kiln_context_last_error(ctx),
                    "scores (2, 2) have 2 columns, but the metric counts 3 classes");
    kiln_metric_destroy(acc);

    kiln_metric *dice = make(ctx, KILN_METRIC_DICE, 0, 0);
    assert_int_equal(kiln_metric_update_masks(dice, f, f, 1, 0), KILN_ERR_SHAPE);
    assert_contains(kiln_context_last_error(ctx), "masks (1, 0) need a sample size >= 1");
    double r;
    assert_int_equal(kiln_metric_result(dice, &r), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), "metric 'dice' has no samples");
    kiln_metric_destroy(dice);
    kiln_metric_destroy(NULL);

    /* Out of memory while creating: a clean failure, nothing leaked. */
    for (long budget = 0; budget < 2; budget++) {
        kiln_test_allocator a;
        kiln_test_allocator_init(&a, -1);
        kiln_context_options options = {.allocator = &a.allocator};
        kiln_context *small = NULL;
        assert_int_equal(kiln_context_create(&options, &small), KILN_OK);
        a.budget = budget;
        kiln_metric_config_init(&c, KILN_METRIC_F1);
        c.n_classes = 10;
        kiln_metric *m = NULL;
        assert_int_equal(kiln_metric_create(small, &c, &m), KILN_ERR_NO_MEMORY);
        assert_null(m);
        kiln_context_destroy(small);
        assert_int_equal(a.live, 0);
    }
    kiln_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),     cmocka_unit_test(test_classification),
        cmocka_unit_test(test_top_k),        cmocka_unit_test(test_regression),
        cmocka_unit_test(test_segmentation), cmocka_unit_test(test_bad_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
