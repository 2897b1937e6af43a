/*
 * OpenCL devices as Kiln sees them: discovery across every platform, selection by a spec
 * string, compiling the embedded kernels (with an on-disk binary cache) and device buffers.
 *
 * No OpenCL type appears here; handles are opaque. A device is used from one thread at a time,
 * and records its failures in the context it was created from.
 */
#ifndef KILN_DEVICE_H
#define KILN_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln/context.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln_device kiln_device;
typedef struct kiln_buffer kiln_buffer;

typedef enum kiln_device_type {
    KILN_DEVICE_TYPE_CPU = 1,
    KILN_DEVICE_TYPE_GPU = 2,
    KILN_DEVICE_TYPE_ACCELERATOR = 3,
    KILN_DEVICE_TYPE_OTHER = 4,
} kiln_device_type;

enum { KILN_DEVICE_TEXT = 128 };

/* What discovery reads from one device. Strings are NUL-terminated and truncated to fit. */
typedef struct kiln_device_info {
    size_t index;          /* position in kiln_device_list's order, as `kiln devices` shows */
    size_t platform_index; /* clGetPlatformIDs order */
    size_t device_index;   /* clGetDeviceIDs order within the platform */
    char platform_name[KILN_DEVICE_TEXT];
    char platform_vendor[KILN_DEVICE_TEXT];
    char platform_version[KILN_DEVICE_TEXT];
    char name[KILN_DEVICE_TEXT];
    char vendor[KILN_DEVICE_TEXT];
    char driver_version[KILN_DEVICE_TEXT];
    char opencl_c_version[KILN_DEVICE_TEXT]; /* e.g. "OpenCL C 1.2 PoCL" */
    int opencl_c_major, opencl_c_minor;      /* parsed from opencl_c_version; 0.0 if unreadable */
    kiln_device_type type;
    uint32_t vendor_id;
    uint32_t compute_units;
    uint32_t clock_mhz;
    uint64_t global_mem_bytes;
    uint64_t max_alloc_bytes;
    uint64_t local_mem_bytes;
    size_t max_work_group_size;
    bool has_fp16;
    bool has_fp64;
} kiln_device_info;

/* Lists every device of every OpenCL platform. On success `*out_infos` (free it with
 * kiln_device_list_free) holds `*out_count` entries. Returns KILN_ERR_NO_PLATFORM, with a
 * message naming the packages to install, when no OpenCL platform exists. */
kiln_status kiln_device_list(kiln_context *ctx, kiln_device_info **out_infos, size_t *out_count);
void kiln_device_list_free(kiln_context *ctx, kiln_device_info *infos);

/* "CPU", "GPU", "accelerator" or "other". */
const char *kiln_device_type_name(kiln_device_type type);

/* The spec to use given the configured one (from a config file): $KILN_DEVICE when set and
 * non-empty, else `configured`, else "auto". A command-line flag, being more explicit than
 * either, is used as it is without calling this. The result is `configured`, a static string
 * or the environment's. */
const char *kiln_device_spec_effective(const char *configured);

/* The index (in kiln_device_list's order) of the device `spec` names, without creating it.
 * Same errors as kiln_device_create's selection. */
kiln_status kiln_device_find(kiln_context *ctx, const char *spec, size_t *out_index);

typedef struct kiln_device_options {
    const char *spec; /* NULL means "auto"; see docs/DEVICES.md for the forms */
    const char
        *cache_dir;     /* NULL: $KILN_CACHE_DIR, else $XDG_CACHE_HOME/kiln, else ~/.cache/kiln */
    bool disable_cache; /* the environment's KILN_NO_CACHE=1 also disables it */
    bool profile;       /* time every kernel with OpenCL events (kiln_device_profile) */
} kiln_device_options;

/* Selects a device by spec and creates its OpenCL context and queue; compiles nothing yet.
 * Returns KILN_ERR_BAD_SPEC for a malformed spec, KILN_ERR_NO_DEVICE (message lists the
 * devices that exist) when nothing matches, KILN_ERR_NO_PLATFORM, KILN_ERR_UNSUPPORTED for a
 * device below OpenCL C 1.2, KILN_ERR_OPENCL, KILN_ERR_NO_MEMORY. */
kiln_status kiln_device_create(kiln_context *ctx, const kiln_device_options *options,
                               kiln_device **out);
/* Device time per kernel, summed since the device was created or last reset: one row per
 * kernel name ("program:kernel", or "gemm:clblast" for CLBlast's), sorted by time, longest
 * first. Waits for the queue. The rows belong to the device and stay valid until the next
 * launch, profile call or reset. KILN_ERR_INVALID_ARGUMENT when the device was created without
 * options.profile. */
typedef struct kiln_profile_row {
    const char *name;
    uint64_t launches;
    double ms;
} kiln_profile_row;
kiln_status kiln_device_profile(kiln_device *dev, const kiln_profile_row **rows, size_t *n_rows);
void kiln_device_profile_reset(kiln_device *dev);

/* Releases the device's programs, queue and context. Buffers must be destroyed first.
 * NULL is a no-op. */
void kiln_device_destroy(kiln_device *dev);

const kiln_device_info *kiln_device_get_info(const kiln_device *dev);
kiln_context *kiln_device_get_context(const kiln_device *dev);
/* The -D options every kernel of this device is compiled with (dtype and device traits). */
const char *kiln_device_get_build_options(const kiln_device *dev);
/* The binary cache directory in use, or NULL when the cache is disabled. */
const char *kiln_device_get_cache_dir(const kiln_device *dev);

/* Waits for all queued work on the device. */
kiln_status kiln_device_finish(kiln_device *dev);

/* ---- GEMM implementations and tuning (docs/DEVICES.md) ---- */

/* One matrix product as the device runs it: row-major C (m, n) = op(A) (m, k) op(B) (k, n),
 * `batch` products per call (1 for a single one). */
typedef struct kiln_gemm_shape {
    bool transpose_a, transpose_b;
    size_t m, n, k;
    size_t batch;
} kiln_gemm_shape;

/* Parses a shape written "T:MxNxK" or "T:MxNxKxB" (T: NN, NT, TN or TT, the transposes of A
 * and B; B the batch, 1 when absent; sizes 1 to 2^31 in decimal, no sign or leading zero), as
 * `kiln tune --shape` takes it; false, leaving *out alone, when `text` is not one. */
bool kiln_gemm_shape_parse(const char *text, kiln_gemm_shape *out);

/* Starts (clearing what was recorded) or stops recording the shapes of the GEMMs the device
 * runs; each distinct shape is kept once, in first-run order. */
kiln_status kiln_device_record_gemm_shapes(kiln_device *dev, bool on);
/* The shapes recorded so far; valid until the next GEMM or record call. */
void kiln_device_get_gemm_shapes(const kiln_device *dev, const kiln_gemm_shape **shapes,
                                 size_t *n_shapes);

/* Which implementation the device runs `shape` with now, as text ("clblast", or Kiln's kernel
 * "kiln 14x2x16" with its register tile and " packed" when it packs the operands), into `out`;
 * *tuned (may be NULL) says whether it comes from tuning results. */
void kiln_device_gemm_choice(kiln_device *dev, const kiln_gemm_shape *shape, char *out,
                             size_t capacity, bool *tuned);

/* The file holding this device's tuning results: "<cache dir>/<key>.ktune", the key hashed
 * like a program binary's (device, platform and driver identity, the GEMM kernel's source), so
 * a driver or kernel change starts afresh. NULL when the cache is disabled. */
const char *kiln_device_get_tuning_path(const kiln_device *dev);

/* One shape's outcome. */
typedef struct kiln_gemm_tune_row {
    kiln_gemm_shape shape;
    char best[48];        /* the fastest correct implementation (kiln_device_gemm_choice's form) */
    char before[48];      /* what ran the shape before this tuning */
    double best_gflops;   /* its rate; 0 when nothing was timed */
    double before_gflops; /* the earlier implementation's rate */
    int n_timed, n_wrong; /* implementations timed; those rejected (wrong results or failed) */
    bool done;            /* false when the budget ran out before the shape was timed */
} kiln_gemm_tune_row;

typedef struct kiln_gemm_tune_options {
    /* The whole search stops after this many seconds (<= 0: 300), checked between timings. */
    double budget_seconds;
    /* Skip CLBlast's parameter search (its first use compiles for ~40 s on PoCL). CLBlast is
     * still timed as the baseline of a shape it runs now. */
    bool skip_clblast;
    /* 0: every register tile; else only the first max_tiles (each new tile is a kernel
     * variant to compile, ~1-3 s on PoCL: for quick checks and tests). */
    int max_tiles;
    /* Called with a line of progress (no newline) as the search goes (may be NULL). */
    void (*progress)(void *user, const char *line);
    void *user;
} kiln_gemm_tune_options;

/* Times every implementation this device offers for each shape (Kiln's kernel over a set of
 * register tiles, packed and not, and CLBlast with its default parameters and with a set of
 * overrides for CPUs, through CLBlastOverrideParameters), checks each result against a
 * double-precision host reference (every entry of the edge rows and columns, 256 others), and
 * keeps the fastest correct one; a challenger must beat what ran the shape before by 3%. The
 * results take effect at once on `dev` and are merged into the tuning file (when the cache is
 * enabled), which every later device for the same hardware and driver reads at creation.
 * CLBlast's parameters are process-wide and cannot be reset: after tuning, this process keeps
 * the chosen set, or the last one tried when the defaults won. `rows` receives n_shapes rows.
 * Returns KILN_ERR_INVALID_ARGUMENT for no shapes, a zero size or an operand past 2^28
 * elements, KILN_ERR_NO_MEMORY or KILN_ERR_DEVICE_OOM when the operands do not fit,
 * KILN_ERR_OPENCL for a device failure outside the implementations tried, KILN_ERR_IO when
 * the file cannot be written. Not thread-safe: one call per device at a time, with nothing
 * else queued on it. */
kiln_status kiln_device_tune_gemm(kiln_device *dev, const kiln_gemm_shape *shapes, size_t n_shapes,
                                  const kiln_gemm_tune_options *options, kiln_gemm_tune_row *rows);

/* ---- Programs: the embedded cl/<name>.cl sources ---- */

size_t kiln_program_count(void);
/* Name of the i-th embedded program (its file name without ".cl"), or NULL past the end. */
const char *kiln_program_name(size_t i);

typedef enum kiln_program_origin {
    KILN_PROGRAM_FROM_SOURCE = 0, /* compiled from source (cache miss, corrupt or disabled) */
    KILN_PROGRAM_FROM_CACHE = 1,  /* loaded from a binary in the on-disk cache */
    KILN_PROGRAM_IN_MEMORY = 2,   /* already built earlier in this process */
} kiln_program_origin;

/* Builds program `name` for the device now (startup compilation), through the binary cache.
 * A name may carry extra build options after a space ("gemm -DGEMM_TM=8"): that variant of the
 * source is a program of its own, built and cached once per device. `out_origin` may be NULL.
 * Returns KILN_ERR_NOT_FOUND for an unknown name and KILN_ERR_BUILD with the device, program and
 * full build log when compilation fails. */
kiln_status kiln_device_prepare(kiln_device *dev, const char *name,
                                kiln_program_origin *out_origin);

typedef struct kiln_cache_stats {
    uint64_t hits;           /* programs loaded from a valid cache entry */
    uint64_t misses;         /* no entry existed */
    uint64_t corrupt;        /* an entry existed but was unreadable, truncated or rejected */
    uint64_t writes;         /* entries written */
    uint64_t write_failures; /* entries that could not be written (logged, not fatal) */
} kiln_cache_stats;

void kiln_device_get_cache_stats(const kiln_device *dev, kiln_cache_stats *out);

/* ---- The on-disk cache, without a device ---- */

/* True when the environment disables the cache: KILN_NO_CACHE is "1", "true" or "yes". */
bool kiln_cache_disabled_by_env(void);

/* Resolves the cache directory (see kiln_device_options.cache_dir) into `out` of `capacity`
 * bytes. Returns KILN_ERR_NOT_FOUND when no location can be derived (no HOME) and
 * KILN_ERR_INVALID_ARGUMENT when it does not fit. Does not create the directory. */
kiln_status kiln_cache_get_dir(kiln_context *ctx, const char *override, char *out, size_t capacity);

typedef struct kiln_cache_info {
    size_t n_entries;      /* program binaries */
    uint64_t n_bytes;      /* their total size */
    size_t n_data_entries; /* prepared-data files (kiln_prepared_write, `kiln train`'s cache) */
    uint64_t n_data_bytes; /* their total size */
    size_t n_stale_temps;  /* temporary files left by an interrupted write */
} kiln_cache_info;

/* Counts the entries in `dir`; a directory that does not exist yet counts as empty. */
kiln_status kiln_cache_get_info(kiln_context *ctx, const char *dir, kiln_cache_info *out);
/* Removes Kiln's entries (program binaries and prepared data) and temporaries from `dir`
 * (nothing else, GEMM tuning results included); `out_removed` may be NULL. */
kiln_status kiln_cache_clear(kiln_context *ctx, const char *dir, kiln_cache_info *out_removed);
/* Keeps the cache in bounds: removes prepared-data files beyond the `keep_data` most recently
 * modified (a reader touches the file it uses) and temporaries of interrupted writes untouched
 * for an hour (a write in progress renews its file's time). `out_removed` may be NULL. */
kiln_status kiln_cache_trim(kiln_context *ctx, const char *dir, size_t keep_data,
                            kiln_cache_info *out_removed);

/* ---- Buffers ---- */

/* Allocates `n_bytes` of device memory. `purpose` (e.g. "tensor conv1.weight") is named in
 * errors. Returns KILN_ERR_DEVICE_OOM, with the request, the device's maximum allocation and
 * global memory, when the device cannot hold it. */
kiln_status kiln_buffer_create(kiln_device *dev, size_t n_bytes, const char *purpose,
                               kiln_buffer **out);
void kiln_buffer_destroy(kiln_buffer *buffer);
size_t kiln_buffer_get_size(const kiln_buffer *buffer);
/* Blocking copies between host memory and the buffer; the range must lie inside it. */
kiln_status kiln_buffer_write(kiln_buffer *buffer, size_t offset, const void *source,
                              size_t n_bytes);
kiln_status kiln_buffer_read(kiln_buffer *buffer, size_t offset, void *destination, size_t n_bytes);

/* ---- Non-blocking transfers ---- */

/* A transfer queued on the device: a ticket to wait on before the host memory is used. */
typedef struct kiln_transfer kiln_transfer;

/* Queue a copy between host memory and the buffer behind the work already queued on the
 * device, and return at once; the range must lie inside the buffer. The host memory must stay
 * valid and untouched (not written for a write, neither read nor written for a read) until the
 * transfer has completed: until kiln_transfer_wait on its ticket has returned KILN_OK, or
 * kiln_transfer_release has returned, or kiln_device_finish has. The device's queue is in
 * order, so a transfer completes before anything queued after it runs, and waiting for a later
 * one also waits for it.
 * `out_transfer` receives the ticket, which the caller releases with kiln_transfer_release; it
 * may be NULL when the caller synchronises otherwise (kiln_device_finish, a later ticket).
 * Errors: KILN_ERR_INVALID_ARGUMENT (NULL buffer, NULL host memory, a range outside the
 * buffer), KILN_ERR_OPENCL when the device refuses the command, KILN_ERR_NO_MEMORY; on an
 * error nothing was queued and *out_transfer is NULL. */
kiln_status kiln_buffer_write_async(kiln_buffer *buffer, size_t offset, const void *source,
                                    size_t n_bytes, kiln_transfer **out_transfer);
kiln_status kiln_buffer_read_async(kiln_buffer *buffer, size_t offset, void *destination,
                                   size_t n_bytes, kiln_transfer **out_transfer);
/* Waits until the transfer has completed. KILN_ERR_OPENCL, naming the direction, bytes, offset,
 * buffer size and device, when it failed; KILN_ERR_INVALID_ARGUMENT for NULL. Waiting again on
 * a completed ticket returns at once. */
kiln_status kiln_transfer_wait(kiln_transfer *transfer);
/* Waits for the transfer if it is still in flight (ignoring its outcome: wait first to learn
 * it), then frees the ticket; afterwards the host memory may be reused or freed. NULL is a
 * no-op. Release every ticket before destroying its device. */
void kiln_transfer_release(kiln_transfer *transfer);

/* Bytes currently allocated on the device through kiln_buffer_create. */
uint64_t kiln_device_get_allocated_bytes(const kiln_device *dev);

#ifdef __cplusplus
}
#endif

#endif
