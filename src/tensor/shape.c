/*
 * Shapes and dtypes: counting, comparing, strides and formatting "(N, C, H, W)" for messages.
 * Pure functions on values; nothing here touches a device.
 */
#include <stdio.h>
#include <string.h>

#include "kiln/tensor.h"

kiln_shape kiln_shape_of(int ndim, const int64_t *dims)
{
    kiln_shape shape;
    memset(&shape, 0, sizeof shape);
    shape.ndim = ndim;
    for (int i = 0; i < ndim && i < KILN_MAX_DIMS; i++)
        shape.dim[i] = dims[i];
    return shape;
}

int64_t kiln_shape_count(const kiln_shape *shape)
{
    int64_t n = 1;
    for (int i = 0; i < shape->ndim; i++)
        n *= shape->dim[i];
    return n;
}

bool kiln_shape_equal(const kiln_shape *a, const kiln_shape *b)
{
    if (a->ndim != b->ndim)
        return false;
    for (int i = 0; i < a->ndim; i++) {
        if (a->dim[i] != b->dim[i])
            return false;
    }
    return true;
}

void kiln_shape_strides(const kiln_shape *shape, int64_t strides[KILN_MAX_DIMS])
{
    int64_t s = 1;
    for (int i = KILN_MAX_DIMS - 1; i >= 0; i--) {
        if (i < shape->ndim) {
            strides[i] = s;
            s *= shape->dim[i];
        } else {
            strides[i] = 0;
        }
    }
}

const char *kiln_shape_format(const kiln_shape *shape, char *out, size_t capacity)
{
    size_t used = 0;
    int n = snprintf(out, capacity, "(");
    used = n > 0 ? (size_t)n : 0;
    for (int i = 0; i < shape->ndim && used < capacity; i++) {
        n = snprintf(out + used, capacity - used, "%s%lld", i > 0 ? ", " : "",
                     (long long)shape->dim[i]);
        used += n > 0 ? (size_t)n : 0;
    }
    if (used < capacity)
        snprintf(out + used, capacity - used, shape->ndim == 1 ? ",)" : ")");
    return out;
}

bool kiln_shape_is_valid(const kiln_shape *shape)
{
    if (shape->ndim < 0 || shape->ndim > KILN_MAX_DIMS)
        return false;
    for (int i = 0; i < shape->ndim; i++) {
        if (shape->dim[i] < 1)
            return false;
    }
    return true;
}

size_t kiln_dtype_size(kiln_dtype dtype)
{
    (void)dtype; /* both dtypes are 4 bytes */
    return 4;
}

const char *kiln_dtype_name(kiln_dtype dtype)
{
    return dtype == KILN_I32 ? "i32" : "f32";
}
