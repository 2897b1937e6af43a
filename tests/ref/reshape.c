/*
 * References and check cases for reshape (torch.reshape on a contiguous tensor: the same
 * elements in the same row-major order, one size of -1 inferred) and flatten (Keras Flatten:
 * (N, ...) -> (N, rest), a (N,) input becoming (N, 1)). Both are the identity on the
 * elements, and so are their gradients.
 */
#include "ref/ref.h"

/* y (any shape of x's count) = x in row-major order. */
static void identity_fwd(const kiln_ref_io *io, double *y)
{
    for (int64_t i = 0; i < kiln_shape_count(&io->out_shape); i++)
        y[i] = io->in[0][i];
}

/* gx (x's shape) = g in row-major order. */
static void identity_bwd(const kiln_ref_io *io, const double *y, const double *g,
                         double *const *gin)
{
    (void)y;
    for (int64_t i = 0; i < kiln_shape_count(&io->out_shape); i++)
        gin[0][i] = g[i];
}

static const kiln_reshape_params TO_4_M1 = {S2(4, -1)};
static const kiln_reshape_params TO_M1 = {S1(-1)};
static const kiln_reshape_params TO_SCALAR = {S0()};
static const kiln_reshape_params TO_1_1_1 = {S3(1, 1, 1)};
static const kiln_reshape_params TO_3_2_5 = {S3(3, 2, 5)};
static const kiln_reshape_params TO_M1_17_59 = {S3(-1, 17, 59)};

/* Copies are exact; each gradient element gets exactly one term. */
#define SHAPE_OP(op_name, prm, ...)                                                                \
    {                                                                                              \
        .op = op_name, .params = prm, .n_inputs = 1, .inputs = {__VA_ARGS__}, .gen = {G_NORMAL},   \
        .forward = identity_fwd, .backward = identity_bwd, .atol = 0, .rtol = 0,                   \
        .grad_atol = 1e-6, .grad_rtol = 1e-6, .seed = __LINE__                                     \
    }

static const kiln_check_case CASES[] = {
    SHAPE_OP("reshape", &TO_4_M1, S3(2, 3, 4)),
    SHAPE_OP("reshape", &TO_M1, S4(3, 1, 5, 7)),
    SHAPE_OP("reshape", &TO_SCALAR, S1(1)),
    SHAPE_OP("reshape", &TO_1_1_1, S0()),
    SHAPE_OP("reshape", &TO_3_2_5, S2(5, 6)),
    SHAPE_OP("reshape", &TO_M1_17_59, S2(1000, 1003)),
    SHAPE_OP("flatten", NULL, S4(2, 3, 4, 5)),
    SHAPE_OP("flatten", NULL, S2(1, 1)),
    SHAPE_OP("flatten", NULL, S1(7)),
    SHAPE_OP("flatten", NULL, S5(3, 2, 5, 7, 9)),
    SHAPE_OP("flatten", NULL, S4(128, 64, 7, 7)),
};

const kiln_check_suite kiln_check_suite_reshape = {
    .name = "reshape",
    .cases = CASES,
    .n_cases = sizeof CASES / sizeof CASES[0],
};
