/*
 * Matrix products: matmul (2-D, or batched with an equal or a shared second operand, with
 * optional transposes of the last two axes; PyTorch torch.matmul / torch.bmm semantics) and
 * dense (Keras Dense: y = x w + b). Forward and backward are GEMMs through kiln__gemm_run,
 * the only GEMM entry point; this file owns the shapes, strides and transposes fed to it.
 * The one kernel of its own (cl/matmul.cl) seeds dense's output with the bias.
 *
 * Legend: B batch, M and N the output's rows and columns, K the summed (inner) size;
 * op(x) is x or its transpose, as the params say. Strides count elements.
 */
#include <stdio.h>

#include "device/gemm.h"
#include "ops/op.h"

/* One product C = op(A) op(B), batched, as the GEMM sees it. A is (B, M, K), or (B, K, M)
 * when transposed; B is (B, K, N), or (B, N, K) when transposed, or 2-D and shared across
 * the batch; C is (B, M, N). A batch of 1 is an ordinary 2-D product. */
typedef struct product {
    bool ta, tb;
    bool b_shared;
    size_t batch, m, n, k;
} product;

/* Row lengths of A and B as stored (their leading dimensions). */
static size_t lda_of(const product *p)
{
    return p->ta ? p->m : p->k;
}

static size_t ldb_of(const product *p)
{
    return p->tb ? p->k : p->n;
}

/* Batch stride of B: 0 when one B serves every batch entry. */
static size_t b_stride_of(const product *p)
{
    return p->b_shared ? 0 : p->k * p->n;
}

/* The caller named in GEMM error messages: "op 'matmul' gradient of input 1". */
static const char *gemm_what(char *buf, size_t size, const kiln_op *op, const char *part)
{
    snprintf(buf, size, "op '%s' %s", op->name, part);
    return buf;
}

/* C = op(A) op(B) + beta C over the batch (beta 1 adds onto C, e.g. dense's bias). */
static kiln_status product_forward(kiln_device *dev, const kiln_op *op, const product *p,
                                   const kiln_buffer *a, const kiln_buffer *b, const kiln_buffer *c,
                                   float beta)
{
    char what[96];
    kiln__gemm g = {.transpose_a = p->ta,
                    .transpose_b = p->tb,
                    .m = p->m,
                    .n = p->n,
                    .k = p->k,
                    .alpha = 1.0f,
                    .beta = beta,
                    .a = a,
                    .lda = lda_of(p),
                    .a_stride = p->m * p->k,
                    .b = b,
                    .ldb = ldb_of(p),
                    .b_stride = b_stride_of(p),
                    .c = c,
                    .ldc = p->n,
                    .c_stride = p->m * p->n,
                    .batch = p->batch};
    return kiln__gemm_run(dev, gemm_what(what, sizeof what, op, "forward"), &g);
}

/* The GEMM's beta for a gradient: 0 sets a fresh one (C is then never read), 1 adds. */
static float grad_beta(bool fresh)
{
    return fresh ? 0.0f : 1.0f;
}

/*
 * gA += d op(A) stored as A is (gA = ... when fresh): d op(A) (M, K) = G op(B)^T. Untransposed
 * A takes that directly; a transposed A (K, M) takes its transpose, op(B) G^T. Either way one
 * strided-batched GEMM, with B's stride 0 when B is shared.
 */
static kiln_status grad_a(kiln_device *dev, const kiln_op *op, const product *p,
                          const kiln_buffer *b, const kiln_buffer *g, const kiln_buffer *ga,
                          bool fresh)
{
    char what[96];
    kiln__gemm t = {.alpha = 1.0f,
                    .beta = grad_beta(fresh),
                    .c = ga,
                    .ldc = lda_of(p),
                    .c_stride = p->m * p->k,
                    .batch = p->batch};
    if (!p->ta) { /* (M, K) = G (M, N) x op(B)^T (N, K) */
        t.m = p->m, t.n = p->k, t.k = p->n;
        t.a = g, t.lda = p->n, t.a_stride = p->m * p->n, t.transpose_a = false;
        t.b = b, t.ldb = ldb_of(p), t.b_stride = b_stride_of(p), t.transpose_b = !p->tb;
    } else { /* (K, M) = op(B) (K, N) x G^T (N, M) */
        t.m = p->k, t.n = p->m, t.k = p->n;
        t.a = b, t.lda = ldb_of(p), t.a_stride = b_stride_of(p), t.transpose_a = p->tb;
        t.b = g, t.ldb = p->n, t.b_stride = p->m * p->n, t.transpose_b = true;
    }
    return kiln__gemm_run(dev, gemm_what(what, sizeof what, op, "gradient of input 0"), &t);
}

/*
 * gB += d op(B) stored as B is (gB = ... when fresh): d op(B) (K, N) = op(A)^T G, or its
 * transpose G^T op(A) (N, K) when B is transposed. The product sums over M; `rows` is how many
 * rows of A and G it sums over and `batch`, `offset_a`, `offset_g` select which (see grad_b).
 */
static kiln_status grad_b_part(kiln_device *dev, const char *what, const product *p,
                               const kiln_buffer *a, const kiln_buffer *g, const kiln_buffer *gb,
                               size_t rows, size_t batch, size_t offset_a, size_t offset_g,
                               bool fresh)
{
    kiln__gemm t = {.alpha = 1.0f,
                    .beta = grad_beta(fresh),
                    .k = rows,
                    .c = gb,
                    .ldc = ldb_of(p),
                    .c_stride = p->k * p->n,
                    .batch = batch};
    if (!p->tb) { /* (K, N) = op(A)^T (K, rows) x G (rows, N) */
        t.m = p->k, t.n = p->n;
        t.a = a, t.a_offset = offset_a, t.lda = lda_of(p), t.a_stride = p->m * p->k;
        t.b = g, t.b_offset = offset_g, t.ldb = p->n, t.b_stride = p->m * p->n;
        t.transpose_a = !p->ta, t.transpose_b = false;
    } else { /* (N, K) = G^T (N, rows) x op(A) (rows, K) */
        t.m = p->n, t.n = p->k;
        t.a = g, t.a_offset = offset_g, t.lda = p->n, t.a_stride = p->m * p->n;
        t.b = a, t.b_offset = offset_a, t.ldb = lda_of(p), t.b_stride = p->m * p->k;
        t.transpose_a = true, t.transpose_b = p->ta;
    }
    return kiln__gemm_run(dev, what, &t);
}

/*
 * With B per batch entry, gB is one strided-batched GEMM. A shared B sums the per-entry
 * products over the batch, sum_i op(A_i)^T G_i. When A is untransposed, A (B, M, K) and
 * G (B, M, N) are contiguous, so they read as (B*M, K) and (B*M, N) matrices and the sum is
 * one GEMM over B*M rows: the batch sum happens inside the GEMM's own accumulation. A
 * transposed A (B, K, M) has no such flat view (its (K, B*M) matrix is not strided), so
 * each entry's product is added onto gB in turn (beta = 1; the first sets a fresh gB): B small
 * GEMMs, a sum of B terms per element, each itself a full-precision GEMM result.
 */
static kiln_status grad_b(kiln_device *dev, const kiln_op *op, const product *p,
                          const kiln_buffer *a, const kiln_buffer *g, const kiln_buffer *gb,
                          bool fresh)
{
    char what[96];
    gemm_what(what, sizeof what, op, "gradient of input 1");
    if (!p->b_shared)
        return grad_b_part(dev, what, p, a, g, gb, p->m, p->batch, 0, 0, fresh);
    if (!p->ta)
        return grad_b_part(dev, what, p, a, g, gb, p->batch * p->m, 1, 0, 0, fresh);
    kiln_status rc = KILN_OK;
    for (size_t i = 0; rc == KILN_OK && i < p->batch; i++)
        rc = grad_b_part(dev, what, p, a, g, gb, p->m, 1, i * p->m * p->k, i * p->m * p->n,
                         fresh && i == 0);
    return rc;
}

/* Accumulates (or sets, when fresh) the gradients of inputs 0 (A) and 1 (B) that are wanted. */
static kiln_status product_backward(kiln_device *dev, const kiln_op *op, const product *p,
                                    const kiln_op_args *args)
{
    const kiln_buffer *a = kiln__tensor_buffer(args->inputs[0]);
    const kiln_buffer *b = kiln__tensor_buffer(args->inputs[1]);
    const kiln_buffer *g = kiln__tensor_buffer(args->grad_output);
    kiln_status rc = KILN_OK;
    if (args->grad_inputs == NULL)
        return KILN_OK;
    if (args->grad_inputs[0] != NULL)
        rc = grad_a(dev, op, p, b, g, kiln__tensor_buffer(args->grad_inputs[0]),
                    kiln__grad_fresh(args, 0));
    if (rc == KILN_OK && args->grad_inputs[1] != NULL)
        rc = grad_b(dev, op, p, a, g, kiln__tensor_buffer(args->grad_inputs[1]),
                    kiln__grad_fresh(args, 1));
    return rc;
}

/* ---- matmul ---- */

/* The product of shapes a and b (already checked by matmul_infer). */
static product matmul_product(const kiln_matmul_params *prm, const kiln_shape *a,
                              const kiln_shape *b)
{
    int ra = a->ndim - 2, rb = b->ndim - 2; /* the row axis of each */
    product p = {.ta = prm->transpose_a, .tb = prm->transpose_b};
    p.batch = a->ndim == 3 ? (size_t)a->dim[0] : 1;
    p.b_shared = a->ndim == 3 && b->ndim == 2;
    p.m = (size_t)a->dim[p.ta ? ra + 1 : ra];
    p.k = (size_t)a->dim[p.ta ? ra : ra + 1];
    p.n = (size_t)b->dim[p.tb ? rb : rb + 1];
    return p;
}

static kiln_status matmul_infer(kiln_context *ctx, const kiln_op *op, const void *params,
                                const kiln_shape *in, int n_in, kiln_shape *out, kiln_shape *saved)
{
    (void)saved;
    const kiln_matmul_params *prm = params;
    const kiln_shape *a = &in[0], *b = &in[1];
    if (a->ndim < 2 || a->ndim > 3 || b->ndim < 2 || b->ndim > 3)
        return kiln__shape_error(ctx, op, in, n_in,
                                 "a and b must be matrices (M, K) or batches of them (B, M, K); "
                                 "a is %d-D and b is %d-D",
                                 a->ndim, b->ndim);
    if (a->ndim == 2 && b->ndim == 3)
        return kiln__shape_error(ctx, op, in, n_in,
                                 "b is batched but a is not; a shared operand must be b, with a "
                                 "batched (B, M, K)");
    if (a->ndim == 3 && b->ndim == 3 && a->dim[0] != b->dim[0])
        return kiln__shape_error(ctx, op, in, n_in,
                                 "batch sizes differ: a has %lld, b has %lld (they must be equal, "
                                 "or b 2-D to share it)",
                                 (long long)a->dim[0], (long long)b->dim[0]);
    int ra = a->ndim - 2, rb = b->ndim - 2;
    long long k_a = a->dim[prm->transpose_a ? ra : ra + 1];
    long long k_b = b->dim[prm->transpose_b ? rb + 1 : rb];
    if (k_a != k_b)
        return kiln__shape_error(ctx, op, in, n_in,
                                 "inner dimensions differ: op(a) has K = %lld columns%s, op(b) "
                                 "has K = %lld rows%s",
                                 k_a, prm->transpose_a ? " (a transposed)" : "", k_b,
                                 prm->transpose_b ? " (b transposed)" : "");
    product p = matmul_product(prm, a, b);
    out->ndim = a->ndim;
    if (a->ndim == 3)
        out->dim[0] = (int64_t)p.batch;
    out->dim[out->ndim - 2] = (int64_t)p.m;
    out->dim[out->ndim - 1] = (int64_t)p.n;
    return KILN_OK;
}

static kiln_status matmul_forward(kiln_device *dev, const kiln_op *op, const kiln_op_args *args)
{
    product p = matmul_product(args->params, &args->inputs[0]->shape, &args->inputs[1]->shape);
    return product_forward(dev, op, &p, kiln__tensor_buffer(args->inputs[0]),
                           kiln__tensor_buffer(args->inputs[1]), kiln__tensor_buffer(args->output),
                           0.0f);
}

static kiln_status matmul_backward(kiln_device *dev, const kiln_op *op, const kiln_op_args *args)
{
    product p = matmul_product(args->params, &args->inputs[0]->shape, &args->inputs[1]->shape);
    return product_backward(dev, op, &p, args);
}

const kiln_op kiln__op_matmul = {
    .name = "matmul",
    .program = "matmul",
    .n_inputs = 2,
    .params_size = sizeof(kiln_matmul_params),
    .infer = matmul_infer,
    .forward = matmul_forward,
    .backward = matmul_backward,
    .writes_fresh_grads = 3u,
};

/* ---- dense ---- */

/* x (N, IN) w (IN, OUT) as a product: M = N, K = IN. */
static product dense_product(const kiln_shape *x, const kiln_shape *w)
{
    product p = {.batch = 1};
    p.m = (size_t)x->dim[0];
    p.k = (size_t)x->dim[1];
    p.n = (size_t)w->dim[1];
    return p;
}

static kiln_status dense_infer(kiln_context *ctx, const kiln_op *op, const void *params,
                               const kiln_shape *in, int n_in, kiln_shape *out, kiln_shape *saved)
{
    (void)saved;
    const kiln_dense_params *prm = params;
    int want = prm->has_bias ? 3 : 2;
    if (n_in != want)
        return kiln__shape_error(
            ctx, op, in, n_in, "has_bias is %s, so it takes %d inputs (x, w%s), got %d",
            prm->has_bias ? "true" : "false", want, prm->has_bias ? ", b" : "", n_in);
    const kiln_shape *x = &in[0], *w = &in[1];
    if (x->ndim != 2 || w->ndim != 2)
        return kiln__shape_error(ctx, op, in, n_in,
                                 "x must be 2-D (N, IN) and w 2-D (IN, OUT); x is %d-D and w "
                                 "is %d-D (flatten x first)",
                                 x->ndim, w->ndim);
    if (w->dim[0] != x->dim[1])
        return kiln__shape_error(ctx, op, in, n_in,
                                 "w must have IN = %lld rows, the size of x's last axis, but has "
                                 "%lld (Keras layout (IN, OUT))",
                                 (long long)x->dim[1], (long long)w->dim[0]);
    if (prm->has_bias && (in[2].ndim != 1 || in[2].dim[0] != w->dim[1]))
        return kiln__shape_error(ctx, op, in, n_in, "the bias must have shape (%lld,), OUT",
                                 (long long)w->dim[1]);
    out->ndim = 2;
    out->dim[0] = x->dim[0];
    out->dim[1] = w->dim[1];
    return KILN_OK;
}

/* With a bias, y is first set to b on every row and the GEMM adds x w onto it (beta 1). */
static kiln_status dense_forward(kiln_device *dev, const kiln_op *op, const kiln_op_args *args)
{
    const kiln_dense_params *prm = args->params;
    product p = dense_product(&args->inputs[0]->shape, &args->inputs[1]->shape);
    if (prm->has_bias) {
        enum { DENSE_COLS = 8 }; /* columns per work-item (cl/matmul.cl) */
        kiln__arg bias_args[] = {KILN__ARG_T(args->inputs[2]), KILN__ARG_T(args->output),
                                 KILN__ARG_UINT(p.m), KILN__ARG_UINT(p.n)};
        size_t global[2] = {(p.n + DENSE_COLS - 1) / DENSE_COLS, p.m};
        kiln_status rc = kiln__launch(dev, "matmul", "dense_fwd", bias_args, 4, 2, global, NULL);
        if (rc != KILN_OK)
            return rc;
    }
    return product_forward(dev, op, &p, kiln__tensor_buffer(args->inputs[0]),
                           kiln__tensor_buffer(args->inputs[1]), kiln__tensor_buffer(args->output),
                           prm->has_bias ? 1.0f : 0.0f);
}

/* gx += g w^T and gw += x^T g as a product's gradients; gb += g summed over N (each set
 * instead when fresh). */
static kiln_status dense_backward(kiln_device *dev, const kiln_op *op, const kiln_op_args *args)
{
    const kiln_dense_params *prm = args->params;
    product p = dense_product(&args->inputs[0]->shape, &args->inputs[1]->shape);
    kiln_status rc = product_backward(dev, op, &p, args);
    if (rc == KILN_OK && prm->has_bias && args->grad_inputs != NULL && args->grad_inputs[2] != NULL)
        rc = kiln__reduce_to(dev, op, kiln__tensor_buffer(args->grad_output),
                             &args->grad_output->shape, kiln__tensor_buffer(args->grad_inputs[2]),
                             &args->inputs[2]->shape, KILN__REDUCE_SUM, 1.0f,
                             !kiln__grad_fresh(args, 2));
    return rc;
}

const kiln_op kiln__op_dense = {
    .name = "dense",
    .program = "matmul",
    .n_inputs = 3,
    .variadic = true, /* the bias is optional: 2 or 3 inputs, as has_bias says */
    .params_size = sizeof(kiln_dense_params),
    .infer = dense_infer,
    .forward = dense_forward,
    .backward = dense_backward,
    .writes_fresh_grads = 7u,
};
