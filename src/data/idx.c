/*
 * IDX reader (the MNIST and Fashion-MNIST format of LeCun et al.): a 4-byte magic (two zero
 * bytes, an element type, a dimension count), big-endian u32 dimensions, then big-endian
 * elements. Images become float features as stored (no scaling), labels int32 class indices.
 * Files are streamed in chunks through reader.c, so .gz files never sit in memory whole.
 * Every malformed header, count mismatch, truncation and trailing byte is an error that
 * names the file and byte offset.
 */
#include <stdio.h>
#include <string.h>

#include "data/data_internal.h"

enum { IDX_MAX_DIMS = KILN_MAX_DIMS, CHUNK_BYTES = 1 << 20 };

typedef struct idx_header {
    int type; /* element type code, 0x08 to 0x0E */
    int ndim; /* 1 to IDX_MAX_DIMS */
    int64_t dim[IDX_MAX_DIMS];
    int64_t per_sample; /* product of dim[1..] */
    size_t elem_size;
    int64_t header_bytes;
} idx_header;

static const char *type_name(int type)
{
    switch (type) {
    case 0x08:
        return "ubyte";
    case 0x09:
        return "byte";
    case 0x0B:
        return "short";
    case 0x0C:
        return "int";
    case 0x0D:
        return "float";
    case 0x0E:
        return "double";
    default:
        return NULL;
    }
}

static size_t type_size(int type)
{
    return type <= 0x09 ? 1 : type == 0x0B ? 2 : type == 0x0E ? 8 : 4;
}

static uint64_t big_endian(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Element i of a chunk as a double (exact for every IDX type). */
static double element(const unsigned char *p, int type)
{
    switch (type) {
    case 0x08:
        return p[0];
    case 0x09:
        return (int8_t)p[0];
    case 0x0B:
        return (int16_t)(uint16_t)big_endian(p, 2);
    case 0x0C:
        return (int32_t)(uint32_t)big_endian(p, 4);
    case 0x0D: {
        uint32_t bits = (uint32_t)big_endian(p, 4);
        float f;
        memcpy(&f, &bits, sizeof f);
        return f;
    }
    default: {
        uint64_t bits = big_endian(p, 8);
        double d;
        memcpy(&d, &bits, sizeof d);
        return d;
    }
    }
}

static kiln_status read_header(kiln__reader *r, idx_header *h)
{
    unsigned char magic[4], word[4];
    memset(h, 0, sizeof *h);
    kiln_status rc = kiln__reader_read_exact(r, magic, 4, "the IDX magic number");
    if (rc != KILN_OK)
        return rc;
    if (magic[0] != 0 || magic[1] != 0)
        return kiln__error(r->ctx, KILN_ERR_CORRUPT, r->function,
                           "'%s' is not an IDX file: bad magic number 0x%02x%02x%02x%02x at byte "
                           "offset 0 (expected 0x0000 then a type and a dimension count, e.g. "
                           "0x00000803 for ubyte images)",
                           r->path, magic[0], magic[1], magic[2], magic[3]);
    h->type = magic[2];
    if (type_name(h->type) == NULL)
        return kiln__error(r->ctx, KILN_ERR_CORRUPT, r->function,
                           "'%s': unknown IDX element type 0x%02x at byte offset 2 (expected "
                           "0x08 ubyte, 0x09 byte, 0x0B short, 0x0C int, 0x0D float or 0x0E "
                           "double)",
                           r->path, h->type);
    h->ndim = magic[3];
    if (h->ndim < 1 || h->ndim > IDX_MAX_DIMS)
        return kiln__error(r->ctx, KILN_ERR_CORRUPT, r->function,
                           "'%s': %d dimensions at byte offset 3; Kiln reads IDX files of 1 to "
                           "%d dimensions",
                           r->path, h->ndim, IDX_MAX_DIMS);
    h->elem_size = type_size(h->type);
    h->per_sample = 1;
    for (int d = 0; d < h->ndim; d++) {
        int64_t offset = r->offset;
        rc = kiln__reader_read_exact(r, word, 4, "the IDX dimensions");
        if (rc != KILN_OK)
            return rc;
        h->dim[d] = (int64_t)big_endian(word, 4);
        if (h->dim[d] == 0)
            return kiln__error(r->ctx, KILN_ERR_CORRUPT, r->function,
                               "'%s': dimension %d is 0 at byte offset %lld (every dimension "
                               "must be >= 1)",
                               r->path, d, (long long)offset);
        if (d > 0) {
            if (h->dim[d] > INT32_MAX / h->per_sample)
                return kiln__error(r->ctx, KILN_ERR_CORRUPT, r->function,
                                   "'%s': a sample of the dimensions read up to byte offset "
                                   "%lld has 2^31 or more elements",
                                   r->path, (long long)r->offset);
            h->per_sample *= h->dim[d];
        }
    }
    h->header_bytes = r->offset;
    return KILN_OK;
}

/* "60000 x 28 x 28 ubyte" into `out`. */
static const char *describe(const idx_header *h, char *out, size_t capacity)
{
    size_t used = 0;
    for (int d = 0; d < h->ndim && used < capacity; d++) {
        int k = snprintf(out + used, capacity - used, "%s%lld", d > 0 ? " x " : "",
                         (long long)h->dim[d]);
        used += k > 0 ? (size_t)k : 0;
    }
    if (used < capacity)
        snprintf(out + used, capacity - used, " %s", type_name(h->type));
    return out;
}

/* Streams h->dim[0] * per_sample elements into `features` (floats) or `classes` (int32). */
static kiln_status read_elements(kiln__reader *r, const idx_header *h, float *features,
                                 int32_t *classes)
{
    kiln_status rc = KILN_OK;
    int64_t total = h->dim[0] * h->per_sample;
    size_t per_chunk = CHUNK_BYTES / h->elem_size;
    unsigned char *chunk = kiln__alloc(r->ctx, per_chunk * h->elem_size);
    char what[160], shape[96];
    if (chunk == NULL)
        KILN__FAIL_AS(r->function, r->ctx, KILN_ERR_NO_MEMORY, "no memory for a read buffer");
    snprintf(what, sizeof what, "data for %s", describe(h, shape, sizeof shape));
    for (int64_t done = 0; done < total;) {
        size_t n = (size_t)(total - done) < per_chunk ? (size_t)(total - done) : per_chunk;
        int64_t start = r->offset;
        size_t got = 0;
        KILN_CHECK(kiln__reader_read(r, chunk, n * h->elem_size, &got));
        if (got < n * h->elem_size)
            KILN__FAIL_AS(
                r->function, r->ctx, KILN_ERR_CORRUPT,
                "'%s': truncated at byte offset %lld: expected %lld bytes of %s after the "
                "%lld-byte header, got %lld",
                r->path, (long long)(start + (int64_t)got),
                (long long)total * (long long)h->elem_size, what, (long long)h->header_bytes,
                (long long)(start - h->header_bytes + (int64_t)got));
        for (size_t i = 0; i < n; i++) {
            double v = element(chunk + i * h->elem_size, h->type);
            if (features != NULL) {
                features[done + (int64_t)i] = (float)v;
            } else if (v < 0 || v > INT32_MAX - 1) {
                KILN__FAIL_AS(r->function, r->ctx, KILN_ERR_CORRUPT,
                              "'%s': label %lld is %.0f (byte offset %lld); class indices must be "
                              "in [0, 2^31 - 1)",
                              r->path, (long long)(done + (int64_t)i), v,
                              (long long)(start + (int64_t)(i * h->elem_size)));
            } else {
                classes[done + (int64_t)i] = (int32_t)v;
            }
        }
        done += (int64_t)n;
    }
    KILN_CHECK(kiln__reader_expect_end(r, what));
cleanup:
    kiln__free(r->ctx, chunk);
    return rc;
}

kiln_status kiln_dataset_read_idx(kiln_context *ctx, const char *images_path,
                                  const char *labels_path, kiln_dataset **out)
{
    kiln_status rc = KILN_OK;
    kiln__reader images = {0}, labels = {0};
    idx_header ih, lh;
    kiln_dataset *ds = NULL;
    if (out == NULL)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, __func__, "out is NULL");
    *out = NULL;
    KILN_CHECK(kiln__reader_open(&images, ctx, __func__, images_path));
    KILN_CHECK(read_header(&images, &ih));
    if (labels_path != NULL) {
        KILN_CHECK(kiln__reader_open(&labels, ctx, __func__, labels_path));
        KILN_CHECK(read_header(&labels, &lh));
        if (lh.ndim != 1)
            KILN_FAIL(ctx, KILN_ERR_CORRUPT,
                      "'%s': a label file has 1 dimension (the sample count), this one has %d "
                      "(byte offset 3)",
                      labels_path, lh.ndim);
        if (lh.type == 0x0D || lh.type == 0x0E)
            KILN_FAIL(ctx, KILN_ERR_CORRUPT,
                      "'%s': labels of IDX type %s (byte offset 2) cannot be class indices; "
                      "expected ubyte, byte, short or int",
                      labels_path, type_name(lh.type));
        if (lh.dim[0] != ih.dim[0])
            KILN_FAIL(ctx, KILN_ERR_CORRUPT,
                      "'%s' holds %lld labels but '%s' holds %lld samples; the counts must "
                      "match",
                      labels_path, (long long)lh.dim[0], images_path, (long long)ih.dim[0]);
    }
    kiln_shape shape = {0};
    if (ih.ndim == 3) {
        shape = kiln_shape_of(3, (int64_t[]){1, ih.dim[1], ih.dim[2]});
    } else if (ih.ndim == 1) {
        shape = kiln_shape_of(1, (int64_t[]){1});
    } else {
        shape.ndim = ih.ndim - 1;
        memcpy(shape.dim, ih.dim + 1, (size_t)shape.ndim * sizeof(int64_t));
    }
    KILN_CHECK(kiln__dataset_alloc(ctx, __func__, images_path, ih.dim[0], &shape,
                                   labels_path != NULL ? KILN_LABELS_CLASS : KILN_LABELS_NONE, NULL,
                                   &ds));
    KILN_CHECK(read_elements(&images, &ih, ds->features, NULL));
    if (labels_path != NULL) {
        KILN_CHECK(read_elements(&labels, &lh, NULL, ds->classes));
        kiln__dataset_count_classes(ds);
    }
    *out = ds;
    ds = NULL;
cleanup:
    kiln_dataset_destroy(ds);
    kiln__reader_close(&labels);
    kiln__reader_close(&images);
    return rc;
}
