/*
 * `kiln train`'s data: reads the configured files (IDX, CSV or NPY), holds out the validation
 * split with the run's seed, removes duplicate training samples when asked, fits the
 * preprocessing on what is left for training and applies it to the validation and test
 * splits (refusing missing values that no step fills), and warns when a sample occurs in two
 * splits. Eval and predict reuse the checkpoint's statistics instead of fitting.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/synthetic.h"
#include "trainer.h"

kiln_status train_error(config_error *err, kiln_status status, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, args);
    va_end(args);
    return status;
}

/* data.synthetic: volumes [0, n) for training and validation, or the `test` held out after
 * them (each volume is its own random stream, so the test volumes are new ones). */
static kiln_status make_synthetic(const config *cfg, kiln_context *ctx, bool test,
                                  kiln_dataset **out)
{
    const config_spheres3d *c = &cfg->data.spheres3d;
    kiln_spheres3d_options o;
    kiln_spheres3d_options_init(&o);
    o.depth = c->size[0];
    o.height = c->size[1];
    o.width = c->size[2];
    o.min_objects = c->min_objects;
    o.max_objects = c->max_objects;
    o.min_radius = c->min_radius;
    o.max_radius = c->max_radius;
    o.ellipsoids = c->ellipsoids;
    o.noise = c->noise;
    o.intensity_variation = c->intensity_variation;
    o.seed = (uint64_t)c->seed;
    o.n = test ? c->test : c->n;
    o.first = test ? c->n : 0;
    return kiln_dataset_make_spheres3d(ctx, &o, out);
}

/* The training file (all of it: the validation split is held out later) or the test file,
 * or their synthetic counterparts. */
static kiln_status read_split(const config *cfg, kiln_context *ctx, bool test, kiln_dataset **out)
{
    bool classes = cfg->loss.kind == KILN_LOSS_SOFTMAX_CROSS_ENTROPY;
    const config_files *files = test ? &cfg->data.test : &cfg->data.train;
    switch (cfg->data.format) {
    case CONFIG_FORMAT_IDX:
        return kiln_dataset_read_idx(ctx, files->images, files->labels, out);
    case CONFIG_FORMAT_CSV: {
        kiln_csv_options options;
        kiln_csv_options_init(&options);
        options.header = files->header;
        options.label_index = (int)files->label_column;
        options.label_column = files->label_name[0] != '\0' ? files->label_name : NULL;
        options.labels = classes ? KILN_LABELS_CLASS : KILN_LABELS_TARGET;
        return kiln_dataset_read_csv(ctx, files->file, &options, out);
    }
    case CONFIG_FORMAT_NPY:
        return kiln_dataset_read_npy(ctx, files->images, files->labels,
                                     classes ? KILN_LABELS_CLASS : KILN_LABELS_AUTO, out);
    case CONFIG_FORMAT_SYNTHETIC:
        return make_synthetic(cfg, ctx, test, out);
    }
    return KILN_ERR_INVALID_ARGUMENT;
}

/* Prints a message of the preparation on stderr and keeps it in `note` (the prepared-data
 * cache repeats it when it serves the data later). */
static void say(train_text *note, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(train_text *note, const char *fmt, ...)
{
    char text[1024];
    va_list args;
    va_start(args, fmt);
    vsnprintf(text, sizeof text, fmt, args);
    va_end(args);
    fputs(text, stderr);
    train_append(note, "%s", text);
}

/* The library's steps for data.preprocess; per_channel takes its channel count from
 * model.input's first axis, the same in train, eval and predict. */
kiln_status train_make_preprocess(const config *cfg, kiln_context *ctx, const kiln_dataset *ds,
                                  kiln_preprocess **out)
{
    static const kiln_preprocess_kind STANDARDIZE[] = {
        [CONFIG_STANDARDIZE_GLOBAL] = KILN_PREPROCESS_STANDARDIZE,
        [CONFIG_STANDARDIZE_PER_FEATURE] = KILN_PREPROCESS_STANDARDIZE_FEATURES,
        [CONFIG_STANDARDIZE_PER_CHANNEL] = KILN_PREPROCESS_STANDARDIZE_CHANNELS};
    static const kiln_preprocess_kind IMPUTE[] = {
        [CONFIG_IMPUTE_MEAN] = KILN_PREPROCESS_IMPUTE_MEAN,
        [CONFIG_IMPUTE_MEDIAN] = KILN_PREPROCESS_IMPUTE_MEDIAN,
        [CONFIG_IMPUTE_CONSTANT] = KILN_PREPROCESS_IMPUTE_CONSTANT};
    kiln_preprocess_step steps[CONFIG_MAX_PREPROCESS];
    int n = cfg->data.n_preprocess;
    *out = NULL;
    for (int i = 0; i < n; i++) {
        const config_preprocess *p = &cfg->data.preprocess[i];
        steps[i] = (kiln_preprocess_step){.channels = cfg->model.input.dim[0]};
        switch (p->kind) {
        case CONFIG_PREPROCESS_SCALE:
            steps[i].kind = KILN_PREPROCESS_SCALE;
            steps[i].value = p->scale;
            break;
        case CONFIG_PREPROCESS_STANDARDIZE:
            steps[i].kind = STANDARDIZE[p->standardize];
            break;
        case CONFIG_PREPROCESS_MINMAX:
            steps[i].kind = KILN_PREPROCESS_MINMAX;
            break;
        case CONFIG_PREPROCESS_IMPUTE:
            steps[i].kind = IMPUTE[p->impute];
            steps[i].value = p->fill;
            break;
        case CONFIG_PREPROCESS_DROP_MISSING:
            steps[i].kind = KILN_PREPROCESS_DROP_MISSING;
            break;
        }
    }
    if (n == 0)
        return KILN_OK;
    return kiln_preprocess_create(ctx, steps, (size_t)n, ds->n_features, out);
}

/* Fits (train) or applies the pipeline to one split, says on stderr how many missing values
 * it had and how many samples drop_missing removed, and refuses missing values that are left:
 * they would turn the loss into NaN. */
static kiln_status preprocess_split(const config *cfg, kiln_preprocess *pp, kiln_dataset *ds,
                                    const char *split, train_text *note, config_error *err)
{
    int64_t missing = kiln_dataset_n_missing(ds), dropped = 0;
    kiln_status rc = KILN_OK;
    if (pp != NULL && strcmp(split, "train") == 0)
        rc = kiln_preprocess_fit_transform(pp, ds, &dropped);
    else if (pp != NULL)
        rc = kiln_preprocess_transform(pp, ds, &dropped);
    if (rc != KILN_OK || missing == 0)
        return rc;
    int64_t left = kiln_dataset_n_missing(ds);
    say(note,
        "kiln: data: %s split: %lld missing value(s) before data.preprocess, %lld after; "
        "%lld sample(s) dropped\n",
        split, (long long)missing, (long long)left, (long long)dropped);
    if (left == 0)
        return KILN_OK;
    return train_error(err, KILN_ERR_INVALID_ARGUMENT,
                       "%s: data.preprocess: the %s split has %lld missing value(s) (empty, NA "
                       "or NaN cells) that no step fills; add {impute: mean}, {impute: median}, "
                       "{impute: {constant: 0}} or drop_missing",
                       cfg->source, split, (long long)left);
}

/* data.remove_duplicates: drops repeated samples (features and label) from the training
 * split only, keeping the first, and says how many on stderr. */
static kiln_status remove_duplicates(kiln_dataset *train, train_text *note)
{
    int64_t n = train->n, removed = 0, conflicting = 0;
    kiln_status rc = kiln_dataset_remove_duplicates(train, &removed, &conflicting);
    if (rc != KILN_OK)
        return rc;
    say(note, "kiln: data: removed %lld duplicate sample(s) of %lld from the training split\n",
        (long long)removed, (long long)n);
    if (conflicting > 0)
        say(note,
            "kiln: warning: %lld training sample(s) have the features of an earlier one but "
            "another label\n",
            (long long)conflicting);
    return KILN_OK;
}

static void warn_leakage(kiln_context *ctx, const train_data *d, train_text *note)
{
    const kiln_dataset *splits[3];
    const char *names[3];
    int n = 0;
    splits[n] = d->train, names[n++] = "train";
    if (d->validation != NULL)
        splits[n] = d->validation, names[n++] = "validation";
    if (d->test != NULL)
        splits[n] = d->test, names[n++] = "test";
    if (n < 2)
        return;
    kiln_leakage_report report;
    if (kiln_dataset_count_leakage(ctx, splits, n, &report) != KILN_OK) {
        kiln_context_clear_error(ctx);
        return;
    }
    for (int i = 0; i < n; i++) {
        for (int j = i + 1; j < n; j++) {
            if (report.n_shared[i][j] > 0)
                say(note,
                    "kiln: warning: %lld %s sample(s) also occur in the %s split "
                    "(identical features)\n",
                    (long long)report.n_shared[i][j], names[i], names[j]);
        }
    }
}

/* train_data_load without the cache; the messages also go to `note`. */
static kiln_status prepare(const config *cfg, kiln_context *ctx, train_data *out, train_text *note,
                           config_error *err)
{
    memset(out, 0, sizeof *out);
    kiln_dataset *all = NULL;
    kiln_status rc = read_split(cfg, ctx, false, &all);
    if (rc != KILN_OK)
        return rc;
    int64_t n_model = kiln_shape_count(&cfg->model.input);
    if (all->n_features != n_model) {
        char a[96], b[96];
        rc = train_error(err, KILN_ERR_SHAPE,
                         "%s: model.input: %s (%lld values) does not match the samples of %s, "
                         "%s (%lld values)",
                         cfg->source, kiln_shape_format(&cfg->model.input, a, sizeof a),
                         (long long)n_model, all->name,
                         kiln_shape_format(&all->feature_shape, b, sizeof b),
                         (long long)all->n_features);
        kiln_dataset_destroy(all);
        return rc;
    }
    if (cfg->data.validation_fraction > 0) {
        kiln_split_options split = {.validation = cfg->data.validation_fraction,
                                    .seed = (uint64_t)cfg->seed,
                                    .stratify =
                                        cfg->data.stratify && all->label_kind == KILN_LABELS_CLASS};
        kiln_dataset *unused = NULL;
        rc = kiln_dataset_split(all, &split, &out->train, &out->validation, &unused);
        kiln_dataset_destroy(unused);
        kiln_dataset_destroy(all);
        if (rc != KILN_OK)
            return rc;
    } else {
        out->train = all;
    }
    if (config_has_test(cfg)) {
        rc = read_split(cfg, ctx, true, &out->test);
        if (rc == KILN_OK)
            rc = kiln_dataset_check_compatible(out->train, out->test);
        if (rc == KILN_OK && out->test->label_kind == KILN_LABELS_CLASS &&
            out->test->n_classes < out->train->n_classes)
            out->test->n_classes = out->train->n_classes;
    }
    if (rc == KILN_OK && cfg->data.remove_duplicates)
        rc = remove_duplicates(out->train, note);
    if (rc == KILN_OK)
        rc = train_make_preprocess(cfg, ctx, out->train, &out->preprocess);
    if (rc == KILN_OK)
        rc = preprocess_split(cfg, out->preprocess, out->train, "train", note, err);
    if (rc == KILN_OK && out->validation != NULL)
        rc = preprocess_split(cfg, out->preprocess, out->validation, "validation", note, err);
    if (rc == KILN_OK && out->test != NULL)
        rc = preprocess_split(cfg, out->preprocess, out->test, "test", note, err);
    if (rc != KILN_OK) {
        train_data_deinit(out);
        return rc;
    }
    warn_leakage(ctx, out, note);
    return KILN_OK;
}

kiln_status train_data_load(const config *cfg, kiln_context *ctx, train_data *out,
                            config_error *err)
{
    train_data_cache cache;
    bool cached = train_data_cache_locate(cfg, ctx, &cache);
    if (cached && train_data_cache_read(&cache, cfg, ctx, out)) {
        out->cache = "read";
        return KILN_OK;
    }
    train_text note = {0};
    kiln_status rc = prepare(cfg, ctx, out, &note, err);
    /* Without its messages (no memory to keep them), a cache file would hide them later. */
    if (rc == KILN_OK && cached && note.failed)
        fprintf(stderr, "kiln: warning: data.cache: out of memory keeping the data messages; "
                        "the prepared data were not cached\n");
    if (rc == KILN_OK)
        out->cache = !cached ? "off"
                     : !note.failed && train_data_cache_write(&cache, ctx, out, note.data)
                         ? "written"
                         : "not written";
    free(note.data);
    return rc;
}

void train_data_deinit(train_data *data)
{
    kiln_dataset_destroy(data->train);
    kiln_dataset_destroy(data->validation);
    kiln_dataset_destroy(data->test);
    kiln_preprocess_destroy(data->preprocess);
    memset(data, 0, sizeof *data);
}

/* ---- eval and predict: statistics from a checkpoint ---- */

/* Creates the configured pipeline for `ds` and fills it with the checkpoint's statistics. */
static kiln_status apply_saved_preprocess(const config *cfg, kiln_context *ctx,
                                          const kiln_safetensors *file, kiln_dataset *ds,
                                          config_error *err)
{
    kiln_preprocess *pp = NULL;
    kiln_status rc = train_make_preprocess(cfg, ctx, ds, &pp);
    size_t n_saved = 0;
    for (size_t i = 0; i < kiln_safetensors_n_tensors(file); i++)
        n_saved += strncmp(kiln_safetensors_tensor(file, i)->name, "extra/preprocess.", 17) == 0;
    size_t n_stats = pp != NULL ? kiln_preprocess_n_stats(pp) : 0;
    if (rc == KILN_OK && n_saved != n_stats)
        rc = train_error(err, KILN_ERR_NOT_FOUND,
                         "%s: the checkpoint holds %zu preprocessing statistic(s) but the "
                         "config's data.preprocess needs %zu: it does not match the config",
                         kiln_safetensors_get_path(file), n_saved, n_stats);
    for (size_t i = 0; i < n_stats && rc == KILN_OK; i++) {
        const char *name = kiln_preprocess_stat_name(pp, i);
        int64_t n = kiln_preprocess_stat_size(pp, i);
        const kiln_host_tensor *saved = kiln_checkpoint_get_extra(file, name);
        if (saved == NULL || saved->dtype != KILN_SAFETENSORS_F32 ||
            kiln_shape_count(&saved->shape) != n) {
            rc = train_error(err, KILN_ERR_NOT_FOUND,
                             "%s: no F32 preprocessing statistic 'extra/%s' of %lld values: "
                             "the checkpoint does not match the config",
                             kiln_safetensors_get_path(file), name, (long long)n);
            break;
        }
        float *values = malloc((size_t)n * sizeof(float));
        if (values == NULL)
            return train_error(err, KILN_ERR_NO_MEMORY, "out of memory for the statistics");
        memcpy(values, saved->data, (size_t)n * sizeof(float));
        rc = kiln_preprocess_write_stat(pp, name, values, n);
        free(values);
    }
    int64_t dropped = 0;
    if (rc == KILN_OK && pp != NULL)
        rc = kiln_preprocess_transform(pp, ds, &dropped);
    if (rc == KILN_OK && dropped > 0)
        fprintf(stderr,
                "kiln: warning: drop_missing dropped %lld sample(s) of %s that have a missing "
                "value\n",
                (long long)dropped, ds->name);
    kiln_preprocess_destroy(pp);
    return rc;
}

static kiln_status check_features(const config *cfg, const kiln_dataset *ds, config_error *err)
{
    int64_t n_model = kiln_shape_count(&cfg->model.input);
    if (ds->n_features == n_model)
        return KILN_OK;
    return train_error(err, KILN_ERR_SHAPE,
                       "%s: model.input has %lld values per sample but the samples of %s have "
                       "%lld",
                       cfg->source, (long long)n_model, ds->name, (long long)ds->n_features);
}

kiln_status train_data_load_split(const config *cfg, kiln_context *ctx, bool test,
                                  const kiln_safetensors *checkpoint, kiln_dataset **out,
                                  config_error *err)
{
    *out = NULL;
    kiln_dataset *ds = NULL;
    kiln_status rc = KILN_OK;
    if (test && !config_has_test(cfg))
        return train_error(err, KILN_ERR_INVALID_ARGUMENT, "%s: the config has no data.test",
                           cfg->source);
    if (!test && cfg->data.validation_fraction <= 0)
        return train_error(err, KILN_ERR_INVALID_ARGUMENT,
                           "%s: the config has no validation split (data.validation.fraction)",
                           cfg->source);
    if (test) {
        rc = read_split(cfg, ctx, true, &ds);
    } else {
        kiln_dataset *all = NULL, *train = NULL, *unused = NULL;
        rc = read_split(cfg, ctx, false, &all);
        kiln_split_options split = {.validation = cfg->data.validation_fraction,
                                    .seed = (uint64_t)cfg->seed};
        if (rc == KILN_OK) {
            split.stratify = cfg->data.stratify && all->label_kind == KILN_LABELS_CLASS;
            rc = kiln_dataset_split(all, &split, &train, &ds, &unused);
        }
        kiln_dataset_destroy(all);
        kiln_dataset_destroy(train);
        kiln_dataset_destroy(unused);
    }
    if (rc == KILN_OK)
        rc = check_features(cfg, ds, err);
    if (rc == KILN_OK)
        rc = apply_saved_preprocess(cfg, ctx, checkpoint, ds, err);
    if (rc != KILN_OK) {
        kiln_dataset_destroy(ds);
        return rc;
    }
    *out = ds;
    return KILN_OK;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* A copy of `ds` without feature column `column`. */
static kiln_status drop_column(kiln_context *ctx, kiln_dataset **ds, int64_t column)
{
    kiln_dataset *in = *ds, *out = NULL;
    int64_t f = in->n_features - 1;
    kiln_shape shape = kiln_shape_of(1, &f);
    kiln_status rc =
        kiln_dataset_create(ctx, in->name, in->n, &shape, KILN_LABELS_NONE, NULL, &out);
    if (rc != KILN_OK)
        return rc;
    for (int64_t r = 0; r < in->n; r++) {
        const float *src = in->features + r * in->n_features;
        float *dst = out->features + r * f;
        memcpy(dst, src, (size_t)column * sizeof(float));
        memcpy(dst + column, src + column + 1, (size_t)(f - column) * sizeof(float));
    }
    kiln_dataset_destroy(in);
    *ds = out;
    return KILN_OK;
}

kiln_status train_data_read_input(const config *cfg, kiln_context *ctx, const char *path,
                                  const kiln_safetensors *checkpoint, kiln_dataset **out,
                                  config_error *err)
{
    *out = NULL;
    kiln_dataset *ds = NULL;
    kiln_status rc;
    if (ends_with(path, ".csv") || ends_with(path, ".csv.gz")) {
        kiln_csv_options options;
        kiln_csv_options_init(&options);
        options.header = cfg->data.train.header;
        options.labels = KILN_LABELS_NONE;
        rc = kiln_dataset_read_csv(ctx, path, &options, &ds);
        bool by_name = cfg->data.train.label_name[0] != '\0';
        int64_t column = by_name ? -1 : cfg->data.train.label_column;
        for (int64_t i = 0;
             rc == KILN_OK && by_name && ds->feature_names != NULL && i < ds->n_features; i++) {
            if (strcmp(ds->feature_names[i], cfg->data.train.label_name) == 0)
                column = i; /* by name: the file's own header says where it is */
        }
        if (rc == KILN_OK && cfg->data.format == CONFIG_FORMAT_CSV &&
            ds->n_features == kiln_shape_count(&cfg->model.input) + 1 && column >= 0 &&
            column < ds->n_features)
            rc = drop_column(ctx, &ds, column);
    } else if (ends_with(path, ".npy") || ends_with(path, ".npy.gz")) {
        rc = kiln_dataset_read_npy(ctx, path, NULL, KILN_LABELS_NONE, &ds);
    } else if (ends_with(path, ".idx") || ends_with(path, ".gz") || ends_with(path, "-ubyte")) {
        rc = kiln_dataset_read_idx(ctx, path, NULL, &ds);
    } else {
        return train_error(err, KILN_ERR_INVALID_ARGUMENT,
                           "%s: unknown input format (expected .csv, .npy, .idx, .gz or -ubyte)",
                           path);
    }
    if (rc == KILN_OK)
        rc = check_features(cfg, ds, err);
    if (rc == KILN_OK)
        rc = apply_saved_preprocess(cfg, ctx, checkpoint, ds, err);
    if (rc != KILN_OK) {
        kiln_dataset_destroy(ds);
        return rc;
    }
    *out = ds;
    return KILN_OK;
}
