/*
 * bench/conv3d: the seg3d U-Net's conv3d layers (models/seg3d_unet.yaml, batch 4, kernel 3
 * with padding 'same', and the final 1x1x1 conv) through Kiln's op table, with bias as the
 * model has it. Per layer: forward, the full backward (dx, dw, db in one call, as a training
 * step runs it), and the backward without dx (what the first layer needs: its input takes no
 * gradient). Prints "key x-shape w-shape count fwd_ms bwd_ms bwd_nodx_ms" lines for
 * bench/conv3d.sh to join with PyTorch's; times are medians (bench.h). Usage: conv3d [DEVICE].
 */
#include <stdio.h>

#include "bench.h"

/* One distinct layer shape and how many times a U-Net step runs it. */
typedef struct layer {
    const char *key;
    int64_t n, c, f, size, kernel;
    int count;
} layer;

static const layer LAYERS[] = {
    {"enc1a", 4, 1, 8, 16, 3, 1},  {"enc1b", 4, 8, 8, 16, 3, 2},  {"enc2a", 4, 8, 16, 8, 3, 1},
    {"enc2b", 4, 16, 16, 8, 3, 1}, {"dec1a", 4, 24, 8, 16, 3, 1}, {"head", 4, 8, 1, 16, 1, 1},
};

static void bench_layer(const layer *l)
{
    const kiln_op *op = kiln_op_find("conv3d");
    kiln_conv_params p = {.n_spatial = 3, .has_bias = true};
    for (int a = 0; a < 3; a++) {
        p.stride[a] = p.dilation[a] = 1;
        p.padding[a] = (int)(l->kernel - 1) / 2;
    }
    int64_t k = l->kernel, s = l->size;
    kiln_shape in[3] = {{5, {l->n, l->c, s, s, s}}, {5, {l->f, l->c, k, k, k}}, {1, {l->f}}};
    kiln_shape out;
    die_on(kiln_op_infer(CTX, op, &p, in, 3, &out, NULL), l->key);
    kiln_tensor *x = tensor(&in[0], "x"), *w = tensor(&in[1], "w"), *b = tensor(&in[2], "b");
    kiln_tensor *y = tensor(&out, "y"), *g = tensor(&out, "g");
    kiln_tensor *gx = tensor(&in[0], "gx"), *gw = tensor(&in[1], "gw"), *gb = tensor(&in[2], "gb");
    kiln_tensor *inputs[3] = {x, w, b}, *grads[3] = {gx, gw, gb};
    size_t ws_bytes = kiln_op_workspace_bytes(op, &p, in, 3);
    kiln_buffer *work = NULL;
    if (ws_bytes > 0)
        die_on(kiln_buffer_create(DEV, ws_bytes, "workspace", &work), "workspace");
    op_call call = {op,
                    {.params = &p,
                     .inputs = inputs,
                     .n_inputs = 3,
                     .output = y,
                     .workspace = work,
                     .grad_output = g,
                     .grad_inputs = grads},
                    false};
    double fwd = time_it(run_op, &call);
    call.backward = true;
    double bwd = time_it(run_op, &call);
    grads[0] = NULL; /* the backward skips dx when its gradient is not wanted */
    double bwd_nodx = time_it(run_op, &call);
    printf("%s (%lld,%lld,%lld,%lld,%lld) (%lld,%lld,%lld,%lld,%lld) %d %.4f %.4f %.4f\n", l->key,
           (long long)l->n, (long long)l->c, (long long)s, (long long)s, (long long)s,
           (long long)l->f, (long long)l->c, (long long)k, (long long)k, (long long)k, l->count,
           fwd * 1e3, bwd * 1e3, bwd_nodx * 1e3);
    fflush(stdout);
    kiln_buffer_destroy(work);
    kiln_tensor_destroy(x), kiln_tensor_destroy(w), kiln_tensor_destroy(b);
    kiln_tensor_destroy(y), kiln_tensor_destroy(g);
    kiln_tensor_destroy(gx), kiln_tensor_destroy(gw), kiln_tensor_destroy(gb);
}

int main(int argc, char **argv)
{
    bench_open("bench/conv3d", argc > 1 ? argv[1] : NULL);
    for (size_t i = 0; i < sizeof LAYERS / sizeof LAYERS[0]; i++)
        bench_layer(&LAYERS[i]);
    bench_close();
    return 0;
}
