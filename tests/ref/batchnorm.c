/*
 * Reference and checks for batchnorm, following PyTorch's BatchNorm1d/2d/3d documentation:
 *   y = (x - mean) / sqrt(var + eps) * gamma + beta, per channel over N and the spatial axes;
 * train mode uses the batch mean and biased variance and updates
 *   running_mean = (1 - momentum) running_mean + momentum mean,
 *   running_var  = (1 - momentum) running_var  + momentum var * n / (n - 1);
 * eval and infer modes use the running statistics, which stay as they are.
 * Backward in train mode is the batch-statistics gradient (PyTorch batch_norm_backward), in
 * eval mode the affine one. The reference never reads state the device changed: the harness
 * keeps the inputs on the host and the device updates only its own copies, so the finite
 * differences re-run the reference forward on the same numbers.
 * Custom checks compare the device's running statistics after a train-mode forward with the
 * reference update, and check that eval mode leaves them bit for bit unchanged.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref/ref.h"

/* x (N, C, S): N batch, C channels, S the product of the spatial axes (1 for (N, C)). */
typedef struct dims {
    int64_t n, c, s;
} dims;

static dims dims_of(const kiln_shape *x)
{
    dims d = {x->dim[0], x->dim[1], 1};
    for (int k = 2; k < x->ndim; k++)
        d.s *= x->dim[k];
    return d;
}

static int64_t at(dims d, int64_t n, int64_t c, int64_t s)
{
    return (n * d.c + c) * d.s + s;
}

/* Per channel, the batch mean and biased variance of x (two passes in double). */
static void batch_stats(const kiln_ref_io *io, double *mean, double *var)
{
    dims d = dims_of(&io->in_shapes[0]);
    const double *x = io->in[0];
    double count = (double)(d.n * d.s);
    for (int64_t c = 0; c < d.c; c++) {
        double sum = 0, sq = 0;
        for (int64_t n = 0; n < d.n; n++)
            for (int64_t s = 0; s < d.s; s++)
                sum += x[at(d, n, c, s)];
        mean[c] = sum / count;
        for (int64_t n = 0; n < d.n; n++)
            for (int64_t s = 0; s < d.s; s++)
                sq += (x[at(d, n, c, s)] - mean[c]) * (x[at(d, n, c, s)] - mean[c]);
        var[c] = sq / count;
    }
}

/* The statistics forward normalises with: mean (C,) and invstd = 1 / sqrt(var + eps) (C,). */
static void used_stats(const kiln_ref_io *io, double *mean, double *invstd)
{
    const kiln_batchnorm_params *p = io->params;
    int64_t n_channels = io->in_shapes[0].dim[1];
    if (io->mode == KILN_MODE_TRAIN) {
        batch_stats(io, mean, invstd);
    } else {
        for (int64_t c = 0; c < n_channels; c++) {
            mean[c] = io->in[3][c];
            invstd[c] = io->in[4][c];
        }
    }
    for (int64_t c = 0; c < n_channels; c++)
        invstd[c] = 1.0 / sqrt(invstd[c] + (double)p->eps);
}

/* Inputs: x (N, C, ...), gamma (C,), beta (C,), running_mean (C,), running_var (C,). */
static void bn_fwd(const kiln_ref_io *io, double *y)
{
    dims d = dims_of(&io->in_shapes[0]);
    double *mean = malloc((size_t)d.c * sizeof *mean);
    double *invstd = malloc((size_t)d.c * sizeof *invstd);
    if (mean == NULL || invstd == NULL)
        abort(); /* test code: the reference cannot go on without its arrays */
    used_stats(io, mean, invstd);
    for (int64_t n = 0; n < d.n; n++)
        for (int64_t c = 0; c < d.c; c++)
            for (int64_t s = 0; s < d.s; s++) {
                int64_t i = at(d, n, c, s);
                y[i] = (io->in[0][i] - mean[c]) * invstd[c] * io->in[1][c] + io->in[2][c];
            }
    free(mean);
    free(invstd);
}

/* gin[0] (N, C, ...), gin[1] (C,), gin[2] (C,); xhat = (x - mean) invstd:
 *   dbeta = sum g, dgamma = sum g xhat,
 *   dx = gamma invstd (g - dbeta / count - xhat dgamma / count)  in train mode,
 *   dx = gamma invstd g                                          in eval and infer modes. */
static void bn_bwd(const kiln_ref_io *io, const double *y, const double *g, double *const *gin)
{
    (void)y;
    dims d = dims_of(&io->in_shapes[0]);
    double count = (double)(d.n * d.s);
    double *mean = malloc((size_t)d.c * sizeof *mean);
    double *invstd = malloc((size_t)d.c * sizeof *invstd);
    if (mean == NULL || invstd == NULL)
        abort();
    used_stats(io, mean, invstd);
    for (int64_t c = 0; c < d.c; c++) {
        double sum_g = 0, sum_gxhat = 0;
        for (int64_t n = 0; n < d.n; n++)
            for (int64_t s = 0; s < d.s; s++) {
                int64_t i = at(d, n, c, s);
                sum_g += g[i];
                sum_gxhat += g[i] * (io->in[0][i] - mean[c]) * invstd[c];
            }
        if (gin[1] != NULL)
            gin[1][c] = sum_gxhat;
        if (gin[2] != NULL)
            gin[2][c] = sum_g;
        double k = io->in[1][c] * invstd[c];
        for (int64_t n = 0; gin[0] != NULL && n < d.n; n++)
            for (int64_t s = 0; s < d.s; s++) {
                int64_t i = at(d, n, c, s);
                double xhat = (io->in[0][i] - mean[c]) * invstd[c];
                gin[0][i] = io->mode == KILN_MODE_TRAIN
                                ? k * (g[i] - sum_g / count - xhat * sum_gxhat / count)
                                : k * g[i];
            }
    }
    free(mean);
    free(invstd);
}

static const kiln_batchnorm_params TORCH = {0.1f, 1e-5f}; /* PyTorch's defaults */
static const kiln_batchnorm_params LOOSE = {0.3f, 1e-3f};

/*
 * Inputs: x ~ N(0, 1); gamma of either sign away from 0; beta ~ N(0, 1); running_mean
 * ~ N(0, 1); running_var in [0.5, 2). Forward: the normalised values are O(1..4) and carry
 * the float rounding of the mean, the variance and invstd (a few 1e-7 each), so 1e-5 both
 * ways. Backward: dx is a difference of O(1) terms times gamma invstd; the gamma and beta
 * gradients are sums over up to 130k values, float-rounded at O(1e-7) relative.
 */
#define BN(prm, md, lbl, shape, c, ...)                                                            \
    {                                                                                              \
        .op = "batchnorm", .params = &prm, .n_inputs = 5,                                          \
        .inputs = {shape, S1(c), S1(c), S1(c), S1(c)},                                             \
        .gen = {__VA_ARGS__, G_AWAY(0.5, 1.5), G_NORMAL, G_NORMAL, G_UNIFORM(0.5, 2.0)},           \
        .mode = md, .forward = bn_fwd, .backward = bn_bwd, .atol = 1e-5, .rtol = 1e-5,             \
        .grad_atol = 1e-5, .grad_rtol = 1e-4, .seed = __LINE__, .label = lbl                       \
    }

static const kiln_check_case CASES[] = {
    /* (N, C): BatchNorm1d. */
    BN(TORCH, KILN_MODE_TRAIN, NULL, S2(7, 5), 5, G_NORMAL),
    BN(TORCH, KILN_MODE_TRAIN, NULL, S2(2, 1), 1, G_NORMAL),
    BN(LOOSE, KILN_MODE_TRAIN, NULL, S2(129, 67), 67, G_NORMAL),
    BN(TORCH, KILN_MODE_EVAL, "(7, 5) eval", S2(7, 5), 5, G_NORMAL),
    /* (N, C, L): BatchNorm1d on sequences. */
    BN(TORCH, KILN_MODE_TRAIN, NULL, S3(5, 3, 17), 3, G_NORMAL),
    /* (N, C, H, W): BatchNorm2d, with N = 1, C = 1 and a larger odd case. */
    BN(TORCH, KILN_MODE_TRAIN, NULL, S4(3, 5, 7, 9), 5, G_NORMAL),
    BN(TORCH, KILN_MODE_TRAIN, NULL, S4(1, 3, 5, 5), 3, G_NORMAL),
    BN(LOOSE, KILN_MODE_TRAIN, NULL, S4(2, 1, 17, 13), 1, G_NORMAL),
    BN(TORCH, KILN_MODE_TRAIN, NULL, S4(32, 8, 33, 31), 8, G_NORMAL),
    BN(TORCH, KILN_MODE_EVAL, "(3, 5, 7, 9) eval", S4(3, 5, 7, 9), 5, G_NORMAL),
    BN(LOOSE, KILN_MODE_INFER, "(1, 1, 3, 3) infer", S4(1, 1, 3, 3), 1, G_NORMAL),
    /* (N, C, D, H, W): BatchNorm3d. */
    BN(TORCH, KILN_MODE_TRAIN, NULL, S5(2, 3, 4, 5, 6), 3, G_NORMAL),
    BN(TORCH, KILN_MODE_TRAIN, NULL, S5(1, 2, 3, 3, 3), 2, G_NORMAL),
    BN(LOOSE, KILN_MODE_EVAL, "(3, 4, 3, 5, 7) eval", S5(3, 4, 3, 5, 7), 4, G_NORMAL),
    /* A channel mean far from 0 relative to its spread (x in [20, 21): mean 20.5, std 0.29).
     * x - mean is exact in float there, so the error is the float rounding d ~ 1e-6 of the
     * mean itself: it shifts every xhat by d invstd ~ 4e-6, y by up to 1.5 times that, and the
     * gamma gradient by d invstd sum(g) ~ 2e-4 (sum(g) ~ 40 over 1584 values), hence these
     * tolerances. E[x^2] - E[x]^2 in float would lose ~3e-4 of y to cancellation and fails
     * here (tried). */
    {.op = "batchnorm",
     .params = &TORCH,
     .n_inputs = 5,
     .inputs = {S4(16, 4, 9, 11), S1(4), S1(4), S1(4), S1(4)},
     .gen = {G_UNIFORM(20.0, 21.0), G_AWAY(0.5, 1.5), G_NORMAL, G_NORMAL, G_UNIFORM(0.5, 2.0)},
     .mode = KILN_MODE_TRAIN,
     .forward = bn_fwd,
     .backward = bn_bwd,
     .atol = 2e-5,
     .rtol = 1e-5,
     .grad_atol = 1e-3,
     .grad_rtol = 1e-4,
     .seed = 3,
     .label = "(16, 4, 9, 11) mean 20.5"},
};

/* ---- custom checks: running statistics, and backward with some gradients not wanted ---- */

typedef struct stats_case {
    const kiln_batchnorm_params *params;
    kiln_shape x;
    uint64_t seed;
} stats_case;

static const stats_case STATS_CASES[] = {
    {&TORCH, S2(7, 5), 101},          {&LOOSE, S4(3, 5, 7, 9), 102},
    {&TORCH, S4(1, 3, 5, 5), 103},    {&LOOSE, S5(2, 3, 4, 5, 6), 104},
    {&TORCH, S4(32, 8, 33, 31), 105},
};

/* One forward call's inputs on the host and the device, with its output, saved tensors and
 * workspace. */
typedef struct rig {
    const stats_case *sc;
    kiln_mode mode;
    int64_t c;
    kiln_shape shapes[5];
    double *host[5];
    kiln_tensor *in[5], *out, *saved[2];
    kiln_buffer *ws;
    char label[96];
} rig;

static void rig_release(rig *r)
{
    for (int i = 0; i < 5; i++) {
        free(r->host[i]);
        kiln_tensor_destroy(r->in[i]);
    }
    kiln_tensor_destroy(r->out);
    kiln_tensor_destroy(r->saved[0]);
    kiln_tensor_destroy(r->saved[1]);
    kiln_buffer_destroy(r->ws);
}

/* Generates the inputs as the cases do and runs one forward in `mode`; false after reporting
 * a row (the rig is then partly filled: release it either way). */
static bool rig_forward(kiln_check_run *run, const stats_case *sc, kiln_mode mode, rig *r,
                        const char *what)
{
    const kiln_check_gen gens[5] = {G_NORMAL, G_AWAY(0.5, 1.5), G_NORMAL, G_NORMAL,
                                    G_UNIFORM(0.5, 2.0)};
    const kiln_op *op = kiln_op_find("batchnorm");
    kiln_context *ctx = kiln_device_get_context(run->dev);
    memset(r, 0, sizeof *r);
    r->sc = sc;
    r->mode = mode;
    r->c = sc->x.dim[1];
    r->shapes[0] = sc->x;
    for (int i = 1; i < 5; i++)
        r->shapes[i] = (kiln_shape){1, {r->c}};
    kiln_check_shapes_label(r->shapes, 1, r->label, sizeof r->label);
    if (mode != KILN_MODE_TRAIN)
        strcat(r->label, mode == KILN_MODE_EVAL ? " eval" : " infer");
    for (int i = 0; i < 5; i++) {
        size_t n = (size_t)kiln_shape_count(&r->shapes[i]);
        r->host[i] = malloc(n * sizeof(double));
        if (r->host[i] == NULL) {
            kiln_check_fail(run, "batchnorm", r->label, what, "out of host memory");
            return false;
        }
        kiln_check_generate(&gens[i], sc->seed * 31 + (uint64_t)i, r->host[i], n);
        r->in[i] =
            kiln_check_tensor(run, "batchnorm", &r->shapes[i], KILN_F32, r->host[i], "input");
        if (r->in[i] == NULL)
            return false;
    }
    r->out = kiln_check_tensor(run, "batchnorm", &sc->x, KILN_F32, NULL, "y");
    r->saved[0] = kiln_check_tensor(run, "batchnorm", &r->shapes[1], KILN_F32, NULL, "mean");
    r->saved[1] = kiln_check_tensor(run, "batchnorm", &r->shapes[1], KILN_F32, NULL, "invstd");
    if (r->out == NULL || r->saved[0] == NULL || r->saved[1] == NULL)
        return false;
    kiln_status rc = kiln_buffer_create(
        run->dev, kiln_op_workspace_bytes(op, sc->params, r->shapes, 5), "workspace", &r->ws);
    kiln_op_args args = {.params = sc->params,
                         .mode = mode,
                         .inputs = r->in,
                         .n_inputs = 5,
                         .output = r->out,
                         .saved = r->saved,
                         .workspace = r->ws};
    if (rc == KILN_OK)
        rc = kiln_op_forward(run->dev, op, &args);
    if (rc != KILN_OK)
        kiln_check_fail(run, "batchnorm", r->label, what, kiln_context_last_error(ctx));
    return rc == KILN_OK;
}

static kiln_ref_io rig_io(const rig *r)
{
    kiln_ref_io io = {.params = r->sc->params,
                      .mode = r->mode,
                      .n_inputs = 5,
                      .in_shapes = r->shapes,
                      .in = (const double *const *)r->host,
                      .out_shape = r->sc->x};
    return io;
}

/* Downloads n values of each of `k` tensors into consecutive stretches of `host`. */
static kiln_status download_all(kiln_tensor *const *t, int k, int64_t n, float *host)
{
    kiln_status rc = KILN_OK;
    for (int i = 0; rc == KILN_OK && i < k; i++)
        rc = kiln_tensor_download(t[i], host + i * n, n);
    return rc;
}

/* One forward in `mode`, then the running statistics against the reference update (train)
 * or against their values before (eval, infer: nothing may change at all). */
static void check_running(kiln_check_run *run, const stats_case *sc, kiln_mode mode)
{
    bool train = mode == KILN_MODE_TRAIN;
    const char *what = train ? "running stats" : "running kept";
    double t0 = kiln_check_now_ms();
    rig r;
    double *mean = NULL, *var = NULL, *want = NULL;
    float *got = NULL;
    if (!rig_forward(run, sc, mode, &r, what))
        goto cleanup;
    int64_t c = r.c;
    mean = malloc((size_t)c * sizeof *mean);
    var = malloc((size_t)c * sizeof *var);
    want = malloc(2 * (size_t)c * sizeof *want);
    got = malloc(2 * (size_t)c * sizeof *got);
    if (mean == NULL || var == NULL || want == NULL || got == NULL ||
        download_all(&r.in[3], 2, c, got) != KILN_OK) {
        kiln_check_fail(run, "batchnorm", r.label, what,
                        kiln_context_last_error(kiln_device_get_context(run->dev)));
        goto cleanup;
    }
    kiln_ref_io io = rig_io(&r);
    batch_stats(&io, mean, var);
    double m = (double)sc->params->momentum;
    double count = (double)(kiln_shape_count(&sc->x) / c);
    for (int64_t k = 0; k < c; k++) {
        want[k] = train ? (1 - m) * r.host[3][k] + m * mean[k] : r.host[3][k];
        want[c + k] =
            train ? (1 - m) * r.host[4][k] + m * var[k] * count / (count - 1) : r.host[4][k];
    }
    /* Train: float rounding of the statistics and of the blend (a few 1e-7 relative). */
    kiln_check_compare(run, "batchnorm", r.label, what, got, want, 2 * (size_t)c,
                       train ? 1e-6 : 0.0, train ? 1e-6 : 0.0, kiln_check_now_ms() - t0);
cleanup:
    rig_release(&r);
    free(mean);
    free(var);
    free(want);
    free(got);
}

/*
 * The cases always ask for every gradient; a graph often does not (the first layer's x). In
 * train mode the kernels take another path then (sums straight into the gamma and beta
 * gradients; or only the x gradient), so: backward asking for gamma and beta only, then for x
 * only, each accumulating onto random prior values, against the reference.
 */
static void check_partial_backward(kiln_check_run *run, const stats_case *sc)
{
    kiln_context *ctx = kiln_device_get_context(run->dev);
    const kiln_check_gen normal = G_NORMAL;
    rig r;
    kiln_tensor *gout = NULL, *grads[5] = {0};
    double *g = NULL, *prior = NULL, *ref[3] = {0}, *want = NULL;
    float *got = NULL;
    if (!rig_forward(run, sc, KILN_MODE_TRAIN, &r, "partial backward"))
        goto cleanup;
    int64_t n = kiln_shape_count(&sc->x), c = r.c;
    g = malloc((size_t)n * sizeof *g);
    prior = malloc((size_t)n * sizeof *prior);
    want = malloc((size_t)n * sizeof *want);
    got = malloc((size_t)n * sizeof *got);
    for (int i = 0; i < 3; i++)
        ref[i] = malloc((size_t)kiln_shape_count(&r.shapes[i]) * sizeof(double));
    if (g == NULL || prior == NULL || want == NULL || got == NULL || ref[0] == NULL ||
        ref[1] == NULL || ref[2] == NULL) {
        kiln_check_fail(run, "batchnorm", r.label, "partial backward", "out of host memory");
        goto cleanup;
    }
    kiln_check_generate(&normal, sc->seed * 977 + 5, g, (size_t)n);
    kiln_check_generate(&normal, sc->seed * 131, prior, (size_t)n);
    gout = kiln_check_tensor(run, "batchnorm", &sc->x, KILN_F32, g, "gout");
    for (int i = 0; i < 3; i++) {
        grads[i] = kiln_check_tensor(run, "batchnorm", &r.shapes[i], KILN_F32, prior, "grad");
        if (grads[i] == NULL)
            goto cleanup;
    }
    if (gout == NULL)
        goto cleanup;
    kiln_ref_io io = rig_io(&r);
    bn_bwd(&io, NULL, g, ref);
    static const char *const WHAT[2] = {"bwd gamma,beta", "bwd x only"};
    for (int pass = 0; pass < 2; pass++) {
        kiln_tensor *wanted[5] = {0};
        if (pass == 0) {
            wanted[1] = grads[1];
            wanted[2] = grads[2];
        } else {
            wanted[0] = grads[0];
        }
        kiln_op_args args = {.params = sc->params,
                             .mode = KILN_MODE_TRAIN,
                             .inputs = r.in,
                             .n_inputs = 5,
                             .output = r.out,
                             .saved = r.saved,
                             .workspace = r.ws,
                             .grad_output = gout,
                             .grad_inputs = wanted};
        double t0 = kiln_check_now_ms();
        kiln_status rc = kiln_op_backward(run->dev, kiln_op_find("batchnorm"), &args);
        int64_t m = pass == 0 ? c : n;
        if (rc == KILN_OK)
            rc = download_all(pass == 0 ? &grads[1] : &grads[0], pass == 0 ? 2 : 1, m, got);
        if (rc != KILN_OK) {
            kiln_check_fail(run, "batchnorm", r.label, WHAT[pass], kiln_context_last_error(ctx));
            continue;
        }
        for (int64_t k = 0; k < m; k++) {
            want[k] = prior[k] + (pass == 0 ? ref[1][k] : ref[0][k]);
            if (pass == 0)
                want[c + k] = prior[k] + ref[2][k];
        }
        kiln_check_compare(run, "batchnorm", r.label, WHAT[pass], got, want,
                           (size_t)(pass == 0 ? 2 * c : n), 1e-5, 1e-4, kiln_check_now_ms() - t0);
    }
cleanup:
    rig_release(&r);
    kiln_tensor_destroy(gout);
    for (int i = 0; i < 3; i++) {
        kiln_tensor_destroy(grads[i]);
        free(ref[i]);
    }
    free(g);
    free(prior);
    free(want);
    free(got);
}

static void batchnorm_custom(kiln_check_run *run)
{
    if (run->only_op != NULL && strcmp(run->only_op, "batchnorm") != 0)
        return;
    for (size_t k = 0; k < sizeof STATS_CASES / sizeof STATS_CASES[0]; k++) {
        check_running(run, &STATS_CASES[k], KILN_MODE_TRAIN);
        check_running(run, &STATS_CASES[k], KILN_MODE_EVAL);
    }
    check_running(run, &STATS_CASES[1], KILN_MODE_INFER);
    check_partial_backward(run, &STATS_CASES[1]);
    check_partial_backward(run, &STATS_CASES[3]);
}

const kiln_check_suite kiln_check_suite_batchnorm = {
    .name = "batchnorm",
    .cases = CASES,
    .n_cases = sizeof CASES / sizeof CASES[0],
    .custom = batchnorm_custom,
};
