/*
 * Internal view of tensors for the ops layer: the device buffer a tensor lives in, so that
 * kernels can be launched on it.
 */
#ifndef KILN_TENSOR_TENSOR_H
#define KILN_TENSOR_TENSOR_H

#include "core/context.h"
#include "kiln/tensor.h"

struct kiln_tensor {
    kiln_device *dev;
    kiln_shape shape;
    kiln_dtype dtype;
    char *name;
    kiln_buffer *buffer;  /* owned by the base; shared by views */
    struct kiln_tensor *base; /* NULL for a base tensor */
    int refs;             /* a base counts itself and each live view */
    bool owns_buffer;     /* false for tensors wrapped around a caller's buffer */
};

/* A tensor over an existing buffer (from offset 0, at least as large as the shape needs); the
 * buffer is borrowed and must outlive the tensor. Used by the memory planner. */
kiln_status kiln__tensor_wrap(kiln_device *dev, kiln_buffer *buffer, const kiln_shape *shape,
                              kiln_dtype dtype, const char *name, kiln_tensor **out);

/* The buffer a tensor's elements live in (always from offset 0). */
const kiln_buffer *kiln__tensor_buffer(const kiln_tensor *tensor);

#endif
