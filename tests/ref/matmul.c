/*
 * References and check cases for the matmul family: matmul (torch.matmul / torch.bmm, with
 * transposes of the last two axes as in torch.Tensor.mT, and a 2-D b broadcast over a's
 * batch as torch.matmul broadcasts it) and dense (Keras Dense: y = x w + b, w (IN, OUT)).
 * Gradients of y = op(a) op(b): d op(a) = g op(b)^T and d op(b) = op(a)^T g, summed over
 * the batch for a shared b; dense's bias gradient is g summed over N.
 *
 * Legend: B batch, M and N the output's rows and columns, K the summed size.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref/ref.h"

/* One product y (B, M, N) = op(a) (B, M, K) x op(b) (B, K, N), b possibly shared. */
typedef struct ref_product {
    bool ta, tb, b_shared;
    int64_t batch, m, n, k;
} ref_product;

static ref_product matmul_dims(const kiln_ref_io *io)
{
    const kiln_matmul_params *p = io->params;
    const kiln_shape *a = &io->in_shapes[0], *b = &io->in_shapes[1];
    int ra = a->ndim - 2, rb = b->ndim - 2;
    ref_product d = {.ta = p->transpose_a, .tb = p->transpose_b};
    d.batch = a->ndim == 3 ? a->dim[0] : 1;
    d.b_shared = a->ndim == 3 && b->ndim == 2;
    d.m = a->dim[d.ta ? ra + 1 : ra];
    d.k = a->dim[d.ta ? ra : ra + 1];
    d.n = b->dim[d.tb ? rb : rb + 1];
    return d;
}

/* x (N, IN), w (IN, OUT): M = N, K = IN, N = OUT. */
static ref_product dense_dims(const kiln_ref_io *io)
{
    ref_product d = {.batch = 1};
    d.m = io->in_shapes[0].dim[0];
    d.k = io->in_shapes[0].dim[1];
    d.n = io->in_shapes[1].dim[1];
    return d;
}

/* Element strides of op(a)[i][p] and op(b)[p][j] in the stored (possibly transposed)
 * matrices, and batch entry q's offsets. */
typedef struct ref_index {
    int64_t a_row, a_col, b_row, b_col;
} ref_index;

static ref_index index_of(const ref_product *d)
{
    ref_index x;
    x.a_row = d->ta ? 1 : d->k; /* a stored (M, K), or (K, M) when transposed */
    x.a_col = d->ta ? d->m : 1;
    x.b_row = d->tb ? 1 : d->n; /* b stored (K, N), or (N, K) when transposed */
    x.b_col = d->tb ? d->k : 1;
    return x;
}

static int64_t b_offset(const ref_product *d, int64_t q)
{
    return d->b_shared ? 0 : q * d->k * d->n;
}

/* y[q][i][j] = sum_p op(a_q)[i][p] op(b_q)[p][j]. */
static void product_fwd(const ref_product *d, const double *a, const double *b, double *y)
{
    ref_index x = index_of(d);
    memset(y, 0, (size_t)(d->batch * d->m * d->n) * sizeof(double));
    for (int64_t q = 0; q < d->batch; q++) {
        const double *aq = a + q * d->m * d->k, *bq = b + b_offset(d, q);
        double *yq = y + q * d->m * d->n;
        for (int64_t i = 0; i < d->m; i++) {
            for (int64_t p = 0; p < d->k; p++) {
                double av = aq[i * x.a_row + p * x.a_col];
                for (int64_t j = 0; j < d->n; j++)
                    yq[i * d->n + j] += av * bq[p * x.b_row + j * x.b_col];
            }
        }
    }
}

/* ga at op(a)[i][p] = sum_j g[i][j] op(b)[p][j]; gb at op(b)[p][j] = sum_i op(a)[i][p]
 * g[i][j], also summed over q when b is shared. Either may be NULL. */
static void product_bwd(const ref_product *d, const double *a, const double *b, const double *g,
                        double *ga, double *gb)
{
    ref_index x = index_of(d);
    if (ga != NULL)
        memset(ga, 0, (size_t)(d->batch * d->m * d->k) * sizeof(double));
    if (gb != NULL)
        memset(gb, 0, (size_t)((d->b_shared ? 1 : d->batch) * d->k * d->n) * sizeof(double));
    for (int64_t q = 0; q < d->batch; q++) {
        const double *aq = a + q * d->m * d->k, *bq = b + b_offset(d, q);
        const double *gq = g + q * d->m * d->n;
        for (int64_t i = 0; i < d->m; i++) {
            for (int64_t p = 0; p < d->k; p++) {
                int64_t ia = q * d->m * d->k + i * x.a_row + p * x.a_col;
                double sum = 0;
                for (int64_t j = 0; j < d->n; j++) {
                    int64_t ib = p * x.b_row + j * x.b_col;
                    sum += gq[i * d->n + j] * bq[ib];
                    if (gb != NULL)
                        gb[b_offset(d, q) + ib] += aq[i * x.a_row + p * x.a_col] * gq[i * d->n + j];
                }
                if (ga != NULL)
                    ga[ia] = sum;
            }
        }
    }
}

static void matmul_fwd(const kiln_ref_io *io, double *y)
{
    ref_product d = matmul_dims(io);
    product_fwd(&d, io->in[0], io->in[1], y);
}

static void matmul_bwd(const kiln_ref_io *io, const double *y, const double *g, double *const *gin)
{
    (void)y;
    ref_product d = matmul_dims(io);
    product_bwd(&d, io->in[0], io->in[1], g, gin[0], gin[1]);
}

/* y (N, OUT) = x (N, IN) w (IN, OUT) [+ b (OUT,) on every row]. */
static void dense_fwd(const kiln_ref_io *io, double *y)
{
    ref_product d = dense_dims(io);
    product_fwd(&d, io->in[0], io->in[1], y);
    for (int64_t i = 0; io->n_inputs == 3 && i < d.m; i++) {
        for (int64_t j = 0; j < d.n; j++)
            y[i * d.n + j] += io->in[2][j];
    }
}

/* gx = g w^T, gw = x^T g, gb (OUT,) = sum over N of g. */
static void dense_bwd(const kiln_ref_io *io, const double *y, const double *g, double *const *gin)
{
    (void)y;
    ref_product d = dense_dims(io);
    product_bwd(&d, io->in[0], io->in[1], g, gin[0], gin[1]);
    if (io->n_inputs < 3 || gin[2] == NULL)
        return;
    memset(gin[2], 0, (size_t)d.n * sizeof(double));
    for (int64_t i = 0; i < d.m; i++) {
        for (int64_t j = 0; j < d.n; j++)
            gin[2][j] += g[i * d.n + j];
    }
}

static const kiln_matmul_params NN = {false, false};
static const kiln_matmul_params NT = {false, true};
static const kiln_matmul_params TN = {true, false};
static const kiln_matmul_params TT = {true, true};
static const kiln_dense_params BIAS = {true};
static const kiln_dense_params NO_BIAS = {false};

/*
 * Tolerances. An output element is a float GEMM sum of L products of N(0, 1) inputs, and
 * each work-item adds its products into one running float, so the rounding error is a
 * random walk over partial sums that grow like sqrt(l): its spread is about
 * u L / sqrt(6) (u = 2^-24), proportional to L, not sqrt(L). Measured on PoCL the worst
 * element per case lay between 1.0e-7 L and 2.4e-7 L for L from 13 to 784 (sqrt(L) * 1e-6
 * would fail at L = 784, where the error reached 1.3e-4), so atol is PER_TERM * L, about
 * twice the worst seen. Forward sums over K; the gradient of a over N, of b over M (B M for
 * a shared b), so grad_atol uses the longest of those. rtol 1e-5 absorbs the prior the
 * harness adds gradients onto and the bias, which reduce_to sums with compensation.
 */
#define PER_TERM 5e-7

#define MATMUL_CASE(prm, ra, sa, rb, sb, fwd_terms, grad_terms)                                    \
    {                                                                                              \
        .op = "matmul", .params = &prm, .n_inputs = 2, .inputs = {S##ra sa, S##rb sb},             \
        .gen = {G_NORMAL, G_NORMAL}, .forward = matmul_fwd, .backward = matmul_bwd,                \
        .atol = PER_TERM * (fwd_terms), .rtol = 1e-5, .grad_atol = PER_TERM * (grad_terms),        \
        .grad_rtol = 1e-5, .seed = __LINE__, .label = #prm " " #sa " " #sb                         \
    }

/* The four transpose combinations of one product: a stored (M, K) or (K, M), b (K, N) or
 * (N, K), each with the same leading batch axis or none (ra, rb: their ranks). */
#define MATMUL_ALL_T(ra, rb, A_MK, A_KM, B_KN, B_NK, fwd_terms, grad_terms)                        \
    MATMUL_CASE(NN, ra, A_MK, rb, B_KN, fwd_terms, grad_terms),                                    \
        MATMUL_CASE(NT, ra, A_MK, rb, B_NK, fwd_terms, grad_terms),                                \
        MATMUL_CASE(TN, ra, A_KM, rb, B_KN, fwd_terms, grad_terms),                                \
        MATMUL_CASE(TT, ra, A_KM, rb, B_NK, fwd_terms, grad_terms)

#define DENSE_CASE(prm, n_in, sx, sw, sb, fwd_terms, grad_terms)                                   \
    {                                                                                              \
        .op = "dense", .params = &prm, .n_inputs = n_in, .inputs = {sx, sw, sb},                   \
        .gen = {G_NORMAL, G_NORMAL, G_NORMAL}, .forward = dense_fwd, .backward = dense_bwd,        \
        .atol = PER_TERM * (fwd_terms), .rtol = 1e-5, .grad_atol = PER_TERM * (grad_terms),        \
        .grad_rtol = 1e-5, .seed = __LINE__                                                        \
    }

static const kiln_check_case CASES[] = {
    /* Odd sizes M 7, K 13, N 5, every transpose combination: 2-D, batched (B 3), and a
     * shared b, whose gradient sums over the batch (B M = 21 terms). */
    MATMUL_ALL_T(2, 2, (7, 13), (13, 7), (13, 5), (5, 13), 13, 7),
    MATMUL_ALL_T(3, 3, (3, 7, 13), (3, 13, 7), (3, 13, 5), (3, 5, 13), 13, 7),
    MATMUL_ALL_T(3, 2, (3, 7, 13), (3, 13, 7), (13, 5), (5, 13), 13, 21),
    /* Size 1 in each place: scalar, row vector, column vector, outer product (K 1), B 1. */
    MATMUL_ALL_T(2, 2, (1, 1), (1, 1), (1, 1), (1, 1), 1, 1),
    MATMUL_CASE(NN, 2, (1, 13), 2, (13, 5), 13, 5),
    MATMUL_CASE(TT, 2, (13, 7), 2, (1, 13), 13, 7),
    MATMUL_CASE(NT, 2, (7, 1), 2, (5, 1), 1, 7),
    MATMUL_CASE(TN, 3, (1, 13, 7), 3, (1, 13, 5), 13, 7),
    MATMUL_CASE(TN, 3, (1, 1, 1), 2, (1, 1), 1, 1),
    /* Larger sizes, none a multiple of 64 or of a GEMM tile: batched (B 4) and shared
     * (B M = 268 terms). */
    MATMUL_ALL_T(3, 3, (4, 67, 130), (4, 130, 67), (4, 130, 33), (4, 33, 130), 130, 67),
    MATMUL_ALL_T(3, 2, (4, 67, 130), (4, 130, 67), (130, 33), (33, 130), 130, 268),
    /* Forward only (its finite-difference sample would cost 10^10 operations): M K N past
     * 512^3, where CLBlast's default database switches from its direct kernel to the
     * indirect one with padding and transposing helpers. */
    {.op = "matmul",
     .params = &TT,
     .n_inputs = 2,
     .inputs = {S2(521, 515), S2(513, 521)},
     .gen = {G_NORMAL, G_NORMAL},
     .forward = matmul_fwd,
     .atol = PER_TERM * 521,
     .rtol = 1e-5,
     .seed = __LINE__,
     .label = "TT (521, 515) (513, 521)"},
    /* dense: size 1, odd, with and without bias, and a batch-128 MLP (784 -> 256 -> 10). */
    DENSE_CASE(BIAS, 3, S2(1, 1), S2(1, 1), S1(1), 1, 1),
    DENSE_CASE(BIAS, 3, S2(7, 13), S2(13, 5), S1(5), 13, 7),
    DENSE_CASE(NO_BIAS, 2, S2(7, 13), S2(13, 5), S0(), 13, 7),
    DENSE_CASE(BIAS, 3, S2(128, 784), S2(784, 256), S1(256), 784, 256),
    DENSE_CASE(BIAS, 3, S2(128, 256), S2(256, 10), S1(10), 256, 128),
};

/* Products whose output buffer starts out holding NaN, as a reused buffer may: forward must
 * overwrite it (a GEMM with beta 0 that read C would give 0 * NaN = NaN). Small and past
 * CLBlast's indirect threshold, a shared batched b, and dense without a bias. */
static const kiln_check_case STALE[] = {
    MATMUL_CASE(NN, 2, (7, 13), 2, (13, 5), 13, 7),
    MATMUL_CASE(TT, 3, (4, 130, 67), 2, (33, 130), 130, 268),
    MATMUL_CASE(NT, 2, (515, 521), 2, (513, 521), 521, 0),
    DENSE_CASE(NO_BIAS, 2, S2(128, 784), S2(784, 256), S0(), 784, 256),
};

/* Runs one STALE case's forward onto a NaN-filled output and reports a row. */
static void check_stale_output(kiln_check_run *run, const kiln_check_case *c)
{
    const kiln_op *op = kiln_op_find(c->op);
    kiln_context *ctx = kiln_device_get_context(run->dev);
    char label[96];
    if (c->label != NULL)
        snprintf(label, sizeof label, "%s", c->label);
    else
        kiln_check_shapes_label(c->inputs, c->n_inputs, label, sizeof label);
    kiln_shape out;
    if (op == NULL || kiln_op_infer(ctx, op, c->params, c->inputs, 2, &out, NULL) != KILN_OK) {
        kiln_check_fail(run, c->op, label, "stale out", kiln_context_last_error(ctx));
        return;
    }
    size_t n_out = (size_t)kiln_shape_count(&out);
    size_t n_in[2] = {(size_t)kiln_shape_count(&c->inputs[0]),
                      (size_t)kiln_shape_count(&c->inputs[1])};
    double *in[2] = {malloc(n_in[0] * sizeof(double)), malloc(n_in[1] * sizeof(double))};
    double *ref = malloc(n_out * sizeof *ref), *nan_fill = malloc(n_out * sizeof *nan_fill);
    float *got = malloc(n_out * sizeof *got);
    kiln_tensor *inputs[2] = {NULL, NULL}, *output = NULL;
    if (in[0] == NULL || in[1] == NULL || ref == NULL || nan_fill == NULL || got == NULL) {
        kiln_check_fail(run, c->op, label, "stale out", "out of memory");
        goto cleanup;
    }
    /* Failures of kiln_check_tensor are reported by it. */
    for (int i = 0; i < 2; i++) {
        kiln_check_generate(&c->gen[i], c->seed * 31 + (uint64_t)i, in[i], n_in[i]);
        inputs[i] = kiln_check_tensor(run, c->op, &c->inputs[i], KILN_F32, in[i], "input");
        if (inputs[i] == NULL)
            goto cleanup;
    }
    for (size_t e = 0; e < n_out; e++)
        nan_fill[e] = NAN;
    output = kiln_check_tensor(run, c->op, &out, KILN_F32, nan_fill, "output");
    if (output == NULL)
        goto cleanup;
    kiln_ref_io io = {.params = c->params,
                      .n_inputs = 2,
                      .in_shapes = c->inputs,
                      .in = (const double *const *)in,
                      .out_shape = out};
    c->forward(&io, ref);
    kiln_op_args args = {.params = c->params, .inputs = inputs, .n_inputs = 2, .output = output};
    double t0 = kiln_check_now_ms();
    kiln_status rc = kiln_op_forward(run->dev, op, &args);
    if (rc == KILN_OK)
        rc = kiln_tensor_download(output, got, (int64_t)n_out);
    if (rc != KILN_OK)
        kiln_check_fail(run, c->op, label, "stale out", kiln_context_last_error(ctx));
    else
        kiln_check_compare(run, c->op, label, "stale out", got, ref, n_out, c->atol, c->rtol,
                           kiln_check_now_ms() - t0);
cleanup:
    for (int i = 0; i < 2; i++) {
        free(in[i]);
        kiln_tensor_destroy(inputs[i]);
    }
    kiln_tensor_destroy(output);
    free(ref);
    free(nan_fill);
    free(got);
}

static void custom_checks(kiln_check_run *run)
{
    for (size_t i = 0; i < sizeof STALE / sizeof STALE[0]; i++) {
        if (run->only_op == NULL || strcmp(run->only_op, STALE[i].op) == 0)
            check_stale_output(run, &STALE[i]);
    }
}

const kiln_check_suite kiln_check_suite_matmul = {
    .name = "matmul",
    .cases = CASES,
    .n_cases = sizeof CASES / sizeof CASES[0],
    .custom = custom_checks,
};
