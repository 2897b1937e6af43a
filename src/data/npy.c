/*
 * NPY reader (NumPy's format, versions 1.0 to 3.0, as numpy.lib.format documents it): the
 * magic "\x93NUMPY", a version, a little-endian header length, a Python dict literal with
 * 'descr', 'fortran_order' and 'shape', then the raw array. Reads little-endian <f4, <f8,
 * <i4, <i8 and |u1 in C order into float features, int32 classes or float targets; anything
 * else is refused with the header's own text so the user sees what to convert. Data is
 * streamed in chunks through reader.c; errors name the file and byte offset.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "data/data_internal.h"

static const char *const FN = "kiln_dataset_read_npy";

enum { NPY_MAX_HEADER = 1 << 20, CHUNK_ELEMENTS = 1 << 18 };

typedef enum npy_type { NPY_F4, NPY_F8, NPY_U1, NPY_I4, NPY_I8 } npy_type;

static const struct {
    const char *descr;
    npy_type type;
    size_t size;
} DTYPES[] = {{"<f4", NPY_F4, 4},
              {"<f8", NPY_F8, 8},
              {"|u1", NPY_U1, 1},
              {"<i4", NPY_I4, 4},
              {"<i8", NPY_I8, 8}};

typedef struct npy_header {
    char descr[32];
    npy_type type;
    size_t elem_size;
    int ndim;
    int64_t shape[KILN_MAX_DIMS];
    int64_t count; /* elements */
} npy_header;

/* A cursor over the header text; `base` is the text's byte offset in the file. */
typedef struct npy_text {
    kiln__reader *r;
    const char *s;
    size_t pos, n;
    int64_t base;
} npy_text;

static kiln_status text_error(npy_text *t, const char *expected)
{
    char near[24] = "";
    size_t k = 0;
    for (size_t i = t->pos; i < t->n && k + 1 < sizeof near && t->s[i] != '\n'; i++)
        near[k++] = t->s[i];
    while (k > 0 && near[k - 1] == ' ')
        k--; /* the header's padding */
    near[k] = '\0';
    return kiln__error(t->r->ctx, KILN_ERR_CORRUPT, FN,
                       "'%s': bad NPY header at byte offset %lld: expected %s, found '%s'",
                       t->r->path, (long long)(t->base + (int64_t)t->pos), expected, near);
}

static void skip_space(npy_text *t)
{
    while (t->pos < t->n && (t->s[t->pos] == ' ' || t->s[t->pos] == '\t'))
        t->pos++;
}

static bool accept(npy_text *t, char c)
{
    skip_space(t);
    if (t->pos < t->n && t->s[t->pos] == c) {
        t->pos++;
        return true;
    }
    return false;
}

/* A Python string literal in single or double quotes, without escapes. */
static kiln_status parse_string(npy_text *t, char *out, size_t capacity, const char *what)
{
    skip_space(t);
    if (t->pos >= t->n || (t->s[t->pos] != '\'' && t->s[t->pos] != '"'))
        return text_error(t, what);
    char quote = t->s[t->pos];
    size_t start = t->pos + 1, end = start;
    while (end < t->n && t->s[end] != quote)
        end++;
    if (end >= t->n || end - start >= capacity)
        return text_error(t, what);
    memcpy(out, t->s + start, end - start);
    out[end - start] = '\0';
    t->pos = end + 1;
    return KILN_OK;
}

static kiln_status parse_shape(npy_text *t, npy_header *h)
{
    if (!accept(t, '('))
        return text_error(t, "a shape tuple '(...)'");
    h->ndim = 0;
    while (!accept(t, ')')) {
        skip_space(t);
        int64_t v = 0;
        size_t digits = 0;
        while (t->pos < t->n && t->s[t->pos] >= '0' && t->s[t->pos] <= '9') {
            if (v > (INT64_MAX - 9) / 10)
                return text_error(t, "a dimension below 2^63");
            v = v * 10 + (t->s[t->pos++] - '0');
            digits++;
        }
        if (digits == 0)
            return text_error(t, "a dimension (a non-negative integer) or ')'");
        if (t->pos < t->n && t->s[t->pos] == 'L')
            t->pos++; /* Python 2 long */
        if (h->ndim == KILN_MAX_DIMS)
            return text_error(t, "at most 6 dimensions");
        h->shape[h->ndim++] = v;
        if (!accept(t, ',')) {
            if (!accept(t, ')'))
                return text_error(t, "',' or ')'");
            break;
        }
    }
    return KILN_OK;
}

static kiln_status parse_dict(npy_text *t, npy_header *h)
{
    bool has_descr = false, has_order = false, has_shape = false, fortran = false;
    kiln_status rc = KILN_OK;
    if (!accept(t, '{'))
        return text_error(t, "'{' opening the header dict");
    while (!accept(t, '}')) {
        char key[32];
        skip_space(t);
        size_t key_pos = t->pos;
        if ((rc = parse_string(t, key, sizeof key, "a quoted key or '}'")) != KILN_OK)
            return rc;
        if (!accept(t, ':'))
            return text_error(t, "':' after the key");
        if (strcmp(key, "descr") == 0) {
            rc = parse_string(t, h->descr, sizeof h->descr,
                              "a dtype string such as '<f4' (structured dtypes are not "
                              "supported)");
            has_descr = true;
        } else if (strcmp(key, "fortran_order") == 0) {
            skip_space(t);
            if (t->n - t->pos >= 4 && memcmp(t->s + t->pos, "True", 4) == 0) {
                fortran = true;
                t->pos += 4;
            } else if (t->n - t->pos >= 5 && memcmp(t->s + t->pos, "False", 5) == 0) {
                t->pos += 5;
            } else {
                return text_error(t, "True or False");
            }
            has_order = true;
        } else if (strcmp(key, "shape") == 0) {
            rc = parse_shape(t, h);
            has_shape = true;
        } else {
            t->pos = key_pos;
            return text_error(t, "only the keys 'descr', 'fortran_order' and 'shape'");
        }
        if (rc != KILN_OK)
            return rc;
        if (!accept(t, ',')) {
            if (!accept(t, '}'))
                return text_error(t, "',' or '}'");
            break;
        }
    }
    skip_space(t);
    while (t->pos < t->n && (t->s[t->pos] == '\n' || t->s[t->pos] == ' '))
        t->pos++;
    if (t->pos != t->n)
        return text_error(t, "the end of the header after the dict");
    if (!has_descr || !has_order || !has_shape)
        return kiln__error(t->r->ctx, KILN_ERR_CORRUPT, FN,
                           "'%s': the NPY header at byte offset %lld lacks '%s'", t->r->path,
                           (long long)t->base,
                           !has_descr   ? "descr"
                           : !has_order ? "fortran_order"
                                        : "shape");
    if (fortran)
        return kiln__error(t->r->ctx, KILN_ERR_UNSUPPORTED, FN,
                           "'%s': the array is in Fortran order ('fortran_order': True); save "
                           "it in C order, e.g. np.save(path, np.ascontiguousarray(a))",
                           t->r->path);
    return KILN_OK;
}

static kiln_status read_header(kiln__reader *r, npy_header *h)
{
    unsigned char head[12];
    char *text = NULL;
    kiln_status rc = KILN_OK;
    memset(h, 0, sizeof *h);
    KILN_CHECK(kiln__reader_read_exact(r, head, 8, "the NPY magic and version"));
    if (memcmp(head, "\x93NUMPY", 6) != 0)
        KILN__FAIL_AS(r->function, r->ctx, KILN_ERR_CORRUPT,
                      "'%s' is not an NPY file: bad magic at byte offset 0 (expected \\x93NUMPY, "
                      "as np.save writes)",
                      r->path);
    int major = head[6];
    if (major < 1 || major > 3)
        KILN__FAIL_AS(r->function, r->ctx, KILN_ERR_UNSUPPORTED,
                      "'%s': NPY format version %d.%d at byte offset 6; Kiln reads versions 1 to 3",
                      r->path, major, head[7]);
    size_t len_bytes = major == 1 ? 2 : 4;
    KILN_CHECK(kiln__reader_read_exact(r, head + 8, len_bytes, "the NPY header length"));
    size_t len = head[8] | (size_t)head[9] << 8;
    if (len_bytes == 4)
        len |= (size_t)head[10] << 16 | (size_t)head[11] << 24;
    if (len > NPY_MAX_HEADER)
        KILN__FAIL_AS(r->function, r->ctx, KILN_ERR_CORRUPT,
                      "'%s': NPY header length %zu at byte offset 8 is implausibly large", r->path,
                      len);
    text = kiln__alloc(r->ctx, len + 1);
    if (text == NULL)
        KILN__FAIL_AS(r->function, r->ctx, KILN_ERR_NO_MEMORY, "no memory for an NPY header");
    npy_text t = {.r = r, .s = text, .pos = 0, .n = len, .base = r->offset};
    KILN_CHECK(kiln__reader_read_exact(r, text, len, "the NPY header"));
    text[len] = '\0';
    KILN_CHECK(parse_dict(&t, h));
    bool known = false;
    for (size_t i = 0; i < sizeof DTYPES / sizeof DTYPES[0]; i++) {
        if (strcmp(h->descr, DTYPES[i].descr) == 0) {
            h->type = DTYPES[i].type;
            h->elem_size = DTYPES[i].size;
            known = true;
        }
    }
    if (!known)
        KILN__FAIL_AS(r->function, r->ctx, KILN_ERR_UNSUPPORTED,
                      "'%s': dtype '%s' is not supported; Kiln reads little-endian <f4, <f8, |u1, "
                      "<i4 and <i8 (convert with a.astype(np.float32))",
                      r->path, h->descr);
    if (h->ndim == 0)
        KILN__FAIL_AS(r->function, r->ctx, KILN_ERR_SHAPE,
                      "'%s': the array is a scalar (shape ()); expected (n, ...) with one row per "
                      "sample",
                      r->path);
    h->count = 1;
    for (int d = 0; d < h->ndim; d++) {
        if (h->shape[d] == 0)
            KILN__FAIL_AS(r->function, r->ctx, KILN_ERR_SHAPE,
                          "'%s': dimension %d of the shape is 0; expected "
                          "a non-empty array",
                          r->path, d);
        if (h->shape[d] > INT64_MAX / 16 / h->count)
            KILN__FAIL_AS(r->function, r->ctx, KILN_ERR_SHAPE,
                          "'%s': the shape has too many elements", r->path);
        h->count *= h->shape[d];
    }
cleanup:
    kiln__free(r->ctx, text);
    return rc;
}

static double element(const unsigned char *p, npy_type type)
{
    uint64_t bits = 0;
    size_t size = type == NPY_U1 ? 1 : type == NPY_F4 || type == NPY_I4 ? 4 : 8;
    for (size_t i = 0; i < size; i++)
        bits |= (uint64_t)p[i] << (8 * i);
    switch (type) {
    case NPY_F4: {
        uint32_t b = (uint32_t)bits;
        float f;
        memcpy(&f, &b, sizeof f);
        return f;
    }
    case NPY_F8: {
        double d;
        memcpy(&d, &bits, sizeof d);
        return d;
    }
    case NPY_U1:
        return (double)bits;
    case NPY_I4:
        return (int32_t)(uint32_t)bits;
    default:
        return (double)(int64_t)bits;
    }
}

/* Streams the array into floats, or into class indices (checked integral, >= 0). */
static kiln_status read_data(kiln__reader *r, const npy_header *h, float *values, int32_t *classes)
{
    kiln_status rc = KILN_OK;
    unsigned char *chunk = kiln__alloc(r->ctx, CHUNK_ELEMENTS * h->elem_size);
    char what[64];
    snprintf(what, sizeof what, "the %lld-element %s array", (long long)h->count, h->descr);
    if (chunk == NULL)
        KILN__FAIL_AS(r->function, r->ctx, KILN_ERR_NO_MEMORY, "no memory for a read buffer");
    int64_t data_start = r->offset;
    for (int64_t done = 0; done < h->count;) {
        size_t n = h->count - done < CHUNK_ELEMENTS ? (size_t)(h->count - done) : CHUNK_ELEMENTS;
        size_t got = 0;
        KILN_CHECK(kiln__reader_read(r, chunk, n * h->elem_size, &got));
        if (got < n * h->elem_size)
            KILN__FAIL_AS(
                r->function, r->ctx, KILN_ERR_CORRUPT,
                "'%s': truncated at byte offset %lld: expected %lld bytes of %s from byte "
                "offset %lld",
                r->path, (long long)r->offset, (long long)h->count * (long long)h->elem_size, what,
                (long long)data_start);
        for (size_t i = 0; i < n; i++) {
            double v = element(chunk + i * h->elem_size, h->type);
            if (values != NULL) {
                values[done + (int64_t)i] = (float)v;
            } else if (!(v >= 0 && v < INT32_MAX && v == floor(v))) {
                KILN__FAIL_AS(r->function, r->ctx, KILN_ERR_CORRUPT,
                              "'%s': label %lld is %g (byte offset %lld); class indices must be "
                              "integers in [0, 2^31 - 1)",
                              r->path, (long long)(done + (int64_t)i), v,
                              (long long)(r->offset - (int64_t)got + (int64_t)(i * h->elem_size)));
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

/* Per-sample shape: shape[1..], or (1,) for a 1-D array. */
static kiln_shape sample_shape(const npy_header *h)
{
    kiln_shape s = kiln_shape_of(1, (int64_t[]){1});
    if (h->ndim > 1) {
        s.ndim = h->ndim - 1;
        memcpy(s.dim, h->shape + 1, (size_t)s.ndim * sizeof(int64_t));
    }
    return s;
}

kiln_status kiln_dataset_read_npy(kiln_context *ctx, const char *features_path,
                                  const char *labels_path, kiln_label_kind labels,
                                  kiln_dataset **out)
{
    kiln_status rc = KILN_OK;
    kiln__reader fr = {0}, lr = {0};
    npy_header fh, lh;
    kiln_dataset *ds = NULL;
    if (out == NULL)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, FN, "out is NULL");
    *out = NULL;
    KILN_CHECK(kiln__reader_open(&fr, ctx, FN, features_path));
    KILN_CHECK(read_header(&fr, &fh));
    kiln_label_kind kind = KILN_LABELS_NONE;
    kiln_shape lshape = {0};
    if (labels_path != NULL) {
        if (labels != KILN_LABELS_AUTO && labels != KILN_LABELS_CLASS &&
            labels != KILN_LABELS_TARGET)
            KILN_FAIL(ctx, KILN_ERR_INVALID_ARGUMENT,
                      "labels for '%s' must be AUTO, CLASS or TARGET, got %d", labels_path,
                      (int)labels);
        KILN_CHECK(kiln__reader_open(&lr, ctx, FN, labels_path));
        KILN_CHECK(read_header(&lr, &lh));
        if (lh.shape[0] != fh.shape[0])
            KILN_FAIL(ctx, KILN_ERR_SHAPE,
                      "'%s' holds %lld labels but '%s' holds %lld samples; the first "
                      "dimensions must match",
                      labels_path, (long long)lh.shape[0], features_path, (long long)fh.shape[0]);
        bool one_per_sample = lh.ndim == 1 || (lh.ndim == 2 && lh.shape[1] == 1);
        bool integer = lh.type == NPY_U1 || lh.type == NPY_I4 || lh.type == NPY_I8;
        kind = labels == KILN_LABELS_AUTO
                   ? (integer && one_per_sample ? KILN_LABELS_CLASS : KILN_LABELS_TARGET)
                   : labels;
        if (kind == KILN_LABELS_CLASS && !one_per_sample)
            KILN_FAIL(ctx, KILN_ERR_SHAPE,
                      "'%s': class labels need shape (n,) or (n, 1), this array has %d "
                      "dimensions",
                      labels_path, lh.ndim);
        lshape = sample_shape(&lh);
    }
    kiln_shape fshape = sample_shape(&fh);
    if (fh.ndim > KILN_MAX_DIMS)
        KILN_FAIL(ctx, KILN_ERR_SHAPE, "'%s' has too many dimensions", features_path);
    KILN_CHECK(
        kiln__dataset_alloc(ctx, FN, features_path, fh.shape[0], &fshape, kind, &lshape, &ds));
    KILN_CHECK(read_data(&fr, &fh, ds->features, NULL));
    if (kind == KILN_LABELS_CLASS) {
        KILN_CHECK(read_data(&lr, &lh, NULL, ds->classes));
        kiln__dataset_count_classes(ds);
    } else if (kind == KILN_LABELS_TARGET) {
        KILN_CHECK(read_data(&lr, &lh, ds->targets, NULL));
    }
    *out = ds;
    ds = NULL;
cleanup:
    kiln_dataset_destroy(ds);
    kiln__reader_close(&lr);
    kiln__reader_close(&fr);
    return rc;
}
