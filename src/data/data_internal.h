/*
 * Internal helpers shared by the data layer: a byte reader over plain or gzip files that
 * knows its offset (for messages), dataset allocation and in-place row compaction, the Philox
 * permutation behind splits and epoch shuffles, and row hashing for duplicates and leakage.
 * Nothing outside src/data includes this.
 */
#ifndef KILN_DATA_INTERNAL_H
#define KILN_DATA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/context.h"
#include "kiln/data.h"

/* KILN_FAIL for helpers that report as `function` (the public entry point they serve). */
#define KILN__FAIL_AS(function, ctx, status, ...)                                                  \
    do {                                                                                           \
        rc = kiln__error((ctx), (status), (function), __VA_ARGS__);                                \
        goto cleanup;                                                                              \
    } while (0)

/* ---- reader.c ---- */

/* A file opened with zlib's gzopen, which reads gzip and plain files alike. Offsets count
 * decompressed bytes. `function` prefixes every message. */
typedef struct kiln__reader {
    kiln_context *ctx;
    const char *function;
    const char *path;
    void *file; /* gzFile */
    int64_t offset;
} kiln__reader;

/* KILN_ERR_IO "cannot open '<path>': <reason>". */
kiln_status kiln__reader_open(kiln__reader *r, kiln_context *ctx, const char *function,
                              const char *path);
void kiln__reader_close(kiln__reader *r);
/* Reads up to n bytes; *got < n only at the end of the file. KILN_ERR_CORRUPT for a damaged
 * gzip stream, KILN_ERR_IO for a read error, each naming the file and offset. */
kiln_status kiln__reader_read(kiln__reader *r, void *buffer, size_t n, size_t *got);
/* Reads exactly n bytes of `what`; a short read is KILN_ERR_CORRUPT "'<path>': truncated at
 * byte offset <o>: expected <n> bytes of <what>, got <k>". */
kiln_status kiln__reader_read_exact(kiln__reader *r, void *buffer, size_t n, const char *what);
/* KILN_ERR_CORRUPT when bytes remain: "'<path>': unexpected data after byte offset <o>
 * (<what> ends there)". */
kiln_status kiln__reader_expect_end(kiln__reader *r, const char *what);
/* The whole (decompressed) file, NUL-terminated; the caller frees *data. */
kiln_status kiln__read_file(kiln_context *ctx, const char *function, const char *path, char **data,
                            size_t *n_bytes);

/* ---- dataset.c ---- */

/* kiln_dataset_create without the public argument checks; `function` names the caller. */
kiln_status kiln__dataset_alloc(kiln_context *ctx, const char *function, const char *name,
                                int64_t n, const kiln_shape *feature_shape, kiln_label_kind labels,
                                const kiln_shape *label_shape, kiln_dataset **out);
/* Keeps the samples with keep[i] true, in order, and shrinks ds->n. */
void kiln__dataset_keep_rows(kiln_dataset *ds, const bool *keep);
/* Sets n_classes to 1 + the largest class index (CLASS only). */
void kiln__dataset_count_classes(kiln_dataset *ds);
/* Whether sample i of a and sample j of b have equal labels (true without labels). */
bool kiln__dataset_labels_equal(const kiln_dataset *a, int64_t i, const kiln_dataset *b, int64_t j);

/* ---- prepared.c ---- */

/* Drops ds's reference to the mapped file holding its arrays (unmapped with the last). */
void kiln__dataset_release_mapping(kiln_dataset *ds);

/* ---- batch.c ---- */

/* Philox streams: the fourth counter word, so that splits and shuffles never share draws. */
enum { KILN__STREAM_SPLIT = 0x53504c54u, KILN__STREAM_SHUFFLE = 0x53484646u };

/* Fisher-Yates shuffle of items[0..n) in place, drawing for position i from Philox4x32-10
 * with key (seed) and counter (i, sub, stream). */
void kiln__permute(int64_t *items, int64_t n, uint64_t seed, uint32_t sub, uint32_t stream);

/* ---- rows.c ---- */

/* Hash of a feature row, consistent with the equality in data.h. */
uint64_t kiln__row_hash(const float *row, int64_t n);
bool kiln__row_equal(const float *a, const float *b, int64_t n);

#endif
