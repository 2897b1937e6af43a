/*
 * Shared runner plumbing: the stderr logger, mapping library failures to messages and exit
 * status 2, and the small option parser the subcommands use. No subcommand logic lives here.
 */
#include "cli.h"
#include "config.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char *level_name(kiln_log_level level)
{
    switch (level) {
    case KILN_LOG_DEBUG:
        return "debug";
    case KILN_LOG_INFO:
        return "info";
    case KILN_LOG_WARN:
        return "warning";
    case KILN_LOG_ERROR:
        return "error";
    }
    return "log";
}

static void log_to_stderr(kiln_log_level level, const char *message, void *user)
{
    (void)user;
    fprintf(stderr, "kiln: %s: %s\n", level_name(level), message);
}

kiln_context *cli_context_create(void)
{
    const char *env = getenv("KILN_LOG");
    kiln_log_level level = KILN_LOG_WARN;
    if (env != NULL && strcmp(env, "debug") == 0)
        level = KILN_LOG_DEBUG;
    else if (env != NULL && strcmp(env, "info") == 0)
        level = KILN_LOG_INFO;
    kiln_context_options options = {.log = log_to_stderr, .log_level = level};
    kiln_context *ctx = NULL;
    kiln_status status = kiln_context_create(&options, &ctx);
    if (status != KILN_OK) {
        fprintf(stderr, "kiln: error: cannot create a context: %s\n", kiln_status_str(status));
        return NULL;
    }
    return ctx;
}

int cli_fail(kiln_context *ctx, kiln_status status)
{
    const char *message = kiln_context_last_error(ctx);
    if (message[0] == '\0')
        message = kiln_status_str(status);
    fprintf(stderr, "kiln: error: %s\n", message);
    return CLI_EXIT_ERROR;
}

int cli_usage_error(const cli_command *command, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    fprintf(stderr, "kiln %s: ", command->name);
    vfprintf(stderr, fmt, args);
    fprintf(stderr, "\n\n%s", command->usage);
    va_end(args);
    return CLI_EXIT_ERROR;
}

int cli_option_value(const cli_command *command, int argc, char **argv, int *i, const char *name,
                     const char **out)
{
    const char *arg = argv[*i];
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0)
        return 0;
    if (arg[n] == '=') {
        *out = arg + n + 1;
        return 1;
    }
    if (arg[n] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        cli_usage_error(command, "option %s needs a value", name);
        return -1;
    }
    *i += 1;
    *out = argv[*i];
    return 1;
}

int cli_option_set(const cli_command *command, int argc, char **argv, int *i,
                   const char **overrides, size_t capacity, size_t *n_overrides)
{
    const char *value = NULL;
    int got = cli_option_value(command, argc, argv, i, "--set", &value);
    if (got <= 0)
        return got;
    if (*n_overrides == capacity) {
        cli_usage_error(command, "more than %zu --set options", capacity);
        return -1;
    }
    overrides[(*n_overrides)++] = value;
    return 1;
}

bool cli_is_help(const char *arg)
{
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

int cli_load_config(const char *path, const char *device, const char *const *overrides,
                    size_t n_overrides, config *cfg, kiln_context **ctx)
{
    config_error err = {{0}};
    kiln_status rc = config_load_file(path, overrides, n_overrides, cfg, &err);
    if (rc == KILN_OK && device != NULL)
        rc = config_set_device(cfg, device, &err);
    if (rc != KILN_OK) {
        fprintf(stderr, "kiln: error: %s\n", err.message);
        config_deinit(cfg);
        return CLI_EXIT_ERROR;
    }
    *ctx = cli_context_create();
    if (*ctx == NULL) {
        config_deinit(cfg);
        return CLI_EXIT_ERROR;
    }
    return CLI_EXIT_OK;
}
