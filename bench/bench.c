/*
 * bench/bench.c: the helpers of bench/bench.h (device set-up, the median timer, pattern-filled
 * tensors, op calls) shared by bench/ops and bench/conv3d. Timing uses CLOCK_MONOTONIC around
 * batches of launches with one kiln_device_finish per batch, so launches are chained as in a
 * training step.
 */
#define _POSIX_C_SOURCE 200809L

#include "bench.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

kiln_context *CTX;
kiln_device *DEV;
static const char *PROGRAM = "bench";
static bool PROFILE; /* KILN_BENCH_PROFILE set (and not "0"): per-kernel device times */

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void die_on(kiln_status rc, const char *what)
{
    if (rc != KILN_OK) {
        fprintf(stderr, "%s: %s: %s\n", PROGRAM, what, kiln_context_last_error(CTX));
        exit(2);
    }
}

void bench_open(const char *program, const char *spec)
{
    PROGRAM = program;
    if (spec == NULL)
        spec = kiln_device_spec_effective(NULL);
    die_on(kiln_context_create(NULL, &CTX), "context");
    const char *profile = getenv("KILN_BENCH_PROFILE");
    PROFILE = profile != NULL && *profile != '\0' && strcmp(profile, "0") != 0;
    kiln_device_options options = {.spec = spec, .profile = PROFILE};
    die_on(kiln_device_create(CTX, &options, &DEV), "device");
    const kiln_device_info *info = kiln_device_get_info(DEV);
    printf("# device: %s (%s, driver %s)\n", info->name, info->platform_name, info->driver_version);
}

void bench_close(void)
{
    kiln_device_destroy(DEV);
    kiln_context_destroy(CTX);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* With KILN_BENCH_PROFILE: each kernel's device time per call of the timed work, from the
 * profile of the 5 timed batches (`calls` calls), as comment lines printed before the row
 * that the work's time goes into. */
static void print_profile(int calls)
{
    const kiln_profile_row *rows = NULL;
    size_t n = 0;
    die_on(kiln_device_profile(DEV, &rows, &n), "profile");
    for (size_t i = 0; i < n; i++)
        if (rows[i].launches > 0) /* kernels of earlier rows keep their (reset) entries */
            printf("#   %-40s %6.2f launches %10.3f ms a call\n", rows[i].name,
                   (double)rows[i].launches / calls, rows[i].ms / calls);
}

double time_it(work_fn fn, void *user)
{
    die_on(fn(user), "warm-up");
    die_on(kiln_device_finish(DEV), "finish");
    double t0 = now();
    die_on(fn(user), "probe");
    die_on(kiln_device_finish(DEV), "finish");
    double once = now() - t0;
    int reps = once > 0.2 ? 1 : (int)(0.2 / (once > 1e-6 ? once : 1e-6)) + 1;
    double samples[5];
    if (PROFILE)
        kiln_device_profile_reset(DEV);
    for (int s = 0; s < 5; s++) {
        t0 = now();
        for (int r = 0; r < reps; r++)
            die_on(fn(user), "run");
        die_on(kiln_device_finish(DEV), "finish");
        samples[s] = (now() - t0) / reps;
    }
    if (PROFILE)
        print_profile(5 * reps);
    qsort(samples, 5, sizeof samples[0], cmp_double);
    return samples[2];
}

kiln_tensor *tensor(const kiln_shape *shape, const char *name)
{
    kiln_tensor *t = NULL;
    die_on(kiln_tensor_create(DEV, shape, KILN_F32, name, &t), name);
    int64_t n = kiln_shape_count(shape);
    float *host = malloc((size_t)n * sizeof *host);
    if (host == NULL) {
        fprintf(stderr, "%s: %s: out of host memory\n", PROGRAM, name);
        exit(2);
    }
    for (int64_t i = 0; i < n; i++)
        host[i] = (float)((i * 7919 % 2003) / 1001.5 - 1.0);
    die_on(kiln_tensor_upload(t, host, n), "upload");
    free(host);
    return t;
}

kiln_status run_op(void *user)
{
    op_call *c = user;
    return c->backward ? kiln_op_backward(DEV, c->op, &c->args)
                       : kiln_op_forward(DEV, c->op, &c->args);
}
