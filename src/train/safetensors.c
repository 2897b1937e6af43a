/*
 * safetensors files: writing (a small JSON writer for the header, the reference
 * implementation's tensor order and space padding, then an atomic write through a synced
 * temporary file and a rename) and reading (a whole file into memory, checked: header length
 * against the file size, the tiling of the data section by the tensors' offsets). The strict
 * parser for the JSON header lives in safetensors_header.c; mapping a model onto tensor names
 * in checkpoint.c.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "train/safetensors.h"

#include "core/atomic_file.h"
#include "core/bytes.h"

/* ---- text ---- */

void kiln__text_append(kiln__text *t, const char *bytes, size_t n)
{
    if (t->failed)
        return;
    if (n >= SIZE_MAX - t->n) {
        t->failed = true;
        return;
    }
    if (t->n + n + 1 > t->capacity) {
        size_t capacity = t->capacity > 0 ? t->capacity : 256;
        while (capacity < t->n + n + 1) {
            if (capacity > SIZE_MAX / 2) {
                t->failed = true;
                return;
            }
            capacity *= 2;
        }
        char *data = kiln__realloc(t->ctx, t->data, capacity);
        if (data == NULL) {
            t->failed = true;
            return;
        }
        t->data = data;
        t->capacity = capacity;
    }
    memcpy(t->data + t->n, bytes, n);
    t->n += n;
    t->data[t->n] = '\0';
}

void kiln__text_printf(kiln__text *t, const char *fmt, ...)
{
    char small[256];
    va_list args;
    va_start(args, fmt);
    int length = vsnprintf(small, sizeof small, fmt, args);
    va_end(args);
    if (length < 0) {
        t->failed = true;
        return;
    }
    if ((size_t)length < sizeof small) {
        kiln__text_append(t, small, (size_t)length);
        return;
    }
    char *big = t->failed ? NULL : kiln__alloc(t->ctx, (size_t)length + 1);
    if (big == NULL) {
        t->failed = true;
        return;
    }
    va_start(args, fmt);
    vsnprintf(big, (size_t)length + 1, fmt, args);
    va_end(args);
    kiln__text_append(t, big, (size_t)length);
    kiln__free(t->ctx, big);
}

void kiln__text_free(kiln__text *t)
{
    kiln__free(t->ctx, t->data);
    t->data = NULL;
    t->n = t->capacity = 0;
}

/* ---- shared checks ---- */

static const char *const DTYPE_NAMES[] = {"F32", "I32", "I64", "U8"};
static const size_t DTYPE_SIZES[] = {4, 4, 8, 1};
/* The reference implementation orders tensors by dtype, widest first (its enum order), so
 * that every tensor starts aligned to its element size. */
static const int DTYPE_RANK[] = {2, 1, 3, 0};

const char *kiln_safetensors_dtype_name(kiln_safetensors_dtype dtype)
{
    return (unsigned)dtype < 4 ? DTYPE_NAMES[dtype] : "?";
}

size_t kiln_safetensors_dtype_size(kiln_safetensors_dtype dtype)
{
    return (unsigned)dtype < 4 ? DTYPE_SIZES[dtype] : 0;
}

size_t kiln__utf8_length(const unsigned char *s, size_t n)
{
    if (n == 0)
        return 0;
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t length;
    unsigned low = 0x80, high = 0xBF; /* RFC 3629's table: no overlongs, no surrogates */
    if (c >= 0xC2 && c <= 0xDF) {
        length = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        length = 3;
        low = c == 0xE0 ? 0xA0 : low;
        high = c == 0xED ? 0x9F : high;
    } else if (c >= 0xF0 && c <= 0xF4) {
        length = 4;
        low = c == 0xF0 ? 0x90 : low;
        high = c == 0xF4 ? 0x8F : high;
    } else {
        return 0;
    }
    if (n < length || s[1] < low || s[1] > high)
        return 0;
    for (size_t i = 2; i < length; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return length;
}

static bool is_utf8(const char *text)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t n = strlen(text);
    for (size_t i = 0; i < n;) {
        size_t length = kiln__utf8_length(s + i, n - i);
        if (length == 0)
            return false;
        i += length;
    }
    return true;
}

bool kiln__tensor_bytes(kiln_safetensors_dtype dtype, const kiln_shape *shape, uint64_t *out)
{
    uint64_t bytes = kiln_safetensors_dtype_size(dtype);
    for (int d = 0; d < shape->ndim; d++) {
        uint64_t dim = (uint64_t)shape->dim[d];
        if (dim != 0 && bytes > UINT64_MAX / dim)
            return false;
        bytes *= dim;
    }
    *out = bytes;
    return true;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char *kiln__find_duplicate(const char **names, size_t n)
{
    if (n > 1)
        qsort(names, n, sizeof *names, compare_names);
    for (size_t i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            return names[i];
    return NULL;
}

/* ---- writing ---- */

static void put_string(kiln__text *t, const char *s)
{
    kiln__text_append(t, "\"", 1);
    for (const char *p = s; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        const char *escape = c == '"'    ? "\\\""
                             : c == '\\' ? "\\\\"
                             : c == '\n' ? "\\n"
                             : c == '\r' ? "\\r"
                             : c == '\t' ? "\\t"
                             : c == '\b' ? "\\b"
                             : c == '\f' ? "\\f"
                                         : NULL;
        if (escape != NULL)
            kiln__text_append(t, escape, 2);
        else if (c < 0x20)
            kiln__text_printf(t, "\\u%04x", c); /* as serde_json writes them */
        else
            kiln__text_append(t, p, 1);
    }
    kiln__text_append(t, "\"", 1);
}

/* The header as the reference implementation writes it: compact JSON, "__metadata__" first
 * (left out when empty), tensors in file order, then spaces up to a multiple of 8. */
static void put_header(kiln__text *t, const kiln_metadata_entry *metadata, size_t n_metadata,
                       const kiln_host_tensor *const *order, size_t n_tensors)
{
    kiln__text_append(t, "{", 1);
    if (n_metadata > 0) {
        kiln__text_append(t, "\"__metadata__\":{", 16);
        for (size_t i = 0; i < n_metadata; i++) {
            if (i > 0)
                kiln__text_append(t, ",", 1);
            put_string(t, metadata[i].key);
            kiln__text_append(t, ":", 1);
            put_string(t, metadata[i].value);
        }
        kiln__text_append(t, "}", 1);
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < n_tensors; i++) {
        const kiln_host_tensor *tensor = order[i];
        if (i > 0 || n_metadata > 0)
            kiln__text_append(t, ",", 1);
        put_string(t, tensor->name);
        kiln__text_printf(t, ":{\"dtype\":\"%s\",\"shape\":[",
                          kiln_safetensors_dtype_name(tensor->dtype));
        for (int d = 0; d < tensor->shape.ndim; d++)
            kiln__text_printf(t, d > 0 ? ",%lld" : "%lld", (long long)tensor->shape.dim[d]);
        uint64_t bytes = 0;
        kiln__tensor_bytes(tensor->dtype, &tensor->shape, &bytes);
        kiln__text_printf(t, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)offset,
                          (unsigned long long)(offset + bytes));
        offset += bytes;
    }
    kiln__text_append(t, "}", 1);
    while (!t->failed && t->n % 8 != 0)
        kiln__text_append(t, " ", 1);
}

static int compare_for_file(const void *a, const void *b)
{
    const kiln_host_tensor *x = *(const kiln_host_tensor *const *)a;
    const kiln_host_tensor *y = *(const kiln_host_tensor *const *)b;
    if (DTYPE_RANK[x->dtype] != DTYPE_RANK[y->dtype])
        return DTYPE_RANK[y->dtype] - DTYPE_RANK[x->dtype];
    return strcmp(x->name, y->name);
}

/* Argument checks for tensor i; records the error naming the file and the tensor. */
static kiln_status check_tensor(kiln_context *ctx, const char *path, const kiln_host_tensor *t,
                                size_t i)
{
    const char *fn = "kiln_safetensors_write";
    if (t->name == NULL || t->name[0] == '\0')
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn, "%s: tensor %zu has no name", path,
                           i);
    if (!is_utf8(t->name))
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn,
                           "%s: the name of tensor %zu is not valid UTF-8", path, i);
    if (strcmp(t->name, "__metadata__") == 0)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn,
                           "%s: '__metadata__' is reserved and cannot name a tensor", path);
    if ((unsigned)t->dtype >= 4)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn,
                           "%s: tensor '%s' has dtype %d; kiln writes F32, I32, I64 and U8", path,
                           t->name, (int)t->dtype);
    bool shape_ok = t->shape.ndim >= 0 && t->shape.ndim <= KILN_MAX_DIMS;
    for (int d = 0; shape_ok && d < t->shape.ndim; d++)
        shape_ok = t->shape.dim[d] >= 0;
    uint64_t bytes = 0;
    if (!shape_ok || !kiln__tensor_bytes(t->dtype, &t->shape, &bytes) || bytes > SIZE_MAX)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn,
                           "%s: tensor '%s' has an invalid shape (ndim %d; up to %d dimensions, "
                           "each >= 0, and a size that fits in memory)",
                           path, t->name, t->shape.ndim, KILN_MAX_DIMS);
    if (bytes > 0 && t->data == NULL)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn,
                           "%s: tensor '%s' has %llu bytes but no data", path, t->name,
                           (unsigned long long)bytes);
    return KILN_OK;
}

/* Writes the length, header and tensors through an atomic file (core/atomic_file.h): on
 * failure the temporary is removed and `path` untouched. */
static kiln_status write_atomically(kiln_context *ctx, const char *path, const kiln__text *header,
                                    const kiln_host_tensor *const *order, size_t n_tensors)
{
    kiln__atomic_file af;
    kiln_status rc = kiln__atomic_begin(&af, ctx, "kiln_safetensors_write", path);
    if (rc != KILN_OK)
        return rc;
    unsigned char length[8];
    for (int i = 0; i < 8; i++)
        length[i] = (unsigned char)((uint64_t)header->n >> (8 * i));
    bool ok = fwrite(length, 1, 8, af.file) == 8 &&
              fwrite(header->data, 1, header->n, af.file) == header->n;
    for (size_t i = 0; ok && i < n_tensors; i++) {
        uint64_t bytes = 0;
        kiln__tensor_bytes(order[i]->dtype, &order[i]->shape, &bytes);
        ok = bytes == 0 || fwrite(order[i]->data, 1, (size_t)bytes, af.file) == (size_t)bytes;
    }
    if (!ok) {
        rc = kiln__error(ctx, KILN_ERR_IO, "kiln_safetensors_write",
                         "cannot write %s (the temporary file for %s): %s", af.temp, path,
                         strerror(errno));
        kiln__atomic_abort(&af);
        return rc;
    }
    return kiln__atomic_commit(&af);
}

kiln_status kiln_safetensors_write(kiln_context *ctx, const char *path,
                                   const kiln_metadata_entry *metadata, size_t n_metadata,
                                   const kiln_host_tensor *tensors, size_t n_tensors)
{
    if (ctx == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    if (path == NULL || (n_metadata > 0 && metadata == NULL) || (n_tensors > 0 && tensors == NULL))
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, __func__,
                           "path, metadata and tensors must not be NULL (metadata and tensors "
                           "may be when their count is 0)");
    kiln_status rc = KILN_OK;
    kiln__text header = {.ctx = ctx};
    size_t n_names = n_tensors > n_metadata ? n_tensors : n_metadata;
    const char **names = kiln__calloc(ctx, n_names + 1, sizeof *names);
    const kiln_host_tensor **order = kiln__calloc(ctx, n_tensors + 1, sizeof *order);
    if (names == NULL || order == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory writing %s", path);
    if (!kiln__host_is_little_endian())
        KILN_FAIL(ctx, KILN_ERR_UNSUPPORTED,
                  "%s: kiln writes safetensors on little-endian hosts "
                  "only",
                  path);
    for (size_t i = 0; i < n_tensors; i++) {
        KILN_CHECK(check_tensor(ctx, path, &tensors[i], i));
        names[i] = tensors[i].name;
        order[i] = &tensors[i];
    }
    const char *twice = kiln__find_duplicate(names, n_tensors);
    if (twice != NULL)
        KILN_FAIL(ctx, KILN_ERR_INVALID_ARGUMENT, "%s: tensor name '%s' appears twice", path,
                  twice);
    for (size_t i = 0; i < n_metadata; i++) {
        const kiln_metadata_entry *e = &metadata[i];
        if (e->key == NULL || e->key[0] == '\0' || e->value == NULL)
            KILN_FAIL(ctx, KILN_ERR_INVALID_ARGUMENT,
                      "%s: metadata entry %zu needs a non-empty key and a value", path, i);
        if (!is_utf8(e->key) || !is_utf8(e->value))
            KILN_FAIL(ctx, KILN_ERR_INVALID_ARGUMENT, "%s: metadata entry '%s' is not valid UTF-8",
                      path, e->key);
        names[i] = e->key;
    }
    twice = kiln__find_duplicate(names, n_metadata);
    if (twice != NULL)
        KILN_FAIL(ctx, KILN_ERR_INVALID_ARGUMENT, "%s: metadata key '%s' appears twice", path,
                  twice);
    if (n_tensors > 1)
        qsort(order, n_tensors, sizeof *order, compare_for_file);
    put_header(&header, metadata, n_metadata, order, n_tensors);
    if (header.failed)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory writing the header of %s", path);
    KILN_CHECK(write_atomically(ctx, path, &header, order, n_tensors));
cleanup:
    kiln__text_free(&header);
    kiln__free(ctx, names);
    kiln__free(ctx, order);
    return rc;
}

/* ---- reading ---- */

static kiln_status read_exactly(kiln_context *ctx, FILE *f, const char *path, void *out, size_t n,
                                const char *what)
{
    if (n == 0 || fread(out, 1, n, f) == n)
        return KILN_OK;
    if (ferror(f))
        return kiln__error(ctx, KILN_ERR_IO, "kiln_safetensors_read", "cannot read %s of %s: %s",
                           what, path, strerror(errno));
    return kiln__error(ctx, KILN_ERR_CORRUPT, "kiln_safetensors_read",
                       "%s: the file ended while reading %s (did it change while being read?)",
                       path, what);
}

static int compare_offsets(const void *a, const void *b)
{
    const kiln__st_tensor *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Each tensor's byte count matches its dtype and shape, and the tensors, in offset order,
 * tile the data section's `n_data` bytes from 0 without gap or overlap. */
static kiln_status check_layout(kiln_safetensors *file, uint64_t n_data)
{
    kiln_context *ctx = file->ctx;
    const char *fn = "kiln_safetensors_read", *path = file->path;
    for (size_t i = 0; i < file->n_tensors; i++) {
        kiln__st_tensor *t = &file->tensors[i];
        uint64_t bytes = 0;
        char shape[128];
        kiln_shape_format(&t->tensor.shape, shape, sizeof shape);
        if (!kiln__tensor_bytes(t->tensor.dtype, &t->tensor.shape, &bytes))
            return kiln__error(ctx, KILN_ERR_CORRUPT, fn,
                               "%s: tensor '%s' has shape %s, too large to address", path, t->name,
                               shape);
        if (t->begin > t->end)
            return kiln__error(ctx, KILN_ERR_CORRUPT, fn,
                               "%s: tensor '%s' has data_offsets [%llu, %llu], which run "
                               "backwards",
                               path, t->name, (unsigned long long)t->begin,
                               (unsigned long long)t->end);
        if (t->end - t->begin != bytes)
            return kiln__error(ctx, KILN_ERR_CORRUPT, fn,
                               "%s: tensor '%s' of dtype %s and shape %s needs %llu bytes, but "
                               "its data_offsets [%llu, %llu] span %llu",
                               path, t->name, kiln_safetensors_dtype_name(t->tensor.dtype), shape,
                               (unsigned long long)bytes, (unsigned long long)t->begin,
                               (unsigned long long)t->end, (unsigned long long)(t->end - t->begin));
    }
    if (file->n_tensors > 1)
        qsort(file->tensors, file->n_tensors, sizeof *file->tensors, compare_offsets);
    uint64_t expected = 0;
    for (size_t i = 0; i < file->n_tensors; i++) {
        const kiln__st_tensor *t = &file->tensors[i], *prev = i > 0 ? t - 1 : NULL;
        if (t->begin < expected)
            return kiln__error(ctx, KILN_ERR_CORRUPT, fn,
                               "%s: tensor '%s' (data_offsets [%llu, %llu]) overlaps tensor "
                               "'%s', which ends at %llu",
                               path, t->name, (unsigned long long)t->begin,
                               (unsigned long long)t->end, prev->name,
                               (unsigned long long)expected);
        if (t->begin > expected && prev == NULL)
            return kiln__error(ctx, KILN_ERR_CORRUPT, fn,
                               "%s: the first tensor, '%s', starts at %llu instead of 0", path,
                               t->name, (unsigned long long)t->begin);
        if (t->begin > expected)
            return kiln__error(ctx, KILN_ERR_CORRUPT, fn,
                               "%s: %llu unused bytes between tensor '%s' (ends at %llu) and "
                               "tensor '%s' (starts at %llu)",
                               path, (unsigned long long)(t->begin - expected), prev->name,
                               (unsigned long long)expected, t->name, (unsigned long long)t->begin);
        expected = t->end;
    }
    for (size_t i = 0; expected > n_data && i < file->n_tensors; i++)
        if (file->tensors[i].end > n_data)
            return kiln__error(ctx, KILN_ERR_CORRUPT, fn,
                               "%s: tensor '%s' ends at byte %llu of the data section, but the "
                               "file holds only %llu bytes after the header: it is truncated",
                               path, file->tensors[i].name,
                               (unsigned long long)file->tensors[i].end,
                               (unsigned long long)n_data);
    if (expected < n_data)
        return kiln__error(ctx, KILN_ERR_CORRUPT, fn,
                           "%s: the data section holds %llu bytes but the tensors end at %llu; "
                           "the header does not describe the last %llu",
                           path, (unsigned long long)n_data, (unsigned long long)expected,
                           (unsigned long long)(n_data - expected));
    return KILN_OK;
}

kiln_status kiln_safetensors_read(kiln_context *ctx, const char *path, kiln_safetensors **out)
{
    if (ctx == NULL || out == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (path == NULL)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, __func__, "path is NULL");
    kiln_status rc = KILN_OK;
    FILE *f = NULL;
    char *header = NULL;
    kiln_safetensors *file = kiln__calloc(ctx, 1, sizeof *file);
    if (file == NULL)
        return kiln__error(ctx, KILN_ERR_NO_MEMORY, __func__, "out of memory reading %s", path);
    file->ctx = ctx;
    file->path = kiln__strdup(ctx, path);
    if (file->path == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory reading %s", path);
    if (!kiln__host_is_little_endian())
        KILN_FAIL(ctx, KILN_ERR_UNSUPPORTED,
                  "%s: kiln reads safetensors on little-endian hosts "
                  "only",
                  path);
    f = fopen(path, "rb");
    if (f == NULL)
        KILN_FAIL(ctx, KILN_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0)
        KILN_FAIL(ctx, KILN_ERR_IO, "cannot stat %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        KILN_FAIL(ctx, KILN_ERR_IO, "%s is not a regular file", path);
    uint64_t size = (uint64_t)st.st_size;
    if (size < 8)
        KILN_FAIL(ctx, KILN_ERR_CORRUPT,
                  "%s has %llu bytes, fewer than the 8-byte header length a safetensors file "
                  "starts with (truncated, or not a safetensors file)",
                  path, (unsigned long long)size);
    unsigned char length[8];
    KILN_CHECK(read_exactly(ctx, f, path, length, 8, "the header length"));
    uint64_t n_header = 0;
    for (int i = 0; i < 8; i++)
        n_header |= (uint64_t)length[i] << (8 * i);
    if (n_header == 0 || n_header > size - 8)
        KILN_FAIL(ctx, KILN_ERR_CORRUPT,
                  "%s: header length %llu does not fit the %llu bytes after it (truncated, or "
                  "not a safetensors file)",
                  path, (unsigned long long)n_header, (unsigned long long)(size - 8));
    if (n_header > KILN__SAFETENSORS_MAX_HEADER)
        KILN_FAIL(ctx, KILN_ERR_CORRUPT, "%s: header length %llu is above the limit of %u bytes",
                  path, (unsigned long long)n_header, KILN__SAFETENSORS_MAX_HEADER);
    header = kiln__alloc(ctx, (size_t)n_header);
    if (header == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory reading the header of %s", path);
    KILN_CHECK(read_exactly(ctx, f, path, header, (size_t)n_header, "the header"));
    KILN_CHECK(kiln__safetensors_parse_header(file, header, (size_t)n_header));
    uint64_t n_data = size - 8 - n_header;
    KILN_CHECK(check_layout(file, n_data));
    if (n_data > SIZE_MAX - 1)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "%s: %llu bytes of tensors do not fit in memory", path,
                  (unsigned long long)n_data);
    file->data = kiln__alloc(ctx, (size_t)n_data + 1);
    if (file->data == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory for the %llu bytes of tensors in %s",
                  (unsigned long long)n_data, path);
    KILN_CHECK(read_exactly(ctx, f, path, file->data, (size_t)n_data, "the tensors"));
    for (size_t i = 0; i < file->n_tensors; i++)
        file->tensors[i].tensor.data = file->data + file->tensors[i].begin;
    *out = file;
    file = NULL;
cleanup:
    if (f != NULL)
        fclose(f);
    kiln__free(ctx, header);
    kiln_safetensors_destroy(file);
    return rc;
}

void kiln_safetensors_destroy(kiln_safetensors *file)
{
    if (file == NULL)
        return;
    kiln_context *ctx = file->ctx;
    for (size_t i = 0; i < file->n_tensors; i++)
        kiln__free(ctx, file->tensors[i].name);
    for (size_t i = 0; i < file->n_metadata; i++) {
        kiln__free(ctx, file->metadata[i].key);
        kiln__free(ctx, file->metadata[i].value);
    }
    kiln__free(ctx, file->tensors);
    kiln__free(ctx, file->metadata);
    kiln__free(ctx, file->data);
    kiln__free(ctx, file->path);
    kiln__free(ctx, file);
}

const char *kiln_safetensors_get_path(const kiln_safetensors *file)
{
    return file->path;
}

size_t kiln_safetensors_n_tensors(const kiln_safetensors *file)
{
    return file->n_tensors;
}

const kiln_host_tensor *kiln_safetensors_tensor(const kiln_safetensors *file, size_t i)
{
    return i < file->n_tensors ? &file->tensors[i].tensor : NULL;
}

const kiln_host_tensor *kiln_safetensors_find(const kiln_safetensors *file, const char *name)
{
    for (size_t i = 0; name != NULL && i < file->n_tensors; i++)
        if (strcmp(file->tensors[i].name, name) == 0)
            return &file->tensors[i].tensor;
    return NULL;
}

size_t kiln_safetensors_n_metadata(const kiln_safetensors *file)
{
    return file->n_metadata;
}

const kiln_metadata_entry *kiln_safetensors_metadata(const kiln_safetensors *file, size_t i)
{
    return i < file->n_metadata ? &file->metadata[i].entry : NULL;
}

const char *kiln_safetensors_get_metadata(const kiln_safetensors *file, const char *key)
{
    for (size_t i = 0; key != NULL && i < file->n_metadata; i++)
        if (strcmp(file->metadata[i].key, key) == 0)
            return file->metadata[i].value;
    return NULL;
}
