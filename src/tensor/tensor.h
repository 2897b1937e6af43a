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
};

/* The buffer a tensor's elements live in (always from offset 0). */
const kiln_buffer *kiln__tensor_buffer(const kiln_tensor *tensor);

#endif
