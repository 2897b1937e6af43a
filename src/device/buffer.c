/*
 * Device buffers: allocation with an out-of-memory report a user can act on (the request, the
 * device's limits, what the memory was for), and host transfers: blocking, or queued with a
 * ticket (kiln_transfer, an OpenCL event) that the caller waits on before touching the memory.
 *
 * Drivers often allocate lazily and fail only at first use, so requests that cannot fit are
 * refused here, against the device's advertised limits and what Kiln already holds.
 */
#include <string.h>

#include "device/device.h"

static kiln_status oom(kiln_device *dev, size_t n_bytes, const char *purpose, const char *why)
{
    char req[32], max_alloc[32], global[32], held[32];
    return kiln__error(
        dev->ctx, KILN_ERR_DEVICE_OOM, "kiln_buffer_create",
        "cannot allocate %s (%zu bytes) for %s on device '%s': %s. The device allows %s per "
        "allocation and has %s of global memory, of which Kiln holds %s. Use a smaller batch "
        "size or model, or a device with more memory",
        kiln_format_bytes(n_bytes, req, sizeof req), n_bytes, purpose, dev->info.name, why,
        kiln_format_bytes(dev->info.max_alloc_bytes, max_alloc, sizeof max_alloc),
        kiln_format_bytes(dev->info.global_mem_bytes, global, sizeof global),
        kiln_format_bytes(dev->allocated_bytes, held, sizeof held));
}

kiln_status kiln_buffer_create(kiln_device *dev, size_t n_bytes, const char *purpose,
                               kiln_buffer **out)
{
    kiln_status rc = KILN_OK;
    kiln_buffer *buffer = NULL;
    if (dev == NULL || out == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (purpose == NULL)
        purpose = "an unnamed buffer";
    if (n_bytes == 0)
        KILN_FAIL(dev->ctx, KILN_ERR_INVALID_ARGUMENT,
                  "zero-byte buffer requested for %s on device '%s' (OpenCL has no empty buffers)",
                  purpose, dev->info.name);
    if ((uint64_t)n_bytes > dev->info.max_alloc_bytes)
        return oom(dev, n_bytes, purpose, "larger than the device's maximum single allocation");
    if ((uint64_t)n_bytes > dev->info.global_mem_bytes - dev->allocated_bytes ||
        dev->allocated_bytes > dev->info.global_mem_bytes)
        return oom(dev, n_bytes, purpose, "more than the device's remaining global memory");
    buffer = kiln__calloc(dev->ctx, 1, sizeof *buffer);
    if (buffer == NULL)
        KILN_FAIL(dev->ctx, KILN_ERR_NO_MEMORY, "out of host memory creating a buffer for %s",
                  purpose);
    cl_int err = CL_SUCCESS;
    buffer->mem = clCreateBuffer(dev->cl_ctx, CL_MEM_READ_WRITE, n_bytes, NULL, &err);
    if (err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_OUT_OF_RESOURCES ||
        err == CL_INVALID_BUFFER_SIZE || err == CL_OUT_OF_HOST_MEMORY) {
        rc = oom(dev, n_bytes, purpose, kiln__cl_error_name(err));
        goto cleanup;
    }
    if (err != CL_SUCCESS || buffer->mem == NULL)
        KILN_FAIL(dev->ctx, KILN_ERR_OPENCL,
                  "clCreateBuffer of %zu bytes for %s on device '%s' failed with %s", n_bytes,
                  purpose, dev->info.name, kiln__cl_error_name(err));
    buffer->dev = dev;
    buffer->n_bytes = n_bytes;
    dev->allocated_bytes += n_bytes;
    *out = buffer;
    buffer = NULL;
cleanup:
    kiln__free(dev->ctx, buffer);
    return rc;
}

void kiln_buffer_destroy(kiln_buffer *buffer)
{
    if (buffer == NULL)
        return;
    kiln_device *dev = buffer->dev;
    clReleaseMemObject(buffer->mem);
    dev->allocated_bytes -= buffer->n_bytes;
    kiln__free(dev->ctx, buffer);
}

size_t kiln_buffer_get_size(const kiln_buffer *buffer)
{
    return buffer->n_bytes;
}

static kiln_status check_range(const kiln_buffer *buffer, size_t offset, size_t n_bytes,
                               const char *function)
{
    if (offset > buffer->n_bytes || n_bytes > buffer->n_bytes - offset)
        return kiln__error(buffer->dev->ctx, KILN_ERR_INVALID_ARGUMENT, function,
                           "range [%zu, %zu + %zu) lies outside the %zu-byte buffer", offset,
                           offset, n_bytes, buffer->n_bytes);
    return KILN_OK;
}

/* A transfer in flight: its event and what to say if it fails. */
struct kiln_transfer {
    kiln_device *dev;
    cl_event event; /* NULL for an empty transfer, complete from the start */
    bool to_device;
    size_t offset, n_bytes, buffer_bytes;
};

static kiln_status transfer_failed(kiln_device *dev, const char *function, bool to_device,
                                   size_t offset, size_t n_bytes, size_t buffer_bytes, cl_int err)
{
    return kiln__error(dev->ctx, KILN_ERR_OPENCL, function,
                       "%s %zu bytes at offset %zu of a %zu-byte buffer on device '%s' failed "
                       "with %s",
                       to_device ? "writing" : "reading", n_bytes, offset, buffer_bytes,
                       dev->info.name, kiln__cl_error_name(err));
}

/* One transfer in either direction; `host` is read when writing to the device. Blocking when
 * `out` is NULL and `blocking`; otherwise queued, with its ticket in *out when out is not NULL. */
static kiln_status transfer(kiln_buffer *buffer, bool to_device, size_t offset, void *host,
                            size_t n_bytes, bool blocking, kiln_transfer **out,
                            const char *function)
{
    kiln_status rc = KILN_OK;
    kiln_transfer *ticket = NULL;
    if (out != NULL)
        *out = NULL;
    if (buffer == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    kiln_device *dev = buffer->dev;
    if (host == NULL && n_bytes > 0)
        return kiln__error(dev->ctx, KILN_ERR_INVALID_ARGUMENT, function,
                           "NULL host memory for %s %zu bytes of a %zu-byte buffer on device '%s'",
                           to_device ? "writing" : "reading", n_bytes, buffer->n_bytes,
                           dev->info.name);
    KILN_CHECK(check_range(buffer, offset, n_bytes, function));
    if (out != NULL) {
        ticket = kiln__calloc(dev->ctx, 1, sizeof *ticket);
        if (ticket == NULL)
            KILN_FAIL(dev->ctx, KILN_ERR_NO_MEMORY,
                      "out of host memory for the ticket of a transfer on device '%s'",
                      dev->info.name);
        *ticket = (kiln_transfer){dev, NULL, to_device, offset, n_bytes, buffer->n_bytes};
    }
    if (n_bytes > 0) {
        cl_bool block = blocking ? CL_TRUE : CL_FALSE;
        cl_event *event = ticket != NULL ? &ticket->event : NULL;
        cl_int err = to_device ? clEnqueueWriteBuffer(dev->queue, buffer->mem, block, offset,
                                                      n_bytes, host, 0, NULL, event)
                               : clEnqueueReadBuffer(dev->queue, buffer->mem, block, offset,
                                                     n_bytes, host, 0, NULL, event);
        /* Without a flush an implementation may hold queued work until the first wait; the
         * point of a non-blocking transfer is that the device gets on with it meanwhile. */
        if (err == CL_SUCCESS && !blocking)
            err = clFlush(dev->queue);
        if (err != CL_SUCCESS) {
            rc = transfer_failed(dev, function, to_device, offset, n_bytes, buffer->n_bytes, err);
            goto cleanup;
        }
    }
    if (out != NULL)
        *out = ticket;
    ticket = NULL;
cleanup:
    kiln_transfer_release(ticket);
    return rc;
}

kiln_status kiln_buffer_write(kiln_buffer *buffer, size_t offset, const void *source,
                              size_t n_bytes)
{
    /* The cast only serves the shared signature: a write never modifies host memory. */
    return transfer(buffer, true, offset, (void *)(uintptr_t)source, n_bytes, true, NULL, __func__);
}

kiln_status kiln_buffer_read(kiln_buffer *buffer, size_t offset, void *destination, size_t n_bytes)
{
    return transfer(buffer, false, offset, destination, n_bytes, true, NULL, __func__);
}

kiln_status kiln_buffer_write_async(kiln_buffer *buffer, size_t offset, const void *source,
                                    size_t n_bytes, kiln_transfer **out_transfer)
{
    return transfer(buffer, true, offset, (void *)(uintptr_t)source, n_bytes, false, out_transfer,
                    __func__);
}

kiln_status kiln_buffer_read_async(kiln_buffer *buffer, size_t offset, void *destination,
                                   size_t n_bytes, kiln_transfer **out_transfer)
{
    return transfer(buffer, false, offset, destination, n_bytes, false, out_transfer, __func__);
}

kiln_status kiln_transfer_wait(kiln_transfer *transfer)
{
    if (transfer == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    if (transfer->event == NULL)
        return KILN_OK;
    /* clWaitForEvents reports a failed command as CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST;
     * the event's own status says which error it was. */
    cl_int err = clWaitForEvents(1, &transfer->event);
    cl_int status = CL_COMPLETE;
    if (err == CL_SUCCESS || err == CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST) {
        cl_int query = clGetEventInfo(transfer->event, CL_EVENT_COMMAND_EXECUTION_STATUS,
                                      sizeof status, &status, NULL);
        err = query != CL_SUCCESS ? query : status < 0 ? status : CL_SUCCESS;
    }
    if (err != CL_SUCCESS)
        return transfer_failed(transfer->dev, __func__, transfer->to_device, transfer->offset,
                               transfer->n_bytes, transfer->buffer_bytes, err);
    return KILN_OK;
}

void kiln_transfer_release(kiln_transfer *transfer)
{
    if (transfer == NULL)
        return;
    if (transfer->event != NULL) {
        /* The host memory may be freed once this returns: the transfer must be over. */
        clWaitForEvents(1, &transfer->event);
        clReleaseEvent(transfer->event);
    }
    kiln__free(transfer->dev->ctx, transfer);
}
