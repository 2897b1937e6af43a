/*
 * `kiln devices`: the table of every OpenCL device on every platform, with the index and P:D
 * numbers that device specs accept and the traits Kiln compiles kernels for.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char USAGE[] =
    "usage: kiln devices\n\n"
    "Lists every OpenCL device on every platform: index (usable as a device spec), P:D\n"
    "(platform:device, also a spec), platform, device name, type, compute units, clock,\n"
    "global memory, largest single allocation, OpenCL C version and fp16/fp64 support.\n"
    "The device `auto` would pick is marked with '*'.\n";

static int run(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(USAGE, stdout);
            return CLI_EXIT_OK;
        }
        return cli_usage_error(&cli_devices_command, "unexpected argument '%s'", argv[i]);
    }
    kiln_context *ctx = cli_context_create();
    if (ctx == NULL)
        return CLI_EXIT_ERROR;
    kiln_device_info *infos = NULL;
    size_t n = 0;
    kiln_status status = kiln_device_list(ctx, &infos, &n);
    if (status != KILN_OK) {
        int code = cli_fail(ctx, status);
        kiln_context_destroy(ctx);
        return code;
    }
    size_t chosen = 0;
    status = kiln_device_find(ctx, "auto", &chosen);
    if (status != KILN_OK) {
        kiln_device_list_free(ctx, infos);
        int code = cli_fail(ctx, status);
        kiln_context_destroy(ctx);
        return code;
    }
    /* The device name comes last and whole, since it can be used as a spec. */
    printf("  %-3s %-5s %-5s %4s %6s %10s %10s %-8s %-9s %-28s %s\n", "#", "P:D", "type", "CUs",
           "MHz", "memory", "max alloc", "OpenCL C", "fp16/fp64", "platform", "device");
    for (size_t i = 0; i < n; i++) {
        const kiln_device_info *d = &infos[i];
        char mem[32], alloc[32], pd[24], cver[16];
        snprintf(pd, sizeof pd, "%zu:%zu", d->platform_index, d->device_index);
        snprintf(cver, sizeof cver, "%d.%d", d->opencl_c_major, d->opencl_c_minor);
        char fp[16];
        snprintf(fp, sizeof fp, "%s/%s", d->has_fp16 ? "yes" : "no", d->has_fp64 ? "yes" : "no");
        printf("%c %-3zu %-5s %-5s %4u %6u %10s %10s %-8s %-9s %-28.28s %s\n",
               i == chosen ? '*' : ' ', d->index, pd, kiln_device_type_name(d->type),
               (unsigned)d->compute_units, (unsigned)d->clock_mhz,
               kiln_format_bytes(d->global_mem_bytes, mem, sizeof mem),
               kiln_format_bytes(d->max_alloc_bytes, alloc, sizeof alloc), cver, fp,
               d->platform_name, d->name);
    }
    printf("\n%zu device(s). '*' marks the one `--device auto` picks.\n", n);
    kiln_device_list_free(ctx, infos);
    kiln_context_destroy(ctx);
    return CLI_EXIT_OK;
}

const cli_command cli_devices_command = {"devices", "list the OpenCL devices Kiln can use", USAGE,
                                         run};
