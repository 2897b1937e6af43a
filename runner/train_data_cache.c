/*
 * `kiln train`'s prepared-data cache (data.cache, on by default): the splits as
 * train_data_load leaves them (read, split, deduplicated, preprocessed), the preprocessing
 * statistics and the messages the preparation printed, in "<cache dir>/<key>.kdata" (the
 * library's prepared-data file, kiln_prepared_write). The key covers the config's data
 * section, the seed (the validation split), model.input (per-channel statistics) and the loss
 * (the label kind), the identity of every data file and the library's own file, so editing
 * any of them prepares afresh. A later run with the same key maps the file instead of
 * preparing again and repeats the messages. At most DATA_CACHE_KEEP files are kept: the least
 * recently used go first (kiln_cache_trim, which also sweeps stale temporaries). The cache
 * never makes a run fail: a file it cannot use or write is reported as a warning and the data are
 * prepared as if there were none.
 */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "trainer.h"

enum { DATA_CACHE_KEEP = 4 };
static const char SUFFIX[] = ".kdata";

/* The data files the config names, in a fixed order (empty fields skipped). */
static size_t data_files(const config *cfg, const char *files[6])
{
    size_t n = 0;
    const config_files *lists[2] = {cfg->data.has_train ? &cfg->data.train : NULL,
                                    cfg->data.has_test ? &cfg->data.test : NULL};
    for (int s = 0; s < 2; s++) {
        if (lists[s] == NULL)
            continue;
        const char *paths[3] = {lists[s]->images, lists[s]->labels, lists[s]->file};
        for (int i = 0; i < 3; i++) {
            if (paths[i][0] != '\0')
                files[n++] = paths[i];
        }
    }
    return n;
}

bool train_data_cache_locate(const config *cfg, kiln_context *ctx, train_data_cache *out)
{
    memset(out, 0, sizeof *out);
    if (!cfg->data.cache || kiln_cache_disabled_by_env() ||
        kiln_cache_get_dir(ctx, NULL, out->dir, sizeof out->dir) != KILN_OK) {
        kiln_context_clear_error(ctx);
        return false;
    }
    config_error err;
    char *data = NULL;
    if (config_write_data_string(cfg, &data, &err) != KILN_OK)
        return false;
    train_text text = {0};
    char shape[128];
    train_append(&text, "%s\nseed: %lld\nmodel.input: %s\nloss: %d\n", data, (long long)cfg->seed,
                 kiln_shape_format(&cfg->model.input, shape, sizeof shape), (int)cfg->loss.kind);
    free(data);
    const char *files[6];
    size_t n_files = data_files(cfg, files);
    char key[65];
    /* A data file that cannot be examined: no cache, and reading it reports why. */
    bool ok = !text.failed && kiln_prepared_key(ctx, text.data, files, n_files, key) == KILN_OK &&
              snprintf(out->path, sizeof out->path, "%s/%s%s", out->dir, key, SUFFIX) <
                  (int)sizeof out->path;
    free(text.data);
    kiln_context_clear_error(ctx);
    return ok;
}

/* The datasets of a cache file in order (train, then validation and test when the config has
 * them) and the statistics into a new pipeline; false with a reason when they do not fit. */
static bool assemble(const config *cfg, kiln_context *ctx, kiln_prepared *file, train_data *out,
                     char *why, size_t capacity)
{
    bool has_validation = cfg->data.validation_fraction > 0, has_test = config_has_test(cfg);
    size_t expected = 1 + (has_validation ? 1 : 0) + (has_test ? 1 : 0);
    if (kiln_prepared_n_sets(file) != expected) {
        snprintf(why, capacity, "it holds %zu split(s), the config makes %zu",
                 kiln_prepared_n_sets(file), expected);
        return false;
    }
    kiln_dataset **slots[3] = {&out->train, has_validation ? &out->validation : &out->test,
                               &out->test};
    for (size_t i = 0; i < expected; i++) {
        if (kiln_prepared_get_set(file, i, slots[i]) != KILN_OK) {
            snprintf(why, capacity, "%s", kiln_context_last_error(ctx));
            return false;
        }
    }
    if (out->train->n_features != kiln_shape_count(&cfg->model.input)) {
        snprintf(why, capacity, "its samples do not match model.input");
        return false;
    }
    if (train_make_preprocess(cfg, ctx, out->train, &out->preprocess) != KILN_OK) {
        snprintf(why, capacity, "%s", kiln_context_last_error(ctx));
        return false;
    }
    size_t n_stats = out->preprocess != NULL ? kiln_preprocess_n_stats(out->preprocess) : 0;
    if (kiln_prepared_n_arrays(file) != n_stats) {
        snprintf(why, capacity, "it holds %zu statistic(s), data.preprocess needs %zu",
                 kiln_prepared_n_arrays(file), n_stats);
        return false;
    }
    for (size_t i = 0; i < n_stats; i++) {
        const kiln_prepared_array *a = kiln_prepared_array_at(file, i);
        if (kiln_preprocess_write_stat(out->preprocess, a->name, a->values, a->n) != KILN_OK) {
            snprintf(why, capacity, "%s", kiln_context_last_error(ctx));
            return false;
        }
    }
    if (out->preprocess != NULL && !kiln_preprocess_is_fitted(out->preprocess)) {
        snprintf(why, capacity, "a statistic of data.preprocess is missing (another repeated)");
        return false;
    }
    return true;
}

bool train_data_cache_read(const train_data_cache *c, const config *cfg, kiln_context *ctx,
                           train_data *out)
{
    memset(out, 0, sizeof *out);
    kiln_prepared *file = NULL;
    char why[512] = "";
    kiln_status rc = kiln_prepared_open(ctx, c->path, &file);
    if (rc == KILN_ERR_NOT_FOUND) {
        kiln_context_clear_error(ctx);
        return false; /* not prepared yet */
    }
    bool ok = rc == KILN_OK;
    if (!ok)
        snprintf(why, sizeof why, "%s", kiln_context_last_error(ctx));
    else
        ok = assemble(cfg, ctx, file, out, why, sizeof why);
    if (ok) {
        fputs(kiln_prepared_note(file), stderr);
        utimensat(AT_FDCWD, c->path, NULL, 0); /* recently used: kept longest */
    } else {
        fprintf(stderr, "kiln: warning: data.cache: cannot use %s, preparing the data again: %s\n",
                c->path, why);
        train_data_deinit(out);
    }
    kiln_prepared_close(file);
    kiln_context_clear_error(ctx);
    return ok;
}

bool train_data_cache_write(const train_data_cache *c, kiln_context *ctx, const train_data *d,
                            const char *note)
{
    const kiln_dataset *sets[3];
    size_t n_sets = 0;
    sets[n_sets++] = d->train;
    if (d->validation != NULL)
        sets[n_sets++] = d->validation;
    if (d->test != NULL)
        sets[n_sets++] = d->test;
    size_t n_stats = d->preprocess != NULL ? kiln_preprocess_n_stats(d->preprocess) : 0;
    kiln_prepared_array *arrays = calloc(n_stats + 1, sizeof *arrays);
    float **values = calloc(n_stats + 1, sizeof *values);
    kiln_status rc = arrays != NULL && values != NULL ? KILN_OK : KILN_ERR_NO_MEMORY;
    for (size_t i = 0; i < n_stats && rc == KILN_OK; i++) {
        const char *name = kiln_preprocess_stat_name(d->preprocess, i);
        int64_t n = kiln_preprocess_stat_size(d->preprocess, i);
        values[i] = malloc((size_t)n * sizeof(float));
        rc = values[i] != NULL ? kiln_preprocess_read_stat(d->preprocess, name, values[i], n)
                               : KILN_ERR_NO_MEMORY;
        arrays[i] = (kiln_prepared_array){name, values[i], n};
    }
    config_error err = {{0}};
    if (rc == KILN_OK)
        rc = train_make_dirs(c->dir, &err);
    if (rc == KILN_OK)
        rc = kiln_prepared_write(ctx, c->path, sets, n_sets, arrays, n_stats, note);
    if (rc == KILN_OK && kiln_cache_trim(ctx, c->dir, DATA_CACHE_KEEP, NULL) != KILN_OK)
        fprintf(stderr, "kiln: warning: data.cache: %s\n", kiln_context_last_error(ctx));
    if (rc != KILN_OK) {
        const char *why = err.message[0] != '\0' ? err.message : kiln_context_last_error(ctx);
        fprintf(stderr, "kiln: warning: data.cache: the prepared data were not cached: %s\n",
                why[0] != '\0' ? why : "out of memory");
    }
    kiln_context_clear_error(ctx);
    for (size_t i = 0; i < n_stats && values != NULL; i++)
        free(values[i]);
    free(values);
    free(arrays);
    return rc == KILN_OK;
}
