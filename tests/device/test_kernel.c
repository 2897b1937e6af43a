/*
 * A kernel compiled, run and checked: fill and copy from the embedded cl/fill.cl at sizes 1,
 * odd, and not a multiple of the work-group size (with an explicit local size, so the launch
 * rounds the global size up and the kernel's bounds check matters). The element past the end
 * of each written range is a sentinel that must survive.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "device/device.h"
#include "support/kiln_test.h"

static kiln_context *CTX;
static kiln_device *DEV;

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
    assert_int_equal(kiln_device_get_allocated_bytes(DEV), 0);
    kiln_device_destroy(DEV);
    kiln_context_destroy(CTX);
    return 0;
}

static void check(kiln_status rc)
{
    if (rc != KILN_OK)
        fail_msg("%s: %s", kiln_status_name(rc), kiln_context_last_error(CTX));
}

static void test_fill_and_copy(void **state)
{
    (void)state;
    const size_t sizes[] = {1, 7, 64, 65, 1000, 100003};
    const size_t local_sizes[] = {0, 1, 16, 64};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        for (size_t l = 0; l < sizeof local_sizes / sizeof local_sizes[0]; l++) {
            size_t n = sizes[s];
            size_t bytes = (n + 1) * sizeof(float); /* one sentinel past the range */
            kiln_buffer *x = NULL, *y = NULL;
            check(kiln_buffer_create(DEV, bytes, "test x", &x));
            check(kiln_buffer_create(DEV, bytes, "test y", &y));
            float *host = malloc(bytes);
            assert_non_null(host);
            for (size_t i = 0; i <= n; i++)
                host[i] = -1.0f;
            check(kiln_buffer_write(x, 0, host, bytes));
            check(kiln_buffer_write(y, 0, host, bytes));

            size_t global = n;
            const size_t *local = local_sizes[l] == 0 ? NULL : &local_sizes[l];
            float value = 0.25f + (float)s;
            kiln__arg fill_args[] = {KILN__ARG_BUF(x), KILN__ARG_FLOAT(value),
                                     KILN__ARG_UINT(n)};
            check(kiln__launch(DEV, "fill", "fill_fwd", fill_args, 3, 1, &global, local));
            kiln__arg copy_args[] = {KILN__ARG_BUF(x), KILN__ARG_BUF(y), KILN__ARG_UINT(n)};
            check(kiln__launch(DEV, "fill", "copy_fwd", copy_args, 3, 1, &global, local));
            check(kiln_buffer_read(y, 0, host, bytes));
            for (size_t i = 0; i < n; i++) {
                if (host[i] != value)
                    fail_msg("n=%zu local=%zu: y[%zu] = %g, expected %g", n, local_sizes[l], i,
                             (double)host[i], (double)value);
            }
            if (host[n] != -1.0f)
                fail_msg("n=%zu local=%zu: the sentinel past the end was overwritten (%g)", n,
                         local_sizes[l], (double)host[n]);
            free(host);
            kiln_buffer_destroy(x);
            kiln_buffer_destroy(y);
        }
    }
}

static void test_prepare_origins(void **state)
{
    (void)state;
    kiln_program_origin origin = KILN_PROGRAM_FROM_CACHE;
    assert_true(kiln_program_count() >= 1);
    bool has_fill = false;
    for (size_t i = 0; i < kiln_program_count(); i++)
        has_fill = has_fill || strcmp(kiln_program_name(i), "fill") == 0;
    assert_true(has_fill);
    assert_null(kiln_program_name(kiln_program_count()));
    /* Already built by the launches above: the in-memory table answers. */
    check(kiln_device_prepare(DEV, "fill", &origin));
    assert_int_equal(origin, KILN_PROGRAM_IN_MEMORY);
    assert_int_equal(kiln_device_prepare(DEV, "no_such_program", &origin), KILN_ERR_NOT_FOUND);
    assert_contains(kiln_context_last_error(CTX), "no_such_program");
}

static void test_bad_launch(void **state)
{
    (void)state;
    size_t global = 4;
    kiln__arg args[] = {KILN__ARG_UINT(4)};
    assert_int_equal(kiln__launch(DEV, "fill", "no_such_kernel", args, 1, 1, &global, NULL),
                     KILN_ERR_NOT_FOUND);
    assert_contains(kiln_context_last_error(CTX), "no_such_kernel");
    assert_contains(kiln_context_last_error(CTX), "CL_INVALID_KERNEL_NAME");
    kiln__arg null_buffer[] = {KILN__ARG_BUF(NULL), KILN__ARG_FLOAT(1), KILN__ARG_UINT(4)};
    assert_int_equal(kiln__launch(DEV, "fill", "fill_fwd", null_buffer, 3, 1, &global, NULL),
                     KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(CTX), "fill_fwd");
}

int main(void)
{
    kiln_test_require_device();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fill_and_copy),
        cmocka_unit_test(test_prepare_origins),
        cmocka_unit_test(test_bad_launch),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
