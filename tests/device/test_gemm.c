/*
 * The internal GEMM interface against a double-precision host product, on both backends:
 * Kiln's cl/gemm.cl, with packed operands and reading them in place (KILN_GEMM_PACK=1 and 0),
 * NT products also as dot products (KILN_GEMM_DOT=1), and CLBlast (KILN_GEMM picks). Every
 * transpose combination; sizes 1, odd, prime, k = 1, and sizes that are not multiples of the
 * kernel's 14 x 32 tile (and some that are); alpha/beta cases (beta 0 over a C full of NaN must not
 * read it, alpha 0 must not read A or B); offsets, padded leading dimensions, strided batches and a
 * B shared across the batch; tiles taken in groups of row tiles (B past 1 MB); products packed
 * and multiplied in one launch; that C outside the product is untouched; the default backend
 * choice; split-k (KILN_GEMM_SPLIT forces the slices) and when it applies; operands that do
 * not fit their buffers. Tolerance: 1e-6 + (k + 2) * FLT_EPSILON *
 * sum |terms|, the float error bound of a k-term dot product plus the beta term.
 */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "device/gemm.h"
#include "support/kiln_test.h"

static kiln_context *CTX;
static kiln_device *DEV;

static float value(size_t i, int salt)
{
    return (float)(((i * 2654435761u + (size_t)salt * 97u) % 2001) / 1000.0 - 1.0);
}

static kiln_buffer *upload(const float *host, size_t n)
{
    kiln_buffer *b = NULL;
    assert_int_equal(kiln_buffer_create(DEV, n * sizeof(float), "gemm test", &b), KILN_OK);
    assert_int_equal(kiln_buffer_write(b, 0, host, n * sizeof(float)), KILN_OK);
    return b;
}

typedef struct gemm_case {
    bool ta, tb;
    size_t m, n, k, batch;
    float alpha, beta;
    size_t offset;
    bool b_shared; /* one B for every batch entry (stride 0) */
    bool nan_c;    /* C starts as NaN (with beta 0: must not leak) */
} gemm_case;

static gemm_case product(bool ta, bool tb, size_t m, size_t n, size_t k, size_t batch, float alpha,
                         float beta, size_t offset)
{
    gemm_case t = {ta, tb, m, n, k, batch, alpha, beta, offset, false, false};
    return t;
}

static const char *env_or_dash(const char *name)
{
    return getenv(name) != NULL ? getenv(name) : "-";
}

/* Runs one product and compares every element of C, and C's padding, with the host. */
static void check(const gemm_case *t)
{
    bool ta = t->ta, tb = t->tb;
    size_t m = t->m, n = t->n, k = t->k, batch = t->batch, offset = t->offset;
    /* A (batch, m, k) or (batch, k, m); B (batch, k, n) or (batch, n, k); C (batch, m, n). Rows
     * are padded (ld > row length) and batch entries spaced apart. */
    size_t lda = (ta ? m : k) + 1, ldb = (tb ? k : n) + 2, ldc = n + 3;
    size_t a_rows = ta ? k : m, b_rows = tb ? n : k;
    size_t sa = a_rows * lda + 5, sb = t->b_shared ? 0 : b_rows * ldb + 1, sc = m * ldc + 2;
    size_t na = offset + batch * sa, nb = offset + (t->b_shared ? 1 : batch) * (b_rows * ldb + 1);
    size_t nc = offset + batch * sc;
    float *a = malloc(na * sizeof *a), *b = malloc(nb * sizeof *b), *c = malloc(nc * sizeof *c);
    float *got = malloc(nc * sizeof *got);
    assert_non_null(a), assert_non_null(b), assert_non_null(c), assert_non_null(got);
    for (size_t i = 0; i < na; i++)
        a[i] = value(i, 1);
    for (size_t i = 0; i < nb; i++)
        b[i] = value(i, 2);
    for (size_t i = 0; i < nc; i++)
        c[i] = t->nan_c ? NAN : value(i, 3);
    kiln_buffer *ba = upload(a, na), *bb = upload(b, nb), *bc = upload(c, nc);
    kiln__gemm g = {ta, tb, m,      n,   k,  t->alpha, t->beta, ba,  offset, lda,
                    sa, bb, offset, ldb, sb, bc,       offset,  ldc, sc,     batch};
    if (kiln__gemm_run(DEV, "test", &g) != KILN_OK)
        fail_msg("%s", kiln_context_last_error(CTX));
    assert_int_equal(kiln_buffer_read(bc, 0, got, nc * sizeof(float)), KILN_OK);
    for (size_t q = 0; q < batch; q++) {
        for (size_t i = 0; i < m; i++) {
            for (size_t j = 0; j < n; j++) {
                double sum = 0, mag = 0;
                for (size_t p = 0; p < k; p++) {
                    double x = a[offset + q * sa + (ta ? p * lda + i : i * lda + p)];
                    double y = b[offset + q * sb + (tb ? j * ldb + p : p * ldb + j)];
                    sum += x * y;
                    mag += fabs(x * y);
                }
                size_t ci = offset + q * sc + i * ldc + j;
                double old = t->beta == 0.0f ? 0.0 : (double)c[ci];
                double want = t->alpha * sum + t->beta * old;
                double tol = 1e-6 + (double)(k + 2) * FLT_EPSILON *
                                        (fabs(t->alpha) * mag + fabs(t->beta * old));
                if (!(fabs(got[ci] - want) <= tol))
                    fail_msg("%s (KILN_GEMM_PACK %s, DOT %s, TILE %s): ta %d tb %d m %zu n %zu "
                             "k %zu batch %zu alpha %g beta %g: "
                             "C[%zu][%zu][%zu] = %g, expected %g (tolerance %g)",
                             kiln__gemm_backend_name(kiln__gemm_get_backend(DEV)),
                             env_or_dash("KILN_GEMM_PACK"), env_or_dash("KILN_GEMM_DOT"),
                             env_or_dash("KILN_GEMM_TILE"), ta, tb, m, n, k, batch,
                             (double)t->alpha, (double)t->beta, q, i, j, (double)got[ci], want,
                             tol);
            }
        }
    }
    /* Everything outside the product's elements (offset, row padding, gaps) is untouched,
     * bit for bit (NaN included). */
    for (size_t e = 0; e < nc; e++) {
        bool inside = false;
        if (e >= offset) {
            size_t q = (e - offset) / sc, r = (e - offset) % sc;
            inside = q < batch && r / ldc < m && r % ldc < n;
        }
        if (!inside && memcmp(&got[e], &c[e], sizeof(float)) != 0)
            fail_msg("C element %zu outside the product changed", e);
    }
    free(a), free(b), free(c), free(got);
    kiln_buffer_destroy(ba), kiln_buffer_destroy(bb), kiln_buffer_destroy(bc);
}

/* Shapes (m, n, k) checked for every transpose combination. */
static const size_t SHAPES[][3] = {
    {1, 1, 1},   {7, 5, 3},    {1, 37, 1},   {37, 1, 5},  {13, 31, 1},     {31, 97, 53},
    {14, 32, 2}, {28, 64, 16}, {15, 33, 17}, {29, 65, 7}, {300, 257, 129},
};

static void check_product(bool ta, bool tb, size_t m, size_t n, size_t k, size_t batch, float alpha,
                          float beta, size_t offset)
{
    gemm_case t = product(ta, tb, m, n, k, batch, alpha, beta, offset);
    check(&t);
}

/* Every shape, then alpha/beta with offsets, a strided batch and a B shared by the batch, for
 * one transpose combination. */
static void transpose_products(bool ta, bool tb)
{
    for (size_t s = 0; s < sizeof SHAPES / sizeof SHAPES[0]; s++)
        check_product(ta, tb, SHAPES[s][0], SHAPES[s][1], SHAPES[s][2], 1, 1, 0, 0);
    check_product(ta, tb, 33, 17, 65, 1, -0.5f, 1.0f, 4);
    check_product(ta, tb, 9, 11, 13, 3, 2.0f, 0.25f, 1);
    gemm_case t = product(ta, tb, 17, 40, 9, 4, 1.0f, 1.0f, 3);
    t.b_shared = true;
    check(&t);
}

/* beta 0 over NaN; alpha 0 (C = beta C), for one transpose combination. */
static void transpose_scalars(bool ta, bool tb)
{
    gemm_case t = product(ta, tb, 15, 33, 17, 2, 1.5f, 0.0f, 2);
    t.nan_c = true;
    check(&t);
    t = product(ta, tb, 1, 1, 1, 1, 1.0f, 0.0f, 0);
    t.nan_c = true;
    check(&t);
    check_product(ta, tb, 16, 35, 8, 1, 0.0f, 0.5f, 0);
}

static void all_products(const char *backend)
{
    setenv("KILN_GEMM", backend, 1);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            transpose_products(ta, tb);
    unsetenv("KILN_GEMM");
}

/* The scalar cases for every transpose, and k = 0 (C = beta C, no operand read). */
static void scalars(const char *backend)
{
    setenv("KILN_GEMM", backend, 1);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            transpose_scalars(ta, tb);
    check_product(false, false, 5, 7, 0, 2, 1.0f, 2.0f, 1);
    unsetenv("KILN_GEMM");
}

/* Forces Kiln's kernel with packing, the dot form and the tile as given (NULL: unset). */
static void force_kiln(const char *pack, const char *dot, const char *tile)
{
    setenv("KILN_GEMM", "kiln", 1);
    const char *names[3] = {"KILN_GEMM_PACK", "KILN_GEMM_DOT", "KILN_GEMM_TILE"};
    const char *values[3] = {pack, dot, tile};
    for (int i = 0; i < 3; i++) {
        if (values[i] != NULL)
            setenv(names[i], values[i], 1);
        else
            unsetenv(names[i]);
    }
}

/* Undoes force_kiln. */
static void unforce_kiln(void)
{
    force_kiln(NULL, NULL, NULL);
    unsetenv("KILN_GEMM");
}

static void test_kiln_products(void **state)
{
    (void)state;
    setenv("KILN_GEMM_PACK", "1", 1);
    all_products("kiln");
    unsetenv("KILN_GEMM_PACK");
}

/* Products whose B (4 column panels of 32 x 2100) passes the 1 MB the in-place kernels keep
 * in cache, so they take their tiles in groups of row tiles (8 of the 22 at a 14 x 2 x 16
 * tile: two whole groups and a last one of 6), and which the packed form splits into groups of
 * row tiles per work-item on a device of 2 or more compute units (4 panels, fewer than the 4
 * items per unit it wants): packed and in place, for every transpose, and in a strided batch with
 * an offset; and the dot form (6 x 4 tiles, k 2700: groups of 16 of 50 row tiles). */
static void test_kiln_grouped_products(void **state)
{
    (void)state;
    static const char *const packing[] = {"1", "0"};
    for (size_t i = 0; i < 2; i++) {
        /* the tile pinned, whatever the device's default or tuning */
        force_kiln(packing[i], NULL, "14x2x16");
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                check_product(ta, tb, 300, 97, 2100, 1, 1.0f, 0.0f, 0);
        check_product(false, false, 300, 97, 2100, 2, 0.5f, 1.0f, 3);
    }
    force_kiln("0", "1", "6x4x16"); /* packing would win over the dot form */
    check_product(false, true, 300, 97, 2700, 1, 1.0f, 0.0f, 0);
    unforce_kiln();
}

/* The packed form (gemm_panels, and gemm_panels_a from a packed transposed A) for every
 * transpose: 5-7 panels of 32 with a partial last one, k with a 16 x 16 block remainder, row
 * edges, alpha / beta with offsets, beta 0 over NaN, and k shorter than a block; k in blocks
 * (9000 > the 4096 rows of a 32-column panel in 512 KB of local memory: blocks of 4096, 4096
 * and 808, the later ones adding to C), with beta 0 over NaN and with beta 1; C's rows split
 * between work-items with a shorter last group on any device (one column panel, 29 row tiles:
 * 3 groups of 10, 10 and 9), with k in blocks; and k in blocks in a strided batch. */
static void test_kiln_panels(void **state)
{
    (void)state;
    force_kiln("1", NULL, "14x2x16");
    for (int ta = 0; ta < 2; ta++) {
        for (int tb = 0; tb < 2; tb++) {
            check_product(ta, tb, 31, 200, 53, 1, 1.0f, 0.0f, 0);
            check_product(ta, tb, 45, 129, 300, 1, -0.5f, 1.0f, 4);
            check_product(ta, tb, 15, 200, 7, 1, 2.0f, 0.25f, 1);
            gemm_case t = product(ta, tb, 29, 200, 17, 1, 1.5f, 0.0f, 2);
            t.nan_c = true;
            check(&t);
            gemm_case groups = product(ta, tb, 406, 20, 9000, 1, 1.0f, 0.0f, 0);
            groups.nan_c = true;
            check(&groups);
            check_product(ta, tb, 20, 40, 5000, 2, 0.5f, 0.5f, 1);
            gemm_case blocks = product(ta, tb, 17, 40, 9000, 1, 1.0f, 0.0f, 3);
            blocks.nan_c = true;
            check(&blocks);
            check_product(ta, tb, 17, 40, 9000, 1, 0.5f, 1.0f, 0);
        }
    }
    unforce_kiln();
}

static void test_kiln_scalars(void **state)
{
    (void)state;
    setenv("KILN_GEMM_PACK", "1", 1);
    scalars("kiln");
    unsetenv("KILN_GEMM_PACK");
}

static void test_kiln_direct_products(void **state)
{
    (void)state;
    setenv("KILN_GEMM_PACK", "0", 1);
    all_products("kiln");
    unsetenv("KILN_GEMM_PACK");
}

static void test_kiln_direct_scalars(void **state)
{
    (void)state;
    setenv("KILN_GEMM_PACK", "0", 1);
    scalars("kiln");
    unsetenv("KILN_GEMM_PACK");
}

/* The dot-product form of NT products (KILN_GEMM_DOT=1, read in place) with k-vectors 16, 8,
 * 4 and 2 wide and tiles of 1 to 14 rows by 1 to 5 columns: k shorter than one vector, k with
 * a remainder, column and row edges, and the scalar cases. */
static void test_kiln_dot_products(void **state)
{
    (void)state;
    static const char *const tiles[] = {"14x2x16", "6x4x16", "3x3x8", "2x5x4", "1x1x2"};
    for (size_t i = 0; i < sizeof tiles / sizeof tiles[0]; i++) {
        force_kiln("0", "1", tiles[i]);
        transpose_products(false, true);
        transpose_scalars(false, true);
    }
    unforce_kiln();
}

static void test_clblast_products(void **state)
{
    (void)state;
    all_products("clblast");
}

static void test_clblast_scalars(void **state)
{
    (void)state;
    scalars("clblast");
}

static void test_backend_choice(void **state)
{
    (void)state;
    const kiln_device_info *info = kiln_device_get_info(DEV);
    kiln__gemm_backend expected =
        info->type == KILN_DEVICE_TYPE_CPU ? KILN__GEMM_KILN : KILN__GEMM_CLBLAST;
    unsetenv("KILN_GEMM");
    assert_int_equal(kiln__gemm_get_backend(DEV), expected);
    setenv("KILN_GEMM", "clblast", 1);
    assert_int_equal(kiln__gemm_get_backend(DEV), KILN__GEMM_CLBLAST);
    setenv("KILN_GEMM", "kiln", 1);
    assert_int_equal(kiln__gemm_get_backend(DEV), KILN__GEMM_KILN);
    assert_string_equal(kiln__gemm_backend_name(KILN__GEMM_KILN), "kiln");
    unsetenv("KILN_GEMM");
}

static void test_bad_sizes(void **state)
{
    (void)state;
    kiln_buffer *small = NULL;
    assert_int_equal(kiln_buffer_create(DEV, 16 * sizeof(float), "small", &small), KILN_OK);
    kiln__gemm g = {.m = 4,
                    .n = 4,
                    .k = 4,
                    .alpha = 1,
                    .a = small,
                    .lda = 4,
                    .b = small,
                    .ldb = 4,
                    .c = small,
                    .ldc = 4,
                    .c_offset = 1};
    assert_int_equal(kiln__gemm_run(DEV, "op 'dense' weight", &g), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(CTX), "op 'dense' weight");
    assert_contains(kiln_context_last_error(CTX), "operand C");
    g.c_offset = 0;
    g.lda = 3;
    assert_int_equal(kiln__gemm_run(DEV, "x", &g), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(CTX), "leading dimension 3");
    kiln_buffer_destroy(small);
}

/* Long-k products for the split: k not a multiple of the slice count, k within a slice of
 * it, beta 0 over NaN and beta 1 with alpha and an offset, for one transpose combination. */
static void split_products(bool ta, bool tb)
{
    check_product(ta, tb, 9, 5, 1000, 1, 1.0f, 0.0f, 0);
    check_product(ta, tb, 32, 9, 2048, 1, 0.5f, 1.0f, 3);
    check_product(ta, tb, 3, 4, 8, 1, 1.0f, 0.0f, 0);
    gemm_case t = product(ta, tb, 17, 6, 777, 1, -1.5f, 0.0f, 2);
    t.nan_c = true;
    check(&t);
}

/* Split-k (gemm_split.c), forced to 7 and to 2 slices with the device's default backend: the
 * long-k products, then every shape and scalar case (k shorter than the slice count, batches,
 * which are never split) for every transpose combination. */
static void test_split_products(void **state)
{
    (void)state;
    const char *counts[] = {"7", "2"};
    for (size_t i = 0; i < 2; i++) {
        setenv("KILN_GEMM_SPLIT", counts[i], 1);
        for (int ta = 0; ta < 2; ta++) {
            for (int tb = 0; tb < 2; tb++) {
                split_products(ta, tb);
                transpose_products(ta, tb);
                transpose_scalars(ta, tb);
            }
        }
    }
    unsetenv("KILN_GEMM_SPLIT");
}

/* How many slices a product is cut into: forced counts (capped by k, off with 0), batches
 * never, and by default only off CPUs, for a product with few outputs and a long k. */
static void test_split_slices(void **state)
{
    (void)state;
    kiln__gemm conv1_dw = {.transpose_b = true, .m = 32, .n = 9, .k = 25088};
    kiln__gemm square = {.m = 1024, .n = 1024, .k = 1024};
    bool cpu = kiln_device_get_info(DEV)->type == KILN_DEVICE_TYPE_CPU;
    assert_int_equal(kiln__gemm_split_slices(DEV, &square), 1);
    if (cpu)
        assert_int_equal(kiln__gemm_split_slices(DEV, &conv1_dw), 1);
    else
        assert_true(kiln__gemm_split_slices(DEV, &conv1_dw) > 1);
    setenv("KILN_GEMM_SPLIT", "7", 1);
    assert_int_equal(kiln__gemm_split_slices(DEV, &conv1_dw), 7);
    assert_int_equal(kiln__gemm_split_slices(DEV, &square), 7);
    kiln__gemm short_k = {.m = 4, .n = 4, .k = 3};
    assert_int_equal(kiln__gemm_split_slices(DEV, &short_k), 3);
    kiln__gemm batched = {.m = 4, .n = 4, .k = 300, .batch = 2};
    assert_int_equal(kiln__gemm_split_slices(DEV, &batched), 1);
    setenv("KILN_GEMM_SPLIT", "0", 1);
    assert_int_equal(kiln__gemm_split_slices(DEV, &conv1_dw), 1);
    setenv("KILN_GEMM_SPLIT", "7x", 1); /* malformed: logged, and the default rule holds */
    assert_int_equal(kiln__gemm_split_slices(DEV, &square), 1);
    unsetenv("KILN_GEMM_SPLIT");
}

static int setup(void **state)
{
    (void)state;
    CTX = kiln_test_context();
    DEV = kiln_test_open_device(CTX, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    kiln_device_destroy(DEV);
    kiln_context_destroy(CTX);
    return 0;
}

int main(void)
{
    kiln_test_require_device();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backend_choice),
        cmocka_unit_test(test_kiln_products),
        cmocka_unit_test(test_kiln_grouped_products),
        cmocka_unit_test(test_kiln_panels),
        cmocka_unit_test(test_kiln_scalars),
        cmocka_unit_test(test_kiln_direct_products),
        cmocka_unit_test(test_kiln_direct_scalars),
        cmocka_unit_test(test_kiln_dot_products),
        cmocka_unit_test(test_clblast_products),
        cmocka_unit_test(test_clblast_scalars),
        cmocka_unit_test(test_split_slices),
        cmocka_unit_test(test_split_products),
        cmocka_unit_test(test_bad_sizes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
