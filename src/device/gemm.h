/*
 * The one internal GEMM interface: row-major C = alpha op(A) op(B) + beta C, optionally
 * batched with fixed strides. Ops call only this; which implementation runs (CLBlast today;
 * a tuned kernel of our own can join as another backend) is the device layer's choice.
 */
#ifndef KILN_DEVICE_GEMM_H
#define KILN_DEVICE_GEMM_H

#include <stdbool.h>
#include <stddef.h>

#include "device/device.h"

typedef struct kiln__gemm {
    bool transpose_a, transpose_b;
    size_t m, n, k; /* C is (m, n); op(A) is (m, k); op(B) is (k, n) */
    float alpha, beta;
    const kiln_buffer *a;
    size_t a_offset, lda, a_stride; /* offsets and strides in elements */
    const kiln_buffer *b;
    size_t b_offset, ldb, b_stride;
    const kiln_buffer *c;
    size_t c_offset, ldc, c_stride;
    size_t batch; /* 0 or 1: a single product */
} kiln__gemm;

/* Queues the product. `what` names the caller (op and tensor) in error messages. Returns
 * KILN_ERR_INVALID_ARGUMENT for inconsistent sizes and KILN_ERR_OPENCL when the backend
 * fails. Zero-sized products are no-ops. */
kiln_status kiln__gemm_run(kiln_device *dev, const char *what, const kiln__gemm *g);

#endif
