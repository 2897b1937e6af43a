/*
 * Callbacks as scripted tables: per-epoch values of the monitor go in, and the epoch and
 * reason of the stop, the best epoch, the epochs reported as new bests and whether a restore
 * is due come out. Cases cover patience (0 and more), the min_delta boundary (exactly
 * min_delta is no improvement) in both modes, the baseline (never beaten, beaten late, with
 * min_delta, patience 0), start_from_epoch, NaN and infinities (before start_from_epoch too),
 * epochs exhausted and interruption, restore_best, and mode auto for every metric name. The
 * checkpoint decision is checked against the same tables (its saves with save_best_only are
 * exactly early stopping's new bests), with save_last, path templates and their errors,
 * and every bad config or record. No device needed.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kiln/callbacks.h"
#include "support/kiln_test.h"

static kiln_context *context(void)
{
    kiln_context *ctx = NULL;
    assert_int_equal(kiln_context_create(NULL, &ctx), KILN_OK);
    return ctx;
}

/* One scripted run: the monitor's values, epoch by epoch, and what must come out. */
typedef struct script {
    int line;
    const char *monitor; /* NULL: "val_loss", mode AUTO */
    kiln_monitor_mode mode;
    double min_delta;
    int64_t patience;
    bool has_baseline;
    double baseline;
    int64_t start_from_epoch;
    int n;
    double values[8];
    int stop_epoch;          /* -1: runs all n epochs, then the runner ends it */
    kiln_stop_reason reason; /* EPOCHS_EXHAUSTED when it ran out */
    int best_epoch;          /* -1: none */
    const char *new_best;    /* one character per epoch run: 'x' new best, '.' not */
    bool restore_due;        /* with restore_best on */
} script;

static const char *monitor_of(const script *s)
{
    return s->monitor != NULL ? s->monitor : "val_loss";
}

/* The record of epoch e: the monitor plus two other values, in a varying order. */
static kiln_epoch_record record_of(const script *s, int e, kiln_metric_value *values)
{
    values[0] = (kiln_metric_value){"loss", 0.5};
    values[1] = (kiln_metric_value){monitor_of(s), s->values[e]};
    values[2] = (kiln_metric_value){"lr", 0.001};
    return (kiln_epoch_record){.epoch = e, .values = values, .n_values = 3};
}

static void run_script(kiln_context *ctx, const script *s)
{
    kiln_early_stopping_config c;
    kiln_early_stopping_config_init(&c);
    c.monitor = monitor_of(s);
    c.mode = s->mode;
    c.min_delta = s->min_delta;
    c.patience = s->patience;
    c.has_baseline = s->has_baseline;
    c.baseline = s->baseline;
    c.start_from_epoch = s->start_from_epoch;
    c.restore_best = true;
    kiln_early_stopping es;
    if (kiln_early_stopping_init(ctx, &es, &c) != KILN_OK)
        fail_msg("line %d: init: %s", s->line, kiln_context_last_error(ctx));
    /* The checkpoint decision over the same values, saving only the best. */
    kiln_checkpoint_config cc;
    kiln_checkpoint_config_init(&cc);
    cc.path = "best-{epoch}.safetensors";
    cc.monitor = c.monitor;
    cc.mode = s->mode;
    cc.min_delta = s->min_delta;
    cc.save_best_only = true;
    kiln_checkpoint cp;
    assert_int_equal(kiln_checkpoint_init(ctx, &cp, &cc, NULL, 0), KILN_OK);

    char got_best[16] = "";
    int e = 0, stopped_at = -1;
    kiln_epoch_decision d = {0};
    for (; e < s->n; e++) {
        kiln_metric_value values[3];
        kiln_epoch_record r = record_of(s, e, values);
        if (kiln_early_stopping_update(ctx, &es, &r, &d) != KILN_OK)
            fail_msg("line %d, epoch %d: %s", s->line, e, kiln_context_last_error(ctx));
        got_best[e] = d.new_best ? 'x' : '.';
        static kiln_checkpoint_decision cd;
        assert_int_equal(kiln_checkpoint_update(ctx, &cp, &r, &cd), KILN_OK);
        /* The checkpoint has no start_from_epoch: with one, their bests differ. */
        if (s->start_from_epoch == 0 && (cd.save != d.new_best || cd.new_best != d.new_best))
            fail_msg("line %d, epoch %d: checkpoint save %d, early stopping new best %d", s->line,
                     e, cd.save, d.new_best);
        if (cd.save) {
            char want[64];
            snprintf(want, sizeof want, "best-%d.safetensors", e + 1);
            assert_string_equal(cd.path, want);
        }
        if (d.stop) {
            stopped_at = e;
            got_best[e + 1] = '\0';
            break;
        }
    }
    if (stopped_at < 0)
        kiln_early_stopping_end(&es, KILN_STOP_EPOCHS_EXHAUSTED);
    kiln_stop_reason want_reason = s->reason;
    if (stopped_at != s->stop_epoch || es.reason != want_reason ||
        (stopped_at >= 0 && d.reason != want_reason))
        fail_msg("line %d: stopped after epoch %d (%s), want %d (%s)", s->line, stopped_at,
                 kiln_stop_reason_name(es.reason), s->stop_epoch,
                 kiln_stop_reason_name(want_reason));
    if (kiln_early_stopping_best_epoch(&es) != s->best_epoch)
        fail_msg("line %d: best epoch %lld, want %d", s->line,
                 (long long)kiln_early_stopping_best_epoch(&es), s->best_epoch);
    if (strcmp(got_best, s->new_best) != 0)
        fail_msg("line %d: new bests '%s', want '%s'", s->line, got_best, s->new_best);
    if (kiln_early_stopping_restore_due(&es) != s->restore_due)
        fail_msg("line %d: restore due %d, want %d", s->line, kiln_early_stopping_restore_due(&es),
                 s->restore_due);
    /* Without restore_best nothing is ever due. */
    es.config.restore_best = false;
    assert_false(kiln_early_stopping_restore_due(&es));
}

#define MIN KILN_MONITOR_MIN
#define MAX KILN_MONITOR_MAX
#define PATIENCE KILN_STOP_PATIENCE
#define BASELINE KILN_STOP_BASELINE
#define NAN_STOP KILN_STOP_NAN
#define EXHAUSTED KILN_STOP_EPOCHS_EXHAUSTED

static void test_scripts(void **state)
{
    (void)state;
    kiln_context *ctx = context();
    /* Each row: line, the config (designated), the monitor's values; then the epoch it stops
     * after (-1: never), the reason, the best epoch, the new bests ('x' per epoch) and whether
     * a restore is due at the end. */
    /* clang-format off */
    const script scripts[] = {
        /* patience 2: two epochs without improvement, then stop; restore epoch 1 */
        {__LINE__, .patience = 2, .n = 5, {1.0, 0.9, 0.95, 0.92, 0.8},
         3, PATIENCE, 1, "xx..", true},
        /* patience 0: the first epoch that does not improve (an equal value) stops */
        {__LINE__, .n = 3, {1.0, 1.0, 0.5},
         1, PATIENCE, 0, "x.", true},
        /* a run that keeps improving ends with the epochs; the best is the last: no restore */
        {__LINE__, .patience = 1, .n = 3, {1.0, 0.9, 0.8},
         -1, EXHAUSTED, 2, "xxx", false},
        /* an improvement after a bad epoch resets the wait */
        {__LINE__, .patience = 2, .n = 6, {1.0, 1.1, 0.9, 1.2, 1.3, 0.1},
         4, PATIENCE, 2, "x.x..", true},
        /* min_delta 0.25: 0.75 is exactly min_delta below 1.0, not an improvement */
        {__LINE__, .min_delta = 0.25, .patience = 1, .n = 3, {1.0, 0.75, 0.5},
         1, PATIENCE, 0, "x.", true},
        /* 0.5 is more than min_delta below 1.0; 0.375 is not more than 0.25 below 0.5 */
        {__LINE__, .min_delta = 0.25, .patience = 1, .n = 3, {1.0, 0.5, 0.375},
         2, PATIENCE, 1, "xx.", true},
        /* the same boundary in max mode */
        {__LINE__, "val_accuracy", .min_delta = 0.25, .patience = 1, .n = 2, {0.5, 0.75},
         1, PATIENCE, 0, "x.", true},
        {__LINE__, "val_accuracy", .min_delta = 0.25, .patience = 1, .n = 3, {0.25, 0.625, 0.75},
         2, PATIENCE, 1, "xx.", true},
        /* baseline 0.5 never beaten: stops after `patience` epochs though each improves */
        {__LINE__, .patience = 2, .has_baseline = true, .baseline = 0.5, .n = 4,
         {0.9, 0.8, 0.7, 0.6},
         1, BASELINE, 1, "xx", false},
        /* beaten at epoch 1: from then on plain patience */
        {__LINE__, .patience = 2, .has_baseline = true, .baseline = 0.5, .n = 5,
         {0.9, 0.4, 0.45, 0.42, 0.1},
         3, PATIENCE, 1, "xx..", true},
        /* baseline with min_delta: 0.375 is exactly 0.125 below 0.5, which does not beat it */
        {__LINE__, .min_delta = 0.125, .patience = 1, .has_baseline = true, .baseline = 0.5,
         .n = 3, {0.375, 0.25, 0.0},
         0, BASELINE, 0, "x", false},
        /* patience 0 with a baseline: the first epoch must beat it */
        {__LINE__, .has_baseline = true, .baseline = 0.5, .n = 2, {0.6, 0.1},
         0, BASELINE, 0, "x", false},
        {__LINE__, .has_baseline = true, .baseline = 0.5, .n = 3, {0.4, 0.4, 0.1},
         1, PATIENCE, 0, "x.", true},
        /* a baseline in max mode */
        {__LINE__, "val_f1", .patience = 1, .has_baseline = true, .baseline = 0.5, .n = 3,
         {0.25, 0.75, 0.5},
         0, BASELINE, 0, "x", false},
        /* start_from_epoch 2: epochs 0 and 1 are ignored, however good; without it, not */
        {__LINE__, .patience = 1, .start_from_epoch = 2, .n = 5, {0.1, 0.2, 0.9, 1.0, 0.8},
         3, PATIENCE, 2, "..x.", true},
        {__LINE__, .patience = 1, .n = 5, {0.1, 0.2, 0.9, 1.0, 0.8},
         1, PATIENCE, 0, "x.", true},
        /* NaN and infinities stop at once, with the best kept for the restore */
        {__LINE__, .patience = 5, .n = 4, {1.0, 0.9, NAN, 0.1},
         2, NAN_STOP, 1, "xx.", true},
        {__LINE__, .patience = 5, .n = 3, {1.0, INFINITY, 0.1},
         1, NAN_STOP, 0, "x.", true},
        {__LINE__, .patience = 5, .n = 3, {1.0, -INFINITY, 0.1},
         1, NAN_STOP, 0, "x.", true},
        {__LINE__, "val_r2", .patience = 5, .n = 2, {0.5, INFINITY},
         1, NAN_STOP, 0, "x.", true},
        /* even before start_from_epoch; no best then, so nothing to restore */
        {__LINE__, .start_from_epoch = 3, .n = 2, {NAN, 1.0},
         0, NAN_STOP, -1, ".", false},
        /* explicit modes override the name */
        {__LINE__, "val_loss", MAX, .patience = 1, .n = 3, {1.0, 2.0, 1.5},
         2, PATIENCE, 1, "xx.", true},
        {__LINE__, "val_accuracy", MIN, .patience = 1, .n = 3, {0.9, 0.8, 0.85},
         2, PATIENCE, 1, "xx.", true},
        /* mode auto from the metric's direction: mse falls, dice rises */
        {__LINE__, "val_mse", .patience = 1, .n = 3, {1.0, 0.5, 0.75},
         2, PATIENCE, 1, "xx.", true},
        {__LINE__, "val_dice", .patience = 1, .n = 3, {0.5, 0.25, 0.75},
         1, PATIENCE, 0, "x.", true},
    };
    /* clang-format on */
    for (size_t i = 0; i < sizeof scripts / sizeof scripts[0]; i++)
        run_script(ctx, &scripts[i]);
    kiln_context_destroy(ctx);
}

static void test_mode_auto(void **state)
{
    (void)state;
    kiln_context *ctx = context();
    const char *min_names[] = {"loss",    "val_loss", "train_eval_loss", "mse",
                               "val_mse", "mae",      "test_mae"};
    const char *max_names[] = {"accuracy", "val_accuracy", "top_k",  "val_top_k", "precision",
                               "recall",   "val_f1",       "r2",     "val_r2",    "dice",
                               "val_dice", "iou",          "val_iou"};
    kiln_monitor_mode mode;
    for (size_t i = 0; i < sizeof min_names / sizeof *min_names; i++) {
        assert_int_equal(kiln_monitor_resolve_mode(ctx, min_names[i], KILN_MONITOR_AUTO, &mode),
                         KILN_OK);
        if (mode != KILN_MONITOR_MIN)
            fail_msg("'%s' resolved to %d, want MIN", min_names[i], mode);
    }
    for (size_t i = 0; i < sizeof max_names / sizeof *max_names; i++) {
        assert_int_equal(kiln_monitor_resolve_mode(ctx, max_names[i], KILN_MONITOR_AUTO, &mode),
                         KILN_OK);
        if (mode != KILN_MONITOR_MAX)
            fail_msg("'%s' resolved to %d, want MAX", max_names[i], mode);
    }
    /* Unknown names (including near misses) need an explicit mode. */
    const char *unknown[] = {"val_acc", "val_rmse", "foo", "val_", "f1_val"};
    for (size_t i = 0; i < sizeof unknown / sizeof *unknown; i++) {
        assert_int_equal(kiln_monitor_resolve_mode(ctx, unknown[i], KILN_MONITOR_AUTO, &mode),
                         KILN_ERR_INVALID_ARGUMENT);
        assert_contains(kiln_context_last_error(ctx), unknown[i]);
        assert_contains(kiln_context_last_error(ctx), "set mode min or max");
    }
    assert_int_equal(kiln_monitor_resolve_mode(ctx, "val_acc", KILN_MONITOR_MAX, &mode), KILN_OK);
    assert_int_equal(mode, KILN_MONITOR_MAX);
    assert_int_equal(kiln_monitor_resolve_mode(ctx, "x", (kiln_monitor_mode)7, &mode),
                     KILN_ERR_INVALID_ARGUMENT);
    kiln_early_stopping_config c;
    kiln_early_stopping_config_init(&c);
    c.monitor = "val_acc";
    kiln_early_stopping es;
    assert_int_equal(kiln_early_stopping_init(ctx, &es, &c), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), "mode auto cannot tell whether 'val_acc'");

    /* The tracker on its own: the first finite value is the best; NaN and inf never are. */
    kiln_tracker t;
    assert_int_equal(kiln_tracker_init(ctx, &t, "val_loss", KILN_MONITOR_AUTO, 0.5), KILN_OK);
    assert_false(t.has_best);
    assert_false(kiln_tracker_update(&t, 0, NAN));
    assert_false(kiln_tracker_update(&t, 1, INFINITY));
    assert_true(kiln_tracker_update(&t, 2, 3.0));
    assert_false(kiln_tracker_update(&t, 3, 2.5)); /* exactly min_delta */
    assert_true(kiln_tracker_update(&t, 4, 2.25));
    assert_false(kiln_tracker_update(&t, 5, -INFINITY));
    assert_true(t.best == 2.25 && t.best_epoch == 4);
    assert_false(kiln_tracker_beats(&t, 1.0, 1.5));
    assert_true(kiln_tracker_beats(&t, 0.75, 1.5));
    assert_int_equal(kiln_tracker_init(ctx, &t, "val_loss", KILN_MONITOR_MIN, -0.1),
                     KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), "min_delta must be a finite number >= 0");
    kiln_context_destroy(ctx);
}

static void feed(kiln_context *ctx, kiln_early_stopping *es, int64_t epoch, double value,
                 kiln_status want)
{
    kiln_metric_value v[2] = {{"loss", 1.0}, {"val_loss", value}};
    kiln_epoch_record r = {.epoch = epoch, .values = v, .n_values = 2};
    kiln_epoch_decision d;
    assert_int_equal(kiln_early_stopping_update(ctx, es, &r, &d), want);
}

static void test_ending(void **state)
{
    (void)state;
    kiln_context *ctx = context();
    kiln_early_stopping_config c;
    kiln_early_stopping_config_init(&c);
    assert_string_equal(c.monitor, "val_loss");
    assert_true(c.patience == 0 && c.min_delta == 0 && !c.has_baseline && !c.restore_best &&
                c.start_from_epoch == 0 && c.mode == KILN_MONITOR_AUTO);
    c.patience = 3;
    c.restore_best = true;
    c.min_delta = 0.001;
    kiln_early_stopping es;
    char line[256];

    /* Interrupted after epoch 2 with the best at epoch 1: reason kept, restore due. */
    assert_int_equal(kiln_early_stopping_init(ctx, &es, &c), KILN_OK);
    kiln_early_stopping_describe(&es, line, sizeof line);
    assert_string_equal(line, "still training; no best epoch yet");
    feed(ctx, &es, 0, 1.0, KILN_OK);
    feed(ctx, &es, 1, 0.5, KILN_OK);
    feed(ctx, &es, 2, 0.75, KILN_OK);
    kiln_early_stopping_end(&es, KILN_STOP_INTERRUPTED);
    kiln_early_stopping_end(&es, KILN_STOP_EPOCHS_EXHAUSTED); /* the first reason stays */
    assert_int_equal(es.reason, KILN_STOP_INTERRUPTED);
    assert_int_equal(kiln_early_stopping_best_epoch(&es), 1);
    assert_true(kiln_early_stopping_restore_due(&es));
    kiln_early_stopping_describe(&es, line, sizeof line);
    assert_string_equal(line, "stopped after epoch 3 (interrupted); best val_loss 0.5 at epoch 2");
    feed(ctx, &es, 3, 0.1, KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), "training already ended after epoch 3");

    /* Patience: the message says what happened, counting epochs from 1. */
    assert_int_equal(kiln_early_stopping_init(ctx, &es, &c), KILN_OK);
    const double v[] = {1.0, 0.5, 0.5, 0.9995, 0.4995};
    for (int e = 0; e < 5; e++)
        feed(ctx, &es, e, v[e], KILN_OK);
    assert_int_equal(es.reason, KILN_STOP_PATIENCE);
    assert_int_equal(es.stop_epoch, 4); /* 0.4995 is not more than 0.001 below 0.5 */
    kiln_early_stopping_end(&es, KILN_STOP_EPOCHS_EXHAUSTED);
    assert_int_equal(es.reason, KILN_STOP_PATIENCE);
    size_t need = kiln_early_stopping_describe(&es, line, sizeof line);
    assert_string_equal(line, "stopped after epoch 5 (patience): val_loss did not improve by "
                              "more than 0.001 for 3 epochs; best val_loss 0.5 at epoch 2");
    assert_int_equal(need, strlen(line));
    char tiny[8];
    assert_int_equal(kiln_early_stopping_describe(&es, tiny, sizeof tiny), need);
    assert_string_equal(tiny, "stopped");

    /* NaN and baseline messages. */
    assert_int_equal(kiln_early_stopping_init(ctx, &es, &c), KILN_OK);
    feed(ctx, &es, 0, 0.5, KILN_OK);
    feed(ctx, &es, 1, NAN, KILN_OK);
    kiln_early_stopping_describe(&es, line, sizeof line);
    assert_string_equal(line, "stopped after epoch 2 (nan): val_loss was nan; best val_loss 0.5 "
                              "at epoch 1");
    c.has_baseline = true;
    c.baseline = 0.25;
    c.patience = 1;
    assert_int_equal(kiln_early_stopping_init(ctx, &es, &c), KILN_OK);
    feed(ctx, &es, 0, 0.5, KILN_OK);
    kiln_early_stopping_describe(&es, line, sizeof line);
    assert_string_equal(line, "stopped after epoch 1 (baseline): val_loss did not beat the "
                              "baseline 0.25 within 1 epochs; best val_loss 0.5 at epoch 1");

    const char *names[] = {"none", "patience",    "epochs_exhausted",
                           "nan",  "interrupted", "baseline"};
    for (int r = 0; r < 6; r++)
        assert_string_equal(kiln_stop_reason_name((kiln_stop_reason)r), names[r]);
    assert_string_equal(kiln_stop_reason_name((kiln_stop_reason)42), "unknown");
    kiln_context_destroy(ctx);
}

static void expect_init_error(kiln_context *ctx, const kiln_early_stopping_config *c,
                              const char *needle)
{
    kiln_early_stopping es;
    assert_int_equal(kiln_early_stopping_init(ctx, &es, c), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), needle);
}

static void test_bad_early_stopping(void **state)
{
    (void)state;
    kiln_context *ctx = context();
    kiln_early_stopping_config ok, c;
    kiln_early_stopping_config_init(&ok);
    c = ok, c.patience = -1;
    expect_init_error(ctx, &c, "config.patience must be >= 0 epochs, got -1");
    c = ok, c.start_from_epoch = -2;
    expect_init_error(ctx, &c, "config.start_from_epoch must be >= 0, got -2");
    c = ok, c.min_delta = -0.5;
    expect_init_error(ctx, &c, "config.min_delta must be a finite number >= 0, got -0.5");
    c = ok, c.has_baseline = true, c.baseline = NAN;
    expect_init_error(ctx, &c, "config.baseline must be finite");
    c = ok, c.monitor = NULL;
    expect_init_error(ctx, &c, "config.monitor must be named");

    kiln_early_stopping es;
    assert_int_equal(kiln_early_stopping_init(ctx, &es, &ok), KILN_OK);
    assert_int_equal(kiln_early_stopping_best_epoch(&es), -1);
    feed(ctx, &es, 2, 1.0, KILN_OK);
    feed(ctx, &es, 2, 1.0, KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), "epoch 3 does not follow epoch 3");
    feed(ctx, &es, -1, 1.0, KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), "record.epoch must be >= 0");
    kiln_metric_value v[2] = {{"loss", 1.0}, {"accuracy", 0.5}};
    kiln_epoch_record r = {.epoch = 3, .values = v, .n_values = 2};
    kiln_epoch_decision d;
    assert_int_equal(kiln_early_stopping_update(ctx, &es, &r, &d), KILN_ERR_NOT_FOUND);
    assert_contains(kiln_context_last_error(ctx),
                    "'val_loss' is not in the record of epoch 4, which has: loss, accuracy");
    double x = 0;
    assert_int_equal(kiln_epoch_record_find(ctx, &r, "accuracy", &x), KILN_OK);
    assert_true(x == 0.5);
    r.n_values = 0;
    assert_int_equal(kiln_epoch_record_find(ctx, &r, "accuracy", &x), KILN_ERR_NOT_FOUND);
    assert_contains(kiln_context_last_error(ctx), "which has: (nothing)");
    assert_int_equal(kiln_early_stopping_update(ctx, &es, NULL, &d), KILN_ERR_INVALID_ARGUMENT);
    /* A record with more names than a message holds: the list ends in an ellipsis. */
    static char long_names[100][40];
    static kiln_metric_value many[100];
    for (int i = 0; i < 100; i++) {
        snprintf(long_names[i], sizeof long_names[i], "a_rather_long_metric_name_%d", i);
        many[i] = (kiln_metric_value){long_names[i], 1.0};
    }
    kiln_epoch_record big = {.epoch = 3, .values = many, .n_values = 100};
    assert_int_equal(kiln_early_stopping_update(ctx, &es, &big, &d), KILN_ERR_NOT_FOUND);
    const char *message = kiln_context_last_error(ctx);
    assert_contains(message, "which has: a_rather_long_metric_name_0, ");
    assert_true(strlen(message) < 700 && strcmp(message + strlen(message) - 5, ", ...") == 0);
    kiln_checkpoint_config cc;
    kiln_checkpoint_config_init(&cc);
    cc.path = "{nope}";
    const char *names[100];
    for (int i = 0; i < 100; i++)
        names[i] = long_names[i];
    kiln_checkpoint cp;
    assert_int_equal(kiln_checkpoint_init(ctx, &cp, &cc, names, 100), KILN_ERR_INVALID_ARGUMENT);
    message = kiln_context_last_error(ctx);
    assert_contains(message, "unknown placeholder {nope}; the known placeholders are {epoch}, "
                             "{a_rather_long_metric_name_0}");
    assert_true(strcmp(message + strlen(message) - 5, ", ...") == 0);
    kiln_context_destroy(ctx);
}

static void test_templates(void **state)
{
    (void)state;
    kiln_context *ctx = context();
    kiln_metric_value v[3] = {{"loss", 0.5}, {"val_loss", 0.123456}, {"val_accuracy", 0.875}};
    kiln_epoch_record r = {.epoch = 4, .values = v, .n_values = 3};
    const char *names[] = {"loss", "val_loss", "val_accuracy"};
    char out[128];
    const struct {
        const char *text, *want;
    } good[] = {
        {"runs/ep{epoch:03d}-{val_loss:.3f}-{val_accuracy}.st", "runs/ep005-0.123-0.875.st"},
        {"{epoch}", "5"},
        {"{{epoch}} {{}}", "{epoch} {}"},
        {"{val_loss:e}", "1.234560e-01"},
        {"{val_loss:10.2f}|", "      0.12|"},
        {"{val_loss:08.4f}", "000.1235"},
        {"{epoch:4d}", "   5"},
        {"plain.safetensors", "plain.safetensors"},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        assert_int_equal(kiln_path_template_check(ctx, good[i].text, names, 3), KILN_OK);
        assert_int_equal(kiln_path_template_expand(ctx, good[i].text, &r, out, sizeof out),
                         KILN_OK);
        assert_string_equal(out, good[i].want);
    }
    const struct {
        const char *text, *needle;
    } bad[] = {
        {"runs/{val_acc}.st", "column 6: unknown placeholder {val_acc}; the known placeholders "
                              "are {epoch}, {loss}, {val_loss}, {val_accuracy}"},
        {"runs/{epoch.st", "column 6: a '{' without its '}'"},
        {"runs/{ep{och}.st", "column 6: a '{' without its '}'"},
        {"runs/epoch}.st", "column 11: a '}' without its '{'"},
        {"a{}", "column 2: a placeholder needs a name"},
        {"{:d}", "a placeholder needs a name"},
        {"{epoch:.2f}", "bad format spec '.2f' for {epoch}"},
        {"{epoch:f}", "bad format spec 'f' for {epoch}"},
        {"{val_loss:d}", "bad format spec 'd' for {val_loss}; use [0][width][.precision][type] "
                         "with type f, e or g"},
        {"{val_loss:.2x}", "bad format spec '.2x'"},
        {"{val_loss:.}", "needs a precision"},
        {"{val_loss:.30f}", "precision <= 17"},
        {"{val_loss:100f}", "width <= 64"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(kiln_path_template_check(ctx, bad[i].text, names, 3),
                         KILN_ERR_INVALID_ARGUMENT);
        assert_contains(kiln_context_last_error(ctx), bad[i].needle);
        assert_contains(kiln_context_last_error(ctx), bad[i].text);
        strcpy(out, "junk");
        assert_int_equal(kiln_path_template_expand(ctx, bad[i].text, &r, out, sizeof out),
                         KILN_ERR_INVALID_ARGUMENT);
        assert_contains(kiln_context_last_error(ctx), bad[i].needle);
        assert_string_equal(out, "");
    }
    /* Without names only the syntax is checked; the record decides at expansion. */
    assert_int_equal(kiln_path_template_check(ctx, "{anything}", NULL, 0), KILN_OK);
    /* Too long for the buffer. */
    char small[8];
    assert_int_equal(kiln_path_template_expand(ctx, "ckpt-{epoch:03d}.st", &r, small, sizeof small),
                     KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), "expands to 11 characters, more than the 7");
    assert_int_equal(kiln_path_template_expand(ctx, "ckpt-{epoch}", &r, small, sizeof small),
                     KILN_OK);
    assert_string_equal(small, "ckpt-5");
    /* NaN values print as nan; huge values fit. */
    v[1].value = NAN;
    assert_int_equal(kiln_path_template_expand(ctx, "{val_loss}", &r, out, sizeof out), KILN_OK);
    assert_string_equal(out, "nan");
    v[1].value = 1e300;
    char wide[512];
    assert_int_equal(kiln_path_template_expand(ctx, "{val_loss:.17f}", &r, wide, sizeof wide),
                     KILN_OK);
    assert_int_equal(strlen(wide), 301 + 1 + 17);
    kiln_context_destroy(ctx);
}

static void test_checkpoint(void **state)
{
    (void)state;
    kiln_context *ctx = context();
    const char *names[] = {"loss", "val_loss", "val_accuracy"};
    kiln_checkpoint_config c;
    kiln_checkpoint_config_init(&c);
    assert_true(c.monitor != NULL && strcmp(c.monitor, "val_loss") == 0 && !c.save_best_only &&
                !c.save_last && c.path == NULL && c.mode == KILN_MONITOR_AUTO);
    c.path = "ckpt/e{epoch:02d}-{val_loss:.2f}.safetensors";
    c.save_last = true;
    c.last_path = "ckpt/last.safetensors";
    kiln_checkpoint cp;
    assert_int_equal(kiln_checkpoint_init(ctx, &cp, &c, names, 3), KILN_OK);
    /* Without save_best_only every epoch saves; new_best still follows the tracker. */
    static kiln_checkpoint_decision d;
    const double losses[3] = {0.5, 0.75, 0.25};
    const bool best[3] = {true, false, true};
    const char *paths[3] = {"ckpt/e01-0.50.safetensors", "ckpt/e02-0.75.safetensors",
                            "ckpt/e03-0.25.safetensors"};
    for (int e = 0; e < 3; e++) {
        kiln_metric_value v[3] = {{"loss", 1.0}, {"val_loss", losses[e]}, {"val_accuracy", 0.5}};
        kiln_epoch_record r = {.epoch = e, .values = v, .n_values = 3};
        assert_int_equal(kiln_checkpoint_update(ctx, &cp, &r, &d), KILN_OK);
        assert_true(d.save && d.save_last && d.new_best == best[e]);
        assert_string_equal(d.path, paths[e]);
        assert_string_equal(d.last_path, "ckpt/last.safetensors");
    }
    /* The monitor missing from a record: fine without save_best_only, an error with it. */
    kiln_metric_value only_loss[1] = {{"loss", 1.0}};
    kiln_epoch_record r = {.epoch = 3, .values = only_loss, .n_values = 1};
    c.path = "ckpt/e{epoch}.safetensors";
    assert_int_equal(kiln_checkpoint_init(ctx, &cp, &c, NULL, 0), KILN_OK);
    assert_int_equal(kiln_checkpoint_update(ctx, &cp, &r, &d), KILN_OK);
    assert_true(d.save && !d.new_best);
    assert_string_equal(d.path, "ckpt/e4.safetensors");
    assert_int_equal(kiln_checkpoint_update(ctx, &cp, &r, &d), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), "epoch 4 does not follow epoch 4");
    c.save_best_only = true;
    c.save_last = false;
    assert_int_equal(kiln_checkpoint_init(ctx, &cp, &c, NULL, 0), KILN_OK);
    assert_int_equal(kiln_checkpoint_update(ctx, &cp, &r, &d), KILN_ERR_NOT_FOUND);
    assert_contains(kiln_context_last_error(ctx), "'val_loss' is not in the record of epoch 4");

    /* A template that fails at expansion leaves the state as it was: the epoch can be judged
     * again, and the best is not taken. */
    c.path = "ckpt/{val_acc}.safetensors";
    assert_int_equal(kiln_checkpoint_init(ctx, &cp, &c, NULL, 0), KILN_OK);
    kiln_metric_value v[2] = {{"val_loss", 0.5}, {"val_accuracy", 0.5}};
    r = (kiln_epoch_record){.epoch = 0, .values = v, .n_values = 2};
    assert_int_equal(kiln_checkpoint_update(ctx, &cp, &r, &d), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), "unknown placeholder {val_acc}");
    assert_false(cp.tracker.has_best);
    assert_int_equal(cp.last_epoch, -1);
    v[1].name = "val_acc";
    assert_int_equal(kiln_checkpoint_update(ctx, &cp, &r, &d), KILN_OK);
    assert_true(d.save && d.new_best && !d.save_last);
    assert_string_equal(d.path, "ckpt/0.5.safetensors");

    /* Config errors, caught before training starts. */
    kiln_checkpoint_config ok;
    kiln_checkpoint_config_init(&ok);
    ok.path = "best.safetensors";
    ok.save_best_only = true;
    kiln_checkpoint_config b = ok;
    b.path = "e{epoch}-{val_acc}.st";
    assert_int_equal(kiln_checkpoint_init(ctx, &cp, &b, names, 3), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), "unknown placeholder {val_acc}");
    b = ok, b.monitor = "val_dice";
    assert_int_equal(kiln_checkpoint_init(ctx, &cp, &b, names, 3), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), "config.monitor 'val_dice' is not among the "
                                                  "values each epoch records: loss, val_loss");
    b = ok, b.save_last = true;
    assert_int_equal(kiln_checkpoint_init(ctx, &cp, &b, names, 3), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), "config.save_last needs config.last_path");
    b.last_path = "last-{bad}.st";
    assert_int_equal(kiln_checkpoint_init(ctx, &cp, &b, names, 3), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), "unknown placeholder {bad}");
    b = ok, b.path = NULL;
    assert_int_equal(kiln_checkpoint_init(ctx, &cp, &b, names, 3), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), "config.path must be set");
    b = ok, b.monitor = "val_accuracy", b.min_delta = NAN;
    assert_int_equal(kiln_checkpoint_init(ctx, &cp, &b, names, 3), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), "min_delta");
    b = ok, b.monitor = "val_accuracy", b.save_best_only = false, b.mode = KILN_MONITOR_AUTO;
    assert_int_equal(kiln_checkpoint_init(ctx, &cp, &b, names, 3), KILN_OK);
    assert_int_equal(cp.tracker.mode, KILN_MONITOR_MAX);
    b.monitor = "val_score";
    assert_int_equal(kiln_checkpoint_init(ctx, &cp, &b, names, 3), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), "set mode min or max");
    kiln_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scripts),   cmocka_unit_test(test_mode_auto),
        cmocka_unit_test(test_ending),    cmocka_unit_test(test_bad_early_stopping),
        cmocka_unit_test(test_templates), cmocka_unit_test(test_checkpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
