/*
 * The config's `metrics` (runner/config.c) and the mode "auto" of monitors, no device needed:
 * every metric of the library's registry is accepted with its settings and defaults (top_k's
 * k, dice and iou's threshold by the loss and smooth), named by its column ("top3_accuracy"),
 * written into the effective config and read back equal, and config_equal names a changed
 * setting; the limit on the number of metrics; and for every metric, mode auto resolved by
 * the config (config_mode_for, and a monitor in early stopping, checkpoint and the plateau
 * schedule) agrees with the library's kiln_monitor_resolve_mode and the registry's direction.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "kiln/callbacks.h"
#include "support/kiln_test.h"

#define DATA "data:\n  format: idx\n  train: {images: a.gz, labels: b.gz}\n"
#define MODEL "model:\n  input: [4]\n  layers:\n    - dense: {units: 3}\n"

static kiln_status load(const char *text, config *out, config_error *err)
{
    return config_load_string(text, strlen(text), "m.yaml", "/cfg", NULL, 0, out, err);
}

static config load_ok(const char *text)
{
    config c;
    config_error err;
    if (load(text, &c, &err) != KILN_OK)
        fail_msg("%s\n%s", err.message, text);
    return c;
}

/* Writes the effective config, reads it back equal, and returns the text (free it). */
static char *round_trip(const config *c)
{
    config_error err;
    char *text = NULL, where[256] = "";
    assert_int_equal(config_write_string(c, &text, &err), KILN_OK);
    config back;
    if (config_load_string(text, strlen(text), c->source, "/elsewhere", NULL, 0, &back, &err) !=
        KILN_OK)
        fail_msg("the effective config does not load: %s\n%s", err.message, text);
    if (!config_equal(c, &back, where, sizeof where))
        fail_msg("read back, '%s' differs:\n%s", where, text);
    config_deinit(&back);
    return text;
}

static void check_columns(const config *c, const char *const *want)
{
    char column[CONFIG_MAX_COLUMN];
    for (int i = 0; i < c->n_metrics; i++)
        assert_string_equal(config_metric_column(&c->metrics[i], column, sizeof column), want[i]);
}

static void test_classification(void **state)
{
    (void)state;
    config c =
        load_ok(DATA MODEL "loss: softmax_cross_entropy\n"
                           "metrics: [accuracy, {top_k: 2}, top_k, precision, recall, f1]\n");
    const kiln_metric_kind kinds[] = {KILN_METRIC_ACCURACY,  KILN_METRIC_TOP_K,  KILN_METRIC_TOP_K,
                                      KILN_METRIC_PRECISION, KILN_METRIC_RECALL, KILN_METRIC_F1};
    const char *const columns[] = {"accuracy",  "top2_accuracy", "top5_accuracy",
                                   "precision", "recall",        "f1"};
    assert_int_equal(c.n_metrics, 6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(c.metrics[i].kind, kinds[i]);
    assert_int_equal(c.metrics[1].k, 2);
    assert_int_equal(c.metrics[2].k, 5); /* the library's default */
    check_columns(&c, columns);
    char *text = round_trip(&c);
    assert_non_null(strstr(text, "metrics: [accuracy, {top_k: 2}, {top_k: 5}, precision, recall, "
                                 "f1]"));
    free(text);

    config d =
        load_ok(DATA MODEL "loss: softmax_cross_entropy\n"
                           "metrics: [accuracy, {top_k: 2}, top_k, precision, recall, f1]\n");
    char where[256];
    d.metrics[1].k = 3;
    assert_false(config_equal(&c, &d, where, sizeof where));
    assert_string_equal(where, "metrics[1].top_k");
    d.metrics[1].k = 2;
    d.metrics[4].kind = KILN_METRIC_F1;
    assert_false(config_equal(&c, &d, where, sizeof where));
    assert_string_equal(where, "metrics[4]");
    config_deinit(&d);
    config_deinit(&c);
}

static void test_regression_and_masks(void **state)
{
    (void)state;
    config c = load_ok(DATA MODEL "loss: l1\nmetrics: [mse, mae, r2]\n");
    const char *const values[] = {"mse", "mae", "r2"};
    assert_int_equal(c.n_metrics, 3);
    check_columns(&c, values);
    free(round_trip(&c));
    config_deinit(&c);

    /* dice and iou threshold probabilities (loss dice) at 0.5 and logits at 0 by default. */
    c = load_ok(DATA MODEL "loss: dice\nmetrics: [dice, {iou: {smooth: 0}}]\n");
    assert_true(c.metrics[0].threshold == 0.5 && c.metrics[0].smooth == 1.0);
    assert_true(c.metrics[1].threshold == 0.5 && c.metrics[1].smooth == 0.0);
    char *text = round_trip(&c);
    assert_non_null(strstr(text, "{dice: {threshold: 0.5, smooth: 1}}"));
    free(text);
    config_deinit(&c);
    c = load_ok(DATA MODEL "loss: dice_bce\nmetrics: [{dice: {threshold: 0.25}}, iou]\n");
    assert_true(c.metrics[0].threshold == 0.25 && c.metrics[1].threshold == 0.0);
    config d = load_ok(DATA MODEL "loss: dice_bce\nmetrics: [{dice: {threshold: 0.25}}, iou]\n");
    char where[256];
    d.metrics[1].smooth = 2;
    assert_false(config_equal(&c, &d, where, sizeof where));
    assert_string_equal(where, "metrics[1].iou.smooth");
    config_deinit(&d);
    config_deinit(&c);
    c = load_ok(DATA MODEL "loss: bce_with_logits\nmetrics: [iou]\n");
    assert_true(c.metrics[0].threshold == 0.0);
    config_deinit(&c);
}

static void test_limit(void **state)
{
    (void)state;
    char text[2048];
    int n = snprintf(text, sizeof text, "%s%s", DATA MODEL, "loss: mse\nmetrics: [mse");
    for (int i = 1; i <= CONFIG_MAX_METRICS; i++)
        n += snprintf(text + n, sizeof text - (size_t)n, ", mae");
    snprintf(text + n, sizeof text - (size_t)n, "]\n");
    config c;
    config_error err;
    assert_int_equal(load(text, &c, &err), KILN_ERR_INVALID_ARGUMENT);
    assert_string_equal(err.message, "m.yaml:9:10: metrics: has 17 metrics; the limit is 16");
}

/* The loss that allows metric `kind`. */
static const char *loss_for(kiln_metric_kind kind)
{
    switch (kiln_metric_info_of(kind)->input) {
    case KILN_METRIC_INPUT_CLASSES:
        return "softmax_cross_entropy";
    case KILN_METRIC_INPUT_VALUES:
        return "mse";
    case KILN_METRIC_INPUT_MASKS:
        return "dice";
    }
    return "?";
}

static void test_auto_mode_agrees(void **state)
{
    (void)state;
    kiln_monitor_mode lib = KILN_MONITOR_AUTO;
    assert_int_equal(config_mode_for("val_loss"), CONFIG_MODE_MIN);
    assert_int_equal(config_mode_for("val_bogus"), CONFIG_MODE_AUTO);
    for (int k = 0; k < KILN_METRIC_N_KINDS; k++) {
        const kiln_metric_info *info = kiln_metric_info_of((kiln_metric_kind)k);
        config_mode want = info->higher_is_better ? CONFIG_MODE_MAX : CONFIG_MODE_MIN;
        char text[1024], column[CONFIG_MAX_COLUMN], val[CONFIG_MAX_COLUMN + 4];
        /* top_k written alone has k = 5: "top5_accuracy". */
        config_metric m = {.kind = info->kind, .k = 5};
        config_metric_column(&m, column, sizeof column);
        snprintf(val, sizeof val, "val_%s", column);
        snprintf(text, sizeof text,
                 DATA "  validation: {fraction: 0.2}\n" MODEL "loss: %s\nmetrics: [%s]\n"
                      "train:\n  schedule: {plateau: {monitor: %s}}\n"
                      "  callbacks:\n    early_stopping: {monitor: %s}\n"
                      "    checkpoint: {path: c.safetensors, monitor: %s}\n",
                 loss_for(info->kind), info->name, val, val, column);
        config c = load_ok(text);
        if (c.train.early_stopping.mode != want || c.train.checkpoint.mode != want ||
            c.train.schedule.mode != want || config_mode_for(column) != want)
            fail_msg("%s: mode auto does not follow the registry (higher is better: %d)", column,
                     (int)info->higher_is_better);
        assert_int_equal(kiln_monitor_resolve_mode(NULL, val, KILN_MONITOR_AUTO, &lib), KILN_OK);
        assert_int_equal(lib, info->higher_is_better ? KILN_MONITOR_MAX : KILN_MONITOR_MIN);
        assert_int_equal(kiln_monitor_resolve_mode(NULL, info->name, KILN_MONITOR_AUTO, &lib),
                         KILN_OK);
        assert_int_equal(lib, info->higher_is_better ? KILN_MONITOR_MAX : KILN_MONITOR_MIN);
        config_deinit(&c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classification),
        cmocka_unit_test(test_regression_and_masks),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_auto_mode_agrees),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
