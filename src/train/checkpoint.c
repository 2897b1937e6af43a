/*
 * Checkpoints: a model's parameters and buffers, an optimiser's state with its step and rate,
 * the caller's metadata and extra tensors, mapped onto the tensor names of one safetensors
 * file (include/kiln/checkpoint.h) and back. Loading checks every name, dtype and shape
 * before it writes anything and reports all mismatches in one message, so a failed load
 * leaves the model as it was. The file format itself lives in safetensors.c.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/safetensors.h"

#define OPTIMIZER_PREFIX "optimizer/"
#define EXTRA_PREFIX "extra/"
/* Names listed per kind of mismatch before "and N more". */
enum { MAX_LISTED = 8 };

static const char *kind_name(kiln_optimizer_kind kind)
{
    return kind == KILN_OPTIMIZER_SGD ? "sgd" : kind == KILN_OPTIMIZER_ADAM ? "adam" : "adamw";
}

static bool is_state(const kiln_graph *g, size_t v)
{
    kiln_value_kind kind = kiln_graph_value_kind(g, (kiln_value)v);
    return kind == KILN_VALUE_PARAMETER || kind == KILN_VALUE_BUFFER;
}

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The tensor named prefix + name, without building the name. */
static const kiln_host_tensor *find_prefixed(const kiln_safetensors *file, const char *prefix,
                                             const char *name)
{
    size_t n_prefix = strlen(prefix);
    for (size_t i = 0; i < kiln_safetensors_n_tensors(file); i++) {
        const kiln_host_tensor *t = kiln_safetensors_tensor(file, i);
        if (strncmp(t->name, prefix, n_prefix) == 0 && strcmp(t->name + n_prefix, name) == 0)
            return t;
    }
    return NULL;
}

kiln_status kiln_checkpoint_save(const char *path, kiln_model *model, kiln_optimizer *opt,
                                 const kiln_metadata_entry *metadata, size_t n_metadata,
                                 const kiln_host_tensor *extra, size_t n_extra)
{
    if (model == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    kiln_graph *g = kiln_model_get_graph(model);
    kiln_context *ctx = kiln_graph_get_context(g);
    if (path == NULL || (n_metadata > 0 && metadata == NULL) || (n_extra > 0 && extra == NULL))
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, __func__,
                           "path, metadata and extra must not be NULL (metadata and extra may be "
                           "when their count is 0)");
    kiln_status rc = KILN_OK;
    size_t n_model = 0, n_states = opt != NULL ? kiln_optimizer_n_states(opt) : 0;
    for (size_t v = 0; v < kiln_graph_n_values(g); v++)
        n_model += is_state(g, v);
    size_t n_tensors = n_model + n_states + n_extra, n_meta = n_metadata + (opt != NULL ? 3 : 0);
    kiln_host_tensor *tensors = kiln__calloc(ctx, n_tensors + 1, sizeof *tensors);
    float **host = kiln__calloc(ctx, n_model + n_states + 1, sizeof *host);
    char **names = kiln__calloc(ctx, n_states + n_extra + 1, sizeof *names);
    kiln_metadata_entry *meta = kiln__calloc(ctx, n_meta + 1, sizeof *meta);
    if (tensors == NULL || host == NULL || names == NULL || meta == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory saving %s", path);
    for (size_t i = 0; i < n_metadata; i++) {
        if (metadata[i].key != NULL && has_prefix(metadata[i].key, OPTIMIZER_PREFIX))
            KILN_FAIL(ctx, KILN_ERR_INVALID_ARGUMENT,
                      "%s: metadata key '%s' is reserved: keys starting with '" OPTIMIZER_PREFIX
                      "' hold the optimiser's step, rate and kind",
                      path, metadata[i].key);
        meta[i] = metadata[i];
    }
    size_t k = 0;
    for (size_t v = 0; v < kiln_graph_n_values(g); v++) {
        if (!is_state(g, v))
            continue;
        const char *name = kiln_graph_value_name(g, (kiln_value)v);
        const kiln_shape *shape = kiln_graph_value_shape(g, (kiln_value)v);
        int64_t count = kiln_shape_count(shape);
        host[k] = kiln__calloc(ctx, (size_t)count, sizeof **host);
        if (host[k] == NULL)
            KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory saving '%s' to %s", name, path);
        KILN_CHECK(kiln_model_read_state(model, name, host[k], count));
        tensors[k] = (kiln_host_tensor){name, KILN_SAFETENSORS_F32, *shape, host[k]};
        k++;
    }
    for (size_t s = 0; s < n_states; s++, k++) {
        const char *name = kiln_optimizer_state_name(opt, s);
        const kiln_shape *shape = kiln_tensor_get_shape(kiln_optimizer_get_state(opt, name));
        int64_t count = kiln_shape_count(shape);
        names[s] = kiln__format(ctx, OPTIMIZER_PREFIX "%s", name);
        host[k] = kiln__calloc(ctx, (size_t)count, sizeof **host);
        if (names[s] == NULL || host[k] == NULL)
            KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory saving '%s' to %s", name, path);
        KILN_CHECK(kiln_optimizer_read_state(opt, name, host[k], count));
        tensors[k] = (kiln_host_tensor){names[s], KILN_SAFETENSORS_F32, *shape, host[k]};
    }
    for (size_t e = 0; e < n_extra; e++, k++) {
        if (extra[e].name == NULL)
            KILN_FAIL(ctx, KILN_ERR_INVALID_ARGUMENT, "%s: extra tensor %zu has no name", path, e);
        names[n_states + e] = kiln__format(ctx, EXTRA_PREFIX "%s", extra[e].name);
        if (names[n_states + e] == NULL)
            KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory saving %s", path);
        tensors[k] = extra[e];
        tensors[k].name = names[n_states + e];
    }
    char step[32], lr[32];
    if (opt != NULL) {
        snprintf(step, sizeof step, "%llu", (unsigned long long)kiln_optimizer_get_step(opt));
        snprintf(lr, sizeof lr, "%.9g", (double)kiln_optimizer_get_lr(opt)); /* exact for floats */
        meta[n_metadata] = (kiln_metadata_entry){OPTIMIZER_PREFIX "kind",
                                                 kind_name(kiln_optimizer_get_config(opt)->kind)};
        meta[n_metadata + 1] = (kiln_metadata_entry){OPTIMIZER_PREFIX "step", step};
        meta[n_metadata + 2] = (kiln_metadata_entry){OPTIMIZER_PREFIX "lr", lr};
    }
    rc = kiln_safetensors_write(ctx, path, meta, n_meta, tensors, n_tensors);
cleanup:
    for (size_t i = 0; host != NULL && i < n_model + n_states; i++)
        kiln__free(ctx, host[i]);
    for (size_t i = 0; names != NULL && i < n_states + n_extra; i++)
        kiln__free(ctx, names[i]);
    kiln__free(ctx, tensors);
    kiln__free(ctx, host);
    kiln__free(ctx, names);
    kiln__free(ctx, meta);
    return rc;
}

/* Mismatches between a file and a model (and optimiser), listed by kind. */
typedef struct report {
    kiln__text missing, unexpected, wrong;
    size_t n_missing, n_unexpected, n_wrong;
} report;

static void note(kiln__text *list, size_t *count, const char *item)
{
    if (*count < MAX_LISTED)
        kiln__text_printf(list, "%s%s", *count > 0 ? ", " : "", item);
    (*count)++;
}

/* Notes `name` as missing, or of the wrong dtype or shape, unless the file's tensor `t` is
 * an F32 tensor of `shape`. */
static void compare(report *r, const kiln_host_tensor *t, const char *prefix, const char *name,
                    const kiln_shape *shape)
{
    char item[512], in_file[96], expected[96];
    if (t == NULL) {
        snprintf(item, sizeof item, "'%s%s'", prefix, name);
        note(&r->missing, &r->n_missing, item);
    } else if (t->dtype != KILN_SAFETENSORS_F32 || !kiln_shape_equal(&t->shape, shape)) {
        snprintf(item, sizeof item, "'%s%s' (file %s %s, expected F32 %s)", prefix, name,
                 kiln_safetensors_dtype_name(t->dtype),
                 kiln_shape_format(&t->shape, in_file, sizeof in_file),
                 kiln_shape_format(shape, expected, sizeof expected));
        note(&r->wrong, &r->n_wrong, item);
    }
}

static void unexpected(report *r, const char *name)
{
    char item[512];
    snprintf(item, sizeof item, "'%s'", name);
    note(&r->unexpected, &r->n_unexpected, item);
}

/* One message for every mismatch: KILN_ERR_NOT_FOUND when names differ, else KILN_ERR_SHAPE. */
static kiln_status report_error(kiln_context *ctx, const char *path, report *r)
{
    kiln__text m = {.ctx = ctx};
    const kiln__text *lists[3] = {&r->missing, &r->unexpected, &r->wrong};
    const size_t counts[3] = {r->n_missing, r->n_unexpected, r->n_wrong};
    static const char *const WHAT[3] = {"missing from the file", "in the file but not expected",
                                        "of another dtype or shape"};
    kiln__text_printf(&m, "%s does not fit the model:", path);
    for (int i = 0, parts = 0; i < 3; i++) {
        if (counts[i] == 0)
            continue;
        kiln__text_printf(&m, "%s %zu %s: %s", parts++ > 0 ? ";" : "", counts[i], WHAT[i],
                          lists[i]->data != NULL ? lists[i]->data : "(out of memory)");
        if (counts[i] > MAX_LISTED)
            kiln__text_printf(&m, " and %zu more", counts[i] - MAX_LISTED);
    }
    kiln__text_printf(&m, " (was it saved from another model config?)");
    kiln_status status = r->n_missing + r->n_unexpected > 0 ? KILN_ERR_NOT_FOUND : KILN_ERR_SHAPE;
    kiln_status rc = m.failed ? kiln__error(ctx, status, "kiln_checkpoint_apply",
                                            "%s does not fit the model (out of memory listing "
                                            "the differences)",
                                            path)
                              : kiln__error(ctx, status, "kiln_checkpoint_apply", "%s", m.data);
    kiln__text_free(&m);
    return rc;
}

static bool parse_step(const char *text, uint64_t *out)
{
    if (text[0] < '0' || text[0] > '9')
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = value;
    return true;
}

static bool parse_lr(const char *text, float *out)
{
    if ((text[0] < '0' || text[0] > '9') && text[0] != '.')
        return false;
    char *end = NULL;
    double value = strtod(text, &end);
    if (*end != '\0' || !isfinite(value) || value < 0 || value > FLT_MAX)
        return false;
    *out = (float)value;
    return true;
}

/* Checks the optimiser's part of the file: kind, step, rate and every state tensor. */
static kiln_status check_optimizer(kiln_context *ctx, const kiln_safetensors *file,
                                   kiln_optimizer *opt, report *r, uint64_t *step, float *lr)
{
    const char *fn = "kiln_checkpoint_apply", *path = kiln_safetensors_get_path(file);
    const char *kind = kiln_safetensors_get_metadata(file, OPTIMIZER_PREFIX "kind");
    const char *step_text = kiln_safetensors_get_metadata(file, OPTIMIZER_PREFIX "step");
    const char *lr_text = kiln_safetensors_get_metadata(file, OPTIMIZER_PREFIX "lr");
    const char *expected = kind_name(kiln_optimizer_get_config(opt)->kind);
    if (kind == NULL || step_text == NULL || lr_text == NULL)
        return kiln__error(ctx, KILN_ERR_NOT_FOUND, fn,
                           "%s holds no optimiser state (no " OPTIMIZER_PREFIX
                           "kind, step and lr in its metadata): it was saved without an "
                           "optimiser; pass NULL as the optimiser to load the model alone",
                           path);
    if (strcmp(kind, expected) != 0)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn,
                           "%s holds the state of a '%s' optimiser, but this optimiser is '%s'",
                           path, kind, expected);
    if (!parse_step(step_text, step))
        return kiln__error(ctx, KILN_ERR_CORRUPT, fn,
                           "%s: metadata " OPTIMIZER_PREFIX "step is '%s', not a step count", path,
                           step_text);
    if (!parse_lr(lr_text, lr))
        return kiln__error(ctx, KILN_ERR_CORRUPT, fn,
                           "%s: metadata " OPTIMIZER_PREFIX "lr is '%s', not a finite rate >= 0",
                           path, lr_text);
    for (size_t s = 0; s < kiln_optimizer_n_states(opt); s++) {
        const char *name = kiln_optimizer_state_name(opt, s);
        const kiln_shape *shape = kiln_tensor_get_shape(kiln_optimizer_get_state(opt, name));
        compare(r, find_prefixed(file, OPTIMIZER_PREFIX, name), OPTIMIZER_PREFIX, name, shape);
    }
    for (size_t i = 0; i < kiln_safetensors_n_tensors(file); i++) {
        const char *name = kiln_safetensors_tensor(file, i)->name;
        if (has_prefix(name, OPTIMIZER_PREFIX) &&
            kiln_optimizer_get_state(opt, name + strlen(OPTIMIZER_PREFIX)) == NULL)
            unexpected(r, name);
    }
    return KILN_OK;
}

/* The tensor's floats, copied into `scratch` when a foreign writer left them unaligned. */
static const float *as_floats(kiln_context *ctx, const kiln_host_tensor *t, float **scratch)
{
    if ((uintptr_t)t->data % _Alignof(float) == 0)
        return t->data;
    size_t count = (size_t)kiln_shape_count(&t->shape);
    kiln__free(ctx, *scratch);
    *scratch = kiln__calloc(ctx, count, sizeof **scratch);
    if (*scratch != NULL)
        memcpy(*scratch, t->data, count * sizeof **scratch);
    return *scratch;
}

kiln_status kiln_checkpoint_apply(const kiln_safetensors *file, kiln_model *model,
                                  kiln_optimizer *opt)
{
    if (file == NULL || model == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    kiln_graph *g = kiln_model_get_graph(model);
    kiln_context *ctx = kiln_graph_get_context(g);
    const char *path = kiln_safetensors_get_path(file);
    kiln_status rc = KILN_OK;
    report r = {.missing.ctx = ctx, .unexpected.ctx = ctx, .wrong.ctx = ctx};
    float *scratch = NULL;
    uint64_t step = 0;
    float lr = 0;
    for (size_t v = 0; v < kiln_graph_n_values(g); v++) {
        if (!is_state(g, v))
            continue;
        const char *name = kiln_graph_value_name(g, (kiln_value)v);
        compare(&r, kiln_safetensors_find(file, name), "", name,
                kiln_graph_value_shape(g, (kiln_value)v));
    }
    for (size_t i = 0; i < kiln_safetensors_n_tensors(file); i++) {
        const char *name = kiln_safetensors_tensor(file, i)->name;
        kiln_value v = kiln_graph_find(g, name);
        if (!has_prefix(name, OPTIMIZER_PREFIX) && !has_prefix(name, EXTRA_PREFIX) &&
            (v < 0 || !is_state(g, (size_t)v)))
            unexpected(&r, name);
    }
    if (opt != NULL)
        KILN_CHECK(check_optimizer(ctx, file, opt, &r, &step, &lr));
    if (r.n_missing + r.n_unexpected + r.n_wrong > 0)
        KILN_CHECK(report_error(ctx, path, &r));
    for (size_t v = 0; v < kiln_graph_n_values(g); v++) {
        if (!is_state(g, v))
            continue;
        const char *name = kiln_graph_value_name(g, (kiln_value)v);
        const kiln_host_tensor *t = kiln_safetensors_find(file, name);
        const float *data = as_floats(ctx, t, &scratch);
        if (data == NULL)
            KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory loading '%s' from %s", name, path);
        KILN_CHECK(kiln_model_write_state(model, name, data, kiln_shape_count(&t->shape)));
    }
    for (size_t s = 0; opt != NULL && s < kiln_optimizer_n_states(opt); s++) {
        const char *name = kiln_optimizer_state_name(opt, s);
        const kiln_host_tensor *t = find_prefixed(file, OPTIMIZER_PREFIX, name);
        const float *data = as_floats(ctx, t, &scratch);
        if (data == NULL)
            KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory loading '%s' from %s", t->name, path);
        KILN_CHECK(kiln_optimizer_write_state(opt, name, data, kiln_shape_count(&t->shape)));
    }
    if (opt != NULL) {
        kiln_optimizer_set_step(opt, step);
        KILN_CHECK(kiln_optimizer_set_lr(opt, lr));
    }
cleanup:
    kiln__free(ctx, scratch);
    kiln__text_free(&r.missing);
    kiln__text_free(&r.unexpected);
    kiln__text_free(&r.wrong);
    return rc;
}

kiln_status kiln_checkpoint_load(const char *path, kiln_model *model, kiln_optimizer *opt,
                                 kiln_safetensors **out_file)
{
    if (out_file != NULL)
        *out_file = NULL;
    if (model == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    kiln_safetensors *file = NULL;
    kiln_context *ctx = kiln_graph_get_context(kiln_model_get_graph(model));
    kiln_status rc = kiln_safetensors_read(ctx, path, &file);
    if (rc == KILN_OK)
        rc = kiln_checkpoint_apply(file, model, opt);
    if (rc == KILN_OK && out_file != NULL) {
        *out_file = file;
        file = NULL;
    }
    kiln_safetensors_destroy(file);
    return rc;
}

const kiln_host_tensor *kiln_checkpoint_get_extra(const kiln_safetensors *file, const char *name)
{
    return file != NULL && name != NULL ? find_prefixed(file, EXTRA_PREFIX, name) : NULL;
}
