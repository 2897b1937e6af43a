/*
 * Pointwise activations and their backward passes, PyTorch semantics: relu, leaky_relu,
 * sigmoid, tanh and gelu (exact: 0.5 x (1 + erf(x / sqrt 2))).
 *
 * Every forward kernel has the signature (x, y, slope, n) and every backward kernel
 * (x, y, g, gx, slope, n, accumulate), so the host launches them all alike; `slope` is
 * leaky_relu's and is ignored by the others; backward adds to gx, or sets it (never reading
 * it) when accumulate is 0. All buffers hold n elements; work-item i handles element i, and
 * the launch may round the global size up, so every kernel checks i < n.
 *
 * Special values follow IEEE arithmetic as PyTorch does: NaN in gives NaN out (relu and
 * leaky_relu included), sigmoid(+-inf) = 1 / 0, tanh(+-inf) = +-1, relu(-inf) = 0. For
 * gelu(-inf) the formula's -inf * 0 is NaN (in PyTorch too: pytorch/pytorch#185770), so it
 * returns the limit 0 instead, as PyTorch's fix (#192318) does; gelu(+inf) = +inf.
 */
#ifndef KILN_REAL
#define KILN_REAL float
#endif

#define KILN_SQRT1_2 ((KILN_REAL)0.70710678118654752440)
#define KILN_INV_SQRT_2PI ((KILN_REAL)0.39894228040143267794)

/* y = f(v), v = x[i]. */
#define KILN_ACT_FWD(name, expr)                                                                   \
    __kernel void name(__global const KILN_REAL *x, __global KILN_REAL *y, const KILN_REAL slope,  \
                       const uint n)                                                               \
    {                                                                                              \
        const uint i = (uint)get_global_id(0);                                                     \
        if (i >= n)                                                                                \
            return;                                                                                \
        const KILN_REAL v = x[i];                                                                  \
        y[i] = (expr);                                                                             \
        (void)slope;                                                                               \
    }

/* gx (+)= gi * f'(v), from the input v = x[i] or the output w = y[i]; unused loads are dead. */
#define KILN_ACT_BWD(name, expr)                                                                   \
    __kernel void name(__global const KILN_REAL *x, __global const KILN_REAL *y,                   \
                       __global const KILN_REAL *g, __global KILN_REAL *gx, const KILN_REAL slope, \
                       const uint n, const int accumulate)                                         \
    {                                                                                              \
        const uint i = (uint)get_global_id(0);                                                     \
        if (i >= n)                                                                                \
            return;                                                                                \
        const KILN_REAL v = x[i];                                                                  \
        const KILN_REAL w = y[i];                                                                  \
        const KILN_REAL gi = g[i];                                                                 \
        const KILN_REAL d = (expr);                                                                \
        gx[i] = accumulate ? gx[i] + d : d;                                                        \
        (void)v;                                                                                   \
        (void)w;                                                                                   \
        (void)slope;                                                                               \
    }

/* The logistic function without overflow: for v < 0, exp(v) / (1 + exp(v)) keeps full
 * relative precision where 1 / (1 + exp(-v)) would divide by an overflowing exp. */
inline KILN_REAL sigmoid_of(const KILN_REAL v)
{
    if (v >= 0)
        return 1 / (1 + exp(-v));
    const KILN_REAL e = exp(v);
    return e / (1 + e);
}

/* 1 + erf(z) is written erfc(-z): the same value without cancellation for z << 0, where
 * 1 + erf(z) loses every digit of the small result. */
inline KILN_REAL gelu_of(const KILN_REAL v)
{
    if (isinf(v))
        return v > 0 ? v : 0;
    return (KILN_REAL)0.5 * v * erfc(-v * KILN_SQRT1_2);
}

/* d gelu / dv = Phi(v) + v phi(v); v phi(v) -> 0 at +-inf, where the product would be NaN. */
inline KILN_REAL gelu_grad_of(const KILN_REAL v)
{
    const KILN_REAL cdf = (KILN_REAL)0.5 * erfc(-v * KILN_SQRT1_2);
    const KILN_REAL pdf = KILN_INV_SQRT_2PI * exp((KILN_REAL)-0.5 * v * v);
    return isinf(v) ? cdf : cdf + v * pdf;
}

/* relu(NaN) is NaN: the comparison is false for NaN, which passes through. */
KILN_ACT_FWD(relu_fwd, v <= 0 ? (KILN_REAL)0 : v)
KILN_ACT_FWD(leaky_relu_fwd, v > 0 ? v : slope * v)
KILN_ACT_FWD(sigmoid_fwd, sigmoid_of(v))
KILN_ACT_FWD(tanh_fwd, tanh(v))
KILN_ACT_FWD(gelu_fwd, gelu_of(v))

KILN_ACT_BWD(relu_bwd_x, v > 0 ? gi : (KILN_REAL)0)
KILN_ACT_BWD(leaky_relu_bwd_x, v > 0 ? gi : slope * gi)
KILN_ACT_BWD(sigmoid_bwd_x, gi *w *(1 - w))
KILN_ACT_BWD(tanh_bwd_x, gi *(1 - w * w))
KILN_ACT_BWD(gelu_bwd_x, gi *gelu_grad_of(v))
