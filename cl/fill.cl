/*
 * Fill and copy: the simplest kernels, used to initialise tensors and to move data between
 * views. One work-item per element; the global size may be rounded up past n, so every
 * work-item checks its index.
 *
 * Built with the device layer's -D header: KILN_REAL is the element type.
 */
#ifndef KILN_REAL
#define KILN_REAL float
#endif

/* y[i] = value for i in [0, n). y: (n,) */
__kernel void fill_fwd(__global KILN_REAL *y, const KILN_REAL value, const uint n)
{
    const uint i = (uint)get_global_id(0);
    if (i < n)
        y[i] = value;
}

/* y[i] = x[i] for i in [0, n). x, y: (n,) */
__kernel void copy_fwd(__global const KILN_REAL *x, __global KILN_REAL *y, const uint n)
{
    const uint i = (uint)get_global_id(0);
    if (i < n)
        y[i] = x[i];
}
