/*
 * Helpers for the double-precision references in tests/ref/: plain loops, no cleverness, so
 * that a reference is easy to check by eye against the framework documentation it cites.
 * Shapes are kiln_shape; arrays are row-major doubles.
 */
#ifndef KILN_REF_H
#define KILN_REF_H

#include <stdint.h>

#include "check/check.h"

/* Index into an input of shape `in` broadcast (right-aligned) to `out`, for output element
 * `o`. */
static inline int64_t ref_bcast_index(const kiln_shape *out, const kiln_shape *in, int64_t o)
{
    int64_t idx = 0, in_stride = 1;
    for (int d = out->ndim - 1; d >= 0; d--) {
        int64_t coord = o % out->dim[d];
        o /= out->dim[d];
        int j = d - (out->ndim - in->ndim);
        if (j < 0)
            continue;
        if (in->dim[j] != 1)
            idx += coord * in_stride;
        in_stride *= in->dim[j];
    }
    return idx;
}

static inline kiln_shape ref_shape(int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                                   int64_t d4)
{
    int64_t dims[5] = {d0, d1, d2, d3, d4};
    return kiln_shape_of(ndim, dims);
}

/* Shape initialisers for case tables: S1(5), S2(2, 3), ... (braced, so they are constant). */
#define S0() {.ndim = 0}
#define S1(a) {.ndim = 1, .dim = {a}}
#define S2(a, b) {.ndim = 2, .dim = {a, b}}
#define S3(a, b, c) {.ndim = 3, .dim = {a, b, c}}
#define S4(a, b, c, d) {.ndim = 4, .dim = {a, b, c, d}}
#define S5(a, b, c, d, e) {.ndim = 5, .dim = {a, b, c, d, e}}

/* Generator initialisers. */
#define G_NORMAL {KILN_GEN_NORMAL, 0, 0, 0}
#define G_UNIFORM(lo, hi) {KILN_GEN_UNIFORM, lo, hi, 0}
#define G_AWAY(lo, hi) {KILN_GEN_AWAY, lo, hi, 0}
#define G_LABELS(k) {KILN_GEN_LABELS, 0, 0, k}
#define G_BINARY {KILN_GEN_BINARY, 0, 0, 0}
#define G_SPECIAL {KILN_GEN_SPECIAL, 0, 0, 0}
#define G_DISTINCT {KILN_GEN_DISTINCT, 0, 0, 0}

#endif
