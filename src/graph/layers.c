/*
 * Layer builders: the Keras-like layers of the config vocabulary expressed as parameters and
 * op nodes. A layer named "conv1" adds parameters "conv1.weight" and "conv1.bias" and a node
 * "conv1"; checkpoints store parameters under these names. No op logic lives here.
 */
#include <stdio.h>
#include <string.h>

#include "graph/graph.h"

/* "<layer>.<part>" into `out`; false when it does not fit. */
static bool part_name(char *out, size_t capacity, const char *layer, const char *part)
{
    int n = snprintf(out, capacity, "%s.%s", layer, part);
    return n > 0 && (size_t)n < capacity;
}

static kiln_status name_error(kiln_graph *g, const char *function, const char *layer)
{
    return kiln__error(g->ctx, KILN_ERR_INVALID_ARGUMENT, function,
                       "layer name '%.64s...' is too long", layer != NULL ? layer : "");
}

static kiln_status rank_error(kiln_graph *g, const char *function, const char *layer,
                              const kiln_shape *x, const char *want)
{
    char text[96];
    return kiln__error(g->ctx, KILN_ERR_SHAPE, function, "layer '%s': input has shape %s; %s",
                       layer, kiln_shape_format(x, text, sizeof text), want);
}

kiln_status kiln_graph_dense(kiln_graph *g, const char *name, kiln_value x, int64_t units,
                             bool bias, kiln_value *out)
{
    kiln_status rc = KILN_OK;
    char wname[256], bname[256];
    const kiln_shape *xs = kiln_graph_value_shape(g, x);
    if (xs == NULL || name == NULL || out == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    if (!part_name(wname, sizeof wname, name, "weight") ||
        !part_name(bname, sizeof bname, name, "bias"))
        return name_error(g, __func__, name);
    if (xs->ndim != 2)
        return rank_error(g, __func__, name, xs, "dense needs (N, features); add a flatten");
    if (units < 1)
        return kiln__error(g->ctx, KILN_ERR_INVALID_ARGUMENT, __func__,
                           "layer '%s': units must be at least 1, got %lld", name,
                           (long long)units);
    kiln_value inputs[3] = {x, -1, -1};
    kiln_shape ws = {2, {xs->dim[1], units}};
    kiln_init he = {KILN_INIT_HE_UNIFORM, 0, 0, 1};
    KILN_CHECK(kiln_graph_parameter(g, wname, &ws, &he, &inputs[1]));
    if (bias) {
        kiln_shape bs = {1, {units}};
        kiln_init zero = {KILN_INIT_CONSTANT, 0, 0, 0};
        KILN_CHECK(kiln_graph_parameter(g, bname, &bs, &zero, &inputs[2]));
    }
    kiln_dense_params p = {.has_bias = bias};
    KILN_CHECK(kiln_graph_op(g, name, "dense", &p, inputs, bias ? 3 : 2, out));
cleanup:
    return rc;
}

kiln_status kiln_graph_conv(kiln_graph *g, const char *name, kiln_value x, int n_spatial,
                            int64_t filters, const int kernel[3], const int stride[3],
                            const int padding[3], bool same, const int dilation[3], bool bias,
                            kiln_value *out)
{
    kiln_status rc = KILN_OK;
    char wname[256], bname[256];
    const kiln_shape *xs = kiln_graph_value_shape(g, x);
    if (xs == NULL || name == NULL || out == NULL || kernel == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    if (!part_name(wname, sizeof wname, name, "weight") ||
        !part_name(bname, sizeof bname, name, "bias"))
        return name_error(g, __func__, name);
    if ((n_spatial != 2 && n_spatial != 3) || xs->ndim != 2 + n_spatial)
        return rank_error(g, __func__, name, xs,
                          n_spatial == 3 ? "conv3d needs (N, C, D, H, W)"
                                         : "conv2d needs (N, C, H, W)");
    kiln_conv_params p = {.n_spatial = n_spatial, .has_bias = bias};
    kiln_shape ws = {2 + n_spatial, {filters, xs->dim[1]}};
    for (int i = 0; i < n_spatial; i++) {
        p.stride[i] = stride != NULL ? stride[i] : 1;
        p.dilation[i] = dilation != NULL ? dilation[i] : 1;
        if (same && kernel[i] % 2 == 0)
            return kiln__error(g->ctx, KILN_ERR_INVALID_ARGUMENT, __func__,
                               "layer '%s': padding 'same' needs odd kernel sizes, got %d", name,
                               kernel[i]);
        p.padding[i] = same ? p.dilation[i] * (kernel[i] - 1) / 2
                            : (padding != NULL ? padding[i] : 0);
        ws.dim[2 + i] = kernel[i];
    }
    kiln_value inputs[3] = {x, -1, -1};
    kiln_init he = {KILN_INIT_HE_UNIFORM, 0, 1, 0};
    KILN_CHECK(kiln_graph_parameter(g, wname, &ws, &he, &inputs[1]));
    if (bias) {
        kiln_shape bs = {1, {filters}};
        kiln_init zero = {KILN_INIT_CONSTANT, 0, 0, 0};
        KILN_CHECK(kiln_graph_parameter(g, bname, &bs, &zero, &inputs[2]));
    }
    KILN_CHECK(kiln_graph_op(g, name, n_spatial == 3 ? "conv3d" : "conv2d", &p, inputs,
                             bias ? 3 : 2, out));
cleanup:
    return rc;
}

kiln_status kiln_graph_batchnorm(kiln_graph *g, const char *name, kiln_value x, float momentum,
                                 float eps, kiln_value *out)
{
    kiln_status rc = KILN_OK;
    static const char *const PARTS[4] = {"weight", "bias", "running_mean", "running_var"};
    const kiln_shape *xs = kiln_graph_value_shape(g, x);
    if (xs == NULL || name == NULL || out == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    if (xs->ndim < 2)
        return rank_error(g, __func__, name, xs, "batchnorm needs (N, C, ...)");
    kiln_shape cs = {1, {xs->dim[1]}};
    kiln_value inputs[5] = {x};
    for (int i = 0; i < 4; i++) {
        char part[256];
        if (!part_name(part, sizeof part, name, PARTS[i]))
            return name_error(g, __func__, name);
        float one = (i == 0 || i == 3) ? 1.0f : 0.0f;
        if (i < 2) {
            kiln_init init = {KILN_INIT_CONSTANT, one, 0, 0};
            KILN_CHECK(kiln_graph_parameter(g, part, &cs, &init, &inputs[1 + i]));
        } else {
            KILN_CHECK(kiln_graph_buffer(g, part, &cs, one, &inputs[1 + i]));
        }
    }
    kiln_batchnorm_params p = {.momentum = momentum, .eps = eps};
    KILN_CHECK(kiln_graph_op(g, name, "batchnorm", &p, inputs, 5, out));
cleanup:
    return rc;
}

kiln_status kiln_graph_unary(kiln_graph *g, const char *name, const char *op_name,
                             const void *params, kiln_value x, kiln_value *out)
{
    return kiln_graph_op(g, name, op_name, params, &x, 1, out);
}
