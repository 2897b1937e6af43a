/*
 * Tensors: a shape and dtype over device memory. A tensor is contiguous and row-major; a view
 * (reshape, flatten) shares its base's memory and keeps the base alive. Host transfers are
 * blocking, or queued with a ticket (the _async forms). Shapes are value types usable without
 * a device.
 */
#ifndef KILN_TENSOR_H
#define KILN_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln/device.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { KILN_MAX_DIMS = 6 };

/* A shape of 0 to KILN_MAX_DIMS dimensions; ndim 0 is a scalar with one element. */
typedef struct kiln_shape {
    int ndim;
    int64_t dim[KILN_MAX_DIMS];
} kiln_shape;

typedef enum kiln_dtype {
    KILN_F32 = 0,
    KILN_I32 = 1, /* class indices */
} kiln_dtype;

/* Builds a shape from a list: kiln_shape_of(3, (int64_t[]){2, 3, 4}). */
kiln_shape kiln_shape_of(int ndim, const int64_t *dims);
/* Number of elements (1 for a scalar). */
int64_t kiln_shape_count(const kiln_shape *shape);
bool kiln_shape_equal(const kiln_shape *a, const kiln_shape *b);
/* Row-major strides in elements. */
void kiln_shape_strides(const kiln_shape *shape, int64_t strides[KILN_MAX_DIMS]);
/* "(2, 3, 4)"; returns `out`. */
const char *kiln_shape_format(const kiln_shape *shape, char *out, size_t capacity);
/* Checks 0 <= ndim <= KILN_MAX_DIMS and every dimension >= 1. */
bool kiln_shape_is_valid(const kiln_shape *shape);

size_t kiln_dtype_size(kiln_dtype dtype);
const char *kiln_dtype_name(kiln_dtype dtype);

typedef struct kiln_tensor kiln_tensor;

/* Allocates an uninitialised tensor. `name` (copied; may be NULL) appears in error messages.
 * Returns KILN_ERR_SHAPE for an invalid shape, KILN_ERR_DEVICE_OOM when it does not fit. */
kiln_status kiln_tensor_create(kiln_device *dev, const kiln_shape *shape, kiln_dtype dtype,
                               const char *name, kiln_tensor **out);
/* A view of `base` with another shape of the same element count (reshape, flatten). The view
 * keeps the base's memory alive; destroy both. */
kiln_status kiln_tensor_reshape(kiln_tensor *base, const kiln_shape *shape, kiln_tensor **out);
void kiln_tensor_destroy(kiln_tensor *tensor);

const kiln_shape *kiln_tensor_get_shape(const kiln_tensor *tensor);
kiln_dtype kiln_tensor_get_dtype(const kiln_tensor *tensor);
const char *kiln_tensor_get_name(const kiln_tensor *tensor);
kiln_device *kiln_tensor_get_device(const kiln_tensor *tensor);
int64_t kiln_tensor_count(const kiln_tensor *tensor);

/* Blocking copies of the whole tensor; `n_elements` must equal the tensor's count. */
kiln_status kiln_tensor_upload(kiln_tensor *tensor, const void *host, int64_t n_elements);
kiln_status kiln_tensor_download(const kiln_tensor *tensor, void *host, int64_t n_elements);
/* Queued copies of the whole tensor, with kiln_buffer_write_async's and kiln_buffer_read_async's
 * rules: the host array stays valid and untouched until the transfer has completed;
 * `out_transfer` (may be NULL) receives the ticket to wait on and release. */
kiln_status kiln_tensor_upload_async(kiln_tensor *tensor, const void *host, int64_t n_elements,
                                     kiln_transfer **out_transfer);
kiln_status kiln_tensor_download_async(const kiln_tensor *tensor, void *host, int64_t n_elements,
                                       kiln_transfer **out_transfer);

#ifdef __cplusplus
}
#endif

#endif
