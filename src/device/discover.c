/*
 * Discovery: every device on every OpenCL platform, with the traits Kiln compiles kernels for
 * (vendor, OpenCL C version, fp16/fp64, work-group and memory limits).
 *
 * A platform that reports no devices is skipped, not an error: ICD files for absent hardware
 * are common. No OpenCL platform at all is an error that says which package to install.
 */
#include <stdio.h>
#include <string.h>

#include "device/device.h"

static const char *const INSTALL_HINT =
    "Install an OpenCL driver (ICD): on Debian/Ubuntu `apt-get install pocl-opencl-icd` for CPU "
    "OpenCL, `mesa-opencl-icd` or ROCm for AMD GPUs, `intel-opencl-icd` for Intel GPUs, "
    "`nvidia-opencl-icd` with the NVIDIA driver for NVIDIA GPUs; the ICD loader finds drivers "
    "through /etc/OpenCL/vendors/*.icd (or $OCL_ICD_VENDORS).";

const char *kiln_device_type_name(kiln_device_type type)
{
    switch (type) {
    case KILN_DEVICE_TYPE_CPU:
        return "CPU";
    case KILN_DEVICE_TYPE_GPU:
        return "GPU";
    case KILN_DEVICE_TYPE_ACCELERATOR:
        return "accelerator";
    case KILN_DEVICE_TYPE_OTHER:
        return "other";
    }
    return "other";
}

static void platform_text(cl_platform_id p, cl_platform_info what, char *out, size_t capacity)
{
    out[0] = '\0';
    if (clGetPlatformInfo(p, what, capacity - 1, out, NULL) != CL_SUCCESS)
        out[0] = '\0';
    out[capacity - 1] = '\0';
}

static void device_text(kiln_context *ctx, cl_device_id d, cl_device_info what, char *out, size_t capacity)
{
    out[0] = '\0';
    /* A too-small buffer is an error in OpenCL, so ask for the size first and truncate. */
    size_t n = 0;
    if (clGetDeviceInfo(d, what, 0, NULL, &n) != CL_SUCCESS || n == 0)
        return;
    char *full = kiln__alloc(ctx, n + 1);
    if (full == NULL)
        return;
    if (clGetDeviceInfo(d, what, n, full, NULL) == CL_SUCCESS) {
        full[n] = '\0';
        snprintf(out, capacity, "%s", full);
    }
    kiln__free(ctx, full);
}

static uint64_t device_u64(cl_device_id d, cl_device_info what)
{
    cl_ulong v = 0;
    return clGetDeviceInfo(d, what, sizeof v, &v, NULL) == CL_SUCCESS ? (uint64_t)v : 0;
}

static uint32_t device_u32(cl_device_id d, cl_device_info what)
{
    cl_uint v = 0;
    return clGetDeviceInfo(d, what, sizeof v, &v, NULL) == CL_SUCCESS ? (uint32_t)v : 0;
}

/* The extension string can be kilobytes long, so it is searched in full, not truncated. */
static bool has_extension(kiln_context *ctx, cl_device_id d, const char *extension)
{
    size_t n = 0;
    if (clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, 0, NULL, &n) != CL_SUCCESS || n == 0)
        return false;
    char *all = kiln__alloc(ctx, n + 1);
    if (all == NULL)
        return false;
    bool found = false;
    if (clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, n, all, NULL) == CL_SUCCESS) {
        all[n] = '\0';
        size_t len = strlen(extension);
        for (const char *p = strstr(all, extension); p != NULL; p = strstr(p + 1, extension)) {
            bool starts = p == all || p[-1] == ' ';
            bool ends = p[len] == '\0' || p[len] == ' ';
            if (starts && ends) {
                found = true;
                break;
            }
        }
    }
    kiln__free(ctx, all);
    return found;
}

static void read_info(kiln_context *ctx, cl_platform_id p, cl_device_id d, kiln_device_info *info)
{
    platform_text(p, CL_PLATFORM_NAME, info->platform_name, sizeof info->platform_name);
    platform_text(p, CL_PLATFORM_VENDOR, info->platform_vendor, sizeof info->platform_vendor);
    platform_text(p, CL_PLATFORM_VERSION, info->platform_version, sizeof info->platform_version);
    device_text(ctx, d, CL_DEVICE_NAME, info->name, sizeof info->name);
    device_text(ctx, d, CL_DEVICE_VENDOR, info->vendor, sizeof info->vendor);
    device_text(ctx, d, CL_DRIVER_VERSION, info->driver_version, sizeof info->driver_version);
    device_text(ctx, d, CL_DEVICE_OPENCL_C_VERSION, info->opencl_c_version,
                sizeof info->opencl_c_version);
    /* The kernel language level comes from the device's OpenCL C version, never from the
     * platform version: PoCL reports platform "OpenCL 3.0" with OpenCL C 1.2 devices. */
    if (sscanf(info->opencl_c_version, "OpenCL C %d.%d", &info->opencl_c_major,
               &info->opencl_c_minor) != 2) {
        info->opencl_c_major = 0;
        info->opencl_c_minor = 0;
    }
    cl_device_type type = 0;
    clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    if (type & CL_DEVICE_TYPE_GPU)
        info->type = KILN_DEVICE_TYPE_GPU;
    else if (type & CL_DEVICE_TYPE_CPU)
        info->type = KILN_DEVICE_TYPE_CPU;
    else if (type & CL_DEVICE_TYPE_ACCELERATOR)
        info->type = KILN_DEVICE_TYPE_ACCELERATOR;
    else
        info->type = KILN_DEVICE_TYPE_OTHER;
    info->vendor_id = device_u32(d, CL_DEVICE_VENDOR_ID);
    info->compute_units = device_u32(d, CL_DEVICE_MAX_COMPUTE_UNITS);
    info->clock_mhz = device_u32(d, CL_DEVICE_MAX_CLOCK_FREQUENCY);
    info->global_mem_bytes = device_u64(d, CL_DEVICE_GLOBAL_MEM_SIZE);
    info->max_alloc_bytes = device_u64(d, CL_DEVICE_MAX_MEM_ALLOC_SIZE);
    info->local_mem_bytes = device_u64(d, CL_DEVICE_LOCAL_MEM_SIZE);
    size_t wg = 0;
    clGetDeviceInfo(d, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, NULL);
    info->max_work_group_size = wg;
    info->has_fp16 = has_extension(ctx, d, "cl_khr_fp16");
    cl_device_fp_config fp64 = 0;
    clGetDeviceInfo(d, CL_DEVICE_DOUBLE_FP_CONFIG, sizeof fp64, &fp64, NULL);
    info->has_fp64 = fp64 != 0 || has_extension(ctx, d, "cl_khr_fp64");
}

kiln_status kiln__discover(kiln_context *ctx, kiln__device_entry **out_entries, size_t *out_count)
{
    kiln_status rc = KILN_OK;
    cl_platform_id *platforms = NULL;
    cl_device_id *devices = NULL;
    kiln__device_entry *entries = NULL;
    size_t n_entries = 0;
    *out_entries = NULL;
    *out_count = 0;

    cl_uint n_platforms = 0;
    cl_int err = clGetPlatformIDs(0, NULL, &n_platforms);
    if (err == -1001 /* CL_PLATFORM_NOT_FOUND_KHR */ || (err == CL_SUCCESS && n_platforms == 0))
        KILN_FAIL(ctx, KILN_ERR_NO_PLATFORM, "no OpenCL platform found. %s", INSTALL_HINT);
    if (err != CL_SUCCESS)
        KILN_FAIL(ctx, KILN_ERR_OPENCL, "clGetPlatformIDs failed with %s. %s",
                  kiln__cl_error_name(err), INSTALL_HINT);
    platforms = kiln__calloc(ctx, n_platforms, sizeof *platforms);
    if (platforms == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory listing %u OpenCL platforms",
                  (unsigned)n_platforms);
    err = clGetPlatformIDs(n_platforms, platforms, NULL);
    if (err != CL_SUCCESS)
        KILN_FAIL(ctx, KILN_ERR_OPENCL, "clGetPlatformIDs failed with %s",
                  kiln__cl_error_name(err));

    for (cl_uint p = 0; p < n_platforms; p++) {
        cl_uint n_devices = 0;
        err = clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, 0, NULL, &n_devices);
        if (err == CL_DEVICE_NOT_FOUND || n_devices == 0)
            continue;
        if (err != CL_SUCCESS) {
            kiln__log(ctx, KILN_LOG_WARN, "OpenCL platform %u: clGetDeviceIDs failed with %s; "
                      "skipping it", (unsigned)p, kiln__cl_error_name(err));
            continue;
        }
        devices = kiln__calloc(ctx, n_devices, sizeof *devices);
        kiln__device_entry *grown =
            kiln__realloc(ctx, entries, (n_entries + n_devices) * sizeof *entries);
        if (devices == NULL || grown == NULL) {
            if (grown != NULL)
                entries = grown;
            KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory listing %u OpenCL devices",
                      (unsigned)n_devices);
        }
        entries = grown;
        err = clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, n_devices, devices, NULL);
        if (err != CL_SUCCESS)
            KILN_FAIL(ctx, KILN_ERR_OPENCL, "clGetDeviceIDs on platform %u failed with %s",
                      (unsigned)p, kiln__cl_error_name(err));
        for (cl_uint d = 0; d < n_devices; d++) {
            kiln__device_entry *e = &entries[n_entries];
            memset(e, 0, sizeof *e);
            e->platform = platforms[p];
            e->device = devices[d];
            read_info(ctx, platforms[p], devices[d], &e->info);
            e->info.index = n_entries;
            e->info.platform_index = p;
            e->info.device_index = d;
            n_entries++;
        }
        kiln__free(ctx, devices);
        devices = NULL;
    }
    if (n_entries == 0)
        KILN_FAIL(ctx, KILN_ERR_NO_PLATFORM,
                  "%u OpenCL platform(s) found, but none reports a device. PoCL reports no "
                  "device when it cannot create its kernel cache ($POCL_CACHE_DIR, else "
                  "~/.cache/pocl): check that HOME exists and the directory is writable. "
                  "Otherwise: %s",
                  (unsigned)n_platforms, INSTALL_HINT);
    *out_entries = entries;
    *out_count = n_entries;
    entries = NULL;
cleanup:
    kiln__free(ctx, entries);
    kiln__free(ctx, devices);
    kiln__free(ctx, platforms);
    return rc;
}

kiln_status kiln_device_list(kiln_context *ctx, kiln_device_info **out_infos, size_t *out_count)
{
    kiln_status rc = KILN_OK;
    kiln__device_entry *entries = NULL;
    size_t n = 0;
    if (ctx == NULL || out_infos == NULL || out_count == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    *out_infos = NULL;
    *out_count = 0;
    KILN_CHECK(kiln__discover(ctx, &entries, &n));
    kiln_device_info *infos = kiln__calloc(ctx, n, sizeof *infos);
    if (infos == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory copying %zu device descriptions", n);
    for (size_t i = 0; i < n; i++)
        infos[i] = entries[i].info;
    *out_infos = infos;
    *out_count = n;
cleanup:
    kiln__free(ctx, entries);
    return rc;
}

void kiln_device_list_free(kiln_context *ctx, kiln_device_info *infos)
{
    if (ctx != NULL)
        kiln__free(ctx, infos);
}
