/*
 * Model specs: a plain C description of a network (one sample's input shape, the batch size,
 * a list of layers from DESIGN.md's vocabulary and a loss) that the YAML runner fills, and
 * kiln_spec_build, which turns it into a graph (graph.h) through the layer builders. The spec
 * owns nothing: it borrows its layer array and strings, and the graph copies what it keeps.
 * Defaults are filled by the *_init functions below, never inferred from zeros.
 */
#ifndef KILN_SPEC_H
#define KILN_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(VALUE, name): the layer kinds and their config names. */
#define KILN_LAYER_KIND_LIST(X)                                                                    \
    X(DENSE, dense)                                                                                \
    X(CONV2D, conv2d)                                                                              \
    X(CONV3D, conv3d)                                                                              \
    X(MAXPOOL2D, maxpool2d)                                                                        \
    X(MAXPOOL3D, maxpool3d)                                                                        \
    X(AVGPOOL2D, avgpool2d)                                                                        \
    X(AVGPOOL3D, avgpool3d)                                                                        \
    X(GLOBAL_AVGPOOL, global_avgpool)                                                              \
    X(FLATTEN, flatten)                                                                            \
    X(UPSAMPLE2D, upsample2d)                                                                      \
    X(UPSAMPLE3D, upsample3d)                                                                      \
    X(BATCHNORM, batchnorm)                                                                        \
    X(DROPOUT, dropout)                                                                            \
    X(RELU, relu)                                                                                  \
    X(LEAKY_RELU, leaky_relu)                                                                      \
    X(SIGMOID, sigmoid)                                                                            \
    X(TANH, tanh)                                                                                  \
    X(GELU, gelu)                                                                                  \
    X(SOFTMAX, softmax)                                                                            \
    X(CONCAT, concat)                                                                              \
    X(ADD, add)

typedef enum kiln_layer_kind {
#define KILN__LAYER_ENUM(value, name) KILN_LAYER_##value,
    KILN_LAYER_KIND_LIST(KILN__LAYER_ENUM)
#undef KILN__LAYER_ENUM
        KILN_LAYER_KIND_COUNT
} kiln_layer_kind;

/* X(VALUE, name): the losses. NONE builds a graph without a target or loss (inference). */
#define KILN_LOSS_KIND_LIST(X)                                                                     \
    X(NONE, none)                                                                                  \
    X(SOFTMAX_CROSS_ENTROPY, softmax_cross_entropy)                                                \
    X(BCE_WITH_LOGITS, bce_with_logits)                                                            \
    X(MSE, mse)                                                                                    \
    X(L1, l1)                                                                                      \
    X(DICE, dice)                                                                                  \
    X(DICE_BCE, dice_bce)

typedef enum kiln_loss_kind {
#define KILN__LOSS_ENUM(value, name) KILN_LOSS_##value,
    KILN_LOSS_KIND_LIST(KILN__LOSS_ENUM)
#undef KILN__LOSS_ENUM
        KILN_LOSS_KIND_COUNT
} kiln_loss_kind;

/* The most named inputs a layer takes (concat, add), and the longest layer name. */
enum { KILN_SPEC_MAX_INPUTS = 8, KILN_SPEC_MAX_NAME = 128 };

/* dense: x (N, IN) -> (N, units), weight (IN, units). Defaults: bias true (Keras use_bias),
 * init He-uniform (Kiln's builders and PyTorch's kaiming_uniform; Keras uses Glorot). */
typedef struct kiln_dense_spec {
    int64_t units;       /* required, >= 1 */
    bool bias;           /* true */
    kiln_init_kind init; /* of the weight: KILN_INIT_HE_UNIFORM; the bias starts at zero */
    float init_value;    /* KILN_INIT_CONSTANT only: 0 */
} kiln_dense_spec;

/* conv2d / conv3d (PyTorch Conv2d/Conv3d semantics): x (N, C, [D,] H, W) -> (N, filters, ...).
 * Index 0 of each array is the first spatial axis; entries past the layer's spatial axes are
 * ignored. Defaults (Keras): stride 1, padding 0 (Keras "valid"), dilation 1, bias true,
 * weight init He-uniform. `same` pads dilation * (kernel - 1) / 2 per axis (odd kernels), which
 * keeps the size at stride 1 and overrides `padding`. */
typedef struct kiln_conv_spec {
    int64_t filters; /* required, >= 1 */
    int kernel[3];   /* required, >= 1 */
    int stride[3];   /* 1 */
    int padding[3];  /* 0 */
    bool same;       /* false */
    int dilation[3]; /* 1 */
    bool bias;       /* true */
    kiln_init_kind init;
    float init_value;
} kiln_conv_spec;

/* maxpool / avgpool 2D and 3D (no padding, floor mode). Default stride: the window size
 * (Keras pool strides = pool_size), written as 0. */
typedef struct kiln_pool_spec {
    int size[3];   /* required, >= 1 */
    int stride[3]; /* 0 = size */
} kiln_pool_spec;

/* upsample2d / upsample3d: nearest neighbour by an integer factor per spatial axis. */
typedef struct kiln_upsample_spec {
    int scale[3]; /* required, >= 1 */
} kiln_upsample_spec;

/* batchnorm in PyTorch's convention: running = (1 - momentum) running + momentum batch, so
 * the default momentum 0.1 is Keras' momentum 0.99 written as 1 - 0.99. eps 1e-5 (PyTorch;
 * Keras uses 1e-3). */
typedef struct kiln_batchnorm_spec {
    float momentum; /* 0.1, in [0, 1] */
    float eps;      /* 1e-5, > 0 */
} kiln_batchnorm_spec;

/* dropout: rate in [0, 1); default 0.5 (PyTorch nn.Dropout; the YAML config requires it). */
typedef struct kiln_dropout_spec {
    float rate;
} kiln_dropout_spec;

/* leaky_relu: slope for x < 0; default 0.01 (PyTorch's negative_slope; Keras' default is 0.3).
 * Must be finite and >= 0. */
typedef struct kiln_leaky_relu_spec {
    float slope;
} kiln_leaky_relu_spec;

/* softmax along `axis`, concat along `axis` (add ignores it). Default 1, the channel axis of
 * Kiln's channels-first layout (Keras' default -1 is the channel axis of its channels-last
 * layout). Negative counts from the end; the batch axis is refused. */
typedef struct kiln_axis_spec {
    int axis;
} kiln_axis_spec;

typedef struct kiln_layer_spec {
    kiln_layer_kind kind;
    /* NULL: "<kind><index>", e.g. "dense3" for layer 3. Unique in the spec, at most
     * KILN_SPEC_MAX_NAME characters, no '.' (it separates a layer from its parameters, as in
     * "dense3.weight"), and not "input", "target" or "loss". */
    const char *name;
    /* Names of earlier layers, or "input" for the model's input. n_inputs 0: the previous
     * layer's output (the model input for layer 0). One name for a single-input layer; 2 to
     * KILN_SPEC_MAX_INPUTS names, required, for concat and add. */
    const char *inputs[KILN_SPEC_MAX_INPUTS];
    int n_inputs;
    union { /* the member for `kind`; relu, sigmoid, tanh, gelu, flatten and global_avgpool
             * take none */
        kiln_dense_spec dense;
        kiln_conv_spec conv; /* conv2d, conv3d */
        kiln_pool_spec pool; /* maxpool2d/3d, avgpool2d/3d */
        kiln_upsample_spec upsample;
        kiln_batchnorm_spec batchnorm;
        kiln_dropout_spec dropout;
        kiln_leaky_relu_spec leaky_relu;
        kiln_axis_spec axis; /* softmax, concat, add */
    };
} kiln_layer_spec;

/* The loss, applied to the last layer's output (the logits for the *_with_logits, cross-entropy
 * and dice_bce losses, probabilities for dice) and a target input named "target":
 *   softmax_cross_entropy: output (N, classes), target i32 (N,) class indices;
 *   every other loss: target f32 with the output's shape.
 * dice_bce is dice(sigmoid(logits), target) + bce_with_logits(logits, target), summed. */
typedef struct kiln_loss_spec {
    kiln_loss_kind kind;
    float label_smoothing; /* softmax_cross_entropy: 0, in [0, 1) */
    float smooth;          /* dice, dice_bce: 1, finite and >= 0 */
} kiln_loss_spec;

typedef struct kiln_spec {
    kiln_shape input;   /* one sample, without the batch axis: (features,), (C, H, W), ... */
    int64_t batch_size; /* N, >= 1 */
    const kiln_layer_spec *layers; /* borrowed; at least one */
    size_t n_layers;
    kiln_loss_spec loss;
} kiln_spec;

/* Set every field to its default (above): no input shape, batch size 1, no layers, loss
 * KILN_LOSS_NONE. Nothing to deinit: specs own no memory. */
void kiln_spec_init(kiln_spec *spec);
/* `kind` with its defaults; required keys (units, filters, kernel, size, scale) are 0, which
 * kiln_spec_build rejects, naming the key. */
void kiln_layer_spec_init(kiln_layer_spec *layer, kiln_layer_kind kind);
void kiln_loss_spec_init(kiln_loss_spec *loss, kiln_loss_kind kind);

/* Config names ("conv2d", "dice_bce") and back. The names are static strings; "?" for a value
 * out of range. *_from_name returns KILN_ERR_NOT_FOUND (no context, no message) for a name
 * not in the list. Thread-safe. */
const char *kiln_layer_kind_name(kiln_layer_kind kind);
kiln_status kiln_layer_kind_from_name(const char *name, kiln_layer_kind *out);
const char *kiln_loss_kind_name(kiln_loss_kind kind);
kiln_status kiln_loss_kind_from_name(const char *name, kiln_loss_kind *out);

/* Builds the graph of `spec`: an input "input" of shape (batch_size, spec->input...), the
 * layers in order (parameters "<layer>.weight", "<layer>.bias", batch-norm buffers
 * "<layer>.running_mean"/"running_var"), and, unless the loss is KILN_LOSS_NONE, an input
 * "target" and a node "loss" set as the graph's loss. On success *out_graph is a new graph
 * (the caller destroys it) and the other outputs are its values: the input, the target (-1
 * without a loss), the last layer's output, and the loss (-1 without one).
 *
 * Every error names the layer (index from 0, name and kind) and the shapes involved:
 * KILN_ERR_INVALID_ARGUMENT for bad values, names and inputs (an unknown input name lists the
 * names known at that layer); KILN_ERR_SHAPE for shapes that do not fit; KILN_ERR_NO_MEMORY.
 * On failure *out_graph is NULL. Not thread-safe on one context. */
kiln_status kiln_spec_build(kiln_context *ctx, const kiln_spec *spec, kiln_graph **out_graph,
                            kiln_value *out_input, kiln_value *out_target, kiln_value *out_output,
                            kiln_value *out_loss);

#ifdef __cplusplus
}
#endif

#endif
