/*
 * From config structs to the library's: the model as a kiln_spec (layers, input, batch size,
 * loss), the learning-rate schedule as a kiln_schedule, and the graph built from the spec with
 * any error that names a layer pointed back at that layer's file:line:column. The library
 * validates shapes and values again; this file adds only where in the YAML a layer was.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

void config_fill_spec(const config *cfg, kiln_layer_spec *layers, kiln_spec *out)
{
    kiln_spec_init(out);
    out->input = cfg->model.input;
    out->batch_size = cfg->train.batch_size;
    for (size_t i = 0; i < cfg->model.n_layers; i++) {
        const config_layer *l = &cfg->model.layers[i];
        layers[i] = l->spec;
        layers[i].name = l->name[0] != '\0' ? l->name : NULL;
        for (int k = 0; k < KILN_SPEC_MAX_INPUTS; k++)
            layers[i].inputs[k] = k < l->spec.n_inputs ? l->inputs[k] : NULL;
    }
    out->layers = layers;
    out->n_layers = cfg->model.n_layers;
    out->loss = cfg->loss;
}

void config_fill_schedule(const config *cfg, kiln_schedule *out)
{
    const config_schedule *s = &cfg->train.schedule;
    kiln_schedule_init(out, s->kind, (double)cfg->train.optimizer.lr);
    out->warmup_steps = s->warmup_steps;
    out->step_size = s->step_size;
    out->gamma = s->gamma;
    out->t_max = s->t_max;
    out->min_lr = s->min_lr;
    out->maximize = s->mode == CONFIG_MODE_MAX;
    out->factor = s->factor;
    out->patience = s->patience;
    out->min_delta = s->min_delta;
    out->absolute = s->threshold_mode == CONFIG_THRESHOLD_ABS;
    out->cooldown = s->cooldown;
    out->eps = s->eps;
}

const char *config_layer_where(const config *cfg, size_t i, char *out, size_t capacity)
{
    const config_layer *l = i < cfg->model.n_layers ? &cfg->model.layers[i] : NULL;
    if (l != NULL && l->line > 0)
        snprintf(out, capacity, "%s:%d:%d: model.layers[%zu]", cfg->source, l->line, l->column, i);
    else if (l != NULL)
        snprintf(out, capacity, "--set: model.layers[%zu]", i);
    else
        snprintf(out, capacity, "%s: model", cfg->source);
    return out;
}

kiln_status config_build_graph(const config *cfg, kiln_context *ctx, kiln_graph **out_graph,
                               kiln_value *out_input, kiln_value *out_target,
                               kiln_value *out_output, kiln_value *out_loss, config_error *err)
{
    size_t n = cfg->model.n_layers > 0 ? cfg->model.n_layers : 1;
    kiln_layer_spec *layers = calloc(n, sizeof *layers);
    kiln_spec spec;
    *out_graph = NULL;
    if (layers == NULL) {
        snprintf(err->message, sizeof err->message, "%s: out of memory building the model",
                 cfg->source);
        return KILN_ERR_NO_MEMORY;
    }
    config_fill_spec(cfg, layers, &spec);
    kiln_status rc =
        kiln_spec_build(ctx, &spec, out_graph, out_input, out_target, out_output, out_loss);
    free(layers);
    if (rc == KILN_OK)
        return KILN_OK;
    /* The builder's messages start "kiln_spec_build: layer I 'NAME' (KIND): ". */
    const char *message = kiln_context_last_error(ctx);
    const char *prefix = "kiln_spec_build: ";
    const char *detail =
        strncmp(message, prefix, strlen(prefix)) == 0 ? message + strlen(prefix) : message;
    size_t layer = 0;
    char where[CONFIG_MAX_PATH + 64];
    if (sscanf(detail, "layer %zu ", &layer) == 1 && layer < cfg->model.n_layers)
        config_layer_where(cfg, layer, where, sizeof where);
    else
        snprintf(where, sizeof where, "%s: model", cfg->source);
    snprintf(err->message, sizeof err->message, "%s: %s", where, detail);
    return rc;
}
