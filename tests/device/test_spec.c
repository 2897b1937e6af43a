/*
 * Device specs without hardware: every accepted form parses to the right kind and numbers,
 * every malformed spec is rejected with a message that quotes it, and matching against a
 * synthetic machine (two platforms: an AMD GPU, an Intel GPU and PoCL on an AMD CPU) picks the
 * device each form promises. A spec that matches nothing lists every device.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdlib.h>
#include <string.h>

#include "device/select.h"
#include "support/kiln_test.h"

static kiln_device_info make(size_t index, size_t p, size_t d, const char *platform,
                             const char *name, const char *vendor, uint32_t vendor_id,
                             kiln_device_type type)
{
    kiln_device_info info;
    memset(&info, 0, sizeof info);
    info.index = index;
    info.platform_index = p;
    info.device_index = d;
    strcpy(info.platform_name, platform);
    strcpy(info.platform_vendor, strstr(platform, "Portable") ? "The pocl project" : "Vendor");
    strcpy(info.name, name);
    strcpy(info.vendor, vendor);
    info.vendor_id = vendor_id;
    info.type = type;
    return info;
}

/* Platform 0 (PoCL): an AMD CPU. Platform 1 (a GPU driver): Intel GPU, then two AMD GPUs. */
static kiln_device_info MACHINE[5];
enum { N_MACHINE = 5 };

static int setup(void **state)
{
    (void)state;
    MACHINE[0] = make(0, 0, 0, "Portable Computing Language", "pthread-AMD Ryzen 9 7950X",
                      "AuthenticAMD", 0x1022, KILN_DEVICE_TYPE_CPU);
    MACHINE[1] = make(1, 1, 0, "Mixed GPU Platform", "Intel(R) Arc(TM) A770 Graphics",
                      "Intel(R) Corporation", 0x8086, KILN_DEVICE_TYPE_GPU);
    MACHINE[2] = make(2, 1, 1, "Mixed GPU Platform", "gfx1030", "Advanced Micro Devices, Inc.",
                      0x1002, KILN_DEVICE_TYPE_GPU);
    MACHINE[3] = make(3, 1, 2, "Mixed GPU Platform", "gfx90a:sramecc+:xnack-",
                      "Advanced Micro Devices, Inc.", 0x1002, KILN_DEVICE_TYPE_GPU);
    MACHINE[4] =
        make(4, 2, 0, "Accel Platform", "Some FPGA", "Acme", 0x1234, KILN_DEVICE_TYPE_ACCELERATOR);
    return 0;
}

static kiln_context *CTX;

static kiln__spec parse_ok(const char *text)
{
    kiln__spec spec;
    kiln_status rc = kiln__spec_parse(CTX, text, &spec);
    if (rc != KILN_OK)
        fail_msg("spec '%s' rejected: %s", text != NULL ? text : "(null)",
                 kiln_context_last_error(CTX));
    return spec;
}

static void test_parse_forms(void **state)
{
    (void)state;
    struct {
        const char *text;
        kiln__spec_kind kind;
        size_t platform, ordinal;
    } cases[] = {
        {"auto", KILN__SPEC_AUTO, 0, 0},
        {"AUTO", KILN__SPEC_AUTO, 0, 0},
        {"cpu", KILN__SPEC_CPU, 0, 0},
        {"gpu", KILN__SPEC_GPU, 0, 0},
        {"Gpu:2", KILN__SPEC_GPU, 0, 2},
        {"amd", KILN__SPEC_AMD, 0, 0},
        {"amd:1", KILN__SPEC_AMD, 0, 1},
        {"intel:0", KILN__SPEC_INTEL, 0, 0},
        {"nvidia:3", KILN__SPEC_NVIDIA, 0, 3},
        {"pocl", KILN__SPEC_POCL, 0, 0},
        {"pocl:0", KILN__SPEC_POCL, 0, 0},
        {"0:0", KILN__SPEC_PLATFORM_DEVICE, 0, 0},
        {"1:2", KILN__SPEC_PLATFORM_DEVICE, 1, 2},
        {"3", KILN__SPEC_INDEX, 0, 3},
        {"  gpu  ", KILN__SPEC_GPU, 0, 0},
        {"Radeon", KILN__SPEC_NAME, 0, 0},
        {"gfx90a:sramecc+:xnack-", KILN__SPEC_NAME, 0, 0},
        {"Arc A770", KILN__SPEC_NAME, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kiln__spec spec = parse_ok(cases[i].text);
        if (spec.kind != cases[i].kind || spec.platform != cases[i].platform ||
            spec.ordinal != cases[i].ordinal)
            fail_msg("spec '%s': kind %d platform %zu ordinal %zu, expected %d %zu %zu",
                     cases[i].text, spec.kind, spec.platform, spec.ordinal, cases[i].kind,
                     cases[i].platform, cases[i].ordinal);
    }
    kiln__spec spec = parse_ok(NULL);
    assert_int_equal(spec.kind, KILN__SPEC_AUTO);
    spec = parse_ok("  Radeon  ");
    assert_string_equal(spec.text, "Radeon");
}

static void test_parse_bad(void **state)
{
    (void)state;
    struct {
        const char *text;
        const char *message;
    } cases[] = {
        {"", "empty"},
        {"   ", "empty"},
        {"amd:", "'amd:'"},
        {"amd:x", "got 'x'"},
        {"gpu:-1", "got '-1'"},
        {"0:", "'0:'"},
        {"1:a", "got 'a'"},
        {"auto:1", "'auto' takes no device number"},
        {":1", "nothing before ':'"},
        {"cpu:99999999999", "got '99999999999'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kiln__spec spec;
        kiln_status rc = kiln__spec_parse(CTX, cases[i].text, &spec);
        if (rc != KILN_ERR_BAD_SPEC)
            fail_msg("spec '%s' gave %s, expected KILN_ERR_BAD_SPEC", cases[i].text,
                     kiln_status_name(rc));
        assert_contains(kiln_context_last_error(CTX), cases[i].message);
        if (strcmp(cases[i].text, "auto:1") != 0)
            assert_contains(kiln_context_last_error(CTX), "accepted forms");
    }
    char long_spec[600];
    memset(long_spec, 'a', sizeof long_spec - 1);
    long_spec[sizeof long_spec - 1] = '\0';
    kiln__spec spec;
    assert_int_equal(kiln__spec_parse(CTX, long_spec, &spec), KILN_ERR_BAD_SPEC);
    assert_contains(kiln_context_last_error(CTX), "characters long");
}

static size_t match(const char *text)
{
    kiln__spec spec = parse_ok(text);
    size_t index = 999;
    kiln_status rc = kiln__spec_match(CTX, &spec, MACHINE, N_MACHINE, &index);
    if (rc != KILN_OK)
        fail_msg("spec '%s' matched nothing: %s", text, kiln_context_last_error(CTX));
    return index;
}

static void test_match(void **state)
{
    (void)state;
    assert_int_equal(match("auto"), 1); /* the first GPU, not the CPU listed before it */
    assert_int_equal(match("gpu"), 1);
    assert_int_equal(match("gpu:1"), 2);
    assert_int_equal(match("gpu:2"), 3);
    assert_int_equal(match("cpu"), 0);
    assert_int_equal(match("pocl"), 0);
    assert_int_equal(match("intel"), 1);
    /* AMD: GPUs first, although the AMD CPU comes first in discovery order. */
    assert_int_equal(match("amd"), 2);
    assert_int_equal(match("amd:1"), 3);
    assert_int_equal(match("amd:2"), 0);
    assert_int_equal(match("1:2"), 3);
    assert_int_equal(match("0:0"), 0);
    assert_int_equal(match("2:0"), 4);
    assert_int_equal(match("4"), 4);
    assert_int_equal(match("ryzen"), 0);
    assert_int_equal(match("A770"), 1);
    assert_int_equal(match("gfx90a:sramecc+:xnack-"), 3);
    assert_int_equal(match("gfx"), 2);
}

static void test_auto_fallbacks(void **state)
{
    (void)state;
    kiln__spec spec = parse_ok("auto");
    size_t index = 999;
    /* No GPU: the CPU. */
    kiln_device_info cpu_and_accel[2] = {MACHINE[4], MACHINE[0]};
    assert_int_equal(kiln__spec_match(CTX, &spec, cpu_and_accel, 2, &index), KILN_OK);
    assert_int_equal(index, 1);
    /* Neither: whatever exists. */
    assert_int_equal(kiln__spec_match(CTX, &spec, &MACHINE[4], 1, &index), KILN_OK);
    assert_int_equal(index, 0);
}

static void test_no_match_lists_devices(void **state)
{
    (void)state;
    const char *misses[] = {"nvidia", "amd:3", "gpu:3", "5", "1:3", "3:0", "Tesla"};
    for (size_t i = 0; i < sizeof misses / sizeof misses[0]; i++) {
        kiln__spec spec = parse_ok(misses[i]);
        size_t index = 999;
        kiln_status rc = kiln__spec_match(CTX, &spec, MACHINE, N_MACHINE, &index);
        if (rc != KILN_ERR_NO_DEVICE)
            fail_msg("spec '%s' gave %s (index %zu)", misses[i], kiln_status_name(rc), index);
        assert_int_equal(index, 999);
        const char *message = kiln_context_last_error(CTX);
        assert_contains(message, misses[i]);
        assert_contains(message, "matches none of the 5 OpenCL device(s)");
        for (size_t d = 0; d < N_MACHINE; d++)
            assert_contains(message, MACHINE[d].name);
    }
}

static void test_env_override(void **state)
{
    (void)state;
    unsetenv("KILN_DEVICE");
    assert_string_equal(kiln_device_spec_effective("gpu"), "gpu");
    assert_string_equal(kiln_device_spec_effective(NULL), "auto");
    assert_string_equal(kiln_device_spec_effective(""), "auto");
    setenv("KILN_DEVICE", "intel:1", 1);
    assert_string_equal(kiln_device_spec_effective("gpu"), "intel:1");
    setenv("KILN_DEVICE", "", 1);
    assert_string_equal(kiln_device_spec_effective("gpu"), "gpu");
    unsetenv("KILN_DEVICE");
}

int main(void)
{
    assert_int_equal(kiln_context_create(NULL, &CTX), KILN_OK);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_forms),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_auto_fallbacks),
        cmocka_unit_test(test_no_match_lists_devices),
        cmocka_unit_test(test_env_override),
    };
    int failed = cmocka_run_group_tests(tests, setup, NULL);
    kiln_context_destroy(CTX);
    return failed;
}
