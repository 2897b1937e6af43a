/*
 * Loss kernels: softmax cross-entropy over class rows, and the pointwise losses
 * bce_with_logits, mse and l1. Forward kernels write one non-negative term per element into
 * a workspace that src/ops/loss.c then averages with the shared tree reduction; backward
 * kernels read the scalar output gradient g (one element) on the device and accumulate
 * g / n times the per-element derivative. Work-item i handles element i; every kernel checks
 * i < n because global sizes are rounded up.
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

/* e[i] = exp(x[i] - m[row]), m the row maximum, so every term is in (0, 1]. e: (N, C). */
__kernel void softmax_cross_entropy_fwd_exp(__global const KILN_REAL *x,
                                            __global const KILN_REAL *m, __global KILN_REAL *e,
                                            const uint n, const uint classes)
{
    const uint i = (uint)get_global_id(0);
    if (i >= n)
        return;
    e[i] = exp(x[i] - m[i / classes]);
}

/*
 * term[i] = -q_c log p_c = q_c (m + log s - x[i]), with s = sum_c exp(x_c - m) of the row.
 * m + log s - x >= 0, so the terms never cancel when summed. A label outside [0, C) makes
 * every term of its row NaN, and so the loss (PyTorch raises an error instead; a kernel
 * cannot). term: (N, C).
 */
__kernel void softmax_cross_entropy_fwd(__global const KILN_REAL *x, __global const int *labels,
                                        __global const KILN_REAL *m, __global const KILN_REAL *s,
                                        __global KILN_REAL *term, const uint n, const uint classes,
                                        const KILN_REAL smoothing)
{
    const uint i = (uint)get_global_id(0);
    if (i >= n)
        return;
    const uint row = i / classes;
    const int label = labels[row];
    if (!label_valid(label, classes)) {
        term[i] = NAN;
        return;
    }
    const KILN_REAL q = smoothed_target(i % classes, label, classes, smoothing);
    term[i] = q * (m[row] + log(s[row]) - x[i]);
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
