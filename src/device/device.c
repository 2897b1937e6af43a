/*
 * The device object: selection from a spec, the OpenCL context and in-order queue, and the
 * -D build options that carry the device's traits into every kernel.
 *
 * Programs (program.c), the disk cache (cache.c) and buffers (buffer.c) hang off this object
 * but live in their own files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device/device.h"
#include "device/gemm.h"
#include "device/select.h"

const char *kiln_device_spec_effective(const char *configured)
{
    const char *env = getenv("KILN_DEVICE");
    if (env != NULL && env[0] != '\0')
        return env;
    if (configured != NULL && configured[0] != '\0')
        return configured;
    return "auto";
}

/* The vendor macro lets kernels carry vendor workarounds without runtime branches. */
static const char *vendor_macro(const kiln_device_info *info)
{
    switch (kiln__device_vendor(info)) {
    case KILN__VENDOR_AMD:
        return "KILN_VENDOR_AMD";
    case KILN__VENDOR_INTEL:
        return "KILN_VENDOR_INTEL";
    case KILN__VENDOR_NVIDIA:
        return "KILN_VENDOR_NVIDIA";
    case KILN__VENDOR_OTHER:
        break;
    }
    return "KILN_VENDOR_OTHER";
}

/* Build options: the language level, the dtype and every trait a kernel may specialise on.
 * No fast-math: results must match the double-precision references. */
static char *build_options(kiln_context *ctx, const kiln_device_info *info)
{
    size_t wg = info->max_work_group_size < 256 ? info->max_work_group_size : 256;
    if (wg == 0)
        wg = 1;
    return kiln__format(
        ctx,
        "-cl-std=CL1.2 -DKILN_REAL=float -D%s=1 -DKILN_DEVICE_%s=1 -DKILN_CL_C_VERSION=%d%d0 "
        "-DKILN_HAS_FP16=%d -DKILN_HAS_FP64=%d -DKILN_MAX_WORK_GROUP_SIZE=%zu "
        "-DKILN_WORK_GROUP_SIZE=%zu -DKILN_LOCAL_MEM_BYTES=%llu -DKILN_MAX_ALLOC_BYTES=%lluUL "
        "-DKILN_GLOBAL_MEM_BYTES=%lluUL",
        vendor_macro(info),
        info->type == KILN_DEVICE_TYPE_GPU   ? "GPU"
        : info->type == KILN_DEVICE_TYPE_CPU ? "CPU"
                                             : "OTHER",
        info->opencl_c_major, info->opencl_c_minor, info->has_fp16 ? 1 : 0, info->has_fp64 ? 1 : 0,
        info->max_work_group_size, wg, (unsigned long long)info->local_mem_bytes,
        (unsigned long long)info->max_alloc_bytes, (unsigned long long)info->global_mem_bytes);
}

bool kiln_cache_disabled_by_env(void)
{
    const char *v = getenv("KILN_NO_CACHE");
    return v != NULL && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0);
}

/* Discovers the devices and matches the spec; the caller frees *out_entries. */
static kiln_status select_entry(kiln_context *ctx, const char *spec_text,
                                kiln__device_entry **out_entries, size_t *out_chosen)
{
    kiln_status rc = KILN_OK;
    kiln__device_entry *entries = NULL;
    kiln_device_info *infos = NULL;
    size_t n_entries = 0;
    kiln__spec spec;
    KILN_CHECK(kiln__spec_parse(ctx, spec_text, &spec));
    KILN_CHECK(kiln__discover(ctx, &entries, &n_entries));
    infos = kiln__calloc(ctx, n_entries, sizeof *infos);
    if (infos == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory selecting a device");
    for (size_t i = 0; i < n_entries; i++)
        infos[i] = entries[i].info;
    KILN_CHECK(kiln__spec_match(ctx, &spec, infos, n_entries, out_chosen));
    *out_entries = entries;
    entries = NULL;
cleanup:
    kiln__free(ctx, infos);
    kiln__free(ctx, entries);
    return rc;
}

kiln_status kiln_device_find(kiln_context *ctx, const char *spec, size_t *out_index)
{
    if (ctx == NULL || out_index == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    kiln__device_entry *entries = NULL;
    kiln_status rc = select_entry(ctx, spec, &entries, out_index);
    kiln__free(ctx, entries);
    return rc;
}

kiln_status kiln_device_create(kiln_context *ctx, const kiln_device_options *options,
                               kiln_device **out)
{
    kiln_status rc = KILN_OK;
    kiln__device_entry *entries = NULL;
    kiln_device *dev = NULL;
    if (ctx == NULL || out == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    *out = NULL;
    kiln_device_options defaults = {0};
    if (options == NULL)
        options = &defaults;

    size_t chosen = 0;
    KILN_CHECK(select_entry(ctx, options->spec, &entries, &chosen));
    const kiln__device_entry *e = &entries[chosen];
    if (e->info.opencl_c_major < 1 || (e->info.opencl_c_major == 1 && e->info.opencl_c_minor < 2))
        KILN_FAIL(ctx, KILN_ERR_UNSUPPORTED,
                  "device '%s' (%s) reports '%s'; Kiln's kernels need OpenCL C 1.2 or newer. "
                  "Choose another device (see `kiln devices`) or update its driver",
                  e->info.name, e->info.platform_name, e->info.opencl_c_version);

    dev = kiln__calloc(ctx, 1, sizeof *dev);
    if (dev == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory creating device '%s'", e->info.name);
    dev->ctx = ctx;
    dev->info = e->info;
    dev->platform = e->platform;
    dev->device = e->device;

    cl_int err = CL_SUCCESS;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)e->platform, 0};
    dev->cl_ctx = clCreateContext(props, 1, &e->device, NULL, NULL, &err);
    if (err != CL_SUCCESS || dev->cl_ctx == NULL)
        KILN_FAIL(ctx, KILN_ERR_OPENCL, "clCreateContext for device '%s' (%s) failed with %s",
                  e->info.name, e->info.platform_name, kiln__cl_error_name(err));
    /* clCreateCommandQueue is deprecated in OpenCL 2.0 but is the 1.2 API we target. */
    cl_command_queue_properties queue_props = options->profile ? CL_QUEUE_PROFILING_ENABLE : 0;
    dev->queue = clCreateCommandQueue(dev->cl_ctx, e->device, queue_props, &err);
    if (err != CL_SUCCESS || dev->queue == NULL)
        KILN_FAIL(ctx, KILN_ERR_OPENCL, "clCreateCommandQueue for device '%s' (%s) failed with %s",
                  e->info.name, e->info.platform_name, kiln__cl_error_name(err));
    if (options->profile)
        KILN_CHECK(kiln__profile_create(dev));
    dev->build_options = build_options(ctx, &dev->info);
    if (dev->build_options == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory formatting build options");
    bool disable = options->disable_cache || kiln_cache_disabled_by_env();
    KILN_CHECK(kiln__cache_resolve_dir(ctx, options->cache_dir, disable, &dev->cache_dir));
    kiln__gemm_table_load(dev);
    kiln__log(ctx, KILN_LOG_DEBUG, "device %zu: '%s' on '%s' (%s), binary cache %s",
              dev->info.index, dev->info.name, dev->info.platform_name, dev->info.driver_version,
              dev->cache_dir != NULL ? dev->cache_dir : "disabled");
    *out = dev;
    dev = NULL;
cleanup:
    kiln_device_destroy(dev);
    kiln__free(ctx, entries);
    return rc;
}

void kiln_device_destroy(kiln_device *dev)
{
    if (dev == NULL)
        return;
    kiln_context *ctx = dev->ctx;
    if (dev->queue != NULL)
        clFinish(dev->queue);
    kiln__gemm_release(dev); /* the workspace's last kernels have run */
    kiln__gemm_table_release(dev);
    kiln__programs_release(dev);
    kiln__profile_destroy(dev);
    if (dev->queue != NULL)
        clReleaseCommandQueue(dev->queue);
    if (dev->cl_ctx != NULL)
        clReleaseContext(dev->cl_ctx);
    kiln__free(ctx, dev->build_options);
    kiln__free(ctx, dev->cache_dir);
    kiln__free(ctx, dev);
}

const kiln_device_info *kiln_device_get_info(const kiln_device *dev)
{
    return &dev->info;
}

kiln_context *kiln_device_get_context(const kiln_device *dev)
{
    return dev->ctx;
}

const char *kiln_device_get_build_options(const kiln_device *dev)
{
    return dev->build_options;
}

const char *kiln_device_get_cache_dir(const kiln_device *dev)
{
    return dev->cache_dir;
}

void kiln_device_get_cache_stats(const kiln_device *dev, kiln_cache_stats *out)
{
    *out = dev->cache_stats;
}

uint64_t kiln_device_get_allocated_bytes(const kiln_device *dev)
{
    return dev->allocated_bytes;
}

kiln_status kiln_device_finish(kiln_device *dev)
{
    kiln_status rc = KILN_OK;
    cl_int err = clFinish(dev->queue);
    if (err != CL_SUCCESS)
        KILN_FAIL(dev->ctx, KILN_ERR_OPENCL, "clFinish on device '%s' failed with %s",
                  dev->info.name, kiln__cl_error_name(err));
cleanup:
    return rc;
}
