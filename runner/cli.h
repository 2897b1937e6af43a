/*
 * What the runner's subcommands share: their signature, the context they run in (stderr log,
 * error reporting that maps every library failure to exit status 2) and option parsing.
 * The runner sees only include/kiln and libyaml, never the library's internals.
 */
#ifndef KILN_RUNNER_CLI_H
#define KILN_RUNNER_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "kiln/context.h"
#include "kiln/device.h"

/* Exit statuses of the command. */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILED = 1, /* the command ran and found a failure (e.g. a selftest check) */
    CLI_EXIT_ERROR = 2,  /* bad usage or input, or any error the library reported */
};

typedef struct cli_command {
    const char *name;
    const char *summary;               /* one line for `kiln --help` */
    const char *usage;                 /* full text for `kiln NAME --help` */
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
} cli_command;

extern const cli_command cli_devices_command;
extern const cli_command cli_compile_command;
extern const cli_command cli_cache_command;
extern const cli_command cli_selftest_command;
extern const cli_command cli_train_command;
extern const cli_command cli_eval_command;
extern const cli_command cli_test_command;
extern const cli_command cli_predict_command;
extern const cli_command cli_tune_command;

/* A context that logs warnings (or everything with KILN_LOG=debug) to stderr. NULL on failure,
 * after printing why. */
kiln_context *cli_context_create(void);

/* Prints "kiln: error: <message>" for a failed library call and returns CLI_EXIT_ERROR. */
int cli_fail(kiln_context *ctx, kiln_status status);

/* Prints "kiln NAME: <message>" and the command's usage to stderr; returns CLI_EXIT_ERROR. */
int cli_usage_error(const cli_command *command, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* For options that take a value ("--device gpu" or "--device=gpu"): when argv[*i] is `name`,
 * stores the value, advances *i past it and returns 1; returns 0 when argv[*i] is another
 * option, and -1 (after printing a usage error) when the value is missing. */
int cli_option_value(const cli_command *command, int argc, char **argv, int *i, const char *name,
                     const char **out);

/* For `--set KEY=VALUE` (repeatable): as cli_option_value, and appends the value to
 * overrides[*n_overrides], which holds `capacity`; -1 (after a usage error) when it is full. */
int cli_option_set(const cli_command *command, int argc, char **argv, int *i,
                   const char **overrides, size_t capacity, size_t *n_overrides);

/* Loads a config file with `--set` overrides and an optional `--device`, and creates the
 * command's context. On failure prints the error, leaves nothing to free and returns
 * CLI_EXIT_ERROR; on success the caller owns *cfg (config_deinit) and *ctx. */
struct config;
int cli_load_config(const char *path, const char *device, const char *const *overrides,
                    size_t n_overrides, struct config *cfg, kiln_context **ctx);

/* True for "-h" and "--help". */
bool cli_is_help(const char *arg);

#endif
