/*
 * Convolution helpers around the GEMM (src/ops/conv.c): vol2col (im2col in 2-D) of a chunk of
 * input samples into one column matrix, the gather that turns column gradients back into an
 * input gradient (col2im / col2vol), the copy between a chunk's (F, S P) products and the
 * (S, F, P) rows of y and its gradient, and the bias add. The products themselves are GEMMs.
 *
 * Geometry arrives as uint4s laid out (channels, depth, height, width); a 2-D convolution is
 * a 3-D one with depth 1, kernel depth 1, stride 1, no padding. `size` is one input sample
 * (C, D, H, W); `out` is one output sample (F, OD, OH, OW); `ksize`, `stride`, `pad` and
 * `dilation` use .s1 to .s3 only. A chunk of S samples has the column matrix (K, S P)
 * row-major with K = C KD KH KW (row (c, kd, kh, kw), kernel width fastest) and P = OD OH OW
 * (column (s, od, oh, ow): sample s in columns s P to s P + P - 1).
 */
#ifndef KILN_REAL
#define KILN_REAL float
#endif

/* Input position (depth, height, width in .s1 to .s3) that kernel tap k of output position o
 * reads: o * stride - pad + k * dilation (PyTorch Conv3d). */
inline int4 conv_tap(const int4 o, const int4 k, const uint4 stride, const uint4 pad,
                     const uint4 dilation)
{
    return o * convert_int4(stride) - convert_int4(pad) + k * convert_int4(dilation);
}

/* The plane of column-kernel work-item item = (r S + s) OD + od, tap r = (c, kd, kh, kw): its
 * sample s and channel c, and in `tap` the input position (depth, height, width in .s1 to .s3)
 * that the tap reads for output position (od, 0, 0). */
typedef struct conv_plane {
    uint s, c;
    int4 tap;
} conv_plane;

inline conv_plane conv_plane_of(const uint item, const uint samples, const uint4 out,
                                const uint4 ksize, const uint4 stride, const uint4 pad,
                                const uint4 dilation)
{
    conv_plane p;
    uint rest = item;
    const int od = (int)(rest % out.s1);
    rest /= out.s1;
    p.s = rest % samples;
    uint r = rest / samples;
    const int kw = (int)(r % ksize.s3);
    r /= ksize.s3;
    const int kh = (int)(r % ksize.s2);
    r /= ksize.s2;
    const int kd = (int)(r % ksize.s1);
    p.c = r / ksize.s1;
    p.tap = conv_tap((int4)(0, od, 0, 0), (int4)(0, kd, kh, kw), stride, pad, dilation);
    return p;
}

/*
 * cols[r, (s, q)] = x[x_offset + (s, c, d, h, w)] for the input position that tap
 * r = (c, kd, kh, kw) of output position q = (od, oh, ow) reads in sample s, 0 where that lies
 * in the zero padding. x: (S, C, D, H, W), the chunk's samples from x_offset; cols: (K, S P).
 * One work-item per (r, s, od), n = K S OD of them, each writing the OH OW consecutive
 * elements of its output plane: the index arithmetic (divisions by runtime sizes) is done
 * once per plane, and each row is a zero prefix, a copy and a zero suffix, the width range
 * that reads inside the input being worked out once per work-item, not tested per element.
 */
__kernel void conv_fwd_cols(__global const KILN_REAL *x, const uint x_offset,
                            __global KILN_REAL *cols, const uint n, const uint samples,
                            const uint4 size, const uint4 out, const uint4 ksize,
                            const uint4 stride, const uint4 pad, const uint4 dilation)
{
    const uint item = (uint)get_global_id(0);
    if (item >= n)
        return;
    const conv_plane p = conv_plane_of(item, samples, out, ksize, stride, pad, dilation);
    const uint s = p.s, c = p.c;
    const int4 t = p.tap; /* the input position of (od, oh = 0, ow = 0) */
    const uint plane = out.s2 * out.s3;
    __global KILN_REAL *dst = cols + (size_t)item * plane; /* item = (r S + s) OD + od */
    const bool depth_inside = t.s1 >= 0 && t.s1 < (int)size.s1;
    /* Output columns [lo, hi) read inside the input's width: w = t.s3 + ow stride >= 0 from
     * lo on, and w <= W - 1 up to hi - 1. */
    const int sw = (int)stride.s3, n_ow = (int)out.s3;
    const int lo = min(n_ow, t.s3 >= 0 ? 0 : (-t.s3 + sw - 1) / sw);
    const int last = (int)size.s3 - 1 - t.s3;
    const int hi = clamp(last < 0 ? 0 : last / sw + 1, lo, n_ow);
    __global const KILN_REAL *sample =
        x + x_offset + (s * size.s0 + c) * size.s1 * size.s2 * size.s3;
    for (uint oh = 0; oh < out.s2; oh++) {
        __global KILN_REAL *row = dst + oh * out.s3;
        const int h = t.s2 + (int)(oh * stride.s2);
        if (!depth_inside || h < 0 || h >= (int)size.s2) {
            for (int ow = 0; ow < n_ow; ow++)
                row[ow] = 0;
            continue;
        }
        __global const KILN_REAL *src =
            sample + ((uint)t.s1 * size.s2 + (uint)h) * size.s3 + (t.s3 + lo * sw);
        for (int ow = 0; ow < lo; ow++)
            row[ow] = 0;
        if (sw == 1) {
            for (int ow = lo; ow < hi; ow++)
                row[ow] = src[ow - lo];
        } else {
            for (int ow = lo; ow < hi; ow++)
                row[ow] = src[(ow - lo) * sw];
        }
        for (int ow = hi; ow < n_ow; ow++)
            row[ow] = 0;
    }
}

/* Lane numbers 0 to 15, for the 16-wide blocks of the shifted kernels below. */
#define CONV_LANES ((int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))

/* The 16 values p[at + l] (l = 0 to 15) where lane l of `take` is set, 0 elsewhere. Positions
 * [first, end) around p are readable (the caller's buffer region, wider than the plane whose
 * lanes it takes) and nothing outside them is read: one vector load when all 16 lie inside,
 * else 16 loads at positions clamped into them. */
inline float16 conv_load16(__global const float *p, const long at, const long first, const long end,
                           const int16 take)
{
    if (at >= first && at + 16 <= end)
        return select((float16)0, vload16(0, p + at), take);
    float v[16];
    for (int l = 0; l < 16; l++)
        v[l] = p[clamp(at + l, first, end - 1)];
    return select((float16)0, vload16(0, v), take);
}

/* Lanes l (0 to 15) with at + l in [0, limit): the positions of a block inside its plane. */
inline int16 conv_in_plane(const int at, const int limit)
{
    const int16 where = at + CONV_LANES;
    return (where >= 0) & (where < limit);
}

/* Stores the first `count` (at most 16) lanes of v at p: all 16 with one vector store. */
inline void conv_store16(const float16 v, __global float *p, const int count)
{
    if (count >= 16) {
        vstore16(v, 0, p);
        return;
    }
    float lane[16];
    vstore16(v, 0, lane);
    for (int l = 0; l < count; l++)
        p[l] = lane[l];
}

/* The width positions of the first 16-wide block of a row-major plane `width` wide, l modulo
 * width for lanes l = 0 to 15, without an integer division per lane: for width < 16,
 * (l + 1/2) / width lies at least 1 / 32 from an integer, so a float division, even one
 * 2.5 ulp off as OpenCL allows, truncates to l's whole multiples of width; wider rows hold
 * all 16 lanes in their first row. */
inline int16 conv_first_block(const int width)
{
    if (width >= 16)
        return CONV_LANES;
    const float16 ratio = (convert_float16(CONV_LANES) + 0.5f) / (float)width;
    return CONV_LANES - convert_int16_rtz(ratio) * width;
}

/* Advances the width positions of a 16-wide block to the next block: w + 16 modulo width,
 * for w already in [0, width) (16 % width < width, so one subtraction wraps it). */
inline int16 conv_next_block(const int16 w, const int width)
{
    const int16 t = w + 16 % width;
    return select(t, t - width, t >= width);
}

/*
 * conv_fwd_cols where the stride is 1 along height and width and the output is as wide as the
 * input (OW = W, as with a 'same' padding): then output column q = oh W + ow of a plane reads
 * input element q + delta of the input's (depth) plane for every q, delta = a W + b, (a, b)
 * being where tap (kh, kw) of output (0, 0) reads. The column plane is one shifted copy of the
 * input plane, 0 where ow + b falls outside [0, W) (padding left and right) or q + delta
 * outside [0, H W) (padding above and below), and is written 16 columns at a time with vector
 * loads and stores; the general kernel's rows of OW elements run as scalar moves on PoCL.
 * Work-items and arguments as conv_fwd_cols.
 */
__kernel void conv_fwd_cols_shifted(__global const float *x, const uint x_offset,
                                    __global float *cols, const uint n, const uint samples,
                                    const uint4 size, const uint4 out, const uint4 ksize,
                                    const uint4 stride, const uint4 pad, const uint4 dilation)
{
    const uint item = (uint)get_global_id(0);
    if (item >= n)
        return;
    const conv_plane p = conv_plane_of(item, samples, out, ksize, stride, pad, dilation);
    const uint s = p.s, c = p.c;
    const int4 t = p.tap;
    const int width = (int)size.s3, in_plane = (int)(size.s2 * size.s3);
    const int n_q = (int)(out.s2 * out.s3);
    __global float *dst = cols + (size_t)item * (size_t)n_q; /* item = (r S + s) OD + od */
    const bool depth_inside = t.s1 >= 0 && t.s1 < (int)size.s1;
    /* The input plane read, and the readable region around it: the chunk's samples. */
    const long at_plane =
        (long)((s * size.s0 + c) * size.s1 + (depth_inside ? (uint)t.s1 : 0)) * in_plane;
    const long region = (long)samples * size.s0 * size.s1 * (long)in_plane;
    __global const float *src = x + x_offset + at_plane;
    const int delta = t.s2 * width + t.s3;
    /* ow + b lies in [0, W) for ow in [lo, hi). */
    const int lo = max(0, -t.s3), hi = min(width, width - t.s3);
    const int16 depth = (int16)(depth_inside ? -1 : 0);
    int16 ow = conv_first_block(width);
    for (int q = 0; q < n_q; q += 16) {
        const int16 take = depth & (ow >= lo) & (ow < hi) & conv_in_plane(q + delta, in_plane);
        conv_store16(conv_load16(src, q + delta, -at_plane, region - at_plane, take), dst + q,
                     n_q - q);
        ow = conv_next_block(ow, width);
    }
}

/*
 * conv_fwd_cols with one work-item per column-matrix element, item = (r S + s) P + q, n = K S P
 * of them: the form for GPUs, where a work-item per plane leaves most of the device idle and
 * neighbouring work-items write a plane apart; here they write, and mostly read, neighbouring
 * elements. Arguments as conv_fwd_cols.
 */
__kernel void conv_fwd_cols_elems(__global const KILN_REAL *x, const uint x_offset,
                                  __global KILN_REAL *cols, const uint n, const uint samples,
                                  const uint4 size, const uint4 out, const uint4 ksize,
                                  const uint4 stride, const uint4 pad, const uint4 dilation)
{
    const uint item = (uint)get_global_id(0);
    if (item >= n)
        return;
    uint q = item % (out.s1 * out.s2 * out.s3);
    uint rest = item / (out.s1 * out.s2 * out.s3);
    const uint s = rest % samples;
    uint r = rest / samples;
    const int ow = (int)(q % out.s3);
    q /= out.s3;
    const int oh = (int)(q % out.s2);
    const int od = (int)(q / out.s2);
    const int kw = (int)(r % ksize.s3);
    r /= ksize.s3;
    const int kh = (int)(r % ksize.s2);
    r /= ksize.s2;
    const int kd = (int)(r % ksize.s1);
    const uint c = r / ksize.s1;
    const int4 t = conv_tap((int4)(0, od, oh, ow), (int4)(0, kd, kh, kw), stride, pad, dilation);
    const bool inside = t.s1 >= 0 && t.s1 < (int)size.s1 && t.s2 >= 0 && t.s2 < (int)size.s2 &&
                        t.s3 >= 0 && t.s3 < (int)size.s3;
    /* The element's offset in the chunk's x, wrapped (and unread) outside the input. */
    const uint at =
        (((s * size.s0 + c) * size.s1 + (uint)t.s1) * size.s2 + (uint)t.s2) * size.s3 + (uint)t.s3;
    cols[item] = inside ? x[x_offset + at] : (KILN_REAL)0;
}

/* Input plane `plane` = (s C + c) D + d of the chunk: its sample s, channel c and depth d. */
typedef struct conv_in_plane_at {
    uint s, c;
    int d;
} conv_in_plane_at;

inline conv_in_plane_at conv_in_plane_of(const uint plane, const uint4 size)
{
    conv_in_plane_at at;
    at.d = (int)(plane % size.s1);
    const uint rest = plane / size.s1;
    at.c = rest % size.s0;
    at.s = rest / size.s0;
    return at;
}

/* The output position along one axis that tap k reads input position p from, or -1 when
 * none does (p + pad - k dilation is negative, not a multiple of the stride, or past the
 * output). */
inline int conv_source(const int p, const int k, const uint stride, const uint pad,
                       const uint dilation, const uint n_out)
{
    const int t = p + (int)pad - k * (int)dilation;
    if (t < 0 || t % (int)stride != 0 || t / (int)stride >= (int)n_out)
        return -1;
    return t / (int)stride;
}

/*
 * gx[x_offset + (s, c, d, h, w)] += the column gradients of every (tap, output position) pair
 * that read input element (c, d, h, w) of sample s in conv_fwd_cols: the transpose of vol2col
 * written as a gather, so no two work-items write one element. One work-item per input row
 * (s, c, d, h), n = S C D H of them: the depth and height taps are resolved once per row, and
 * with stride 1 along the width the width taps need no division. Without `accumulate` the row
 * is zeroed first, so gx is set (=) instead. cols: (K, S P); gx: (S, C, D, H, W), the chunk's
 * samples from x_offset.
 */
__kernel void conv_bwd_x(__global const KILN_REAL *cols, __global KILN_REAL *gx,
                         const uint x_offset, const uint n, const uint samples,
                         const uint accumulate, const uint4 size, const uint4 out,
                         const uint4 ksize, const uint4 stride, const uint4 pad,
                         const uint4 dilation)
{
    const uint row = (uint)get_global_id(0);
    if (row >= n)
        return;
    const int h = (int)(row % size.s2);
    const conv_in_plane_at at = conv_in_plane_of(row / size.s2, size);
    const uint s = at.s, c = at.c;
    const int d = at.d;
    const uint n_cols = out.s1 * out.s2 * out.s3; /* P */
    const uint ld = samples * n_cols;             /* the column matrix's row length */
    __global KILN_REAL *g = gx + x_offset + row * size.s3;
    if (!accumulate) {
        for (uint w = 0; w < size.s3; w++)
            g[w] = 0;
    }
    for (uint kd = 0; kd < ksize.s1; kd++) {
        const int od = conv_source(d, (int)kd, stride.s1, pad.s1, dilation.s1, out.s1);
        if (od < 0)
            continue;
        for (uint kh = 0; kh < ksize.s2; kh++) {
            const int oh = conv_source(h, (int)kh, stride.s2, pad.s2, dilation.s2, out.s2);
            if (oh < 0)
                continue;
            const uint r0 = ((c * ksize.s1 + kd) * ksize.s2 + kh) * ksize.s3;
            const uint q0 = s * n_cols + ((uint)od * out.s2 + (uint)oh) * out.s3;
            for (uint kw = 0; kw < ksize.s3; kw++) {
                __global const KILN_REAL *src = cols + (r0 + kw) * ld + q0;
                const int shift = (int)pad.s3 - (int)kw * (int)dilation.s3;
                if (stride.s3 == 1) {
                    /* ow = w + shift, inside [0, OW): w in [lo, hi). */
                    const int lo = max(0, -shift);
                    const int hi = min((int)size.s3, (int)out.s3 - shift);
                    for (int w = lo; w < hi; w++)
                        g[w] += src[w + shift];
                } else {
                    for (uint w = 0; w < size.s3; w++) {
                        const int ow =
                            conv_source((int)w, (int)kw, stride.s3, pad.s3, dilation.s3, out.s3);
                        if (ow >= 0)
                            g[w] += src[ow];
                    }
                }
            }
        }
    }
}

/*
 * conv_bwd_x in the shifted case of conv_fwd_cols_shifted (stride 1 along height and width,
 * OW = W): input element j = h W + w of a (depth) plane receives, from tap (kd, kh, kw), column
 * j - delta of that tap's (od) plane, when w - b lies in [0, W) and j - delta in [0, OH OW).
 * Each tap thus adds one shifted, masked copy of a column plane, taken 16 elements at a time,
 * the taps in the general kernel's order (the same additions on every element). One
 * work-item per input plane (s, c, d), n = S C D of them; arguments as conv_bwd_x.
 */
__kernel void conv_bwd_x_shifted(__global const float *cols, __global float *gx,
                                 const uint x_offset, const uint n, const uint samples,
                                 const uint accumulate, const uint4 size, const uint4 out,
                                 const uint4 ksize, const uint4 stride, const uint4 pad,
                                 const uint4 dilation)
{
    const uint plane = (uint)get_global_id(0);
    if (plane >= n)
        return;
    const conv_in_plane_at at = conv_in_plane_of(plane, size);
    const uint s = at.s, c = at.c;
    const int d = at.d;
    const int width = (int)size.s3, in_plane = (int)(size.s2 * size.s3);
    const int n_q = (int)(out.s2 * out.s3);
    const uint n_cols = out.s1 * (uint)n_q;     /* P */
    const size_t ld = (size_t)samples * n_cols; /* the column matrix's row length */
    __global float *g = gx + x_offset + (size_t)plane * (size_t)in_plane;
    const long region = (long)size.s0 * ksize.s1 * ksize.s2 * ksize.s3 * (long)ld; /* K ld */
    int16 w = conv_first_block(width);
    for (int j = 0; j < in_plane; j += 16) {
        float16 acc =
            accumulate ? conv_load16(g, j, 0, in_plane, conv_in_plane(j, in_plane)) : (float16)0;
        for (uint kd = 0; kd < ksize.s1; kd++) {
            const int od = conv_source(d, (int)kd, stride.s1, pad.s1, dilation.s1, out.s1);
            if (od < 0)
                continue;
            for (uint kh = 0; kh < ksize.s2; kh++) {
                const int a = (int)(kh * dilation.s2) - (int)pad.s2;
                for (uint kw = 0; kw < ksize.s3; kw++) {
                    const int b = (int)(kw * dilation.s3) - (int)pad.s3;
                    const uint r = ((c * ksize.s1 + kd) * ksize.s2 + kh) * ksize.s3 + kw;
                    const long at_plane = (long)(r * ld + s * n_cols + (uint)od * (uint)n_q);
                    const int at = j - (a * width + b);
                    const int16 take = (w >= b) & (w < width + b) & conv_in_plane(at, n_q);
                    acc += conv_load16(cols + at_plane, at, -at_plane, region - at_plane, take);
                }
            }
        }
        conv_store16(acc, g + j, in_plane - j);
        w = conv_next_block(w, width);
    }
}

/*
 * conv_bwd_x with one work-item per input element (s, c, d, h, w), n = S C D H W of them: the
 * form for GPUs (see conv_fwd_cols_elems). Each element adds its taps' column gradients in the
 * order conv_bwd_x does (kd, kh, kw), so the two forms give the same sums. Arguments as
 * conv_bwd_x.
 */
__kernel void conv_bwd_x_elems(__global const KILN_REAL *cols, __global KILN_REAL *gx,
                               const uint x_offset, const uint n, const uint samples,
                               const uint accumulate, const uint4 size, const uint4 out,
                               const uint4 ksize, const uint4 stride, const uint4 pad,
                               const uint4 dilation)
{
    const uint item = (uint)get_global_id(0);
    if (item >= n)
        return;
    const int w = (int)(item % size.s3);
    const int h = (int)(item / size.s3 % size.s2);
    const conv_in_plane_at at = conv_in_plane_of(item / size.s3 / size.s2, size);
    const uint n_cols = out.s1 * out.s2 * out.s3; /* P */
    const uint ld = samples * n_cols;             /* the column matrix's row length */
    __global KILN_REAL *g = gx + x_offset + item;
    KILN_REAL acc = accumulate ? *g : (KILN_REAL)0;
    for (uint kd = 0; kd < ksize.s1; kd++) {
        const int od = conv_source(at.d, (int)kd, stride.s1, pad.s1, dilation.s1, out.s1);
        if (od < 0)
            continue;
        for (uint kh = 0; kh < ksize.s2; kh++) {
            const int oh = conv_source(h, (int)kh, stride.s2, pad.s2, dilation.s2, out.s2);
            if (oh < 0)
                continue;
            const uint r0 = ((at.c * ksize.s1 + kd) * ksize.s2 + kh) * ksize.s3;
            const uint q0 = at.s * n_cols + ((uint)od * out.s2 + (uint)oh) * out.s3;
            for (uint kw = 0; kw < ksize.s3; kw++) {
                const int ow = conv_source(w, (int)kw, stride.s3, pad.s3, dilation.s3, out.s3);
                if (ow >= 0)
                    acc += cols[(r0 + kw) * ld + q0 + (uint)ow];
            }
        }
    }
    *g = acc;
}

/* y[n, f, ...] += b[f]. y: (N, F, P) with P = n_cols; b: (F,); one work-item per (n, f) row,
 * n = N F of them, each adding its bias along the row. */
__kernel void conv_fwd_bias(__global const KILN_REAL *b, __global KILN_REAL *y, const uint n,
                            const uint n_cols, const uint n_filters)
{
    const uint row = (uint)get_global_id(0);
    if (row >= n)
        return;
    const KILN_REAL v = b[row % n_filters];
    __global KILN_REAL *r = y + (size_t)row * n_cols;
    for (uint j = 0; j < n_cols; j++)
        r[j] += v;
}

/*
 * Moves a chunk of S samples between the GEMM's layout, chunk (F, S P) at chunk_offset, and
 * the sample-major rows of y or its gradient, rows (S, F, P) at rows_offset: with to_rows,
 * rows[s, f, :] = act(chunk[f, s P : s P + P] + (has_bias ? b[f] : 0)) after the forward
 * product, act being relu when `relu` is set (as relu_fwd: v <= 0 gives 0, NaN passes) and the
 * identity otherwise; without to_rows, chunk[f, s P : s P + P] = rows[s, f, :] before the
 * backward ones, times relu's derivative (y > 0, y the activated output, at the same offsets in
 * `y`) when `relu` is set, and with `want_sums` each row's sum goes to sums[row] (from
 * sums_offset), for the bias gradient. One work-item per (s, f) row of P = n_cols elements,
 * n = S F of them. b: (F,), read only with has_bias; y read only with relu and without to_rows.
 */
__kernel void conv_chunk_transpose(__global KILN_REAL *chunk, const uint chunk_offset,
                                   __global KILN_REAL *rows, const uint rows_offset,
                                   __global const KILN_REAL *b, const uint has_bias,
                                   __global const KILN_REAL *y, const uint relu,
                                   __global KILN_REAL *sums, const uint sums_offset,
                                   const uint want_sums, const uint to_rows, const uint n,
                                   const uint n_cols, const uint n_filters, const uint samples)
{
    const uint row = (uint)get_global_id(0); /* (s, f) */
    if (row >= n)
        return;
    const uint f = row % n_filters, s = row / n_filters;
    __global KILN_REAL *c = chunk + chunk_offset + (f * samples + s) * n_cols;
    __global KILN_REAL *r = rows + rows_offset + row * n_cols;
    if (to_rows) {
        const KILN_REAL v = has_bias ? b[f] : (KILN_REAL)0;
        if (relu) {
            for (uint j = 0; j < n_cols; j++) {
                const KILN_REAL t = c[j] + v;
                r[j] = t <= 0 ? (KILN_REAL)0 : t;
            }
        } else {
            for (uint j = 0; j < n_cols; j++)
                r[j] = c[j] + v;
        }
        return;
    }
    __global const KILN_REAL *a = y + rows_offset + row * n_cols;
    KILN_REAL part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    uint j = 0;
    for (; j + 8 <= n_cols; j += 8) {
        for (uint l = 0; l < 8; l++) {
            const KILN_REAL v = relu && !(a[j + l] > 0) ? (KILN_REAL)0 : r[j + l];
            c[j + l] = v;
            part[l] += v;
        }
    }
    for (; j < n_cols; j++) {
        const KILN_REAL v = relu && !(a[j] > 0) ? (KILN_REAL)0 : r[j];
        c[j] = v;
        part[j % 8] += v;
    }
    if (want_sums)
        sums[sums_offset + row] = ((part[0] + part[1]) + (part[2] + part[3])) +
                                  ((part[4] + part[5]) + (part[6] + part[7]));
}

/*
 * conv_chunk_transpose with one work-group per (s, f) row, n = S F rows: the form for GPUs,
 * where a work-item per row leaves most of the device idle and neighbouring work-items touch
 * elements a row apart. The group's `width` work-items (a power of two, `part` holding as many
 * floats) take the row's elements `width` apart, so neighbours touch neighbouring elements,
 * and with want_sums add their partial sums in a tree in local memory. Launched over n * width
 * work-items in groups of width; other arguments as conv_chunk_transpose.
 */
__kernel void conv_chunk_transpose_groups(__global KILN_REAL *chunk, const uint chunk_offset,
                                          __global KILN_REAL *rows, const uint rows_offset,
                                          __global const KILN_REAL *b, const uint has_bias,
                                          __global const KILN_REAL *y, const uint relu,
                                          __global KILN_REAL *sums, const uint sums_offset,
                                          const uint want_sums, const uint to_rows, const uint n,
                                          const uint n_cols, const uint n_filters,
                                          const uint samples, __local KILN_REAL *part)
{
    const uint row = (uint)get_group_id(0); /* (s, f); the same for the whole group */
    const uint lane = (uint)get_local_id(0), width = (uint)get_local_size(0);
    if (row >= n)
        return;
    const uint f = row % n_filters, s = row / n_filters;
    __global KILN_REAL *c = chunk + chunk_offset + (f * samples + s) * n_cols;
    __global KILN_REAL *r = rows + rows_offset + row * n_cols;
    if (to_rows) {
        const KILN_REAL v = has_bias ? b[f] : (KILN_REAL)0;
        for (uint j = lane; j < n_cols; j += width) {
            const KILN_REAL t = c[j] + v;
            r[j] = relu && t <= 0 ? (KILN_REAL)0 : t;
        }
        return;
    }
    __global const KILN_REAL *a = y + rows_offset + row * n_cols;
    KILN_REAL sum = 0;
    for (uint j = lane; j < n_cols; j += width) {
        const KILN_REAL v = relu && !(a[j] > 0) ? (KILN_REAL)0 : r[j];
        c[j] = v;
        sum += v;
    }
    if (!want_sums)
        return;
    part[lane] = sum;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint span = width / 2; span > 0; span /= 2) {
        if (lane < span)
            part[lane] += part[lane + span];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lane == 0)
        sums[sums_offset + row] = part[0];
}

/*
 * gb[f] += the sum over samples s of sums[s F + f], the (N, F) row sums of g (times a fused
 * relu's derivative) that the backward copies (or, on the direct path, kiln__reduce_to_at) left
 * at sums_offset
 * (gb[f] = ... without `accumulate`), added with Kahan compensation so no float is added to a
 * long running total. One work-item per filter, n = F of them.
 */
__kernel void conv_bwd_b(__global const KILN_REAL *sums, const uint sums_offset,
                         __global KILN_REAL *gb, const uint accumulate, const uint n,
                         const uint batch)
{
    const uint f = (uint)get_global_id(0);
    if (f >= n)
        return;
    KILN_REAL sum = 0;
    KILN_REAL comp = 0;
    for (uint s = 0; s < batch; s++) {
        const KILN_REAL step = sums[sums_offset + s * n + f] - comp;
        const KILN_REAL t = sum + step;
        /* As in cl/reduce.cl: once the sum is infinite, stop correcting (inf - inf = NaN). */
        comp = isfinite(t) ? (t - sum) - step : 0;
        sum = t;
    }
    gb[f] = accumulate ? gb[f] + sum : sum;
}
