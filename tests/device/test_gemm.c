/*
 * The internal GEMM interface against a double-precision host product: every transpose
 * combination, sizes 1 and odd, alpha/beta (beta = 1 accumulates, as backward needs),
 * offsets, strided batches, and operands that do not fit their buffers.
 */
#include <math.h>
#include <stdlib.h>

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

/* Runs one product and compares with the host; tolerance 1e-5 + 1e-5 * sum |terms|. */
static void check(bool ta, bool tb, size_t m, size_t n, size_t k, size_t batch, float alpha,
                  float beta, size_t offset)
{
    size_t lda = (ta ? m : k) + 1, ldb = (tb ? k : n) + 2, ldc = n + 3; /* padded rows */
    size_t a_rows = ta ? k : m, b_rows = tb ? n : k;
    size_t sa = a_rows * lda + 5, sb = b_rows * ldb + 1, sc = m * ldc + 2;
    size_t na = offset + batch * sa, nb = offset + batch * sb, nc = offset + batch * sc;
    float *a = malloc(na * sizeof *a), *b = malloc(nb * sizeof *b), *c = malloc(nc * sizeof *c);
    for (size_t i = 0; i < na; i++)
        a[i] = value(i, 1);
    for (size_t i = 0; i < nb; i++)
        b[i] = value(i, 2);
    for (size_t i = 0; i < nc; i++)
        c[i] = value(i, 3);
    kiln_buffer *ba = upload(a, na), *bb = upload(b, nb), *bc = upload(c, nc);
    kiln__gemm g = {ta,    tb,     m,  n,   k,      alpha,  beta,   ba,     offset, lda, sa,
                    bb,    offset, ldb, sb, bc,     offset, ldc,    sc,     batch};
    if (kiln__gemm_run(DEV, "test", &g) != KILN_OK)
        fail_msg("%s", kiln_context_last_error(CTX));
    float *got = malloc(nc * sizeof *got);
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
                double want = alpha * sum + beta * (double)c[ci];
                double tol = 1e-5 + 1e-5 * (fabs(alpha) * mag + fabs(beta * c[ci]));
                if (fabs(got[ci] - want) > tol)
                    fail_msg("ta %d tb %d m %zu n %zu k %zu batch %zu: C[%zu][%zu][%zu] = %g, "
                             "expected %g",
                             ta, tb, m, n, k, batch, q, i, j, (double)got[ci], want);
            }
        }
    }
    /* Padding between rows and batches is untouched. */
    for (size_t q = 0; q < batch; q++)
        for (size_t i = 0; i < m; i++)
            for (size_t j = n; j < ldc; j++)
                assert_true(got[offset + q * sc + i * ldc + j] == c[offset + q * sc + i * ldc + j]);
    free(a), free(b), free(c), free(got);
    kiln_buffer_destroy(ba), kiln_buffer_destroy(bb), kiln_buffer_destroy(bc);
}

static void test_products(void **state)
{
    (void)state;
    for (int ta = 0; ta < 2; ta++) {
        for (int tb = 0; tb < 2; tb++) {
            check(ta, tb, 1, 1, 1, 1, 1.0f, 0.0f, 0);
            check(ta, tb, 7, 5, 3, 1, 1.0f, 0.0f, 0);
            check(ta, tb, 33, 17, 65, 1, -0.5f, 1.0f, 4);
            check(ta, tb, 9, 11, 13, 3, 2.0f, 0.25f, 1);
        }
    }
}

static void test_bad_sizes(void **state)
{
    (void)state;
    kiln_buffer *small = NULL;
    assert_int_equal(kiln_buffer_create(DEV, 16 * sizeof(float), "small", &small), KILN_OK);
    kiln__gemm g = {.m = 4, .n = 4, .k = 4, .alpha = 1, .a = small, .lda = 4, .b = small,
                    .ldb = 4, .c = small, .ldc = 4, .c_offset = 1};
    assert_int_equal(kiln__gemm_run(DEV, "op 'dense' weight", &g), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(CTX), "op 'dense' weight");
    assert_contains(kiln_context_last_error(CTX), "operand C");
    g.c_offset = 0;
    g.lda = 3;
    assert_int_equal(kiln__gemm_run(DEV, "x", &g), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(CTX), "leading dimension 3");
    kiln_buffer_destroy(small);
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
        cmocka_unit_test(test_products),
        cmocka_unit_test(test_bad_sizes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
