/*
 * Test-side drivers for the check suites and for shape-error assertions, shared by every
 * tests/ops/test_<family>.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check/check.h"
#include "support/kiln_test.h"

static void print_row(const kiln_check_row *row, void *user)
{
    (void)user;
    const char *verbose = getenv("KILN_TEST_VERBOSE");
    if (row->pass && (verbose == NULL || strcmp(verbose, "1") != 0))
        return;
    fprintf(stderr, "%-5s %-14s %-28s %-16s abs %.3g rel %.3g (atol %.3g rtol %.3g) %s\n",
            row->pass ? "ok" : "FAIL", row->op, row->shape, row->what, row->max_abs,
            row->max_rel, row->atol, row->rtol, row->note);
}

void kiln_test_run_suite(const char *name)
{
    const kiln_check_suite *suite = kiln_check_find_suite(name);
    if (suite == NULL)
        fail_msg("no check suite named '%s'", name);
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, getenv("KILN_CACHE_DIR"));
    kiln_check_run run = {.dev = dev, .on_row = print_row};
    kiln_check_run_suite(&run, suite);
    fprintf(stderr, "suite %s: %d rows, %d failed\n", name, run.n_rows, run.n_failed);
    uint64_t leaked = kiln_device_get_allocated_bytes(dev);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
    assert_true(run.n_rows > 0);
    assert_int_equal(run.n_failed, 0);
    assert_int_equal(leaked, 0);
}

void kiln_test_expect_infer_error(const char *op_name, const void *params,
                                  const kiln_shape *inputs, int n_inputs, kiln_status status,
                                  const char *needle)
{
    const kiln_op *op = kiln_op_find(op_name);
    if (op == NULL)
        fail_msg("no op '%s'", op_name);
    kiln_context *ctx = kiln_test_context();
    kiln_shape out, saved[KILN_OP_MAX_SAVED];
    kiln_status rc = kiln_op_infer(ctx, op, params, inputs, n_inputs, &out, saved);
    if (rc != status)
        fail_msg("op '%s': expected %s, got %s (%s)", op_name, kiln_status_name(status),
                 kiln_status_name(rc), kiln_context_last_error(ctx));
    const char *message = kiln_context_last_error(ctx);
    char quoted[64];
    snprintf(quoted, sizeof quoted, "'%s'", op_name);
    assert_contains(message, quoted);
    if (status == KILN_ERR_SHAPE) {
        for (int i = 0; i < n_inputs; i++) {
            char text[96];
            assert_contains(message, kiln_shape_format(&inputs[i], text, sizeof text));
        }
    }
    if (needle != NULL)
        assert_contains(message, needle);
    kiln_context_destroy(ctx);
}
