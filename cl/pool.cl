/*
 * Pooling kernels: max and average pooling over 2-D or 3-D windows (no padding, floor mode)
 * and their backward passes, plus the broadcast backward of global average pooling (its
 * forward is a kiln__reduce_to sum).
 *
 * Geometry arguments are uint4s over the spatial axes (D, H, W, unused), a 2-D pool being a
 * 3-D one with D = 1 and window depth 1: `in` and `out` are the input and output sizes,
 * `size` the window and `stride` the step. Tensors are (P, D, H, W) with P = N * C planes.
 * Forward runs one work-item per output element; backward is a gather, one work-item per
 * input element summing over the windows that contain it, so overlapping windows never race.
 */
#ifndef KILN_REAL
#define KILN_REAL float
#endif

/* (plane, d, h, w) of element i of a (P, D, H, W) tensor with dims = (D, H, W, -). */
inline uint4 pool_coords(uint i, const uint4 dims)
{
    const uint w = i % dims.s2;
    i /= dims.s2;
    const uint h = i % dims.s1;
    i /= dims.s1;
    const uint d = i % dims.s0;
    return (uint4)(i / dims.s0, d, h, w);
}

/* Element offset of (plane, d, h, w) in a tensor with dims = (D, H, W, -). */
inline uint pool_offset(const uint4 c, const uint4 dims)
{
    return ((c.s0 * dims.s0 + c.s1) * dims.s1 + c.s2) * dims.s2 + c.s3;
}

/* Offset, relative to the window's first element, of the k-th window element in row-major
 * window order (the order that decides which of tied maxima is first). */
inline uint window_offset(uint k, const uint4 size, const uint4 in)
{
    const uint kw = k % size.s2;
    k /= size.s2;
    const uint kh = k % size.s1;
    const uint kd = k / size.s1;
    return (kd * in.s1 + kh) * in.s2 + kw;
}

/* Offset in x of the first element of the window of output element o. */
inline uint window_base(uint o, const uint4 in, const uint4 out, const uint4 stride)
{
    const uint4 c = pool_coords(o, out);
    return pool_offset((uint4)(c.s0, c.s1 * stride.s0, c.s2 * stride.s1, c.s3 * stride.s2), in);
}

/*
 * y[o] = max over the window; argmax[o] = the window-local index (row-major in the window)
 * of the first maximum, stored as a real (exact: windows are far below 2^24 elements). A NaN
 * in the window wins, as in PyTorch. x: (P, D, H, W); y, argmax: (P, OD, OH, OW) = (n,).
 */
__kernel void maxpool_fwd(__global const KILN_REAL *x, __global KILN_REAL *y,
                          __global KILN_REAL *argmax, const uint n, const uint4 in, const uint4 out,
                          const uint4 size, const uint4 stride)
{
    /* One work-item per output row (plane, od, oh): n = P OD OH; its OW windows in a loop, so
     * the index arithmetic runs once per row and never per window element. */
    const uint row = (uint)get_global_id(0);
    if (row >= n)
        return;
    uint rest = row;
    const uint oh = rest % out.s1;
    rest /= out.s1;
    const uint od = rest % out.s0;
    const uint plane = rest / out.s0;
    __global const KILN_REAL *first =
        x + ((plane * in.s0 + od * stride.s0) * in.s1 + oh * stride.s1) * in.s2;
    for (uint ow = 0; ow < out.s2; ow++) {
        __global const KILN_REAL *window = first + ow * stride.s2;
        KILN_REAL best = window[0];
        uint arg = 0, k = 0;
        for (uint kd = 0; kd < size.s0; kd++) {
            for (uint kh = 0; kh < size.s1; kh++) {
                __global const KILN_REAL *line = window + (kd * in.s1 + kh) * in.s2;
                for (uint kw = 0; kw < size.s2; kw++, k++) {
                    const KILN_REAL v = line[kw];
                    if (k > 0 && (v > best || isnan(v))) {
                        best = v;
                        arg = k;
                    }
                }
            }
        }
        y[row * out.s2 + ow] = best;
        argmax[row * out.s2 + ow] = (KILN_REAL)arg;
    }
}

/* Offset in a (P, H, W) input of the first element of output row `row` = plane * OH + oh of
 * a 2 x 2, stride-2 pool. */
inline size_t row2x2(const uint row, const uint in_h, const uint in_w, const uint out_h)
{
    const uint plane = row / out_h;
    const uint oh = row - plane * out_h;
    return ((size_t)plane * in_h + 2 * oh) * in_w;
}

/*
 * The 2 x 2, stride-2 pool over a 2-D input, the commonest window, has kernels of its own: one
 * work-item per output row (plane, oh), which takes its windows B = 8 or 4 at a time with
 * vector loads of the two input rows, .even/.odd lanes and selects: no gathers, no division per
 * window, and a CPU device runs them as whole vector instructions. A row whose width is not a
 * multiple of B ends with a block that overlaps the one before it (the forward pass and a set
 * gradient write the same values twice; an accumulated gradient adds zero on the lanes done
 * before). Rows narrower than 4 windows go one window at a time. Same results, NaN rule and
 * argmax encoding (window-local index 0-3, row-major) as maxpool_fwd / maxpool_bwd_x.
 */

/* Forward of one window: top and bottom are its two input rows. */
inline void maxpool2x2_one(__global const KILN_REAL *top, __global const KILN_REAL *bottom,
                           __global KILN_REAL *y, __global KILN_REAL *argmax)
{
    /* Branch-free; the same sequence of tests as maxpool_fwd's loop over k = 1, 2, 3. */
    KILN_REAL best = top[0], arg = 0;
    const KILN_REAL v1 = top[1], v2 = bottom[0], v3 = bottom[1];
    bool c = v1 > best || isnan(v1);
    best = c ? v1 : best;
    arg = c ? 1 : arg;
    c = v2 > best || isnan(v2);
    best = c ? v2 : best;
    arg = c ? 2 : arg;
    c = v3 > best || isnan(v3);
    best = c ? v3 : best;
    arg = c ? 3 : arg;
    *y = best;
    *argmax = arg;
}

/* Backward of one window: g goes to its argmax element, 0 to the other three. */
inline void maxpool2x2_bwd_one(const KILN_REAL g, const KILN_REAL argmax, __global KILN_REAL *top,
                               __global KILN_REAL *bottom, const uint accumulate)
{
    const KILN_REAL v0 = argmax == 0 ? g : 0, v1 = argmax == 1 ? g : 0;
    const KILN_REAL v2 = argmax == 2 ? g : 0, v3 = argmax == 3 ? g : 0;
    top[0] = accumulate ? top[0] + v0 : v0;
    top[1] = accumulate ? top[1] + v1 : v1;
    bottom[0] = accumulate ? bottom[0] + v2 : v2;
    bottom[1] = accumulate ? bottom[1] + v3 : v3;
}

/* maxpool2x2_fwd_block{8,4} and maxpool2x2_bwd_block{8,4}: B windows at once (B2 = 2 B input
 * columns); `skip` is how many leading lanes an earlier block already did. */
#define MAXPOOL2X2_BLOCKS(B, B2, LANES, INTERLEAVE)                                                \
    inline void maxpool2x2_fwd_block##B(__global const KILN_REAL *top,                             \
                                        __global const KILN_REAL *bottom, __global KILN_REAL *y,   \
                                        __global KILN_REAL *argmax)                                \
    {                                                                                              \
        const float##B2 t = vload##B2(0, top), b = vload##B2(0, bottom);                           \
        float##B best = t.even, arg = 0;                                                           \
        int##B c = isgreater(t.odd, best) | isnan(t.odd);                                          \
        best = select(best, t.odd, c);                                                             \
        arg = select(arg, (float##B)1, c);                                                         \
        c = isgreater(b.even, best) | isnan(b.even);                                               \
        best = select(best, b.even, c);                                                            \
        arg = select(arg, (float##B)2, c);                                                         \
        c = isgreater(b.odd, best) | isnan(b.odd);                                                 \
        best = select(best, b.odd, c);                                                             \
        arg = select(arg, (float##B)3, c);                                                         \
        vstore##B(best, 0, y);                                                                     \
        vstore##B(arg, 0, argmax);                                                                 \
    }                                                                                              \
    inline void maxpool2x2_bwd_block##B(                                                           \
        __global const KILN_REAL *g, __global const KILN_REAL *argmax, __global KILN_REAL *top,    \
        __global KILN_REAL *bottom, const uint skip, const uint accumulate)                        \
    {                                                                                              \
        const float##B zero = 0, a = vload##B(0, argmax);                                          \
        float##B go = vload##B(0, g);                                                              \
        if (accumulate)                                                                            \
            go = select(go, zero, LANES < (int##B)(int)skip);                                      \
        const float##B v0 = select(zero, go, a == zero), v1 = select(zero, go, a == (float##B)1);  \
        const float##B v2 = select(zero, go, a == (float##B)2);                                    \
        const float##B v3 = select(zero, go, a == (float##B)3);                                    \
        float##B2 t = shuffle2(v0, v1, INTERLEAVE), b = shuffle2(v2, v3, INTERLEAVE);              \
        if (accumulate) {                                                                          \
            t += vload##B2(0, top);                                                                \
            b += vload##B2(0, bottom);                                                             \
        }                                                                                          \
        vstore##B2(t, 0, top);                                                                     \
        vstore##B2(b, 0, bottom);                                                                  \
    }
MAXPOOL2X2_BLOCKS(8, 16, ((int8)(0, 1, 2, 3, 4, 5, 6, 7)),
                  ((uint16)(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15)))
MAXPOOL2X2_BLOCKS(4, 8, ((int4)(0, 1, 2, 3)), ((uint8)(0, 4, 1, 5, 2, 6, 3, 7)))

/* x: (P, H, W); y, argmax: (rows = P OH, OW). */
__kernel void maxpool2x2_fwd(__global const KILN_REAL *x, __global KILN_REAL *y,
                             __global KILN_REAL *argmax, const uint rows, const uint in_h,
                             const uint in_w, const uint out_h, const uint out_w)
{
    const uint row = (uint)get_global_id(0);
    if (row >= rows)
        return;
    __global const KILN_REAL *top = x + row2x2(row, in_h, in_w, out_h);
    __global const KILN_REAL *bottom = top + in_w;
    y += (size_t)row * out_w;
    argmax += (size_t)row * out_w;
    const uint block = out_w >= 8 ? 8 : out_w >= 4 ? 4 : 1;
    for (uint ow = 0; ow < out_w; ow += block) {
        const uint at = min(ow, out_w - block);
        if (block == 8)
            maxpool2x2_fwd_block8(top + 2 * at, bottom + 2 * at, y + at, argmax + at);
        else if (block == 4)
            maxpool2x2_fwd_block4(top + 2 * at, bottom + 2 * at, y + at, argmax + at);
        else
            maxpool2x2_one(top + 2 * at, bottom + 2 * at, y + at, argmax + at);
    }
}

/* maxpool_bwd_x_disjoint for maxpool2x2_fwd's windows, launched like it: each window adds g to
 * its argmax element and 0 to the other three, so every access is contiguous (no scatter); the
 * windows are disjoint, so nothing races. Without `accumulate` the windows set gx (every element
 * is in one window when the input's sides are even; the op zero-fills first otherwise).
 * g, argmax: (rows, OW); gx: (P, H, W). */
__kernel void maxpool2x2_bwd_x(__global const KILN_REAL *g, __global const KILN_REAL *argmax,
                               __global KILN_REAL *gx, const uint rows, const uint in_h,
                               const uint in_w, const uint out_h, const uint out_w,
                               const uint accumulate)
{
    const uint row = (uint)get_global_id(0);
    if (row >= rows)
        return;
    __global KILN_REAL *top = gx + row2x2(row, in_h, in_w, out_h);
    __global KILN_REAL *bottom = top + in_w;
    g += (size_t)row * out_w;
    argmax += (size_t)row * out_w;
    const uint block = out_w >= 8 ? 8 : out_w >= 4 ? 4 : 1;
    for (uint ow = 0; ow < out_w; ow += block) {
        const uint at = min(ow, out_w - block);
        const uint skip = ow - at;
        if (block == 8)
            maxpool2x2_bwd_block8(g + at, argmax + at, top + 2 * at, bottom + 2 * at, skip,
                                  accumulate);
        else if (block == 4)
            maxpool2x2_bwd_block4(g + at, argmax + at, top + 2 * at, bottom + 2 * at, skip,
                                  accumulate);
        else
            maxpool2x2_bwd_one(g[at], argmax[at], top + 2 * at, bottom + 2 * at, accumulate);
    }
}

/* y[o] = mean over the window (divided by the full window size; no padding exists). Windows
 * are small (a few to a few hundred elements), so one serial sum per work-item is accurate.
 * x: (P, D, H, W); y: (P, OD, OH, OW) = (n,). */
__kernel void avgpool_fwd(__global const KILN_REAL *x, __global KILN_REAL *y, const uint n,
                          const uint4 in, const uint4 out, const uint4 size, const uint4 stride)
{
    const uint o = (uint)get_global_id(0);
    if (o >= n)
        return;
    const uint base = window_base(o, in, out, stride);
    const uint count = size.s0 * size.s1 * size.s2;
    KILN_REAL sum = 0;
    for (uint k = 0; k < count; k++)
        sum += x[base + window_offset(k, size, in)];
    y[o] = sum / (KILN_REAL)count;
}

/* The windows along one axis that contain input coordinate i, as [lo, hi] (empty when
 * lo > hi): window j covers [j * s, j * s + k). */
inline uint2 windows_of(uint i, uint k, uint s, uint n_out)
{
    const uint lo = i >= k ? (i - k) / s + 1 : 0;
    const uint hi = min(i / s, n_out - 1);
    return (uint2)(lo, hi);
}

/*
 * The sum of g over the windows containing input element i; with `argmax` set, only over
 * those whose argmax is this element. g, argmax: (P, OD, OH, OW); i indexes (P, D, H, W).
 */
inline KILN_REAL pool_gather(__global const KILN_REAL *g, __global const KILN_REAL *argmax,
                             const int use_argmax, uint i, const uint4 in, const uint4 out,
                             const uint4 size, const uint4 stride)
{
    const uint4 c = pool_coords(i, in);
    const uint2 rd = windows_of(c.s1, size.s0, stride.s0, out.s0);
    const uint2 rh = windows_of(c.s2, size.s1, stride.s1, out.s1);
    const uint2 rw = windows_of(c.s3, size.s2, stride.s2, out.s2);
    KILN_REAL sum = 0;
    for (uint od = rd.s0; od <= rd.s1; od++) {
        for (uint oh = rh.s0; oh <= rh.s1; oh++) {
            for (uint ow = rw.s0; ow <= rw.s1; ow++) {
                const uint o = pool_offset((uint4)(c.s0, od, oh, ow), out);
                const uint in_window =
                    ((c.s1 - od * stride.s0) * size.s1 + (c.s2 - oh * stride.s1)) * size.s2 +
                    (c.s3 - ow * stride.s2);
                if (!use_argmax || argmax[o] == (KILN_REAL)in_window)
                    sum += g[o];
            }
        }
    }
    return sum;
}

/* gx[i] += the gradients of the windows whose first maximum is element i.
 * g, argmax: (P, OD, OH, OW); gx: (P, D, H, W) = (n,). */
__kernel void maxpool_bwd_x(__global const KILN_REAL *g, __global const KILN_REAL *argmax,
                            __global KILN_REAL *gx, const uint n, const uint4 in, const uint4 out,
                            const uint4 size, const uint4 stride)
{
    const uint i = (uint)get_global_id(0);
    if (i >= n)
        return;
    gx[i] += pool_gather(g, argmax, 1, i, in, out, size, stride);
}

/* The same when windows do not overlap (stride >= size on every axis), as a scatter: one
 * work-item per window adds g[o] to the element its argmax names; no two windows share an
 * element, so nothing races. g, argmax: (P, OD, OH, OW) = (n,); gx: (P, D, H, W). */
__kernel void maxpool_bwd_x_disjoint(__global const KILN_REAL *g, __global const KILN_REAL *argmax,
                                     __global KILN_REAL *gx, const uint n, const uint4 in,
                                     const uint4 out, const uint4 size, const uint4 stride)
{
    const uint o = (uint)get_global_id(0);
    if (o >= n)
        return;
    const uint at = window_base(o, in, out, stride) + window_offset((uint)argmax[o], size, in);
    gx[at] += g[o];
}

/* gx[i] += (the gradients of the windows containing element i) / window size.
 * g: (P, OD, OH, OW); gx: (P, D, H, W) = (n,). */
__kernel void avgpool_bwd_x(__global const KILN_REAL *g, __global KILN_REAL *gx, const uint n,
                            const uint4 in, const uint4 out, const uint4 size, const uint4 stride)
{
    const uint i = (uint)get_global_id(0);
    if (i >= n)
        return;
    const uint count = size.s0 * size.s1 * size.s2;
    gx[i] += pool_gather(g, g, 0, i, in, out, size, stride) / (KILN_REAL)count;
}

/* Backward of global average pooling: gx[i] += scale * g[i / spatial], scale = 1 / spatial.
 * g: (N * C,); gx: (N * C, spatial) = (n,). */
__kernel void global_avgpool_bwd_x(__global const KILN_REAL *g, __global KILN_REAL *gx,
                                   const uint n, const uint spatial, const KILN_REAL scale)
{
    const uint i = (uint)get_global_id(0);
    if (i < n)
        gx[i] += scale * g[i / spatial];
}
