/*
 * The YAML side of the config: loading one document with libyaml, the checks every tree
 * gets before the schema sees it (duplicate keys, keys that are not names, nesting and alias
 * limits), `--set KEY=VALUE` overrides grafted into the tree, where a node came from (file
 * line and column, or the override), error messages, and "did you mean" suggestions. What
 * the keys mean is the schema's business (config_schema.c, config.c), not this file's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

enum { MAX_COMPONENTS = 32, MAX_COPIED = 100000 };

yaml_node_t *cfg_node(cfg_parser *p, int id)
{
    return id > 0 ? yaml_document_get_node(&p->doc, id) : NULL;
}

bool cfg_is_null(const yaml_node_t *n)
{
    if (n == NULL || n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return n == NULL;
    const char *s = (const char *)n->data.scalar.value;
    return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

const char *cfg_text(const yaml_node_t *n)
{
    return n != NULL && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

bool cfg_is_override(const cfg_parser *p, int id)
{
    return p->n_overrides > 0 && id >= p->override_first[0];
}

const char *cfg_describe(const yaml_node_t *n, char *out, size_t capacity)
{
    if (n == NULL || cfg_is_null(n))
        snprintf(out, capacity, "null");
    else if (n->type == YAML_MAPPING_NODE)
        snprintf(out, capacity, "a mapping");
    else if (n->type == YAML_SEQUENCE_NODE)
        snprintf(out, capacity, "a list");
    else if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        snprintf(out, capacity, "the quoted string \"%.80s\"", cfg_text(n));
    else
        snprintf(out, capacity, "'%.80s'", cfg_text(n));
    return out;
}

/* "FILE:LINE:COLUMN", "--set TEXT" or "FILE" for node `id`. */
static const char *where(const cfg_parser *p, int id, char *out, size_t capacity)
{
    if (cfg_is_override(p, id)) {
        int k = p->n_overrides - 1;
        while (k > 0 && id < p->override_first[k])
            k--;
        snprintf(out, capacity, "--set %s", p->override_text[k]);
    } else if (id > 0) {
        const yaml_node_t *n = yaml_document_get_node((yaml_document_t *)&p->doc, id);
        snprintf(out, capacity, "%s:%zu:%zu", p->source, n->start_mark.line + 1,
                 n->start_mark.column + 1);
    } else {
        snprintf(out, capacity, "%s", p->source);
    }
    return out;
}

static kiln_status vfail(cfg_parser *p, const char *at, const char *path, const char *fmt,
                         va_list args)
{
    char *out = p->err->message;
    size_t capacity = sizeof p->err->message;
    int n = snprintf(out, capacity, "%s: %s%s", at, path, path[0] != '\0' ? ": " : "");
    if (n < 0 || (size_t)n >= capacity)
        n = (int)strlen(out);
    vsnprintf(out + n, capacity - (size_t)n, fmt, args);
    return KILN_ERR_INVALID_ARGUMENT;
}

kiln_status cfg_fail(cfg_parser *p, int node, const char *path, const char *fmt, ...)
{
    char at[CONFIG_MAX_PATH + 64];
    va_list args;
    va_start(args, fmt);
    kiln_status rc = vfail(p, where(p, node, at, sizeof at), path, fmt, args);
    va_end(args);
    return rc;
}

static kiln_status fail_text(cfg_parser *p, const char *at, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static kiln_status fail_text(cfg_parser *p, const char *at, const char *path, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    kiln_status rc = vfail(p, at, path, fmt, args);
    va_end(args);
    return rc;
}

kiln_status cfg_fail_memory(cfg_parser *p)
{
    snprintf(p->err->message, sizeof p->err->message, "%s: out of memory reading the config",
             p->source);
    return KILN_ERR_NO_MEMORY;
}

/* Optimal string alignment distance, stopping early past 2. */
static size_t distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    if (n > 64 || m > 64 || (n > m ? n - m : m - n) > 2)
        return 3;
    size_t d[65][65];
    for (size_t i = 0; i <= n; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= n; i++) {
        for (size_t j = 1; j <= m; j++) {
            size_t cost = a[i - 1] != b[j - 1];
            size_t best = d[i - 1][j - 1] + cost;
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[n][m];
}

const char *cfg_suggest(const char *word, const char *const *candidates, size_t n)
{
    const char *best = NULL;
    size_t best_distance = 3;
    for (size_t i = 0; i < n; i++) {
        size_t d = distance(word, candidates[i]);
        if (d < best_distance) {
            best = candidates[i];
            best_distance = d;
        }
    }
    return best;
}

const char *cfg_join(const char *const *words, size_t n, char *out, size_t capacity)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && used < capacity; i++)
        used += (size_t)snprintf(out + used, capacity - used, "%s%s", i > 0 ? ", " : "", words[i]);
    return out;
}

/* A path longer than CFG_PATH_BYTES ends in "..." so that a message shows it was cut. */
static const char *mark_cut(char *out, int written)
{
    if (written >= CFG_PATH_BYTES)
        memcpy(out + CFG_PATH_BYTES - 4, "...", 4);
    return out;
}

const char *cfg_path_key(const char *path, const char *key, char *out)
{
    return mark_cut(out,
                    snprintf(out, CFG_PATH_BYTES, "%s%s%s", path, path[0] != '\0' ? "." : "", key));
}

const char *cfg_path_index(const char *path, size_t i, char *out)
{
    return mark_cut(out, snprintf(out, CFG_PATH_BYTES, "%s[%zu]", path, i));
}

yaml_node_pair_t *cfg_find_pair(cfg_parser *p, int node, const char *key)
{
    yaml_node_t *n = cfg_node(p, node);
    if (n == NULL || n->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top;
         pair++) {
        const char *text = cfg_text(cfg_node(p, pair->key));
        if (text != NULL && strcmp(text, key) == 0)
            return pair;
    }
    return NULL;
}

static kiln_status syntax_error(cfg_parser *p, const yaml_parser_t *yp, const char *at)
{
    if (yp->error == YAML_MEMORY_ERROR)
        return cfg_fail_memory(p);
    char context[160] = "";
    if (yp->context != NULL)
        snprintf(context, sizeof context, " (%s at line %zu, column %zu)", yp->context,
                 yp->context_mark.line + 1, yp->context_mark.column + 1);
    if (at != NULL) /* an override's value */
        return fail_text(p, at, "", "the value is not valid YAML: %s",
                         yp->problem != NULL ? yp->problem : "unknown error");
    if (yp->error == YAML_READER_ERROR)
        return fail_text(p, p->source, "", "cannot read the text: %s at byte %zu",
                         yp->problem != NULL ? yp->problem : "unknown error", yp->problem_offset);
    char mark[CONFIG_MAX_PATH + 64];
    snprintf(mark, sizeof mark, "%s:%zu:%zu", p->source, yp->problem_mark.line + 1,
             yp->problem_mark.column + 1);
    return fail_text(p, mark, "", "YAML syntax error: %s%s",
                     yp->problem != NULL ? yp->problem : "unknown error", context);
}

kiln_status cfg_load(cfg_parser *p, const char *text, size_t length)
{
    yaml_parser_t yp;
    if (!yaml_parser_initialize(&yp))
        return cfg_fail_memory(p);
    yaml_parser_set_input_string(&yp, (const unsigned char *)text, length);
    kiln_status rc = KILN_OK;
    if (!yaml_parser_load(&yp, &p->doc)) {
        rc = syntax_error(p, &yp, NULL);
        goto cleanup;
    }
    p->has_doc = true;
    yaml_document_t extra;
    if (!yaml_parser_load(&yp, &extra)) {
        rc = syntax_error(p, &yp, NULL);
        goto cleanup;
    }
    bool second = yaml_document_get_root_node(&extra) != NULL;
    yaml_mark_t mark = extra.start_mark;
    yaml_document_delete(&extra);
    if (second) {
        char at[CONFIG_MAX_PATH + 64];
        snprintf(at, sizeof at, "%s:%zu:%zu", p->source, mark.line + 1, mark.column + 1);
        rc = fail_text(p, at, "", "a second YAML document starts here; a config is one document");
        goto cleanup;
    }
    yaml_node_t *root = yaml_document_get_root_node(&p->doc);
    if (root == NULL || cfg_is_null(root)) {
        /* An empty file is an empty mapping, so that the missing keys are named. */
        if (root == NULL && yaml_document_add_mapping(&p->doc, NULL, YAML_BLOCK_MAPPING_STYLE) == 0)
            rc = cfg_fail_memory(p);
        else if (root != NULL)
            rc = cfg_fail(p, 1, "", "the config is empty; it needs at least data, model and loss");
    } else if (root->type != YAML_MAPPING_NODE) {
        char got[128];
        rc = cfg_fail(p, 1, "", "expected a mapping of keys at the top of the config, got %s",
                      cfg_describe(root, got, sizeof got));
    }
cleanup:
    yaml_parser_delete(&yp);
    return rc;
}

kiln_status cfg_check_tree(cfg_parser *p, yaml_document_t *doc, int node, const char *path,
                           int depth, long *visits)
{
    yaml_node_t *n = yaml_document_get_node(doc, node);
    char child[CFG_PATH_BYTES];
    if (depth > CFG_MAX_DEPTH)
        return cfg_fail(p, node, path, "nested more than %d levels deep", CFG_MAX_DEPTH);
    if (++*visits > CFG_MAX_VISITS)
        return cfg_fail(p, node, path,
                        "more than %d values; is an alias (*name) repeated over and over?",
                        CFG_MAX_VISITS);
    if (n->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++) {
            kiln_status rc = cfg_check_tree(
                p, doc, *it,
                cfg_path_index(path, (size_t)(it - n->data.sequence.items.start), child), depth + 1,
                visits);
            if (rc != KILN_OK)
                return rc;
        }
    }
    if (n->type != YAML_MAPPING_NODE)
        return KILN_OK;
    for (yaml_node_pair_t *pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top;
         pair++) {
        yaml_node_t *key = yaml_document_get_node(doc, pair->key);
        char got[128];
        if (key->type != YAML_SCALAR_NODE || cfg_is_null(key))
            return cfg_fail(p, pair->key, path, "keys must be names, got %s",
                            cfg_describe(key, got, sizeof got));
        const char *text = cfg_text(key);
        cfg_path_key(path, text, child);
        for (yaml_node_pair_t *first = n->data.mapping.pairs.start; first < pair; first++) {
            yaml_node_t *other = yaml_document_get_node(doc, first->key);
            if (strcmp(cfg_text(other), text) != 0)
                continue;
            if (cfg_is_override(p, first->key))
                return cfg_fail(p, pair->key, child, "duplicate key '%s'", text);
            return cfg_fail(p, pair->key, child,
                            "duplicate key '%s' (first given at line %zu, column %zu)", text,
                            other->start_mark.line + 1, other->start_mark.column + 1);
        }
        kiln_status rc = cfg_check_tree(p, doc, pair->value, child, depth + 1, visits);
        if (rc != KILN_OK)
            return rc;
    }
    return KILN_OK;
}

/* Records running out of memory; returns 0, the failed node id. */
static int memory_failure(cfg_parser *p)
{
    cfg_fail_memory(p);
    return 0;
}

/* Copies node `id` of `from` into p->doc; returns the new id, 0 on failure (after recording
 * why). */
static int copy_node(cfg_parser *p, yaml_document_t *from, int id, int depth, long *copied,
                     const char *at)
{
    yaml_node_t *n = yaml_document_get_node(from, id);
    if (depth > CFG_MAX_DEPTH || ++*copied > MAX_COPIED) {
        fail_text(p, at, "", "the value is nested too deep or has too many items");
        return 0;
    }
    int out = 0;
    if (n->type == YAML_SCALAR_NODE)
        out = yaml_document_add_scalar(&p->doc, NULL, n->data.scalar.value,
                                       (int)n->data.scalar.length, n->data.scalar.style);
    else if (n->type == YAML_SEQUENCE_NODE)
        out = yaml_document_add_sequence(&p->doc, NULL, YAML_FLOW_SEQUENCE_STYLE);
    else
        out = yaml_document_add_mapping(&p->doc, NULL, YAML_FLOW_MAPPING_STYLE);
    if (out == 0) {
        cfg_fail_memory(p);
        return 0;
    }
    /* `n` stays valid: only p->doc grows. */
    if (n->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++) {
            int item = copy_node(p, from, *it, depth + 1, copied, at);
            if (item == 0)
                return 0;
            if (!yaml_document_append_sequence_item(&p->doc, out, item))
                return memory_failure(p);
        }
    } else if (n->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top;
             pair++) {
            int key = copy_node(p, from, pair->key, depth + 1, copied, at);
            int value = key != 0 ? copy_node(p, from, pair->value, depth + 1, copied, at) : 0;
            if (value == 0)
                return 0;
            if (!yaml_document_append_mapping_pair(&p->doc, out, key, value))
                return memory_failure(p);
        }
    }
    return out;
}

/* Parses an override's value as YAML into p->doc; returns its id or 0. */
static int load_value(cfg_parser *p, const char *value, const char *at)
{
    yaml_parser_t yp;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&yp))
        return memory_failure(p);
    yaml_parser_set_input_string(&yp, (const unsigned char *)value, strlen(value));
    int id = 0;
    if (!yaml_parser_load(&yp, &doc)) {
        syntax_error(p, &yp, at);
        yaml_parser_delete(&yp);
        return 0;
    }
    long copied = 0;
    if (yaml_document_get_root_node(&doc) == NULL)
        id = yaml_document_add_scalar(&p->doc, NULL, (const yaml_char_t *)"", 0,
                                      YAML_PLAIN_SCALAR_STYLE);
    else
        id = copy_node(p, &doc, 1, 0, &copied, at);
    if (id == 0 && copied == 0)
        cfg_fail_memory(p);
    yaml_document_delete(&doc);
    yaml_parser_delete(&yp);
    return id;
}

/* Splits "a.b[1].c" into components ("a", "b", "1", "c") in place; -1 when malformed. */
static int split_key(char *s, char **parts)
{
    int n = 0;
    while (n < MAX_COMPONENTS) {
        size_t span = strcspn(s, ".[]");
        if (span == 0)
            return -1;
        parts[n++] = s;
        char stop = s[span];
        s[span] = '\0';
        s += span + (stop != '\0');
        while (stop == '[') {
            char *close = strchr(s, ']');
            if (close == NULL || close == s || n >= MAX_COMPONENTS)
                return -1;
            *close = '\0';
            parts[n++] = s;
            s = close + 1;
            stop = *s;
            if (stop == '[' || stop == '.')
                s++;
            else if (stop != '\0')
                return -1;
        }
        if (stop == '\0')
            return n;
        if (stop == ']')
            return -1;
    }
    return -1;
}

static bool is_name(const char *s)
{
    if (!((*s >= 'a' && *s <= 'z') || *s == '_'))
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == strlen(s);
}

/* Points slot `index` of node `parent` (a mapping's value or a list's item) at `child`. */
static void set_slot(cfg_parser *p, int parent, size_t index, int child)
{
    yaml_node_t *n = cfg_node(p, parent);
    if (n->type == YAML_MAPPING_NODE)
        n->data.mapping.pairs.start[index].value = child;
    else
        n->data.sequence.items.start[index] = child;
}

kiln_status cfg_apply_override(cfg_parser *p, const char *text)
{
    int k = p->n_overrides;
    char at[CONFIG_MAX_PATH + 64], key[CFG_PATH_BYTES], shown[CFG_PATH_BYTES] = "",
                                                        next[CFG_PATH_BYTES];
    char *parts[MAX_COMPONENTS];
    snprintf(at, sizeof at, "--set %s", text);
    if (k >= CONFIG_MAX_OVERRIDES)
        return fail_text(p, at, "", "more than %d overrides", CONFIG_MAX_OVERRIDES);
    p->override_text[k] = text;
    p->override_first[k] = (int)(p->doc.nodes.top - p->doc.nodes.start) + 1;
    p->n_overrides++;
    const char *eq = strchr(text, '=');
    if (eq == NULL)
        return fail_text(p, at, "", "expected KEY=VALUE, such as train.batch_size=64");
    if ((size_t)(eq - text) >= sizeof key)
        return fail_text(p, at, "", "the key is too long");
    memcpy(key, text, (size_t)(eq - text));
    key[eq - text] = '\0';
    int n = split_key(key, parts);
    if (n < 0)
        return fail_text(p, at, "",
                         "'%.*s' is not a key path such as train.optimizer.adam.lr or "
                         "model.layers[1].dense.units",
                         (int)(eq - text), text);
    int value = load_value(p, eq + 1, at);
    if (value == 0)
        return KILN_ERR_INVALID_ARGUMENT;
    long visits = 0;
    kiln_status rc = cfg_check_tree(p, &p->doc, value, "", 0, &visits);
    if (rc != KILN_OK)
        return rc;
    int cur = 1, parent = 0;
    size_t slot = 0;
    for (int c = 0; c < n; c++) {
        const char *part = parts[c];
        bool last = c == n - 1;
        yaml_node_t *node = cfg_node(p, cur);
        if (node->type == YAML_SCALAR_NODE) {
            const char *was = cfg_text(node);
            if (!cfg_is_null(node) && strcmp(was, part) != 0) {
                if (is_name(was))
                    return fail_text(p, at, "",
                                     "%s is '%s', which has no key '%s'; to set a parameter of "
                                     "'%s', write %s.%s.%s",
                                     shown, was, part, was, shown, was, part);
                return fail_text(p, at, "", "%s is '%.80s', which has no key '%s'", shown, was,
                                 part);
            }
            /* null, or a name given alone ("loss: dice"): becomes a mapping to add to. */
            int map = yaml_document_add_mapping(&p->doc, NULL, YAML_FLOW_MAPPING_STYLE);
            if (map == 0)
                return cfg_fail_memory(p);
            set_slot(p, parent, slot, map);
            cur = map;
            node = cfg_node(p, cur);
        }
        if (node->type == YAML_SEQUENCE_NODE) {
            size_t length =
                (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
            char *end = NULL;
            errno = 0;
            long index = strtol(part, &end, 10);
            if (errno != 0 || *end != '\0' || part[0] < '0' || part[0] > '9' || index < 0 ||
                (size_t)index >= length) {
                if (length == 0)
                    return fail_text(p, at, "", "%s is an empty list; it has no item '%s'", shown,
                                     part);
                return fail_text(p, at, "", "%s has %zu item%s; '%s' is not an index from 0 to %zu",
                                 shown, length, length == 1 ? "" : "s", part, length - 1);
            }
            cfg_path_index(shown, (size_t)index, next);
            if (last) {
                node->data.sequence.items.start[index] = value;
            } else {
                parent = cur;
                slot = (size_t)index;
                cur = node->data.sequence.items.start[index];
            }
        } else {
            cfg_path_key(shown, part, next);
            yaml_node_pair_t *pair = cfg_find_pair(p, cur, part);
            if (pair != NULL) {
                parent = cur;
                slot = (size_t)(pair - node->data.mapping.pairs.start);
                if (last)
                    pair->value = value;
                else
                    cur = pair->value;
            } else {
                int name = yaml_document_add_scalar(&p->doc, NULL, (const yaml_char_t *)part, -1,
                                                    YAML_PLAIN_SCALAR_STYLE);
                int child = last
                                ? value
                                : yaml_document_add_mapping(&p->doc, NULL, YAML_FLOW_MAPPING_STYLE);
                if (name == 0 || child == 0 ||
                    !yaml_document_append_mapping_pair(&p->doc, cur, name, child))
                    return cfg_fail_memory(p);
                node = cfg_node(p, cur);
                parent = cur;
                slot = (size_t)(node->data.mapping.pairs.top - node->data.mapping.pairs.start) - 1;
                cur = child;
            }
        }
        memcpy(shown, next, sizeof shown);
    }
    return KILN_OK;
}

void cfg_parser_deinit(cfg_parser *p)
{
    if (p->has_doc)
        yaml_document_delete(&p->doc);
    p->has_doc = false;
}
