/*
 * Checkpoint path templates (include/kiln/callbacks.h): "{epoch}", "{val_loss:.4f}" and
 * "{{"/"}}" expanded from an epoch record, or checked against the names a run will record
 * before training starts, so a typo fails at once rather than after the first epoch. One
 * parser serves both; every error names the template, the column and the names known.
 */
#include <stdio.h>
#include <string.h>

#include "core/context.h"
#include "train/callbacks_internal.h"

/* One "{name:spec}" as parsed: the name (not terminated) and a printf conversion. */
typedef struct placeholder {
    const char *name;
    size_t name_len;
    char format[32]; /* "%03lld", "%.4f", ... */
} placeholder;

typedef struct expansion {
    kiln_context *ctx;
    const char *fn;
    const char *text; /* the template */
    const char *const *names;
    size_t n_names;
    const kiln_epoch_record *record; /* NULL: only check */
    char *out;
    size_t capacity;
    size_t length; /* characters produced so far (also past the capacity) */
} expansion;

static void put(expansion *e, const char *s, size_t n)
{
    if (e->out != NULL && e->length < e->capacity) {
        size_t room = e->capacity - e->length;
        memcpy(e->out + e->length, s, n < room ? n : room);
    }
    e->length += n;
}

static kiln_status syntax_error(expansion *e, size_t at, const char *what)
{
    return kiln__error(e->ctx, KILN_ERR_INVALID_ARGUMENT, e->fn,
                       "path template '%s', column %zu: %s (write {{ and }} for literal braces)",
                       e->text, at + 1, what);
}

/* Parses "[0][width][.precision][type]" (Python's format-spec subset) into p->format. */
static kiln_status parse_spec(expansion *e, size_t at, const char *spec, size_t len, bool integer,
                              placeholder *p)
{
    size_t i = 0;
    bool zero = i < len && spec[i] == '0';
    i += zero;
    int width = 0, precision = -1;
    while (i < len && spec[i] >= '0' && spec[i] <= '9' && width < 1000)
        width = width * 10 + (spec[i++] - '0');
    if (i < len && spec[i] == '.') {
        precision = 0;
        size_t start = ++i;
        while (i < len && spec[i] >= '0' && spec[i] <= '9' && precision < 1000)
            precision = precision * 10 + (spec[i++] - '0');
        if (i == start)
            return syntax_error(e, at, "a '.' in a format spec needs a precision");
    }
    char type = integer ? 'd' : 'g';
    if (i < len)
        type = spec[i++];
    const char *allowed = integer ? "d" : "feg";
    if (i != len || strchr(allowed, type) == NULL || type == '\0' || width > 64 || precision > 17 ||
        (integer && precision >= 0))
        return kiln__error(e->ctx, KILN_ERR_INVALID_ARGUMENT, e->fn,
                           "path template '%s', column %zu: bad format spec '%.*s' for {%.*s}; "
                           "use [0][width][.precision][type] with type %s, width <= 64 and "
                           "precision <= 17%s",
                           e->text, at + 1, (int)len, spec, (int)p->name_len, p->name,
                           integer ? "d" : "f, e or g", integer ? " (none for epoch)" : "");
    char w[8] = "", pr[8] = "";
    if (width > 0)
        snprintf(w, sizeof w, "%d", width);
    if (precision >= 0)
        snprintf(pr, sizeof pr, ".%d", precision);
    snprintf(p->format, sizeof p->format, "%%%s%s%s%s%c", zero ? "0" : "", w, pr,
             integer ? "ll" : "", type);
    return KILN_OK;
}

static kiln_status unknown_name(expansion *e, size_t at, const placeholder *p)
{
    char known[512];
    if (e->record != NULL) {
        const char *names[64];
        size_t n = e->record->n_values < 64 ? e->record->n_values : 64;
        for (size_t i = 0; i < n; i++)
            names[i] = e->record->values[i].name;
        kiln__list_names(known, sizeof known, "epoch", names, n, "{", "}");
    } else {
        kiln__list_names(known, sizeof known, "epoch", e->names, e->n_names, "{", "}");
    }
    return kiln__error(e->ctx, KILN_ERR_INVALID_ARGUMENT, e->fn,
                       "path template '%s', column %zu: unknown placeholder {%.*s}; the known "
                       "placeholders are %s",
                       e->text, at + 1, (int)p->name_len, p->name, known);
}

static bool known_name(const expansion *e, const placeholder *p)
{
    for (size_t i = 0; i < e->n_names; i++) {
        const char *n = e->names[i];
        if (n != NULL && strncmp(n, p->name, p->name_len) == 0 && n[p->name_len] == '\0')
            return true;
    }
    return false;
}

/* Expands (or, without a record, checks) the placeholder that spans text[at, end]. */
static kiln_status placeholder_at(expansion *e, size_t at, size_t end)
{
    const char *body = e->text + at + 1;
    size_t body_len = end - at - 1;
    const char *colon = memchr(body, ':', body_len);
    placeholder p = {.name = body, .name_len = colon ? (size_t)(colon - body) : body_len};
    if (p.name_len == 0)
        return syntax_error(e, at, "a placeholder needs a name, as in {epoch}");
    bool is_epoch = p.name_len == 5 && strncmp(p.name, "epoch", 5) == 0;
    const char *spec = colon ? colon + 1 : body + body_len;
    kiln_status rc = parse_spec(e, at, spec, (size_t)(body + body_len - spec), is_epoch, &p);
    if (rc != KILN_OK)
        return rc;
    const kiln_metric_value *v = NULL;
    if (!is_epoch && e->record != NULL)
        v = kiln__record_lookup(e->record, p.name, p.name_len);
    if (!is_epoch && (e->record != NULL ? v == NULL : e->n_names > 0 && !known_name(e, &p)))
        return unknown_name(e, at, &p);
    if (e->record == NULL)
        return KILN_OK;
    char text[400]; /* DBL_MAX in %.17f needs 327 */
    int n = is_epoch ? snprintf(text, sizeof text, p.format, (long long)e->record->epoch + 1)
                     : snprintf(text, sizeof text, p.format, v->value);
    if (n < 0)
        return kiln__error(e->ctx, KILN_ERR_INTERNAL, e->fn, "formatting {%.*s} failed",
                           (int)p.name_len, p.name);
    put(e, text, (size_t)n < sizeof text ? (size_t)n : sizeof text - 1);
    return KILN_OK;
}

static kiln_status run(expansion *e)
{
    if (e->text == NULL)
        return kiln__error(e->ctx, KILN_ERR_INVALID_ARGUMENT, e->fn, "the template is NULL");
    size_t len = strlen(e->text);
    for (size_t i = 0; i < len; i++) {
        char ch = e->text[i];
        if ((ch == '{' || ch == '}') && i + 1 < len && e->text[i + 1] == ch) {
            put(e, &ch, 1); /* an escaped brace */
            i++;
        } else if (ch == '}') {
            return syntax_error(e, i, "a '}' without its '{'");
        } else if (ch == '{') {
            size_t end = i + 1;
            while (end < len && e->text[end] != '}' && e->text[end] != '{')
                end++;
            if (end == len || e->text[end] == '{')
                return syntax_error(e, i, "a '{' without its '}'");
            kiln_status rc = placeholder_at(e, i, end);
            if (rc != KILN_OK)
                return rc;
            i = end;
        } else {
            put(e, &ch, 1);
        }
    }
    return KILN_OK;
}

kiln_status kiln_path_template_check(kiln_context *ctx, const char *path_template,
                                     const char *const *names, size_t n_names)
{
    expansion e = {.ctx = ctx,
                   .fn = __func__,
                   .text = path_template,
                   .names = names,
                   .n_names = names != NULL ? n_names : 0};
    return run(&e);
}

kiln_status kiln_path_template_expand(kiln_context *ctx, const char *path_template,
                                      const kiln_epoch_record *record, char *out, size_t capacity)
{
    if (record == NULL || out == NULL || capacity == 0 ||
        (record->n_values > 0 && record->values == NULL))
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, __func__,
                           "record and a non-empty out buffer must be set");
    expansion e = {.ctx = ctx,
                   .fn = __func__,
                   .text = path_template,
                   .record = record,
                   .out = out,
                   .capacity = capacity};
    kiln_status rc = run(&e);
    if (rc == KILN_OK && e.length >= capacity)
        rc = kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, __func__,
                         "path template '%s' expands to %zu characters, more than the %zu "
                         "that fit",
                         path_template, e.length, capacity - 1);
    out[rc == KILN_OK ? e.length : 0] = '\0';
    return rc;
}
