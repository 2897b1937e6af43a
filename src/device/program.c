/*
 * Programs: compiling OpenCL C for the device (from the embedded cl/ sources, through the disk
 * cache), the per-device table of built programs, and the kernel objects created from them.
 *
 * A failed compile returns KILN_ERR_BUILD with the program, the device and the complete build
 * log, because that log is the only thing that lets a user report a driver bug.
 */
#include <stdio.h>
#include <string.h>

#include "device/device.h"

size_t kiln_program_count(void)
{
    return kiln__n_kernel_sources;
}

const char *kiln_program_name(size_t i)
{
    return i < kiln__n_kernel_sources ? kiln__kernel_sources[i].name : NULL;
}

static const kiln__kernel_source *find_source(const char *name)
{
    for (size_t i = 0; i < kiln__n_kernel_sources; i++) {
        if (strcmp(kiln__kernel_sources[i].name, name) == 0)
            return &kiln__kernel_sources[i];
    }
    return NULL;
}

/* Appends the program's build log to the context's last error. */
static void append_build_log(kiln_device *dev, cl_program program)
{
    size_t n = 0;
    if (clGetProgramBuildInfo(program, dev->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &n) !=
            CL_SUCCESS ||
        n == 0) {
        kiln__error_append(dev->ctx, "\n(the driver returned no build log)");
        return;
    }
    char *log = kiln__alloc(dev->ctx, n + 1);
    if (log == NULL) {
        kiln__error_append(dev->ctx, "\n(out of memory reading the %zu-byte build log)", n);
        return;
    }
    if (clGetProgramBuildInfo(program, dev->device, CL_PROGRAM_BUILD_LOG, n, log, NULL) ==
        CL_SUCCESS) {
        log[n] = '\0';
        kiln__error_append(dev->ctx, "\n--- build log ---\n%s\n--- end of build log ---", log);
    }
    kiln__free(dev->ctx, log);
}

static kiln_status build_from_source(kiln_device *dev, const char *name, const char *source,
                                     size_t n_source, const char *options, cl_program *out)
{
    kiln_status rc = KILN_OK;
    cl_int err = CL_SUCCESS;
    cl_program program = clCreateProgramWithSource(dev->cl_ctx, 1, &source, &n_source, &err);
    if (err != CL_SUCCESS || program == NULL)
        KILN_FAIL(dev->ctx, KILN_ERR_OPENCL,
                  "clCreateProgramWithSource for program '%s' on device '%s' failed with %s", name,
                  dev->info.name, kiln__cl_error_name(err));
    err = clBuildProgram(program, 1, &dev->device, options, NULL, NULL);
    if (err != CL_SUCCESS) {
        rc = kiln__error(dev->ctx, KILN_ERR_BUILD, __func__,
                         "program '%s' failed to compile for device '%s' (%s, driver %s) with "
                         "%s; build options: %s",
                         name, dev->info.name, dev->info.platform_name, dev->info.driver_version,
                         kiln__cl_error_name(err), options);
        append_build_log(dev, program);
        goto cleanup;
    }
    *out = program;
    program = NULL;
cleanup:
    if (program != NULL)
        clReleaseProgram(program);
    return rc;
}

kiln_status kiln__program_build(kiln_device *dev, const char *name, const char *source,
                                size_t n_source, const char *extra_options, cl_program *out,
                                kiln_program_origin *out_origin)
{
    kiln_status rc = KILN_OK;
    kiln_context *ctx = dev->ctx;
    char *options =
        kiln__format(ctx, "%s%s%s", dev->build_options, extra_options != NULL ? " " : "",
                     extra_options != NULL ? extra_options : "");
    if (options == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory building program '%s'", name);
    uint8_t key[KILN_SHA256_DIGEST_SIZE];
    if (dev->cache_dir != NULL) {
        kiln__cache_key(dev, source, n_source, options, key);
        kiln_status loaded = kiln__cache_load(dev, key, options, out);
        if (loaded == KILN_OK) {
            dev->cache_stats.hits++;
            if (out_origin != NULL)
                *out_origin = KILN_PROGRAM_FROM_CACHE;
            goto cleanup;
        }
        if (loaded == KILN_ERR_CORRUPT) {
            dev->cache_stats.corrupt++;
            kiln__log(ctx, KILN_LOG_WARN, "program '%s': %s; rebuilding it from source", name,
                      kiln_context_last_error(ctx));
            kiln_context_clear_error(ctx);
        } else if (loaded == KILN_ERR_NOT_FOUND) {
            dev->cache_stats.misses++;
            kiln_context_clear_error(ctx);
        } else {
            KILN_CHECK(loaded);
        }
    }
    KILN_CHECK(build_from_source(dev, name, source, n_source, options, out));
    if (dev->cache_dir != NULL)
        kiln__cache_store(dev, key, *out);
    if (out_origin != NULL)
        *out_origin = KILN_PROGRAM_FROM_SOURCE;
cleanup:
    kiln__free(ctx, options);
    return rc;
}

static kiln__program *find_program(kiln_device *dev, const char *name)
{
    for (size_t i = 0; i < dev->n_programs; i++) {
        if (strcmp(dev->programs[i].name, name) == 0)
            return &dev->programs[i];
    }
    return NULL;
}

static kiln_status prepare(kiln_device *dev, const char *name, kiln__program **out_program,
                           kiln_program_origin *out_origin)
{
    kiln_status rc = KILN_OK;
    kiln_context *ctx = dev->ctx;
    cl_program program = NULL;
    char *copy = NULL;
    kiln__program *found = find_program(dev, name);
    if (found != NULL) {
        if (out_origin != NULL)
            *out_origin = KILN_PROGRAM_IN_MEMORY;
        *out_program = found;
        return KILN_OK;
    }
    /* "gemm -DGEMM_TM=14 ...": source "gemm" built with the options after the first space, a
     * program of its own (cached and released like any other). */
    char source_name[64];
    size_t base = strcspn(name, " ");
    snprintf(source_name, sizeof source_name, "%.*s", (int)base, name);
    const char *extra_options = name[base] != '\0' ? name + base + 1 : NULL;
    const kiln__kernel_source *src = base < sizeof source_name ? find_source(source_name) : NULL;
    if (src == NULL)
        KILN_FAIL(ctx, KILN_ERR_NOT_FOUND,
                  "no kernel program named '%s' is built into this Kiln (%zu programs; "
                  "`kiln compile --list` names them)",
                  source_name, kiln__n_kernel_sources);
    kiln__program *grown =
        kiln__realloc(ctx, dev->programs, (dev->n_programs + 1) * sizeof *dev->programs);
    if (grown == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory registering program '%s'", name);
    dev->programs = grown;
    copy = kiln__strdup(ctx, name);
    if (copy == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory registering program '%s'", name);
    KILN_CHECK(kiln__program_build(dev, source_name, (const char *)src->bytes, src->n_bytes,
                                   extra_options, &program, out_origin));
    kiln__program *slot = &dev->programs[dev->n_programs++];
    memset(slot, 0, sizeof *slot);
    slot->name = copy;
    slot->program = program;
    copy = NULL;
    program = NULL;
    *out_program = slot;
cleanup:
    if (program != NULL)
        clReleaseProgram(program);
    kiln__free(ctx, copy);
    return rc;
}

kiln_status kiln_device_prepare(kiln_device *dev, const char *name, kiln_program_origin *out_origin)
{
    if (dev == NULL || name == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    kiln__program *program = NULL;
    return prepare(dev, name, &program, out_origin);
}

/* The kernel object for program:kernel, created once and kept with its program. */
kiln_status kiln__device_kernel(kiln_device *dev, const char *program_name, const char *kernel_name,
                                cl_kernel *out)
{
    kiln_status rc = KILN_OK;
    kiln_context *ctx = dev->ctx;
    char *copy = NULL;
    kiln__program *program = NULL;
    KILN_CHECK(prepare(dev, program_name, &program, NULL));
    for (size_t i = 0; i < program->n_kernels; i++) {
        if (strcmp(program->kernels[i].name, kernel_name) == 0) {
            *out = program->kernels[i].kernel;
            return KILN_OK;
        }
    }
    kiln__kernel_slot *grown =
        kiln__realloc(ctx, program->kernels, (program->n_kernels + 1) * sizeof *program->kernels);
    if (grown == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory creating kernel '%s'", kernel_name);
    program->kernels = grown;
    copy = kiln__strdup(ctx, kernel_name);
    if (copy == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory creating kernel '%s'", kernel_name);
    cl_int err = CL_SUCCESS;
    cl_kernel kernel = clCreateKernel(program->program, kernel_name, &err);
    if (err != CL_SUCCESS || kernel == NULL)
        KILN_FAIL(ctx, err == CL_INVALID_KERNEL_NAME ? KILN_ERR_NOT_FOUND : KILN_ERR_OPENCL,
                  "clCreateKernel '%s' from program '%s' on device '%s' failed with %s",
                  kernel_name, program_name, dev->info.name, kiln__cl_error_name(err));
    program->kernels[program->n_kernels].name = copy;
    program->kernels[program->n_kernels].kernel = kernel;
    program->n_kernels++;
    copy = NULL;
    *out = kernel;
cleanup:
    kiln__free(ctx, copy);
    return rc;
}

void kiln__programs_release(kiln_device *dev)
{
    for (size_t i = 0; i < dev->n_programs; i++) {
        kiln__program *p = &dev->programs[i];
        for (size_t k = 0; k < p->n_kernels; k++) {
            clReleaseKernel(p->kernels[k].kernel);
            kiln__free(dev->ctx, p->kernels[k].name);
        }
        kiln__free(dev->ctx, p->kernels);
        clReleaseProgram(p->program);
        kiln__free(dev->ctx, p->name);
    }
    kiln__free(dev->ctx, dev->programs);
    dev->programs = NULL;
    dev->n_programs = 0;
}
