/*
 * IDX reader: generated files round-trip, plain and gzip, for ubyte images with labels
 * (feature shape (1, H, W), n_classes from the largest label) and for big-endian float and
 * short arrays of other ranks. Malformed files give the exact message naming the file and
 * byte offset: bad magic, unknown type, zero dimension, truncated data (plain and a cut .gz
 * stream), trailing bytes, label/image count mismatch, float and negative labels, missing
 * files. Every allocation failure is reported cleanly without leaks. When Fashion-MNIST is
 * installed, its training set reads as 60000 images of (1, 28, 28) with 10 classes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "kiln/data.h"
#include "support/kiln_test.h"

static char *g_dir;

static char *path_of(const char *name)
{
    size_t n = strlen(g_dir) + strlen(name) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", g_dir, name);
    return p;
}

static void write_bytes(const char *path, const void *data, size_t n, bool gz)
{
    if (gz) {
        gzFile f = gzopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(gzwrite(f, data, (unsigned)n), (int)n);
        assert_int_equal(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(data, 1, n, f), n);
        assert_int_equal(fclose(f), 0);
    }
}

/* An IDX header into out; returns its length. */
static size_t idx_header(unsigned char *out, int type, int ndim, const uint32_t *dims)
{
    out[0] = 0;
    out[1] = 0;
    out[2] = (unsigned char)type;
    out[3] = (unsigned char)ndim;
    for (int d = 0; d < ndim; d++) {
        out[4 + 4 * d] = (unsigned char)(dims[d] >> 24);
        out[5 + 4 * d] = (unsigned char)(dims[d] >> 16);
        out[6 + 4 * d] = (unsigned char)(dims[d] >> 8);
        out[7 + 4 * d] = (unsigned char)dims[d];
    }
    return 4 + 4 * (size_t)ndim;
}

/* 5 images of 4 x 3 ubyte (pixel = 10 * i + j) and labels 3, 0, 7, 1, 3. */
static size_t make_images(unsigned char *buf)
{
    size_t n = idx_header(buf, 0x08, 3, (uint32_t[]){5, 4, 3});
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 12; j++)
            buf[n++] = (unsigned char)(10 * i + j);
    return n;
}

static size_t make_labels(unsigned char *buf, int count)
{
    static const unsigned char LABELS[] = {3, 0, 7, 1, 3, 2};
    size_t n = idx_header(buf, 0x08, 1, (uint32_t[]){(uint32_t)count});
    memcpy(buf + n, LABELS, (size_t)count);
    return n + (size_t)count;
}

static void check_images(const kiln_dataset *ds)
{
    assert_int_equal(ds->n, 5);
    assert_int_equal(ds->feature_shape.ndim, 3);
    assert_int_equal(ds->feature_shape.dim[0], 1);
    assert_int_equal(ds->feature_shape.dim[1], 4);
    assert_int_equal(ds->feature_shape.dim[2], 3);
    assert_int_equal(ds->n_features, 12);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 12; j++)
            assert_true(ds->features[i * 12 + j] == (float)(10 * i + j));
    assert_int_equal(ds->label_kind, KILN_LABELS_CLASS);
    static const int32_t LABELS[] = {3, 0, 7, 1, 3};
    for (int i = 0; i < 5; i++)
        assert_int_equal(ds->classes[i], LABELS[i]);
    assert_int_equal(ds->n_classes, 8);
    assert_null(ds->feature_names);
}

static void round_trip(bool gz)
{
    kiln_context *ctx = kiln_test_context();
    unsigned char images[256], labels[64];
    size_t ni = make_images(images), nl = make_labels(labels, 5);
    char *ip = path_of(gz ? "img.idx.gz" : "img.idx"), *lp = path_of(gz ? "lab.idx.gz" : "lab.idx");
    write_bytes(ip, images, ni, gz);
    write_bytes(lp, labels, nl, gz);
    kiln_dataset *ds = NULL;
    assert_int_equal(kiln_dataset_read_idx(ctx, ip, lp, &ds), KILN_OK);
    check_images(ds);
    assert_string_equal(ds->name, ip);
    kiln_dataset_destroy(ds);
    /* Without labels. */
    assert_int_equal(kiln_dataset_read_idx(ctx, ip, NULL, &ds), KILN_OK);
    assert_int_equal(ds->label_kind, KILN_LABELS_NONE);
    assert_null(ds->classes);
    kiln_dataset_destroy(ds);
    free(ip);
    free(lp);
    kiln_context_destroy(ctx);
}

static void test_plain_round_trip(void **state)
{
    (void)state;
    round_trip(false);
}

static void test_gz_round_trip(void **state)
{
    (void)state;
    round_trip(true);
}

/* Big-endian float (n, 2) and short (n,) arrays: feature shapes (2,) and (1,). */
static void test_other_types(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    unsigned char buf[128];
    size_t n = idx_header(buf, 0x0D, 2, (uint32_t[]){3, 2});
    const float values[6] = {1.5f, -2.25f, 0.0f, 1e-3f, 3e8f, -7.0f};
    for (int i = 0; i < 6; i++) {
        uint32_t bits;
        memcpy(&bits, &values[i], 4);
        for (int b = 3; b >= 0; b--)
            buf[n++] = (unsigned char)(bits >> (8 * b));
    }
    char *fp = path_of("floats.idx");
    write_bytes(fp, buf, n, false);
    kiln_dataset *ds = NULL;
    assert_int_equal(kiln_dataset_read_idx(ctx, fp, NULL, &ds), KILN_OK);
    assert_int_equal(ds->n, 3);
    assert_int_equal(ds->feature_shape.ndim, 1);
    assert_int_equal(ds->feature_shape.dim[0], 2);
    assert_memory_equal(ds->features, values, sizeof values);
    kiln_dataset_destroy(ds);

    n = idx_header(buf, 0x0B, 1, (uint32_t[]){3});
    const int16_t shorts[3] = {-300, 0, 32767};
    for (int i = 0; i < 3; i++) {
        buf[n++] = (unsigned char)((uint16_t)shorts[i] >> 8);
        buf[n++] = (unsigned char)(uint16_t)shorts[i];
    }
    char *sp = path_of("shorts.idx");
    write_bytes(sp, buf, n, false);
    assert_int_equal(kiln_dataset_read_idx(ctx, sp, NULL, &ds), KILN_OK);
    assert_int_equal(ds->feature_shape.ndim, 1);
    assert_int_equal(ds->feature_shape.dim[0], 1);
    for (int i = 0; i < 3; i++)
        assert_true(ds->features[i] == (float)shorts[i]);
    kiln_dataset_destroy(ds);
    free(fp);
    free(sp);
    kiln_context_destroy(ctx);
}

/* Copies `format` into out with "{I}" replaced by the images path and "{L}" by the labels'. */
static void expand(char *out, size_t capacity, const char *format, const char *ip, const char *lp)
{
    size_t used = 0;
    for (const char *c = format; *c != '\0'; c++) {
        const char *insert = NULL;
        if (c[0] == '{' && (c[1] == 'I' || c[1] == 'L') && c[2] == '}')
            insert = c[1] == 'I' ? ip : lp;
        size_t len = insert != NULL ? strlen(insert) : 1;
        assert_true(used + len < capacity);
        memcpy(out + used, insert != NULL ? insert : c, len);
        used += len;
        c += insert != NULL ? 2 : 0;
    }
    out[used] = '\0';
}

/* Reads images/labels written from the given bytes and checks status and exact message. */
static void expect_error(const unsigned char *images, size_t ni, bool gz_images,
                         const unsigned char *labels, size_t nl, kiln_status status,
                         const char *expected_format)
{
    kiln_context *ctx = kiln_test_context();
    char *ip = path_of("bad-images"), *lp = path_of("bad-labels");
    write_bytes(ip, images, ni, gz_images);
    if (labels != NULL)
        write_bytes(lp, labels, nl, false);
    kiln_dataset *ds = (kiln_dataset *)&ds; /* must be reset to NULL */
    assert_int_equal(kiln_dataset_read_idx(ctx, ip, labels != NULL ? lp : NULL, &ds), status);
    assert_null(ds);
    char expected[1024];
    expand(expected, sizeof expected, expected_format, ip, lp);
    assert_string_equal(kiln_context_last_error(ctx), expected);
    free(ip);
    free(lp);
    kiln_context_destroy(ctx);
}

static void test_errors(void **state)
{
    (void)state;
    unsigned char images[256], labels[64];
    size_t ni = make_images(images), nl = make_labels(labels, 5);

    unsigned char bad[256];
    memcpy(bad, images, ni);
    bad[1] = 0x01;
    expect_error(bad, ni, false, NULL, 0, KILN_ERR_CORRUPT,
                 "kiln_dataset_read_idx: '{I}' is not an IDX file: bad magic number 0x00010803 "
                 "at byte offset 0 (expected 0x0000 then a type and a dimension count, e.g. "
                 "0x00000803 for ubyte images)");
    memcpy(bad, images, ni);
    bad[2] = 0x0A;
    expect_error(bad, ni, false, NULL, 0, KILN_ERR_CORRUPT,
                 "kiln_dataset_read_idx: '{I}': unknown IDX element type 0x0a at byte offset 2 "
                 "(expected 0x08 ubyte, 0x09 byte, 0x0B short, 0x0C int, 0x0D float or 0x0E "
                 "double)");
    memcpy(bad, images, ni);
    bad[11] = 0; /* rows = 0 */
    expect_error(bad, ni, false, NULL, 0, KILN_ERR_CORRUPT,
                 "kiln_dataset_read_idx: '{I}': dimension 1 is 0 at byte offset 8 (every "
                 "dimension must be >= 1)");
    /* Truncated: the header says 60 bytes of pixels, 50 are there. */
    expect_error(images, ni - 10, false, NULL, 0, KILN_ERR_CORRUPT,
                 "kiln_dataset_read_idx: '{I}': truncated at byte offset 66: expected 60 bytes of "
                 "data for 5 x 4 x 3 ubyte after the 16-byte header, got 50");
    /* The same inside a complete gzip stream. */
    expect_error(images, ni - 10, true, NULL, 0, KILN_ERR_CORRUPT,
                 "kiln_dataset_read_idx: '{I}': truncated at byte offset 66: expected 60 bytes of "
                 "data for 5 x 4 x 3 ubyte after the 16-byte header, got 50");
    /* Truncated in the header. */
    expect_error(images, 10, false, NULL, 0, KILN_ERR_CORRUPT,
                 "kiln_dataset_read_idx: '{I}': truncated at byte offset 10: expected 4 bytes of "
                 "the IDX dimensions from byte offset 8, got 2");
    /* Trailing bytes. */
    memcpy(bad, images, ni);
    memset(bad + ni, 0, 7);
    expect_error(bad, ni + 7, false, NULL, 0, KILN_ERR_CORRUPT,
                 "kiln_dataset_read_idx: '{I}': 7 unexpected bytes after byte offset 76, where "
                 "data for 5 x 4 x 3 ubyte ends (is the header's size wrong?)");
    /* Six labels for five images. */
    unsigned char six[64];
    size_t n6 = make_labels(six, 6);
    expect_error(images, ni, false, six, n6, KILN_ERR_CORRUPT,
                 "kiln_dataset_read_idx: '{L}' holds 6 labels but '{I}' holds 5 samples; the "
                 "counts must match");
    /* Labels of two dimensions, of float type, and negative. */
    unsigned char lab[64];
    size_t nlab = idx_header(lab, 0x08, 2, (uint32_t[]){5, 1});
    memset(lab + nlab, 0, 5);
    expect_error(images, ni, false, lab, nlab + 5, KILN_ERR_CORRUPT,
                 "kiln_dataset_read_idx: '{L}': a label file has 1 dimension (the sample "
                 "count), this one has 2 (byte offset 3)");
    nlab = idx_header(lab, 0x0D, 1, (uint32_t[]){5});
    memset(lab + nlab, 0, 20);
    expect_error(images, ni, false, lab, nlab + 20, KILN_ERR_CORRUPT,
                 "kiln_dataset_read_idx: '{L}': labels of IDX type float (byte offset 2) cannot "
                 "be class indices; expected ubyte, byte, short or int");
    memcpy(lab, labels, nl);
    lab[2] = 0x09;     /* signed byte */
    lab[8 + 3] = 0xFF; /* label 3 is -1 */
    expect_error(images, ni, false, lab, nl, KILN_ERR_CORRUPT,
                 "kiln_dataset_read_idx: '{L}': label 3 is -1 (byte offset 11); class indices "
                 "must be in [0, 2^31 - 1)");
    (void)nl;
}

/* A .gz file cut in the middle of its compressed stream. */
static void test_cut_gzip(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    enum { N = 4000 };
    unsigned char *images = malloc(16 + N * 64);
    size_t n = idx_header(images, 0x08, 3, (uint32_t[]){N, 8, 8});
    for (size_t i = 0; i < N * 64; i++)
        images[n + i] = (unsigned char)((i * 2654435761u) >> 24); /* poorly compressible */
    char *full = path_of("full.gz"), *cut = path_of("cut.gz");
    write_bytes(full, images, n + N * 64, true);
    FILE *f = fopen(full, "rb");
    assert_non_null(f);
    unsigned char *gz = malloc(N * 64 + 1024);
    size_t len = fread(gz, 1, N * 64 + 1024, f);
    fclose(f);
    write_bytes(cut, gz, len / 2, false);
    kiln_dataset *ds = NULL;
    assert_int_equal(kiln_dataset_read_idx(ctx, cut, NULL, &ds), KILN_ERR_CORRUPT);
    assert_contains(kiln_context_last_error(ctx), cut);
    assert_contains(kiln_context_last_error(ctx), "the gzip stream ends early, at decompressed "
                                                  "byte offset");
    assert_contains(kiln_context_last_error(ctx), "(a truncated .gz file)");
    /* The whole file reads. */
    assert_int_equal(kiln_dataset_read_idx(ctx, full, NULL, &ds), KILN_OK);
    assert_int_equal(ds->n, N);
    assert_memory_equal(ds->feature_shape.dim, ((int64_t[]){1, 8, 8}), 3 * sizeof(int64_t));
    kiln_dataset_destroy(ds);
    free(gz);
    free(images);
    free(full);
    free(cut);
    kiln_context_destroy(ctx);
}

static void test_missing_file(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    char *p = path_of("no-such-file.idx");
    kiln_dataset *ds = NULL;
    assert_int_equal(kiln_dataset_read_idx(ctx, p, NULL, &ds), KILN_ERR_IO);
    char expected[512];
    snprintf(expected, sizeof expected,
             "kiln_dataset_read_idx: cannot open '%s': No such file or directory", p);
    assert_string_equal(kiln_context_last_error(ctx), expected);
    free(p);
    kiln_context_destroy(ctx);
}

/* Every allocation failing in turn gives KILN_ERR_NO_MEMORY and leaks nothing. */
static void test_out_of_memory(void **state)
{
    (void)state;
    unsigned char images[256], labels[64];
    size_t ni = make_images(images), nl = make_labels(labels, 5);
    char *ip = path_of("oom-img.gz"), *lp = path_of("oom-lab");
    write_bytes(ip, images, ni, true);
    write_bytes(lp, labels, nl, false);
    for (long budget = 0;; budget++) {
        kiln_test_allocator a;
        kiln_context *ctx = kiln_test_counted_context(&a);
        a.budget = budget;
        kiln_dataset *ds = NULL;
        kiln_status rc = kiln_dataset_read_idx(ctx, ip, lp, &ds);
        a.budget = -1;
        if (rc == KILN_OK) {
            check_images(ds);
            kiln_dataset_destroy(ds);
            kiln_context_destroy(ctx);
            assert_int_equal(a.live, 0);
            assert_true(budget > 3);
            break;
        }
        assert_int_equal(rc, KILN_ERR_NO_MEMORY);
        assert_null(ds);
        kiln_context_destroy(ctx);
        assert_int_equal(a.live, 0);
    }
    free(ip);
    free(lp);
}

static void test_fashion_mnist(void **state)
{
    (void)state;
    const char *images = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
    const char *labels = "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz";
    FILE *f = fopen(images, "rb");
    if (f == NULL)
        skip();
    fclose(f);
    kiln_context *ctx = kiln_test_context();
    kiln_dataset *ds = NULL;
    assert_int_equal(kiln_dataset_read_idx(ctx, images, labels, &ds), KILN_OK);
    assert_int_equal(ds->n, 60000);
    assert_int_equal(ds->feature_shape.ndim, 3);
    assert_memory_equal(ds->feature_shape.dim, ((int64_t[]){1, 28, 28}), 3 * sizeof(int64_t));
    assert_int_equal(ds->n_classes, 10);
    int64_t per_class[10] = {0};
    for (int64_t i = 0; i < ds->n; i++)
        per_class[ds->classes[i]]++;
    for (int c = 0; c < 10; c++)
        assert_int_equal(per_class[c], 6000);
    float top = 0;
    for (int64_t i = 0; i < ds->n * ds->n_features; i++)
        top = ds->features[i] > top ? ds->features[i] : top;
    assert_true(top == 255.0f);
    kiln_dataset_destroy(ds);
    kiln_context_destroy(ctx);
}

int main(void)
{
    g_dir = kiln_test_make_temp_dir("test_idx");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_round_trip), cmocka_unit_test(test_gz_round_trip),
        cmocka_unit_test(test_other_types),      cmocka_unit_test(test_errors),
        cmocka_unit_test(test_cut_gzip),         cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_out_of_memory),    cmocka_unit_test(test_fashion_mnist),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    kiln_test_remove_dir(g_dir);
    free(g_dir);
    return failed;
}
