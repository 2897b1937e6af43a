/*
 * Loss kernels: softmax cross-entropy over class rows, and the pointwise losses
 * bce_with_logits, mse and l1. Forward kernels write one non-negative term per element (per
 * row for the cross-entropy) into a workspace that src/ops/loss.c then averages with the
 * shared tree reduction; backward kernels read the scalar output gradient g (one element) on
 * the device and accumulate g / n times the per-element derivative. Work-item i handles
 * element (or row) i; every kernel checks its range because global sizes are rounded up.
 */
#ifndef KILN_REAL
#define KILN_REAL float
#endif

/* ---- softmax cross-entropy: logits x (N, C) row-major, labels (N,) i32 ---- */

/* The smoothed target q_c = (1 - eps) [c == label] + eps / C (PyTorch CrossEntropyLoss). */
inline KILN_REAL smoothed_target(const uint c, const int label, const uint classes,
                                 const KILN_REAL smoothing)
{
    const KILN_REAL hit = (int)c == label ? (KILN_REAL)1 - smoothing : (KILN_REAL)0;
    return hit + smoothing / (KILN_REAL)classes;
}

inline bool label_valid(const int label, const uint classes)
{
    return label >= 0 && (uint)label < classes;
}

/* sum += y with Kahan's compensation c; once the sum is infinite or NaN the correction would
 * be NaN, and IEEE arithmetic alone gives the right result, so it stops correcting. */
inline void kahan_add(KILN_REAL *sum, KILN_REAL *c, const KILN_REAL y)
{
    const KILN_REAL z = y - *c;
    const KILN_REAL t = *sum + z;
    *c = isfinite(t) ? (t - *sum) - z : 0;
    *sum = t;
}

/*
 * One work-item per row of x (N, C): the row maximum m (NaN wins, as torch.amax), the sum
 * s = sum_c exp(x_c - m) (every term in (0, 1]), and the row's loss
 * term[row] = sum_c q_c (m + log s - x_c) = (m + log s) - sum_c q_c x_c, summed as the terms
 * q_c (m + log s - x_c) >= 0, which never cancel. Both sums are compensated. A label outside
 * [0, C) makes the row's term NaN, and so the loss (PyTorch raises an error instead; a kernel
 * cannot). m, s, term: (N,).
 */
__kernel void softmax_cross_entropy_rows(__global const KILN_REAL *x, __global const int *labels,
                                         __global KILN_REAL *m, __global KILN_REAL *s,
                                         __global KILN_REAL *term, const uint rows,
                                         const uint classes, const KILN_REAL smoothing)
{
    const uint row = (uint)get_global_id(0);
    if (row >= rows)
        return;
    __global const KILN_REAL *xr = x + (size_t)row * classes;
    KILN_REAL best = -INFINITY;
    for (uint c = 0; c < classes; c++)
        best = (isnan(xr[c]) || xr[c] > best) ? xr[c] : best;
    KILN_REAL sum = 0, comp = 0;
    for (uint c = 0; c < classes; c++)
        kahan_add(&sum, &comp, exp(xr[c] - best));
    m[row] = best;
    s[row] = sum;
    const int label = labels[row];
    if (!label_valid(label, classes)) {
        term[row] = NAN;
        return;
    }
    const KILN_REAL lse = best + log(sum);
    KILN_REAL loss = 0;
    comp = 0;
    for (uint c = 0; c < classes; c++)
        kahan_add(&loss, &comp, smoothed_target(c, label, classes, smoothing) * (lse - xr[c]));
    term[row] = loss;
}

/* gx[i] += g * inv_n * (p_c - q_c), p = softmax of the row (gx[i] = ... when accumulate is 0);
 * NaN for a row whose label is out of range. g: the scalar output gradient (one element).
 * gx: (N, C). */
__kernel void softmax_cross_entropy_bwd_logits(
    __global const KILN_REAL *x, __global const int *labels, __global const KILN_REAL *m,
    __global const KILN_REAL *s, __global const KILN_REAL *g, __global KILN_REAL *gx, const uint n,
    const uint classes, const KILN_REAL smoothing, const KILN_REAL inv_n, const int accumulate)
{
    const uint i = (uint)get_global_id(0);
    if (i >= n)
        return;
    const uint row = i / classes;
    const int label = labels[row];
    KILN_REAL d = NAN;
    if (label_valid(label, classes))
        d = exp(x[i] - m[row]) / s[row] - smoothed_target(i % classes, label, classes, smoothing);
    const KILN_REAL t = g[0] * inv_n * d;
    gx[i] = accumulate ? gx[i] + t : t;
}

/* ---- pointwise losses: x and t of equal shape, flattened to (n,) ---- */

/*
 * Defines <name>_fwd (term[i] = TERM) and <name>_bwd_x (gx[i] += g * inv_n * GRAD, or = when
 * accumulate is 0), with u the prediction (logit) and v the target at element i.
 */
#define KILN_POINTWISE_LOSS(name, TERM, GRAD)                                                      \
    __kernel void name##_fwd(__global const KILN_REAL *x, __global const KILN_REAL *t,             \
                             __global KILN_REAL *term, const uint n)                               \
    {                                                                                              \
        const uint i = (uint)get_global_id(0);                                                     \
        if (i >= n)                                                                                \
            return;                                                                                \
        const KILN_REAL u = x[i];                                                                  \
        const KILN_REAL v = t[i];                                                                  \
        term[i] = (TERM);                                                                          \
    }                                                                                              \
    __kernel void name##_bwd_x(__global const KILN_REAL *x, __global const KILN_REAL *t,           \
                               __global const KILN_REAL *g, __global KILN_REAL *gx, const uint n,  \
                               const KILN_REAL inv_n, const int accumulate)                        \
    {                                                                                              \
        const uint i = (uint)get_global_id(0);                                                     \
        if (i >= n)                                                                                \
            return;                                                                                \
        const KILN_REAL u = x[i];                                                                  \
        const KILN_REAL v = t[i];                                                                  \
        const KILN_REAL d = g[0] * inv_n * (GRAD);                                                 \
        gx[i] = accumulate ? gx[i] + d : d;                                                        \
    }

/* The logistic function without overflow: exp is only taken of -|u|. */
inline KILN_REAL stable_sigmoid(const KILN_REAL u)
{
    const KILN_REAL e = exp(-fabs(u));
    return u >= 0 ? 1 / (1 + e) : e / (1 + e);
}

/* -[v log sigmoid(u) + (1 - v) log(1 - sigmoid(u))] in the form that never overflows
 * (PyTorch BCEWithLogitsLoss): max(u, 0) - u v + log(1 + exp(-|u|)). */
KILN_POINTWISE_LOSS(bce_with_logits, fmax(u, (KILN_REAL)0) - u * v + log1p(exp(-fabs(u))),
                    stable_sigmoid(u) - v)
/* (u - v)^2 (PyTorch MSELoss). */
KILN_POINTWISE_LOSS(mse, (u - v) * (u - v), 2 * (u - v))
/* |u - v| (PyTorch L1Loss); the gradient at u == v is 0, as sign(0) is. */
KILN_POINTWISE_LOSS(l1, fabs(u - v), sign(u - v))
