/*
 * The last step of a GEMM split along k (src/device/gemm_split.c): C = beta C + the sum of the
 * partial products of the slices, in slice order. slices: (n_slices, m, n) row-major; C: m rows
 * of n at c_offset, ldc apart. beta 0 sets C without reading it (NaN there does not leak). One
 * work-item per element of C, global size (n, m).
 */
__kernel void gemm_sum_slices(__global const float *slices, const uint n_slices, const uint m,
                              const uint n, __global float *c, const uint c_offset, const uint ldc,
                              const float beta)
{
    const uint j = (uint)get_global_id(0), i = (uint)get_global_id(1);
    if (i >= m || j >= n)
        return;
    float sum = 0;
    for (uint s = 0; s < n_slices; s++)
        sum += slices[(s * m + i) * n + j];
    __global float *out = c + c_offset + i * ldc + j;
    *out = beta == 0 ? sum : beta * *out + sum;
}
