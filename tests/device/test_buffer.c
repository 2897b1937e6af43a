/*
 * Device buffers: a request larger than the device's maximum allocation (and one larger than
 * its global memory) returns KILN_ERR_DEVICE_OOM with a message giving the request in bytes,
 * the device's limits, the purpose and the device; zero bytes and out-of-range transfers are
 * rejected; Kiln's allocation accounting returns to zero. Queued transfers (the _async forms)
 * deliver the values written, in queue order, once their ticket is waited on or released; bad
 * arguments queue nothing and say why.
 */
#include <stdio.h>
#include <stdlib.h>
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

/* A write and then a read, both queued: waiting on the read alone suffices (in-order queue),
 * and a second write queued after the read does not reach the first read's host memory. */
static void test_async_round_trip(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, NULL);
    enum { N = 1 << 18 }; /* 1 MiB of floats: large enough that a copy takes real time */
    float *in = malloc(N * sizeof *in), *out = malloc(N * sizeof *out);
    float *in2 = malloc(N * sizeof *in2), *out2 = malloc(N * sizeof *out2);
    assert_non_null(in);
    assert_non_null(out);
    assert_non_null(in2);
    assert_non_null(out2);
    for (int i = 0; i < N; i++) {
        in[i] = (float)i * 0.5f;
        in2[i] = -(float)i;
        out[i] = out2[i] = 7.0f;
    }
    kiln_buffer *b = NULL;
    assert_int_equal(kiln_buffer_create(dev, N * sizeof(float), "async", &b), KILN_OK);
    kiln_transfer *write = NULL, *read = NULL, *write2 = NULL, *read2 = NULL;
    assert_int_equal(kiln_buffer_write_async(b, 0, in, N * sizeof(float), &write), KILN_OK);
    assert_non_null(write);
    assert_int_equal(kiln_buffer_read_async(b, 0, out, N * sizeof(float), &read), KILN_OK);
    assert_int_equal(kiln_buffer_write_async(b, 0, in2, N * sizeof(float), &write2), KILN_OK);
    assert_int_equal(kiln_buffer_read_async(b, 4, out2, 8, &read2), KILN_OK);
    assert_int_equal(kiln_transfer_wait(read), KILN_OK);
    assert_memory_equal(out, in, N * sizeof(float));
    assert_int_equal(kiln_transfer_wait(read), KILN_OK); /* a second wait returns at once */
    assert_int_equal(kiln_transfer_wait(read2), KILN_OK);
    assert_memory_equal(out2, in2 + 1, 8);
    assert_true(out2[2] == 7.0f); /* nothing past the 8 bytes asked for */
    kiln_transfer_release(write);
    kiln_transfer_release(read);
    kiln_transfer_release(write2);
    kiln_transfer_release(read2);

    /* Released without a wait: the release waits, so the memory holds the values afterwards. */
    assert_int_equal(kiln_buffer_read_async(b, 0, out, N * sizeof(float), &read), KILN_OK);
    kiln_transfer_release(read);
    assert_memory_equal(out, in2, N * sizeof(float));

    /* Without a ticket the caller synchronises by finishing the queue. */
    assert_int_equal(kiln_buffer_write_async(b, 0, in, N * sizeof(float), NULL), KILN_OK);
    assert_int_equal(kiln_device_finish(dev), KILN_OK);
    assert_int_equal(kiln_buffer_read(b, 0, out, N * sizeof(float)), KILN_OK);
    assert_memory_equal(out, in, N * sizeof(float));

    /* An empty transfer has a ticket that is complete at once. */
    assert_int_equal(kiln_buffer_read_async(b, 0, out, 0, &read), KILN_OK);
    assert_non_null(read);
    assert_int_equal(kiln_transfer_wait(read), KILN_OK);
    kiln_transfer_release(read);

    kiln_buffer_destroy(b);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
    free(in);
    free(out);
    free(in2);
    free(out2);
}

/* Bad arguments: a status, a message naming the buffer's range or the device, no ticket. */
static void test_async_bad_arguments(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, NULL);
    kiln_buffer *b = NULL;
    assert_int_equal(kiln_buffer_create(dev, 40, "small", &b), KILN_OK);
    unsigned char host[64] = {0};
    kiln_transfer *t = (kiln_transfer *)(uintptr_t)1; /* must be reset to NULL */
    assert_int_equal(kiln_buffer_write_async(b, 8, host, 33, &t), KILN_ERR_INVALID_ARGUMENT);
    assert_null(t);
    assert_contains(kiln_context_last_error(ctx), "kiln_buffer_write_async");
    assert_contains(kiln_context_last_error(ctx), "outside the 40-byte buffer");
    t = (kiln_transfer *)(uintptr_t)1;
    assert_int_equal(kiln_buffer_read_async(b, 0, NULL, 4, &t), KILN_ERR_INVALID_ARGUMENT);
    assert_null(t);
    assert_contains(kiln_context_last_error(ctx), "kiln_buffer_read_async");
    assert_contains(kiln_context_last_error(ctx), "NULL host memory");
    assert_contains(kiln_context_last_error(ctx), kiln_device_get_info(dev)->name);
    assert_int_equal(kiln_buffer_read_async(NULL, 0, host, 4, &t), KILN_ERR_INVALID_ARGUMENT);
    assert_null(t);
    assert_int_equal(kiln_transfer_wait(NULL), KILN_ERR_INVALID_ARGUMENT);
    kiln_transfer_release(NULL);
    kiln_buffer_destroy(b);
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
        cmocka_unit_test(test_async_round_trip),
        cmocka_unit_test(test_async_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
