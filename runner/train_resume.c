/*
 * `kiln train --resume`: the state written to RUN_DIR/last.safetensors after every epoch
 * (model, optimiser, and as metadata the epochs done, the global step that keys dropout masks,
 * the plateau schedule and the callbacks' trackers; the restore_best copy as extra tensors
 * "best/<value>") and its loading. The batcher shuffles from (seed, epoch), so the epoch
 * number is the whole shuffle position: a resumed run repeats an uninterrupted one exactly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train_loop.h"

enum { RESUME_TEXT = 256 };

kiln_status trainer_save_resume(trainer *t, int64_t epochs_done, const kiln_early_stopping *es,
                                const kiln_checkpoint *cp, const char *config_text,
                                config_error *err)
{
    char path[CONFIG_MAX_PATH + 32], epochs[32], step[32], schedule[RESUME_TEXT];
    char es_text[RESUME_TEXT] = "", cp_text[RESUME_TEXT] = "";
    snprintf(path, sizeof path, "%s/last.safetensors", t->log->dir);
    snprintf(epochs, sizeof epochs, "%lld", (long long)epochs_done);
    snprintf(step, sizeof step, "%llu", (unsigned long long)t->step);
    const kiln_schedule *s = &t->schedule;
    snprintf(schedule, sizeof schedule, "%.17g %.17g %d %lld %lld", s->plateau_lr, s->best,
             (int)s->has_best, (long long)s->bad_epochs, (long long)s->cooldown_left);
    kiln_metadata_entry meta[5] = {
        {"resume/epochs", epochs}, {"resume/step", step}, {"resume/schedule", schedule}};
    size_t n_meta = 3;
    if (es != NULL) {
        snprintf(es_text, sizeof es_text, "%lld %d %lld %d %.17g %lld", (long long)es->wait,
                 (int)es->baseline_beaten, (long long)es->last_epoch, (int)es->tracker.has_best,
                 es->tracker.best, (long long)es->tracker.best_epoch);
        meta[n_meta++] = (kiln_metadata_entry){"resume/early_stopping", es_text};
    }
    if (cp != NULL) {
        snprintf(cp_text, sizeof cp_text, "%lld %d %.17g %lld", (long long)cp->last_epoch,
                 (int)cp->tracker.has_best, cp->tracker.best, (long long)cp->tracker.best_epoch);
        meta[n_meta++] = (kiln_metadata_entry){"resume/checkpoint", cp_text};
    }
    size_t n_best = t->has_best_state ? t->n_state : 0;
    kiln_host_tensor *extra = calloc(n_best + 1, sizeof *extra);
    char(*names)[TRAIN_MAX_NAME * 2] = calloc(n_best + 1, sizeof *names);
    kiln_status rc = KILN_OK;
    if (extra == NULL || names == NULL)
        rc = train_error(err, KILN_ERR_NO_MEMORY, "out of memory for %s", path);
    for (size_t i = 0; i < n_best && rc == KILN_OK; i++) {
        kiln_value v = t->state_values[i];
        snprintf(names[i], sizeof names[i], "best/%s", kiln_graph_value_name(t->graph, v));
        extra[i].name = names[i];
        extra[i].dtype = KILN_SAFETENSORS_F32;
        extra[i].shape = *kiln_graph_value_shape(t->graph, v);
        extra[i].data = t->best_state[i];
    }
    if (rc == KILN_OK)
        rc = trainer_save_checkpoint(t, path, epochs_done - 1, cp != NULL ? cp->config.monitor : "",
                                     cp != NULL ? cp->tracker.best : 0, config_text, meta, n_meta,
                                     extra, n_best, err);
    free(names);
    free(extra);
    return rc;
}

static kiln_status bad_metadata(const trainer *t, const char *key, config_error *err)
{
    return train_error(err, KILN_ERR_CORRUPT, "%s: metadata %s is missing or malformed",
                       kiln_safetensors_get_path(t->resume), key);
}

/* The run resumed must be the one configured now: every key equal to the effective config
 * saved in the file, except train.epochs (a resume may extend a run) and the device. */
static kiln_status check_same_config(const trainer *t, const char *path, config_error *err)
{
    const char *text = kiln_safetensors_get_metadata(t->resume, "config");
    if (text == NULL)
        return bad_metadata(t, "config", err);
    config saved;
    config_error parse_err = {{0}};
    kiln_status rc =
        config_load_string(text, strlen(text), path, NULL, NULL, 0, &saved, &parse_err);
    if (rc != KILN_OK)
        return train_error(err, rc, "%s: its saved config does not read back: %s", path,
                           parse_err.message);
    saved.train.epochs = t->cfg->train.epochs;
    memcpy(saved.device, t->cfg->device, sizeof saved.device);
    char where[CONFIG_MAX_TEXT] = "";
    if (!config_equal(&saved, t->cfg, where, sizeof where))
        rc = train_error(err, KILN_ERR_INVALID_ARGUMENT,
                         "--resume: %s was trained with a different config: %s differs from "
                         "%s (only train.epochs and the device may change when resuming; start "
                         "a new run for the rest)",
                         path, where[0] != '\0' ? where : "a key", t->cfg->source);
    config_deinit(&saved);
    return rc;
}

kiln_status trainer_load_resume(trainer *t, const char *path, config_error *err)
{
    kiln_status rc = kiln_checkpoint_load(path, t->model, t->opt, &t->resume);
    if (rc != KILN_OK)
        return rc;
    rc = check_same_config(t, path, err);
    if (rc != KILN_OK)
        return rc;
    const char *epochs = kiln_safetensors_get_metadata(t->resume, "resume/epochs");
    const char *step = kiln_safetensors_get_metadata(t->resume, "resume/step");
    const char *schedule = kiln_safetensors_get_metadata(t->resume, "resume/schedule");
    long long e = 0;
    unsigned long long s = 0;
    if (epochs == NULL || sscanf(epochs, "%lld", &e) != 1 || e < 0)
        return bad_metadata(t, "resume/epochs", err);
    if (step == NULL || sscanf(step, "%llu", &s) != 1)
        return bad_metadata(t, "resume/step", err);
    kiln_schedule *sc = &t->schedule;
    int has_best = 0;
    long long bad = 0, cooldown = 0;
    if (schedule == NULL || sscanf(schedule, "%lg %lg %d %lld %lld", &sc->plateau_lr, &sc->best,
                                   &has_best, &bad, &cooldown) != 5)
        return bad_metadata(t, "resume/schedule", err);
    sc->has_best = has_best != 0;
    sc->bad_epochs = bad;
    sc->cooldown_left = cooldown;
    t->start_epoch = e;
    t->step = s;
    for (size_t i = 0; i < kiln_safetensors_n_tensors(t->resume); i++) {
        const kiln_host_tensor *h = kiln_safetensors_tensor(t->resume, i);
        if (strncmp(h->name, "extra/best/", 11) != 0)
            continue;
        rc = trainer_alloc_best(t, err);
        if (rc != KILN_OK)
            return rc;
        t->has_best_state = true;
        break;
    }
    for (size_t i = 0; t->has_best_state && i < t->n_state; i++) {
        char name[TRAIN_MAX_NAME * 2];
        kiln_value v = t->state_values[i];
        snprintf(name, sizeof name, "best/%s", kiln_graph_value_name(t->graph, v));
        const kiln_host_tensor *h = kiln_checkpoint_get_extra(t->resume, name);
        int64_t n = kiln_shape_count(kiln_graph_value_shape(t->graph, v));
        if (h == NULL || h->dtype != KILN_SAFETENSORS_F32 || kiln_shape_count(&h->shape) != n)
            return train_error(err, KILN_ERR_CORRUPT,
                               "%s: extra tensor %s is missing or has "
                               "the wrong shape",
                               path, name);
        memcpy(t->best_state[i], h->data, (size_t)n * sizeof(float));
    }
    return KILN_OK;
}

kiln_status trainer_resume_callbacks(trainer *t, kiln_early_stopping *es, kiln_checkpoint *cp,
                                     config_error *err)
{
    kiln_status rc = KILN_OK;
    if (t->resume == NULL)
        return rc;
    const char *es_text = kiln_safetensors_get_metadata(t->resume, "resume/early_stopping");
    const char *cp_text = kiln_safetensors_get_metadata(t->resume, "resume/checkpoint");
    if (es != NULL && es_text != NULL) {
        long long wait = 0, last = 0, best_epoch = 0;
        int beaten = 0, has_best = 0;
        if (sscanf(es_text, "%lld %d %lld %d %lg %lld", &wait, &beaten, &last, &has_best,
                   &es->tracker.best, &best_epoch) != 6)
            rc = bad_metadata(t, "resume/early_stopping", err);
        es->wait = wait;
        es->baseline_beaten = beaten != 0;
        es->last_epoch = last;
        es->tracker.has_best = has_best != 0;
        es->tracker.best_epoch = best_epoch;
    }
    if (rc == KILN_OK && cp != NULL && cp_text != NULL) {
        long long last = 0, best_epoch = 0;
        int has_best = 0;
        if (sscanf(cp_text, "%lld %d %lg %lld", &last, &has_best, &cp->tracker.best, &best_epoch) !=
            4)
            rc = bad_metadata(t, "resume/checkpoint", err);
        cp->last_epoch = last;
        cp->tracker.has_best = has_best != 0;
        cp->tracker.best_epoch = best_epoch;
    }
    kiln_safetensors_destroy(t->resume);
    t->resume = NULL;
    return rc;
}
