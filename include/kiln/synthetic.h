/*
 * Synthetic data sets, generated deterministically from a seed, for examples and tests that
 * need data with a known answer. spheres3d: volumes of shape (1, D, H, W) holding a few
 * spheres and ellipsoids of varying brightness on a dark background, with Gaussian noise, and
 * as TARGET labels their binary masks (1, D, H, W): a 3D segmentation task. The same seed
 * gives the same bytes on every machine (Philox4x32-10 keyed by the seed).
 */
#ifndef KILN_SYNTHETIC_H
#define KILN_SYNTHETIC_H

#include <stdint.h>

#include "kiln/data.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln_spheres3d_options {
    int64_t n;                        /* volumes, >= 1 */
    int64_t first;                    /* the index of the first volume, >= 0 (see below) */
    int64_t depth, height, width;     /* voxels per axis, each >= 4 */
    int64_t min_objects, max_objects; /* per volume, 1 <= min <= max */
    double min_radius, max_radius;    /* voxels, 1 <= min <= max <= half the smallest axis */
    double ellipsoids;                /* fraction of objects that are ellipsoids, in [0, 1] */
    double noise;                     /* standard deviation of the Gaussian noise, >= 0 */
    double intensity_variation;       /* object brightness 1 +- this, in [0, 0.9] */
    uint64_t seed;
} kiln_spheres3d_options;

/* Defaults: 64 volumes of 16^3, 1-3 objects of radius 2-5, half of them ellipsoids, noise 0.2,
 * intensity variation 0.3, seed 0. */
void kiln_spheres3d_options_init(kiln_spheres3d_options *options);

/* Generates the data set, named "spheres3d": volumes first .. first + n - 1 of the seed's
 * sequence (each volume is drawn from its own stream, so a held-out test set is the volumes
 * after the training ones). Each object has its own brightness (1 +-
 * intensity_variation), each volume its own background level (+-0.1) and the noise is added
 * to every voxel; a voxel's mask is 1 when it lies inside any object. KILN_ERR_INVALID_ARGUMENT
 * naming the option for a value out of range. */
kiln_status kiln_dataset_make_spheres3d(kiln_context *ctx, const kiln_spheres3d_options *options,
                                        kiln_dataset **out);

#ifdef __cplusplus
}
#endif

#endif
