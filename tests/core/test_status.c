/*
 * Status codes: every code in the X-macro list has a distinct name and a non-empty message,
 * success is 0 and errors are negative, and unknown values get a placeholder, not a crash.
 */
#include <string.h>

#include "support/kiln_test.h"

static const kiln_status ALL[] = {
#define X(name, value, message) KILN_##name,
    KILN_STATUS_LIST(X)
#undef X
};
enum { N_ALL = sizeof ALL / sizeof ALL[0] };

static void test_names_and_messages(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ALL; i++) {
        const char *name = kiln_status_name(ALL[i]);
        assert_non_null(strstr(name, "KILN_"));
        assert_true(strlen(kiln_status_str(ALL[i])) > 0);
        for (size_t j = 0; j < i; j++) {
            assert_int_not_equal(ALL[i], ALL[j]);
            assert_string_not_equal(name, kiln_status_name(ALL[j]));
        }
        if (i > 0)
            assert_true(ALL[i] < 0);
    }
    assert_int_equal(KILN_OK, 0);
    assert_string_equal(kiln_status_name(KILN_ERR_BUILD), "KILN_ERR_BUILD");
    assert_string_equal(kiln_status_name(KILN_ERR_DEVICE_OOM), "KILN_ERR_DEVICE_OOM");
}

static void test_unknown(void **state)
{
    (void)state;
    assert_string_equal(kiln_status_name((kiln_status)-9999), "KILN_UNKNOWN_STATUS");
    assert_string_equal(kiln_status_str((kiln_status)12345), "unknown status");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_messages),
        cmocka_unit_test(test_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
