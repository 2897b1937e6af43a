/*
 * Device buffers: a request larger than the device's maximum allocation (and one larger than
 * its global memory) returns KILN_ERR_DEVICE_OOM with a message giving the request in bytes,
 * the device's limits, the purpose and the device; zero bytes and out-of-range transfers are
 * rejected; Kiln's allocation accounting returns to zero.
 */
#include <stdio.h>
#include <string.h>

#include "support/kiln_test.h"

static void test_too_large(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, NULL);
    const kiln_device_info *info = kiln_device_get_info(dev);
    kiln_buffer *b = NULL;

    size_t request = (size_t)info->max_alloc_bytes + 1;
    assert_int_equal(kiln_buffer_create(dev, request, "tensor conv9.weight", &b),
                     KILN_ERR_DEVICE_OOM);
    assert_null(b);
    const char *message = kiln_context_last_error(ctx);
    char bytes[32];
    snprintf(bytes, sizeof bytes, "(%zu bytes)", request);
    assert_contains(message, bytes);
    assert_contains(message, "tensor conv9.weight");
    assert_contains(message, info->name);
    assert_contains(message, "maximum single allocation");
    char limit[32];
    assert_contains(message, kiln_format_bytes(info->max_alloc_bytes, limit, sizeof limit));
    assert_contains(message, kiln_format_bytes(info->global_mem_bytes, limit, sizeof limit));

    request = (size_t)info->global_mem_bytes * 2;
    assert_int_equal(kiln_buffer_create(dev, request, "activations", &b), KILN_ERR_DEVICE_OOM);
    assert_contains(kiln_context_last_error(ctx), "activations");

    assert_int_equal(kiln_buffer_create(dev, 0, "nothing", &b), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), "zero-byte buffer requested for nothing");
    assert_int_equal(kiln_device_get_allocated_bytes(dev), 0);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

static void test_transfers_and_accounting(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, NULL);
    kiln_buffer *a = NULL, *b = NULL;
    assert_int_equal(kiln_buffer_create(dev, 40, "a", &a), KILN_OK);
    assert_int_equal(kiln_buffer_create(dev, 13, "b", &b), KILN_OK);
    assert_int_equal(kiln_device_get_allocated_bytes(dev), 53);
    assert_int_equal(kiln_buffer_get_size(b), 13);
    unsigned char in[40], out[40];
    for (int i = 0; i < 40; i++)
        in[i] = (unsigned char)(i * 7 + 1);
    assert_int_equal(kiln_buffer_write(a, 0, in, 40), KILN_OK);
    assert_int_equal(kiln_buffer_read(a, 10, out, 30), KILN_OK);
    assert_memory_equal(out, in + 10, 30);
    assert_int_equal(kiln_buffer_write(a, 8, in, 33), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), "outside the 40-byte buffer");
    assert_int_equal(kiln_buffer_read(a, 41, out, 0), KILN_ERR_INVALID_ARGUMENT);
    assert_int_equal(kiln_buffer_read(a, 40, out, 0), KILN_OK);
    kiln_buffer_destroy(a);
    assert_int_equal(kiln_device_get_allocated_bytes(dev), 13);
    kiln_buffer_destroy(b);
    kiln_buffer_destroy(NULL);
    assert_int_equal(kiln_device_get_allocated_bytes(dev), 0);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

int main(void)
{
    kiln_test_require_device();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_transfers_and_accounting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
