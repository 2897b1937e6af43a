/*
 * The one internal GEMM interface: row-major C = alpha op(A) op(B) + beta C, optionally
 * batched with fixed strides. Ops call only this; which implementation runs (Kiln's own
 * register-tiled kernel on CPU devices, CLBlast elsewhere) is the device layer's choice.
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

/* The implementations behind kiln__gemm_run. */
typedef enum kiln__gemm_backend {
    KILN__GEMM_KILN,    /* cl/gemm.cl, the default on CPU devices */
    KILN__GEMM_CLBLAST, /* CLBlast, the default on every other device */
} kiln__gemm_backend;

/* The backend kiln__gemm_run uses on `dev`: the environment variable KILN_GEMM ("kiln" or
 * "clblast", read on every call, for comparisons and tests) or the device's default. Products
 * whose indices overflow 32 bits go to CLBlast whatever the choice, and k = 0 (C = beta C,
 * which CLBlast rejects) to Kiln's kernel. */
kiln__gemm_backend kiln__gemm_get_backend(const kiln_device *dev);

/* Frees the device's GEMM workspace (the packed operands of Kiln's kernel), a scratch buffer
 * kept between calls and grown on demand. It is not counted in kiln_device_get_allocated_bytes,
 * which tracks the caller's buffers. Called by kiln_device_destroy after the queue finished. */
void kiln__gemm_release(kiln_device *dev);

/* "kiln" or "clblast". */
const char *kiln__gemm_backend_name(kiln__gemm_backend backend);

#endif
