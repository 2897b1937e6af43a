/*
 * References and check cases for conv2d and conv3d: PyTorch Conv2d / Conv3d with groups = 1
 * (pytorch.org/docs, torch.nn.Conv2d: out(n, f) = bias(f) + sum over c of weight(f, c) star
 * input(n, c), star being cross-correlation with zero padding, stride and dilation). The
 * reference is the definition itself, one output element at a time in double; a 2-D case is
 * a 3-D one with depth 1.
 */
#include <stdlib.h>
#include <string.h>

#include "ref/ref.h"

/* A case's sizes as 3-D ones, (depth, height, width); 2-D cases get depth 1. */
typedef struct conv_dims {
    int64_t n, c, f;
    int64_t in[3], k[3], out[3], stride[3], pad[3], dilation[3];
} conv_dims;

static conv_dims dims_of(const kiln_ref_io *io)
{
    const kiln_conv_params *p = io->params;
    const kiln_shape *x = &io->in_shapes[0], *w = &io->in_shapes[1];
    conv_dims d;
    d.n = x->dim[0];
    d.c = x->dim[1];
    d.f = w->dim[0];
    for (int a = 0; a < 3; a++) {
        d.in[a] = d.k[a] = d.out[a] = d.stride[a] = d.dilation[a] = 1;
        d.pad[a] = 0;
    }
    for (int a = 0; a < p->n_spatial; a++) {
        int j = a + 3 - p->n_spatial;
        d.in[j] = x->dim[2 + a];
        d.k[j] = w->dim[2 + a];
        d.out[j] = io->out_shape.dim[2 + a];
        d.stride[j] = p->stride[a];
        d.pad[j] = p->padding[a];
        d.dilation[j] = p->dilation[a];
    }
    return d;
}

/* The element of x, (N, C, D, H, W) row-major, that tap t = (c, kd, kh, kw) of filter
 * position pos = (od, oh, ow) in sample n reads, or -1 where it reads the zero padding. The
 * position is pos * stride - pad + k * dilation along each axis (torch.nn.Conv3d). */
static int64_t tap_input(const conv_dims *d, int64_t n, const int64_t pos[3], int64_t t)
{
    int64_t k[3];
    for (int a = 2; a >= 0; a--) {
        k[a] = t % d->k[a];
        t /= d->k[a];
    }
    int64_t xi = n * d->c + t; /* t is now the channel */
    for (int a = 0; a < 3; a++) {
        int64_t i = pos[a] * d->stride[a] - d->pad[a] + k[a] * d->dilation[a];
        if (i < 0 || i >= d->in[a])
            return -1;
        xi = xi * d->in[a] + i;
    }
    return xi;
}

/*
 * Visits every (output element, kernel tap) pair that reads inside the input.
 * x: (N, C, D, H, W), w: (F, C, KD, KH, KW), b: (F,) or absent, y and g: (N, F, OD, OH, OW).
 * With y, writes y = b + sum x w. Without y, writes the gradients of sum(y g) that are not
 * NULL: gx = sum g w, gw = sum g x, gb = sum g (each zeroed first).
 */
static void convolve(const kiln_ref_io *io, double *y, const double *g, double *const *gin)
{
    const kiln_conv_params *p = io->params;
    conv_dims d = dims_of(io);
    const double *x = io->in[0], *w = io->in[1], *b = p->has_bias ? io->in[2] : NULL;
    double *gx = gin != NULL ? gin[0] : NULL, *gw = gin != NULL ? gin[1] : NULL;
    double *gb = gin != NULL && p->has_bias ? gin[2] : NULL;
    for (int i = 0; i < io->n_inputs && gin != NULL; i++) {
        if (gin[i] != NULL)
            memset(gin[i], 0, (size_t)kiln_shape_count(&io->in_shapes[i]) * sizeof(double));
    }
    int64_t n_out = kiln_shape_count(&io->out_shape);
    int64_t n_taps = d.c * d.k[0] * d.k[1] * d.k[2]; /* w's elements per filter */
    for (int64_t o = 0; o < n_out; o++) {
        int64_t pos[3], rest = o; /* o = (n, f, od, oh, ow) */
        for (int a = 2; a >= 0; a--) {
            pos[a] = rest % d.out[a];
            rest /= d.out[a];
        }
        int64_t f = rest % d.f, n = rest / d.f;
        double acc = b != NULL ? b[f] : 0;
        for (int64_t t = 0; t < n_taps; t++) {
            int64_t xi = tap_input(&d, n, pos, t), wi = f * n_taps + t;
            if (xi < 0)
                continue;
            acc += x[xi] * w[wi];
            if (gx != NULL)
                gx[xi] += g[o] * w[wi];
            if (gw != NULL)
                gw[wi] += g[o] * x[xi];
        }
        if (y != NULL)
            y[o] = acc;
        if (gb != NULL)
            gb[f] += g[o];
    }
}

static void conv_fwd(const kiln_ref_io *io, double *y)
{
    convolve(io, y, NULL, NULL);
}

static void conv_bwd(const kiln_ref_io *io, const double *y, const double *g, double *const *gin)
{
    (void)y;
    convolve(io, NULL, g, gin);
}

/* With a fused relu (kiln_op_args.activation): y = relu(conv(x)), relu as torch.nn.ReLU
 * (x <= 0 gives 0); backward hands g (y > 0), the gradient of the convolution's own output, to
 * the convolution's backward. */
static void conv_relu_fwd(const kiln_ref_io *io, double *y)
{
    convolve(io, y, NULL, NULL);
    int64_t n = kiln_shape_count(&io->out_shape);
    for (int64_t o = 0; o < n; o++)
        y[o] = y[o] <= 0 ? 0 : y[o];
}

static void conv_relu_bwd(const kiln_ref_io *io, const double *y, const double *g,
                          double *const *gin)
{
    int64_t n = kiln_shape_count(&io->out_shape);
    double *masked = malloc((size_t)n * sizeof *masked);
    if (masked == NULL)
        return; /* the gradients stay unwritten, and the comparison fails */
    for (int64_t o = 0; o < n; o++)
        masked[o] = y[o] > 0 ? g[o] : 0;
    convolve(io, NULL, masked, gin);
    free(masked);
}

/* ---- cases ---- */

static const kiln_conv_params SAME2 = {2, {1, 1}, {1, 1}, {1, 1}, true};
static const kiln_conv_params SAME2_NO_BIAS = {2, {1, 1}, {1, 1}, {1, 1}, false};
static const kiln_conv_params POINT2 = {2, {1, 1}, {0, 0}, {1, 1}, true};
static const kiln_conv_params POINT2_S2P1 = {2, {2, 2}, {1, 1}, {1, 1}, true};
static const kiln_conv_params STRIDE2 = {2, {2, 2}, {0, 0}, {1, 1}, true};
static const kiln_conv_params DILATE2 = {2, {1, 1}, {1, 1}, {2, 2}, true};
static const kiln_conv_params RECT2 = {2, {2, 1}, {0, 1}, {1, 1}, true};
static const kiln_conv_params SAME_D3 = {2, {1, 1}, {3, 3}, {3, 3}, true};
static const kiln_conv_params ROWS_ONLY2 = {2, {1, 1}, {0, 1}, {1, 1}, true};
static const kiln_conv_params TALL2 = {2, {1, 1}, {1, 0}, {1, 1}, true};
static const kiln_conv_params WIDE_PAD2 = {2, {1, 1}, {2, 1}, {1, 1}, true};
static const kiln_conv_params DEPTH_STRIDE3 = {3, {2, 1, 1}, {1, 1, 1}, {1, 1, 1}, true};
static const kiln_conv_params SAME3 = {3, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, true};
static const kiln_conv_params STRIDE3 = {3, {2, 2, 2}, {1, 1, 1}, {1, 1, 1}, true};
static const kiln_conv_params DILATE3 = {3, {1, 1, 1}, {1, 1, 1}, {1, 2, 1}, true};
static const kiln_conv_params POINT3 = {3, {1, 1, 1}, {0, 0, 0}, {1, 1, 1}, true};
static const kiln_conv_params MIXED3_NO_BIAS = {3, {2, 1, 2}, {0, 1, 1}, {1, 1, 2}, false};

/*
 * Tolerances scale with the number of float terms the device adds per result. Each forward
 * output is a GEMM sum of K = C KD KH KW products of N(0, 1) values: its partial sums grow
 * like sqrt(K), so the float rounding adds up to about K u (u = 6e-8), and atol = 1e-6 K keeps
 * a >= 10x margin over that at every K here. Backward sums more: grad w and grad b add N P
 * products (P the output positions), grad x up to F KD KH KW; `bwd_terms` is the larger, and
 * grad_atol = 1e-6 bwd_terms likewise. rtol stays at 1e-5 (a few float ulps per term).
 */
#define CONV_CASE_ACT(op_name, prm, text, fwd_terms, bwd_terms, act, fwd, bwd, n_in, ...)          \
    {                                                                                              \
        .op = op_name, .params = &prm, .n_inputs = n_in, .inputs = {__VA_ARGS__},                  \
        .gen = {G_NORMAL, G_NORMAL, G_NORMAL}, .forward = fwd, .backward = bwd,                    \
        .atol = 1e-6 * (fwd_terms), .rtol = 1e-5, .grad_atol = 1e-6 * (bwd_terms),                 \
        .grad_rtol = 1e-5, .seed = __LINE__, .label = text, .activation = act                      \
    }
#define CONV_CASE(op_name, prm, text, fwd_terms, bwd_terms, n_in, ...)                             \
    CONV_CASE_ACT(op_name, prm, text, fwd_terms, bwd_terms, KILN_ACTIVATION_NONE, conv_fwd,        \
                  conv_bwd, n_in, __VA_ARGS__)
/* The same with relu fused into the convolution (the executor's conv + relu). */
#define CONV_RELU_CASE(op_name, prm, text, fwd_terms, bwd_terms, n_in, ...)                        \
    CONV_CASE_ACT(op_name, prm, text, fwd_terms, bwd_terms, KILN_ACTIVATION_RELU, conv_relu_fwd,   \
                  conv_relu_bwd, n_in, __VA_ARGS__)

/* Every case keeps its reference forward small: the ref-fd row runs it 2 x 24 times per
 * input. The largest (the Fashion-MNIST-like one) is 4 x 8 x 28 x 28 outputs of 9 taps. */
static const kiln_check_case CASES[] = {
    /* Size 1 everywhere: a 1x1 kernel on one pixel (the direct path, no columns). */
    CONV_CASE("conv2d", POINT2, "(1,1,1,1) k1x1", 1, 1, 3, S4(1, 1, 1, 1), S4(1, 1, 1, 1), S1(1)),
    /* 3x3 'same' convolution; odd sizes; P = 35, K = 27: nothing a multiple of 64. */
    CONV_CASE("conv2d", SAME2, "(2,3,7,5) k3x3 s1 p1", 27, 70, 3, S4(2, 3, 7, 5), S4(4, 3, 3, 3),
              S1(4)),
    CONV_CASE("conv2d", STRIDE2, "(2,3,7,5) k3x3 s2 p0", 27, 36, 3, S4(2, 3, 7, 5), S4(4, 3, 3, 3),
              S1(4)),
    CONV_CASE("conv2d", DILATE2, "(2,3,7,5) k3x3 p1 d2", 27, 36, 3, S4(2, 3, 7, 5), S4(4, 3, 3, 3),
              S1(4)),
    /* Non-square kernel 2x3, stride (2, 1), padding (0, 1): output (3, 5). */
    CONV_CASE("conv2d", RECT2, "(2,3,7,5) k2x3 s(2,1) p(0,1)", 18, 30, 3, S4(2, 3, 7, 5),
              S4(5, 3, 2, 3), S1(5)),
    /* The shifted column kernels (stride 1 along height and width, OW = W; cl/conv.cl take
     * a plane 16 columns at a time): W = 17 and P = 85, so rows straddle the 16-wide blocks
     * and the last block is partial; */
    CONV_CASE("conv2d", SAME2, "(2,2,5,17) k3x3 p1", 18, 170, 3, S4(2, 2, 5, 17), S4(3, 2, 3, 3),
              S1(3)),
    /* taps shifted by up to 3 W + 3 = 27 > 16 positions (dilation 3, padding 3): whole blocks
     * in the padding; */
    CONV_CASE("conv2d", SAME_D3, "(2,2,9,8) k3x3 p3 d3", 18, 144, 3, S4(2, 2, 9, 8), S4(3, 2, 3, 3),
              S1(3)),
    /* no padding along the height: OH = H - 2 = 4 rows of OW = W = 9; */
    CONV_CASE("conv2d", ROWS_ONLY2, "(2,2,6,9) k3x3 p(0,1)", 18, 72, 3, S4(2, 2, 6, 9),
              S4(3, 2, 3, 3), S1(3)),
    /* W = 1 (every lane of a block in another row), a 3x1 kernel; */
    CONV_CASE("conv2d", TALL2, "(2,2,7,1) k3x1 p(1,0)", 6, 14, 3, S4(2, 2, 7, 1), S4(3, 2, 3, 1),
              S1(3)),
    /* padding 2 along the height, wider than the kernel reaches: OH = H + 2 = 7, whole rows of
     * zeros; */
    CONV_CASE("conv2d", WIDE_PAD2, "(2,2,5,9) k3x3 p(2,1)", 18, 126, 3, S4(2, 2, 5, 9),
              S4(3, 2, 3, 3), S1(3)),
    /* 3-D with stride 2 along the depth only: OD = 3 planes of (4, 6), each shifted. */
    CONV_CASE("conv3d", DEPTH_STRIDE3, "(2,2,5,4,6) k3x3x3 s(2,1,1) p1", 54, 144, 3,
              S5(2, 2, 5, 4, 6), S5(3, 2, 3, 3, 3), S1(3)),
    /* 1x1 convolution: the direct path, grad x straight from the GEMM. */
    CONV_CASE("conv2d", POINT2, "(2,3,7,5) k1x1", 3, 70, 3, S4(2, 3, 7, 5), S4(4, 3, 1, 1), S1(4)),
    /* 1x1 kernel with stride and padding: the column path with K = C. */
    CONV_CASE("conv2d", POINT2_S2P1, "(2,3,7,5) k1x1 s2 p1", 3, 40, 3, S4(2, 3, 7, 5),
              S4(4, 3, 1, 1), S1(4)),
    /* Fashion-MNIST-CNN-like first layer, the larger case: P = 784, N P = 3136. */
    CONV_CASE("conv2d", SAME2, "(4,1,28,28) 8 k3x3 p1", 9, 3136, 3, S4(4, 1, 28, 28),
              S4(8, 1, 3, 3), S1(8)),
    CONV_CASE("conv2d", SAME2_NO_BIAS, "(2,3,7,5) k3x3 p1 no bias", 27, 70, 2, S4(2, 3, 7, 5),
              S4(4, 3, 3, 3)),
    CONV_CASE("conv3d", SAME3, "(1,2,5,6,7) k3x3x3 p1", 54, 210, 3, S5(1, 2, 5, 6, 7),
              S5(3, 2, 3, 3, 3), S1(3)),
    CONV_CASE("conv3d", STRIDE3, "(1,2,5,6,7) k3x3x3 s2 p1", 54, 81, 3, S5(1, 2, 5, 6, 7),
              S5(3, 2, 3, 3, 3), S1(3)),
    /* Dilation (1, 2, 1): output (5, 4, 7). */
    CONV_CASE("conv3d", DILATE3, "(1,2,5,6,7) k3x3x3 p1 d(1,2,1)", 54, 140, 3, S5(1, 2, 5, 6, 7),
              S5(3, 2, 3, 3, 3), S1(3)),
    CONV_CASE("conv3d", POINT3, "(1,2,5,6,7) k1x1x1", 2, 210, 3, S5(1, 2, 5, 6, 7),
              S5(3, 2, 1, 1, 1), S1(3)),
    /* Two samples, a kernel 2x3x2 and different stride, padding and dilation per axis:
     * output (2, 6, 3), no bias. */
    CONV_CASE("conv3d", MIXED3_NO_BIAS, "(2,3,4,6,5) k2x3x2 s(2,1,2) p(0,1,1) d(1,1,2)", 36, 72, 2,
              S5(2, 3, 4, 6, 5), S5(2, 3, 2, 3, 2)),
    /* Batches of 5 and 3 for chunk boundaries: tests/ops/test_conv.c reruns every multi-sample
     * case with chunks of 1 and 3 samples (5 = 3 + 2, 4 = 3 + 1, 3 = one full chunk). */
    CONV_CASE("conv2d", STRIDE2, "(5,2,6,5) k3x3 s2 p0", 18, 30, 3, S4(5, 2, 6, 5), S4(3, 2, 3, 3),
              S1(3)),
    CONV_CASE("conv3d", STRIDE3, "(3,2,4,5,3) k3x3x3 s2 p1", 54, 54, 3, S5(3, 2, 4, 5, 3),
              S5(2, 2, 3, 3, 3), S1(2)),
    /* relu fused into the column path: the forward copy applies it; backward masks g in its
     * copy (also for one-sample chunks, which otherwise read g in place) and in the bias sum.
     * The 5-sample case runs in chunks of 1 and 3 too; about half the outputs are negative. */
    CONV_RELU_CASE("conv2d", SAME2, "(2,3,7,5) k3x3 s1 p1 +relu", 27, 70, 3, S4(2, 3, 7, 5),
                   S4(4, 3, 3, 3), S1(4)),
    CONV_RELU_CASE("conv2d", SAME2_NO_BIAS, "(2,3,7,5) k3x3 p1 no bias +relu", 27, 70, 2,
                   S4(2, 3, 7, 5), S4(4, 3, 3, 3)),
    CONV_RELU_CASE("conv2d", STRIDE2, "(5,2,6,5) k3x3 s2 p0 +relu", 18, 30, 3, S4(5, 2, 6, 5),
                   S4(3, 2, 3, 3), S1(3)),
    CONV_RELU_CASE("conv3d", STRIDE3, "(3,2,4,5,3) k3x3x3 s2 p1 +relu", 54, 54, 3,
                   S5(3, 2, 4, 5, 3), S5(2, 2, 3, 3, 3), S1(2)),
};

const kiln_check_suite kiln_check_suite_conv = {
    .name = "conv",
    .cases = CASES,
    .n_cases = sizeof CASES / sizeof CASES[0],
};
