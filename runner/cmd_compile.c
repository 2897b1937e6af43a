/*
 * `kiln compile`: compiles every embedded kernel program for a device through the binary
 * cache, reporting per program whether it was compiled or loaded and how long it took. It is
 * the startup work of every run, done on its own: to validate a driver's compiler, or to warm
 * the cache before a deployment.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static const char USAGE[] =
    "usage: kiln compile [--device SPEC] [--no-cache] [--list]\n\n"
    "Compiles every kernel program built into Kiln for one device, filling the\n"
    "program-binary cache, and prints each program's origin (compiled or loaded\n"
    "from the cache) and time.\n\n"
    "  --device SPEC  device to compile for (default: $KILN_DEVICE, else auto);\n"
    "                 see `kiln devices` and docs/DEVICES.md for the forms\n"
    "  --no-cache     compile from source, neither reading nor writing the cache\n"
    "  --list         only list the program names\n";

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static const char *origin_name(kiln_program_origin origin)
{
    switch (origin) {
    case KILN_PROGRAM_FROM_SOURCE:
        return "compiled";
    case KILN_PROGRAM_FROM_CACHE:
        return "cache";
    case KILN_PROGRAM_IN_MEMORY:
        return "memory";
    }
    return "?";
}

static int run(int argc, char **argv)
{
    const char *spec = NULL;
    bool no_cache = false;
    bool list = false;
    for (int i = 1; i < argc; i++) {
        int got = cli_option_value(&cli_compile_command, argc, argv, &i, "--device", &spec);
        if (got < 0)
            return CLI_EXIT_ERROR;
        if (got > 0)
            continue;
        if (cli_is_help(argv[i])) {
            fputs(USAGE, stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(argv[i], "--no-cache") == 0) {
            no_cache = true;
        } else if (strcmp(argv[i], "--list") == 0) {
            list = true;
        } else {
            return cli_usage_error(&cli_compile_command, "unexpected argument '%s'", argv[i]);
        }
    }
    if (list) {
        for (size_t i = 0; i < kiln_program_count(); i++)
            printf("%s\n", kiln_program_name(i));
        return CLI_EXIT_OK;
    }
    double start = now_seconds();
    kiln_context *ctx = cli_context_create();
    if (ctx == NULL)
        return CLI_EXIT_ERROR;
    kiln_device *dev = NULL;
    /* The flag, when given, is used as written (an empty one is an error); otherwise
     * KILN_DEVICE, otherwise auto. */
    kiln_device_options options = {.spec = spec != NULL ? spec : kiln_device_spec_effective(NULL),
                                   .disable_cache = no_cache};
    kiln_status status = kiln_device_create(ctx, &options, &dev);
    if (status != KILN_OK) {
        int code = cli_fail(ctx, status);
        kiln_context_destroy(ctx);
        return code;
    }
    const kiln_device_info *info = kiln_device_get_info(dev);
    const char *cache = kiln_device_get_cache_dir(dev);
    printf("device %zu (%zu:%zu): %s on %s, driver %s\n", info->index, info->platform_index,
           info->device_index, info->name, info->platform_name, info->driver_version);
    printf("binary cache: %s\n\n", cache != NULL ? cache : "disabled");
    printf("  %-24s %-9s %9s\n", "program", "origin", "time (ms)");
    int code = CLI_EXIT_OK;
    for (size_t i = 0; i < kiln_program_count(); i++) {
        kiln_program_origin origin = KILN_PROGRAM_FROM_SOURCE;
        double t0 = now_seconds();
        status = kiln_device_prepare(dev, kiln_program_name(i), &origin);
        if (status != KILN_OK) {
            code = cli_fail(ctx, status);
            break;
        }
        printf("  %-24s %-9s %9.1f\n", kiln_program_name(i), origin_name(origin),
               1e3 * (now_seconds() - t0));
    }
    if (code == CLI_EXIT_OK) {
        kiln_cache_stats stats;
        kiln_device_get_cache_stats(dev, &stats);
        printf("\n%zu program(s) ready in %.3f s (cache: %llu hit, %llu miss, %llu corrupt "
               "rebuilt, %llu written, %llu write failures)\n",
               kiln_program_count(), now_seconds() - start, (unsigned long long)stats.hits,
               (unsigned long long)stats.misses, (unsigned long long)stats.corrupt,
               (unsigned long long)stats.writes, (unsigned long long)stats.write_failures);
    }
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
    return code;
}

const cli_command cli_compile_command = {
    "compile", "compile every kernel for a device, filling the binary cache", USAGE, run};
