/*
 * References and check cases for softmax and log_softmax along an axis, following PyTorch's
 * torch.nn.functional.softmax / log_softmax (`dim`, negative counting from the end):
 *   softmax(x)_c = exp(x_c) / sum_k exp(x_k)
 *   log_softmax(x)_c = x_c - log sum_k exp(x_k)
 * over the C elements of each row along the axis. The references subtract the row maximum
 * too (in double it only matters for huge logits), and differentiate analytically:
 *   softmax:     gx = y (g - sum(g y))        log_softmax: gx = g - exp(y) sum(g)
 *
 * Shapes: x (OUTER, C, INNER) around the axis; y and the gradients have x's shape.
 */
#include <math.h>

#include "ref/ref.h"

/* OUTER, C and INNER of the input around the axis (a scalar is one row of one). */
static void split(const kiln_ref_io *io, int64_t *outer, int64_t *c, int64_t *inner)
{
    const kiln_axis_params *p = io->params;
    const kiln_shape *x = &io->in_shapes[0];
    *outer = 1, *c = 1, *inner = 1;
    if (x->ndim == 0)
        return;
    int axis = p->axis < 0 ? p->axis + x->ndim : p->axis;
    for (int d = 0; d < x->ndim; d++) {
        if (d < axis)
            *outer *= x->dim[d];
        else if (d == axis)
            *c = x->dim[d];
        else
            *inner *= x->dim[d];
    }
}

/* y (OUTER, C, INNER) from x, row by row: softmax, or log_softmax when `log_form` is set. */
static void softmax_rows(const kiln_ref_io *io, double *y, bool log_form)
{
    int64_t outer, c, inner;
    split(io, &outer, &c, &inner);
    const double *x = io->in[0];
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t k = 0; k < inner; k++) {
            const int64_t base = o * c * inner + k;
            double m = -INFINITY, s = 0;
            for (int64_t j = 0; j < c; j++)
                m = fmax(m, x[base + j * inner]);
            for (int64_t j = 0; j < c; j++)
                s += exp(x[base + j * inner] - m);
            for (int64_t j = 0; j < c; j++) {
                double shifted = x[base + j * inner] - m;
                y[base + j * inner] = log_form ? shifted - log(s) : exp(shifted) / s;
            }
        }
    }
}

/* gx (OUTER, C, INNER) from y and g, row by row. */
static void softmax_rows_bwd(const kiln_ref_io *io, const double *y, const double *g, double *gx,
                             bool log_form)
{
    int64_t outer, c, inner;
    split(io, &outer, &c, &inner);
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t k = 0; k < inner; k++) {
            const int64_t base = o * c * inner + k;
            double sum = 0; /* sum(g y) for softmax, sum(g) for log_softmax */
            for (int64_t j = 0; j < c; j++)
                sum += log_form ? g[base + j * inner] : g[base + j * inner] * y[base + j * inner];
            for (int64_t j = 0; j < c; j++) {
                const int64_t e = base + j * inner;
                gx[e] = log_form ? g[e] - exp(y[e]) * sum : y[e] * (g[e] - sum);
            }
        }
    }
}

static void softmax_fwd(const kiln_ref_io *io, double *y)
{
    softmax_rows(io, y, false);
}
static void log_softmax_fwd(const kiln_ref_io *io, double *y)
{
    softmax_rows(io, y, true);
}
static void softmax_bwd(const kiln_ref_io *io, const double *y, const double *g, double *const *gin)
{
    softmax_rows_bwd(io, y, g, gin[0], false);
}
static void log_softmax_bwd(const kiln_ref_io *io, const double *y, const double *g,
                            double *const *gin)
{
    softmax_rows_bwd(io, y, g, gin[0], true);
}

static const kiln_axis_params AXIS0 = {0};
static const kiln_axis_params AXIS1 = {1};
static const kiln_axis_params AXIS2 = {2};
static const kiln_axis_params LAST = {-1};
static const kiln_axis_params SECOND_LAST = {-2};

#define S6(a, b, c, d, e, f)                                                                       \
    {                                                                                              \
        .ndim = 6, .dim = { a, b, c, d, e, f }                                                     \
    }

/*
 * One case; generators go through `...` (their braces would split a macro argument).
 * Forward: exp and log cost a few ulp each and the row sum is compensated, so 1e-6 absolute
 * plus 1e-5 relative. Backward: the row sums of g y or g (up to 5003 terms) are compensated
 * too, so 1e-5 holds. `fd` is the ref-fd tolerance (0: the default 1e-5).
 */
#define SM_FIELDS(op_name, name, prm)                                                              \
    .op = op_name, .params = &prm, .n_inputs = 1, .forward = name##_fwd, .backward = name##_bwd,   \
    .atol = 1e-6, .rtol = 1e-5, .grad_atol = 1e-5, .grad_rtol = 1e-5
#define SM(op_name, name, prm, shape, ...)                                                         \
    {                                                                                              \
        SM_FIELDS(op_name, name, prm), .inputs = {shape}, .gen = {__VA_ARGS__}, .seed = __LINE__   \
    }
#define SM_FD(op_name, name, prm, shape, fd, ...)                                                  \
    {                                                                                              \
        SM_FIELDS(op_name, name, prm), .inputs = {shape}, .gen = {__VA_ARGS__}, .fd_rtol = fd,     \
                                       .seed = __LINE__                                            \
    }

/*
 * The axis last with C = 1, 10, 1000 (rows longer than a work-group) and 5003; the channel
 * axis of (N, C, H, W); axis 0; a long strided axis; a middle axis of 5 and 6 dimensions;
 * size 1 throughout; and a scalar.
 *
 * ref-fd on the long rows: the central difference of L = sum(y g) carries the rounding of
 * ~10^4 double additions of O(10) log_softmax values, which reaches a few 1e-6 once divided
 * by 2h, while the harness allows for a single rounding of L; these cases get 5e-5.
 */
#define SM_CASES(op_name, name)                                                                    \
    SM(op_name, name, LAST, S2(4, 1), G_NORMAL), SM(op_name, name, LAST, S2(7, 10), G_NORMAL),     \
        SM(op_name, name, LAST, S2(5, 1000), G_NORMAL),                                            \
        SM_FD(op_name, name, LAST, S2(2, 5003), 5e-5, G_NORMAL),                                   \
        SM(op_name, name, AXIS1, S4(2, 5, 3, 7), G_NORMAL),                                        \
        SM(op_name, name, AXIS0, S3(6, 3, 5), G_NORMAL),                                           \
        SM_FD(op_name, name, AXIS1, S3(2, 4097, 3), 5e-5, G_NORMAL),                               \
        SM(op_name, name, AXIS2, S5(2, 3, 4, 5, 3), G_NORMAL),                                     \
        SM(op_name, name, SECOND_LAST, S6(2, 1, 3, 2, 65, 3), G_NORMAL),                           \
        SM(op_name, name, AXIS0, S1(1), G_NORMAL), SM(op_name, name, LAST, S0(), G_NORMAL)

/* Logits uniform in [50, 100]: exp overflows float (past 88.7) unless the maximum is
 * subtracted first. log_softmax values reach -50, so their float rounding is ~4e-6 there:
 * covered by the relative tolerance. */
#define SM_LARGE(op_name, name)                                                                    \
    SM(op_name, name, LAST, S2(8, 300), G_UNIFORM(50, 100)),                                       \
        SM(op_name, name, AXIS1, S3(4, 77, 3), G_UNIFORM(50, 100))

static const kiln_check_case CASES[] = {
    SM_CASES("softmax", softmax),
    SM_CASES("log_softmax", log_softmax),
    SM_LARGE("softmax", softmax),
    SM_LARGE("log_softmax", log_softmax),
};

const kiln_check_suite kiln_check_suite_softmax = {
    .name = "softmax",
    .cases = CASES,
    .n_cases = sizeof CASES / sizeof CASES[0],
};
