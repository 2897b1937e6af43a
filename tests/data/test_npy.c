/*
 * NPY reader: generated files of each supported dtype (<f4, <f8, |u1, <i4, <i8) and format
 * versions 1 and 2 read to the same floats, with feature shape (...) from (n, ...) and (1,)
 * from (n,); labels as AUTO (integers -> classes, floats -> targets of their per-sample
 * shape; 5-D volumes with their masks), forced CLASS from integral floats, forced TARGET from
 * integers; gzip files. Bad
 * files give exact messages naming the file: bad magic, unknown version, Fortran order,
 * unsupported and big-endian dtypes, missing and unknown keys, malformed dicts, scalar and
 * empty shapes, truncated and overlong data, label count mismatch, negative or fractional
 * class labels, 2-D class labels. Every allocation failure is reported without leaks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "kiln/data.h"
#include "support/kiln_test.h"

static char *g_dir;

/* Writes an NPY file of format `major`.0 with header dict `dict` and `n` raw data bytes. */
static char *write_npy(const char *name, int major, const char *dict, const void *data, size_t n,
                       bool gz)
{
    size_t len = strlen(dict), prefix = major == 1 ? 10 : 12;
    size_t header = (prefix + len + 1 + 63) / 64 * 64 - prefix; /* padded, ends in '\n' */
    unsigned char *buf = malloc(prefix + header + n);
    assert_non_null(buf);
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = 0;
    buf[8] = (unsigned char)header;
    buf[9] = (unsigned char)(header >> 8);
    if (major != 1) {
        buf[10] = 0;
        buf[11] = 0;
    }
    memcpy(buf + prefix, dict, len);
    memset(buf + prefix + len, ' ', header - len - 1);
    buf[prefix + header - 1] = '\n';
    if (n > 0)
        memcpy(buf + prefix + header, data, n);
    size_t path_n = strlen(g_dir) + strlen(name) + 2;
    char *path = malloc(path_n);
    assert_non_null(path);
    snprintf(path, path_n, "%s/%s", g_dir, name);
    if (gz) {
        gzFile f = gzopen(path, "wb");
        assert_non_null(f);
        gzwrite(f, buf, (unsigned)(prefix + header + n));
        gzclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        fwrite(buf, 1, prefix + header + n, f);
        fclose(f);
    }
    free(buf);
    return path;
}

/* Values 0, 1, ..., 11 as (4, 3) in every dtype (the test host is little-endian, as NPY's
 * '<' data is; checked in main). */
static void test_each_dtype(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    float f4[12];
    double f8[12];
    unsigned char u1[12];
    int32_t i4[12];
    int64_t i8[12];
    for (int i = 0; i < 12; i++) {
        f4[i] = (float)i;
        f8[i] = i;
        u1[i] = (unsigned char)i;
        i4[i] = i;
        i8[i] = i;
    }
    const struct {
        const char *descr;
        const void *data;
        size_t size;
    } cases[] = {{"<f4", f4, 4}, {"<f8", f8, 8}, {"|u1", u1, 1}, {"<i4", i4, 4}, {"<i8", i8, 8}};
    for (size_t c = 0; c < 5; c++) {
        for (int major = 1; major <= 2; major++) {
            char dict[128];
            snprintf(dict, sizeof dict,
                     "{'descr': '%s', 'fortran_order': False, 'shape': (4, 3), }", cases[c].descr);
            char *path =
                write_npy("x.npy", major, dict, cases[c].data, 12 * cases[c].size, major == 2);
            kiln_dataset *ds = NULL;
            assert_int_equal(kiln_dataset_read_npy(ctx, path, NULL, KILN_LABELS_AUTO, &ds),
                             KILN_OK);
            assert_int_equal(ds->n, 4);
            assert_int_equal(ds->feature_shape.ndim, 1);
            assert_int_equal(ds->feature_shape.dim[0], 3);
            assert_memory_equal(ds->features, f4, sizeof f4);
            assert_int_equal(ds->label_kind, KILN_LABELS_NONE);
            kiln_dataset_destroy(ds);
            free(path);
        }
    }
    kiln_context_destroy(ctx);
}

static void test_labels(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    float x[4 * 2 * 2];
    for (int i = 0; i < 16; i++)
        x[i] = 0.5f * (float)i;
    char *xp = write_npy("x.npy", 1,
                         "{'shape': (4, 1, 2, 2), 'fortran_order': False, "
                         "\"descr\": '<f4'}",
                         x, sizeof x, false);
    int64_t cls[4] = {2, 0, 1, 2};
    char *cp = write_npy("c.npy", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (4,)}", cls,
                         sizeof cls, false);
    kiln_dataset *ds = NULL;
    assert_int_equal(kiln_dataset_read_npy(ctx, xp, cp, KILN_LABELS_AUTO, &ds), KILN_OK);
    assert_int_equal(ds->feature_shape.ndim, 3);
    assert_int_equal(ds->n_features, 4);
    assert_memory_equal(ds->features, x, sizeof x);
    assert_int_equal(ds->label_kind, KILN_LABELS_CLASS);
    for (int i = 0; i < 4; i++)
        assert_int_equal(ds->classes[i], cls[i]);
    assert_int_equal(ds->n_classes, 3);
    kiln_dataset_destroy(ds);
    /* Forced TARGET from integers. */
    assert_int_equal(kiln_dataset_read_npy(ctx, xp, cp, KILN_LABELS_TARGET, &ds), KILN_OK);
    assert_int_equal(ds->label_kind, KILN_LABELS_TARGET);
    assert_int_equal(ds->n_label_values, 1);
    assert_true(ds->targets[0] == 2.0f && ds->targets[3] == 2.0f);
    kiln_dataset_destroy(ds);
    /* Float masks (4, 1, 2, 2) are targets under AUTO. */
    char *mp = write_npy("m.npy", 1,
                         "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 1, "
                         "2, 2), }",
                         x, sizeof x, true);
    assert_int_equal(kiln_dataset_read_npy(ctx, xp, mp, KILN_LABELS_AUTO, &ds), KILN_OK);
    assert_int_equal(ds->label_kind, KILN_LABELS_TARGET);
    assert_int_equal(ds->label_shape.ndim, 3);
    assert_int_equal(ds->n_label_values, 4);
    assert_memory_equal(ds->targets, x, sizeof x);
    kiln_dataset_destroy(ds);
    /* Volumes (N, C, D, H, W) = (2, 2, 2, 2, 2) with masks (2, 1, 2, 2, 2): the segmentation
     * layout. The masks reuse x's first 16 values. */
    float v[2 * 2 * 8];
    for (int i = 0; i < 32; i++)
        v[i] = (float)i - 7.5f;
    char *vp = write_npy("v.npy", 1,
                         "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 2, 2, 2), }", v,
                         sizeof v, false);
    char *vm = write_npy("vm.npy", 1,
                         "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1, 2, 2, 2), }", x,
                         sizeof x, false);
    assert_int_equal(kiln_dataset_read_npy(ctx, vp, vm, KILN_LABELS_AUTO, &ds), KILN_OK);
    assert_int_equal(ds->n, 2);
    assert_int_equal(ds->feature_shape.ndim, 4);
    assert_true(ds->feature_shape.dim[0] == 2 && ds->feature_shape.dim[3] == 2);
    assert_int_equal(ds->n_features, 16);
    assert_memory_equal(ds->features, v, sizeof v);
    assert_int_equal(ds->label_kind, KILN_LABELS_TARGET);
    assert_int_equal(ds->label_shape.ndim, 4);
    assert_int_equal(ds->label_shape.dim[0], 1);
    assert_int_equal(ds->n_label_values, 8);
    assert_memory_equal(ds->targets, x, sizeof x);
    kiln_dataset_destroy(ds);
    free(vp);
    free(vm);
    /* Forced CLASS from integral floats of shape (n, 1). */
    double cf[4] = {1, 0, 3, 1};
    char *fp = write_npy("cf.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4, 1)}",
                         cf, sizeof cf, false);
    assert_int_equal(kiln_dataset_read_npy(ctx, xp, fp, KILN_LABELS_CLASS, &ds), KILN_OK);
    assert_int_equal(ds->classes[2], 3);
    assert_int_equal(ds->n_classes, 4);
    kiln_dataset_destroy(ds);
    cf[2] = 2.5;
    free(fp);
    fp = write_npy("cf.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4, 1)}", cf,
                   sizeof cf, false);
    assert_int_equal(kiln_dataset_read_npy(ctx, xp, fp, KILN_LABELS_CLASS, &ds), KILN_ERR_CORRUPT);
    char expected[512];
    snprintf(expected, sizeof expected,
             "kiln_dataset_read_npy: '%s': label 2 is 2.5 (byte offset 144); class indices must "
             "be integers in [0, 2^31 - 1)",
             fp);
    assert_string_equal(kiln_context_last_error(ctx), expected);
    /* CLASS from 2-D labels, and a count mismatch. */
    assert_int_equal(kiln_dataset_read_npy(ctx, xp, mp, KILN_LABELS_CLASS, &ds), KILN_ERR_SHAPE);
    snprintf(expected, sizeof expected,
             "kiln_dataset_read_npy: '%s': class labels need shape (n,) or (n, 1), this array "
             "has 4 dimensions",
             mp);
    assert_string_equal(kiln_context_last_error(ctx), expected);
    char *sp = write_npy("short.npy", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (3,)}",
                         cls, 3 * sizeof(int64_t), false);
    assert_int_equal(kiln_dataset_read_npy(ctx, xp, sp, KILN_LABELS_AUTO, &ds), KILN_ERR_SHAPE);
    snprintf(expected, sizeof expected,
             "kiln_dataset_read_npy: '%s' holds 3 labels but '%s' holds 4 samples; the first "
             "dimensions must match",
             sp, xp);
    assert_string_equal(kiln_context_last_error(ctx), expected);
    assert_null(ds);
    free(sp);
    free(fp);
    free(mp);
    free(cp);
    free(xp);
    kiln_context_destroy(ctx);
}

/* Writes an NPY file from `dict` and `n` data bytes (or raw bytes when dict is NULL) and
 * expects `status` and the exact message, "{}" standing for the path. */
static void expect_error(const char *dict, const void *raw, size_t n, kiln_status status,
                         const char *expected_format)
{
    kiln_context *ctx = kiln_test_context();
    static const unsigned char zeros[256];
    char *path = NULL;
    if (dict != NULL) {
        path = write_npy("bad.npy", 1, dict, zeros, n, false);
    } else {
        path = write_npy("bad.npy", 1, "", NULL, 0, false);
        FILE *f = fopen(path, "wb");
        fwrite(raw, 1, n, f);
        fclose(f);
    }
    kiln_dataset *ds = NULL;
    assert_int_equal(kiln_dataset_read_npy(ctx, path, NULL, KILN_LABELS_AUTO, &ds), status);
    assert_null(ds);
    char expected[1024];
    const char *hole = strstr(expected_format, "{}");
    assert_non_null(hole);
    snprintf(expected, sizeof expected, "kiln_dataset_read_npy: %.*s%s%s",
             (int)(hole - expected_format), expected_format, path, hole + 2);
    assert_string_equal(kiln_context_last_error(ctx), expected);
    free(path);
    kiln_context_destroy(ctx);
}

static void test_bad_headers(void **state)
{
    (void)state;
    expect_error("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", NULL, 24,
                 KILN_ERR_UNSUPPORTED,
                 "'{}': the array is in Fortran order ('fortran_order': True); save it in C "
                 "order, e.g. np.save(path, np.ascontiguousarray(a))");
    expect_error("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", NULL, 24,
                 KILN_ERR_UNSUPPORTED,
                 "'{}': dtype '>f4' is not supported; Kiln reads little-endian <f4, <f8, |u1, "
                 "<i4 and <i8 (convert with a.astype(np.float32))");
    expect_error("{'descr': '<f2', 'fortran_order': False, 'shape': (2, 3), }", NULL, 12,
                 KILN_ERR_UNSUPPORTED,
                 "'{}': dtype '<f2' is not supported; Kiln reads little-endian <f4, <f8, |u1, "
                 "<i4 and <i8 (convert with a.astype(np.float32))");
    expect_error("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", NULL, 8,
                 KILN_ERR_CORRUPT,
                 "'{}': bad NPY header at byte offset 20: expected a dtype string such as '<f4' "
                 "(structured dtypes are not supported), found '[('a', '<f4')], 'fortra'");
    expect_error("{'descr': '<f4', 'shape': (2, 3), }", NULL, 24, KILN_ERR_CORRUPT,
                 "'{}': the NPY header at byte offset 10 lacks 'fortran_order'");
    expect_error("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1}", NULL, 24,
                 KILN_ERR_CORRUPT,
                 "'{}': bad NPY header at byte offset 68: expected only the keys 'descr', "
                 "'fortran_order' and 'shape', found ''x': 1}'");
    expect_error("{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", NULL, 24,
                 KILN_ERR_CORRUPT,
                 "'{}': bad NPY header at byte offset 64: expected a dimension (a non-negative "
                 "integer) or ')', found 'x), }'");
    expect_error("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", NULL, 4, KILN_ERR_SHAPE,
                 "'{}': the array is a scalar (shape ()); expected (n, ...) with one row per "
                 "sample");
    expect_error("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }", NULL, 0,
                 KILN_ERR_SHAPE, "'{}': dimension 0 of the shape is 0; expected a non-empty array");
    expect_error("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", NULL, 20,
                 KILN_ERR_CORRUPT,
                 "'{}': truncated at byte offset 148: expected 24 bytes of the 6-element <f4 "
                 "array from byte offset 128");
    expect_error("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", NULL, 30,
                 KILN_ERR_CORRUPT,
                 "'{}': 6 unexpected bytes after byte offset 152, where the 6-element <f4 array "
                 "ends (is the header's size wrong?)");
    expect_error(NULL, "\x93NUMPX\x01\x00", 8, KILN_ERR_CORRUPT,
                 "'{}' is not an NPY file: bad magic at byte offset 0 (expected \\x93NUMPY, as "
                 "np.save writes)");
    expect_error(NULL, "\x93NUMPY\x04\x00\x10\x00", 10, KILN_ERR_UNSUPPORTED,
                 "'{}': NPY format version 4.0 at byte offset 6; Kiln reads versions 1 to 3");
    expect_error(NULL, "\x93NUMPY\x01\x00\x40\x00{'descr'", 18, KILN_ERR_CORRUPT,
                 "'{}': truncated at byte offset 18: expected 64 bytes of the NPY header from "
                 "byte offset 10, got 8");
}

static void test_out_of_memory(void **state)
{
    (void)state;
    const float x[6] = {1, 2, 3, 4, 5, 6};
    const unsigned char y[2] = {1, 0};
    char *xp = write_npy("oom-x.npy", 1,
                         "{'descr': '<f4', 'fortran_order': False, 'shape': (2, "
                         "3), }",
                         x, sizeof x, false);
    char *yp = write_npy("oom-y.npy", 3,
                         "{'descr': '|u1', 'fortran_order': False, 'shape': (2,), "
                         "}",
                         y, sizeof y, true);
    for (long budget = 0;; budget++) {
        kiln_test_allocator a;
        kiln_context *ctx = kiln_test_counted_context(&a);
        a.budget = budget;
        kiln_dataset *ds = NULL;
        kiln_status rc = kiln_dataset_read_npy(ctx, xp, yp, KILN_LABELS_AUTO, &ds);
        a.budget = -1;
        if (rc == KILN_OK) {
            assert_memory_equal(ds->features, x, sizeof x);
            assert_int_equal(ds->classes[0], 1);
            assert_int_equal(ds->n_classes, 2);
        } else {
            assert_int_equal(rc, KILN_ERR_NO_MEMORY);
            assert_null(ds);
        }
        kiln_dataset_destroy(ds);
        kiln_context_destroy(ctx);
        assert_int_equal(a.live, 0);
        if (rc == KILN_OK)
            break;
    }
    free(yp);
    free(xp);
}

int main(void)
{
    const uint16_t probe = 1;
    if (*(const unsigned char *)&probe != 1) {
        fprintf(stderr, "test_npy writes little-endian data from host arrays; skipped on a "
                        "big-endian host\n");
        return KILN_TEST_SKIP;
    }
    g_dir = kiln_test_make_temp_dir("test_npy");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_dtype),
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_out_of_memory),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    kiln_test_remove_dir(g_dir);
    free(g_dir);
    return failed;
}
