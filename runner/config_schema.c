/*
 * The schema walker: turns YAML nodes into struct fields as a table describes them (checking
 * types and ranges, naming unknown keys with a suggestion, requiring required keys, in table
 * order so that later keys may depend on earlier ones), compares two structs field by field,
 * and lists the keys for the docs test. Numbers are read with strtoll/strtod, which must
 * consume the whole scalar and give a finite value in range. The tables live in config.c and
 * config_model.c; the writer in config_write.c.
 */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

enum { MAX_KEYS = 48, GOT = 128, EXPECTED = 128, LIST = 600 };

#define AT(base, offset) ((char *)(base) + (offset))
#define AT_CONST(base, offset) ((const char *)(base) + (offset))

const char *cfg_expected(const cfg_field *f, char *out, size_t capacity)
{
    bool integer = f->type == CFG_INT64 || f->type == CFG_INT;
    const char *noun = integer ? "an integer" : "a number";
    bool low = (f->flags & (CFG_MIN | CFG_MIN_OPEN)) != 0;
    bool high = (f->flags & (CFG_MAX | CFG_MAX_OPEN)) != 0;
    if (f->flags & CFG_NONZERO)
        snprintf(out, capacity, "%s other than 0", noun);
    else if (low && high)
        snprintf(out, capacity, "%s in %c%g, %g%c", noun, f->flags & CFG_MIN_OPEN ? '(' : '[',
                 f->min, f->max, f->flags & CFG_MAX_OPEN ? ')' : ']');
    else if (low)
        snprintf(out, capacity, "%s %s %g", noun, f->flags & CFG_MIN_OPEN ? ">" : ">=", f->min);
    else if (high)
        snprintf(out, capacity, "%s %s %g", noun, f->flags & CFG_MAX_OPEN ? "<" : "<=", f->max);
    else
        snprintf(out, capacity, "%s", noun);
    return out;
}

static bool in_range(const cfg_field *f, double v)
{
    if ((f->flags & CFG_MIN) && !(v >= f->min))
        return false;
    if ((f->flags & CFG_MIN_OPEN) && !(v > f->min))
        return false;
    if ((f->flags & CFG_MAX) && !(v <= f->max))
        return false;
    if ((f->flags & CFG_MAX_OPEN) && !(v < f->max))
        return false;
    return !((f->flags & CFG_NONZERO) && v == 0.0);
}

/* The scalar text of a plain scalar, or NULL after recording "expected ..., got ...". */
static const char *plain_scalar(cfg_parser *p, int node, const char *path, const char *expected,
                                kiln_status *rc)
{
    yaml_node_t *n = cfg_node(p, node);
    char got[GOT];
    if (n->type != YAML_SCALAR_NODE || cfg_is_null(n) ||
        n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        *rc = cfg_fail(p, node, path, "expected %s, got %s", expected,
                       cfg_describe(n, got, sizeof got));
        return NULL;
    }
    return cfg_text(n);
}

kiln_status cfg_parse_int(cfg_parser *p, int node, const char *path, const cfg_field *f,
                          int64_t *out)
{
    char expected[EXPECTED];
    kiln_status rc = KILN_OK;
    const char *s = plain_scalar(p, node, path, cfg_expected(f, expected, sizeof expected), &rc);
    if (s == NULL)
        return rc;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || isspace((unsigned char)s[0]))
        return cfg_fail(p, node, path, "expected %s, got '%.80s'", expected, s);
    if (errno == ERANGE || (f->type == CFG_INT && (v < INT_MIN || v > INT_MAX)))
        return cfg_fail(p, node, path, "expected %s, got '%.80s', which is out of range", expected,
                        s);
    if (!in_range(f, (double)v))
        return cfg_fail(p, node, path, "expected %s, got '%s'", expected, s);
    *out = v;
    return KILN_OK;
}

kiln_status cfg_parse_number(cfg_parser *p, int node, const char *path, const cfg_field *f,
                             double *out)
{
    char expected[EXPECTED];
    kiln_status rc = KILN_OK;
    const char *s = plain_scalar(p, node, path, cfg_expected(f, expected, sizeof expected), &rc);
    if (s == NULL)
        return rc;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    /* Hexadecimal, inf and nan are strtod's, not YAML's. */
    if (end == s || *end != '\0' || isspace((unsigned char)s[0]) || strpbrk(s, "xX") != NULL ||
        (!isfinite(v) && errno != ERANGE))
        return cfg_fail(p, node, path, "expected %s, got '%.80s'", expected, s);
    if (errno == ERANGE && fabs(v) > 1.0)
        return cfg_fail(p, node, path, "expected %s, got '%.80s', which is out of range", expected,
                        s);
    if (errno == ERANGE || (f->type == CFG_FLOAT && v != 0.0 && (float)v == 0.0f))
        return cfg_fail(p, node, path,
                        "expected %s, got '%.80s', which is too close to 0 to "
                        "represent%s",
                        expected, s, f->type == CFG_FLOAT ? " as a 32-bit float" : "");
    if (f->type == CFG_FLOAT && fabs(v) > FLT_MAX)
        return cfg_fail(p, node, path,
                        "expected %s, got '%.80s', which is out of range for a 32-bit float",
                        expected, s);
    /* A float field holds the rounded value, so that is what must be in range. */
    if (!in_range(f, f->type == CFG_FLOAT ? (double)(float)v : v))
        return cfg_fail(p, node, path, "expected %s, got '%s'", expected, s);
    *out = v;
    return KILN_OK;
}

kiln_status cfg_parse_string(cfg_parser *p, int node, const char *path, const char *what, char *out,
                             size_t capacity)
{
    yaml_node_t *n = cfg_node(p, node);
    char got[GOT];
    if (n->type != YAML_SCALAR_NODE || cfg_is_null(n))
        return cfg_fail(p, node, path, "expected %s, got %s", what,
                        cfg_describe(n, got, sizeof got));
    if (n->data.scalar.length >= capacity || strlen(cfg_text(n)) != n->data.scalar.length)
        return cfg_fail(p, node, path,
                        "expected %s of at most %zu bytes without NUL bytes, got "
                        "%zu bytes",
                        what, capacity - 1, n->data.scalar.length);
    memcpy(out, cfg_text(n), n->data.scalar.length + 1);
    return KILN_OK;
}

kiln_status cfg_parse_name(cfg_parser *p, int node, const char *path, const char *what,
                           const char *const *names, size_t n, int *out)
{
    yaml_node_t *y = cfg_node(p, node);
    char list[LIST], got[GOT];
    cfg_join(names, n, list, sizeof list);
    if (y->type != YAML_SCALAR_NODE || cfg_is_null(y))
        return cfg_fail(p, node, path, "expected a %s (one of: %s), got %s", what, list,
                        cfg_describe(y, got, sizeof got));
    const char *text = cfg_text(y);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(text, names[i]) == 0) {
            *out = (int)i;
            return KILN_OK;
        }
    }
    const char *near = cfg_suggest(text, names, n);
    if (near != NULL)
        return cfg_fail(p, node, path, "unknown %s '%.80s'; did you mean '%s'?", what, text, near);
    return cfg_fail(p, node, path, "unknown %s '%.80s'; expected one of: %s", what, text, list);
}

kiln_status cfg_parse_choice(cfg_parser *p, int node, const char *path, const char *what,
                             const char *const *names, size_t n, int *kind, int *params,
                             char *params_path)
{
    yaml_node_t *y = cfg_node(p, node);
    char list[LIST], got[GOT];
    *params = 0;
    if (y->type == YAML_SCALAR_NODE && !cfg_is_null(y)) {
        kiln_status rc = cfg_parse_name(p, node, path, what, names, n, kind);
        if (rc == KILN_OK)
            cfg_path_key(path, names[*kind], params_path);
        return rc;
    }
    size_t pairs = y->type == YAML_MAPPING_NODE
                       ? (size_t)(y->data.mapping.pairs.top - y->data.mapping.pairs.start)
                       : 0;
    if (pairs != 1) {
        if (pairs > 1) {
            yaml_node_pair_t *pair = y->data.mapping.pairs.start;
            return cfg_fail(p, pair[1].key, path, "give one %s, not several ('%s' and '%s')", what,
                            cfg_text(cfg_node(p, pair[0].key)), cfg_text(cfg_node(p, pair[1].key)));
        }
        return cfg_fail(p, node, path,
                        "expected a %s: a name (one of: %s) or a mapping {NAME: {settings}}, got "
                        "%s",
                        what, cfg_join(names, n, list, sizeof list),
                        y->type == YAML_MAPPING_NODE ? "an empty mapping"
                                                     : cfg_describe(y, got, sizeof got));
    }
    yaml_node_pair_t *pair = y->data.mapping.pairs.start;
    kiln_status rc = cfg_parse_name(p, pair->key, path, what, names, n, kind);
    if (rc != KILN_OK)
        return rc;
    cfg_path_key(path, names[*kind], params_path);
    *params = pair->value;
    return KILN_OK;
}

static kiln_status resolve_path(cfg_parser *p, int node, const char *path, char *out,
                                size_t capacity)
{
    char given[CONFIG_MAX_PATH];
    kiln_status rc = cfg_parse_string(p, node, path, "a path", given, sizeof given);
    if (rc != KILN_OK)
        return rc;
    if (given[0] == '\0')
        return cfg_fail(p, node, path, "expected a path, got an empty string");
    const char *base = cfg_is_override(p, node) ? p->work_dir : p->base_dir;
    int n = given[0] == '/' || base[0] == '\0'
                ? snprintf(out, capacity, "%s", given)
                : snprintf(out, capacity, "%s%s%s", base, base[strlen(base) - 1] == '/' ? "" : "/",
                           given);
    if (n < 0 || (size_t)n >= capacity)
        return cfg_fail(p, node, path,
                        "the path '%.80s...' is longer than %zu bytes once "
                        "resolved against '%.80s'",
                        given, capacity - 1, base);
    return KILN_OK;
}

static kiln_status parse_bool(cfg_parser *p, int node, const char *path, bool *out)
{
    kiln_status rc = KILN_OK;
    const char *s = plain_scalar(p, node, path, "true or false", &rc);
    if (s == NULL)
        return rc;
    if (strcmp(s, "true") != 0 && strcmp(s, "false") != 0)
        return cfg_fail(p, node, path, "expected true or false, got '%.80s'", s);
    *out = s[0] == 't';
    return KILN_OK;
}

static size_t count_names(const char *const *names)
{
    size_t n = 0;
    while (names[n] != NULL)
        n++;
    return n;
}

kiln_status cfg_parse_field(cfg_parser *p, int node, const char *path, const cfg_field *f,
                            void *base)
{
    kiln_status rc = KILN_OK;
    char *at = AT(base, f->offset);
    int64_t i = 0;
    double d = 0.0;
    int e = 0;
    switch (f->type) {
    case CFG_INT64:
    case CFG_INT:
        rc = cfg_parse_int(p, node, path, f, &i);
        if (rc == KILN_OK && f->type == CFG_INT64)
            *(int64_t *)at = i;
        else if (rc == KILN_OK)
            *(int *)at = (int)i;
        break;
    case CFG_DOUBLE:
    case CFG_FLOAT:
        rc = cfg_parse_number(p, node, path, f, &d);
        if (rc == KILN_OK && f->type == CFG_DOUBLE)
            *(double *)at = d;
        else if (rc == KILN_OK)
            *(float *)at = (float)d;
        break;
    case CFG_BOOL:
        rc = parse_bool(p, node, path, (bool *)at);
        break;
    case CFG_STRING:
        rc = cfg_parse_string(p, node, path, "a string", at, f->size);
        if (rc == KILN_OK && (f->flags & CFG_NONEMPTY) && at[0] == '\0')
            rc = cfg_fail(p, node, path, "expected a non-empty string, got an empty one");
        break;
    case CFG_PATH:
        rc = resolve_path(p, node, path, at, f->size);
        break;
    case CFG_ENUM:
        rc = cfg_parse_name(p, node, path, f->key, f->names, count_names(f->names), &e);
        if (rc == KILN_OK)
            *(int *)at = e;
        break;
    case CFG_SECTION:
        rc = cfg_parse_table(p, node, path, f->sub, at, NULL);
        break;
    case CFG_CUSTOM:
        rc = f->custom->parse(p, node, path, f, base);
        break;
    }
    if (rc == KILN_OK && (f->flags & CFG_OPTIONAL))
        *(bool *)AT(base, f->aux) = true;
    return rc;
}

static kiln_status unknown_key(cfg_parser *p, int key, const char *path, const cfg_table *t,
                               const char *const *extra_keys)
{
    const char *keys[MAX_KEYS];
    size_t n = 0;
    char list[LIST], child[CFG_PATH_BYTES];
    for (size_t i = 0; extra_keys != NULL && extra_keys[i] != NULL && n < MAX_KEYS; i++)
        keys[n++] = extra_keys[i];
    for (size_t i = 0; i < t->n_fields && n < MAX_KEYS; i++)
        keys[n++] = t->fields[i].key;
    const char *text = cfg_text(cfg_node(p, key));
    cfg_path_key(path, text, child);
    const char *near = cfg_suggest(text, keys, n);
    if (n == 0)
        return cfg_fail(p, key, child, "unknown key '%.80s'; %s takes no keys", text,
                        path[0] != '\0' ? path : "this");
    if (near != NULL)
        return cfg_fail(p, key, child, "unknown key '%.80s'; did you mean '%s'?", text, near);
    return cfg_fail(p, key, child, "unknown key '%.80s'; expected one of: %s", text,
                    cfg_join(keys, n, list, sizeof list));
}

kiln_status cfg_parse_table(cfg_parser *p, int node, const char *path, const cfg_table *t,
                            void *base, const char *const *extra_keys)
{
    yaml_node_t *n = cfg_node(p, node);
    char child[CFG_PATH_BYTES], got[GOT], list[LIST];
    kiln_status rc = KILN_OK;
    bool is_map = n != NULL && n->type == YAML_MAPPING_NODE;
    if (n != NULL && !is_map && !cfg_is_null(n)) {
        const char *keys[MAX_KEYS];
        size_t k = 0;
        for (size_t i = 0; i < t->n_fields && k < MAX_KEYS; i++)
            keys[k++] = t->fields[i].key;
        if (k == 0)
            return cfg_fail(p, node, path, "takes no settings; expected nothing or {}, got %s",
                            cfg_describe(n, got, sizeof got));
        return cfg_fail(p, node, path, "expected a mapping with the keys %s; got %s",
                        cfg_join(keys, k, list, sizeof list), cfg_describe(n, got, sizeof got));
    }
    for (yaml_node_pair_t *pair = is_map ? n->data.mapping.pairs.start : NULL;
         is_map && pair < n->data.mapping.pairs.top; pair++) {
        const char *key = cfg_text(cfg_node(p, pair->key));
        bool known = false;
        for (size_t i = 0; !known && extra_keys != NULL && extra_keys[i] != NULL; i++)
            known = strcmp(key, extra_keys[i]) == 0;
        for (size_t i = 0; !known && i < t->n_fields; i++)
            known = strcmp(key, t->fields[i].key) == 0;
        if (!known)
            return unknown_key(p, pair->key, path, t, extra_keys);
    }
    for (size_t i = 0; i < t->n_fields; i++) {
        const cfg_field *f = &t->fields[i];
        yaml_node_pair_t *pair = is_map ? cfg_find_pair(p, node, f->key) : NULL;
        if (pair != NULL)
            rc = cfg_parse_field(p, pair->value, cfg_path_key(path, f->key, child), f, base);
        else if (f->flags & CFG_REQUIRED)
            rc = cfg_fail(p, node, path, "missing required key '%s'", f->key);
        if (rc != KILN_OK)
            return rc;
    }
    return t->finish != NULL ? t->finish(p, node, path, base) : KILN_OK;
}

kiln_status cfg_parse_params(cfg_parser *p, int params, int owner, const char *path,
                             const cfg_table *t, void *base, const char *const *extra_keys)
{
    for (size_t i = 0; params == 0 && i < t->n_fields; i++) {
        if (t->fields[i].flags & CFG_REQUIRED)
            return cfg_fail(p, owner, path, "missing required key '%s'", t->fields[i].key);
    }
    return cfg_parse_table(p, params, path, t, base, extra_keys);
}

char *cfg_append_key(char *path, const char *key)
{
    char child[CFG_PATH_BYTES];
    cfg_path_key(path, key, child);
    memcpy(path, child, strlen(child) + 1);
    return path;
}

/* ---- comparing ---- */

bool cfg_equal_field(const cfg_field *f, const void *a, const void *b, char *path)
{
    const char *x = AT_CONST(a, f->offset), *y = AT_CONST(b, f->offset);
    if (f->flags & CFG_OPTIONAL) {
        bool has_a = *(const bool *)AT_CONST(a, f->aux), has_b = *(const bool *)AT_CONST(b, f->aux);
        if (has_a != has_b || !has_a)
            return has_a == has_b;
    }
    switch (f->type) {
    case CFG_INT64:
        return *(const int64_t *)x == *(const int64_t *)y;
    case CFG_INT:
    case CFG_ENUM:
        return *(const int *)x == *(const int *)y;
    case CFG_DOUBLE:
        return *(const double *)x == *(const double *)y;
    case CFG_FLOAT:
        return *(const float *)x == *(const float *)y;
    case CFG_BOOL:
        return *(const bool *)x == *(const bool *)y;
    case CFG_STRING:
    case CFG_PATH:
        return strcmp(x, y) == 0;
    case CFG_SECTION:
        return cfg_equal_table(f->sub, x, y, path);
    case CFG_CUSTOM:
        return f->custom->equal(f, a, b, path);
    }
    return false;
}

bool cfg_equal_table(const cfg_table *t, const void *a, const void *b, char *path)
{
    char child[CFG_PATH_BYTES];
    size_t length = strlen(path);
    for (size_t i = 0; i < t->n_fields; i++) {
        cfg_path_key(path, t->fields[i].key, child);
        memcpy(path, child, strlen(child) + 1);
        if (!cfg_equal_field(&t->fields[i], a, b, path))
            return false;
        path[length] = '\0';
    }
    return true;
}

void cfg_visit_table(const cfg_table *t, const char *path, void (*fn)(const char *, void *),
                     void *user)
{
    char child[CFG_PATH_BYTES];
    for (size_t i = 0; i < t->n_fields; i++) {
        const cfg_field *f = &t->fields[i];
        fn(cfg_path_key(path, f->key, child), user);
        if (f->type == CFG_SECTION)
            cfg_visit_table(f->sub, child, fn, user);
        else if (f->type == CFG_CUSTOM && f->custom->visit != NULL)
            f->custom->visit(f, child, fn, user);
    }
}
