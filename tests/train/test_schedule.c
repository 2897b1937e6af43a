/*
 * Learning-rate schedules against hand-computed values: constant, step decay, cosine
 * annealing (including T = 1 and epochs past T), linear warm-up composed with each
 * (including 0 and 1 warm-up steps), and reduce-on-plateau traced report by report as
 * PyTorch's ReduceLROnPlateau would (relative and absolute thresholds, min and max modes,
 * patience 0, cooldown, the min_lr floor and eps, a NaN report); every bad field rejected
 * with a message naming it. Host arithmetic only: no device needed.
 */
#include <math.h>
#include <stdlib.h>

#include "kiln/train.h"
#include "support/kiln_test.h"

static void near(double got, double want, int line)
{
    if (!(fabs(got - want) <= 1e-12 * fabs(want)))
        fail_msg("line %d: got %.17g, want %.17g", line, got, want);
}
#define NEAR(got, want) near((got), (want), __LINE__)

static void test_constant_and_step(void **state)
{
    (void)state;
    kiln_schedule s;
    kiln_schedule_init(&s, KILN_SCHEDULE_CONSTANT, 0.1);
    NEAR(kiln_schedule_lr(&s, 0, 0), 0.1);
    NEAR(kiln_schedule_lr(&s, 100000, 500), 0.1);
    kiln_schedule_init(&s, KILN_SCHEDULE_STEP, 0.1);
    s.step_size = 3;
    s.gamma = 0.5;
    const double want[10] = {0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125};
    for (int e = 0; e < 10; e++)
        NEAR(kiln_schedule_lr(&s, 7 * e, e), want[e]);
    NEAR(kiln_schedule_lr(&s, -5, -2), 0.1); /* negative counts as 0 */
    s.step_size = 1;
    s.gamma = 0.1; /* the default gamma */
    NEAR(kiln_schedule_lr(&s, 0, 2), 0.001);
}

static void test_cosine(void **state)
{
    (void)state;
    kiln_schedule s;
    kiln_schedule_init(&s, KILN_SCHEDULE_COSINE, 0.1);
    s.t_max = 4;
    s.min_lr = 0.001;
    /* 0.001 + 0.099 (1 + cos(pi e / 4)) / 2, cos(pi/4) = 0.70710678118654752 */
    NEAR(kiln_schedule_lr(&s, 0, 0), 0.1);
    NEAR(kiln_schedule_lr(&s, 0, 1), 0.001 + 0.099 * 0.85355339059327376);
    NEAR(kiln_schedule_lr(&s, 0, 2), 0.0505);
    NEAR(kiln_schedule_lr(&s, 0, 3), 0.001 + 0.099 * 0.14644660940672624);
    NEAR(kiln_schedule_lr(&s, 0, 4), 0.001);
    NEAR(kiln_schedule_lr(&s, 0, 9), 0.001); /* held at the minimum past T */
    s.t_max = 1;
    NEAR(kiln_schedule_lr(&s, 0, 0), 0.1);
    NEAR(kiln_schedule_lr(&s, 0, 1), 0.001);
    NEAR(kiln_schedule_lr(&s, 0, 2), 0.001);
    s.min_lr = 0; /* the default */
    s.t_max = 2;
    NEAR(kiln_schedule_lr(&s, 0, 1), 0.05);
}

static void test_warmup(void **state)
{
    (void)state;
    kiln_schedule s;
    kiln_schedule_init(&s, KILN_SCHEDULE_STEP, 0.1);
    s.step_size = 3;
    s.gamma = 0.5;
    assert_int_equal(s.warmup_steps, 0);
    NEAR(kiln_schedule_lr(&s, 0, 0), 0.1); /* no warm-up: full rate from the first step */
    s.warmup_steps = 4;                    /* factors 1/5, 2/5, 3/5, 4/5, then 1 */
    NEAR(kiln_schedule_lr(&s, 0, 0), 0.02);
    NEAR(kiln_schedule_lr(&s, 2, 0), 0.06);
    NEAR(kiln_schedule_lr(&s, 3, 0), 0.08);
    NEAR(kiln_schedule_lr(&s, 4, 0), 0.1);
    NEAR(kiln_schedule_lr(&s, 2, 3), 0.03); /* composed with the decay */
    NEAR(kiln_schedule_lr(&s, 50, 3), 0.05);
    s.warmup_steps = 1;
    NEAR(kiln_schedule_lr(&s, 0, 0), 0.05);
    NEAR(kiln_schedule_lr(&s, 1, 0), 0.1);
    kiln_schedule_init(&s, KILN_SCHEDULE_COSINE, 0.1);
    s.t_max = 4;
    s.min_lr = 0.001;
    s.warmup_steps = 3;
    NEAR(kiln_schedule_lr(&s, 1, 2), 0.5 * 0.0505);
    kiln_schedule_init(&s, KILN_SCHEDULE_PLATEAU, 0.8);
    s.warmup_steps = 1;
    NEAR(kiln_schedule_lr(&s, 0, 0), 0.4);
    s.plateau_lr = 0.2;
    NEAR(kiln_schedule_lr(&s, 0, 7), 0.1);
    NEAR(kiln_schedule_lr(&s, 1, 7), 0.2);
}

/* Reports `values` in turn, checking after each whether the rate dropped and what it is. */
static void trace(kiln_schedule *s, int n, const double *values, const bool *drops,
                  const double *lrs, int line)
{
    for (int i = 0; i < n; i++) {
        bool dropped = kiln_schedule_report(s, values[i]);
        double lr = kiln_schedule_lr(s, 1000, i + 1);
        if (dropped != drops[i] || !(fabs(lr - lrs[i]) <= 1e-12 * lrs[i]))
            fail_msg("line %d, report %d (%g): dropped %d, lr %.17g; want %d, %.17g", line, i,
                     values[i], dropped, lr, drops[i], lrs[i]);
    }
}

static void test_plateau(void **state)
{
    (void)state;
    kiln_schedule s;
    /* Mode min, relative threshold 1e-4 (PyTorch's defaults), patience 2. 8.9995 is not below
     * 9 * (1 - 1e-4) = 8.9991, so it does not improve. */
    kiln_schedule_init(&s, KILN_SCHEDULE_PLATEAU, 1.0);
    assert_true(s.factor == 0.1 && s.patience == 10 && s.min_delta == 1e-4 && !s.absolute);
    s.factor = 0.5;
    s.patience = 2;
    const double v1[] = {10, 9, 8.9995, 9.2, 9.1, 8.9, 9, 9, 9};
    const bool d1[] = {false, false, false, false, true, false, false, false, true};
    const double l1[] = {1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25};
    trace(&s, 9, v1, d1, l1, __LINE__);
    NEAR(s.best, 8.9);

    /* Patience 0 reduces on the first report that does not improve; min_lr floors the rate,
     * and a change of eps or less is not made. */
    kiln_schedule_init(&s, KILN_SCHEDULE_PLATEAU, 1.0);
    s.patience = 0;
    const double v2[] = {5, 5, 6, 4, 7, 7};
    const bool d2[] = {false, true, true, false, false, false};
    const double l2[] = {1, 0.1, 0.05, 0.05, 0.05, 0.05};
    trace(&s, 2, v2, d2, l2, __LINE__); /* 5, then 5 again: no improvement */
    s.min_lr = 0.05;                    /* 0.1 * 0.1 is floored to 0.05 */
    trace(&s, 1, v2 + 2, d2 + 2, l2 + 2, __LINE__);
    trace(&s, 3, v2 + 3, d2 + 3, l2 + 3, __LINE__); /* at the floor: nothing to reduce */

    /* Cooldown: bad reports during it do not count. */
    kiln_schedule_init(&s, KILN_SCHEDULE_PLATEAU, 1.0);
    s.patience = 0;
    s.cooldown = 2;
    s.factor = 0.5;
    const double v3[] = {1, 2, 2, 2, 2, 2};
    const bool d3[] = {false, true, false, false, true, false};
    const double l3[] = {1, 0.5, 0.5, 0.5, 0.25, 0.25};
    trace(&s, 6, v3, d3, l3, __LINE__);

    /* Mode max with an absolute threshold of 0.1. */
    kiln_schedule_init(&s, KILN_SCHEDULE_PLATEAU, 0.2);
    s.maximize = true;
    s.absolute = true;
    s.min_delta = 0.1;
    s.patience = 1;
    s.factor = 0.5;
    const double v4[] = {0.5, 0.55, 0.65, 0.7, 0.7};
    const bool d4[] = {false, false, false, false, true};
    const double l4[] = {0.2, 0.2, 0.2, 0.2, 0.1};
    trace(&s, 5, v4, d4, l4, __LINE__);
    NEAR(s.best, 0.65);

    /* A NaN never improves, even on the first report. */
    kiln_schedule_init(&s, KILN_SCHEDULE_PLATEAU, 1.0);
    s.patience = 0;
    assert_true(kiln_schedule_report(&s, NAN));
    assert_false(s.has_best);

    /* Other kinds ignore reports. */
    kiln_schedule_init(&s, KILN_SCHEDULE_COSINE, 1.0);
    s.patience = 0;
    assert_false(kiln_schedule_report(&s, 1.0));
    assert_false(kiln_schedule_report(&s, 2.0));
    assert_int_equal(s.bad_epochs, 0);
}

static void expect_bad(kiln_context *ctx, const kiln_schedule *s, const char *needle)
{
    assert_int_equal(kiln_schedule_check(ctx, s), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), needle);
}

static void test_bad_fields(void **state)
{
    (void)state;
    kiln_context *ctx = NULL;
    assert_int_equal(kiln_context_create(NULL, &ctx), KILN_OK);
    kiln_schedule s, ok[4];
    for (int k = 0; k < 4; k++) {
        kiln_schedule_init(&ok[k], (kiln_schedule_kind)k, 0.1);
        assert_int_equal(kiln_schedule_check(ctx, &ok[k]), KILN_OK);
    }
    s = ok[0], s.kind = (kiln_schedule_kind)9;
    expect_bad(ctx, &s, "kind 9");
    s = ok[0], s.base_lr = 0;
    expect_bad(ctx, &s, "base_lr must be a finite number > 0, got 0");
    s = ok[0], s.base_lr = INFINITY;
    expect_bad(ctx, &s, "base_lr");
    s = ok[1], s.warmup_steps = -1;
    expect_bad(ctx, &s, "warmup_steps must be >= 0, got -1");
    s = ok[1], s.step_size = 0;
    expect_bad(ctx, &s, "step_size must be >= 1 epoch, got 0");
    s = ok[1], s.gamma = 0;
    expect_bad(ctx, &s, "gamma");
    s = ok[2], s.t_max = 0;
    expect_bad(ctx, &s, "t_max must be >= 1 epoch, got 0");
    s = ok[2], s.min_lr = -1;
    expect_bad(ctx, &s, "min_lr");
    s = ok[3], s.factor = 1;
    expect_bad(ctx, &s, "factor must be in (0, 1), got 1");
    s = ok[3], s.patience = -1;
    expect_bad(ctx, &s, "patience");
    s = ok[3], s.min_delta = NAN;
    expect_bad(ctx, &s, "min_delta");
    s = ok[3], s.cooldown = -2;
    expect_bad(ctx, &s, "cooldown must be >= 0, got -2");
    s = ok[3], s.min_lr = -0.5;
    expect_bad(ctx, &s, "min_lr");
    s = ok[3], s.eps = -1;
    expect_bad(ctx, &s, "eps");
    /* Fields of other kinds are not checked. */
    s = ok[0], s.t_max = 0, s.factor = 7;
    assert_int_equal(kiln_schedule_check(ctx, &s), KILN_OK);
    kiln_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_constant_and_step),
        cmocka_unit_test(test_cosine),
        cmocka_unit_test(test_warmup),
        cmocka_unit_test(test_plateau),
        cmocka_unit_test(test_bad_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
