/*
 * Concatenation along one axis, and its backward. The host launches once per input: input k
 * occupies the slice [offset, offset + axis_x) of the output's axis (of size axis_y).
 *
 * Tensors are viewed as (outer, axis, inner): `inner` is the product of the dimensions after
 * the axis. Each forward work-item writes one output element (the launches of all inputs
 * together cover the output exactly once, with disjoint writes); each backward work-item
 * gathers one input element's gradient, so nothing races.
 */
#ifndef KILN_REAL
#define KILN_REAL float
#endif

/* Index in y (outer, axis_y, inner) of element i of x (outer, axis_x, inner) placed at
 * `offset` along the axis. */
inline uint concat_index(uint i, const uint inner, const uint axis_x, const uint axis_y,
                         const uint offset)
{
    const uint block = axis_x * inner;
    return (i / block) * axis_y * inner + offset * inner + i % block;
}

/* y[slice of x] = x. x: (outer, axis_x, inner) = (n,); y: (outer, axis_y, inner). */
__kernel void concat_fwd(__global const KILN_REAL *x, __global KILN_REAL *y, const uint n,
                         const uint inner, const uint axis_x, const uint axis_y, const uint offset)
{
    const uint i = (uint)get_global_id(0);
    if (i < n)
        y[concat_index(i, inner, axis_x, axis_y, offset)] = x[i];
}

/* gx += g[slice of x]. g: (outer, axis_y, inner); gx: (outer, axis_x, inner) = (n,). */
__kernel void concat_bwd_x(__global const KILN_REAL *g, __global KILN_REAL *gx, const uint n,
                           const uint inner, const uint axis_x, const uint axis_y,
                           const uint offset)
{
    const uint i = (uint)get_global_id(0);
    if (i < n)
        gx[i] += g[concat_index(i, inner, axis_x, axis_y, offset)];
}
