/*
 * spheres3d: the same seed gives the same bytes and another seed other ones, and a volume does
 * not depend on how many are generated (nor on `first`, the index of the first one); masks are 0 or
 * 1 and cover at least one voxel; without noise and intensity variation every object voxel is
 * exactly the volume's background plus 1 and every other voxel the background, in [-0.1, 0.1]; the
 * noise (the difference from the noise-free volumes of the same seed) has mean ~0 and the
 * configured standard deviation; a single sphere of radius 5 covers 4/3 pi r^3 voxels within 6%;
 * every bad option is an error naming it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/synthetic.h"
#include "support/kiln_test.h"

static kiln_dataset *make(kiln_context *ctx, const kiln_spheres3d_options *o)
{
    kiln_dataset *ds = NULL;
    assert_int_equal(kiln_dataset_make_spheres3d(ctx, o, &ds), KILN_OK);
    assert_int_equal(ds->label_kind, KILN_LABELS_TARGET);
    assert_int_equal(ds->feature_shape.ndim, 4);
    assert_int_equal(ds->feature_shape.dim[0], 1);
    assert_int_equal(ds->feature_shape.dim[1], o->depth);
    assert_int_equal(ds->feature_shape.dim[3], o->width);
    assert_int_equal(ds->n_label_values, ds->n_features);
    return ds;
}

static void test_deterministic(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_spheres3d_options o;
    kiln_spheres3d_options_init(&o);
    o.n = 5;
    o.depth = 11; /* not a cube: axes must not be mixed up */
    kiln_dataset *a = make(ctx, &o), *b = make(ctx, &o);
    size_t bytes = (size_t)(a->n * a->n_features) * sizeof(float);
    assert_memory_equal(a->features, b->features, bytes);
    assert_memory_equal(a->targets, b->targets, bytes);
    o.n = 3;
    kiln_dataset *fewer = make(ctx, &o);
    assert_memory_equal(a->features, fewer->features, bytes / 5 * 3);
    o.n = 2;
    o.first = 3;
    kiln_dataset *later = make(ctx, &o);
    assert_memory_equal(a->features + 3 * a->n_features, later->features, bytes / 5 * 2);
    assert_memory_equal(a->targets + 3 * a->n_features, later->targets, bytes / 5 * 2);
    kiln_dataset_destroy(later);
    o.first = 0;
    o.n = 5;
    o.seed = 1;
    kiln_dataset *other = make(ctx, &o);
    assert_true(memcmp(a->features, other->features, bytes) != 0);
    for (int64_t v = 0; v < a->n; v++) {
        int64_t ones = 0;
        for (int64_t i = 0; i < a->n_features; i++) {
            float m = a->targets[v * a->n_features + i];
            assert_true(m == 0.0f || m == 1.0f);
            ones += m == 1.0f;
        }
        assert_true(ones >= 1);
    }
    kiln_dataset_destroy(a);
    kiln_dataset_destroy(b);
    kiln_dataset_destroy(fewer);
    kiln_dataset_destroy(other);
    kiln_context_destroy(ctx);
}

static void test_intensities_and_noise(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_spheres3d_options o;
    kiln_spheres3d_options_init(&o);
    o.n = 8;
    o.noise = 0;
    o.intensity_variation = 0;
    kiln_dataset *clean = make(ctx, &o);
    for (int64_t v = 0; v < clean->n; v++) {
        const float *x = clean->features + v * clean->n_features;
        const float *m = clean->targets + v * clean->n_features;
        float background = NAN;
        for (int64_t i = 0; i < clean->n_features && isnan(background); i++)
            background = m[i] == 0.0f ? x[i] : NAN;
        assert_false(isnan(background)); /* radius 5 at most in 16^3: some voxel is outside */
        assert_true(fabsf(background) <= 0.1f);
        for (int64_t i = 0; i < clean->n_features; i++)
            assert_float_equal(x[i], background + m[i], 1e-6);
    }
    o.noise = 0.5;
    kiln_dataset *noisy = make(ctx, &o);
    double sum = 0, sum2 = 0;
    int64_t count = noisy->n * noisy->n_features;
    for (int64_t i = 0; i < count; i++) {
        double e = (double)noisy->features[i] - (double)clean->features[i];
        sum += e;
        sum2 += e * e;
    }
    double mean = sum / (double)count, sd = sqrt(sum2 / (double)count - mean * mean);
    /* 32768 draws: the standard errors are 0.003 (mean) and 0.002 (sd). */
    assert_true(fabs(mean) < 0.015);
    assert_true(fabs(sd - 0.5) < 0.01);
    kiln_dataset_destroy(clean);
    kiln_dataset_destroy(noisy);
    kiln_context_destroy(ctx);
}

static void test_sphere_volume(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_spheres3d_options o;
    kiln_spheres3d_options_init(&o);
    o.n = 20;
    o.depth = o.height = o.width = 12;
    o.min_objects = o.max_objects = 1;
    o.min_radius = o.max_radius = 5;
    o.ellipsoids = 0;
    kiln_dataset *ds = make(ctx, &o);
    double expected = 4.0 / 3.0 * 3.14159265358979 * 125.0;
    for (int64_t v = 0; v < ds->n; v++) {
        double ones = 0;
        for (int64_t i = 0; i < ds->n_features; i++)
            ones += ds->targets[v * ds->n_features + i];
        assert_true(fabs(ones - expected) < 0.06 * expected);
    }
    kiln_dataset_destroy(ds);
    kiln_context_destroy(ctx);
}

static void expect_error(kiln_spheres3d_options o, const char *message)
{
    kiln_context *ctx = kiln_test_context();
    kiln_dataset *ds = NULL;
    assert_int_equal(kiln_dataset_make_spheres3d(ctx, &o, &ds), KILN_ERR_INVALID_ARGUMENT);
    assert_null(ds);
    assert_contains(kiln_context_last_error(ctx), message);
    kiln_context_destroy(ctx);
}

static void test_errors(void **state)
{
    (void)state;
    kiln_spheres3d_options d, o;
    kiln_spheres3d_options_init(&d);
    o = d, o.n = 0;
    expect_error(o, "spheres3d: n must be >= 1, got 0");
    o = d, o.first = -1;
    expect_error(o, "spheres3d: first must be >= 0, got -1");
    o = d, o.height = 3;
    expect_error(o, "depth, height and width must be >= 4, got 16 x 3 x 16");
    o = d, o.min_objects = 3, o.max_objects = 2;
    expect_error(o, "1 <= min_objects <= max_objects <= 64, got 3 and 2");
    o = d, o.max_radius = 9;
    expect_error(o, "1 <= min_radius <= max_radius <= 8 (half the smallest axis), got 2 and 9");
    o = d, o.min_radius = 0.5;
    expect_error(o, "got 0.5 and 5");
    o = d, o.ellipsoids = 1.5;
    expect_error(o, "ellipsoids must be in [0, 1], got 1.5");
    o = d, o.noise = -1;
    expect_error(o, "noise must be finite and >= 0, got -1");
    o = d, o.intensity_variation = 0.95;
    expect_error(o, "intensity_variation must be in [0, 0.9], got 0.95");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_intensities_and_noise),
        cmocka_unit_test(test_sphere_volume),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
