/*
 * The per-element steps of softmax and log_softmax along an axis (src/ops/softmax.c does the
 * row reductions with kiln__reduce_to and orders these launches).
 *
 * Layout: x (OUTER, C, INNER) flattened to n elements; a row is the C elements sharing one
 * (outer, inner) pair, and element i belongs to row (i / (C INNER)) INNER + i % INNER of the
 * reduced shape (OUTER, 1, INNER), ROWS = OUTER INNER. `ws` is the op's workspace:
 * ws[0, ROWS) holds one statistic per row, and ws from ROWS on holds what a step must keep
 * while the reduction overwrites the start (the row maximum, or the prior gradient).
 * Work-item i handles element i (or row i); every kernel checks its index against its size
 * because the launch may round the global size up.
 */
#ifndef KILN_REAL
#define KILN_REAL float
#endif

inline uint row_of(const uint i, const uint c, const uint inner)
{
    return (i / (c * inner)) * inner + i % inner;
}

/* y = exp(x - m[row]): the shifted exponentials, at most 1, so they never overflow.
 * x, y: (n,); ws[0, ROWS): the row maxima. */
__kernel void softmax_exp_fwd(__global const KILN_REAL *x, __global const KILN_REAL *ws,
                              __global KILN_REAL *y, const uint n, const uint c, const uint inner,
                              const uint rows)
{
    const uint i = (uint)get_global_id(0);
    if (i >= n)
        return;
    y[i] = exp(x[i] - ws[row_of(i, c, inner)]);
    (void)rows;
}

/* ws[ROWS + r] = ws[r]: keeps the row maxima while the row sums take their place. */
__kernel void log_softmax_keep_max_fwd(__global KILN_REAL *ws, const uint rows)
{
    const uint r = (uint)get_global_id(0);
    if (r < rows)
        ws[rows + r] = ws[r];
}

/* y = exp(x - m) / s. y: (n,) holding exp(x - m); ws[0, ROWS): the row sums s. */
__kernel void softmax_fwd(__global const KILN_REAL *x, __global const KILN_REAL *ws,
                          __global KILN_REAL *y, const uint n, const uint c, const uint inner,
                          const uint rows)
{
    const uint i = (uint)get_global_id(0);
    if (i >= n)
        return;
    y[i] = y[i] / ws[row_of(i, c, inner)];
    (void)x;
    (void)rows;
}

/* y = (x - m) - log s, as PyTorch computes it: x - m is exact near the maximum, where a
 * rounded log-sum-exp m + log s would cost the result its low digits.
 * x, y: (n,); ws[0, ROWS): the row sums s; ws[ROWS, 2 ROWS): the row maxima m. */
__kernel void log_softmax_fwd(__global const KILN_REAL *x, __global const KILN_REAL *ws,
                              __global KILN_REAL *y, const uint n, const uint c, const uint inner,
                              const uint rows)
{
    const uint i = (uint)get_global_id(0);
    if (i >= n)
        return;
    const uint r = row_of(i, c, inner);
    y[i] = (x[i] - ws[rows + r]) - log(ws[r]);
}

/* Softmax backward, step 1: ws[ROWS + i] = gx[i] (the prior gradient, kept exactly), then
 * gx[i] = g[i] y[i], the terms whose row sums the reduction forms in ws[0, ROWS).
 * y, g, gx: (n,). */
__kernel void softmax_stash_bwd(__global const KILN_REAL *y, __global const KILN_REAL *g,
                                __global KILN_REAL *gx, __global KILN_REAL *ws, const uint n,
                                const uint c, const uint inner, const uint rows)
{
    const uint i = (uint)get_global_id(0);
    if (i >= n)
        return;
    ws[rows + i] = gx[i];
    gx[i] = g[i] * y[i];
    (void)c;
    (void)inner;
}

/* Softmax backward, step 2: gx = prior + y (g - sum(g y)).
 * y, g, gx: (n,); ws[0, ROWS): sum(g y) per row; ws[ROWS, ROWS + n): the prior gx. */
__kernel void softmax_bwd_x(__global const KILN_REAL *y, __global const KILN_REAL *g,
                            __global KILN_REAL *gx, __global const KILN_REAL *ws, const uint n,
                            const uint c, const uint inner, const uint rows)
{
    const uint i = (uint)get_global_id(0);
    if (i >= n)
        return;
    gx[i] = ws[rows + i] + y[i] * (g[i] - ws[row_of(i, c, inner)]);
}

/* Log-softmax backward: gx += g - exp(y) sum(g). y, g, gx: (n,); ws[0, ROWS): sum(g). */
__kernel void log_softmax_bwd_x(__global const KILN_REAL *y, __global const KILN_REAL *g,
                                __global KILN_REAL *gx, __global const KILN_REAL *ws, const uint n,
                                const uint c, const uint inner, const uint rows)
{
    const uint i = (uint)get_global_id(0);
    if (i >= n)
        return;
    gx[i] += g[i] - exp(y[i]) * ws[row_of(i, c, inner)];
    (void)rows;
}
