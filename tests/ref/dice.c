/*
 * Reference and check cases for the dice loss (DESIGN.md, "Dice loss"; the soft Dice loss of
 * Milletari et al., V-Net, 2016, with a smooth term s): probabilities p and binary targets t
 * of equal shape (N, ...); per sample b, over every non-batch axis, I = sum p t, P = sum p,
 * T = sum t, dice_b = (2 I + s) / (P + T + s); the loss is the scalar 1 - mean_b dice_b.
 * A custom check runs a 128^3 volume and compares the loss and the sums the op saves.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref/ref.h"

/* Sums for up to this many samples live on the stack in the reference; a case with a larger
 * batch gets a NaN loss, so it fails rather than overflowing. */
enum { MAX_BATCH = 64 };

/* Per-sample sums over K = n / N elements. p, t: (N, K); inter, sum_p, sum_t: (N,). */
static void dice_sums(const kiln_shape *shape, const double *p, const double *t, double *inter,
                      double *sum_p, double *sum_t)
{
    int64_t batch = shape->dim[0], per = kiln_shape_count(shape) / batch;
    for (int64_t b = 0; b < batch && b < MAX_BATCH; b++) {
        inter[b] = sum_p[b] = sum_t[b] = 0;
        for (int64_t k = 0; k < per; k++) {
            inter[b] += p[b * per + k] * t[b * per + k];
            sum_p[b] += p[b * per + k];
            sum_t[b] += t[b * per + k];
        }
    }
}

/* y () = 1 - (1/N) sum_b (2 I_b + s) / (P_b + T_b + s). */
static void dice_fwd(const kiln_ref_io *io, double *y)
{
    const kiln_dice_params *prm = io->params;
    double s = prm->smooth, inter[MAX_BATCH], sum_p[MAX_BATCH], sum_t[MAX_BATCH];
    int64_t batch = io->in_shapes[0].dim[0];
    dice_sums(&io->in_shapes[0], io->in[0], io->in[1], inter, sum_p, sum_t);
    if (batch > MAX_BATCH) {
        y[0] = NAN;
        return;
    }
    double mean = 0;
    for (int64_t b = 0; b < batch; b++)
        mean += (2 * inter[b] + s) / (sum_p[b] + sum_t[b] + s);
    y[0] = 1 - mean / (double)batch;
}

/* gp = -(g/N) (2 t U - (2 I + s)) / U^2 per element, U = P + T + s of its sample. */
static void dice_bwd(const kiln_ref_io *io, const double *y, const double *g, double *const *gin)
{
    (void)y;
    const kiln_dice_params *prm = io->params;
    double s = prm->smooth, inter[MAX_BATCH], sum_p[MAX_BATCH], sum_t[MAX_BATCH];
    int64_t batch = io->in_shapes[0].dim[0], per = kiln_shape_count(&io->in_shapes[0]) / batch;
    dice_sums(&io->in_shapes[0], io->in[0], io->in[1], inter, sum_p, sum_t);
    for (int64_t b = 0; b < batch && b < MAX_BATCH; b++) {
        double u = sum_p[b] + sum_t[b] + s;
        for (int64_t k = 0; k < per; k++) {
            double t = io->in[1][b * per + k];
            gin[0][b * per + k] =
                -g[0] / (double)batch * (2 * t * u - (2 * inter[b] + s)) / (u * u);
        }
    }
}

static const kiln_dice_params SMOOTH_1 = {1.0f};
static const kiln_dice_params SMOOTH_0 = {0.0f};
static const kiln_dice_params SMOOTH_SMALL = {1e-5f};

/* The loss is an O(1) ratio of compensated, tree-summed sums: 1e-6. Each gradient element is
 * O(1/K) added to an O(1) prior; float rounding of U^2 and of the sum stays below 1e-6. */
#define DICE(prm, shape, text, ...)                                                                \
    {                                                                                              \
        .op = "dice", .params = &prm, .n_inputs = 2, .inputs = {shape, shape},                     \
        .gen = {__VA_ARGS__}, .forward = dice_fwd, .backward = dice_bwd, .atol = 1e-6,             \
        .rtol = 1e-6, .grad_atol = 1e-6, .grad_rtol = 1e-5, .seed = __LINE__, .label = text        \
    }

#define P_T G_UNIFORM(0.01, 0.99), G_BINARY

static const kiln_check_case CASES[] = {
    DICE(SMOOTH_1, S2(1, 1), NULL, P_T),
    /* Single-voxel volumes. */
    DICE(SMOOTH_1, S5(1, 1, 1, 1, 1), NULL, P_T),
    DICE(SMOOTH_0, S5(3, 1, 1, 1, 1), NULL, P_T),
    DICE(SMOOTH_1, S4(2, 3, 5, 7), NULL, P_T),
    DICE(SMOOTH_1, S5(2, 1, 4, 5, 6), NULL, P_T),
    DICE(SMOOTH_0, S4(3, 2, 17, 13), NULL, P_T),
    DICE(SMOOTH_SMALL, S3(5, 1, 129), NULL, P_T),
    /* Larger: 4 samples of 8,174 elements, a multiple of neither 64 nor 256. */
    DICE(SMOOTH_1, S4(4, 2, 61, 67), NULL, P_T),
    /* Both masks empty: I = P = T = 0, so dice is s / s = 1 and the loss exactly 0 (atol and
     * rtol 0); the gradient (g/N) s / s^2 must come back finite and right. */
    {.op = "dice",
     .params = &SMOOTH_1,
     .n_inputs = 2,
     .inputs = {S4(2, 1, 4, 4), S4(2, 1, 4, 4)},
     .gen = {G_UNIFORM(0, 0), G_UNIFORM(0, 0)},
     .forward = dice_fwd,
     .backward = dice_bwd,
     .grad_atol = 1e-6,
     .grad_rtol = 1e-5,
     .seed = __LINE__,
     .label = "(2, 1, 4, 4) empty masks"},
};

/* ---- custom check: a 128^3 volume ---- */

/*
 * Runs dice forward on (1, 1, 128, 128, 128): p uniform in [0.01, 0.99), t binary, two
 * million elements each. Compares the loss and the three per-sample sums the op saves for
 * backward (I, P, T in that order) with double-precision sums, to 1e-5 relative. The
 * reference's finite differences are not run here: they would cost 48 passes over 2M.
 */
static void check_volume(kiln_check_run *run)
{
    const char *op_name = "dice";
    if (run->only_op != NULL && strcmp(run->only_op, op_name) != 0)
        return;
    const char *label = "(1, 1, 128, 128, 128)";
    kiln_context *ctx = kiln_device_get_context(run->dev);
    const kiln_op *op = kiln_op_find(op_name);
    kiln_shape shapes[2] = {S5(1, 1, 128, 128, 128), S5(1, 1, 128, 128, 128)};
    size_t n = (size_t)kiln_shape_count(&shapes[0]);
    kiln_check_gen gens[2] = {G_UNIFORM(0.01, 0.99), G_BINARY};
    double *in[2] = {malloc(n * sizeof(double)), malloc(n * sizeof(double))};
    kiln_shape out_shape, saved_shapes[KILN_OP_MAX_SAVED];
    kiln_tensor *inputs[2] = {NULL, NULL}, *saved[3] = {NULL, NULL, NULL}, *output = NULL;
    kiln_buffer *workspace = NULL;
    int rows_before = run->n_rows; /* kiln_check_tensor reports its own failures */
    bool ok = op != NULL && in[0] != NULL && in[1] != NULL &&
              kiln_op_infer(ctx, op, &SMOOTH_1, shapes, 2, &out_shape, saved_shapes) == KILN_OK;
    for (int i = 0; ok && i < 2; i++) {
        kiln_check_generate(&gens[i], 2024 + (uint64_t)i, in[i], n);
        inputs[i] = kiln_check_tensor(run, op_name, &shapes[i], KILN_F32, in[i], "input");
        ok = inputs[i] != NULL;
    }
    for (int s = 0; ok && s < 3; s++) {
        saved[s] = kiln_check_tensor(run, op_name, &saved_shapes[s], KILN_F32, NULL, "saved");
        ok = saved[s] != NULL;
    }
    ok = ok && (output = kiln_check_tensor(run, op_name, &out_shape, KILN_F32, NULL, "out"));
    size_t ws = ok ? kiln_op_workspace_bytes(op, &SMOOTH_1, shapes, 2) : 0;
    ok = ok && kiln_buffer_create(run->dev, ws, "workspace", &workspace) == KILN_OK;
    kiln_op_args args = {.params = &SMOOTH_1,
                         .inputs = inputs,
                         .n_inputs = 2,
                         .output = output,
                         .saved = saved,
                         .workspace = workspace};
    float loss = NAN, sums[3] = {NAN, NAN, NAN};
    double t0 = kiln_check_now_ms();
    ok = ok && kiln_op_forward(run->dev, op, &args) == KILN_OK &&
         kiln_tensor_download(output, &loss, 1) == KILN_OK;
    double ms = kiln_check_now_ms() - t0;
    for (int s = 0; ok && s < 3; s++)
        ok = kiln_tensor_download(saved[s], &sums[s], 1) == KILN_OK;
    if (ok) {
        double ref_sums[3], ref_loss;
        dice_sums(&shapes[0], in[0], in[1], &ref_sums[0], &ref_sums[1], &ref_sums[2]);
        kiln_ref_io io = {.params = &SMOOTH_1,
                          .n_inputs = 2,
                          .in_shapes = shapes,
                          .in = (const double *const *)in};
        dice_fwd(&io, &ref_loss);
        kiln_check_compare(run, op_name, label, "forward", &loss, &ref_loss, 1, 0, 1e-5, ms);
        kiln_check_compare(run, op_name, label, "sums I,P,T", sums, ref_sums, 3, 0, 1e-5, ms);
    } else if (run->n_rows == rows_before) {
        kiln_check_fail(run, op_name, label, "forward",
                        op == NULL || in[0] == NULL || in[1] == NULL
                            ? "no dice op, or out of host memory"
                            : kiln_context_last_error(ctx));
    }
    for (int i = 0; i < 2; i++) {
        kiln_tensor_destroy(inputs[i]);
        free(in[i]);
    }
    for (int s = 0; s < 3; s++)
        kiln_tensor_destroy(saved[s]);
    kiln_tensor_destroy(output);
    kiln_buffer_destroy(workspace);
}

const kiln_check_suite kiln_check_suite_dice = {
    .name = "dice",
    .cases = CASES,
    .n_cases = sizeof CASES / sizeof CASES[0],
    .custom = check_volume,
};
