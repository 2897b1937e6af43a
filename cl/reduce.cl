/*
 * Reductions along axes: sum (compensated per work-item, then a work-group tree) and max,
 * and the backward broadcasts of sum/mean and max.
 *
 * One work-group computes one output element, written at dst[dst_at + o] so that several
 * results can share one scratch buffer. The source index splits into a kept part
 * (which output element; `kdims`/`kst`) and a reduced part (`rdims`/`rst`), each over up to
 * four collapsed dimensions, slowest first, with element strides into the source.
 */
#ifndef KILN_REAL
#define KILN_REAL float
#endif

inline uint split_offset(uint i, const uint4 dims, const uint4 st)
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

/* sum += y with Kahan's compensation c; once the sum is infinite or NaN the correction would
 * be inf - inf = NaN, and IEEE arithmetic alone gives the right result (the sum stays
 * infinite, or turns NaN on an opposite infinity), so it stops correcting. */
inline void kahan_add(KILN_REAL *sum, KILN_REAL *c, const KILN_REAL y)
{
    const KILN_REAL z = y - *c;
    const KILN_REAL t = *sum + z;
    *c = isfinite(t) ? (t - *sum) - z : 0;
    *sum = t;
}

/*
 * dst[o] (+)= scale * sum over r < n_reduce of src[kept(o) + reduced(r)].
 * Launch: n_out work-groups of get_local_size(0) (a power of two) work-items; scratch holds
 * one float per work-item. Each work-item keeps a Kahan-compensated partial sum; the tree
 * then adds partials pairwise, so no float is ever added to a long running total.
 */
__kernel void reduce_sum_fwd(__global const KILN_REAL *src, __global KILN_REAL *dst,
                             const uint n_reduce, const uint4 kdims, const uint4 kst,
                             const uint4 rdims, const uint4 rst, const KILN_REAL scale,
                             const int accumulate, const uint dst_at,
                             __local KILN_REAL *scratch)
{
    const uint o = (uint)get_group_id(0);
    const uint lid = (uint)get_local_id(0);
    const uint wg = (uint)get_local_size(0);
    const uint base = split_offset(o, kdims, kst);
    KILN_REAL sum = 0;
    KILN_REAL comp = 0;
    for (uint r = lid; r < n_reduce; r += wg)
        kahan_add(&sum, &comp, src[base + split_offset(r, rdims, rst)]);
    scratch[lid] = sum;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = wg / 2; s > 0; s >>= 1) {
        if (lid < s)
            scratch[lid] += scratch[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0)
        dst[dst_at + o] = accumulate ? dst[dst_at + o] + scale * scratch[0] : scale * scratch[0];
}

/* dst[o] (+)= scale * max over r of src[kept(o) + reduced(r)]; launched like reduce_sum_fwd. */
__kernel void reduce_max_fwd(__global const KILN_REAL *src, __global KILN_REAL *dst,
                             const uint n_reduce, const uint4 kdims, const uint4 kst,
                             const uint4 rdims, const uint4 rst, const KILN_REAL scale,
                             const int accumulate, const uint dst_at,
                             __local KILN_REAL *scratch)
{
    const uint o = (uint)get_group_id(0);
    const uint lid = (uint)get_local_id(0);
    const uint wg = (uint)get_local_size(0);
    const uint base = split_offset(o, kdims, kst);
    /* NaN wins, as in torch.amax (fmax would skip it). */
    KILN_REAL best = -INFINITY;
    for (uint r = lid; r < n_reduce; r += wg) {
        const KILN_REAL v = src[base + split_offset(r, rdims, rst)];
        best = (isnan(v) || v > best) ? v : best;
    }
    scratch[lid] = best;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = wg / 2; s > 0; s >>= 1) {
        if (lid < s) {
            const KILN_REAL v = scratch[lid + s];
            scratch[lid] = (isnan(v) || v > scratch[lid]) ? v : scratch[lid];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0)
        dst[dst_at + o] = accumulate ? dst[dst_at + o] + scale * scratch[0] : scale * scratch[0];
}

/*
 * The same sum when src is a row-major (n_reduce, n_out) matrix (a bias gradient: the
 * output gradient summed over its rows): each work-item sums REDUCE_COLS neighbouring columns
 * down the rows as one vector, with Kahan's compensation per lane; the last work-item takes
 * the columns past the last full vector one by one. No work-group tree, whose barriers cost
 * more than the sum on a CPU device; the host uses it for up to REDUCE_COLUMN_ROWS_MAX rows
 * (src/ops/reduce.c), where the compensated serial sum is as accurate as the tree.
 */
#define REDUCE_COLS 8

__kernel void reduce_sum_cols_fwd(__global const KILN_REAL *src, __global KILN_REAL *dst,
                                  const uint n_reduce, const uint n_out, const KILN_REAL scale,
                                  const int accumulate, const uint dst_at)
{
    const uint first = (uint)get_global_id(0) * REDUCE_COLS;
    if (first >= n_out)
        return;
    if (n_out - first >= REDUCE_COLS) {
        float8 sum = 0, comp = 0;
        for (uint r = 0; r < n_reduce; r++) {
            const float8 y = vload8(0, src + (size_t)r * n_out + first) - comp;
            const float8 t = sum + y;
            comp = select((float8)0, (t - sum) - y, isfinite(t));
            sum = t;
        }
        float8 out = scale * sum;
        if (accumulate)
            out += vload8(0, dst + dst_at + first);
        vstore8(out, 0, dst + dst_at + first);
        return;
    }
    for (uint o = first; o < n_out; o++) {
        KILN_REAL sum = 0;
        KILN_REAL comp = 0;
        for (uint r = 0; r < n_reduce; r++)
            kahan_add(&sum, &comp, src[(size_t)r * n_out + o]);
        dst[dst_at + o] = accumulate ? dst[dst_at + o] + scale * sum : scale * sum;
    }
}

/* Nothing to reduce (every reduced axis has size 1): dst[o] (+)= scale * src[kept(o)]. */
__kernel void reduce_copy_fwd(__global const KILN_REAL *src, __global KILN_REAL *dst,
                              const uint n_out, const uint4 kdims, const uint4 kst,
                              const KILN_REAL scale, const int accumulate, const uint dst_at)
{
    const uint o = (uint)get_global_id(0);
    if (o >= n_out)
        return;
    const KILN_REAL v = scale * src[split_offset(o, kdims, kst)];
    dst[dst_at + o] = accumulate ? dst[dst_at + o] + v : v;
}

/* Backward of sum/mean: gx[i] += scale * g[broadcast(i)]. gx: the source shape (n,). */
__kernel void reduce_sum_bwd_x(__global const KILN_REAL *g, __global KILN_REAL *gx, const uint n,
                               const uint4 dims, const uint4 sg, const KILN_REAL scale)
{
    const uint i = (uint)get_global_id(0);
    if (i < n)
        gx[i] += scale * g[split_offset(i, dims, sg)];
}

/* Backward of max: the gradient flows to every element equal to the maximum (ties share it
 * whole; tests keep inputs away from ties). x, gx: (n,); y, g: the reduced shape. */
__kernel void reduce_max_bwd_x(__global const KILN_REAL *x, __global const KILN_REAL *y,
                               __global const KILN_REAL *g, __global KILN_REAL *gx, const uint n,
                               const uint4 dims, const uint4 sy)
{
    const uint i = (uint)get_global_id(0);
    if (i >= n)
        return;
    const uint j = split_offset(i, dims, sy);
    if (x[i] == y[j])
        gx[i] += g[j];
}
