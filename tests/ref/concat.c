/*
 * References and check cases for concat, following torch.cat (pytorch.org/docs, "torch.cat":
 * tensors of the same shape except in the concatenating dimension, joined in order along it).
 * The gradient of each input is its slice of the output gradient.
 *
 * Shapes, viewed around the axis: input k (outer, A_k, inner), output (outer, sum A_k, inner).
 */
#include "ref/ref.h"

typedef struct concat_view {
    int axis;
    int64_t outer, inner, total; /* total = the output's size along the axis */
} concat_view;

static concat_view view_of(const kiln_ref_io *io)
{
    const kiln_axis_params *p = io->params;
    const kiln_shape *y = &io->out_shape;
    concat_view v = {p->axis < 0 ? p->axis + y->ndim : p->axis, 1, 1, 0};
    for (int d = 0; d < v.axis; d++)
        v.outer *= y->dim[d];
    for (int d = v.axis + 1; d < y->ndim; d++)
        v.inner *= y->dim[d];
    v.total = y->dim[v.axis];
    return v;
}

/* Visits every output element as (output index, input k, index in input k). */
typedef void (*concat_fn)(const kiln_ref_io *io, int64_t o, int k, int64_t xi, void *state);

static void for_each_element(const kiln_ref_io *io, concat_fn fn, void *state)
{
    concat_view v = view_of(io);
    for (int64_t outer = 0; outer < v.outer; outer++) {
        int64_t a = 0; /* position along the output's axis */
        for (int k = 0; k < io->n_inputs; k++) {
            int64_t ak = io->in_shapes[k].dim[v.axis];
            for (int64_t j = 0; j < ak; j++, a++) {
                for (int64_t r = 0; r < v.inner; r++) {
                    int64_t o = (outer * v.total + a) * v.inner + r;
                    int64_t xi = (outer * ak + j) * v.inner + r;
                    fn(io, o, k, xi, state);
                }
            }
        }
    }
}

static void copy_in(const kiln_ref_io *io, int64_t o, int k, int64_t xi, void *state)
{
    double *y = state;
    y[o] = io->in[k][xi];
}

/* y = [x_0, x_1, ...] along the axis. */
static void concat_fwd(const kiln_ref_io *io, double *y)
{
    for_each_element(io, copy_in, y);
}

typedef struct grad_state {
    const double *g;
    double *const *gin;
} grad_state;

static void copy_grad(const kiln_ref_io *io, int64_t o, int k, int64_t xi, void *state)
{
    (void)io;
    const grad_state *s = state;
    if (s->gin[k] != NULL)
        s->gin[k][xi] = s->g[o];
}

/* gx_k = the slice of g that x_k was copied to. */
static void concat_bwd(const kiln_ref_io *io, const double *y, const double *g, double *const *gin)
{
    (void)y;
    grad_state state = {g, gin};
    for_each_element(io, copy_grad, &state);
}

static const kiln_axis_params AXIS0 = {0};
static const kiln_axis_params AXIS1 = {1};
static const kiln_axis_params AXIS_LAST = {-1};
static const kiln_axis_params AXIS_M2 = {-2};

/* Forward copies exactly; each gradient element gets exactly one term. The shapes come last
 * (`...`) so that their braces survive the macro. */
#define CAT(prm, name, n, ...)                                                                     \
    {                                                                                              \
        .op = "concat", .params = &prm, .label = name, .n_inputs = n, .inputs = {__VA_ARGS__},     \
        .gen = {G_NORMAL, G_NORMAL, G_NORMAL, G_NORMAL, G_NORMAL, G_NORMAL, G_NORMAL, G_NORMAL},   \
        .forward = concat_fwd, .backward = concat_bwd, .atol = 0, .rtol = 0, .grad_atol = 1e-6,    \
        .grad_rtol = 1e-6, .seed = __LINE__                                                        \
    }

static const kiln_check_case CASES[] = {
    /* The U-Net skip connection: (N, C1, H, W) + (N, C2, H, W) along the channels. */
    CAT(AXIS1, NULL, 2, S4(2, 3, 5, 7), S4(2, 4, 5, 7)),
    CAT(AXIS0, NULL, 3, S3(1, 3, 4), S3(2, 3, 4), S3(3, 3, 4)),
    CAT(AXIS_LAST, NULL, 2, S3(2, 3, 1), S3(2, 3, 5)),
    CAT(AXIS_M2, NULL, 3, S4(2, 1, 3, 2), S4(2, 1, 1, 2), S4(2, 1, 4, 2)),
    CAT(AXIS0, NULL, 1, S2(4, 5)),
    CAT(AXIS1, NULL, 2, S2(1, 1), S2(1, 1)),
    CAT(AXIS0, NULL, 2, S1(1), S1(1)),
    CAT(AXIS1, "8 inputs (2, k, 3), k = 1..8", 8, S3(2, 1, 3), S3(2, 2, 3), S3(2, 3, 3),
        S3(2, 4, 3), S3(2, 5, 3), S3(2, 6, 3), S3(2, 7, 3), S3(2, 8, 3)),
    CAT(AXIS1, NULL, 2, S4(4, 32, 33, 35), S4(4, 16, 33, 35)),
};

const kiln_check_suite kiln_check_suite_concat = {
    .name = "concat",
    .cases = CASES,
    .n_cases = sizeof CASES / sizeof CASES[0],
};
