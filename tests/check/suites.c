/*
 * Every check suite, in the order `kiln selftest` runs them. One line per op family; the
 * suites themselves live beside their references in tests/ref/<family>.c.
 */
#include "check/check.h"

extern const kiln_check_suite kiln_check_suite_fill, kiln_check_suite_elementwise,
    kiln_check_suite_reduce, kiln_check_suite_matmul;

const kiln_check_suite *const kiln_check_suites[] = {
    &kiln_check_suite_fill,
    &kiln_check_suite_elementwise,
    &kiln_check_suite_reduce,
    &kiln_check_suite_matmul,
};
const size_t kiln_check_n_suites = sizeof kiln_check_suites / sizeof kiln_check_suites[0];
