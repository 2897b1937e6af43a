/*
 * The compile-error path: a deliberately broken source returns KILN_ERR_BUILD, and the
 * message names the program and the device and contains the driver's full build log (here,
 * the undeclared identifier the source uses). A device keeps working after a failed build.
 */
#include <string.h>

#include "device/device.h"
#include "support/kiln_test.h"

static const char BROKEN[] =
    "__kernel void broken(__global float *y)\n"
    "{\n"
    "    y[get_global_id(0)] = kiln_undeclared_identifier * 2.0f;\n"
    "}\n";

static const char VALID[] = "__kernel void ok(__global float *y) { y[0] = KILN_REAL_ONE; }\n";

static void test_broken_source(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, NULL);
    cl_program program = NULL;
    kiln_status rc = kiln__program_build(dev, "deliberately_broken", BROKEN, strlen(BROKEN),
                                         NULL, &program, NULL);
    assert_int_equal(rc, KILN_ERR_BUILD);
    assert_null(program);
    const char *message = kiln_context_last_error(ctx);
    assert_contains(message, "program 'deliberately_broken' failed to compile");
    assert_contains(message, kiln_device_get_info(dev)->name);
    assert_contains(message, "CL_BUILD_PROGRAM_FAILURE");
    assert_contains(message, "--- build log ---");
    assert_contains(message, "kiln_undeclared_identifier");
    assert_contains(message, "-DKILN_REAL=float");

    /* Extra options reach the compiler: the valid source needs the macro they define. */
    rc = kiln__program_build(dev, "valid", VALID, strlen(VALID), "-DKILN_REAL_ONE=1.0f",
                             &program, NULL);
    if (rc != KILN_OK)
        fail_msg("%s", kiln_context_last_error(ctx));
    clReleaseProgram(program);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

int main(void)
{
    kiln_test_require_device();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_broken_source),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
