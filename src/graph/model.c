/*
 * Models: the device tensors of a graph's parameters and buffers, their initialisation from a
 * seed (He / Xavier / constant, PyTorch torch.nn.init semantics), and host reads and writes by
 * name for checkpoints. Initial values are computed on the host in double from Philox keyed by
 * the seed and a hash of the parameter's name, so they are identical on every device and do
 * not shift when another layer is added.
 */
#include <math.h>
#include <string.h>

#include "core/philox.h"
#include "core/sha256.h"
#include "graph/model_internal.h"

kiln_status kiln_model_create(kiln_graph *graph, kiln_device *dev, uint64_t seed,
                              kiln_model **out)
{
    kiln_status rc = KILN_OK;
    if (graph == NULL || dev == NULL || out == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    *out = NULL;
    kiln_context *ctx = graph->ctx;
    kiln_model *m = kiln__calloc(ctx, 1, sizeof *m);
    if (m == NULL)
        return kiln__error(ctx, KILN_ERR_NO_MEMORY, __func__, "out of memory creating a model");
    m->graph = graph;
    m->dev = dev;
    m->seed = seed;
    m->state = kiln__calloc(ctx, graph->n_values, sizeof *m->state);
    if (m->state == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory creating a model");
    m->n_state = graph->n_values;
    for (size_t i = 0; i < graph->n_values; i++) {
        const kiln__value *v = &graph->values[i];
        if (v->kind != KILN_VALUE_PARAMETER && v->kind != KILN_VALUE_BUFFER)
            continue;
        KILN_CHECK(kiln_tensor_create(dev, &v->shape, KILN_F32, v->name, &m->state[i]));
    }
    KILN_CHECK(kiln_model_initialize(m, seed));
    *out = m;
    m = NULL;
cleanup:
    kiln_model_destroy(m);
    return rc;
}

void kiln_model_destroy(kiln_model *m)
{
    if (m == NULL)
        return;
    kiln_context *ctx = m->graph->ctx;
    for (size_t i = 0; i < m->n_state; i++)
        kiln_tensor_destroy(m->state[i]);
    kiln__free(ctx, m->state);
    kiln__free(ctx, m);
}

kiln_graph *kiln_model_get_graph(const kiln_model *m)
{
    return m->graph;
}

kiln_device *kiln_model_get_device(const kiln_model *m)
{
    return m->dev;
}

kiln_tensor *kiln_model_get_state(const kiln_model *m, kiln_value v)
{
    return v >= 0 && (size_t)v < m->n_state ? m->state[v] : NULL;
}

/* Fan-in and fan-out of a weight: the named axes times the receptive field (every other
 * axis), as torch.nn.init._calculate_fan_in_and_fan_out does for (out, in, k...) weights. */
static void fans(const kiln__value *v, double *fan_in, double *fan_out)
{
    const kiln_shape *s = &v->shape;
    double count = (double)kiln_shape_count(s);
    int a = v->init.fan_in_axis, b = v->init.fan_out_axis;
    double din = (a >= 0 && a < s->ndim) ? (double)s->dim[a] : 1;
    double dout = (b >= 0 && b < s->ndim) ? (double)s->dim[b] : 1;
    double receptive = s->ndim >= 2 && a != b ? count / (din * dout) : 1;
    *fan_in = din * receptive;
    *fan_out = dout * receptive;
}

/* Fills `out` with the initial values of value `v`: deterministic in (seed, name, index). */
static void generate(const kiln__value *v, uint64_t seed, float *out, int64_t n)
{
    if (v->kind == KILN_VALUE_BUFFER || v->init.kind == KILN_INIT_CONSTANT) {
        float c = v->kind == KILN_VALUE_BUFFER ? v->fill : v->init.value;
        for (int64_t i = 0; i < n; i++)
            out[i] = c;
        return;
    }
    uint8_t digest[KILN_SHA256_DIGEST_SIZE];
    kiln__sha256_buffer(v->name, strlen(v->name), digest);
    uint32_t name_hash[2] = {0, 0};
    for (int i = 0; i < 8; i++)
        name_hash[i / 4] |= (uint32_t)digest[i] << (8 * (i % 4));
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    double fan_in, fan_out;
    fans(v, &fan_in, &fan_out);
    bool he = v->init.kind == KILN_INIT_HE_UNIFORM || v->init.kind == KILN_INIT_HE_NORMAL;
    bool normal = v->init.kind == KILN_INIT_HE_NORMAL || v->init.kind == KILN_INIT_XAVIER_NORMAL;
    /* He (gain sqrt 2, fan-in) and Xavier (gain 1, fan-in + fan-out), as in torch.nn.init. */
    double var = he ? 2.0 / fan_in : 2.0 / (fan_in + fan_out);
    for (int64_t i = 0; i < n; i++) {
        uint32_t counter[4] = {(uint32_t)i, (uint32_t)((uint64_t)i >> 32), name_hash[0],
                               name_hash[1]};
        uint32_t w[4];
        kiln__philox4x32_10(counter, key, w);
        double u1 = ((double)w[0] + 0.5) / 4294967296.0; /* in (0, 1) */
        double u2 = ((double)w[1] + 0.5) / 4294967296.0;
        double x;
        if (normal)
            x = sqrt(var) * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
        else
            x = sqrt(3.0 * var) * (2.0 * u1 - 1.0); /* uniform with the same variance */
        out[i] = (float)x;
    }
}

kiln_status kiln_model_initialize(kiln_model *m, uint64_t seed)
{
    kiln_status rc = KILN_OK;
    kiln_context *ctx = m->graph->ctx;
    float *host = NULL;
    m->seed = seed;
    for (size_t i = 0; i < m->n_state; i++) {
        if (m->state[i] == NULL)
            continue;
        const kiln__value *v = &m->graph->values[i];
        int64_t n = kiln_shape_count(&v->shape);
        host = kiln__calloc(ctx, (size_t)n, sizeof *host);
        if (host == NULL)
            KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory initialising '%s'", v->name);
        generate(v, seed, host, n);
        KILN_CHECK(kiln_tensor_upload(m->state[i], host, n));
        kiln__free(ctx, host);
        host = NULL;
    }
cleanup:
    kiln__free(ctx, host);
    return rc;
}

static kiln_status find_state(kiln_model *m, const char *name, int64_t n, const char *function,
                              kiln_tensor **out)
{
    kiln_value v = kiln_graph_find(m->graph, name);
    kiln_tensor *t = kiln_model_get_state(m, v);
    if (t == NULL)
        return kiln__error(m->graph->ctx, KILN_ERR_NOT_FOUND, function,
                           "the model has no parameter or buffer named '%s'",
                           name != NULL ? name : "(null)");
    if (n != kiln_tensor_count(t)) {
        char text[96];
        return kiln__error(m->graph->ctx, KILN_ERR_SHAPE, function,
                           "'%s' has shape %s (%lld elements), the data has %lld", name,
                           kiln_shape_format(kiln_tensor_get_shape(t), text, sizeof text),
                           (long long)kiln_tensor_count(t), (long long)n);
    }
    *out = t;
    return KILN_OK;
}

kiln_status kiln_model_read_state(kiln_model *m, const char *name, float *host, int64_t n)
{
    kiln_tensor *t = NULL;
    kiln_status rc = find_state(m, name, n, __func__, &t);
    return rc == KILN_OK ? kiln_tensor_download(t, host, n) : rc;
}

kiln_status kiln_model_write_state(kiln_model *m, const char *name, const float *host,
                                   int64_t n)
{
    kiln_tensor *t = NULL;
    kiln_status rc = find_state(m, name, n, __func__, &t);
    return rc == KILN_OK ? kiln_tensor_upload(t, host, n) : rc;
}
