/*
 * The one kernel of the matmul family: dense's bias, written onto every row of the output
 * before the GEMM adds x w onto it (beta = 1). The products themselves are GEMMs
 * (src/device/gemm.h), not kernels of ours.
 *
 * Built with the device layer's -D header: KILN_REAL is the element type.
 */
#ifndef KILN_REAL
#define KILN_REAL float
#endif

/* y[r][c] = b[c] for the n = rows * cols elements of y. b: (cols,), y: (rows, cols) */
__kernel void dense_fwd(__global const KILN_REAL *b, __global KILN_REAL *y, const uint n,
                        const uint cols)
{
    const uint i = (uint)get_global_id(0);
    if (i >= n)
        return;
    y[i] = b[i % cols];
}
