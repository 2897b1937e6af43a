/*
 * Elementwise arithmetic with NumPy broadcasting: add, sub, mul, div, scale and bias-add,
 * and the per-element terms of their backward passes.
 *
 * Operands are addressed through a collapsed broadcast plan: `dims` holds up to four output
 * dimensions (slowest first) and each operand's `s*` holds its element strides over them, 0
 * where it is repeated. Work-item i computes output element i; the launch may round the
 * global size up, so every kernel checks i < n.
 */
#ifndef KILN_REAL
#define KILN_REAL float
#endif

/* Element offset of output index i in an operand with strides st. */
inline uint bcast_offset(uint i, const uint4 dims, const uint4 st)
{
    /* One collapsed axis (contiguous operands): skip the divisions, which dominate an
     * otherwise memory-bound kernel. The branch is uniform across work-items. */
    if (dims.s0 == 1 && dims.s1 == 1 && dims.s2 == 1)
        return i * st.s3;
    const uint i3 = i % dims.s3;
    i /= dims.s3;
    const uint i2 = i % dims.s2;
    i /= dims.s2;
    const uint i1 = i % dims.s1;
    const uint i0 = i / dims.s1;
    return i0 * st.s0 + i1 * st.s1 + i2 * st.s2 + i3 * st.s3;
}

/* y = a (op) b, broadcast. a, b: any broadcastable shapes; y: the broadcast shape. */
#define KILN_BINARY_FWD(name, expr)                                                            \
    __kernel void name(__global const KILN_REAL *a, __global const KILN_REAL *b,               \
                       __global KILN_REAL *y, const uint n, const uint4 dims, const uint4 sa,  \
                       const uint4 sb)                                                         \
    {                                                                                          \
        const uint i = (uint)get_global_id(0);                                                 \
        if (i >= n)                                                                            \
            return;                                                                            \
        const KILN_REAL u = a[bcast_offset(i, dims, sa)];                                      \
        const KILN_REAL v = b[bcast_offset(i, dims, sb)];                                      \
        y[i] = (expr);                                                                         \
    }

KILN_BINARY_FWD(add_fwd, u + v)
KILN_BINARY_FWD(sub_fwd, u - v)
KILN_BINARY_FWD(mul_fwd, u * v)
KILN_BINARY_FWD(div_fwd, u / v)

/*
 * Backward terms at the output's shape: t[i] (+)= term(g[i], a[.], b[.]). When the input
 * has the output's shape, t is its gradient and `accumulate` is 1; otherwise t is scratch
 * that a reduction then sums into the gradient. g: the output shape, contiguous.
 */
#define KILN_BINARY_TERM(name, expr)                                                           \
    __kernel void name(__global const KILN_REAL *g, __global const KILN_REAL *a,               \
                       __global const KILN_REAL *b, __global KILN_REAL *t, const uint n,       \
                       const uint4 dims, const uint4 sa, const uint4 sb, const int accumulate) \
    {                                                                                          \
        const uint i = (uint)get_global_id(0);                                                 \
        if (i >= n)                                                                            \
            return;                                                                            \
        const KILN_REAL gi = g[i];                                                             \
        const KILN_REAL u = a[bcast_offset(i, dims, sa)];                                      \
        const KILN_REAL v = b[bcast_offset(i, dims, sb)];                                      \
        const KILN_REAL term = (expr);                                                         \
        t[i] = accumulate ? t[i] + term : term;                                                \
        (void)u;                                                                               \
        (void)v;                                                                               \
    }

KILN_BINARY_TERM(add_bwd_term, gi)
KILN_BINARY_TERM(sub_bwd_b, -gi)
KILN_BINARY_TERM(mul_bwd_a, gi * v)
KILN_BINARY_TERM(mul_bwd_b, gi * u)
KILN_BINARY_TERM(div_bwd_a, gi / v)
KILN_BINARY_TERM(div_bwd_b, -gi * u / (v * v))

/* y = alpha * x. x, y: (n,) */
__kernel void scale_fwd(__global const KILN_REAL *x, __global KILN_REAL *y, const KILN_REAL alpha,
                        const uint n)
{
    const uint i = (uint)get_global_id(0);
    if (i < n)
        y[i] = alpha * x[i];
}

/* gx += alpha * g, or gx = alpha * g when accumulate is 0 (gx is then never read).
 * g, gx: (n,) */
__kernel void scale_bwd_x(__global const KILN_REAL *g, __global KILN_REAL *gx,
                          const KILN_REAL alpha, const uint n, const int accumulate)
{
    const uint i = (uint)get_global_id(0);
    if (i < n)
        gx[i] = accumulate ? gx[i] + alpha * g[i] : alpha * g[i];
}
