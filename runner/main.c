/*
 * The `kiln` command: global flags (--help, --version) and dispatch to subcommands. Each
 * subcommand lives in its own cmd_*.c file; this file only knows their table.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const cli_command *const COMMANDS[] = {
    &cli_devices_command, &cli_compile_command, &cli_cache_command, &cli_selftest_command,
    &cli_train_command,   &cli_eval_command,    &cli_test_command,  &cli_predict_command,
    &cli_tune_command,
};
enum { N_COMMANDS = sizeof COMMANDS / sizeof COMMANDS[0] };

static void print_usage(FILE *out)
{
    fprintf(out, "usage: kiln [--help] [--version] COMMAND [ARGS]\n\n"
                 "Train and run neural networks on any OpenCL device.\n\n"
                 "Commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-10s %s\n", COMMANDS[i]->name, COMMANDS[i]->summary);
    fprintf(out, "\n`kiln COMMAND --help` describes a command. Environment: KILN_DEVICE is the "
                 "device spec\nwhen no --device flag is given (it overrides a config file's); "
                 "KILN_CACHE_DIR and\nKILN_NO_CACHE=1 control the program-binary cache; "
                 "KILN_LOG=info|debug shows more.\nExit status: 0 success, 1 a check failed, "
                 "2 bad usage or an error.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return CLI_EXIT_ERROR;
    }
    const char *first = argv[1];
    if (cli_is_help(first) || strcmp(first, "help") == 0) {
        if (argc == 2) {
            print_usage(stdout);
            return CLI_EXIT_OK;
        }
        for (size_t i = 0; argc == 3 && i < N_COMMANDS; i++) {
            if (strcmp(argv[2], COMMANDS[i]->name) == 0) {
                fputs(COMMANDS[i]->usage, stdout);
                return CLI_EXIT_OK;
            }
        }
        fprintf(stderr, "kiln: no help for '%s'\n\n", argv[2]);
        print_usage(stderr);
        return CLI_EXIT_ERROR;
    }
    if (strcmp(first, "--version") == 0 || strcmp(first, "-V") == 0) {
        if (argc > 2) {
            fprintf(stderr, "kiln: --version takes no arguments\n");
            return CLI_EXIT_ERROR;
        }
        printf("kiln %s\n", kiln_version_string());
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(first, COMMANDS[i]->name) == 0)
            return COMMANDS[i]->run(argc - 1, argv + 1);
    }
    if (first[0] == '-')
        fprintf(stderr, "kiln: unknown option '%s'\n\n", first);
    else
        fprintf(stderr, "kiln: unknown command '%s'\n\n", first);
    print_usage(stderr);
    return CLI_EXIT_ERROR;
}
