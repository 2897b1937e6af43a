/*
 * Internal view of the device layer shared by its files: the device struct, discovery with
 * OpenCL handles, the program table, the disk cache and the kernel-launch interface that ops
 * use. Upper layers include this only for kiln__launch and its argument type.
 */
#ifndef KILN_DEVICE_DEVICE_H
#define KILN_DEVICE_DEVICE_H

#include <stdint.h>

#include "core/context.h"
#include "core/sha256.h"
#include "device/cl.h"
#include "kiln/device.h"

/* ---- discovery (discover.c) ---- */

typedef struct kiln__device_entry {
    kiln_device_info info;
    cl_platform_id platform;
    cl_device_id device;
} kiln__device_entry;

/* Every device of every platform; free with kiln__free. */
kiln_status kiln__discover(kiln_context *ctx, kiln__device_entry **out_entries, size_t *out_count);

/* ---- embedded sources (generated at build time from the cl/ sources) ---- */

typedef struct kiln__kernel_source {
    const char *name;           /* file name without ".cl" */
    const unsigned char *bytes; /* the source text, NUL-terminated */
    size_t n_bytes;             /* without the NUL */
} kiln__kernel_source;

extern const kiln__kernel_source kiln__kernel_sources[];
extern const size_t kiln__n_kernel_sources;

/* ---- programs (program.c) ---- */

typedef struct kiln__kernel_slot {
    char *name;
    cl_kernel kernel;
} kiln__kernel_slot;

typedef struct kiln__program {
    char *name;
    cl_program program;
    kiln__kernel_slot *kernels;
    size_t n_kernels;
} kiln__program;

typedef struct kiln__profile kiln__profile;
typedef struct kiln__gemm_table kiln__gemm_table;

struct kiln_device {
    kiln_context *ctx;
    kiln_device_info info;
    cl_platform_id platform;
    cl_device_id device;
    cl_context cl_ctx;
    cl_command_queue queue;
    char *build_options;
    char *cache_dir; /* NULL: cache disabled */
    kiln_cache_stats cache_stats;
    kiln__program *programs;
    size_t n_programs;
    uint64_t allocated_bytes;
    kiln__profile *profile;             /* NULL unless kiln_device_options.profile */
    struct kiln_buffer *gemm_workspace; /* gemm.c's packed A; see kiln__gemm_release */
    struct kiln_buffer *gemm_slices;    /* gemm_split.c's partial products, likewise */
    kiln__gemm_table *gemm_table;       /* tuning results and shape recording (gemm_table.c) */
    bool gemm_env_warned;               /* a malformed KILN_GEMM* variable was logged */
    cl_uint gemm_float_width;           /* native float vector width; 0 until gemm.c asks */
};

struct kiln_buffer {
    kiln_device *dev;
    cl_mem mem;
    size_t n_bytes;
};

/* Builds `source` as program `name` with the device's options plus `extra_options` (may be
 * NULL), through the disk cache. The caller owns the returned program. */
kiln_status kiln__program_build(kiln_device *dev, const char *name, const char *source,
                                size_t n_source, const char *extra_options, cl_program *out,
                                kiln_program_origin *out_origin);

/* profile.c: the table behind kiln_device_profile. _record takes ownership of `event` (the
 * event of one launch of kernel `name`), also on failure. */
kiln_status kiln__profile_create(kiln_device *dev);
void kiln__profile_destroy(kiln_device *dev);
kiln_status kiln__profile_record(kiln_device *dev, const char *name, cl_event event);

/* The kernel object for program:kernel, created on first use and owned by the device. */
kiln_status kiln__device_kernel(kiln_device *dev, const char *program_name, const char *kernel_name,
                                cl_kernel *out);

void kiln__programs_release(kiln_device *dev);

/* ---- disk cache (cache.c) ---- */

enum { KILN__CACHE_FORMAT = 1 };

/* The key of one program binary: SHA-256 over the cache format number, the source, the build
 * options and the platform and device identity. */
void kiln__cache_key(const kiln_device *dev, const char *source, size_t n_source,
                     const char *options, uint8_t key[KILN_SHA256_DIGEST_SIZE]);

/* Loads the binary for `key` into a built program. KILN_ERR_NOT_FOUND when there is no entry;
 * KILN_ERR_CORRUPT when one exists but is unusable (the caller rebuilds and overwrites it). */
kiln_status kiln__cache_load(kiln_device *dev, const uint8_t key[KILN_SHA256_DIGEST_SIZE],
                             const char *options, cl_program *out);

/* Stores the program's binary atomically. Failures are logged and counted, never fatal. */
void kiln__cache_store(kiln_device *dev, const uint8_t key[KILN_SHA256_DIGEST_SIZE],
                       cl_program program);

/* The entry's file path for `key` (caller frees), or NULL when out of memory. */
char *kiln__cache_entry_path(kiln_context *ctx, const char *dir,
                             const uint8_t key[KILN_SHA256_DIGEST_SIZE]);

/* Writes `head` then `body` to `path` atomically: creates `dir` (mkdir -p), writes a temporary
 * file beside `path`, flushes and syncs it, then renames it over `path`. */
kiln_status kiln__cache_write_file(kiln_context *ctx, const char *dir, const char *path,
                                   const void *head, size_t n_head, const void *body,
                                   size_t n_body);

/* Resolves the cache directory for a device: NULL in *out when disabled. */
kiln_status kiln__cache_resolve_dir(kiln_context *ctx, const char *override, bool disable,
                                    char **out);

/* ---- kernel launch (launch.c): what ops use instead of OpenCL calls ---- */

typedef enum kiln__arg_kind {
    KILN__ARG_BUFFER,
    KILN__ARG_I32,
    KILN__ARG_U32,
    KILN__ARG_F32,
    KILN__ARG_LOCAL, /* local memory of `local_bytes` */
    KILN__ARG_U32X4, /* a uint4: up to four collapsed dimensions or strides */
    KILN__ARG_U32X8, /* a uint8: per-slot offsets and sizes of a grouped launch */
} kiln__arg_kind;

typedef struct kiln__arg {
    kiln__arg_kind kind;
    union {
        const kiln_buffer *buffer;
        int32_t i32;
        uint32_t u32;
        float f32;
        size_t local_bytes;
        uint32_t u32v[8]; /* KILN__ARG_U32X4 uses the first 4 */
    } value;
} kiln__arg;

#define KILN__ARG_BUF(b) ((kiln__arg){.kind = KILN__ARG_BUFFER, .value.buffer = (b)})
#define KILN__ARG_INT(x) ((kiln__arg){.kind = KILN__ARG_I32, .value.i32 = (int32_t)(x)})
#define KILN__ARG_UINT(x) ((kiln__arg){.kind = KILN__ARG_U32, .value.u32 = (uint32_t)(x)})
#define KILN__ARG_FLOAT(x) ((kiln__arg){.kind = KILN__ARG_F32, .value.f32 = (float)(x)})
#define KILN__ARG_LOCAL_BYTES(n) ((kiln__arg){.kind = KILN__ARG_LOCAL, .value.local_bytes = (n)})
/* From a uint32_t[4] array. */
kiln__arg kiln__arg_u32x4(const uint32_t v[4]);
/* From a uint32_t[8] array. */
kiln__arg kiln__arg_u32x8(const uint32_t v[8]);

/* Enqueues kernel `kernel` of program `program` (built on first use) over `global` work-items
 * per dimension. `local` may be NULL (driver's choice); otherwise each global size is rounded
 * up to a multiple of it, so kernels must guard against indices past their true size. Does not
 * wait for completion. */
kiln_status kiln__launch(kiln_device *dev, const char *program, const char *kernel,
                         const kiln__arg *args, size_t n_args, unsigned work_dim,
                         const size_t *global, const size_t *local);

#endif
