/*
 * Per-kernel device time from OpenCL events (kiln_device_options.profile): every launch keeps
 * its event under its kernel's name; the times are read once the events have completed (at
 * the latest when 4096 are pending, which finishes the queue, and when the table is asked
 * for) and summed per name. Without profiling nothing here runs and launches take no events.
 */
#include <stdlib.h>
#include <string.h>

#include "device/device.h"

enum { MAX_PENDING = 4096 };

typedef struct pending {
    cl_event event;
    size_t row; /* index into rows */
} pending;

struct kiln__profile {
    kiln_profile_row *rows;
    size_t n_rows, cap_rows;
    pending *pending;
    size_t n_pending;
};

kiln_status kiln__profile_create(kiln_device *dev)
{
    dev->profile = kiln__calloc(dev->ctx, 1, sizeof *dev->profile);
    if (dev->profile != NULL)
        dev->profile->pending = kiln__calloc(dev->ctx, MAX_PENDING, sizeof(pending));
    if (dev->profile == NULL || dev->profile->pending == NULL)
        return kiln__error(dev->ctx, KILN_ERR_NO_MEMORY, "kiln_device_create",
                           "out of memory for the profile of device '%s'", dev->info.name);
    return KILN_OK;
}

static void release_pending(kiln__profile *p)
{
    for (size_t i = 0; i < p->n_pending; i++)
        clReleaseEvent(p->pending[i].event);
    p->n_pending = 0;
}

void kiln__profile_destroy(kiln_device *dev)
{
    kiln__profile *p = dev->profile;
    if (p == NULL)
        return;
    release_pending(p);
    for (size_t i = 0; i < p->n_rows; i++)
        kiln__free(dev->ctx, (char *)p->rows[i].name);
    kiln__free(dev->ctx, p->rows);
    kiln__free(dev->ctx, p->pending);
    kiln__free(dev->ctx, p);
    dev->profile = NULL;
}

/* Waits for the pending events and adds their times to their rows. */
static kiln_status collect(kiln_device *dev)
{
    kiln__profile *p = dev->profile;
    kiln_status rc = KILN_OK;
    if (p->n_pending > 0)
        rc = kiln_device_finish(dev);
    for (size_t i = 0; i < p->n_pending && rc == KILN_OK; i++) {
        cl_ulong start = 0, end = 0;
        cl_int err = clGetEventProfilingInfo(p->pending[i].event, CL_PROFILING_COMMAND_START,
                                             sizeof start, &start, NULL);
        if (err == CL_SUCCESS)
            err = clGetEventProfilingInfo(p->pending[i].event, CL_PROFILING_COMMAND_END, sizeof end,
                                          &end, NULL);
        if (err != CL_SUCCESS)
            rc = kiln__error(dev->ctx, KILN_ERR_OPENCL, "kiln_device_profile",
                             "reading the time of kernel '%s' on device '%s' failed with %s",
                             p->rows[p->pending[i].row].name, dev->info.name,
                             kiln__cl_error_name(err));
        else if (end > start)
            p->rows[p->pending[i].row].ms += (double)(end - start) * 1e-6;
    }
    release_pending(p);
    return rc;
}

kiln_status kiln__profile_record(kiln_device *dev, const char *name, cl_event event)
{
    kiln__profile *p = dev->profile;
    kiln_status rc = KILN_OK;
    size_t row = 0;
    while (row < p->n_rows && strcmp(p->rows[row].name, name) != 0)
        row++;
    if (row == p->n_rows) {
        if (p->n_rows == p->cap_rows) {
            size_t cap = p->cap_rows > 0 ? 2 * p->cap_rows : 32;
            kiln_profile_row *grown = kiln__realloc(dev->ctx, p->rows, cap * sizeof *grown);
            if (grown == NULL)
                KILN_FAIL(dev->ctx, KILN_ERR_NO_MEMORY, "out of memory profiling '%s'", name);
            p->rows = grown;
            p->cap_rows = cap;
        }
        char *copy = kiln__strdup(dev->ctx, name);
        if (copy == NULL)
            KILN_FAIL(dev->ctx, KILN_ERR_NO_MEMORY, "out of memory profiling '%s'", name);
        p->rows[p->n_rows++] = (kiln_profile_row){copy, 0, 0.0};
    }
    p->rows[row].launches++;
    p->pending[p->n_pending++] = (pending){event, row};
    event = NULL;
    if (p->n_pending == MAX_PENDING)
        rc = collect(dev);
cleanup:
    if (event != NULL)
        clReleaseEvent(event);
    return rc;
}

static int by_time(const void *a, const void *b)
{
    const kiln_profile_row *x = a, *y = b;
    return x->ms < y->ms ? 1 : x->ms > y->ms ? -1 : strcmp(x->name, y->name);
}

kiln_status kiln_device_profile(kiln_device *dev, const kiln_profile_row **rows, size_t *n_rows)
{
    *rows = NULL;
    *n_rows = 0;
    if (dev->profile == NULL)
        return kiln__error(dev->ctx, KILN_ERR_INVALID_ARGUMENT, __func__,
                           "device '%s' was created without profiling "
                           "(kiln_device_options.profile)",
                           dev->info.name);
    kiln_status rc = collect(dev);
    if (rc != KILN_OK)
        return rc;
    qsort(dev->profile->rows, dev->profile->n_rows, sizeof *dev->profile->rows, by_time);
    *rows = dev->profile->rows;
    *n_rows = dev->profile->n_rows;
    return KILN_OK;
}

void kiln_device_profile_reset(kiln_device *dev)
{
    kiln__profile *p = dev->profile;
    if (p == NULL)
        return;
    (void)collect(dev);
    for (size_t i = 0; i < p->n_rows; i++) {
        p->rows[i].launches = 0;
        p->rows[i].ms = 0;
    }
}
