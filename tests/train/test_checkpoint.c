/*
 * Checkpoints of a small MLP with batch-norm (dense, batchnorm, relu, dense, softmax
 * cross-entropy) on the test device: a model trained a few steps, saved and loaded into a
 * fresh model of another seed on a second device handle, gives the same eval outputs bit for
 * bit, with the metadata and extra tensors handed back; a model and optimiser (SGD with
 * Nesterov momentum, Adam) saved mid-training and loaded into fresh ones take the next step
 * bit-identically to an uninterrupted run, with step count and rate restored; a file laid
 * out by another writer (unaligned floats, another order) loads too; a model of another width,
 * with a missing or an extra layer, a parameter stored as I32, an absent or mismatched
 * optimiser state, bad optimiser metadata, bad JSON and a truncated file each fail with the
 * right status and a message naming the file and the tensors, leaving the model unchanged.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kiln/checkpoint.h"
#include "support/kiln_test.h"

enum { N = 8, IN = 6, CLASSES = 3, MAX_STATE = 512 };

typedef struct net {
    kiln_graph *g;
    kiln_value x, labels, logits, loss;
} net;

/* x (N, IN) -> fc1 (N, hidden) -> bn1 -> relu -> fc2 (N, CLASSES) [-> fc3 (N, CLASSES)]. */
static void build(kiln_context *ctx, net *n, int hidden, bool batchnorm, bool fc3)
{
    kiln_shape xs = {2, {N, IN}}, ls = {1, {N}};
    kiln_value v;
    assert_int_equal(kiln_graph_create(ctx, &n->g), KILN_OK);
    assert_int_equal(kiln_graph_input(n->g, "x", &xs, KILN_F32, &n->x), KILN_OK);
    assert_int_equal(kiln_graph_input(n->g, "labels", &ls, KILN_I32, &n->labels), KILN_OK);
    assert_int_equal(kiln_graph_dense(n->g, "fc1", n->x, hidden, true, &v), KILN_OK);
    if (batchnorm)
        assert_int_equal(kiln_graph_batchnorm(n->g, "bn1", v, 0.1f, 1e-5f, &v), KILN_OK);
    assert_int_equal(kiln_graph_unary(n->g, "act1", "relu", NULL, v, &v), KILN_OK);
    assert_int_equal(kiln_graph_dense(n->g, "fc2", v, CLASSES, true, &n->logits), KILN_OK);
    if (fc3)
        assert_int_equal(kiln_graph_dense(n->g, "fc3", n->logits, CLASSES, true, &n->logits),
                         KILN_OK);
    kiln_cross_entropy_params ce = {0};
    kiln_value in[2] = {n->logits, n->labels};
    assert_int_equal(kiln_graph_op(n->g, "loss", "softmax_cross_entropy", &ce, in, 2, &n->loss),
                     KILN_OK);
    assert_int_equal(kiln_graph_set_loss(n->g, n->loss), KILN_OK);
}

static void feed(kiln_executor *ex, const net *n, int step)
{
    float x[N * IN];
    int32_t labels[N];
    for (int i = 0; i < N * IN; i++)
        x[i] = (float)sin(0.61 * i + 0.9 * step);
    for (int i = 0; i < N; i++)
        labels[i] = (i + step) % CLASSES;
    assert_int_equal(kiln_executor_set_input(ex, n->x, x, N * IN), KILN_OK);
    assert_int_equal(kiln_executor_set_input(ex, n->labels, labels, N), KILN_OK);
}

/* Train steps first..last-1 (forward, backward, optimiser step) with the step's batch. */
static void train(kiln_model *model, const net *n, kiln_optimizer *opt, int first, int last)
{
    kiln_executor *ex = NULL;
    kiln_executor_options o = {.mode = KILN_MODE_TRAIN};
    assert_int_equal(kiln_executor_create(model, &o, &ex), KILN_OK);
    for (int step = first; step < last; step++) {
        feed(ex, n, step);
        assert_int_equal(kiln_executor_forward(ex, (uint64_t)step), KILN_OK);
        assert_int_equal(kiln_executor_backward(ex), KILN_OK);
        assert_int_equal(kiln_optimizer_step(opt, ex), KILN_OK);
    }
    kiln_executor_destroy(ex);
}

/* Eval-mode logits and loss on a fixed batch: N * CLASSES + 1 floats. */
static void eval_outputs(kiln_model *model, const net *n, float *out)
{
    kiln_executor *ex = NULL;
    kiln_executor_options o = {.mode = KILN_MODE_EVAL, .keep = &n->logits, .n_keep = 1};
    assert_int_equal(kiln_executor_create(model, &o, &ex), KILN_OK);
    feed(ex, n, 100);
    assert_int_equal(kiln_executor_forward(ex, 0), KILN_OK);
    assert_int_equal(kiln_executor_read(ex, n->logits, out, N * CLASSES), KILN_OK);
    assert_int_equal(kiln_executor_read(ex, n->loss, out + N * CLASSES, 1), KILN_OK);
    kiln_executor_destroy(ex);
}

/* Every parameter and buffer, concatenated in graph order; returns the count. */
static size_t read_state(kiln_model *model, float *out)
{
    kiln_graph *g = kiln_model_get_graph(model);
    size_t at = 0;
    for (size_t v = 0; v < kiln_graph_n_values(g); v++) {
        kiln_value_kind kind = kiln_graph_value_kind(g, (kiln_value)v);
        if (kind != KILN_VALUE_PARAMETER && kind != KILN_VALUE_BUFFER)
            continue;
        int64_t count = kiln_shape_count(kiln_graph_value_shape(g, (kiln_value)v));
        assert_true(at + (size_t)count <= MAX_STATE);
        assert_int_equal(
            kiln_model_read_state(model, kiln_graph_value_name(g, (kiln_value)v), out + at, count),
            KILN_OK);
        at += (size_t)count;
    }
    return at;
}

static kiln_optimizer *adam(kiln_model *model)
{
    kiln_optimizer_config c;
    kiln_optimizer_config_init(&c, KILN_OPTIMIZER_ADAM);
    c.lr = 0.01f;
    kiln_optimizer *opt = NULL;
    assert_int_equal(kiln_optimizer_create(model, &c, &opt), KILN_OK);
    return opt;
}

static void test_model_round_trip(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, getenv("KILN_CACHE_DIR"));
    kiln_device *other = kiln_test_open_device(ctx, getenv("KILN_CACHE_DIR"));
    char *dir = kiln_test_make_temp_dir("checkpoint");
    char *path = kiln_test_path_in(dir, "best.safetensors");
    net a, b;
    build(ctx, &a, 5, true, false);
    build(ctx, &b, 5, true, false);
    kiln_model *ma = NULL, *mb = NULL;
    assert_int_equal(kiln_model_create(a.g, dev, 1, &ma), KILN_OK);
    assert_int_equal(kiln_model_create(b.g, other, 99, &mb), KILN_OK);
    kiln_optimizer *opt = adam(ma);
    train(ma, &a, opt, 0, 3);
    float mean[5];
    assert_int_equal(kiln_model_read_state(ma, "bn1.running_mean", mean, 5), KILN_OK);
    assert_true(mean[0] != 0.0f); /* the buffers moved away from their initial values */

    const float stats[IN] = {0.5f, -1, 2, 3.25f, 0, 1e-3f};
    const int64_t classes[CLASSES] = {10, 20, 30};
    kiln_host_tensor extra[2] = {
        {"preprocess.mean", KILN_SAFETENSORS_F32, kiln_shape_of(1, (int64_t[]){IN}), stats},
        {"classes", KILN_SAFETENSORS_I64, kiln_shape_of(1, (int64_t[]){CLASSES}), classes}};
    kiln_metadata_entry meta[2] = {{"config", "name: mlp\nseed: 1\n"}, {"epoch", "3"}};
    assert_int_equal(kiln_checkpoint_save(path, ma, opt, meta, 2, extra, 2), KILN_OK);

    float want[N * CLASSES + 1], got[N * CLASSES + 1], sa[MAX_STATE], sb[MAX_STATE];
    eval_outputs(ma, &a, want);
    eval_outputs(mb, &b, got);
    assert_true(memcmp(want, got, sizeof want) != 0); /* another seed: other outputs */
    kiln_safetensors *file = NULL;
    assert_int_equal(kiln_checkpoint_load(path, mb, NULL, &file), KILN_OK);
    eval_outputs(mb, &b, got);
    assert_memory_equal(want, got, sizeof want);
    size_t count = read_state(ma, sa);
    assert_int_equal(read_state(mb, sb), count);
    assert_memory_equal(sa, sb, count * sizeof *sa);

    assert_string_equal(kiln_safetensors_get_metadata(file, "config"), meta[0].value);
    assert_string_equal(kiln_safetensors_get_metadata(file, "epoch"), "3");
    assert_string_equal(kiln_safetensors_get_metadata(file, "optimizer/step"), "3");
    assert_string_equal(kiln_safetensors_get_metadata(file, "optimizer/kind"), "adam");
    assert_string_equal(kiln_safetensors_get_metadata(file, "optimizer/lr"), "0.00999999978");
    const kiln_host_tensor *s = kiln_checkpoint_get_extra(file, "preprocess.mean");
    assert_non_null(s);
    assert_int_equal(s->dtype, KILN_SAFETENSORS_F32);
    assert_memory_equal(s->data, stats, sizeof stats);
    const kiln_host_tensor *c = kiln_checkpoint_get_extra(file, "classes");
    assert_int_equal(c->dtype, KILN_SAFETENSORS_I64);
    assert_memory_equal(c->data, classes, sizeof classes);
    assert_null(kiln_checkpoint_get_extra(file, "fc1.weight"));
    assert_non_null(kiln_safetensors_find(file, "extra/classes"));
    assert_non_null(kiln_safetensors_find(file, "optimizer/fc1.weight.adam_m"));
    kiln_safetensors_destroy(file);

    kiln_optimizer_destroy(opt);
    kiln_model_destroy(ma);
    kiln_model_destroy(mb);
    kiln_graph_destroy(a.g);
    kiln_graph_destroy(b.g);
    free(path);
    kiln_test_remove_dir(dir);
    free(dir);
    kiln_device_destroy(other);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

/* Two steps, save, a third step; against two steps, save, load into fresh objects, a third
 * step: parameters, buffers and optimiser state equal bit for bit. */
static void check_resume(kiln_context *ctx, kiln_device *dev, const char *path,
                         const kiln_optimizer_config *config)
{
    net a, b;
    build(ctx, &a, 5, true, false);
    build(ctx, &b, 5, true, false);
    kiln_model *ma = NULL, *mb = NULL;
    kiln_optimizer *oa = NULL, *ob = NULL;
    assert_int_equal(kiln_model_create(a.g, dev, 5, &ma), KILN_OK);
    assert_int_equal(kiln_model_create(b.g, dev, 77, &mb), KILN_OK);
    assert_int_equal(kiln_optimizer_create(ma, config, &oa), KILN_OK);
    assert_int_equal(kiln_optimizer_create(mb, config, &ob), KILN_OK);
    train(ma, &a, oa, 0, 2);
    assert_int_equal(kiln_optimizer_set_lr(oa, config->lr * 0.5f), KILN_OK); /* a schedule */
    assert_int_equal(kiln_checkpoint_save(path, ma, oa, NULL, 0, NULL, 0), KILN_OK);
    train(ma, &a, oa, 2, 3);

    assert_int_equal(kiln_checkpoint_load(path, mb, ob, NULL), KILN_OK);
    assert_int_equal(kiln_optimizer_get_step(ob), 2);
    assert_true(kiln_optimizer_get_lr(ob) == config->lr * 0.5f);
    train(mb, &b, ob, 2, 3);
    float sa[MAX_STATE], sb[MAX_STATE];
    size_t count = read_state(ma, sa);
    read_state(mb, sb);
    assert_memory_equal(sa, sb, count * sizeof *sa);
    assert_int_equal(kiln_optimizer_n_states(oa), kiln_optimizer_n_states(ob));
    assert_true(kiln_optimizer_n_states(oa) > 0);
    for (size_t i = 0; i < kiln_optimizer_n_states(oa); i++) {
        const char *name = kiln_optimizer_state_name(oa, i);
        int64_t n = kiln_tensor_count(kiln_optimizer_get_state(oa, name));
        assert_int_equal(kiln_optimizer_read_state(oa, name, sa, n), KILN_OK);
        assert_int_equal(kiln_optimizer_read_state(ob, name, sb, n), KILN_OK);
        assert_memory_equal(sa, sb, (size_t)n * sizeof *sa);
    }
    kiln_optimizer_destroy(oa);
    kiln_optimizer_destroy(ob);
    kiln_model_destroy(ma);
    kiln_model_destroy(mb);
    kiln_graph_destroy(a.g);
    kiln_graph_destroy(b.g);
}

static void test_optimizer_resume(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, getenv("KILN_CACHE_DIR"));
    char *dir = kiln_test_make_temp_dir("checkpoint");
    char *path = kiln_test_path_in(dir, "resume.safetensors");
    kiln_optimizer_config sgd, adamw;
    kiln_optimizer_config_init(&sgd, KILN_OPTIMIZER_SGD);
    sgd.lr = 0.05f;
    sgd.momentum = 0.9f;
    sgd.nesterov = true;
    kiln_optimizer_config_init(&adamw, KILN_OPTIMIZER_ADAMW);
    adamw.lr = 0.01f;
    check_resume(ctx, dev, path, &sgd);
    check_resume(ctx, dev, path, &adamw);
    free(path);
    kiln_test_remove_dir(dir);
    free(dir);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

/* The model's state written by hand in another layout: a 1-byte extra tensor first, so
 * every float is unaligned, and the tensors in reverse graph order. */
static void write_foreign(kiln_model *model, const char *path)
{
    kiln_graph *g = kiln_model_get_graph(model);
    static char header[8192];
    static unsigned char data[4 * MAX_STATE + 1];
    size_t at = 1, used = (size_t)snprintf(
                       header, sizeof header,
                       "{\"extra/pad\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}");
    data[0] = 0xAB;
    for (size_t v = kiln_graph_n_values(g); v-- > 0;) {
        kiln_value_kind kind = kiln_graph_value_kind(g, (kiln_value)v);
        if (kind != KILN_VALUE_PARAMETER && kind != KILN_VALUE_BUFFER)
            continue;
        const char *name = kiln_graph_value_name(g, (kiln_value)v);
        const kiln_shape *s = kiln_graph_value_shape(g, (kiln_value)v);
        int64_t count = kiln_shape_count(s);
        float values[MAX_STATE];
        assert_int_equal(kiln_model_read_state(model, name, values, count), KILN_OK);
        memcpy(data + at, values, (size_t)count * 4);
        char shape[64] = "";
        for (int d = 0, k = 0; d < s->ndim; d++)
            k += snprintf(shape + k, sizeof shape - (size_t)k, d > 0 ? ",%lld" : "%lld",
                          (long long)s->dim[d]);
        used += (size_t)snprintf(header + used, sizeof header - used,
                                 ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%s],"
                                 "\"data_offsets\":[%zu,%zu]}",
                                 name, shape, at, at + (size_t)count * 4);
        at += (size_t)count * 4;
    }
    used += (size_t)snprintf(header + used, sizeof header - used, "}");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    unsigned char length[8];
    for (int i = 0; i < 8; i++)
        length[i] = (unsigned char)((uint64_t)used >> (8 * i));
    assert_int_equal(fwrite(length, 1, 8, f), 8);
    assert_int_equal(fwrite(header, 1, used, f), used);
    assert_int_equal(fwrite(data, 1, at, f), at);
    assert_int_equal(fclose(f), 0);
}

static void test_foreign_layout(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, getenv("KILN_CACHE_DIR"));
    char *dir = kiln_test_make_temp_dir("checkpoint");
    char *path = kiln_test_path_in(dir, "foreign.safetensors");
    net a, b;
    build(ctx, &a, 5, true, false);
    build(ctx, &b, 5, true, false);
    kiln_model *ma = NULL, *mb = NULL;
    assert_int_equal(kiln_model_create(a.g, dev, 3, &ma), KILN_OK);
    assert_int_equal(kiln_model_create(b.g, dev, 4, &mb), KILN_OK);
    kiln_optimizer *opt = adam(ma);
    train(ma, &a, opt, 0, 2);
    write_foreign(ma, path);
    kiln_safetensors *file = NULL;
    assert_int_equal(kiln_checkpoint_load(path, mb, NULL, &file), KILN_OK);
    assert_int_equal(((const unsigned char *)kiln_checkpoint_get_extra(file, "pad")->data)[0],
                     0xAB);
    kiln_safetensors_destroy(file);
    float want[N * CLASSES + 1], got[N * CLASSES + 1];
    eval_outputs(ma, &a, want);
    eval_outputs(mb, &b, got);
    assert_memory_equal(want, got, sizeof want);
    kiln_optimizer_destroy(opt);
    kiln_model_destroy(ma);
    kiln_model_destroy(mb);
    kiln_graph_destroy(a.g);
    kiln_graph_destroy(b.g);
    free(path);
    kiln_test_remove_dir(dir);
    free(dir);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

/* Loading `path` fails with `status` and a message naming the file and each needle, and
 * leaves the model as it was. */
static void expect_failure(kiln_context *ctx, kiln_model *model, kiln_optimizer *opt,
                           const char *path, kiln_status status, const char *const *needles,
                           int n_needles)
{
    float before[MAX_STATE], after[MAX_STATE];
    size_t count = read_state(model, before);
    kiln_safetensors *file = NULL;
    kiln_status rc = kiln_checkpoint_load(path, model, opt, &file);
    if (rc != status)
        fail_msg("loading %s: %s, expected %s: %s", path, kiln_status_name(rc),
                 kiln_status_name(status), kiln_context_last_error(ctx));
    assert_null(file);
    assert_contains(kiln_context_last_error(ctx), path);
    for (int i = 0; i < n_needles; i++)
        assert_contains(kiln_context_last_error(ctx), needles[i]);
    read_state(model, after);
    assert_memory_equal(before, after, count * sizeof *before);
}

/* A model of `hidden` units, [no] batch-norm, [an extra layer] on `dev`, seed 8. */
static kiln_model *target(kiln_context *ctx, kiln_device *dev, net *n, int hidden, bool bn,
                          bool fc3)
{
    build(ctx, n, hidden, bn, fc3);
    kiln_model *m = NULL;
    assert_int_equal(kiln_model_create(n->g, dev, 8, &m), KILN_OK);
    return m;
}

static void drop(kiln_model *m, net *n)
{
    kiln_model_destroy(m);
    kiln_graph_destroy(n->g);
}

/* `src` rewritten to `dst` with fc1.bias stored as I32, or optimizer/step set to `step`. */
static void rewrite(kiln_context *ctx, const char *src, const char *dst, bool i32_bias,
                    const char *step)
{
    kiln_safetensors *file = NULL;
    assert_int_equal(kiln_safetensors_read(ctx, src, &file), KILN_OK);
    kiln_host_tensor tensors[64];
    kiln_metadata_entry meta[16];
    size_t n = kiln_safetensors_n_tensors(file), n_meta = kiln_safetensors_n_metadata(file);
    assert_true(n <= 64 && n_meta <= 16);
    static const int32_t ints[5] = {1, 2, 3, 4, 5};
    for (size_t i = 0; i < n; i++) {
        tensors[i] = *kiln_safetensors_tensor(file, i);
        if (i32_bias && strcmp(tensors[i].name, "fc1.bias") == 0) {
            tensors[i].dtype = KILN_SAFETENSORS_I32;
            tensors[i].data = ints;
        }
    }
    for (size_t i = 0; i < n_meta; i++) {
        meta[i] = *kiln_safetensors_metadata(file, i);
        if (step != NULL && strcmp(meta[i].key, "optimizer/step") == 0)
            meta[i].value = step;
    }
    assert_int_equal(kiln_safetensors_write(ctx, dst, meta, n_meta, tensors, n), KILN_OK);
    kiln_safetensors_destroy(file);
}

/* Writes src to dst with `cut` bytes dropped from its end and, when at >= 0, byte `at` set to
 * `byte`. */
static void copy_file(const char *src, const char *dst, long cut, long at, char byte)
{
    size_t n = 0;
    unsigned char *bytes = kiln_test_read_file(src, &n);
    assert_true((long)n > cut && at < (long)n);
    if (at >= 0)
        bytes[at] = (unsigned char)byte;
    kiln_test_write_file(dst, bytes, n - (size_t)cut);
    free(bytes);
}

static void test_mismatches(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, getenv("KILN_CACHE_DIR"));
    char *dir = kiln_test_make_temp_dir("checkpoint");
    char *path = kiln_test_path_in(dir, "full.safetensors"),
         *bare = kiln_test_path_in(dir, "bare.safetensors");
    char *bad = kiln_test_path_in(dir, "bad.safetensors");
    net a, t;
    kiln_model *ma = target(ctx, dev, &a, 5, true, false);
    kiln_optimizer *opt = adam(ma);
    train(ma, &a, opt, 0, 1);
    assert_int_equal(kiln_checkpoint_save(path, ma, opt, NULL, 0, NULL, 0), KILN_OK);
    assert_int_equal(kiln_checkpoint_save(bare, ma, NULL, NULL, 0, NULL, 0), KILN_OK);
    kiln_metadata_entry reserved = {"optimizer/epoch", "1"};
    assert_int_equal(kiln_checkpoint_save(bad, ma, opt, &reserved, 1, NULL, 0),
                     KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), "'optimizer/epoch' is reserved");

    kiln_model *m = target(ctx, dev, &t, 7, true, false); /* another width */
    const char *wider[] = {"7 of another dtype or shape",
                           "'fc1.weight' (file F32 (6, 5), "
                           "expected F32 (6, 7))",
                           "'bn1.running_var' (file F32 (5,), expected "
                           "F32 (7,))",
                           "'fc2.weight'"};
    expect_failure(ctx, m, NULL, path, KILN_ERR_SHAPE, wider, 4);
    drop(m, &t);
    m = target(ctx, dev, &t, 5, true, true); /* a layer more */
    const char *more[] = {"2 missing from the file: 'fc3.weight', 'fc3.bias'"};
    expect_failure(ctx, m, NULL, path, KILN_ERR_NOT_FOUND, more, 1);
    drop(m, &t);
    m = target(ctx, dev, &t, 5, false, false); /* a layer less */
    const char *less[] = {"4 in the file but not expected: ", "'bn1.weight'", "'bn1.running_mean'"};
    expect_failure(ctx, m, NULL, path, KILN_ERR_NOT_FOUND, less, 3);
    drop(m, &t);

    m = target(ctx, dev, &t, 5, true, false); /* the same model: only the file is wrong */
    rewrite(ctx, path, bad, true, NULL);
    const char *dtype[] = {"1 of another dtype or shape: 'fc1.bias' (file I32 (5,), expected "
                           "F32 (5,))"};
    expect_failure(ctx, m, NULL, bad, KILN_ERR_SHAPE, dtype, 1);
    kiln_optimizer *o = adam(m);
    const char *absent[] = {"holds no optimiser state", "pass NULL as the optimiser"};
    expect_failure(ctx, m, o, bare, KILN_ERR_NOT_FOUND, absent, 2);
    assert_int_equal(kiln_optimizer_get_step(o), 0);
    rewrite(ctx, path, bad, false, "2x");
    const char *step[] = {"optimizer/step is '2x'"};
    expect_failure(ctx, m, o, bad, KILN_ERR_CORRUPT, step, 1);
    kiln_optimizer_destroy(o);
    kiln_optimizer_config sgd;
    kiln_optimizer_config_init(&sgd, KILN_OPTIMIZER_SGD);
    sgd.momentum = 0.5f;
    assert_int_equal(kiln_optimizer_create(m, &sgd, &o), KILN_OK);
    const char *kind[] = {"the state of a 'adam' optimiser, but this optimiser is 'sgd'"};
    expect_failure(ctx, m, o, path, KILN_ERR_INVALID_ARGUMENT, kind, 1);
    kiln_optimizer_destroy(o);

    copy_file(path, bad, 0, 8, '['); /* bad JSON */
    const char *json[] = {"header byte 0: expected '{'"};
    expect_failure(ctx, m, NULL, bad, KILN_ERR_CORRUPT, json, 1);
    kiln_safetensors *file = NULL;
    assert_int_equal(kiln_safetensors_read(ctx, path, &file), KILN_OK);
    char last[128];
    size_t n = kiln_safetensors_n_tensors(file);
    snprintf(last, sizeof last, "tensor '%s' ends at", kiln_safetensors_tensor(file, n - 1)->name);
    kiln_safetensors_destroy(file);
    copy_file(path, bad, 4, -1, 0); /* truncated */
    const char *cut[] = {last, "truncated"};
    expect_failure(ctx, m, NULL, bad, KILN_ERR_CORRUPT, cut, 2);

    /* After all that, the good files still load. */
    assert_int_equal(kiln_checkpoint_load(bare, m, NULL, NULL), KILN_OK);
    o = adam(m);
    assert_int_equal(kiln_checkpoint_load(path, m, o, NULL), KILN_OK);
    assert_int_equal(kiln_optimizer_get_step(o), 1);
    kiln_optimizer_destroy(o);
    drop(m, &t);

    kiln_optimizer_destroy(opt);
    drop(ma, &a);
    free(path);
    free(bare);
    free(bad);
    kiln_test_remove_dir(dir);
    free(dir);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

int main(void)
{
    kiln_test_require_device();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_round_trip),
        cmocka_unit_test(test_optimizer_resume),
        cmocka_unit_test(test_foreign_layout),
        cmocka_unit_test(test_mismatches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
