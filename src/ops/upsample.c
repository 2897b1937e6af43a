/*
 * Upsampling ops: upsample2d and upsample3d, nearest neighbour by an integer factor per
 * spatial axis (PyTorch nn.Upsample(scale_factor=..., mode='nearest') with integer factors):
 * x (N, C, [D,] H, W) -> y (N, C, [D * sd,] H * sh, W * sw). Backward sums the gradient over
 * each block an input element was copied to. Kernels are in cl/upsample.cl.
 */
#include "ops/op.h"

static const char *spatial_layout(int n_spatial)
{
    return n_spatial == 2 ? "(N, C, H, W)" : "(N, C, D, H, W)";
}

static kiln_status upsample_infer(kiln_context *ctx, const kiln_op *op, const void *params,
                                  const kiln_shape *in, int n_in, kiln_shape *out,
                                  kiln_shape *saved)
{
    (void)saved;
    const kiln_upsample_params *p = params;
    int ns = op->variant;
    if (p->n_spatial != ns)
        return kiln__param_error(ctx, op, "n_spatial is %d; this op upsamples %d spatial axes",
                                 p->n_spatial, ns);
    for (int i = 0; i < ns; i++) {
        if (p->scale[i] < 1)
            return kiln__param_error(ctx, op, "scale %d on spatial axis %d must be >= 1",
                                     p->scale[i], i);
    }
    if (in[0].ndim != 2 + ns)
        return kiln__shape_error(ctx, op, in, n_in, "the input must be %s", spatial_layout(ns));
    *out = in[0];
    for (int i = 0; i < ns; i++)
        out->dim[2 + i] *= p->scale[i];
    if (kiln_shape_count(out) > UINT32_MAX)
        return kiln__shape_error(ctx, op, in, n_in,
                                 "the output would have more than 2^32 - 1 elements");
    return KILN_OK;
}

/* The kernels' geometry: input size and factors as (D, H, W, unused), D = 1 for 2-D. */
static void upsample_geometry(const kiln_upsample_params *p, const kiln_shape *x, uint32_t in[4],
                              uint32_t scale[4])
{
    for (int j = 0; j < 4; j++)
        in[j] = scale[j] = 1;
    for (int i = 0; i < p->n_spatial; i++) {
        int j = 3 - p->n_spatial + i;
        in[j] = (uint32_t)x->dim[2 + i];
        scale[j] = (uint32_t)p->scale[i];
    }
}

/* Forward (one work-item per output element) and backward (one per input element) take the
 * same arguments apart from which tensors they read and write. */
static kiln_status upsample_launch(kiln_device *dev, const kiln_op_args *a, const char *kernel,
                                   const kiln_tensor *src, kiln_tensor *dst, uint32_t n)
{
    uint32_t in[4], scale[4];
    upsample_geometry(a->params, &a->inputs[0]->shape, in, scale);
    kiln__arg args[] = {KILN__ARG_T(src), KILN__ARG_T(dst), KILN__ARG_UINT(n), kiln__arg_u32x4(in),
                        kiln__arg_u32x4(scale)};
    return kiln__launch_1d(dev, "upsample", kernel, args, 5, n);
}

static kiln_status upsample_forward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    (void)op;
    return upsample_launch(dev, a, "upsample_fwd", a->inputs[0], a->output,
                           (uint32_t)kiln_tensor_count(a->output));
}

static kiln_status upsample_backward(kiln_device *dev, const kiln_op *op, const kiln_op_args *a)
{
    (void)op;
    if (a->grad_inputs == NULL || a->grad_inputs[0] == NULL)
        return KILN_OK;
    return upsample_launch(dev, a, "upsample_bwd_x", a->grad_output, a->grad_inputs[0],
                           (uint32_t)kiln_tensor_count(a->inputs[0]));
}

#define UPSAMPLE_OP(symbol, op_name, n_spatial)                                                    \
    const kiln_op symbol = {                                                                       \
        .name = op_name,                                                                           \
        .program = "upsample",                                                                     \
        .n_inputs = 1,                                                                             \
        .params_size = sizeof(kiln_upsample_params),                                               \
        .infer = upsample_infer,                                                                   \
        .forward = upsample_forward,                                                               \
        .backward = upsample_backward,                                                             \
        .variant = n_spatial,                                                                      \
    }

UPSAMPLE_OP(kiln__op_upsample2d, "upsample2d", 2);
UPSAMPLE_OP(kiln__op_upsample3d, "upsample3d", 3);
