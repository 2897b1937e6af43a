/*
 * References and check cases for fill (a constant of a given shape; no inputs, not
 * differentiable) and copy (identity; its gradient passes through).
 */
#include "ref/ref.h"

static void fill_fwd(const kiln_ref_io *io, double *y)
{
    const kiln_fill_params *p = io->params;
    for (int64_t i = 0; i < kiln_shape_count(&io->out_shape); i++)
        y[i] = (double)p->value;
}

static void copy_fwd(const kiln_ref_io *io, double *y)
{
    for (int64_t i = 0; i < kiln_shape_count(&io->out_shape); i++)
        y[i] = io->in[0][i];
}

static void copy_bwd(const kiln_ref_io *io, const double *y, const double *g, double *const *gin)
{
    (void)y;
    for (int64_t i = 0; i < kiln_shape_count(&io->out_shape); i++)
        gin[0][i] = g[i];
}

static const kiln_fill_params FILL_1 = {.shape = S1(1), .value = 2.5f};
static const kiln_fill_params FILL_ODD = {.shape = S3(3, 5, 7), .value = -0.125f};
static const kiln_fill_params FILL_BIG = {.shape = S2(1000, 1003), .value = 1e-3f};

#define FILL(prm)                                                                              \
    {.op = "fill", .params = &prm, .n_inputs = 0, .forward = fill_fwd, .atol = 0, .rtol = 0, \
     .seed = __LINE__}
#define COPY(shape)                                                                            \
    {.op = "copy", .n_inputs = 1, .inputs = {shape}, .gen = {G_NORMAL}, .forward = copy_fwd, \
     .backward = copy_bwd, .atol = 0, .rtol = 0, .grad_atol = 1e-6, .grad_rtol = 1e-6,       \
     .seed = __LINE__}

static const kiln_check_case CASES[] = {
    FILL(FILL_1),   FILL(FILL_ODD),  FILL(FILL_BIG),
    COPY(S1(1)),    COPY(S2(7, 9)),  COPY(S1(100003)),
    {.op = "copy", .n_inputs = 1, .inputs = {S1(50)}, .gen = {G_SPECIAL}, .forward = copy_fwd,
     .atol = 0, .rtol = 0, .seed = 9, .label = "(50,) +-inf/NaN"},
};

const kiln_check_suite kiln_check_suite_fill = {
    .name = "fill",
    .cases = CASES,
    .n_cases = sizeof CASES / sizeof CASES[0],
};
