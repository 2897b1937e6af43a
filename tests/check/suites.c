/*
 * Every check suite, in the order `kiln selftest` runs them. One line per op family; the
 * suites themselves live beside their references in tests/ref/<family>.c.
 */
#include "check/check.h"

extern const kiln_check_suite kiln_check_suite_fill;
extern const kiln_check_suite kiln_check_suite_elementwise;
extern const kiln_check_suite kiln_check_suite_reduce;
extern const kiln_check_suite kiln_check_suite_conv;
extern const kiln_check_suite kiln_check_suite_loss;
extern const kiln_check_suite kiln_check_suite_dice;
extern const kiln_check_suite kiln_check_suite_activation;
extern const kiln_check_suite kiln_check_suite_softmax;
extern const kiln_check_suite kiln_check_suite_pool;
extern const kiln_check_suite kiln_check_suite_upsample;
extern const kiln_check_suite kiln_check_suite_concat;
extern const kiln_check_suite kiln_check_suite_reshape;
extern const kiln_check_suite kiln_check_suite_optim;
extern const kiln_check_suite kiln_check_suite_batchnorm;
extern const kiln_check_suite kiln_check_suite_dropout;
extern const kiln_check_suite kiln_check_suite_matmul;

// clang-format off
const kiln_check_suite *const kiln_check_suites[] = {
    &kiln_check_suite_fill,
    &kiln_check_suite_elementwise,
    &kiln_check_suite_reduce,
    &kiln_check_suite_conv,
    &kiln_check_suite_loss,
    &kiln_check_suite_dice,
    &kiln_check_suite_activation,
    &kiln_check_suite_softmax,
    &kiln_check_suite_pool,
    &kiln_check_suite_upsample,
    &kiln_check_suite_concat,
    &kiln_check_suite_reshape,
    &kiln_check_suite_optim,
    &kiln_check_suite_batchnorm,
    &kiln_check_suite_dropout,
    &kiln_check_suite_matmul,
};
// clang-format on
const size_t kiln_check_n_suites = sizeof kiln_check_suites / sizeof kiln_check_suites[0];
