/*
 * Parameter initialisation: He and Xavier, uniform and normal, follow torch.nn.init's
 * variances (He 2/fan_in, Xavier 2/(fan_in + fan_out)) with the uniform ones inside their
 * bounds; values depend on (seed, parameter name) only, so the same seed gives the same
 * parameter in a differently built graph, and another seed gives other values; constants and
 * buffers hold their fill value. Host-side statistics over 65536 values, 5-sigma bounds.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/model.h"
#include "support/kiln_test.h"

enum { FAN_IN = 256, FAN_OUT = 256 };

static void check_init(kiln_device *dev, kiln_context *ctx, kiln_init_kind kind, double var,
                       double bound)
{
    kiln_graph *g = NULL;
    assert_int_equal(kiln_graph_create(ctx, &g), KILN_OK);
    kiln_shape ws = {2, {FAN_IN, FAN_OUT}};
    kiln_init init = {kind, 0, 0, 1};
    kiln_value w;
    assert_int_equal(kiln_graph_parameter(g, "w", &ws, &init, &w), KILN_OK);
    kiln_model *m = NULL;
    assert_int_equal(kiln_model_create(g, dev, 99, &m), KILN_OK);
    int64_t n = FAN_IN * FAN_OUT;
    float *v = malloc((size_t)n * sizeof *v);
    assert_int_equal(kiln_model_read_state(m, "w", v, n), KILN_OK);
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < n; i++) {
        sum += v[i];
        sq += (double)v[i] * v[i];
        if (bound > 0 && fabs(v[i]) > bound)
            fail_msg("init %d: |%g| exceeds the bound %g", kind, (double)v[i], bound);
    }
    double mean = sum / (double)n, variance = sq / (double)n - mean * mean;
    /* The sample mean has standard deviation sqrt(var / n); the variance estimate about
     * var * sqrt(2 / n) (normal) or less (uniform). */
    if (fabs(mean) > 5 * sqrt(var / (double)n) ||
        fabs(variance - var) > 5 * var * sqrt(2.0 / (double)n))
        fail_msg("init %d: mean %g, variance %g, expected 0 and %g", kind, mean, variance, var);
    free(v);
    kiln_model_destroy(m);
    kiln_graph_destroy(g);
}

static void test_distributions(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, getenv("KILN_CACHE_DIR"));
    double he = 2.0 / FAN_IN, xavier = 2.0 / (FAN_IN + FAN_OUT);
    check_init(dev, ctx, KILN_INIT_HE_UNIFORM, he, sqrt(3 * he) * (1 + 1e-6));
    check_init(dev, ctx, KILN_INIT_HE_NORMAL, he, 0);
    check_init(dev, ctx, KILN_INIT_XAVIER_UNIFORM, xavier, sqrt(3 * xavier) * (1 + 1e-6));
    check_init(dev, ctx, KILN_INIT_XAVIER_NORMAL, xavier, 0);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

/* A graph with `extra` layers before "fc": fc's weight must not depend on them. */
static void fc_weight(kiln_device *dev, kiln_context *ctx, bool extra, uint64_t seed, float *out)
{
    kiln_graph *g = NULL;
    assert_int_equal(kiln_graph_create(ctx, &g), KILN_OK);
    kiln_shape xs = {2, {2, 8}};
    kiln_value x, h, y;
    assert_int_equal(kiln_graph_input(g, "x", &xs, KILN_F32, &x), KILN_OK);
    if (extra) {
        assert_int_equal(kiln_graph_dense(g, "pre", x, 8, true, &h), KILN_OK);
        x = h;
    }
    assert_int_equal(kiln_graph_dense(g, "fc", x, 4, true, &y), KILN_OK);
    kiln_model *m = NULL;
    assert_int_equal(kiln_model_create(g, dev, seed, &m), KILN_OK);
    assert_int_equal(kiln_model_read_state(m, "fc.weight", out, 32), KILN_OK);
    float bias[4];
    assert_int_equal(kiln_model_read_state(m, "fc.bias", bias, 4), KILN_OK);
    for (int i = 0; i < 4; i++)
        assert_true(bias[i] == 0.0f);
    kiln_model_destroy(m);
    kiln_graph_destroy(g);
}

static void test_keyed_by_seed_and_name(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, getenv("KILN_CACHE_DIR"));
    float a[32], b[32], c[32];
    fc_weight(dev, ctx, false, 5, a);
    fc_weight(dev, ctx, true, 5, b);
    fc_weight(dev, ctx, false, 6, c);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_not_equal(a, c, sizeof a);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

int main(void)
{
    kiln_test_require_device();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_distributions),
        cmocka_unit_test(test_keyed_by_seed_and_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
