/*
 * References and check cases for upsample2d and upsample3d: nearest-neighbour upsampling by
 * integer factors, PyTorch nn.Upsample(scale_factor=s, mode='nearest') (pytorch.org/docs,
 * "Upsample": out = floor(in * s), and output index o reads input index floor(o / s)). The
 * gradient of an input element is the sum over the block of outputs that copy it.
 *
 * Shapes: x (N, C, [D,] H, W), y (N, C, [D * sd,] H * sh, W * sw). A 2-D upsample is computed
 * as a 3-D one with D = 1 and a depth factor of 1.
 */
#include <string.h>

#include "ref/ref.h"

/* Index into x (N, C, D, H, W) of output element o of y. */
static int64_t source_index(const kiln_ref_io *io, int64_t o)
{
    const kiln_upsample_params *p = io->params;
    const kiln_shape *x = &io->in_shapes[0];
    int ns = p->n_spatial;
    int64_t coord[3], rest = o;
    for (int i = ns - 1; i >= 0; i--) {
        coord[i] = (rest % io->out_shape.dim[2 + i]) / p->scale[i];
        rest /= io->out_shape.dim[2 + i];
    }
    int64_t idx = rest; /* the (N, C) plane */
    for (int i = 0; i < ns; i++)
        idx = idx * x->dim[2 + i] + coord[i];
    return idx;
}

/* y[n, c, d, h, w] = x[n, c, d / sd, h / sh, w / sw]. */
static void upsample_fwd(const kiln_ref_io *io, double *y)
{
    int64_t n = kiln_shape_count(&io->out_shape);
    for (int64_t o = 0; o < n; o++)
        y[o] = io->in[0][source_index(io, o)];
}

/* gx[source(o)] += g[o] over every output element o. */
static void upsample_bwd(const kiln_ref_io *io, const double *y, const double *g,
                         double *const *gin)
{
    (void)y;
    memset(gin[0], 0, (size_t)kiln_shape_count(&io->in_shapes[0]) * sizeof(double));
    int64_t n = kiln_shape_count(&io->out_shape);
    for (int64_t o = 0; o < n; o++)
        gin[0][source_index(io, o)] += g[o];
}

static const kiln_upsample_params U2_1 = {2, {1, 1}};
static const kiln_upsample_params U2_2 = {2, {2, 2}};
static const kiln_upsample_params U2_3 = {2, {3, 3}};
static const kiln_upsample_params U2_23 = {2, {2, 3}};
static const kiln_upsample_params U2_31 = {2, {3, 1}};
static const kiln_upsample_params U3_1 = {3, {1, 1, 1}};
static const kiln_upsample_params U3_2 = {3, {2, 2, 2}};
static const kiln_upsample_params U3_3 = {3, {3, 3, 3}};
static const kiln_upsample_params U3_123 = {3, {1, 2, 3}};
static const kiln_upsample_params U3_312 = {3, {3, 1, 2}};

/* Forward copies exactly; backward sums at most 27 gradients per element. The shape comes
 * last (`...`) so that its braces survive the macro. */
#define UP(op_name, prm, ...)                                                                      \
    {                                                                                              \
        .op = op_name, .params = &prm, .n_inputs = 1, .inputs = {__VA_ARGS__}, .gen = {G_NORMAL},  \
        .forward = upsample_fwd, .backward = upsample_bwd, .atol = 0, .rtol = 0,                   \
        .grad_atol = 1e-5, .grad_rtol = 1e-5, .seed = __LINE__                                     \
    }

static const kiln_check_case CASES[] = {
    UP("upsample2d", U2_1, S4(2, 3, 4, 5)),      UP("upsample2d", U2_2, S4(1, 1, 1, 1)),
    UP("upsample2d", U2_2, S4(2, 3, 7, 5)),      UP("upsample2d", U2_3, S4(1, 2, 5, 3)),
    UP("upsample2d", U2_23, S4(2, 2, 3, 4)),     UP("upsample2d", U2_31, S4(1, 3, 5, 1)),
    UP("upsample2d", U2_2, S4(4, 16, 32, 33)),   UP("upsample3d", U3_1, S5(1, 2, 3, 4, 5)),
    UP("upsample3d", U3_2, S5(1, 2, 3, 4, 5)),   UP("upsample3d", U3_3, S5(1, 1, 1, 1, 1)),
    UP("upsample3d", U3_3, S5(2, 1, 3, 2, 5)),   UP("upsample3d", U3_123, S5(2, 1, 3, 2, 4)),
    UP("upsample3d", U3_312, S5(1, 3, 2, 5, 3)), UP("upsample3d", U3_2, S5(2, 8, 9, 10, 11)),
};

const kiln_check_suite kiln_check_suite_upsample = {
    .name = "upsample",
    .cases = CASES,
    .n_cases = sizeof CASES / sizeof CASES[0],
};
