/*
 * Tensor objects: creation on a device, reshape views sharing a base's buffer (reference
 * counted through the base), and blocking host upload and download. Ops never see OpenCL
 * memory through here; they get the kiln_buffer and launch through the device layer.
 */
#include <string.h>

#include "device/device.h"
#include "tensor/tensor.h"

kiln_status kiln_tensor_create(kiln_device *dev, const kiln_shape *shape, kiln_dtype dtype,
                               const char *name, kiln_tensor **out)
{
    kiln_status rc = KILN_OK;
    kiln_tensor *t = NULL;
    if (dev == NULL || shape == NULL || out == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    *out = NULL;
    kiln_context *ctx = dev->ctx;
    char text[96];
    if (!kiln_shape_is_valid(shape))
        KILN_FAIL(ctx, KILN_ERR_SHAPE,
                  "tensor '%s': invalid shape %s (up to %d dimensions, each at least 1)",
                  name != NULL ? name : "?", kiln_shape_format(shape, text, sizeof text),
                  KILN_MAX_DIMS);
    t = kiln__calloc(ctx, 1, sizeof *t);
    if (t == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory creating tensor '%s'",
                  name != NULL ? name : "?");
    t->dev = dev;
    t->shape = *shape;
    t->dtype = dtype;
    t->refs = 1;
    t->owns_buffer = true;
    t->name = kiln__strdup(ctx, name != NULL ? name : "unnamed");
    if (t->name == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory creating tensor '%s'", name);
    char *purpose =
        kiln__format(ctx, "tensor '%s' %s %s", t->name, kiln_shape_format(shape, text, sizeof text),
                     kiln_dtype_name(dtype));
    if (purpose == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory creating tensor '%s'", t->name);
    rc = kiln_buffer_create(dev, (size_t)kiln_shape_count(shape) * kiln_dtype_size(dtype), purpose,
                            &t->buffer);
    kiln__free(ctx, purpose);
    if (rc != KILN_OK)
        goto cleanup;
    *out = t;
    t = NULL;
cleanup:
    kiln_tensor_destroy(t);
    return rc;
}

kiln_status kiln__tensor_wrap(kiln_device *dev, kiln_buffer *buffer, const kiln_shape *shape,
                              kiln_dtype dtype, const char *name, kiln_tensor **out)
{
    char text[96];
    *out = NULL;
    if (!kiln_shape_is_valid(shape) ||
        (size_t)kiln_shape_count(shape) * kiln_dtype_size(dtype) > kiln_buffer_get_size(buffer))
        return kiln__error(dev->ctx, KILN_ERR_INTERNAL, __func__,
                           "tensor '%s' %s does not fit its %zu-byte buffer", name,
                           kiln_shape_format(shape, text, sizeof text),
                           kiln_buffer_get_size(buffer));
    kiln_tensor *t = kiln__calloc(dev->ctx, 1, sizeof *t);
    if (t == NULL || (t->name = kiln__strdup(dev->ctx, name)) == NULL) {
        kiln__free(dev->ctx, t);
        return kiln__error(dev->ctx, KILN_ERR_NO_MEMORY, __func__, "out of memory wrapping '%s'",
                           name);
    }
    t->dev = dev;
    t->shape = *shape;
    t->dtype = dtype;
    t->buffer = buffer;
    t->refs = 1;
    t->owns_buffer = false;
    *out = t;
    return KILN_OK;
}

kiln_status kiln_tensor_reshape(kiln_tensor *base, const kiln_shape *shape, kiln_tensor **out)
{
    kiln_status rc = KILN_OK;
    if (base == NULL || shape == NULL || out == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    *out = NULL;
    kiln_context *ctx = base->dev->ctx;
    char from[96], to[96];
    if (!kiln_shape_is_valid(shape) || kiln_shape_count(shape) != kiln_shape_count(&base->shape))
        KILN_FAIL(ctx, KILN_ERR_SHAPE,
                  "reshape of tensor '%s' from %s to %s: element counts differ (%lld vs %lld) or "
                  "the shape is invalid",
                  base->name, kiln_shape_format(&base->shape, from, sizeof from),
                  kiln_shape_format(shape, to, sizeof to),
                  (long long)kiln_shape_count(&base->shape), (long long)kiln_shape_count(shape));
    kiln_tensor *root = base->base != NULL ? base->base : base;
    kiln_tensor *view = kiln__calloc(ctx, 1, sizeof *view);
    if (view == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory creating a view of '%s'", base->name);
    view->name = kiln__format(ctx, "%s (view)", base->name);
    if (view->name == NULL) {
        kiln__free(ctx, view);
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory creating a view of '%s'", base->name);
    }
    view->dev = base->dev;
    view->shape = *shape;
    view->dtype = base->dtype;
    view->buffer = root->buffer;
    view->base = root;
    root->refs++;
    *out = view;
cleanup:
    return rc;
}

static void release_base(kiln_tensor *base)
{
    if (--base->refs > 0)
        return;
    kiln_context *ctx = base->dev->ctx;
    if (base->owns_buffer)
        kiln_buffer_destroy(base->buffer);
    kiln__free(ctx, base->name);
    kiln__free(ctx, base);
}

void kiln_tensor_destroy(kiln_tensor *tensor)
{
    if (tensor == NULL)
        return;
    if (tensor->base != NULL) {
        kiln_tensor *root = tensor->base;
        kiln__free(tensor->dev->ctx, tensor->name);
        kiln__free(tensor->dev->ctx, tensor);
        release_base(root);
        return;
    }
    release_base(tensor);
}

const kiln_shape *kiln_tensor_get_shape(const kiln_tensor *tensor)
{
    return &tensor->shape;
}

kiln_dtype kiln_tensor_get_dtype(const kiln_tensor *tensor)
{
    return tensor->dtype;
}

const char *kiln_tensor_get_name(const kiln_tensor *tensor)
{
    return tensor->name;
}

kiln_device *kiln_tensor_get_device(const kiln_tensor *tensor)
{
    return tensor->dev;
}

int64_t kiln_tensor_count(const kiln_tensor *tensor)
{
    return kiln_shape_count(&tensor->shape);
}

const kiln_buffer *kiln__tensor_buffer(const kiln_tensor *tensor)
{
    return tensor->buffer;
}

static kiln_status check_count(const kiln_tensor *tensor, int64_t n, const char *function)
{
    char text[96];
    if (n != kiln_shape_count(&tensor->shape))
        return kiln__error(tensor->dev->ctx, KILN_ERR_SHAPE, function,
                           "tensor '%s' %s has %lld elements, the host array %lld", tensor->name,
                           kiln_shape_format(&tensor->shape, text, sizeof text),
                           (long long)kiln_shape_count(&tensor->shape), (long long)n);
    return KILN_OK;
}

/* The tensor's bytes for a host array of n_elements, after checking the count. */
static kiln_status host_bytes(const kiln_tensor *tensor, const void *host, int64_t n_elements,
                              const char *function, size_t *out)
{
    if (tensor == NULL || host == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    kiln_status rc = check_count(tensor, n_elements, function);
    *out = (size_t)n_elements * kiln_dtype_size(tensor->dtype);
    return rc;
}

kiln_status kiln_tensor_upload(kiln_tensor *tensor, const void *host, int64_t n_elements)
{
    size_t n_bytes = 0;
    kiln_status rc = host_bytes(tensor, host, n_elements, __func__, &n_bytes);
    return rc == KILN_OK ? kiln_buffer_write(tensor->buffer, 0, host, n_bytes) : rc;
}

kiln_status kiln_tensor_download(const kiln_tensor *tensor, void *host, int64_t n_elements)
{
    size_t n_bytes = 0;
    kiln_status rc = host_bytes(tensor, host, n_elements, __func__, &n_bytes);
    return rc == KILN_OK ? kiln_buffer_read(tensor->buffer, 0, host, n_bytes) : rc;
}

kiln_status kiln_tensor_upload_async(kiln_tensor *tensor, const void *host, int64_t n_elements,
                                     kiln_transfer **out_transfer)
{
    size_t n_bytes = 0;
    if (out_transfer != NULL)
        *out_transfer = NULL;
    kiln_status rc = host_bytes(tensor, host, n_elements, __func__, &n_bytes);
    return rc == KILN_OK ? kiln_buffer_write_async(tensor->buffer, 0, host, n_bytes, out_transfer)
                         : rc;
}

kiln_status kiln_tensor_download_async(const kiln_tensor *tensor, void *host, int64_t n_elements,
                                       kiln_transfer **out_transfer)
{
    size_t n_bytes = 0;
    if (out_transfer != NULL)
        *out_transfer = NULL;
    kiln_status rc = host_bytes(tensor, host, n_elements, __func__, &n_bytes);
    return rc == KILN_OK ? kiln_buffer_read_async(tensor->buffer, 0, host, n_bytes, out_transfer)
                         : rc;
}
