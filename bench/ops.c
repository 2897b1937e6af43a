/*
 * bench/ops: device throughput of the building blocks, printed as one table with a stable
 * key per row so bench/ops.sh can set it beside PyTorch/OpenBLAS on the same CPU:
 *   copy and elementwise add (GB/s, bytes read + written),
 *   SGEMM through the internal GEMM interface at the shapes of a batch-128 MLP
 *   (784-256-128-10) and of the runner's Fashion-MNIST CNN (batch 64: the convolutions'
 *   im2col products per chunk of samples and the dense layers), forward and both backward products,
 *   plus 1024^3 as the "best GEMM" ceiling and a 1 x 1 x 1 product as the launch floor
 *   (gemm_launch, microseconds a call),
 *   conv2d and conv3d forward and backward through the op table (GFLOP/s).
 * Each row is the median of 5 timed batches of back-to-back launches (no wait between
 * launches, one clFinish per batch), after a warm-up that also compiles every kernel.
 * Usage: ops [DEVICE_SPEC]; KILN_BENCH_ONLY=PREFIX keeps the rows whose key starts with it
 * (e.g. "gemm"), KILN_GEMM=kiln|clblast picks the GEMM backend, and
 * KILN_BENCH_GEMM="T:MxNxK ..." adds GEMM rows of those shapes (keys gemm_x_T_MxNxK; T as in
 * `kiln tune --shape`). Benchmarks measure; they never assert.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "device/gemm.h"

static void row(const char *key, const char *shape, double amount, const char *unit, double s)
{
    printf("%-22s %-34s %10.3f %10.2f %s\n", key, shape, s * 1e3, amount / s / 1e9, unit);
    fflush(stdout);
}

/* Whether the row `key` is wanted (KILN_BENCH_ONLY, a key prefix). */
static bool wanted(const char *key)
{
    const char *only = getenv("KILN_BENCH_ONLY");
    return only == NULL || strncmp(key, only, strlen(only)) == 0;
}

/* ---- bandwidth ---- */

static void bench_bandwidth(void)
{
    if (!wanted("copy") && !wanted("add"))
        return;
    int64_t n = 32 << 20; /* 128 MiB per tensor: far past every cache */
    kiln_shape s = {1, {n}};
    kiln_tensor *a = tensor(&s, "a"), *b = tensor(&s, "b"), *y = tensor(&s, "y");
    kiln_tensor *in1[1] = {a}, *in2[2] = {a, b};
    op_call copy = {kiln_op_find("copy"), {.inputs = in1, .n_inputs = 1, .output = y}, false};
    row("copy", "(33554432,) f32", 2.0 * 4 * (double)n, "GB/s", time_it(run_op, &copy));
    op_call add = {kiln_op_find("add"), {.inputs = in2, .n_inputs = 2, .output = y}, false};
    row("add", "(33554432,) f32", 3.0 * 4 * (double)n, "GB/s", time_it(run_op, &add));
    kiln_tensor_destroy(a), kiln_tensor_destroy(b), kiln_tensor_destroy(y);
}

/* ---- GEMM ---- */

typedef struct gemm_case {
    kiln__gemm g;
} gemm_case;

static kiln_status run_gemm(void *user)
{
    return kiln__gemm_run(DEV, "bench", &((gemm_case *)user)->g);
}

/* Seconds per call of C (m, n) = op(A) op(B), op(A) (m, k), on zero operands (time_it). */
static double time_gemm(size_t m, size_t n, size_t k, bool ta, bool tb)
{
    static const char *const NAMES[3] = {"A", "B", "C"};
    size_t sizes[3] = {m * k, k * n, m * n}, most = 0;
    kiln_buffer *buffers[3] = {NULL, NULL, NULL};
    for (int i = 0; i < 3; i++)
        most = sizes[i] > most ? sizes[i] : most;
    float *zeros = calloc(most, sizeof(float));
    if (zeros == NULL) {
        fprintf(stderr, "bench/ops: out of host memory for %zu floats\n", most);
        exit(2);
    }
    for (int i = 0; i < 3; i++) {
        die_on(kiln_buffer_create(DEV, sizes[i] * 4, NAMES[i], &buffers[i]), NAMES[i]);
        die_on(kiln_buffer_write(buffers[i], 0, zeros, sizes[i] * 4), NAMES[i]);
    }
    free(zeros);
    gemm_case gc = {{.transpose_a = ta,
                     .transpose_b = tb,
                     .m = m,
                     .n = n,
                     .k = k,
                     .alpha = 1,
                     .beta = 0,
                     .a = buffers[0],
                     .lda = ta ? m : k,
                     .b = buffers[1],
                     .ldb = tb ? k : n,
                     .c = buffers[2],
                     .ldc = n}};
    double s = time_it(run_gemm, &gc);
    for (int i = 0; i < 3; i++)
        kiln_buffer_destroy(buffers[i]);
    return s;
}

/* C (m, n) = op(A) op(B) with op(A) (m, k); prints GFLOP/s under `key`. */
static void bench_gemm(const char *key, size_t m, size_t n, size_t k, bool ta, bool tb)
{
    if (!wanted(key))
        return;
    char shape[64];
    snprintf(shape, sizeof shape, "m%zu n%zu k%zu %c%c", m, n, k, ta ? 'T' : 'N', tb ? 'T' : 'N');
    row(key, shape, 2.0 * (double)m * (double)n * (double)k, "GFLOP/s", time_gemm(m, n, k, ta, tb));
}

/* The time of one product through the same path when it has no work to do (1 x 1 x 1, NN),
 * printed in microseconds a call under `gemm_launch`: the floor below which no product taking
 * one launch can go on this device, to set beside the library's time at the small rows. */
static void bench_gemm_launch(void)
{
    const char *key = "gemm_launch";
    if (!wanted(key))
        return;
    double s = time_gemm(1, 1, 1, false, false);
    printf("%-22s %-34s %10.3f %10.2f %s\n", key, "m1 n1 k1 NN", s * 1e3, s * 1e6, "us");
    fflush(stdout);
}

/* A dense layer x (batch, in) w (in, out): forward y = x w; backward gw = x^T g, gx = g w^T. */
static void bench_dense_layer(const char *name, size_t batch, size_t in, size_t out)
{
    char key[32];
    snprintf(key, sizeof key, "gemm_%s_fwd", name);
    bench_gemm(key, batch, out, in, false, false);
    snprintf(key, sizeof key, "gemm_%s_dw", name);
    bench_gemm(key, in, out, batch, true, false);
    snprintf(key, sizeof key, "gemm_%s_dx", name);
    bench_gemm(key, batch, in, out, false, true);
}

/* A convolution's products for one chunk of samples, as src/ops/conv.c runs them (F filters,
 * K = C x kernel window, P output positions of the chunk's samples): forward y (F, P) =
 * w (F, K) cols (K, P); backward gw (F, K) = g (F, P) cols^T and column gradients
 * (K, P) = w^T g. */
static void bench_conv_gemms(const char *name, size_t f, size_t k, size_t p)
{
    char key[32];
    snprintf(key, sizeof key, "gemm_%s_fwd", name);
    bench_gemm(key, f, p, k, false, false);
    snprintf(key, sizeof key, "gemm_%s_dw", name);
    bench_gemm(key, f, k, p, false, true);
    snprintf(key, sizeof key, "gemm_%s_dx", name);
    bench_gemm(key, k, p, f, true, false);
}

/* ---- convolution through the op table ---- */

static void bench_conv(const char *key, const char *op_name, const kiln_shape *xs,
                       const kiln_shape *ws, const kiln_conv_params *p)
{
    if (!wanted(key))
        return;
    const kiln_op *op = kiln_op_find(op_name);
    if (op == NULL) {
        printf("%-22s (op %s not built)\n", key, op_name);
        return;
    }
    kiln_shape in[2] = {*xs, *ws}, out;
    die_on(kiln_op_infer(CTX, op, p, in, 2, &out, NULL), key);
    kiln_tensor *x = tensor(xs, "x"), *w = tensor(ws, "w"), *y = tensor(&out, "y");
    kiln_tensor *gx = tensor(xs, "gx"), *gw = tensor(ws, "gw"), *g = tensor(&out, "g");
    kiln_tensor *inputs[2] = {x, w}, *grads[2] = {gx, gw};
    size_t ws_bytes = kiln_op_workspace_bytes(op, p, in, 2);
    kiln_buffer *work = NULL;
    if (ws_bytes > 0)
        die_on(kiln_buffer_create(DEV, ws_bytes, "workspace", &work), "workspace");
    op_call call = {op,
                    {.params = p,
                     .inputs = inputs,
                     .n_inputs = 2,
                     .output = y,
                     .workspace = work,
                     .grad_output = g,
                     .grad_inputs = grads,
                     .grad_fresh = 3u}, /* set, as the executor marks a gradient's first writer */
                    false};
    int64_t spatial = kiln_shape_count(&out) / (out.dim[0] * out.dim[1]);
    int64_t window = kiln_shape_count(ws) / ws->dim[0];
    double flops = 2.0 * (double)out.dim[0] * (double)out.dim[1] * (double)spatial * (double)window;
    char shape[96], a[48], b[48];
    snprintf(shape, sizeof shape, "x%s w%s", kiln_shape_format(xs, a, sizeof a),
             kiln_shape_format(ws, b, sizeof b));
    char k2[48];
    snprintf(k2, sizeof k2, "%s_fwd", key);
    row(k2, shape, flops, "GFLOP/s", time_it(run_op, &call));
    call.backward = true;
    snprintf(k2, sizeof k2, "%s_bwd", key);
    row(k2, shape, 2 * flops, "GFLOP/s", time_it(run_op, &call));
    kiln_buffer_destroy(work);
    kiln_tensor_destroy(x), kiln_tensor_destroy(w), kiln_tensor_destroy(y);
    kiln_tensor_destroy(gx), kiln_tensor_destroy(gw), kiln_tensor_destroy(g);
}

/* ---- the CNN's elementwise and pooling passes, through the op table ---- */

/* Forward and backward of a one-input op on x, rated in GB/s of the bytes each pass must move:
 * forward reads x and writes y and the saved tensors; backward reads g and the saved tensors
 * and writes gx (the op's backward also reads x or y where it needs them; not counted). */
static void bench_pass(const char *key, const char *op_name, const void *params,
                       const kiln_shape *xs)
{
    if (!wanted(key))
        return;
    const kiln_op *op = kiln_op_find(op_name);
    kiln_shape out, saved_shape;
    die_on(kiln_op_infer(CTX, op, params, xs, 1, &out, &saved_shape), key);
    int n_saved = kiln_op_n_saved(op);
    kiln_tensor *x = tensor(xs, "x"), *y = tensor(&out, "y"), *g = tensor(&out, "g");
    kiln_tensor *gx = tensor(xs, "gx"), *saved = n_saved > 0 ? tensor(&saved_shape, "saved") : NULL;
    kiln_tensor *inputs[1] = {x}, *grads[1] = {gx}, *saves[1] = {saved};
    op_call call = {op,
                    {.params = params,
                     .inputs = inputs,
                     .n_inputs = 1,
                     .output = y,
                     .saved = n_saved > 0 ? saves : NULL,
                     .grad_output = g,
                     .grad_inputs = grads,
                     .grad_fresh = 1u},
                    false};
    double in_bytes = 4.0 * (double)kiln_shape_count(xs);
    double out_bytes = 4.0 * (double)kiln_shape_count(&out) * (1 + n_saved);
    char shape[48], k2[48];
    kiln_shape_format(xs, shape, sizeof shape);
    snprintf(k2, sizeof k2, "%s_fwd", key);
    row(k2, shape, in_bytes + out_bytes, "GB/s", time_it(run_op, &call));
    call.backward = true;
    snprintf(k2, sizeof k2, "%s_bwd", key);
    row(k2, shape, out_bytes + 2 * in_bytes, "GB/s", time_it(run_op, &call));
    kiln_tensor_destroy(x), kiln_tensor_destroy(y), kiln_tensor_destroy(g);
    kiln_tensor_destroy(gx), kiln_tensor_destroy(saved);
}

/* The extra GEMM rows KILN_BENCH_GEMM names, space-separated T:MxNxK (kiln_gemm_shape_parse's
 * form, without a batch). */
static void bench_extra_gemms(void)
{
    const char *list = getenv("KILN_BENCH_GEMM");
    while (list != NULL && *(list += strspn(list, " ")) != '\0') {
        size_t len = strcspn(list, " ");
        char word[64] = "";
        kiln_gemm_shape s;
        if (len < sizeof word)
            memcpy(word, list, len);
        if (len >= sizeof word || !kiln_gemm_shape_parse(word, &s) || s.batch != 1) {
            fprintf(stderr,
                    "bench/ops: KILN_BENCH_GEMM: '%.*s' is not T:MxNxK (T: NN, NT, TN, TT)\n",
                    (int)len, list);
            exit(2);
        }
        char key[96];
        snprintf(key, sizeof key, "gemm_x_%.2s_%zux%zux%zu", word, s.m, s.n, s.k);
        bench_gemm(key, s.m, s.n, s.k, s.transpose_a, s.transpose_b);
        list += len;
    }
}

int main(int argc, char **argv)
{
    bench_open("bench/ops", argc > 1 ? argv[1] : NULL);
    printf("# gemm backend: %s\n", kiln__gemm_backend_name(kiln__gemm_get_backend(DEV)));
    printf("%-22s %-34s %10s %10s %s\n", "key", "shape", "ms", "rate", "unit");
    bench_bandwidth();
    bench_extra_gemms();
    bench_gemm("gemm_1024", 1024, 1024, 1024, false, false);
    bench_gemm_launch();
    bench_dense_layer("mlp1", 128, 784, 256);
    bench_dense_layer("mlp2", 128, 256, 128);
    bench_dense_layer("mlp3", 128, 128, 10);
    /* models/fashion_mnist_cnn.yaml at batch 64: its convolutions' im2col products per chunk
     * of samples as src/ops/conv.c runs them (F x K x S P: 32 samples of 784 positions, 15 of
     * 196, the most that fit its 4 MB chunk) and its two dense layers. */
    bench_conv_gemms("cnn_conv1", 32, 9, 32 * 784);
    bench_conv_gemms("cnn_conv2", 64, 288, 15 * 196);
    bench_dense_layer("cnn_fc1", 64, 3136, 128);
    bench_dense_layer("cnn_fc2", 64, 128, 10);
    kiln_conv_params c2 = {.n_spatial = 2, .stride = {1, 1}, .padding = {1, 1}, .dilation = {1, 1}};
    kiln_shape x1 = {4, {64, 1, 28, 28}}, w1 = {4, {32, 1, 3, 3}};
    kiln_shape x2 = {4, {64, 32, 14, 14}}, w2 = {4, {64, 32, 3, 3}};
    bench_conv("conv2d_cnn1", "conv2d", &x1, &w1, &c2);
    bench_conv("conv2d_cnn2", "conv2d", &x2, &w2, &c2);
    /* The CNN's ReLU and 2 x 2 max pooling after each convolution (gx is set, grad_fresh, as
     * the executor has it: each gradient's first writer sets it; backward bytes count gx
     * once). */
    kiln_shape y1 = {4, {64, 32, 28, 28}}, y2 = {4, {64, 64, 14, 14}};
    kiln_pool_params pool = {.n_spatial = 2, .size = {2, 2}, .stride = {2, 2}};
    bench_pass("relu_cnn1", "relu", NULL, &y1);
    bench_pass("relu_cnn2", "relu", NULL, &y2);
    bench_pass("maxpool_cnn1", "maxpool2d", &pool, &y1);
    bench_pass("maxpool_cnn2", "maxpool2d", &pool, &y2);
    kiln_conv_params c3 = {
        .n_spatial = 3, .stride = {1, 1, 1}, .padding = {1, 1, 1}, .dilation = {1, 1, 1}};
    kiln_shape x3 = {5, {2, 8, 32, 32, 32}}, w3 = {5, {16, 8, 3, 3, 3}};
    bench_conv("conv3d_unet", "conv3d", &x3, &w3, &c3);
    bench_close();
    return 0;
}
