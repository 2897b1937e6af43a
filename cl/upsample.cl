/*
 * Nearest-neighbour upsampling by an integer factor per spatial axis, and its backward.
 *
 * Geometry arguments are uint4s over the spatial axes (D, H, W, unused), a 2-D upsample being
 * a 3-D one with D = 1 and a depth factor of 1: `in` is the input's size and `scale` the
 * factors, so the output is in * scale. Tensors are (P, D, H, W) with P = N * C planes.
 * Forward runs one work-item per output element; backward is a gather, one work-item per
 * input element summing the gradient over the block it was copied to.
 */
#ifndef KILN_REAL
#define KILN_REAL float
#endif

/* (plane, d, h, w) of element i of a (P, D, H, W) tensor with dims = (D, H, W, -). */
inline uint4 upsample_coords(uint i, const uint4 dims)
{
    const uint w = i % dims.s2;
    i /= dims.s2;
    const uint h = i % dims.s1;
    i /= dims.s1;
    const uint d = i % dims.s0;
    return (uint4)(i / dims.s0, d, h, w);
}

/* Element offset of (plane, d, h, w) in a tensor with dims = (D, H, W, -). */
inline uint upsample_offset(const uint4 c, const uint4 dims)
{
    return ((c.s0 * dims.s0 + c.s1) * dims.s1 + c.s2) * dims.s2 + c.s3;
}

/* y[p, d, h, w] = x[p, d / sd, h / sh, w / sw].
 * x: (P, D, H, W); y: (P, D * sd, H * sh, W * sw) = (n,). */
__kernel void upsample_fwd(__global const KILN_REAL *x, __global KILN_REAL *y, const uint n,
                           const uint4 in, const uint4 scale)
{
    const uint o = (uint)get_global_id(0);
    if (o >= n)
        return;
    const uint4 c = upsample_coords(o, in * scale);
    y[o] = x[upsample_offset((uint4)(c.s0, c.s1 / scale.s0, c.s2 / scale.s1, c.s3 / scale.s2), in)];
}

/* gx[i] += the sum of g over the sd x sh x sw block that input element i was copied to.
 * g: (P, D * sd, H * sh, W * sw); gx: (P, D, H, W) = (n,). Blocks are small, so one serial
 * sum per work-item is accurate. */
__kernel void upsample_bwd_x(__global const KILN_REAL *g, __global KILN_REAL *gx, const uint n,
                             const uint4 in, const uint4 scale)
{
    const uint i = (uint)get_global_id(0);
    if (i >= n)
        return;
    const uint4 out = in * scale;
    const uint4 c = upsample_coords(i, in);
    const uint first =
        upsample_offset((uint4)(c.s0, c.s1 * scale.s0, c.s2 * scale.s1, c.s3 * scale.s2), out);
    KILN_REAL sum = 0;
    for (uint kd = 0; kd < scale.s0; kd++) {
        for (uint kh = 0; kh < scale.s1; kh++) {
            for (uint kw = 0; kw < scale.s2; kw++)
                sum += g[first + (kd * out.s1 + kh) * out.s2 + kw];
        }
    }
    gx[i] += sum;
}
