/*
 * bench/bench.h: what the C benchmarks share: one context and device per process, a timer
 * that takes the median of 5 batches of back-to-back launches after a warm-up, tensors filled
 * with a fixed pattern, and one op call (forward or backward) through the op table.
 * Benchmarks measure; they never assert. A failed call prints what failed and exits 2.
 */
#ifndef KILN_BENCH_H
#define KILN_BENCH_H

#include "kiln/ops.h"

extern kiln_context *CTX;
extern kiln_device *DEV;

/* Creates CTX and DEV for spec (NULL: the effective default) and prints "# device: ..." */
void bench_open(const char *program, const char *spec);
void bench_close(void);

/* Exits with the context's last error when rc is not KILN_OK. */
void die_on(kiln_status rc, const char *what);

typedef kiln_status (*work_fn)(void *user);

/* Seconds per call: median over 5 batches, each long enough (~0.2 s) to hide launch jitter,
 * after one warm-up call (which also compiles the kernels). */
double time_it(work_fn fn, void *user);

/* A device tensor of shape filled with a fixed pattern in [-1, 1]. */
kiln_tensor *tensor(const kiln_shape *shape, const char *name);

/* One op launch: run_op calls forward, or backward when `backward` is set. */
typedef struct op_call {
    const kiln_op *op;
    kiln_op_args args;
    bool backward;
} op_call;

kiln_status run_op(void *user);

#endif
