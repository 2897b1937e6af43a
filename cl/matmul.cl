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

/* Columns each work-item writes: one 8-wide vector store, no per-element division. */
#define DENSE_COLS 8

/* y[r][c] = b[c]. b: (cols,), y: (rows, cols). Work-item (x, r) writes row r's columns
 * [x * DENSE_COLS, + DENSE_COLS) below cols. */
__kernel void dense_fwd(__global const KILN_REAL *b, __global KILN_REAL *y, const uint rows,
                        const uint cols)
{
    const uint first = (uint)get_global_id(0) * DENSE_COLS;
    const uint r = (uint)get_global_id(1);
    if (first >= cols || r >= rows)
        return;
    __global KILN_REAL *row = y + (size_t)r * cols;
    if (cols - first >= DENSE_COLS) {
        vstore8(vload8(0, b + first), 0, row + first);
        return;
    }
    for (uint c = first; c < cols; c++)
        row[c] = b[c];
}
