/*
 * Split-k GEMM: a product with few outputs and a long sum (a convolution's weight gradient,
 * 32 x 9 outputs over k = 25088 column positions) gives a GPU a handful of work-groups, each
 * running the whole of k alone: CLBlast took 1.08 ms for that product on an H100, 13 GFLOP/s,
 * 87% of the CNN's epoch after its convolution kernels (docs/PERFORMANCE.md). Cut into slices
 * of k, the product becomes a strided batch of short products, one per slice, each writing its
 * partial (m, n) result to a scratch buffer, and one kernel (cl/gemm_split.cl) sums the slices
 * into C. CPUs keep one product: Kiln's kernel already spreads its tiles over the cores, and a
 * second pass over the partial sums would only add memory traffic.
 */
#include <stdint.h>
#include <stdlib.h>

#include "device/gemm.h"

/* The shortest slice: each partial product still sums at least this many terms. */
#define SLICE_K 256
/* Products with more outputs than this fill a GPU without splitting. */
#define MOST_OUTPUTS ((size_t)1 << 16)

size_t kiln__gemm_split_slices(kiln_device *dev, const kiln__gemm *g)
{
    if (g->batch > 1 || g->m == 0 || g->n == 0 || g->k < 2)
        return 1;
    size_t slices = 1;
    const char *env = getenv("KILN_GEMM_SPLIT");
    char *end = NULL;
    long forced = env != NULL ? strtol(env, &end, 10) : -1;
    bool valid = env != NULL && end != env && *end == '\0' && forced >= 0;
    if (env != NULL && env[0] != '\0' && !valid)
        kiln__gemm_warn_env(dev, "KILN_GEMM_SPLIT", env, "a slice count (0 or 1: no split)");
    if (valid) {
        slices = (size_t)forced;
    } else if (dev->info.type != KILN_DEVICE_TYPE_CPU) {
        size_t outputs = g->m * g->n, widest = g->m > g->n ? g->m : g->n;
        /* Few outputs, and k long both absolutely and beside the output's sides. */
        if (outputs <= MOST_OUTPUTS && g->k >= 4 * SLICE_K && g->k >= 8 * widest) {
            slices = g->k / SLICE_K;
            size_t most = 4 * (size_t)(dev->info.compute_units > 0 ? dev->info.compute_units : 1);
            slices = slices < most ? slices : most;
        }
    }
    slices = slices < g->k ? slices : g->k;
    /* The sum kernel indexes the slices in 32 bits. */
    if (slices < 2 || (double)slices * (double)g->m * (double)g->n > (double)UINT32_MAX)
        return 1;
    return slices;
}

kiln_status kiln__gemm_run_split(kiln_device *dev, const char *what, const kiln__gemm *g,
                                 size_t slices)
{
    kiln_status rc = KILN_OK;
    /* `full` slices of slice_k, then the rest of k, shorter, in one more product. */
    size_t slice_k = (g->k + slices - 1) / slices;
    size_t full = g->k / slice_k, rest = g->k - full * slice_k;
    size_t parts = full + (rest > 0), outputs = g->m * g->n;
    kiln_buffer *scratch = NULL;
    KILN_CHECK(kiln__gemm_scratch(dev, &dev->gemm_slices, parts * outputs * sizeof(float),
                                  "the split GEMM's partial products", &scratch));
    /* The next slice starts slice_k columns of op(A) and slice_k rows of op(B) further on. */
    size_t a_step = g->transpose_a ? slice_k * g->lda : slice_k;
    size_t b_step = g->transpose_b ? slice_k : slice_k * g->ldb;
    kiln__gemm part = *g;
    part.k = slice_k;
    part.beta = 0;
    part.a_stride = a_step;
    part.b_stride = b_step;
    part.c = scratch;
    part.c_offset = 0;
    part.ldc = g->n;
    part.c_stride = outputs;
    part.batch = full;
    KILN_CHECK(kiln__gemm_run_whole(dev, what, &part));
    if (rest > 0) {
        part.k = rest;
        part.batch = 1;
        part.a_offset = g->a_offset + full * a_step;
        part.b_offset = g->b_offset + full * b_step;
        part.c_offset = full * outputs;
        KILN_CHECK(kiln__gemm_run_whole(dev, what, &part));
    }
    kiln__arg args[] = {KILN__ARG_BUF(scratch), KILN__ARG_UINT(parts),
                        KILN__ARG_UINT(g->m),   KILN__ARG_UINT(g->n),
                        KILN__ARG_BUF(g->c),    KILN__ARG_UINT(g->c_offset),
                        KILN__ARG_UINT(g->ldc), KILN__ARG_FLOAT(g->beta)};
    size_t global[2] = {g->n, g->m};
    KILN_CHECK(kiln__launch(dev, "gemm_split", "gemm_sum_slices", args,
                            sizeof args / sizeof args[0], 2, global, NULL));
cleanup:
    if (rc != KILN_OK)
        kiln__error_append(dev->ctx, " (in %s: GEMM m %zu, n %zu, k %zu split into %zu slices)",
                           what, g->m, g->n, g->k, parts);
    return rc;
}
