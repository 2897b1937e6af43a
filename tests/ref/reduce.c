/*
 * References and check cases for reduce_sum, reduce_mean and reduce_max over an axis set
 * (NumPy sum/mean/amax with keepdims). The reference sums in double; the device must agree
 * to float accuracy even over a million elements, which a serial float sum would not.
 */
#include <math.h>
#include <string.h>

#include "ref/ref.h"

/* Index of input element i in the keepdims output. */
static int64_t kept_index(const kiln_shape *x, uint32_t axes, int64_t i)
{
    int64_t idx = 0, stride = 1;
    for (int d = x->ndim - 1; d >= 0; d--) {
        int64_t coord = i % x->dim[d];
        i /= x->dim[d];
        if (axes & (1u << d))
            continue;
        idx += coord * stride;
        stride *= x->dim[d];
    }
    return idx;
}

static int64_t reduced_count(const kiln_ref_io *io)
{
    return kiln_shape_count(&io->in_shapes[0]) / kiln_shape_count(&io->out_shape);
}

static void sum_fwd(const kiln_ref_io *io, double *y)
{
    const kiln_reduce_params *p = io->params;
    memset(y, 0, (size_t)kiln_shape_count(&io->out_shape) * sizeof(double));
    int64_t n = kiln_shape_count(&io->in_shapes[0]);
    for (int64_t i = 0; i < n; i++)
        y[kept_index(&io->in_shapes[0], p->axes, i)] += io->in[0][i];
}

static void mean_fwd(const kiln_ref_io *io, double *y)
{
    sum_fwd(io, y);
    int64_t r = reduced_count(io);
    for (int64_t o = 0; o < kiln_shape_count(&io->out_shape); o++)
        y[o] /= (double)r;
}

static void max_fwd(const kiln_ref_io *io, double *y)
{
    const kiln_reduce_params *p = io->params;
    for (int64_t o = 0; o < kiln_shape_count(&io->out_shape); o++)
        y[o] = -INFINITY;
    int64_t n = kiln_shape_count(&io->in_shapes[0]);
    for (int64_t i = 0; i < n; i++) {
        int64_t o = kept_index(&io->in_shapes[0], p->axes, i);
        /* NaN propagates, as in torch.amax. */
        if (isnan(io->in[0][i]) || io->in[0][i] > y[o])
            y[o] = io->in[0][i];
    }
}

static void sum_bwd(const kiln_ref_io *io, const double *y, const double *g, double *const *gin)
{
    (void)y;
    const kiln_reduce_params *p = io->params;
    int64_t n = kiln_shape_count(&io->in_shapes[0]);
    for (int64_t i = 0; i < n; i++)
        gin[0][i] = g[kept_index(&io->in_shapes[0], p->axes, i)];
}

static void mean_bwd(const kiln_ref_io *io, const double *y, const double *g, double *const *gin)
{
    sum_bwd(io, y, g, gin);
    int64_t r = reduced_count(io);
    for (int64_t i = 0; i < kiln_shape_count(&io->in_shapes[0]); i++)
        gin[0][i] /= (double)r;
}

/* The gradient goes to the maximum (inputs are distinct, so it is unique). */
static void max_bwd(const kiln_ref_io *io, const double *y, const double *g, double *const *gin)
{
    const kiln_reduce_params *p = io->params;
    int64_t n = kiln_shape_count(&io->in_shapes[0]);
    for (int64_t i = 0; i < n; i++) {
        int64_t o = kept_index(&io->in_shapes[0], p->axes, i);
        gin[0][i] = io->in[0][i] == y[o] ? g[o] : 0.0;
    }
}

static const kiln_reduce_params ALL1 = {0x1, false};
static const kiln_reduce_params LAST3 = {0x4, true};
static const kiln_reduce_params MID4 = {0xA, false};  /* axes 1 and 3 of 4 */
static const kiln_reduce_params OUTER3 = {0x5, true}; /* axes 0 and 2 of 3 */
static const kiln_reduce_params ALL3 = {0x7, false};
static const kiln_reduce_params FIRST = {0x1, false}; /* axis 0: the column sums of a bias */

#define RED(op_name, f, b, prm, shape, tol, ...)                                                   \
    {                                                                                              \
        .op = op_name, .params = &prm, .n_inputs = 1, .inputs = {shape}, .gen = {__VA_ARGS__},     \
        .forward = f, .backward = b, .atol = tol, .rtol = tol, .grad_atol = 1e-6,                  \
        .grad_rtol = 1e-6, .seed = __LINE__                                                        \
    }

#define REDUCE_CASES(op_name, f, b, ...)                                                           \
    RED(op_name, f, b, ALL1, S1(1), 1e-6, __VA_ARGS__),                                            \
        RED(op_name, f, b, ALL1, S1(65), 1e-5, __VA_ARGS__),                                       \
        RED(op_name, f, b, LAST3, S3(2, 3, 129), 1e-5, __VA_ARGS__),                               \
        RED(op_name, f, b, MID4, S4(3, 5, 2, 7), 1e-5, __VA_ARGS__),                               \
        RED(op_name, f, b, OUTER3, S3(33, 4, 17), 1e-5, __VA_ARGS__),                              \
        RED(op_name, f, b, ALL3, S3(1, 1, 1), 1e-6, __VA_ARGS__)

static const kiln_check_case CASES[] = {
    REDUCE_CASES("reduce_sum", sum_fwd, sum_bwd, G_NORMAL),
    REDUCE_CASES("reduce_mean", mean_fwd, mean_bwd, G_NORMAL),
    REDUCE_CASES("reduce_max", max_fwd, max_bwd, G_DISTINCT),
    /* A long sum: 1,000,003 values of one sign; a serial float sum drifts by ~1e-4 here. */
    RED("reduce_sum", sum_fwd, sum_bwd, ALL1, S1(1000003), 2e-6, G_UNIFORM(0.5, 1.5)),
    /* IEEE special values, forward only: rows with NaN give NaN, +inf with -inf gives NaN. */
    {.op = "reduce_max", .params = &LAST3, .n_inputs = 1, .inputs = {S3(4, 3, 11)},
     .gen = {G_SPECIAL}, .forward = max_fwd, .atol = 0, .rtol = 0, .seed = 11,
     .label = "(4, 3, 11) +-inf/NaN"},
    {.op = "reduce_sum", .params = &LAST3, .n_inputs = 1, .inputs = {S3(4, 3, 11)},
     .gen = {G_SPECIAL}, .forward = sum_fwd, .atol = 1e-5, .rtol = 1e-5, .seed = 12,
     .label = "(4, 3, 11) +-inf/NaN"},
    RED("reduce_mean", mean_fwd, mean_bwd, LAST3, S3(3, 2, 100003), 2e-6, G_UNIFORM(0.5, 1.5)),
    /* Sums over the leading axis with the rest contiguous take the column kernel (8 columns a
     * work-item, the rest one by one): 13 columns (one vector and 5 alone), exactly 8, 1027,
     * one row, 5 x (4 x 12) seen as 48 columns, a long column of one sign (compensated: 5e-8
     * seen against 2e-7 allowed; a plain serial float sum is off by 1.5e-6 there), and past
     * 4096 rows (the tree again). */
    RED("reduce_sum", sum_fwd, sum_bwd, FIRST, S2(37, 13), 1e-5, G_NORMAL),
    RED("reduce_sum", sum_fwd, sum_bwd, FIRST, S2(1000, 8), 1e-5, G_NORMAL),
    RED("reduce_sum", sum_fwd, sum_bwd, FIRST, S2(3, 1027), 1e-5, G_NORMAL),
    RED("reduce_mean", mean_fwd, mean_bwd, FIRST, S2(1, 9), 1e-6, G_NORMAL),
    RED("reduce_mean", mean_fwd, mean_bwd, FIRST, S3(5, 4, 12), 1e-5, G_NORMAL),
    RED("reduce_sum", sum_fwd, sum_bwd, FIRST, S2(4096, 17), 2e-7, G_UNIFORM(0.5, 1.5)),
    RED("reduce_sum", sum_fwd, sum_bwd, FIRST, S2(5000, 9), 2e-6, G_UNIFORM(0.5, 1.5)),
    {.op = "reduce_sum", .params = &FIRST, .n_inputs = 1, .inputs = {S2(11, 21)},
     .gen = {G_SPECIAL}, .forward = sum_fwd, .atol = 1e-5, .rtol = 1e-5, .seed = 13,
     .label = "(11, 21) +-inf/NaN cols"},
};

const kiln_check_suite kiln_check_suite_reduce = {
    .name = "reduce",
    .cases = CASES,
    .n_cases = sizeof CASES / sizeof CASES[0],
};
