/*
 * kiln_spec_build without a device (graphs hold no device memory): DESIGN.md's example MLP,
 * the Fashion-MNIST CNN with batch-norm, a small 3-D U-Net with named nodes, concat skips and
 * dice_bce, and a residual add over three inputs, each checked for its node ops, op
 * parameters, parameter/buffer names and shapes, and target dtype and shape. Then every bad
 * spec: its status and a message naming the layer (index, name, kind) and the shapes; the
 * defaults and kind names; and allocation failure at every allocation, without leaks.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"
#include "kiln/spec.h"
#include "support/kiln_test.h"

/* ---- spec helpers ---- */

static kiln_layer_spec layer(kiln_layer_kind kind)
{
    kiln_layer_spec l;
    kiln_layer_spec_init(&l, kind);
    return l;
}

static kiln_layer_spec named(kiln_layer_spec l, const char *name)
{
    l.name = name;
    return l;
}

static kiln_layer_spec from(kiln_layer_spec l, const char *a, const char *b, const char *c)
{
    const char *in[3] = {a, b, c};
    l.n_inputs = 0;
    for (int k = 0; k < 3 && in[k] != NULL; k++)
        l.inputs[l.n_inputs++] = in[k];
    return l;
}

static kiln_layer_spec dense(int64_t units)
{
    kiln_layer_spec l = layer(KILN_LAYER_DENSE);
    l.dense.units = units;
    return l;
}

static kiln_layer_spec conv(int n_spatial, int64_t filters, int kernel, bool same)
{
    kiln_layer_spec l = layer(n_spatial == 3 ? KILN_LAYER_CONV3D : KILN_LAYER_CONV2D);
    l.conv.filters = filters;
    for (int a = 0; a < 3; a++)
        l.conv.kernel[a] = kernel;
    l.conv.same = same;
    return l;
}

static kiln_layer_spec pool(kiln_layer_kind kind, int size)
{
    kiln_layer_spec l = layer(kind);
    for (int a = 0; a < 3; a++)
        l.pool.size[a] = size;
    return l;
}

static kiln_layer_spec upsample3d(int scale)
{
    kiln_layer_spec l = layer(KILN_LAYER_UPSAMPLE3D);
    for (int a = 0; a < 3; a++)
        l.upsample.scale[a] = scale;
    return l;
}

static kiln_layer_spec dropout(float rate)
{
    kiln_layer_spec l = layer(KILN_LAYER_DROPOUT);
    l.dropout.rate = rate;
    return l;
}

static kiln_spec make_spec(const kiln_layer_spec *layers, size_t n, kiln_shape input, int64_t batch,
                           kiln_loss_kind loss)
{
    kiln_spec s;
    kiln_spec_init(&s);
    s.input = input;
    s.batch_size = batch;
    s.layers = layers;
    s.n_layers = n;
    kiln_loss_spec_init(&s.loss, loss);
    return s;
}

typedef struct built {
    kiln_graph *g;
    kiln_value input, target, output, loss;
} built;

static void build_ok(kiln_context *ctx, const kiln_spec *s, built *b)
{
    kiln_status rc = kiln_spec_build(ctx, s, &b->g, &b->input, &b->target, &b->output, &b->loss);
    if (rc != KILN_OK)
        fail_msg("kiln_spec_build: %s", kiln_context_last_error(ctx));
}

/* ---- graph inspection ---- */

static void assert_shape(const kiln_graph *g, kiln_value v, int ndim, const int64_t *dims)
{
    assert_true(v >= 0);
    kiln_shape want = kiln_shape_of(ndim, dims);
    const kiln_shape *got = kiln_graph_value_shape(g, v);
    char a[128], b[128];
    if (!kiln_shape_equal(got, &want))
        fail_msg("'%s' has shape %s, expected %s", kiln_graph_value_name(g, v),
                 kiln_shape_format(got, a, sizeof a), kiln_shape_format(&want, b, sizeof b));
}

/* A parameter or buffer `name` of the given kind and shape. */
static void assert_state(const kiln_graph *g, const char *name, kiln_value_kind kind, int ndim,
                         const int64_t *dims)
{
    kiln_value v = kiln_graph_find(g, name);
    if (v < 0)
        fail_msg("no value named '%s'", name);
    assert_int_equal(kiln_graph_value_kind(g, v), kind);
    assert_shape(g, v, ndim, dims);
}

#define PARAM(g, name, ...)                                                                        \
    assert_state((g), (name), KILN_VALUE_PARAMETER,                                                \
                 (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),                        \
                 (int64_t[]){__VA_ARGS__})
#define BUFFER(g, name, ...)                                                                       \
    assert_state((g), (name), KILN_VALUE_BUFFER,                                                   \
                 (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),                        \
                 (int64_t[]){__VA_ARGS__})
#define SHAPE(g, v, ...)                                                                           \
    assert_shape((g), (v), (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),              \
                 (int64_t[]){__VA_ARGS__})

/* The node named `name`, which must apply `op`. */
static const kiln__node *node(const kiln_graph *g, const char *name, const char *op)
{
    kiln_value v = kiln_graph_find(g, name);
    if (v < 0 || g->values[v].producer < 0)
        fail_msg("no node named '%s'", name);
    const kiln__node *n = &g->nodes[g->values[v].producer];
    if (strcmp(kiln_op_name(n->op), op) != 0)
        fail_msg("node '%s' applies '%s', expected '%s'", name, kiln_op_name(n->op), op);
    return n;
}

static size_t count_kind(const kiln_graph *g, kiln_value_kind kind)
{
    size_t n = 0;
    for (size_t v = 0; v < kiln_graph_n_values(g); v++)
        n += kiln_graph_value_kind(g, (kiln_value)v) == kind;
    return n;
}

/* ---- good specs ---- */

static void test_design_mlp(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_layer_spec layers[] = {layer(KILN_LAYER_FLATTEN), dense(256), layer(KILN_LAYER_RELU),
                                dropout(0.2f), dense(10)};
    kiln_spec s = make_spec(layers, 5, kiln_shape_of(3, (int64_t[]){1, 28, 28}), 128,
                            KILN_LOSS_SOFTMAX_CROSS_ENTROPY);
    built b;
    build_ok(ctx, &s, &b);
    SHAPE(b.g, b.input, 128, 1, 28, 28);
    assert_string_equal(kiln_graph_value_name(b.g, b.input), "input");
    PARAM(b.g, "dense1.weight", 784, 256);
    PARAM(b.g, "dense1.bias", 256);
    PARAM(b.g, "dense4.weight", 256, 10);
    PARAM(b.g, "dense4.bias", 10);
    assert_int_equal(count_kind(b.g, KILN_VALUE_PARAMETER), 4);
    assert_int_equal(count_kind(b.g, KILN_VALUE_BUFFER), 0);
    SHAPE(b.g, kiln_graph_find(b.g, "flatten0"), 128, 784);
    node(b.g, "flatten0", "flatten");
    node(b.g, "relu2", "relu");
    const kiln__node *drop = node(b.g, "dropout3", "dropout");
    assert_true(((const kiln_dropout_params *)drop->params)->rate == 0.2f);
    const kiln__node *fc = node(b.g, "dense4", "dense");
    assert_true(((const kiln_dense_params *)fc->params)->has_bias);
    assert_int_equal(fc->inputs[0], drop->output);
    assert_int_equal(b.output, fc->output);
    SHAPE(b.g, b.output, 128, 10);
    /* The label input: i32 class indices, one per sample. */
    assert_string_equal(kiln_graph_value_name(b.g, b.target), "target");
    assert_int_equal(kiln_graph_value_dtype(b.g, b.target), KILN_I32);
    SHAPE(b.g, b.target, 128);
    const kiln__node *loss = node(b.g, "loss", "softmax_cross_entropy");
    assert_int_equal(loss->inputs[0], b.output);
    assert_int_equal(loss->inputs[1], b.target);
    assert_int_equal(kiln_graph_get_loss(b.g), b.loss);
    assert_int_equal(kiln_graph_n_nodes(b.g), 6);
    /* He-uniform weights (fan-in axis 0 of the (IN, OUT) layout) and zero biases. */
    const kiln__value *w = &b.g->values[kiln_graph_find(b.g, "dense1.weight")];
    assert_int_equal(w->init.kind, KILN_INIT_HE_UNIFORM);
    assert_int_equal(w->init.fan_in_axis, 0);
    assert_int_equal(b.g->values[kiln_graph_find(b.g, "dense1.bias")].init.kind,
                     KILN_INIT_CONSTANT);
    kiln_graph_destroy(b.g);
    kiln_context_destroy(ctx);
}

/* The Fashion-MNIST CNN (conv 3x3 32, pool, conv 3x3 64, pool, dense 128, dense 10) with a
 * batch-norm after the first convolution, whose bias is then dropped. */
static void test_fashion_cnn(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_layer_spec c0 = conv(2, 32, 3, true);
    c0.conv.bias = false;
    kiln_layer_spec fc = dense(10);
    fc.dense.init = KILN_INIT_XAVIER_NORMAL;
    kiln_layer_spec layers[] = {c0,
                                layer(KILN_LAYER_BATCHNORM),
                                layer(KILN_LAYER_RELU),
                                pool(KILN_LAYER_MAXPOOL2D, 2),
                                conv(2, 64, 3, true),
                                layer(KILN_LAYER_RELU),
                                pool(KILN_LAYER_MAXPOOL2D, 2),
                                layer(KILN_LAYER_FLATTEN),
                                dense(128),
                                layer(KILN_LAYER_RELU),
                                dropout(0.3f),
                                fc};
    kiln_spec s = make_spec(layers, 12, kiln_shape_of(3, (int64_t[]){1, 28, 28}), 64,
                            KILN_LOSS_SOFTMAX_CROSS_ENTROPY);
    s.loss.label_smoothing = 0.1f;
    built b;
    build_ok(ctx, &s, &b);
    PARAM(b.g, "conv2d0.weight", 32, 1, 3, 3);
    assert_int_equal(kiln_graph_find(b.g, "conv2d0.bias"), -1);
    PARAM(b.g, "batchnorm1.weight", 32);
    PARAM(b.g, "batchnorm1.bias", 32);
    BUFFER(b.g, "batchnorm1.running_mean", 32);
    BUFFER(b.g, "batchnorm1.running_var", 32);
    PARAM(b.g, "conv2d4.weight", 64, 32, 3, 3);
    PARAM(b.g, "conv2d4.bias", 64);
    PARAM(b.g, "dense8.weight", 3136, 128);
    PARAM(b.g, "dense11.weight", 128, 10);
    assert_int_equal(count_kind(b.g, KILN_VALUE_PARAMETER), 9);
    SHAPE(b.g, kiln_graph_find(b.g, "conv2d0"), 64, 32, 28, 28);
    SHAPE(b.g, kiln_graph_find(b.g, "maxpool2d3"), 64, 32, 14, 14);
    SHAPE(b.g, kiln_graph_find(b.g, "maxpool2d6"), 64, 64, 7, 7);
    SHAPE(b.g, b.output, 64, 10);
    const kiln_conv_params *cp = node(b.g, "conv2d0", "conv2d")->params;
    assert_int_equal(cp->n_spatial, 2);
    assert_int_equal(cp->padding[0], 1);
    assert_int_equal(cp->padding[1], 1);
    assert_int_equal(cp->stride[1], 1);
    assert_int_equal(cp->dilation[0], 1);
    assert_false(cp->has_bias);
    const kiln_batchnorm_params *bn = node(b.g, "batchnorm1", "batchnorm")->params;
    assert_true(bn->momentum == 0.1f && bn->eps == 1e-5f);
    const kiln_pool_params *pp = node(b.g, "maxpool2d3", "maxpool2d")->params;
    assert_int_equal(pp->size[0], 2);
    assert_int_equal(pp->stride[0], 0); /* the window size */
    const kiln_cross_entropy_params *ce = node(b.g, "loss", "softmax_cross_entropy")->params;
    assert_true(ce->label_smoothing == 0.1f);
    /* The spec's weight init replaces the builder's, keeping the layer's fan axes. */
    const kiln__value *w = &b.g->values[kiln_graph_find(b.g, "dense11.weight")];
    assert_int_equal(w->init.kind, KILN_INIT_XAVIER_NORMAL);
    assert_int_equal(w->init.fan_in_axis, 0);
    assert_int_equal(w->init.fan_out_axis, 1);
    assert_int_equal(kiln_graph_value_dtype(b.g, b.target), KILN_I32);
    SHAPE(b.g, b.target, 64);
    kiln_graph_destroy(b.g);
    kiln_context_destroy(ctx);
}

/* Encoder conv, pool, bottleneck, upsample, concat skip, decoder conv + batch-norm, 1x1x1 head;
 * dice_bce = dice(sigmoid(logits)) + bce_with_logits(logits). */
static void test_unet3d_dice_bce(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_layer_spec layers[] = {
        named(conv(3, 4, 3, true), "enc1_conv"),
        named(layer(KILN_LAYER_RELU), "enc1"),
        pool(KILN_LAYER_MAXPOOL3D, 2),
        conv(3, 8, 3, true),
        named(layer(KILN_LAYER_RELU), "bottleneck"),
        named(upsample3d(2), "up1"),
        named(from(layer(KILN_LAYER_CONCAT), "up1", "enc1", NULL), "skip1"),
        named(conv(3, 4, 3, true), "dec1"),
        layer(KILN_LAYER_BATCHNORM),
        layer(KILN_LAYER_RELU),
        named(conv(3, 1, 1, false), "head"),
    };
    kiln_spec s =
        make_spec(layers, 11, kiln_shape_of(4, (int64_t[]){1, 8, 8, 8}), 2, KILN_LOSS_DICE_BCE);
    s.loss.smooth = 0.5f;
    built b;
    build_ok(ctx, &s, &b);
    PARAM(b.g, "enc1_conv.weight", 4, 1, 3, 3, 3);
    PARAM(b.g, "conv3d3.weight", 8, 4, 3, 3, 3);
    PARAM(b.g, "dec1.weight", 4, 12, 3, 3, 3);
    PARAM(b.g, "batchnorm8.weight", 4);
    BUFFER(b.g, "batchnorm8.running_var", 4);
    PARAM(b.g, "head.weight", 1, 4, 1, 1, 1);
    PARAM(b.g, "head.bias", 1);
    SHAPE(b.g, kiln_graph_find(b.g, "maxpool3d2"), 2, 4, 4, 4, 4);
    SHAPE(b.g, kiln_graph_find(b.g, "up1"), 2, 8, 8, 8, 8);
    const kiln__node *skip = node(b.g, "skip1", "concat");
    assert_int_equal(skip->n_inputs, 2);
    assert_int_equal(skip->inputs[0], kiln_graph_find(b.g, "up1"));
    assert_int_equal(skip->inputs[1], kiln_graph_find(b.g, "enc1"));
    assert_int_equal(((const kiln_axis_params *)skip->params)->axis, 1);
    SHAPE(b.g, skip->output, 2, 12, 8, 8, 8);
    /* The bottleneck's relu reads the conv before it: unnamed inputs chain. */
    assert_int_equal(node(b.g, "bottleneck", "relu")->inputs[0], kiln_graph_find(b.g, "conv3d3"));
    SHAPE(b.g, b.output, 2, 1, 8, 8, 8);
    assert_int_equal(kiln_graph_value_dtype(b.g, b.target), KILN_F32);
    SHAPE(b.g, b.target, 2, 1, 8, 8, 8);
    const kiln__node *sig = node(b.g, "loss.sigmoid", "sigmoid");
    const kiln__node *dice = node(b.g, "loss.dice", "dice");
    const kiln__node *bce = node(b.g, "loss.bce", "bce_with_logits");
    const kiln__node *sum = node(b.g, "loss", "add");
    assert_int_equal(sig->inputs[0], b.output);
    assert_int_equal(dice->inputs[0], sig->output);
    assert_int_equal(dice->inputs[1], b.target);
    assert_true(((const kiln_dice_params *)dice->params)->smooth == 0.5f);
    assert_int_equal(bce->inputs[0], b.output);
    assert_int_equal(bce->inputs[1], b.target);
    assert_int_equal(sum->inputs[0], dice->output);
    assert_int_equal(sum->inputs[1], bce->output);
    assert_int_equal(sum->output, b.loss);
    assert_int_equal(kiln_graph_get_loss(b.g), b.loss);
    assert_shape(b.g, b.loss, 0, NULL); /* a scalar */
    kiln_graph_destroy(b.g);
    kiln_context_destroy(ctx);
}

/* add over three named inputs chains binary adds; "input" names the model input; no loss. */
static void test_residual_add_without_loss(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_layer_spec lr = layer(KILN_LAYER_LEAKY_RELU);
    kiln_layer_spec layers[] = {
        named(dense(6), "a"),
        named(from(dense(6), "input", NULL, NULL), "b"),
        from(lr, "b", NULL, NULL),
        named(from(layer(KILN_LAYER_ADD), "a", "b", "leaky_relu2"), "res"),
        layer(KILN_LAYER_SOFTMAX),
    };
    kiln_spec s = make_spec(layers, 5, kiln_shape_of(1, (int64_t[]){6}), 3, KILN_LOSS_NONE);
    built b;
    build_ok(ctx, &s, &b);
    assert_int_equal(b.target, -1);
    assert_int_equal(b.loss, -1);
    assert_int_equal(kiln_graph_get_loss(b.g), -1);
    assert_int_equal(node(b.g, "b", "dense")->inputs[0], b.input);
    assert_true(
        ((const kiln_leaky_relu_params *)node(b.g, "leaky_relu2", "leaky_relu")->params)->slope ==
        0.01f);
    const kiln__node *partial = node(b.g, "res.partial1", "add");
    const kiln__node *res = node(b.g, "res", "add");
    assert_int_equal(partial->inputs[0], kiln_graph_find(b.g, "a"));
    assert_int_equal(partial->inputs[1], kiln_graph_find(b.g, "b"));
    assert_int_equal(res->inputs[0], partial->output);
    assert_int_equal(res->inputs[1], kiln_graph_find(b.g, "leaky_relu2"));
    assert_int_equal(((const kiln_axis_params *)node(b.g, "softmax4", "softmax")->params)->axis, 1);
    SHAPE(b.g, b.output, 3, 6);
    kiln_graph_destroy(b.g);
    kiln_context_destroy(ctx);
}

static void test_defaults_and_names(void **state)
{
    (void)state;
    kiln_layer_spec l = layer(KILN_LAYER_CONV3D);
    assert_int_equal(l.conv.stride[2], 1);
    assert_int_equal(l.conv.dilation[1], 1);
    assert_int_equal(l.conv.padding[0], 0);
    assert_false(l.conv.same);
    assert_true(l.conv.bias);
    assert_int_equal(l.conv.init, KILN_INIT_HE_UNIFORM);
    assert_int_equal(l.conv.filters, 0); /* required */
    l = layer(KILN_LAYER_BATCHNORM);
    assert_true(l.batchnorm.momentum == 0.1f && l.batchnorm.eps == 1e-5f);
    assert_true(layer(KILN_LAYER_LEAKY_RELU).leaky_relu.slope == 0.01f);
    assert_int_equal(layer(KILN_LAYER_AVGPOOL2D).pool.stride[0], 0);
    assert_int_equal(layer(KILN_LAYER_CONCAT).axis.axis, 1);
    assert_null(layer(KILN_LAYER_RELU).name);
    assert_int_equal(layer(KILN_LAYER_RELU).n_inputs, 0);
    kiln_loss_spec loss;
    kiln_loss_spec_init(&loss, KILN_LOSS_DICE);
    assert_true(loss.smooth == 1.0f && loss.label_smoothing == 0.0f);
    kiln_spec s;
    kiln_spec_init(&s);
    assert_int_equal(s.batch_size, 1);
    assert_int_equal(s.loss.kind, KILN_LOSS_NONE);
    /* Every kind round-trips through its config name. */
    for (int k = 0; k < KILN_LAYER_KIND_COUNT; k++) {
        kiln_layer_kind back;
        assert_int_equal(kiln_layer_kind_from_name(kiln_layer_kind_name(k), &back), KILN_OK);
        assert_int_equal(back, k);
    }
    for (int k = 0; k < KILN_LOSS_KIND_COUNT; k++) {
        kiln_loss_kind back;
        assert_int_equal(kiln_loss_kind_from_name(kiln_loss_kind_name(k), &back), KILN_OK);
        assert_int_equal(back, k);
    }
    assert_string_equal(kiln_layer_kind_name(KILN_LAYER_GLOBAL_AVGPOOL), "global_avgpool");
    assert_string_equal(kiln_loss_kind_name(KILN_LOSS_DICE_BCE), "dice_bce");
    assert_string_equal(kiln_layer_kind_name(KILN_LAYER_KIND_COUNT), "?");
    kiln_layer_kind k;
    assert_int_equal(kiln_layer_kind_from_name("Dense", &k), KILN_ERR_NOT_FOUND);
    assert_int_equal(kiln_layer_kind_from_name(NULL, &k), KILN_ERR_NOT_FOUND);
}

/* ---- bad specs ---- */

/* Builds `s`, expecting `status`, no graph, and a message containing every needle. */
static void expect_error(kiln_context *ctx, const kiln_spec *s, kiln_status status,
                         const char *const *needles, const char *file, int line)
{
    built b = {.g = (kiln_graph *)&b};
    kiln_status rc = kiln_spec_build(ctx, s, &b.g, &b.input, &b.target, &b.output, &b.loss);
    if (rc != status)
        fail_msg("%s:%d: status %s, expected %s (message: %s)", file, line, kiln_status_name(rc),
                 kiln_status_name(status), kiln_context_last_error(ctx));
    assert_null(b.g);
    if (getenv("KILN_TEST_VERBOSE") != NULL)
        fprintf(stderr, "%s:%d: %s\n", file, line, kiln_context_last_error(ctx));
    for (int k = 0; needles[k] != NULL; k++)
        kiln_test_assert_contains(kiln_context_last_error(ctx), needles[k], file, line);
}

#define EXPECT(spec, status, ...)                                                                  \
    expect_error(ctx, &(spec), (status), (const char *const[]){__VA_ARGS__, NULL}, __FILE__,       \
                 __LINE__)

/* A spec over `layers` on images (3, 8, 8), batch 2, without a loss. */
#define IMAGES(layers)                                                                             \
    make_spec((layers), sizeof(layers) / sizeof(layers)[0],                                        \
              kiln_shape_of(3, (int64_t[]){3, 8, 8}), 2, KILN_LOSS_NONE)
/* A spec over `layers` on vectors (6,), batch 3, without a loss. */
#define VECTORS(layers)                                                                            \
    make_spec((layers), sizeof(layers) / sizeof(layers)[0], kiln_shape_of(1, (int64_t[]){6}), 3,   \
              KILN_LOSS_NONE)

static kiln_layer_spec upsample2d(int scale)
{
    kiln_layer_spec l = layer(KILN_LAYER_UPSAMPLE2D);
    l.upsample.scale[0] = l.upsample.scale[1] = scale;
    return l;
}

/* Layer shapes and wiring: each error names the layer and the shapes. */
static void test_bad_shapes_and_wiring(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    {
        kiln_layer_spec l[] = {layer(KILN_LAYER_RELU), dropout(0.1f), layer(KILN_LAYER_BATCHNORM),
                               layer(KILN_LAYER_TANH), dense(10)};
        kiln_spec s = make_spec(l, 5, kiln_shape_of(3, (int64_t[]){1, 28, 28}), 128,
                                KILN_LOSS_SOFTMAX_CROSS_ENTROPY);
        EXPECT(s, KILN_ERR_SHAPE,
               "kiln_spec_build: layer 4 'dense4' (dense): input (128, 1, 28, 28) needs (N, "
               "features); add a flatten");
    }
    {
        kiln_layer_spec l[] = {named(conv(2, 4, 3, true), "enc1"),
                               named(pool(KILN_LAYER_MAXPOOL2D, 2), "pool"),
                               named(upsample2d(2), "up1"),
                               named(from(layer(KILN_LAYER_CONCAT), "up1", "enc9", NULL), "skip1")};
        kiln_spec s = IMAGES(l);
        EXPECT(s, KILN_ERR_INVALID_ARGUMENT, "layer 3 'skip1' (concat)", "no layer named 'enc9'",
               "known names: input, enc1, pool, up1");
    }
    {
        kiln_layer_spec l[] = {named(conv(2, 4, 3, true), "enc1"),
                               named(pool(KILN_LAYER_MAXPOOL2D, 2), "down"),
                               named(from(layer(KILN_LAYER_CONCAT), "down", "enc1", NULL), "skip")};
        kiln_spec s = IMAGES(l);
        EXPECT(s, KILN_ERR_SHAPE, "layer 2 'skip' (concat)", "'down' (2, 4, 4, 4)",
               "'enc1' (2, 4, 8, 8)", "off the concat axis");
    }
    {
        kiln_layer_spec l[] = {named(layer(KILN_LAYER_FLATTEN), "flat"),
                               from(layer(KILN_LAYER_CONCAT), "flat", "input", NULL)};
        kiln_spec s = IMAGES(l);
        EXPECT(s, KILN_ERR_SHAPE, "layer 1 'concat1' (concat)", "'flat' (2, 192)",
               "'input' (2, 3, 8, 8)");
    }
    {
        kiln_layer_spec l[] = {named(dense(6), "a"),
                               named(from(dense(5), "input", NULL, NULL), "b"),
                               from(layer(KILN_LAYER_ADD), "a", "b", NULL)};
        kiln_spec s = VECTORS(l);
        EXPECT(s, KILN_ERR_SHAPE, "layer 2 'add2' (add)", "'a' (3, 6) and 'b' (3, 5) differ",
               "equal shapes");
    }
    {
        kiln_layer_spec l[] = {layer(KILN_LAYER_FLATTEN), conv(2, 4, 3, true)};
        kiln_spec s = IMAGES(l);
        EXPECT(s, KILN_ERR_SHAPE, "layer 1 'conv2d1' (conv2d): input (2, 192) needs (N, C, H, W)");
    }
    {
        kiln_layer_spec l[] = {conv(3, 4, 3, true)};
        kiln_spec s = IMAGES(l);
        EXPECT(s, KILN_ERR_SHAPE,
               "layer 0 'conv3d0' (conv3d): input (2, 3, 8, 8) needs (N, C, D, "
               "H, W)",
               "use the 2d layer");
    }
    {
        kiln_layer_spec l[] = {layer(KILN_LAYER_GLOBAL_AVGPOOL)};
        kiln_spec s = VECTORS(l);
        EXPECT(s, KILN_ERR_SHAPE, "layer 0 'global_avgpool0' (global_avgpool): input (3, 6)",
               "(N, C, spatial...)");
    }
    {
        /* Errors found by the op's own shape inference keep the op's message. */
        kiln_layer_spec l[] = {layer(KILN_LAYER_RELU), pool(KILN_LAYER_MAXPOOL2D, 16)};
        kiln_spec s = IMAGES(l);
        EXPECT(s, KILN_ERR_SHAPE,
               "layer 1 'maxpool2d1' (maxpool2d): input (2, 3, 8, 8): kiln_op_infer: op "
               "'maxpool2d': the window (16)");
    }
    {
        kiln_layer_spec l[] = {conv(2, 4, 11, false)};
        kiln_spec s = IMAGES(l);
        EXPECT(s, KILN_ERR_SHAPE, "layer 0 'conv2d0' (conv2d): input (2, 3, 8, 8)",
               "(4, 3, 11, 11)");
    }
    {
        kiln_layer_spec l[] = {from(layer(KILN_LAYER_RELU), "later", NULL, NULL),
                               named(layer(KILN_LAYER_RELU), "later")};
        kiln_spec s = IMAGES(l);
        EXPECT(s, KILN_ERR_INVALID_ARGUMENT, "layer 0 'relu0' (relu)",
               "input 'later' is layer 1, which comes later");
    }
    {
        kiln_layer_spec l[] = {named(from(layer(KILN_LAYER_RELU), "me", NULL, NULL), "me")};
        kiln_spec s = IMAGES(l);
        EXPECT(s, KILN_ERR_INVALID_ARGUMENT, "layer 0 'me' (relu)", "this layer itself");
    }
    {
        kiln_layer_spec l[] = {named(layer(KILN_LAYER_RELU), "x"),
                               from(layer(KILN_LAYER_CONCAT), "x", NULL, NULL)};
        kiln_spec s = IMAGES(l);
        EXPECT(s, KILN_ERR_INVALID_ARGUMENT, "layer 1 'concat1' (concat)", "needs `inputs`",
               "got 1");
    }
    {
        kiln_layer_spec l[] = {named(layer(KILN_LAYER_RELU), "x"),
                               from(layer(KILN_LAYER_RELU), "x", "input", NULL)};
        kiln_spec s = IMAGES(l);
        EXPECT(s, KILN_ERR_INVALID_ARGUMENT, "layer 1 'relu1' (relu)", "takes one input");
    }
    {
        kiln_layer_spec l[] = {layer(KILN_LAYER_RELU)};
        l[0].n_inputs = 9;
        kiln_spec s = IMAGES(l);
        EXPECT(s, KILN_ERR_INVALID_ARGUMENT, "layer 0 'relu0' (relu)", "9 input names");
        l[0].n_inputs = 1;
        l[0].inputs[0] = NULL;
        EXPECT(s, KILN_ERR_INVALID_ARGUMENT, "layer 0 'relu0' (relu)", "input name 0 is NULL");
    }
    {
        kiln_layer_spec l[] = {layer(KILN_LAYER_SOFTMAX)};
        l[0].axis.axis = 0;
        kiln_spec s = VECTORS(l);
        EXPECT(s, KILN_ERR_INVALID_ARGUMENT, "layer 0 'softmax0' (softmax)",
               "axis 0 is the batch axis for input (3, 6)");
        l[0].axis.axis = -3;
        EXPECT(s, KILN_ERR_INVALID_ARGUMENT, "axis -3 is out of range for input (3, 6)");
    }
    {
        kiln_layer_spec l[] = {named(layer(KILN_LAYER_RELU), "x"),
                               from(layer(KILN_LAYER_CONCAT), "x", "x", NULL)};
        l[1].axis.axis = 4;
        kiln_spec s = IMAGES(l);
        EXPECT(s, KILN_ERR_INVALID_ARGUMENT, "layer 1 'concat1' (concat)",
               "axis 4 is out of range for input (2, 3, 8, 8)");
    }
    kiln_context_destroy(ctx);
}

/* Names, values and the loss: each error names the layer. */
static void test_bad_values_and_losses(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    char long_name[KILN_SPEC_MAX_NAME + 2];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    const struct {
        const char *name, *needle;
    } names[] = {
        {"input", "'tanh1' (tanh): the name 'input' is reserved"},
        {"loss", "the name 'loss' is reserved"},
        {"conv.1", "the name 'conv.1' contains '.'"},
        {"", "the name is empty"},
        {long_name, "the limit is 128"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        kiln_layer_spec l[] = {layer(KILN_LAYER_RELU),
                               named(layer(KILN_LAYER_TANH), names[i].name)};
        kiln_spec s = IMAGES(l);
        EXPECT(s, KILN_ERR_INVALID_ARGUMENT, "layer 1 '", "(tanh)", names[i].needle);
    }
    {
        kiln_layer_spec l[] = {named(layer(KILN_LAYER_RELU), "enc1"), named(dense(4), "enc1")};
        kiln_spec s = IMAGES(l);
        EXPECT(s, KILN_ERR_INVALID_ARGUMENT, "layer 1 'enc1' (dense)",
               "already used by layer 0 (relu)");
        /* A default name can collide with an explicit one. */
        l[0].name = "dense1";
        l[1].name = NULL;
        EXPECT(s, KILN_ERR_INVALID_ARGUMENT, "layer 1 'dense1' (dense)",
               "the name 'dense1' is already used by layer 0");
    }
    {
        kiln_layer_spec l[] = {layer(KILN_LAYER_FLATTEN), dense(0)};
        kiln_spec s = IMAGES(l);
        EXPECT(s, KILN_ERR_INVALID_ARGUMENT, "layer 1 'dense1' (dense)",
               "units must be >= 1, got 0 (the key is required)");
        l[1].dense.units = 4;
        l[1].dense.init = (kiln_init_kind)42;
        EXPECT(s, KILN_ERR_INVALID_ARGUMENT, "layer 1 'dense1' (dense)", "unknown weight init 42");
    }
    {
        kiln_layer_spec l[] = {layer(KILN_LAYER_RELU), conv(2, 0, 3, true)};
        kiln_spec s = IMAGES(l);
        EXPECT(s, KILN_ERR_INVALID_ARGUMENT, "layer 1 'conv2d1' (conv2d)", "filters must be >= 1");
        l[1] = conv(2, 4, 2, true);
        EXPECT(s, KILN_ERR_INVALID_ARGUMENT, "layer 1 'conv2d1' (conv2d)",
               "padding 'same' needs odd kernel sizes, got 2");
        l[1] = conv(2, 4, 3, false);
        l[1].conv.stride[1] = 0;
        EXPECT(s, KILN_ERR_INVALID_ARGUMENT, "stride 0 on spatial axis 1 must be >= 1");
        assert_null(strstr(kiln_context_last_error(ctx), "required"));
        l[1] = conv(2, 4, 3, false);
        l[1].conv.padding[0] = -1;
        EXPECT(s, KILN_ERR_INVALID_ARGUMENT, "padding -1 on spatial axis 0 must be >= 0");
        l[1] = conv(2, 4, 3, false);
        l[1].conv.kernel[1] = 0;
        EXPECT(s, KILN_ERR_INVALID_ARGUMENT,
               "kernel 0 on spatial axis 1 must be >= 1 (the key "
               "is required)");
    }
    {
        kiln_layer_spec l[] = {pool(KILN_LAYER_AVGPOOL2D, 0)};
        kiln_spec s = IMAGES(l);
        EXPECT(s, KILN_ERR_INVALID_ARGUMENT, "layer 0 'avgpool2d0' (avgpool2d)",
               "size 0 on spatial axis 0 must be >= 1 (the key is required)");
        l[0] = upsample2d(0);
        EXPECT(s, KILN_ERR_INVALID_ARGUMENT, "layer 0 'upsample2d0' (upsample2d)",
               "scale 0 on spatial axis 0 must be >= 1");
    }
    {
        kiln_layer_spec l[] = {layer(KILN_LAYER_RELU), layer(KILN_LAYER_BATCHNORM), dropout(1.0f),
                               layer(KILN_LAYER_LEAKY_RELU)};
        kiln_spec s = IMAGES(l);
        EXPECT(s, KILN_ERR_INVALID_ARGUMENT, "layer 2 'dropout2' (dropout)",
               "rate 1 must be in [0, 1)");
        l[2].dropout.rate = NAN;
        EXPECT(s, KILN_ERR_INVALID_ARGUMENT, "layer 2 'dropout2' (dropout)", "must be in [0, 1)");
        l[2].dropout.rate = 0.0f;
        l[1].batchnorm.momentum = 1.5f;
        EXPECT(s, KILN_ERR_INVALID_ARGUMENT, "layer 1 'batchnorm1' (batchnorm)",
               "momentum 1.5 must be in [0, 1]", "Keras");
        l[1].batchnorm.momentum = 0.1f;
        l[1].batchnorm.eps = 0.0f;
        EXPECT(s, KILN_ERR_INVALID_ARGUMENT, "layer 1 'batchnorm1' (batchnorm)",
               "eps 0 must be > 0");
        l[1].batchnorm.eps = 1e-3f;
        l[3].leaky_relu.slope = -1.0f;
        EXPECT(s, KILN_ERR_INVALID_ARGUMENT, "layer 3 'leaky_relu3' (leaky_relu)",
               "slope -1 must be finite and >= 0");
    }
    {
        kiln_layer_spec l[] = {layer(KILN_LAYER_RELU)};
        l[0].kind = (kiln_layer_kind)99;
        kiln_spec s = IMAGES(l);
        EXPECT(s, KILN_ERR_INVALID_ARGUMENT, "layer 0: unknown layer kind 99");
    }
    {
        /* Losses name the last layer and its output's shape. */
        kiln_layer_spec l[] = {conv(2, 4, 3, true)};
        kiln_spec s = IMAGES(l);
        s.loss.kind = KILN_LOSS_SOFTMAX_CROSS_ENTROPY;
        EXPECT(s, KILN_ERR_SHAPE,
               "loss softmax_cross_entropy on layer 0 'conv2d0' (conv2d): output (2, 4, 8, 8) "
               "needs (N, classes) logits");
        s.loss.kind = (kiln_loss_kind)17;
        EXPECT(s, KILN_ERR_INVALID_ARGUMENT, "unknown loss kind 17");
        kiln_loss_spec_init(&s.loss, KILN_LOSS_DICE);
        s.loss.smooth = -1.0f;
        EXPECT(s, KILN_ERR_INVALID_ARGUMENT, "loss dice on layer 0 'conv2d0' (conv2d)",
               "smooth -1 must be finite and >= 0");
    }
    {
        kiln_layer_spec l[] = {layer(KILN_LAYER_FLATTEN), dense(10), layer(KILN_LAYER_SOFTMAX)};
        kiln_spec s = IMAGES(l);
        s.loss.kind = KILN_LOSS_SOFTMAX_CROSS_ENTROPY;
        EXPECT(s, KILN_ERR_INVALID_ARGUMENT,
               "loss softmax_cross_entropy on layer 2 'softmax2' (softmax)",
               "remove the final softmax layer");
        l[2] = layer(KILN_LAYER_SIGMOID);
        s.loss.kind = KILN_LOSS_DICE_BCE;
        EXPECT(s, KILN_ERR_INVALID_ARGUMENT, "loss dice_bce on layer 2 'sigmoid2' (sigmoid)",
               "remove the final sigmoid layer");
        l[2] = layer(KILN_LAYER_RELU);
        kiln_loss_spec_init(&s.loss, KILN_LOSS_SOFTMAX_CROSS_ENTROPY);
        s.loss.label_smoothing = 1.0f;
        EXPECT(s, KILN_ERR_INVALID_ARGUMENT, "loss softmax_cross_entropy on layer 2 'relu2'",
               "label_smoothing 1 must be in [0, 1)");
    }
    {
        kiln_layer_spec l[] = {layer(KILN_LAYER_RELU)};
        kiln_spec s = IMAGES(l);
        s.batch_size = 0;
        EXPECT(s, KILN_ERR_INVALID_ARGUMENT, "batch size 0 must be >= 1");
        s.batch_size = 2;
        s.input = kiln_shape_of(0, NULL);
        EXPECT(s, KILN_ERR_SHAPE, "input shape ()", "without the batch axis");
        s.input = kiln_shape_of(2, (int64_t[]){3, 0});
        EXPECT(s, KILN_ERR_SHAPE, "input shape (3, 0)");
        s.input = kiln_shape_of(6, (int64_t[]){1, 1, 1, 1, 1, 1});
        EXPECT(s, KILN_ERR_SHAPE, "input shape (1, 1, 1, 1, 1, 1)", "1 to 5 axes");
        s.input = kiln_shape_of(1, (int64_t[]){4});
        s.n_layers = 0;
        EXPECT(s, KILN_ERR_INVALID_ARGUMENT, "the model has no layers");
    }
    kiln_context_destroy(ctx);
}

/* The U-Net build fails cleanly at every allocation: KILN_ERR_NO_MEMORY, no graph, no leak. */
static void test_allocation_failures(void **state)
{
    (void)state;
    kiln_layer_spec layers[] = {
        named(conv(3, 4, 3, true), "enc1"), pool(KILN_LAYER_MAXPOOL3D, 2),
        named(upsample3d(2), "up1"),        from(layer(KILN_LAYER_CONCAT), "up1", "enc1", NULL),
        layer(KILN_LAYER_BATCHNORM),        conv(3, 1, 1, false),
    };
    kiln_spec s =
        make_spec(layers, 6, kiln_shape_of(4, (int64_t[]){1, 4, 4, 4}), 1, KILN_LOSS_DICE_BCE);
    kiln_test_allocator a;
    kiln_test_allocator_init(&a, -1);
    kiln_context_options options = {.allocator = &a.allocator};
    kiln_context *ctx = NULL;
    assert_int_equal(kiln_context_create(&options, &ctx), KILN_OK);
    long base = a.live;
    kiln_status rc = KILN_ERR_NO_MEMORY;
    long budget = 0;
    for (; rc != KILN_OK && budget < 5000; budget++) {
        built b;
        a.budget = budget;
        rc = kiln_spec_build(ctx, &s, &b.g, &b.input, &b.target, &b.output, &b.loss);
        a.budget = -1;
        if (rc == KILN_OK) {
            kiln_graph_destroy(b.g);
        } else {
            if (rc != KILN_ERR_NO_MEMORY)
                fail_msg("budget %ld: %s (%s)", budget, kiln_status_name(rc),
                         kiln_context_last_error(ctx));
            assert_null(b.g);
        }
        kiln_context_clear_error(ctx);
        assert_int_equal(a.live, base);
    }
    assert_int_equal(rc, KILN_OK);
    assert_true(budget > 20); /* the loop did exercise failures */
    kiln_context_destroy(ctx);
    assert_int_equal(a.live, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_design_mlp),
        cmocka_unit_test(test_fashion_cnn),
        cmocka_unit_test(test_unet3d_dice_bce),
        cmocka_unit_test(test_residual_add_without_loss),
        cmocka_unit_test(test_defaults_and_names),
        cmocka_unit_test(test_bad_shapes_and_wiring),
        cmocka_unit_test(test_bad_values_and_losses),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
