/*
 * Reference and checks for dropout (PyTorch nn.Dropout: inverted dropout, Srivastava et al.,
 * JMLR 2014). The mask comes from the library's host Philox4x32-10 (core/philox.h, pinned by
 * tests/core/test_philox.c) with the mapping documented in cl/dropout.cl, so the device's mask
 * must match bit for bit and the tolerances only allow for the float product x * scale.
 * Custom checks: the kept fraction over a million elements, masks that change with the node,
 * step and seed (every counter and key word), and masks that repeat for the same ones.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/philox.h"
#include "ref/ref.h"

/* The factor element i is multiplied by: 1 / (1 - rate) if kept, 0 if dropped; 1 in eval and
 * infer modes and at rate 0. Element i is kept iff u >= rate, with
 *   counter = (i / 4, node, step_lo, step_hi), key = (seed_lo, seed_hi),
 *   u = (output word i % 4 >> 8) * 2^-24. */
static double factor(const kiln_ref_io *io, int64_t i)
{
    const kiln_dropout_params *p = io->params;
    double rate = (double)p->rate;
    if (io->mode != KILN_MODE_TRAIN || rate == 0.0)
        return 1.0;
    uint32_t counter[4] = {(uint32_t)(i / 4), io->node, (uint32_t)io->step,
                           (uint32_t)(io->step >> 32)};
    uint32_t key[2] = {(uint32_t)io->seed, (uint32_t)(io->seed >> 32)};
    uint32_t word[4];
    kiln__philox4x32_10(counter, key, word);
    double u = (double)(word[i % 4] >> 8) / 16777216.0;
    return u >= rate ? 1.0 / (1.0 - rate) : 0.0;
}

/* y = x * factor. x, y: any shape (n elements). */
static void drop_fwd(const kiln_ref_io *io, double *y)
{
    int64_t n = kiln_shape_count(&io->out_shape);
    for (int64_t i = 0; i < n; i++)
        y[i] = io->in[0][i] * factor(io, i);
}

/* gx = g * factor: the same mask, regenerated. */
static void drop_bwd(const kiln_ref_io *io, const double *y, const double *g, double *const *gin)
{
    (void)y;
    int64_t n = kiln_shape_count(&io->out_shape);
    for (int64_t i = 0; i < n; i++)
        gin[0][i] = g[i] * factor(io, i);
}

static const kiln_dropout_params RATE0 = {0.0f};
static const kiln_dropout_params RATE03 = {0.3f};
static const kiln_dropout_params RATE05 = {0.5f};
static const kiln_dropout_params RATE09 = {0.9f};

/* The mask is exact, so forward differs from the reference only by the rounding of the float
 * scale and of the product (2 half-ulps); backward adds the rounding of the accumulation onto
 * the prior, relative to the prior, hence the small atol. */
#define DROP(prm, md, lbl, shape)                                                                  \
    {                                                                                              \
        .op = "dropout", .params = &prm, .n_inputs = 1, .inputs = {shape}, .gen = {G_NORMAL},      \
        .mode = md, .forward = drop_fwd, .backward = drop_bwd, .atol = 0, .rtol = 2.5e-7,          \
        .grad_atol = 1e-6, .grad_rtol = 1e-6, .seed = __LINE__, .label = lbl                       \
    }

static const kiln_check_case CASES[] = {
    DROP(RATE03, KILN_MODE_TRAIN, "(1,) rate 0.3", S1(1)),
    DROP(RATE03, KILN_MODE_TRAIN, "(7, 13) rate 0.3", S2(7, 13)),
    DROP(RATE05, KILN_MODE_TRAIN, "(3, 5, 7, 9) rate 0.5", S4(3, 5, 7, 9)),
    DROP(RATE09, KILN_MODE_TRAIN, "(2, 65, 33) rate 0.9", S3(2, 65, 33)),
    DROP(RATE05, KILN_MODE_TRAIN, "(262147,) rate 0.5", S1(262147)),
    DROP(RATE0, KILN_MODE_TRAIN, "(5, 129) rate 0", S2(5, 129)),
    DROP(RATE05, KILN_MODE_EVAL, "(4, 6, 11) eval", S3(4, 6, 11)),
    DROP(RATE05, KILN_MODE_INFER, "(1000,) infer", S1(1000)),
};

/* ---- custom checks on a million elements ---- */

enum { BIG = 1000000 };

typedef struct big_run {
    kiln_check_run *run;
    kiln_tensor *x, *y; /* x: BIG ones */
    float *got, *base;  /* host copies of y */
    double *ref;
    char label[64];
} big_run;

/* Train-mode forward of the ones into y, downloaded into `host`; false after reporting. */
static bool forward_ones(big_run *b, float rate, uint64_t seed, uint64_t step, uint32_t node,
                         float *host, const char *what)
{
    kiln_dropout_params p = {rate};
    kiln_op_args args;
    memset(&args, 0, sizeof args);
    args.params = &p;
    args.mode = KILN_MODE_TRAIN;
    args.seed = seed;
    args.step = step;
    args.node = node;
    args.inputs = &b->x;
    args.n_inputs = 1;
    args.output = b->y;
    kiln_status rc = kiln_op_forward(b->run->dev, kiln_op_find("dropout"), &args);
    if (rc == KILN_OK)
        rc = kiln_tensor_download(b->y, host, BIG);
    if (rc != KILN_OK)
        kiln_check_fail(b->run, "dropout", b->label, what,
                        kiln_context_last_error(kiln_device_get_context(b->run->dev)));
    return rc == KILN_OK;
}

/* The kept fraction is Binomial(BIG, keep) / BIG: within 5 standard deviations of keep =
 * 1 - rate (to 2^-24, the uniform's resolution); every kept value is exactly the scale. */
static void check_fraction(big_run *b, float rate)
{
    snprintf(b->label, sizeof b->label, "(%d,) rate %g", BIG, (double)rate);
    double t0 = kiln_check_now_ms();
    if (!forward_ones(b, rate, 0x5eedull, 11, 2, b->got, "kept fraction"))
        return;
    float scale = (float)(1.0 / (1.0 - (double)rate));
    long kept = 0, wrong = 0;
    for (int i = 0; i < BIG; i++) {
        kept += b->got[i] != 0.0f;
        wrong += b->got[i] != 0.0f && b->got[i] != scale;
    }
    if (wrong > 0) {
        kiln_check_fail(b->run, "dropout", b->label, "kept fraction",
                        "a kept element is not exactly 1 / (1 - rate)");
        return;
    }
    double keep = 1.0 - (double)rate;
    float fraction = (float)((double)kept / BIG);
    kiln_check_compare(b->run, "dropout", b->label, "kept fraction", &fraction, &keep, 1,
                       5.0 * sqrt(keep * (1.0 - keep) / BIG), 0.0, kiln_check_now_ms() - t0);
}

/* A changed counter or key word must give an unrelated mask: at rate 0.5 two independent
 * masks agree at Binomial(BIG, 1/2) places, so the agreeing fraction is 1/2 within 5 standard
 * deviations (an unchanged mask agrees everywhere). The same (seed, step, node) must give the
 * same mask, exactly. */
static void check_streams(big_run *b)
{
    const uint64_t seed = 0x0123456789abcdefull, step = 3;
    const uint32_t node = 7;
    const struct {
        const char *what;
        uint64_t seed, step;
        uint32_t node;
    } OTHER[] = {
        {"node + 1", seed, step, node + 1},
        {"step + 1", seed, step + 1, node},
        {"step + 2^32", seed, step + (1ull << 32), node},
        {"seed + 1", seed + 1, step, node},
        {"seed + 2^32", seed + (1ull << 32), step, node},
    };
    snprintf(b->label, sizeof b->label, "(%d,) rate 0.5", BIG);
    if (!forward_ones(b, 0.5f, seed, step, node, b->base, "mask setup"))
        return;
    for (size_t k = 0; k < sizeof OTHER / sizeof OTHER[0]; k++) {
        double t0 = kiln_check_now_ms();
        if (!forward_ones(b, 0.5f, OTHER[k].seed, OTHER[k].step, OTHER[k].node, b->got,
                          OTHER[k].what))
            continue;
        long agree = 0;
        for (int i = 0; i < BIG; i++)
            agree += (b->got[i] != 0.0f) == (b->base[i] != 0.0f);
        float fraction = (float)((double)agree / BIG);
        double half = 0.5;
        char what[32];
        snprintf(what, sizeof what, "mask %s", OTHER[k].what);
        kiln_check_compare(b->run, "dropout", b->label, what, &fraction, &half, 1,
                           5.0 * 0.5 / sqrt((double)BIG), 0.0, kiln_check_now_ms() - t0);
    }
    double t0 = kiln_check_now_ms();
    if (!forward_ones(b, 0.5f, seed, step, node, b->got, "same mask"))
        return;
    for (int i = 0; i < BIG; i++)
        b->ref[i] = (double)b->base[i];
    kiln_check_compare(b->run, "dropout", b->label, "same mask", b->got, b->ref, BIG, 0.0, 0.0,
                       kiln_check_now_ms() - t0);
}

static void dropout_custom(kiln_check_run *run)
{
    if (run->only_op != NULL && strcmp(run->only_op, "dropout") != 0)
        return;
    kiln_shape shape = {.ndim = 1, .dim = {BIG}};
    big_run b = {.run = run};
    snprintf(b.label, sizeof b.label, "(%d,)", BIG);
    b.ref = malloc(BIG * sizeof(double));
    b.got = malloc(BIG * sizeof(float));
    b.base = malloc(BIG * sizeof(float));
    if (b.ref == NULL || b.got == NULL || b.base == NULL) {
        kiln_check_fail(run, "dropout", b.label, "setup", "out of host memory");
    } else {
        for (int i = 0; i < BIG; i++)
            b.ref[i] = 1.0;
        b.x = kiln_check_tensor(run, "dropout", &shape, KILN_F32, b.ref, "ones");
        b.y = b.x != NULL ? kiln_check_tensor(run, "dropout", &shape, KILN_F32, NULL, "y") : NULL;
    }
    if (b.y != NULL) {
        check_fraction(&b, 0.1f);
        check_fraction(&b, 0.5f);
        check_fraction(&b, 0.9f);
        check_streams(&b);
    }
    kiln_tensor_destroy(b.x);
    kiln_tensor_destroy(b.y);
    free(b.ref);
    free(b.got);
    free(b.base);
}

const kiln_check_suite kiln_check_suite_dropout = {
    .name = "dropout",
    .cases = CASES,
    .n_cases = sizeof CASES / sizeof CASES[0],
    .custom = dropout_custom,
};
