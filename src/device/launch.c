/*
 * Kernel launch for the ops layer: binds typed arguments and enqueues an NDRange, so that no
 * code above the device layer touches OpenCL. Launches do not wait; the in-order queue keeps
 * them ordered and kiln_device_finish or a blocking read synchronises.
 */
#include <stdio.h>
#include <string.h>

#include "device/device.h"

/* A uint vector argument of `n` (4 or 8) elements. */
static kiln__arg u32_vector(kiln__arg_kind kind, const uint32_t *v, int n)
{
    kiln__arg a;
    memset(&a, 0, sizeof a);
    a.kind = kind;
    for (int k = 0; k < n; k++)
        a.value.u32v[k] = v[k];
    return a;
}

kiln__arg kiln__arg_u32x4(const uint32_t v[4])
{
    return u32_vector(KILN__ARG_U32X4, v, 4);
}

kiln__arg kiln__arg_u32x8(const uint32_t v[8])
{
    return u32_vector(KILN__ARG_U32X8, v, 8);
}

static kiln_status bind(kiln_device *dev, cl_kernel kernel, const char *kernel_name,
                        const kiln__arg *args, size_t n_args)
{
    for (size_t i = 0; i < n_args; i++) {
        const kiln__arg *a = &args[i];
        cl_int err = CL_INVALID_ARG_VALUE;
        switch (a->kind) {
        case KILN__ARG_BUFFER:
            if (a->value.buffer == NULL)
                return kiln__error(dev->ctx, KILN_ERR_INVALID_ARGUMENT, "kiln__launch",
                                   "kernel '%s' argument %zu: NULL buffer", kernel_name, i);
            err = clSetKernelArg(kernel, (cl_uint)i, sizeof(cl_mem), &a->value.buffer->mem);
            break;
        case KILN__ARG_I32:
            err = clSetKernelArg(kernel, (cl_uint)i, sizeof(cl_int), &a->value.i32);
            break;
        case KILN__ARG_U32:
            err = clSetKernelArg(kernel, (cl_uint)i, sizeof(cl_uint), &a->value.u32);
            break;
        case KILN__ARG_F32:
            err = clSetKernelArg(kernel, (cl_uint)i, sizeof(cl_float), &a->value.f32);
            break;
        case KILN__ARG_LOCAL:
            err = clSetKernelArg(kernel, (cl_uint)i, a->value.local_bytes, NULL);
            break;
        case KILN__ARG_U32X4: {
            cl_uint4 v;
            memcpy(v.s, a->value.u32v, sizeof v.s);
            err = clSetKernelArg(kernel, (cl_uint)i, sizeof v, &v);
            break;
        }
        case KILN__ARG_U32X8: {
            cl_uint8 v;
            memcpy(v.s, a->value.u32v, sizeof v.s);
            err = clSetKernelArg(kernel, (cl_uint)i, sizeof v, &v);
            break;
        }
        }
        if (err != CL_SUCCESS)
            return kiln__error(dev->ctx, KILN_ERR_OPENCL, "kiln__launch",
                               "kernel '%s' argument %zu: clSetKernelArg failed with %s",
                               kernel_name, i, kiln__cl_error_name(err));
    }
    return KILN_OK;
}

kiln_status kiln__launch(kiln_device *dev, const char *program, const char *kernel,
                         const kiln__arg *args, size_t n_args, unsigned work_dim,
                         const size_t *global, const size_t *local)
{
    kiln_status rc = KILN_OK;
    cl_kernel k = NULL;
    if (work_dim < 1 || work_dim > 3)
        KILN_FAIL(dev->ctx, KILN_ERR_INTERNAL, "kernel '%s': work_dim %u (must be 1 to 3)", kernel,
                  work_dim);
    KILN_CHECK(kiln__device_kernel(dev, program, kernel, &k));
    KILN_CHECK(bind(dev, k, kernel, args, n_args));
    size_t rounded[3] = {1, 1, 1};
    for (unsigned d = 0; d < work_dim; d++) {
        if (global[d] == 0)
            return KILN_OK; /* an empty tensor: nothing to do */
        size_t l = local != NULL ? local[d] : 1;
        rounded[d] = (global[d] + l - 1) / l * l;
    }
    cl_event event = NULL;
    cl_int err = clEnqueueNDRangeKernel(dev->queue, k, work_dim, NULL, rounded, local, 0, NULL,
                                        dev->profile != NULL ? &event : NULL);
    if (err != CL_SUCCESS)
        KILN_FAIL(dev->ctx, KILN_ERR_OPENCL,
                  "enqueueing kernel '%s' (program '%s') over %zu x %zu x %zu on device '%s' "
                  "failed with %s",
                  kernel, program, rounded[0], rounded[1], rounded[2], dev->info.name,
                  kiln__cl_error_name(err));
    if (event != NULL) {
        char name[160];
        /* A program built with options ("gemm -DGEMM_TM=14 ...") is named by its base name. */
        snprintf(name, sizeof name, "%.*s:%s", (int)strcspn(program, " "), program, kernel);
        KILN_CHECK(kiln__profile_record(dev, name, event));
    }
cleanup:
    return rc;
}
