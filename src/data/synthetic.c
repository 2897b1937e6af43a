/*
 * spheres3d (kiln/synthetic.h): volumes with a few bright spheres and ellipsoids and their
 * binary masks. Each volume draws from its own Philox stream, counter (volume, draw, 0, tag)
 * keyed by the seed, so a volume does not depend on how many came before it or on the others'
 * sizes. Gaussian noise comes from the Box-Muller transform of two uniform draws.
 */
#include <math.h>
#include <string.h>

#include "core/context.h"
#include "core/philox.h"
#include "data/data_internal.h"
#include "kiln/synthetic.h"

enum { STREAM_SPHERES = 0x53504833u };
static const double PI = 3.14159265358979323846;

typedef struct draws {
    uint32_t key[2];
    uint32_t counter[4];
    uint32_t word[4];
    int left; /* unused words of `word` */
} draws;

static void draws_init(draws *d, uint64_t seed, int64_t volume)
{
    memset(d, 0, sizeof *d);
    d->key[0] = (uint32_t)seed;
    d->key[1] = (uint32_t)(seed >> 32);
    d->counter[0] = (uint32_t)volume;
    d->counter[2] = (uint32_t)((uint64_t)volume >> 32);
    d->counter[3] = STREAM_SPHERES;
}

/* A uniform double in [0, 1). */
static double uniform(draws *d)
{
    if (d->left == 0) {
        kiln__philox4x32_10(d->counter, d->key, d->word);
        d->counter[1]++;
        d->left = 4;
    }
    return (double)d->word[--d->left] * 0x1p-32;
}

static double uniform_in(draws *d, double lo, double hi)
{
    return lo + (hi - lo) * uniform(d);
}

static double gaussian(draws *d)
{
    double u = 1.0 - uniform(d); /* (0, 1]: log is finite */
    double v = uniform(d);
    return sqrt(-2.0 * log(u)) * cos(2.0 * PI * v);
}

void kiln_spheres3d_options_init(kiln_spheres3d_options *o)
{
    memset(o, 0, sizeof *o);
    o->n = 64;
    o->depth = o->height = o->width = 16;
    o->min_objects = 1;
    o->max_objects = 3;
    o->min_radius = 2;
    o->max_radius = 5;
    o->ellipsoids = 0.5;
    o->noise = 0.2;
    o->intensity_variation = 0.3;
}

typedef struct object {
    double center[3], radius[3], brightness;
} object;

enum { MAX_OBJECTS = 64 };

static kiln_status check_options(kiln_context *ctx, const kiln_spheres3d_options *o)
{
    kiln_status rc = KILN_OK;
    int64_t smallest = o->depth < o->height ? o->depth : o->height;
    smallest = smallest < o->width ? smallest : o->width;
    if (o->n < 1)
        KILN_FAIL(ctx, KILN_ERR_INVALID_ARGUMENT, "spheres3d: n must be >= 1, got %lld",
                  (long long)o->n);
    if (o->first < 0)
        KILN_FAIL(ctx, KILN_ERR_INVALID_ARGUMENT, "spheres3d: first must be >= 0, got %lld",
                  (long long)o->first);
    if (smallest < 4)
        KILN_FAIL(ctx, KILN_ERR_INVALID_ARGUMENT,
                  "spheres3d: depth, height and width must be >= 4, got %lld x %lld x %lld",
                  (long long)o->depth, (long long)o->height, (long long)o->width);
    if (o->min_objects < 1 || o->max_objects < o->min_objects || o->max_objects > MAX_OBJECTS)
        KILN_FAIL(ctx, KILN_ERR_INVALID_ARGUMENT,
                  "spheres3d: objects must satisfy 1 <= min_objects <= max_objects <= %d, got "
                  "%lld and %lld",
                  MAX_OBJECTS, (long long)o->min_objects, (long long)o->max_objects);
    if (!(o->min_radius >= 1 && o->max_radius >= o->min_radius &&
          o->max_radius <= 0.5 * (double)smallest))
        KILN_FAIL(ctx, KILN_ERR_INVALID_ARGUMENT,
                  "spheres3d: radii must satisfy 1 <= min_radius <= max_radius <= %g (half the "
                  "smallest axis), got %g and %g",
                  0.5 * (double)smallest, o->min_radius, o->max_radius);
    if (!(o->ellipsoids >= 0 && o->ellipsoids <= 1))
        KILN_FAIL(ctx, KILN_ERR_INVALID_ARGUMENT, "spheres3d: ellipsoids must be in [0, 1], got %g",
                  o->ellipsoids);
    if (!(o->noise >= 0 && isfinite(o->noise)))
        KILN_FAIL(ctx, KILN_ERR_INVALID_ARGUMENT,
                  "spheres3d: noise must be finite and >= 0, got %g", o->noise);
    if (!(o->intensity_variation >= 0 && o->intensity_variation <= 0.9))
        KILN_FAIL(ctx, KILN_ERR_INVALID_ARGUMENT,
                  "spheres3d: intensity_variation must be in [0, 0.9], got %g",
                  o->intensity_variation);
cleanup:
    return rc;
}

/* Draws volume v's objects and writes its voxels and mask. */
static void make_volume(const kiln_spheres3d_options *o, int64_t v, float *voxels, float *mask)
{
    draws d;
    draws_init(&d, o->seed, v);
    const double size[3] = {(double)o->depth, (double)o->height, (double)o->width};
    int64_t span = o->max_objects - o->min_objects + 1;
    int64_t n_objects = o->min_objects + (int64_t)(uniform(&d) * (double)span);
    object objects[MAX_OBJECTS];
    for (int64_t k = 0; k < n_objects; k++) {
        object *b = &objects[k];
        double r = uniform_in(&d, o->min_radius, o->max_radius);
        bool ellipsoid = uniform(&d) < o->ellipsoids;
        for (int a = 0; a < 3; a++) {
            b->radius[a] = ellipsoid ? uniform_in(&d, o->min_radius, o->max_radius) : r;
            /* The center keeps the object inside the volume by at least half a voxel. */
            double margin = b->radius[a] < 0.5 * size[a] - 0.5 ? b->radius[a] : 0.5 * size[a] - 0.5;
            b->center[a] = uniform_in(&d, margin - 0.5, size[a] - 0.5 - margin);
        }
        b->brightness = 1.0 + uniform_in(&d, -o->intensity_variation, o->intensity_variation);
    }
    double background = uniform_in(&d, -0.1, 0.1);
    int64_t i = 0;
    for (int64_t z = 0; z < o->depth; z++) {
        for (int64_t y = 0; y < o->height; y++) {
            for (int64_t x = 0; x < o->width; x++, i++) {
                const double p[3] = {(double)z, (double)y, (double)x};
                double value = background;
                bool inside = false;
                for (int64_t k = 0; k < n_objects && !inside; k++) {
                    double s = 0;
                    for (int a = 0; a < 3; a++) {
                        double t = (p[a] - objects[k].center[a]) / objects[k].radius[a];
                        s += t * t;
                    }
                    if (s <= 1.0) {
                        inside = true;
                        value += objects[k].brightness;
                    }
                }
                voxels[i] = (float)(value + o->noise * gaussian(&d));
                mask[i] = inside ? 1.0f : 0.0f;
            }
        }
    }
}

kiln_status kiln_dataset_make_spheres3d(kiln_context *ctx, const kiln_spheres3d_options *options,
                                        kiln_dataset **out)
{
    kiln_status rc = KILN_OK;
    if (options == NULL || out == NULL)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, __func__, "options or out is NULL");
    *out = NULL;
    KILN_CHECK(check_options(ctx, options));
    const int64_t dims[4] = {1, options->depth, options->height, options->width};
    kiln_shape shape = kiln_shape_of(4, dims);
    kiln_dataset *ds = NULL;
    KILN_CHECK(
        kiln_dataset_create(ctx, "spheres3d", options->n, &shape, KILN_LABELS_TARGET, &shape, &ds));
    for (int64_t v = 0; v < options->n; v++)
        make_volume(options, options->first + v, ds->features + v * ds->n_features,
                    ds->targets + v * ds->n_label_values);
    *out = ds;
cleanup:
    return rc;
}
