/*
 * The device profile (kiln_device_options.profile): every launch is counted under its
 * "program:kernel" name, including past the 4096 pending events that force a collection; the
 * rows come sorted by time and their times are finite and >= 0; a reset zeroes them; a device
 * without profiling refuses the call with a message naming the option; and the counts of an
 * unprofiled and a profiled device agree with what was launched (1 and 4500 fills, 3 copies).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "device/device.h"
#include "support/kiln_test.h"

static void check(kiln_context *ctx, kiln_status rc)
{
    if (rc != KILN_OK)
        fail_msg("%s: %s", kiln_status_name(rc), kiln_context_last_error(ctx));
}

static void launch(kiln_context *ctx, kiln_device *dev, const char *kernel, kiln_buffer *x,
                   kiln_buffer *y, size_t n)
{
    kiln__arg fill_args[] = {KILN__ARG_BUF(x), KILN__ARG_FLOAT(1.5f), KILN__ARG_UINT(n)};
    kiln__arg copy_args[] = {KILN__ARG_BUF(x), KILN__ARG_BUF(y), KILN__ARG_UINT(n)};
    bool fill = strcmp(kernel, "fill_fwd") == 0;
    check(ctx, kiln__launch(dev, "fill", kernel, fill ? fill_args : copy_args, 3, 1, &n, NULL));
}

static const kiln_profile_row *find(const kiln_profile_row *rows, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(rows[i].name, name) == 0)
            return &rows[i];
    }
    return NULL;
}

static void test_profile(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device_options options = {
        .spec = kiln_test_device_spec(), .disable_cache = true, .profile = true};
    kiln_device *dev = NULL;
    check(ctx, kiln_device_create(ctx, &options, &dev));
    enum { N = 1000 };
    kiln_buffer *x = NULL, *y = NULL;
    check(ctx, kiln_buffer_create(dev, N * sizeof(float), "x", &x));
    check(ctx, kiln_buffer_create(dev, N * sizeof(float), "y", &y));
    for (int i = 0; i < 4500; i++)
        launch(ctx, dev, "fill_fwd", x, y, N);
    for (int i = 0; i < 3; i++)
        launch(ctx, dev, "copy_fwd", x, y, N);
    const kiln_profile_row *rows = NULL;
    size_t n = 0;
    check(ctx, kiln_device_profile(dev, &rows, &n));
    assert_int_equal(n, 2);
    const kiln_profile_row *fill = find(rows, n, "fill:fill_fwd");
    const kiln_profile_row *copy = find(rows, n, "fill:copy_fwd");
    assert_non_null(fill);
    assert_non_null(copy);
    assert_int_equal(fill->launches, 4500);
    assert_int_equal(copy->launches, 3);
    for (size_t i = 0; i < n; i++)
        assert_true(isfinite(rows[i].ms) && rows[i].ms >= 0);
    assert_true(rows[0].ms >= rows[1].ms);
    assert_true(fill->ms > 0); /* 4500 launches over 1000 floats take measurable time */

    kiln_device_profile_reset(dev);
    launch(ctx, dev, "copy_fwd", x, y, N);
    check(ctx, kiln_device_profile(dev, &rows, &n));
    assert_int_equal(find(rows, n, "fill:fill_fwd")->launches, 0);
    assert_int_equal(find(rows, n, "fill:copy_fwd")->launches, 1);
    assert_true(find(rows, n, "fill:fill_fwd")->ms == 0);
    kiln_buffer_destroy(x);
    kiln_buffer_destroy(y);
    kiln_device_destroy(dev);

    /* Without the option: an error that says how to turn it on. */
    dev = kiln_test_open_device(ctx, NULL);
    assert_int_equal(kiln_device_profile(dev, &rows, &n), KILN_ERR_INVALID_ARGUMENT);
    assert_null(rows);
    assert_contains(kiln_context_last_error(ctx), "created without profiling");
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

int main(void)
{
    kiln_test_require_device();
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_profile)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
