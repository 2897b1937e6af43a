/*
 * Discovery and selection on the real OpenCL stack (PoCL in CI): the device list is non-empty
 * and self-consistent, each spec form reaches the same PoCL device, a spec naming a missing
 * GPU fails with a list of what exists, and device creation survives every allocation failure
 * without leaking (the failure-injecting allocator checks the count of live blocks).
 */
#include <stdio.h>
#include <string.h>

#include "support/kiln_test.h"

static void test_list(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device_info *infos = NULL;
    size_t n = 0;
    assert_int_equal(kiln_device_list(ctx, &infos, &n), KILN_OK);
    assert_true(n >= 1);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(infos[i].index, i);
        assert_true(strlen(infos[i].name) > 0);
        assert_true(infos[i].opencl_c_major >= 1);
        assert_true(infos[i].max_alloc_bytes > 0);
        assert_true(infos[i].global_mem_bytes >= infos[i].max_alloc_bytes);
        assert_true(infos[i].max_work_group_size >= 1);
    }
    kiln_device_list_free(ctx, infos);
    kiln_context_destroy(ctx);
}

static void test_spec_forms_reach_pocl(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    size_t pocl = 999;
    if (kiln_device_find(ctx, "pocl", &pocl) != KILN_OK)
        skip(); /* KILN_TEST_DEVICE names another device; the PoCL forms do not apply */
    kiln_device_info *infos = NULL;
    size_t n = 0;
    assert_int_equal(kiln_device_list(ctx, &infos, &n), KILN_OK);
    const kiln_device_info *d = &infos[pocl];
    char by_index[16], by_pd[32], by_name[64];
    snprintf(by_index, sizeof by_index, "%zu", d->index);
    snprintf(by_pd, sizeof by_pd, "%zu:%zu", d->platform_index, d->device_index);
    /* A lower-cased fragment of the name exercises case-insensitive matching. */
    snprintf(by_name, sizeof by_name, "%.8s", d->name);
    for (char *c = by_name; *c != '\0'; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
    const char *specs[] = {"pocl", "pocl:0", by_index, by_pd, by_name};
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        kiln_device_options options = {.spec = specs[i], .disable_cache = true};
        kiln_device *dev = NULL;
        if (kiln_device_create(ctx, &options, &dev) != KILN_OK)
            fail_msg("spec '%s': %s", specs[i], kiln_context_last_error(ctx));
        assert_string_equal(kiln_device_get_info(dev)->name, d->name);
        assert_contains(kiln_device_get_build_options(dev), "-DKILN_REAL=float");
        assert_contains(kiln_device_get_build_options(dev), "-cl-std=CL1.2");
        assert_null(kiln_device_get_cache_dir(dev));
        kiln_device_destroy(dev);
    }
    /* auto picks a GPU when there is one, otherwise this CPU device. */
    bool has_gpu = false;
    for (size_t i = 0; i < n; i++)
        has_gpu = has_gpu || infos[i].type == KILN_DEVICE_TYPE_GPU;
    size_t chosen = 999;
    assert_int_equal(kiln_device_find(ctx, "auto", &chosen), KILN_OK);
    if (has_gpu)
        assert_int_equal(infos[chosen].type, KILN_DEVICE_TYPE_GPU);
    else if (d->type == KILN_DEVICE_TYPE_CPU)
        assert_int_equal(infos[chosen].type, KILN_DEVICE_TYPE_CPU);
    kiln_device_list_free(ctx, infos);
    kiln_context_destroy(ctx);
}

static void test_missing_device(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device_options options = {.spec = "no-such-device-xyz"};
    kiln_device *dev = NULL;
    assert_int_equal(kiln_device_create(ctx, &options, &dev), KILN_ERR_NO_DEVICE);
    assert_null(dev);
    assert_contains(kiln_context_last_error(ctx), "'no-such-device-xyz' matches none");
    options.spec = "gpu:7:1";
    assert_int_equal(kiln_device_create(ctx, &options, &dev), KILN_ERR_BAD_SPEC);
    kiln_device_destroy(NULL); /* a no-op */
    kiln_context_destroy(ctx);
}

static void test_allocation_failures(void **state)
{
    (void)state;
    /* Fail the 0th, 1st, ... allocation in turn until creating the device and building a
     * program succeed: every failure must report KILN_ERR_NO_MEMORY and free everything it had
     * allocated. */
    long budget = 0;
    for (;; budget++) {
        kiln_test_allocator a;
        kiln_test_allocator_init(&a, -1);
        kiln_context_options options = {.allocator = &a.allocator};
        kiln_context *ctx = NULL;
        assert_int_equal(kiln_context_create(&options, &ctx), KILN_OK);
        a.budget = budget;
        kiln_device_options dev_options = {.spec = kiln_test_device_spec(),
                                           .disable_cache = true};
        kiln_device *dev = NULL;
        kiln_status rc = kiln_device_create(ctx, &dev_options, &dev);
        if (rc == KILN_OK) {
            rc = kiln_device_prepare(dev, "fill", NULL);
            kiln_device_destroy(dev);
            dev = NULL;
        }
        a.budget = -1;
        if (rc == KILN_OK) {
            kiln_context_destroy(ctx);
            assert_int_equal(a.live, 0);
            break;
        }
        if (rc != KILN_ERR_NO_MEMORY)
            fail_msg("allocation %ld failed: %s, %s", budget, kiln_status_name(rc),
                     kiln_context_last_error(ctx));
        assert_null(dev);
        kiln_context_destroy(ctx);
        if (a.live != 0)
            fail_msg("failing allocation %ld leaked %ld blocks", budget, a.live);
    }
    assert_true(budget > 2);
}

int main(void)
{
    kiln_test_require_device();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_spec_forms_reach_pocl),
        cmocka_unit_test(test_missing_device),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
