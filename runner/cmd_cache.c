/*
 * `kiln cache info` and `kiln cache clear`: the program-binary cache's location, size and
 * removal. Only Kiln's own entries are counted or removed; other files in the directory are
 * left alone, since KILN_CACHE_DIR may point anywhere.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char USAGE[] =
    "usage: kiln cache info [--dir DIR]\n"
    "       kiln cache clear [--dir DIR]\n\n"
    "The cache keeps compiled kernels per device and driver, and `kiln train`'s\n"
    "prepared data (data.cache), so later runs start in milliseconds. It lives in\n"
    "$KILN_CACHE_DIR, else $XDG_CACHE_HOME/kiln (when XDG_CACHE_HOME is an absolute\n"
    "path), else ~/.cache/kiln; KILN_NO_CACHE=1 disables it. Corrupt entries are\n"
    "detected and rebuilt automatically.\n\n"
    "  info         print the directory, the number of entries and their size\n"
    "  clear        remove Kiln's entries and leftover temporary files (GEMM tuning\n"
    "               results and other files in the directory are left alone)\n"
    "  --dir DIR    use DIR instead of the default location\n";

static int run(int argc, char **argv)
{
    const char *action = NULL;
    const char *dir_override = NULL;
    for (int i = 1; i < argc; i++) {
        int got = cli_option_value(&cli_cache_command, argc, argv, &i, "--dir", &dir_override);
        if (got < 0)
            return CLI_EXIT_ERROR;
        if (got > 0)
            continue;
        if (cli_is_help(argv[i])) {
            fputs(USAGE, stdout);
            return CLI_EXIT_OK;
        }
        if (argv[i][0] == '-' || action != NULL)
            return cli_usage_error(&cli_cache_command, "unexpected argument '%s'", argv[i]);
        action = argv[i];
    }
    if (action == NULL)
        return cli_usage_error(&cli_cache_command, "missing action: info or clear");
    bool clear = strcmp(action, "clear") == 0;
    if (!clear && strcmp(action, "info") != 0)
        return cli_usage_error(&cli_cache_command, "unknown action '%s' (info or clear)", action);
    kiln_context *ctx = cli_context_create();
    if (ctx == NULL)
        return CLI_EXIT_ERROR;
    char dir[4096];
    kiln_cache_info info;
    char size[32], data_size[32];
    kiln_status status = kiln_cache_get_dir(ctx, dir_override, dir, sizeof dir);
    if (status == KILN_OK)
        status = clear ? kiln_cache_clear(ctx, dir, &info) : kiln_cache_get_info(ctx, dir, &info);
    if (status != KILN_OK) {
        int code = cli_fail(ctx, status);
        kiln_context_destroy(ctx);
        return code;
    }
    kiln_format_bytes(info.n_bytes, size, sizeof size);
    kiln_format_bytes(info.n_data_bytes, data_size, sizeof data_size);
    if (clear) {
        printf("removed %zu entr%s (%s), %zu prepared data file(s) (%s) and %zu temporary "
               "file(s) from %s\n",
               info.n_entries, info.n_entries == 1 ? "y" : "ies", size, info.n_data_entries,
               data_size, info.n_stale_temps, dir);
    } else {
        printf("directory: %s\nentries:   %zu\nsize:      %s\n", dir, info.n_entries, size);
        printf("prepared data: %zu file(s), %s (kiln train's data.cache)\n", info.n_data_entries,
               data_size);
        if (info.n_stale_temps > 0)
            printf("temporary: %zu (left by interrupted writes; `kiln cache clear` removes "
                   "them)\n",
                   info.n_stale_temps);
        if (kiln_cache_disabled_by_env())
            printf("note: KILN_NO_CACHE=1 is set, so runs neither read nor write it\n");
    }
    kiln_context_destroy(ctx);
    return CLI_EXIT_OK;
}

const cli_command cli_cache_command = {
    "cache", "show or clear the cache of kernels and prepared data", USAGE, run};
