/*
 * Internal view of the safetensors files: the parsed file (safetensors.c reads and writes
 * files, safetensors_header.c parses the JSON header), helpers both share, a growable text
 * buffer that the header writer and the checkpoint's mismatch messages use.
 */
#ifndef KILN_TRAIN_SAFETENSORS_H
#define KILN_TRAIN_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/context.h"
#include "kiln/checkpoint.h"

/* The reference implementation refuses headers above 100 MB; so do we, before allocating. */
#define KILN__SAFETENSORS_MAX_HEADER 100000000u

typedef struct kiln__st_tensor {
    kiln_host_tensor tensor; /* name == the field below; data set once the file is read */
    char *name;
    uint64_t begin, end; /* data_offsets, relative to the data section */
} kiln__st_tensor;

typedef struct kiln__st_metadata {
    kiln_metadata_entry entry; /* points at the fields below */
    char *key, *value;
} kiln__st_metadata;

struct kiln_safetensors {
    kiln_context *ctx;
    char *path;
    kiln__st_tensor *tensors; /* in offset order once the layout is checked */
    size_t n_tensors, tensors_capacity;
    kiln__st_metadata *metadata; /* in header order */
    size_t n_metadata, metadata_capacity;
    uint8_t *data; /* the data section */
};

/* Parses the JSON header (n bytes, not NUL-terminated) into file->tensors (dtype, shape,
 * offsets) and file->metadata. KILN_ERR_CORRUPT or KILN_ERR_UNSUPPORTED naming the file, the
 * byte and the tensor. */
kiln_status kiln__safetensors_parse_header(kiln_safetensors *file, const char *text, size_t n);

/* Length of the well-formed UTF-8 sequence at s (RFC 3629), or 0. */
size_t kiln__utf8_length(const unsigned char *s, size_t n);
/* Sorts `names` and returns the first that occurs twice, or NULL. */
const char *kiln__find_duplicate(const char **names, size_t n);
/* Bytes of a tensor; false when the count overflows 64 bits. */
bool kiln__tensor_bytes(kiln_safetensors_dtype dtype, const kiln_shape *shape, uint64_t *out);

/* Text that grows through kiln__realloc; after a failed allocation `failed` is set and
 * further appends do nothing, so callers check once at the end. `data` is NUL-terminated
 * whenever n > 0. Zero-initialise with the context set. */
typedef struct kiln__text {
    kiln_context *ctx;
    char *data;
    size_t n, capacity;
    bool failed;
} kiln__text;

void kiln__text_append(kiln__text *text, const char *bytes, size_t n);
void kiln__text_printf(kiln__text *text, const char *fmt, ...) KILN__PRINTF(2, 3);
void kiln__text_free(kiln__text *text);

#endif
