/*
 * The strict parser for a safetensors header: exactly the JSON the format uses (an object of
 * "__metadata__" with string values and tensor objects with "dtype", "shape" and
 * "data_offsets"), RFC 8259 strings with every escape incl. \uXXXX surrogate pairs, unsigned
 * integers only, no duplicate keys or fields, nothing but whitespace after the object. It
 * fills the file's tensor and metadata tables; safetensors.c checks the offsets against the
 * data section.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "train/safetensors.h"

typedef struct parser {
    kiln_safetensors *file;
    const unsigned char *text;
    size_t n, pos;
    const char *tensor; /* the tensor being parsed, for messages, or NULL */
    char found[24];
} parser;

static kiln_status fail(parser *p, kiln_status status, const char *fmt, ...) KILN__PRINTF(3, 4);

/* Records "<path>: header byte B[, tensor 'T']: <what>". */
static kiln_status fail(parser *p, kiln_status status, const char *fmt, ...)
{
    char what[400];
    va_list args;
    va_start(args, fmt);
    vsnprintf(what, sizeof what, fmt, args);
    va_end(args);
    const char *path = p->file->path;
    if (p->tensor != NULL)
        return kiln__error(p->file->ctx, status, "kiln_safetensors_read",
                           "%s: header byte %zu, tensor '%s': %s", path, p->pos, p->tensor, what);
    return kiln__error(p->file->ctx, status, "kiln_safetensors_read", "%s: header byte %zu: %s",
                       path, p->pos, what);
}

static kiln_status no_memory(parser *p)
{
    return kiln__error(p->file->ctx, KILN_ERR_NO_MEMORY, "kiln_safetensors_read",
                       "out of memory parsing the header of %s", p->file->path);
}

/* What stands at the current position, for messages. */
static const char *found(parser *p)
{
    if (p->pos >= p->n)
        return "the end of the header";
    unsigned c = p->text[p->pos];
    if (c >= 0x20 && c < 0x7f)
        snprintf(p->found, sizeof p->found, "'%c'", (char)c);
    else
        snprintf(p->found, sizeof p->found, "byte 0x%02x", c);
    return p->found;
}

static void skip_space(parser *p)
{
    while (p->pos < p->n && (p->text[p->pos] == ' ' || p->text[p->pos] == '\t' ||
                             p->text[p->pos] == '\n' || p->text[p->pos] == '\r'))
        p->pos++;
}

/* True (and consumed) when the next token is `c`. */
static bool accept(parser *p, char c)
{
    skip_space(p);
    if (p->pos < p->n && p->text[p->pos] == (unsigned char)c) {
        p->pos++;
        return true;
    }
    return false;
}

static kiln_status expect(parser *p, char c, const char *where)
{
    if (accept(p, c))
        return KILN_OK;
    return fail(p, KILN_ERR_CORRUPT, "expected '%c' %s, found %s", c, where, found(p));
}

/* Four hex digits at `at` (before `end`) as a code unit; false when they are not there. */
static bool hex4(const unsigned char *text, size_t at, size_t end, unsigned *out)
{
    if (end < 4 || at > end - 4)
        return false;
    unsigned value = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = text[at + (size_t)i], digit;
        if (c >= '0' && c <= '9')
            digit = c - '0';
        else if (c >= 'a' && c <= 'f')
            digit = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            digit = c - 'A' + 10;
        else
            return false;
        value = value * 16 + digit;
    }
    *out = value;
    return true;
}

static size_t put_utf8(unsigned char *out, unsigned cp)
{
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (cp >> 18));
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The escape after a backslash at p->pos (which points past the backslash), decoded into
 * `out`; returns the bytes written or 0 after recording an error. `end` is the closing
 * quote. */
static size_t parse_escape(parser *p, size_t end, unsigned char *out, kiln_status *rc)
{
    static const char SIMPLE_IN[] = "\"\\/bfnrt", SIMPLE_OUT[] = "\"\\/\b\f\n\r\t";
    unsigned char e = p->text[p->pos];
    const char *simple = e != '\0' ? strchr(SIMPLE_IN, e) : NULL;
    if (simple != NULL) {
        out[0] = (unsigned char)SIMPLE_OUT[simple - SIMPLE_IN];
        p->pos++;
        return 1;
    }
    unsigned cp = 0, low = 0;
    if (e != 'u') {
        *rc = fail(p, KILN_ERR_CORRUPT, "invalid escape '\\%c' in a string", (char)e);
        return 0;
    }
    if (!hex4(p->text, p->pos + 1, end, &cp)) {
        *rc = fail(p, KILN_ERR_CORRUPT, "'\\u' must be followed by four hex digits");
        return 0;
    }
    p->pos += 5;
    if (cp >= 0xD800 && cp <= 0xDBFF) { /* a high surrogate needs its low half next */
        if (p->pos + 1 < end && p->text[p->pos] == '\\' && p->text[p->pos + 1] == 'u' &&
            hex4(p->text, p->pos + 2, end, &low) && low >= 0xDC00 && low <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            p->pos += 6;
        } else {
            *rc = fail(p, KILN_ERR_CORRUPT, "\\u%04x is a high surrogate without its low half", cp);
            return 0;
        }
    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
        *rc = fail(p, KILN_ERR_CORRUPT, "\\u%04x is a low surrogate without its high half", cp);
        return 0;
    } else if (cp == 0) {
        *rc = fail(p, KILN_ERR_CORRUPT, "\\u0000 (NUL) is not allowed in names and metadata");
        return 0;
    }
    return put_utf8(out, cp);
}

/* A string token, decoded into a new NUL-terminated UTF-8 string. */
static kiln_status parse_string(parser *p, const char *what, char **out)
{
    kiln_status rc = KILN_OK;
    skip_space(p);
    if (p->pos >= p->n || p->text[p->pos] != '"')
        return fail(p, KILN_ERR_CORRUPT, "expected a string for %s, found %s", what, found(p));
    size_t end = ++p->pos;
    while (end < p->n && p->text[end] != '"')
        end += p->text[end] == '\\' ? 2 : 1;
    if (end >= p->n)
        return fail(p, KILN_ERR_CORRUPT, "%s: the string never ends", what);
    /* Decoding never lengthens: an escape of 2, 6 or 12 bytes gives at most 1, 3 or 4. */
    unsigned char *s = kiln__alloc(p->file->ctx, end - p->pos + 1);
    if (s == NULL)
        return no_memory(p);
    size_t k = 0;
    while (p->pos < end) {
        unsigned c = p->text[p->pos];
        if (c < 0x20) {
            rc = fail(p, KILN_ERR_CORRUPT, "control character 0x%02x in %s (JSON needs it escaped)",
                      c, what);
            goto cleanup;
        }
        if (c == '\\') {
            p->pos++;
            size_t wrote = parse_escape(p, end, s + k, &rc);
            if (wrote == 0)
                goto cleanup;
            k += wrote;
        } else if (c >= 0x80) {
            size_t length = kiln__utf8_length(p->text + p->pos, end - p->pos);
            if (length == 0) {
                rc = fail(p, KILN_ERR_CORRUPT, "invalid UTF-8 in %s", what);
                goto cleanup;
            }
            memcpy(s + k, p->text + p->pos, length);
            k += length;
            p->pos += length;
        } else {
            s[k++] = (unsigned char)c;
            p->pos++;
        }
    }
    s[k] = '\0';
    p->pos = end + 1;
    *out = (char *)s;
    return KILN_OK;
cleanup:
    kiln__free(p->file->ctx, s);
    return rc;
}

/* An unsigned JSON integer: no sign, fraction, exponent or leading zero. */
static kiln_status parse_integer(parser *p, const char *what, uint64_t *out)
{
    skip_space(p);
    if (p->pos < p->n && p->text[p->pos] == '-')
        return fail(p, KILN_ERR_CORRUPT, "%s must not be negative", what);
    if (p->pos >= p->n || p->text[p->pos] < '0' || p->text[p->pos] > '9')
        return fail(p, KILN_ERR_CORRUPT, "expected an integer for %s, found %s", what, found(p));
    if (p->text[p->pos] == '0' && p->pos + 1 < p->n && p->text[p->pos + 1] >= '0' &&
        p->text[p->pos + 1] <= '9')
        return fail(p, KILN_ERR_CORRUPT, "%s has a leading zero, which JSON forbids", what);
    uint64_t value = 0;
    while (p->pos < p->n && p->text[p->pos] >= '0' && p->text[p->pos] <= '9') {
        unsigned digit = p->text[p->pos] - '0';
        if (value > (UINT64_MAX - digit) / 10)
            return fail(p, KILN_ERR_CORRUPT, "%s does not fit in 64 bits", what);
        value = value * 10 + digit;
        p->pos++;
    }
    if (p->pos < p->n &&
        (p->text[p->pos] == '.' || p->text[p->pos] == 'e' || p->text[p->pos] == 'E'))
        return fail(p, KILN_ERR_CORRUPT, "%s must be an integer", what);
    *out = value;
    return KILN_OK;
}

/* A list of at most `max` integers; more gives `too_many` with its message. */
static kiln_status parse_integers(parser *p, const char *what, uint64_t *values, int max,
                                  kiln_status too_many, int *count)
{
    kiln_status rc = expect(p, '[', what);
    *count = 0;
    if (rc != KILN_OK || accept(p, ']'))
        return rc;
    do {
        if (*count == max)
            return fail(p, too_many, "%s has more than %d entries", what, max);
        rc = parse_integer(p, what, &values[*count]);
        if (rc != KILN_OK)
            return rc;
        (*count)++;
    } while (accept(p, ','));
    return expect(p, ']', "to close the list");
}

/* The dtype called `name`; kiln reads four of the format's dtypes and says so for others. */
static kiln_status parse_dtype(parser *p, kiln_safetensors_dtype *out)
{
    static const char *const OTHERS[] = {"BOOL", "I8",  "I16", "U16",     "F16",    "BF16",
                                         "U32",  "F64", "U64", "F8_E5M2", "F8_E4M3"};
    char *name = NULL;
    kiln_status rc = parse_string(p, "dtype", &name);
    if (rc != KILN_OK)
        return rc;
    bool other = false;
    for (int d = 0; d < 4; d++)
        if (strcmp(name, kiln_safetensors_dtype_name((kiln_safetensors_dtype)d)) == 0)
            *out = (kiln_safetensors_dtype)d;
    for (size_t i = 0; i < sizeof OTHERS / sizeof OTHERS[0]; i++)
        other = other || strcmp(name, OTHERS[i]) == 0;
    if (other)
        rc = fail(p, KILN_ERR_UNSUPPORTED, "dtype %s is not one kiln reads (F32, I32, I64, U8)",
                  name);
    else if ((unsigned)*out >= 4)
        rc = fail(p, KILN_ERR_CORRUPT, "'%s' is not a safetensors dtype", name);
    kiln__free(p->file->ctx, name);
    return rc;
}

static kiln_status add_tensor(parser *p, char *name, kiln__st_tensor **out)
{
    kiln_safetensors *f = p->file;
    if (f->n_tensors == f->tensors_capacity) {
        size_t capacity = f->tensors_capacity > 0 ? 2 * f->tensors_capacity : 16;
        kiln__st_tensor *grown = capacity <= SIZE_MAX / sizeof *grown
                                     ? kiln__realloc(f->ctx, f->tensors, capacity * sizeof *grown)
                                     : NULL;
        if (grown == NULL) {
            kiln__free(f->ctx, name);
            return no_memory(p);
        }
        f->tensors = grown;
        f->tensors_capacity = capacity;
    }
    kiln__st_tensor *t = &f->tensors[f->n_tensors++];
    memset(t, 0, sizeof *t);
    t->name = name;
    t->tensor.name = name;
    t->tensor.dtype = (kiln_safetensors_dtype)-1;
    *out = t;
    return KILN_OK;
}

/* {"dtype": ..., "shape": [...], "data_offsets": [begin, end]}, fields in any order. The
 * file owns `name` from here on. */
static kiln_status parse_tensor(parser *p, char *name)
{
    static const char *const FIELDS[3] = {"dtype", "shape", "data_offsets"};
    kiln__st_tensor *t = NULL;
    kiln_status rc = add_tensor(p, name, &t);
    if (rc != KILN_OK)
        return rc;
    p->tensor = t->name;
    bool seen[3] = {false, false, false};
    rc = expect(p, '{', "to open the tensor");
    if (rc == KILN_OK && !accept(p, '}')) {
        do {
            char *key = NULL;
            rc = parse_string(p, "a field name", &key);
            if (rc != KILN_OK)
                return rc;
            int field = 0;
            while (field < 3 && strcmp(key, FIELDS[field]) != 0)
                field++;
            if (field == 3)
                rc = fail(p, KILN_ERR_CORRUPT,
                          "unknown field '%s' (a tensor has dtype, shape and data_offsets)", key);
            else if (seen[field])
                rc = fail(p, KILN_ERR_CORRUPT, "field '%s' appears twice", key);
            kiln__free(p->file->ctx, key);
            if (rc == KILN_OK)
                rc = expect(p, ':', "after the field name");
            if (rc != KILN_OK)
                return rc;
            seen[field] = true;
            uint64_t values[KILN_MAX_DIMS] = {0};
            int count = 0;
            if (field == 0) {
                rc = parse_dtype(p, &t->tensor.dtype);
            } else if (field == 1) {
                rc =
                    parse_integers(p, "shape", values, KILN_MAX_DIMS, KILN_ERR_UNSUPPORTED, &count);
                t->tensor.shape.ndim = count;
                for (int d = 0; rc == KILN_OK && d < count; d++) {
                    if (values[d] > (uint64_t)INT64_MAX)
                        rc = fail(p, KILN_ERR_CORRUPT, "shape dimension %d is too large", d);
                    t->tensor.shape.dim[d] = (int64_t)values[d];
                }
            } else {
                rc = parse_integers(p, "data_offsets", values, 2, KILN_ERR_CORRUPT, &count);
                if (rc == KILN_OK && count != 2)
                    rc = fail(p, KILN_ERR_CORRUPT, "data_offsets must hold [begin, end]");
                t->begin = values[0];
                t->end = values[1];
            }
            if (rc != KILN_OK)
                return rc;
        } while (accept(p, ','));
        rc = expect(p, '}', "after the tensor's fields");
    }
    for (int field = 0; rc == KILN_OK && field < 3; field++)
        if (!seen[field])
            rc = fail(p, KILN_ERR_CORRUPT, "the field '%s' is missing", FIELDS[field]);
    p->tensor = NULL;
    return rc;
}

static kiln_status add_metadata(parser *p, char *key, char *value)
{
    kiln_safetensors *f = p->file;
    if (f->n_metadata == f->metadata_capacity) {
        size_t capacity = f->metadata_capacity > 0 ? 2 * f->metadata_capacity : 8;
        kiln__st_metadata *grown =
            capacity <= SIZE_MAX / sizeof *grown
                ? kiln__realloc(f->ctx, f->metadata, capacity * sizeof *grown)
                : NULL;
        if (grown == NULL) {
            kiln__free(f->ctx, key);
            kiln__free(f->ctx, value);
            return no_memory(p);
        }
        f->metadata = grown;
        f->metadata_capacity = capacity;
    }
    kiln__st_metadata *m = &f->metadata[f->n_metadata++];
    m->key = key;
    m->value = value;
    m->entry.key = key;
    m->entry.value = value;
    return KILN_OK;
}

/* {"key": "value", ...}: the format allows strings only. */
static kiln_status parse_metadata(parser *p)
{
    kiln_status rc = expect(p, '{', "to open __metadata__");
    if (rc != KILN_OK || accept(p, '}'))
        return rc;
    do {
        char *key = NULL, *value = NULL;
        rc = parse_string(p, "a metadata key", &key);
        if (rc == KILN_OK)
            rc = expect(p, ':', "after the metadata key");
        if (rc == KILN_OK) {
            skip_space(p);
            if (p->pos < p->n && p->text[p->pos] != '"')
                rc = fail(p, KILN_ERR_CORRUPT, "the value of metadata '%s' must be a string", key);
        }
        if (rc == KILN_OK)
            rc = parse_string(p, "a metadata value", &value);
        if (rc != KILN_OK) {
            kiln__free(p->file->ctx, key);
            return rc;
        }
        rc = add_metadata(p, key, value);
        if (rc != KILN_OK)
            return rc;
    } while (accept(p, ','));
    return expect(p, '}', "to close __metadata__");
}

/* Duplicate tensor names and metadata keys, found by sorting the names. */
static kiln_status check_duplicates(parser *p)
{
    kiln_safetensors *f = p->file;
    size_t n = f->n_tensors > f->n_metadata ? f->n_tensors : f->n_metadata;
    const char **names = kiln__calloc(f->ctx, n + 1, sizeof *names);
    if (names == NULL)
        return no_memory(p);
    kiln_status rc = KILN_OK;
    for (size_t i = 0; i < f->n_tensors; i++)
        names[i] = f->tensors[i].name;
    const char *twice = kiln__find_duplicate(names, f->n_tensors);
    if (twice != NULL)
        rc = kiln__error(f->ctx, KILN_ERR_CORRUPT, "kiln_safetensors_read",
                         "%s: tensor '%s' appears twice in the header", f->path, twice);
    for (size_t i = 0; rc == KILN_OK && i < f->n_metadata; i++)
        names[i] = f->metadata[i].key;
    twice = rc == KILN_OK ? kiln__find_duplicate(names, f->n_metadata) : NULL;
    if (twice != NULL)
        rc = kiln__error(f->ctx, KILN_ERR_CORRUPT, "kiln_safetensors_read",
                         "%s: metadata key '%s' appears twice in the header", f->path, twice);
    kiln__free(f->ctx, names);
    return rc;
}

kiln_status kiln__safetensors_parse_header(kiln_safetensors *file, const char *text, size_t n)
{
    parser p = {.file = file, .text = (const unsigned char *)text, .n = n};
    bool seen_metadata = false;
    kiln_status rc = expect(&p, '{', "at the start of the header");
    if (rc == KILN_OK && !accept(&p, '}')) {
        do {
            char *name = NULL;
            rc = parse_string(&p, "a tensor name", &name);
            if (rc == KILN_OK)
                rc = expect(&p, ':', "after the name");
            if (rc == KILN_OK && strcmp(name, "__metadata__") == 0) {
                if (seen_metadata)
                    rc = fail(&p, KILN_ERR_CORRUPT, "__metadata__ appears twice");
                seen_metadata = true;
                kiln__free(file->ctx, name);
                if (rc == KILN_OK)
                    rc = parse_metadata(&p);
            } else if (rc == KILN_OK) {
                rc = parse_tensor(&p, name);
            } else {
                kiln__free(file->ctx, name);
            }
        } while (rc == KILN_OK && accept(&p, ','));
        if (rc == KILN_OK)
            rc = expect(&p, '}', "after a tensor");
    }
    skip_space(&p);
    if (rc == KILN_OK && p.pos < n)
        rc = fail(&p, KILN_ERR_CORRUPT, "%s after the header's closing '}'", found(&p));
    if (rc == KILN_OK)
        rc = check_duplicates(&p);
    return rc;
}
