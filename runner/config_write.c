/*
 * The effective-config writer: every key of a parsed config, defaults included, as YAML
 * through libyaml's emitter (which does the quoting), in the schema's order, with numbers in
 * the shortest text that reads back to the same float or double. Reading the output with
 * config_load_string gives a config equal to the one written (tests/runner/test_config.c
 * checks the round trip). Sections are block mappings; short values (lists, layers) flow.
 */
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

static void emit(cfg_writer *w, yaml_event_t *event, int initialized)
{
    if (!initialized) {
        w->failed = true;
        return;
    }
    if (w->failed) {
        yaml_event_delete(event);
        return;
    }
    if (!yaml_emitter_emit(&w->emitter, event))
        w->failed = true;
}

static void scalar(cfg_writer *w, const char *text, yaml_scalar_style_t style, bool plain)
{
    yaml_event_t event;
    int ok = yaml_scalar_event_initialize(&event, NULL, NULL, (yaml_char_t *)text,
                                          (int)strlen(text), plain, 1, style);
    emit(w, &event, ok);
}

void cfg_write_plain(cfg_writer *w, const char *text)
{
    scalar(w, text, YAML_PLAIN_SCALAR_STYLE, true);
}

/* Strings that would read back as null or a boolean are quoted; libyaml quotes the rest as
 * YAML's syntax needs. */
void cfg_write_string(cfg_writer *w, const char *text)
{
    static const char *const QUOTE[] = {"", "~", "null", "Null", "NULL", "true", "false"};
    for (size_t i = 0; i < sizeof QUOTE / sizeof QUOTE[0]; i++) {
        if (strcmp(text, QUOTE[i]) == 0) {
            scalar(w, text, YAML_DOUBLE_QUOTED_SCALAR_STYLE, false);
            return;
        }
    }
    char *end = NULL;
    (void)strtod(text, &end);
    if (end != text && *end == '\0') { /* "7" read back plain would be a number */
        scalar(w, text, YAML_DOUBLE_QUOTED_SCALAR_STYLE, false);
        return;
    }
    scalar(w, text, YAML_ANY_SCALAR_STYLE, true);
}

void cfg_write_int(cfg_writer *w, int64_t value)
{
    char text[32];
    snprintf(text, sizeof text, "%lld", (long long)value);
    cfg_write_plain(w, text);
}

void cfg_write_double(cfg_writer *w, double value)
{
    char text[40];
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, value);
        if (strtod(text, NULL) == value)
            break;
    }
    cfg_write_plain(w, text);
}

void cfg_write_float(cfg_writer *w, float value)
{
    char text[40];
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, (double)value);
        if ((float)strtod(text, NULL) == value)
            break;
    }
    cfg_write_plain(w, text);
}

void cfg_write_bool(cfg_writer *w, bool value)
{
    cfg_write_plain(w, value ? "true" : "false");
}

void cfg_write_map_start(cfg_writer *w, bool flow)
{
    yaml_event_t event;
    int ok = yaml_mapping_start_event_initialize(
        &event, NULL, NULL, 1, flow ? YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE);
    emit(w, &event, ok);
}

void cfg_write_map_end(cfg_writer *w)
{
    yaml_event_t event;
    emit(w, &event, yaml_mapping_end_event_initialize(&event));
}

void cfg_write_list_start(cfg_writer *w, bool flow)
{
    yaml_event_t event;
    int ok = yaml_sequence_start_event_initialize(
        &event, NULL, NULL, 1, flow ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE);
    emit(w, &event, ok);
}

void cfg_write_list_end(cfg_writer *w)
{
    yaml_event_t event;
    emit(w, &event, yaml_sequence_end_event_initialize(&event));
}

void cfg_write_field_value(cfg_writer *w, const cfg_field *f, const void *base)
{
    const char *at = (const char *)base + f->offset;
    switch (f->type) {
    case CFG_INT64:
        cfg_write_int(w, *(const int64_t *)at);
        break;
    case CFG_INT:
        cfg_write_int(w, *(const int *)at);
        break;
    case CFG_DOUBLE:
        cfg_write_double(w, *(const double *)at);
        break;
    case CFG_FLOAT:
        cfg_write_float(w, *(const float *)at);
        break;
    case CFG_BOOL:
        cfg_write_bool(w, *(const bool *)at);
        break;
    case CFG_STRING:
    case CFG_PATH:
        cfg_write_string(w, at);
        break;
    case CFG_ENUM:
        cfg_write_plain(w, f->names[*(const int *)at]);
        break;
    case CFG_SECTION:
        cfg_write_table(w, f->sub, at, false);
        break;
    case CFG_CUSTOM:
        f->custom->write(w, f, base);
        break;
    }
}

void cfg_write_fields(cfg_writer *w, const cfg_table *t, const void *base)
{
    for (size_t i = 0; i < t->n_fields; i++) {
        const cfg_field *f = &t->fields[i];
        if ((f->flags & CFG_OPTIONAL) && !*(const bool *)((const char *)base + f->aux))
            continue; /* absent optional keys stay absent */
        cfg_write_plain(w, f->key);
        cfg_write_field_value(w, f, base);
    }
}

void cfg_write_table(cfg_writer *w, const cfg_table *t, const void *base, bool flow)
{
    cfg_write_map_start(w, flow);
    cfg_write_fields(w, t, base);
    cfg_write_map_end(w);
}

typedef struct text_buffer {
    char *text;
    size_t length, capacity;
} text_buffer;

static int append_text(void *data, unsigned char *bytes, size_t size)
{
    text_buffer *b = data;
    if (b->length + size + 1 > b->capacity) {
        size_t capacity = b->capacity == 0 ? 4096 : b->capacity;
        while (capacity < b->length + size + 1)
            capacity *= 2;
        char *grown = realloc(b->text, capacity);
        if (grown == NULL)
            return 0;
        b->text = grown;
        b->capacity = capacity;
    }
    memcpy(b->text + b->length, bytes, size);
    b->length += size;
    b->text[b->length] = '\0';
    return 1;
}

/* Emits a document of table t at base (the whole config or one section); the output was set
 * by the caller. */
static bool emit_table(cfg_writer *w, const cfg_table *t, const void *base)
{
    yaml_event_t event;
    yaml_emitter_set_width(&w->emitter, 100);
    yaml_emitter_set_unicode(&w->emitter, 1);
    emit(w, &event, yaml_stream_start_event_initialize(&event, YAML_UTF8_ENCODING));
    emit(w, &event, yaml_document_start_event_initialize(&event, NULL, NULL, NULL, 1));
    cfg_write_table(w, t, base, false);
    emit(w, &event, yaml_document_end_event_initialize(&event, 1));
    emit(w, &event, yaml_stream_end_event_initialize(&event));
    return !w->failed && yaml_emitter_flush(&w->emitter);
}

static const char HEADER[] = "# Effective config of %s\n# (every key, defaults filled in, "
                             "overrides applied; see docs/CONFIG.md)\n";

kiln_status config_write_file(const config *cfg, FILE *out, config_error *err)
{
    cfg_writer w = {.root = cfg};
    if (!yaml_emitter_initialize(&w.emitter)) {
        snprintf(err->message, sizeof err->message, "out of memory writing the config");
        return KILN_ERR_NO_MEMORY;
    }
    fprintf(out, HEADER, cfg->source);
    yaml_emitter_set_output_file(&w.emitter, out);
    bool ok = emit_table(&w, &cfg_config_table, cfg);
    yaml_emitter_delete(&w.emitter);
    if (!ok || ferror(out)) {
        snprintf(err->message, sizeof err->message, "cannot write the effective config of %s",
                 cfg->source);
        return KILN_ERR_IO;
    }
    return KILN_OK;
}

/* Writes table t at base to a string after `header` (may be ""). */
static kiln_status write_string(const config *cfg, const char *header, const cfg_table *t,
                                const void *base, char **out_text, config_error *err)
{
    cfg_writer w = {.root = cfg};
    text_buffer b = {0};
    *out_text = NULL;
    bool ok = yaml_emitter_initialize(&w.emitter) &&
              append_text(&b, (unsigned char *)header, strlen(header));
    if (ok) {
        yaml_emitter_set_output(&w.emitter, append_text, &b);
        ok = emit_table(&w, t, base);
    }
    yaml_emitter_delete(&w.emitter);
    if (!ok) {
        free(b.text);
        snprintf(err->message, sizeof err->message, "out of memory writing the config");
        return KILN_ERR_NO_MEMORY;
    }
    *out_text = b.text;
    return KILN_OK;
}

kiln_status config_write_string(const config *cfg, char **out_text, config_error *err)
{
    char header[CONFIG_MAX_PATH + 160];
    snprintf(header, sizeof header, HEADER, cfg->source);
    return write_string(cfg, header, &cfg_config_table, cfg, out_text, err);
}

kiln_status config_write_data_string(const config *cfg, char **out_text, config_error *err)
{
    return write_string(cfg, "", &cfg_data_table, &cfg->data, out_text, err);
}
