/*
 * `kiln selftest`: runs every op's checks (the same suites as the test suite: forward and
 * backward against double-precision references, references against finite differences) on
 * one device and prints a table. Exit status 1 when any check fails. This is how a user
 * validates a driver before trusting it with a long training run.
 */
#include <stdio.h>
#include <string.h>

#include "check/check.h"
#include "cli.h"

static const char USAGE[] =
    "usage: kiln selftest [--device SPEC] [--op NAME] [--failures-only] [--list]\n\n"
    "Checks every op, forward and backward, on one device against double-precision\n"
    "host references, and each reference against finite differences; prints one row per\n"
    "check (op, shapes, check, max abs error, max rel error, tolerance, result, time).\n"
    "Exit status 1 when any check fails.\n\n"
    "  --device SPEC     device to check (default: $KILN_DEVICE, else auto)\n"
    "  --op NAME         check only this op (see `kiln selftest --list`)\n"
    "  --failures-only   print only failing rows and the summary\n"
    "  --list            list the ops and exit\n";

typedef struct table {
    bool failures_only;
    int printed;
} table;

static void print_row(const kiln_check_row *row, void *user)
{
    table *t = user;
    if (t->failures_only && row->pass)
        return;
    char tol[32];
    snprintf(tol, sizeof tol, "%.0e+%.0e", row->atol, row->rtol);
    printf("%-20s %-30s %-16s %10.3g %10.3g %-14s %-4s %9.1f%s%s\n", row->op, row->shape, row->what,
           row->max_abs, row->max_rel, tol, row->pass ? "pass" : "FAIL", row->ms,
           row->note[0] != '\0' ? "  " : "", row->note);
    t->printed++;
}

static int run(int argc, char **argv)
{
    const char *spec = NULL;
    const char *only = NULL;
    table t = {false, 0};
    for (int i = 1; i < argc; i++) {
        int got = cli_option_value(&cli_selftest_command, argc, argv, &i, "--device", &spec);
        if (got == 0)
            got = cli_option_value(&cli_selftest_command, argc, argv, &i, "--op", &only);
        if (got < 0)
            return CLI_EXIT_ERROR;
        if (got > 0)
            continue;
        if (cli_is_help(argv[i])) {
            fputs(USAGE, stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(argv[i], "--failures-only") == 0) {
            t.failures_only = true;
        } else if (strcmp(argv[i], "--list") == 0) {
            for (size_t k = 0; k < kiln_op_count(); k++)
                printf("%s\n", kiln_op_name(kiln_op_at(k)));
            /* Optimiser updates are checked too, though they are not graph ops. */
            printf("sgd\nadam\nadamw\nclip_grad_norm\n");
            return CLI_EXIT_OK;
        } else {
            return cli_usage_error(&cli_selftest_command, "unexpected argument '%s'", argv[i]);
        }
    }
    kiln_context *ctx = cli_context_create();
    if (ctx == NULL)
        return CLI_EXIT_ERROR;
    kiln_device *dev = NULL;
    kiln_device_options options = {.spec = spec != NULL ? spec : kiln_device_spec_effective(NULL)};
    kiln_status status = kiln_device_create(ctx, &options, &dev);
    if (status != KILN_OK) {
        int code = cli_fail(ctx, status);
        kiln_context_destroy(ctx);
        return code;
    }
    const kiln_device_info *info = kiln_device_get_info(dev);
    printf("kiln selftest on device %zu (%zu:%zu): %s, %s, driver %s\n\n", info->index,
           info->platform_index, info->device_index, info->name, info->platform_name,
           info->driver_version);
    printf("%-20s %-30s %-16s %10s %10s %-14s %-4s %9s\n", "op", "shape", "check", "max abs",
           "max rel", "tol (a+r)", "ok", "ms");
    kiln_check_run run = {.dev = dev, .only_op = only, .on_row = print_row, .user = &t};
    double t0 = kiln_check_now_ms();
    for (size_t s = 0; s < kiln_check_n_suites; s++)
        kiln_check_run_suite(&run, kiln_check_suites[s]);
    printf("\n%d check(s), %d failed, in %.2f s on %s\n", run.n_rows, run.n_failed,
           (kiln_check_now_ms() - t0) / 1e3, info->name);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
    if (run.n_rows == 0) {
        if (only != NULL)
            fprintf(stderr,
                    "kiln selftest: no checks for an op named '%s' (`kiln selftest "
                    "--list` names them)\n",
                    only);
        else
            fprintf(stderr, "kiln: error: no check ran\n");
        return CLI_EXIT_ERROR;
    }
    return run.n_failed > 0 ? CLI_EXIT_FAILED : CLI_EXIT_OK;
}

const cli_command cli_selftest_command = {
    "selftest", "check every op, forward and backward, on a device", USAGE, run};
