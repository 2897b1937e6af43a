/*
 * CSV reader for tabular data: a header naming the columns (optional), one label column
 * chosen by name or index, every other column a float feature. Double-quoted fields follow
 * RFC 4180 within one line ("" is a quote; a quoted field may not span lines). Empty, NA,
 * N/A and NaN cells become NaN for imputation later. Errors name the file, the 1-based line
 * and column and the column's name. The file is read whole (gzip allowed): tabular data sets
 * are small next to the arrays they become.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"

static const char *const FN = "kiln_dataset_read_csv";

typedef struct csv_parser {
    kiln_context *ctx;
    const char *path;
    char delimiter;
    int64_t line;  /* 1-based number of the line being parsed */
    char *scratch; /* unescaped fields of the current line, each NUL-terminated */
    size_t scratch_capacity;
    char **fields; /* pointers into scratch */
    int n_fields;
    int fields_capacity;
} csv_parser;

void kiln_csv_options_init(kiln_csv_options *options)
{
    memset(options, 0, sizeof *options);
    options->header = true;
    options->labels = KILN_LABELS_CLASS;
    options->label_column = NULL;
    options->label_index = -1;
    options->delimiter = ',';
}

static bool is_space(char c, char delimiter)
{
    return (c == ' ' || c == '\t') && c != delimiter;
}

static kiln_status add_field(csv_parser *p, char *text)
{
    if (p->n_fields == p->fields_capacity) {
        int capacity = p->fields_capacity == 0 ? 16 : p->fields_capacity * 2;
        char **grown = kiln__realloc(p->ctx, p->fields, (size_t)capacity * sizeof *grown);
        if (grown == NULL)
            return kiln__error(p->ctx, KILN_ERR_NO_MEMORY, FN, "no memory for CSV fields");
        p->fields = grown;
        p->fields_capacity = capacity;
    }
    p->fields[p->n_fields++] = text;
    return KILN_OK;
}

/* Splits the line [s, e) into p->fields. */
static kiln_status split_line(csv_parser *p, const char *s, const char *e)
{
    size_t need = 2 * (size_t)(e - s) + 2; /* text plus a NUL per field, at most */
    if (need > p->scratch_capacity) {
        char *grown = kiln__realloc(p->ctx, p->scratch, need);
        if (grown == NULL)
            return kiln__error(p->ctx, KILN_ERR_NO_MEMORY, FN, "no memory for a CSV line");
        p->scratch = grown;
        p->scratch_capacity = need;
    }
    p->n_fields = 0;
    char *out = p->scratch;
    const char *pos = s;
    for (;;) {
        int column = p->n_fields + 1;
        char *start = out;
        while (pos < e && is_space(*pos, p->delimiter))
            pos++;
        if (pos < e && *pos == '"') {
            pos++;
            for (;;) {
                if (pos == e)
                    return kiln__error(p->ctx, KILN_ERR_CORRUPT, FN,
                                       "'%s' line %lld, column %d: the quoted field is not "
                                       "closed on this line (quoted fields cannot span lines)",
                                       p->path, (long long)p->line, column);
                if (*pos == '"' && pos + 1 < e && pos[1] == '"') {
                    *out++ = '"';
                    pos += 2;
                } else if (*pos == '"') {
                    pos++;
                    break;
                } else {
                    *out++ = *pos++;
                }
            }
            while (pos < e && is_space(*pos, p->delimiter))
                pos++;
            if (pos < e && *pos != p->delimiter)
                return kiln__error(p->ctx, KILN_ERR_CORRUPT, FN,
                                   "'%s' line %lld, column %d: unexpected '%c' after the "
                                   "closing quote (expected '%c' or the end of the line)",
                                   p->path, (long long)p->line, column, *pos, p->delimiter);
        } else {
            const char *begin = pos;
            while (pos < e && *pos != p->delimiter)
                pos++;
            const char *end = pos;
            while (end > begin && is_space(end[-1], p->delimiter))
                end--;
            memcpy(out, begin, (size_t)(end - begin));
            out += end - begin;
        }
        *out++ = '\0';
        kiln_status rc = add_field(p, start);
        if (rc != KILN_OK)
            return rc;
        if (pos >= e)
            return KILN_OK;
        pos++; /* the delimiter: another field follows, maybe empty */
    }
}

/* Finds the next non-blank line from *cursor; false at the end of the data. */
static bool next_line(csv_parser *p, const char **cursor, const char *end, const char **s,
                      const char **e)
{
    while (*cursor < end) {
        const char *start = *cursor;
        const char *nl = memchr(start, '\n', (size_t)(end - start));
        const char *stop = nl != NULL ? nl : end;
        *cursor = nl != NULL ? nl + 1 : end;
        p->line++;
        const char *last = stop;
        if (last > start && last[-1] == '\r')
            last--;
        bool blank = true;
        for (const char *c = start; c < last && blank; c++)
            blank = *c == ' ' || *c == '\t';
        if (!blank) {
            *s = start;
            *e = last;
            return true;
        }
    }
    return false;
}

static bool is_missing(const char *text)
{
    if (text[0] == '\0')
        return true;
    static const char *const WORDS[] = {"na", "n/a", "nan"};
    for (size_t w = 0; w < sizeof WORDS / sizeof WORDS[0]; w++) {
        const char *a = text, *b = WORDS[w];
        while (*a != '\0' && *b != '\0' && tolower((unsigned char)*a) == *b) {
            a++;
            b++;
        }
        if (*a == '\0' && *b == '\0')
            return true;
    }
    return false;
}

/* Parses a whole field as a finite number. */
static bool parse_number(const char *text, double *value)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || !isfinite(v))
        return false;
    *value = v;
    return true;
}

/* Resolves the label column against the header (or column count); -1 when there is none. */
static kiln_status find_label(csv_parser *p, const kiln_csv_options *o, char **names, int n_columns,
                              int64_t header_line, int *label)
{
    *label = -1;
    if (o->labels == KILN_LABELS_NONE)
        return KILN_OK;
    if (o->label_column != NULL) {
        if (!o->header)
            return kiln__error(p->ctx, KILN_ERR_INVALID_ARGUMENT, FN,
                               "label column '%s' is chosen by name but '%s' is read without a "
                               "header; give its index instead",
                               o->label_column, p->path);
        for (int c = 0; c < n_columns; c++) {
            if (strcmp(names[c], o->label_column) != 0)
                continue;
            if (*label >= 0)
                return kiln__error(p->ctx, KILN_ERR_CORRUPT, FN,
                                   "'%s' line %lld: label column '%s' appears twice (columns %d "
                                   "and %d); rename one",
                                   p->path, (long long)header_line, o->label_column, *label + 1,
                                   c + 1);
            *label = c;
        }
        if (*label < 0) {
            kiln__error(p->ctx, KILN_ERR_NOT_FOUND, FN,
                        "'%s' line %lld: no column is named '%s'; the columns are", p->path,
                        (long long)header_line, o->label_column);
            for (int c = 0; c < n_columns; c++)
                kiln__error_append(p->ctx, "%s '%s'", c > 0 ? "," : "", names[c]);
            return KILN_ERR_NOT_FOUND;
        }
        return KILN_OK;
    }
    int index = o->label_index < 0 ? n_columns + o->label_index : o->label_index;
    if (index < 0 || index >= n_columns)
        return kiln__error(p->ctx, KILN_ERR_INVALID_ARGUMENT, FN,
                           "label index %d is outside the %d columns of '%s' (line %lld)",
                           o->label_index, n_columns, p->path, (long long)header_line);
    *label = index;
    return KILN_OK;
}

/* Column names: the header's fields, or "column_<k>". */
static kiln_status make_names(csv_parser *p, bool header, int n_columns, char ***names)
{
    *names = kiln__calloc(p->ctx, (size_t)n_columns, sizeof(char *));
    if (*names == NULL)
        return kiln__error(p->ctx, KILN_ERR_NO_MEMORY, FN, "no memory for column names");
    for (int c = 0; c < n_columns; c++) {
        (*names)[c] =
            header ? kiln__strdup(p->ctx, p->fields[c]) : kiln__format(p->ctx, "column_%d", c + 1);
        if ((*names)[c] == NULL)
            return kiln__error(p->ctx, KILN_ERR_NO_MEMORY, FN, "no memory for column names");
    }
    return KILN_OK;
}

static kiln_status parse_row(csv_parser *p, kiln_dataset *ds, int64_t row, char **names, int label)
{
    float *features = ds->features + row * ds->n_features;
    int64_t f = 0;
    for (int c = 0; c < p->n_fields; c++) {
        const char *text = p->fields[c];
        double v = 0;
        if (c == label) {
            if (is_missing(text))
                return kiln__error(p->ctx, KILN_ERR_CORRUPT, FN,
                                   "'%s' line %lld, column %d ('%s'): the label is missing",
                                   p->path, (long long)p->line, c + 1, names[c]);
            if (ds->label_kind == KILN_LABELS_CLASS) {
                if (!parse_number(text, &v) || v < 0 || v >= INT32_MAX || v != floor(v))
                    return kiln__error(p->ctx, KILN_ERR_CORRUPT, FN,
                                       "'%s' line %lld, column %d ('%s'): expected a class index "
                                       "(an integer >= 0), got '%.40s'",
                                       p->path, (long long)p->line, c + 1, names[c], text);
                ds->classes[row] = (int32_t)v;
            } else {
                if (!parse_number(text, &v))
                    return kiln__error(p->ctx, KILN_ERR_CORRUPT, FN,
                                       "'%s' line %lld, column %d ('%s'): expected a finite "
                                       "number as the target, got '%.40s'",
                                       p->path, (long long)p->line, c + 1, names[c], text);
                ds->targets[row] = (float)v;
            }
            continue;
        }
        if (is_missing(text)) {
            features[f++] = NAN;
        } else if (parse_number(text, &v)) {
            features[f++] = (float)v;
        } else {
            return kiln__error(p->ctx, KILN_ERR_CORRUPT, FN,
                               "'%s' line %lld, column %d ('%s'): expected a finite number or "
                               "a missing value (empty, NA, N/A, NaN), got '%.40s'",
                               p->path, (long long)p->line, c + 1, names[c], text);
        }
    }
    return KILN_OK;
}

kiln_status kiln_dataset_read_csv(kiln_context *ctx, const char *path,
                                  const kiln_csv_options *options, kiln_dataset **out)
{
    kiln_status rc = KILN_OK;
    csv_parser p = {.ctx = ctx, .path = path};
    char *data = NULL, **names = NULL;
    int n_columns = 0;
    kiln_dataset *ds = NULL;
    kiln_csv_options o;
    if (out == NULL)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, FN, "out is NULL");
    *out = NULL;
    if (options != NULL)
        o = *options;
    else
        kiln_csv_options_init(&o);
    p.delimiter = o.delimiter != '\0' ? o.delimiter : ',';
    if (p.delimiter == '"' || p.delimiter == '\n' || p.delimiter == '\r' || p.delimiter == ' ')
        KILN_FAIL(ctx, KILN_ERR_INVALID_ARGUMENT,
                  "the delimiter cannot be a quote, space or "
                  "line break");
    if (o.labels != KILN_LABELS_NONE && o.labels != KILN_LABELS_CLASS &&
        o.labels != KILN_LABELS_TARGET)
        KILN_FAIL(ctx, KILN_ERR_INVALID_ARGUMENT, "labels must be NONE, CLASS or TARGET, got %d",
                  (int)o.labels);
    size_t n_bytes = 0;
    KILN_CHECK(kiln__read_file(ctx, FN, path, &data, &n_bytes));
    const char *cursor = data, *end = data + n_bytes, *s = NULL, *e = NULL;
    if (n_bytes >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
        cursor += 3;
    if (!next_line(&p, &cursor, end, &s, &e))
        KILN_FAIL(ctx, KILN_ERR_CORRUPT, "'%s' is empty", path);
    int64_t first_line = p.line;
    KILN_CHECK(split_line(&p, s, e));
    n_columns = p.n_fields;
    KILN_CHECK(make_names(&p, o.header, n_columns, &names));
    int label = -1;
    KILN_CHECK(find_label(&p, &o, names, n_columns, first_line, &label));
    int n_features = n_columns - (label >= 0 ? 1 : 0);
    if (n_features < 1)
        KILN_FAIL(ctx, KILN_ERR_CORRUPT, "'%s' line %lld: no feature columns besides the label",
                  path, (long long)first_line);
    if (o.header && !next_line(&p, &cursor, end, &s, &e))
        KILN_FAIL(ctx, KILN_ERR_CORRUPT, "'%s' has a header (line %lld) but no data rows", path,
                  (long long)first_line);
    /* Rows are at most the lines left: size the arrays once, then trim n. */
    int64_t capacity = 1;
    for (const char *c = s; c < end; c++)
        capacity += *c == '\n' ? 1 : 0;
    kiln_shape fshape = kiln_shape_of(1, (int64_t[]){n_features});
    kiln_shape lshape = kiln_shape_of(1, (int64_t[]){1});
    kiln_label_kind kind = label >= 0 ? o.labels : KILN_LABELS_NONE;
    KILN_CHECK(kiln__dataset_alloc(ctx, FN, path, capacity, &fshape, kind, &lshape, &ds));
    int64_t rows = 0;
    do {
        KILN_CHECK(split_line(&p, s, e));
        if (p.n_fields != n_columns)
            KILN_FAIL(ctx, KILN_ERR_CORRUPT,
                      "'%s' line %lld has %d fields, expected %d (as %s line %lld)", path,
                      (long long)p.line, p.n_fields, n_columns,
                      o.header ? "in the header on" : "on the first row,", (long long)first_line);
        KILN_CHECK(parse_row(&p, ds, rows, names, label));
        rows++;
    } while (next_line(&p, &cursor, end, &s, &e));
    ds->n = rows;
    kiln__dataset_count_classes(ds);
    /* The feature names are the column names without the label's. */
    ds->feature_names = kiln__calloc(ctx, (size_t)n_features, sizeof(char *));
    if (ds->feature_names == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "no memory for feature names");
    for (int c = 0, f = 0; c < n_columns; c++) {
        if (c == label) {
            ds->label_name = names[c];
        } else {
            ds->feature_names[f++] = names[c];
        }
        names[c] = NULL;
    }
    *out = ds;
    ds = NULL;
cleanup:
    kiln_dataset_destroy(ds);
    for (int c = 0; names != NULL && c < n_columns; c++)
        kiln__free(ctx, names[c]);
    kiln__free(ctx, names);
    kiln__free(ctx, p.fields);
    kiln__free(ctx, p.scratch);
    kiln__free(ctx, data);
    return rc;
}
