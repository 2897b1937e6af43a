/*
 * GEMM backends behind kiln__gemm_run. Today one: CLBlast's SGEMM and strided-batched SGEMM.
 * Sizes are validated here (leading dimensions against the row-major shapes, the last
 * element inside each buffer) so a wrong call is a message naming the caller, not a fault
 * inside the BLAS.
 */
#include <clblast_c.h>

#include "device/gemm.h"

static const char *clblast_status_name(CLBlastStatusCode code)
{
    switch (code) {
    case CLBlastNotImplemented:
        return "CLBlastNotImplemented";
    case CLBlastInvalidMatrixA:
        return "CLBlastInvalidMatrixA";
    case CLBlastInvalidMatrixB:
        return "CLBlastInvalidMatrixB";
    case CLBlastInvalidMatrixC:
        return "CLBlastInvalidMatrixC";
    case CLBlastInsufficientMemoryA:
        return "CLBlastInsufficientMemoryA";
    case CLBlastInsufficientMemoryB:
        return "CLBlastInsufficientMemoryB";
    case CLBlastInsufficientMemoryC:
        return "CLBlastInsufficientMemoryC";
    case CLBlastInvalidLocalMemUsage:
        return "CLBlastInvalidLocalMemUsage";
    case CLBlastNoHalfPrecision:
        return "CLBlastNoHalfPrecision";
    case CLBlastNoDoublePrecision:
        return "CLBlastNoDoublePrecision";
    case CLBlastInvalidBatchCount:
        return "CLBlastInvalidBatchCount";
    case CLBlastUnknownError:
        return "CLBlastUnknownError";
    default:
        return kiln__cl_error_name((cl_int)code);
    }
}

/* Elements one operand spans: its last element's index + 1 over the whole batch. */
static size_t span(size_t rows, size_t cols, size_t ld, size_t offset, size_t stride,
                   size_t batch)
{
    return offset + (batch - 1) * stride + (rows - 1) * ld + cols;
}

static kiln_status check_operand(kiln_device *dev, const char *what, char name, size_t rows,
                                 size_t cols, size_t ld, size_t offset, size_t stride,
                                 size_t batch, const kiln_buffer *buffer)
{
    if (buffer == NULL || ld < cols)
        return kiln__error(dev->ctx, KILN_ERR_INVALID_ARGUMENT, "kiln__gemm_run",
                           "%s: GEMM operand %c (%zu x %zu) has leading dimension %zu", what,
                           name, rows, cols, ld);
    size_t need = span(rows, cols, ld, offset, stride, batch) * sizeof(float);
    if (need > kiln_buffer_get_size(buffer))
        return kiln__error(dev->ctx, KILN_ERR_INVALID_ARGUMENT, "kiln__gemm_run",
                           "%s: GEMM operand %c needs %zu bytes, its buffer has %zu", what, name,
                           need, kiln_buffer_get_size(buffer));
    return KILN_OK;
}

kiln_status kiln__gemm_run(kiln_device *dev, const char *what, const kiln__gemm *g)
{
    size_t batch = g->batch == 0 ? 1 : g->batch;
    if (g->m == 0 || g->n == 0)
        return KILN_OK;
    kiln_status rc = KILN_OK;
    /* Row-major storage: op(A) is (m, k), so A itself is (k, m) when transposed. */
    size_t a_rows = g->transpose_a ? g->k : g->m, a_cols = g->transpose_a ? g->m : g->k;
    size_t b_rows = g->transpose_b ? g->n : g->k, b_cols = g->transpose_b ? g->k : g->n;
    if (g->k > 0) {
        KILN_CHECK(check_operand(dev, what, 'A', a_rows, a_cols, g->lda, g->a_offset,
                                 g->a_stride, batch, g->a));
        KILN_CHECK(check_operand(dev, what, 'B', b_rows, b_cols, g->ldb, g->b_offset,
                                 g->b_stride, batch, g->b));
    }
    KILN_CHECK(check_operand(dev, what, 'C', g->m, g->n, g->ldc, g->c_offset, g->c_stride, batch,
                             g->c));
    CLBlastTranspose ta = g->transpose_a ? CLBlastTransposeYes : CLBlastTransposeNo;
    CLBlastTranspose tb = g->transpose_b ? CLBlastTransposeYes : CLBlastTransposeNo;
    cl_event event = NULL;
    CLBlastStatusCode status;
    if (batch == 1) {
        status = CLBlastSgemm(CLBlastLayoutRowMajor, ta, tb, g->m, g->n, g->k, g->alpha,
                              g->a->mem, g->a_offset, g->lda, g->b->mem, g->b_offset, g->ldb,
                              g->beta, g->c->mem, g->c_offset, g->ldc, &dev->queue, &event);
    } else {
        status = CLBlastSgemmStridedBatched(
            CLBlastLayoutRowMajor, ta, tb, g->m, g->n, g->k, g->alpha, g->a->mem, g->a_offset,
            g->lda, g->a_stride, g->b->mem, g->b_offset, g->ldb, g->b_stride, g->beta, g->c->mem,
            g->c_offset, g->ldc, g->c_stride, batch, &dev->queue, &event);
    }
    if (event != NULL)
        clReleaseEvent(event);
    if (status != CLBlastSuccess)
        KILN_FAIL(dev->ctx, KILN_ERR_OPENCL,
                  "%s: CLBlast SGEMM%s (m %zu, n %zu, k %zu, batch %zu, trans %c%c) on device "
                  "'%s' failed with %s",
                  what, batch > 1 ? " strided-batched" : "", g->m, g->n, g->k, batch,
                  g->transpose_a ? 'T' : 'N', g->transpose_b ? 'T' : 'N', dev->info.name,
                  clblast_status_name(status));
cleanup:
    return rc;
}
