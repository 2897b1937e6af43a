/*
 * Checkpoints: safetensors files (DESIGN.md "Files kiln writes") holding a model's parameters
 * and buffers, optionally its optimiser's state, string metadata (the runner's config, epoch,
 * best metric, stop reason) and extra host tensors (preprocessing statistics). The first half
 * reads and writes the file format itself; the second maps a model and optimiser onto it.
 *
 * Files are written to a temporary file beside the target, synced and renamed, so the target
 * is always either the old file or the complete new one. Nothing here is thread-safe.
 */
#ifndef KILN_CHECKPOINT_H
#define KILN_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "kiln/train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- The safetensors format ----
 *
 * An 8-byte little-endian header length N, N bytes of UTF-8 JSON
 *   {"__metadata__": {"key": "value", ...},
 *    "<tensor>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
 * padded with spaces to a multiple of 8, then the tensors' raw little-endian row-major bytes,
 * offsets counting from the start of that data section, contiguous and in offset order. The
 * writer orders tensors as the reference implementation does (wider dtypes first, then by
 * name), so each tensor is aligned to its element size. */

typedef enum kiln_safetensors_dtype {
    KILN_SAFETENSORS_F32 = 0,
    KILN_SAFETENSORS_I32 = 1,
    KILN_SAFETENSORS_I64 = 2,
    KILN_SAFETENSORS_U8 = 3,
} kiln_safetensors_dtype;

/* "F32", "I32", "I64", "U8" as the header spells them; "?" for other values. */
const char *kiln_safetensors_dtype_name(kiln_safetensors_dtype dtype);
/* Bytes per element; 0 for other values. */
size_t kiln_safetensors_dtype_size(kiln_safetensors_dtype dtype);

/* A tensor in host memory. For writing, the caller owns every pointer; `data` holds
 * count(shape) elements in host order (little-endian: kiln runs on little-endian hosts). A
 * file may hold dimensions of 0 (empty tensors), which kiln_shape_is_valid rejects for device
 * tensors. For reading, the file owns the name and the bytes, which may not be aligned to the
 * element size in files from other writers: copy them out with memcpy. */
typedef struct kiln_host_tensor {
    const char *name;
    kiln_safetensors_dtype dtype;
    kiln_shape shape;
    const void *data;
} kiln_host_tensor;

/* One metadata entry: UTF-8 strings, borrowed. */
typedef struct kiln_metadata_entry {
    const char *key;
    const char *value;
} kiln_metadata_entry;

/* Writes a safetensors file atomically: a temporary file in the same directory is written,
 * flushed, synced and renamed over `path`; on any failure the temporary is removed and an
 * existing file at `path` is untouched. Names and keys must be non-empty, unique, valid
 * UTF-8 and not "__metadata__". Returns KILN_ERR_INVALID_ARGUMENT naming a bad tensor or key,
 * KILN_ERR_IO naming the file and the failed step, KILN_ERR_NO_MEMORY. */
kiln_status kiln_safetensors_write(kiln_context *ctx, const char *path,
                                   const kiln_metadata_entry *metadata, size_t n_metadata,
                                   const kiln_host_tensor *tensors, size_t n_tensors);

/* A safetensors file read into memory and checked. */
typedef struct kiln_safetensors kiln_safetensors;

/* Reads and checks the whole file: the header length against the file size, the JSON header
 * (strictly: no duplicate keys, no unknown fields, integers only, escapes incl. \uXXXX), each
 * tensor's dtype, shape and offsets, and that the tensors tile the data section exactly.
 * Returns KILN_ERR_IO when the file cannot be read, KILN_ERR_CORRUPT for a malformed or
 * truncated file and KILN_ERR_UNSUPPORTED for a dtype kiln does not read (F16, ...) or more
 * than KILN_MAX_DIMS dimensions, each with a message naming the file and, where there is
 * one, the tensor. The caller destroys the result. */
kiln_status kiln_safetensors_read(kiln_context *ctx, const char *path, kiln_safetensors **out);
void kiln_safetensors_destroy(kiln_safetensors *file);

/* The path the file was read from (owned by the file). */
const char *kiln_safetensors_get_path(const kiln_safetensors *file);
/* Tensors in the order of their offsets; the i-th or NULL past the end. */
size_t kiln_safetensors_n_tensors(const kiln_safetensors *file);
const kiln_host_tensor *kiln_safetensors_tensor(const kiln_safetensors *file, size_t i);
/* The tensor called `name`, or NULL. */
const kiln_host_tensor *kiln_safetensors_find(const kiln_safetensors *file, const char *name);
/* Metadata in file order; the i-th entry or NULL past the end. */
size_t kiln_safetensors_n_metadata(const kiln_safetensors *file);
const kiln_metadata_entry *kiln_safetensors_metadata(const kiln_safetensors *file, size_t i);
/* The metadata value for `key` (owned by the file), or NULL. */
const char *kiln_safetensors_get_metadata(const kiln_safetensors *file, const char *key);

/* ---- Checkpoints ----
 *
 * Tensor names in a kiln checkpoint:
 *   "<value name>"            every parameter and buffer of the model ("fc1.weight",
 *                             "bn1.running_mean"), F32, the value's shape
 *   "optimizer/<state name>"  every optimiser state tensor ("optimizer/fc1.weight.adam_m")
 *   "extra/<name>"            the caller's extra tensors ("extra/preprocess.mean")
 * and metadata: the caller's entries, plus "optimizer/kind" ("sgd", "adam", "adamw"),
 * "optimizer/step" and "optimizer/lr" when an optimiser was saved. */

/* Saves the model's parameters and buffers (blocking reads from its device), the optimiser's
 * state, step and rate when `opt` is not NULL, `metadata` and `extra` (names without the
 * "extra/" prefix) to `path`, atomically as kiln_safetensors_write does. Metadata keys
 * starting with "optimizer/" are reserved. Returns the statuses of kiln_safetensors_write
 * and of the device reads. */
kiln_status kiln_checkpoint_save(const char *path, kiln_model *model, kiln_optimizer *opt,
                                 const kiln_metadata_entry *metadata, size_t n_metadata,
                                 const kiln_host_tensor *extra, size_t n_extra);

/* Loads every parameter and buffer of `model` from `file` by name, and the optimiser's state,
 * step and rate when `opt` is not NULL. The model may live on any device; it must come from
 * the same graph description (names and shapes). Everything is checked before anything is
 * written, so on failure the model and optimiser are unchanged. Returns
 *   KILN_ERR_NOT_FOUND  when names differ: one message names the file and lists the model's
 *                       values missing from it and the tensors it has that the model lacks;
 *                       also when `opt` is given and the file holds no optimiser state
 *   KILN_ERR_SHAPE      when names match but shapes or dtypes differ (listed, file vs model)
 *   KILN_ERR_INVALID_ARGUMENT  when the optimiser's kind differs from the saved one
 *   KILN_ERR_CORRUPT    for an unreadable "optimizer/step" or "optimizer/lr"
 * and the device's upload errors. */
kiln_status kiln_checkpoint_apply(const kiln_safetensors *file, kiln_model *model,
                                  kiln_optimizer *opt);

/* Reads `path` (kiln_safetensors_read, on the model's context) and applies it. When
 * `out_file` is not NULL it receives the file (metadata and extra tensors for the caller,
 * who destroys it); otherwise the file is released. */
kiln_status kiln_checkpoint_load(const char *path, kiln_model *model, kiln_optimizer *opt,
                                 kiln_safetensors **out_file);

/* The extra tensor saved as `name` ("extra/<name>" in the file), or NULL. */
const kiln_host_tensor *kiln_checkpoint_get_extra(const kiln_safetensors *file, const char *name);

#ifdef __cplusplus
}
#endif

#endif
