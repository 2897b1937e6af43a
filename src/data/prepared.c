/*
 * Prepared-data files (data.h): datasets written as they are in memory and mapped back.
 *
 * Layout: a text header, zero-padded to a multiple of 4096 bytes, then every array and name
 * at a 64-byte aligned offset from the start of the file. The header's lines are
 *   kiln-prepared-data 1 little
 *   set N NDIM D... KIND N_CLASSES LABEL_NDIM L... FEATURES CLASSES TARGETS NAME NAME_BYTES
 *       FEATURE_NAMES FEATURE_NAMES_BYTES LABEL_NAME LABEL_NAME_BYTES   (one line)
 *   array N VALUES NAME NAME_BYTES
 *   note AT BYTES
 *   end
 * with offsets in bytes (0 where an array is absent), floats and int32 in the writer's byte
 * order (only little-endian files are written or read), feature names as NUL-terminated
 * strings one after the other, and other names without terminator. Everything is checked on
 * opening, so a damaged or foreign file is refused with the reason instead of being used.
 */
#define _GNU_SOURCE /* dladdr */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/atomic_file.h"
#include "core/bytes.h"
#include "core/sha256.h"
#include "data/data_internal.h"

enum { PAGE = 4096, ALIGN = 64, LINE = 1024, MAX_HEADER = 1 << 20, MAX_ARRAYS = 512 };
static const char MAGIC[] = "kiln-prepared-data 1 little\n";

/* A mapped file shared by the datasets made from it; unmapped with the last reference. */
struct kiln__mapping {
    kiln_context *ctx;
    void *base;
    size_t size;
    long refs;
};

static void mapping_release(struct kiln__mapping *m)
{
    if (m == NULL || --m->refs > 0)
        return;
    if (m->base != NULL) /* NULL: the file was never mapped */
        munmap(m->base, m->size);
    kiln__free(m->ctx, m);
}

void kiln__dataset_release_mapping(kiln_dataset *ds)
{
    mapping_release(ds->mapping);
    ds->mapping = NULL;
}

/* One dataset as the header describes it; offsets are 0 when absent. */
typedef struct set_entry {
    int64_t n;
    kiln_shape feature_shape, label_shape;
    int kind;
    int64_t n_classes;
    uint64_t features, classes, targets, name, name_bytes, feature_names, feature_names_bytes,
        label_name, label_name_bytes;
} set_entry;

struct kiln_prepared {
    kiln_context *ctx;
    char *path;
    struct kiln__mapping *map;
    set_entry *sets;
    size_t n_sets;
    kiln_prepared_array *arrays;
    size_t n_arrays;
    char *note;
};

/* ---- writing ---- */

/* One piece of the data section. */
typedef struct blob {
    const void *bytes;
    uint64_t n;
    uint64_t at;
} blob;

typedef struct layout {
    blob *blobs;
    size_t n;
    uint64_t end; /* where the next blob may start */
} layout;

/* Places n bytes at the next aligned offset and returns it (0 for an empty blob). */
static uint64_t place(layout *l, const void *bytes, uint64_t n)
{
    if (n == 0)
        return 0;
    uint64_t at = (l->end + ALIGN - 1) / ALIGN * ALIGN;
    l->blobs[l->n++] = (blob){bytes, n, at};
    l->end = at + n;
    return at;
}

static int write_shape(char *out, size_t capacity, const kiln_shape *s)
{
    int used = snprintf(out, capacity, " %d", s->ndim);
    for (int d = 0; d < s->ndim && used > 0 && (size_t)used < capacity; d++)
        used += snprintf(out + used, capacity - (size_t)used, " %lld", (long long)s->dim[d]);
    return used;
}

static kiln_status check_write_args(kiln_context *ctx, const char *path,
                                    const kiln_dataset *const *sets, size_t n_sets,
                                    const kiln_prepared_array *arrays, size_t n_arrays)
{
    const char *fn = "kiln_prepared_write";
    if (path == NULL || sets == NULL || (n_arrays > 0 && arrays == NULL))
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn,
                           "path and sets must not be NULL, nor arrays when n_arrays > 0");
    if (n_sets < 1 || n_sets > KILN_DATA_MAX_SPLITS)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn, "%s: %zu datasets; 1 to %d fit",
                           path, n_sets, KILN_DATA_MAX_SPLITS);
    if (!kiln__host_is_little_endian())
        return kiln__error(ctx, KILN_ERR_UNSUPPORTED, fn,
                           "%s: prepared-data files are little-endian; this host is not", path);
    if (n_arrays > MAX_ARRAYS)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn, "%s: %zu arrays; up to %d fit", path,
                           n_arrays, MAX_ARRAYS);
    for (size_t i = 0; i < n_sets; i++) {
        const kiln_dataset *ds = sets[i];
        if (ds == NULL || ds->n < 1 || ds->features == NULL)
            return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn,
                               "%s: dataset %zu is NULL, empty or has no features", path, i);
        /* What the reader will check, so that a file written is a file it accepts. */
        bool classes = ds->label_kind == KILN_LABELS_CLASS,
             targets = ds->label_kind == KILN_LABELS_TARGET;
        bool ok = (unsigned)ds->label_kind <= KILN_LABELS_TARGET &&
                  classes == (ds->classes != NULL) && targets == (ds->targets != NULL) &&
                  (!classes || ds->n_classes >= 1) &&
                  (!targets || (ds->label_shape.ndim > 0 && ds->n_label_values > 0));
        for (int64_t r = 0; ok && classes && r < ds->n; r++)
            ok = ds->classes[r] >= 0 && ds->classes[r] < ds->n_classes;
        if (!ok)
            return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn,
                               "%s: dataset %zu ('%s'): its label kind, label arrays, class count "
                               "and class labels disagree",
                               path, i, ds->name);
    }
    for (size_t i = 0; i < n_arrays; i++) {
        const char *name = arrays[i].name;
        if (name == NULL || name[0] == '\0' || strchr(name, '\n') != NULL || arrays[i].n < 1 ||
            arrays[i].values == NULL)
            return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, fn,
                               "%s: array %zu needs a non-empty one-line name and at least one "
                               "value",
                               path, i);
    }
    return KILN_OK;
}

/* The feature names of ds as NUL-terminated strings one after the other (NULL when it has
 * none or on failure, which sets *failed). */
static char *join_names(const kiln_dataset *ds, uint64_t *n_bytes, bool *failed)
{
    *n_bytes = 0;
    if (ds->feature_names == NULL)
        return NULL;
    for (int64_t f = 0; f < ds->n_features; f++)
        *n_bytes += strlen(ds->feature_names[f]) + 1;
    char *joined = kiln__alloc(ds->ctx, (size_t)*n_bytes);
    if (joined == NULL) {
        *failed = true;
        return NULL;
    }
    char *at = joined;
    for (int64_t f = 0; f < ds->n_features; f++) {
        size_t n = strlen(ds->feature_names[f]) + 1;
        memcpy(at, ds->feature_names[f], n);
        at += n;
    }
    return joined;
}

kiln_status kiln_prepared_write(kiln_context *ctx, const char *path,
                                const kiln_dataset *const *sets, size_t n_sets,
                                const kiln_prepared_array *arrays, size_t n_arrays,
                                const char *note)
{
    if (ctx == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    kiln_status rc = check_write_args(ctx, path, sets, n_sets, arrays, n_arrays);
    if (rc != KILN_OK)
        return rc;
    size_t n_lines = 3 + n_sets + n_arrays;
    char *header = kiln__calloc(ctx, n_lines, LINE);
    char *joined[KILN_DATA_MAX_SPLITS] = {0};
    /* Up to 6 blobs a set, 2 an array, and the note, in file order. */
    layout l = {kiln__calloc(ctx, 6 * n_sets + 2 * n_arrays + 1, sizeof(blob)), 0,
                (n_lines * LINE + PAGE - 1) / PAGE * PAGE}; /* LINE bytes a header line */
    bool failed = header == NULL || l.blobs == NULL;
    kiln__atomic_file af = {.ctx = ctx};
    if (failed)
        goto no_memory;
    size_t used = (size_t)snprintf(header, LINE, "%s", MAGIC);
    for (size_t i = 0; i < n_sets; i++) {
        const kiln_dataset *ds = sets[i];
        uint64_t names_bytes = 0;
        joined[i] = join_names(ds, &names_bytes, &failed);
        if (failed)
            goto no_memory;
        uint64_t features = place(&l, ds->features, (uint64_t)ds->n * (uint64_t)ds->n_features * 4);
        uint64_t classes = ds->classes != NULL ? place(&l, ds->classes, (uint64_t)ds->n * 4) : 0;
        uint64_t targets =
            ds->targets != NULL
                ? place(&l, ds->targets, (uint64_t)ds->n * (uint64_t)ds->n_label_values * 4)
                : 0;
        uint64_t name_bytes = strlen(ds->name);
        uint64_t name = place(&l, ds->name, name_bytes);
        uint64_t names = place(&l, joined[i], names_bytes);
        uint64_t label_bytes = ds->label_name != NULL ? strlen(ds->label_name) : 0;
        uint64_t label = place(&l, ds->label_name, label_bytes);
        char *line = header + used;
        int n = snprintf(line, LINE, "set %lld", (long long)ds->n);
        n += write_shape(line + n, LINE - (size_t)n, &ds->feature_shape);
        n += snprintf(line + n, LINE - (size_t)n, " %d %lld", (int)ds->label_kind,
                      (long long)ds->n_classes);
        n += write_shape(line + n, LINE - (size_t)n, &ds->label_shape);
        n += snprintf(line + n, LINE - (size_t)n, " %llu %llu %llu %llu %llu %llu %llu %llu %llu\n",
                      (unsigned long long)features, (unsigned long long)classes,
                      (unsigned long long)targets, (unsigned long long)name,
                      (unsigned long long)name_bytes, (unsigned long long)names,
                      (unsigned long long)names_bytes, (unsigned long long)label,
                      (unsigned long long)label_bytes);
        used += (size_t)n;
    }
    for (size_t i = 0; i < n_arrays; i++) {
        uint64_t values = place(&l, arrays[i].values, (uint64_t)arrays[i].n * 4);
        uint64_t name_bytes = strlen(arrays[i].name);
        uint64_t name = place(&l, arrays[i].name, name_bytes);
        used += (size_t)snprintf(header + used, LINE, "array %lld %llu %llu %llu\n",
                                 (long long)arrays[i].n, (unsigned long long)values,
                                 (unsigned long long)name, (unsigned long long)name_bytes);
    }
    uint64_t note_bytes = note != NULL ? strlen(note) : 0;
    uint64_t note_at = place(&l, note, note_bytes);
    used += (size_t)snprintf(header + used, LINE, "note %llu %llu\nend\n",
                             (unsigned long long)note_at, (unsigned long long)note_bytes);

    rc = kiln__atomic_begin(&af, ctx, "kiln_prepared_write", path);
    if (rc != KILN_OK)
        goto done;
    /* The header, then zeros up to each blob and the blob. */
    static const char ZEROS[PAGE];
    uint64_t written = used;
    bool ok = fwrite(header, 1, used, af.file) == used;
    for (size_t b = 0; b < l.n && ok; b++) {
        const blob *x = &l.blobs[b];
        while (ok && written < x->at) {
            size_t pad = x->at - written < PAGE ? (size_t)(x->at - written) : PAGE;
            ok = fwrite(ZEROS, 1, pad, af.file) == pad;
            written += pad;
        }
        ok = ok && fwrite(x->bytes, 1, (size_t)x->n, af.file) == x->n;
        written += x->n;
    }
    if (!ok) {
        rc = kiln__error(ctx, KILN_ERR_IO, "kiln_prepared_write",
                         "cannot write %s (the temporary file for %s): %s", af.temp, path,
                         strerror(errno));
        kiln__atomic_abort(&af);
        goto done;
    }
    rc = kiln__atomic_commit(&af);
    goto done;
no_memory:
    rc = kiln__error(ctx, KILN_ERR_NO_MEMORY, "kiln_prepared_write", "out of memory writing %s",
                     path);
done:
    for (size_t i = 0; i < KILN_DATA_MAX_SPLITS; i++)
        kiln__free(ctx, joined[i]);
    kiln__free(ctx, l.blobs);
    kiln__free(ctx, header);
    return rc;
}

/* ---- reading ---- */

typedef struct parser {
    kiln_prepared *p;
    const char *text; /* the header */
    size_t size;      /* of the file */
    uint64_t data_start;
    int line;
} parser;

static kiln_status corrupt(parser *ps, const char *what)
{
    return kiln__error(ps->p->ctx, KILN_ERR_CORRUPT, "kiln_prepared_open",
                       "%s: not a usable prepared-data file: header line %d: %s", ps->p->path,
                       ps->line, what);
}

/* Reads one unsigned decimal number after a space; false at anything else. */
static bool read_number(const char **at, uint64_t *out)
{
    const char *s = *at;
    if (*s != ' ' || s[1] < '0' || s[1] > '9')
        return false;
    s++;
    uint64_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *at = s;
    *out = v;
    return true;
}

static bool read_shape(const char **at, kiln_shape *shape, int min_ndim)
{
    uint64_t ndim = 0;
    if (!read_number(at, &ndim) || ndim > KILN_MAX_DIMS - 1 || (int)ndim < min_ndim)
        return false;
    shape->ndim = (int)ndim;
    int64_t count = 1;
    for (int d = 0; d < shape->ndim; d++) {
        uint64_t v = 0;
        if (!read_number(at, &v) || v < 1 || v > (uint64_t)(INT32_MAX / count))
            return false;
        shape->dim[d] = (int64_t)v;
        count *= (int64_t)v;
    }
    return true;
}

/* Whether [at, at + n) lies in the data section, aligned when `aligned` (0, 0 is absent). */
static bool in_data(const parser *ps, uint64_t at, uint64_t n, bool aligned)
{
    if (at == 0)
        return n == 0;
    return at >= ps->data_start && (!aligned || at % ALIGN == 0) && n <= ps->size &&
           at <= ps->size - n;
}

static bool no_nul(const char *base, uint64_t at, uint64_t n)
{
    return n == 0 || memchr(base + at, '\0', (size_t)n) == NULL;
}

/* A malloc'd copy of n bytes at `at` with a terminator. */
static char *copy_text(kiln_context *ctx, const char *base, uint64_t at, uint64_t n)
{
    char *s = kiln__alloc(ctx, (size_t)n + 1);
    if (s != NULL) {
        if (n > 0)
            memcpy(s, base + at, (size_t)n);
        s[n] = '\0';
    }
    return s;
}

static kiln_status parse_set(parser *ps, const char *s, set_entry *e)
{
    const char *base = ps->p->map->base;
    uint64_t n = 0, kind = 0, n_classes = 0;
    uint64_t *fields[] = {&e->features,
                          &e->classes,
                          &e->targets,
                          &e->name,
                          &e->name_bytes,
                          &e->feature_names,
                          &e->feature_names_bytes,
                          &e->label_name,
                          &e->label_name_bytes};
    bool ok = read_number(&s, &n) && n >= 1 && n <= INT64_MAX / 4 &&
              read_shape(&s, &e->feature_shape, 1) && read_number(&s, &kind) &&
              read_number(&s, &n_classes) && read_shape(&s, &e->label_shape, 0);
    for (size_t i = 0; ok && i < sizeof fields / sizeof fields[0]; i++)
        ok = read_number(&s, fields[i]);
    if (!ok || *s != '\0')
        return corrupt(ps, "a set line needs a size, two shapes, a label kind, a class count "
                           "and nine offsets and sizes");
    e->n = (int64_t)n;
    e->kind = (int)kind;
    int64_t per = kiln_shape_count(&e->feature_shape);
    int64_t per_label = e->label_shape.ndim > 0 ? kiln_shape_count(&e->label_shape) : 0;
    if (kind > KILN_LABELS_TARGET || (kind == KILN_LABELS_CLASS) != (e->classes != 0) ||
        (kind == KILN_LABELS_TARGET) != (e->targets != 0) ||
        (kind == KILN_LABELS_TARGET) != (e->label_shape.ndim > 0) ||
        (kind == KILN_LABELS_CLASS && (n_classes < 1 || n_classes > INT32_MAX)))
        return corrupt(ps, "the label kind, class count and label arrays disagree");
    e->n_classes = (int64_t)n_classes;
    if ((uint64_t)e->n > UINT64_MAX / 4 / (uint64_t)per ||
        (per_label > 0 && (uint64_t)e->n > UINT64_MAX / 4 / (uint64_t)per_label))
        return corrupt(ps, "the arrays' sizes overflow");
    if (!in_data(ps, e->features, (uint64_t)e->n * (uint64_t)per * 4, true) || e->features == 0 ||
        !in_data(ps, e->classes, e->classes != 0 ? (uint64_t)e->n * 4 : 0, true) ||
        !in_data(ps, e->targets, e->targets != 0 ? (uint64_t)e->n * (uint64_t)per_label * 4 : 0,
                 true) ||
        !in_data(ps, e->name, e->name_bytes, false) ||
        !in_data(ps, e->feature_names, e->feature_names_bytes, false) ||
        !in_data(ps, e->label_name, e->label_name_bytes, false))
        return corrupt(ps, "an array or name lies outside the data section or is misaligned");
    if (!no_nul(base, e->name, e->name_bytes) || !no_nul(base, e->label_name, e->label_name_bytes))
        return corrupt(ps, "a name holds a NUL byte");
    if (e->feature_names != 0) {
        uint64_t nuls = 0;
        for (uint64_t i = 0; i < e->feature_names_bytes; i++)
            nuls += base[e->feature_names + i] == '\0';
        if (nuls != (uint64_t)per || base[e->feature_names + e->feature_names_bytes - 1] != '\0')
            return corrupt(ps, "the feature names are not one terminated string per feature");
    }
    if (e->classes != 0) {
        const int32_t *c = (const int32_t *)(const void *)(base + e->classes);
        for (int64_t i = 0; i < e->n; i++) {
            if (c[i] < 0 || c[i] >= e->n_classes)
                return corrupt(ps, "a class label lies outside [0, class count)");
        }
    }
    return KILN_OK;
}

static kiln_status parse_array(parser *ps, const char *s, kiln_prepared_array *a)
{
    const char *base = ps->p->map->base;
    uint64_t n = 0, values = 0, at = 0, bytes = 0;
    if (!read_number(&s, &n) || !read_number(&s, &values) || !read_number(&s, &at) ||
        !read_number(&s, &bytes) || *s != '\0')
        return corrupt(ps, "an array line needs a size, an offset and its name's offset and size");
    if (n < 1 || n > UINT64_MAX / 8 || values == 0 || !in_data(ps, values, n * 4, true) ||
        at == 0 || !in_data(ps, at, bytes, false) || !no_nul(base, at, bytes))
        return corrupt(ps, "an array or its name lies outside the data section");
    char *name = copy_text(ps->p->ctx, base, at, bytes);
    if (name == NULL)
        return kiln__error(ps->p->ctx, KILN_ERR_NO_MEMORY, "kiln_prepared_open",
                           "out of memory reading %s", ps->p->path);
    *a = (kiln_prepared_array){name, (const float *)(const void *)(base + values), (int64_t)n};
    return KILN_OK;
}

/* Parses the header lines after the magic, filling p's sets, arrays and note. */
static kiln_status parse_header(parser *ps, const char *end)
{
    kiln_prepared *p = ps->p;
    kiln_context *ctx = p->ctx;
    const char *base = p->map->base;
    size_t n_lines = 0;
    for (const char *c = ps->text; c < end; c++)
        n_lines += *c == '\n';
    p->sets = kiln__calloc(ctx, n_lines + 1, sizeof *p->sets);
    p->arrays = kiln__calloc(ctx, n_lines + 1, sizeof *p->arrays);
    if (p->sets == NULL || p->arrays == NULL)
        return kiln__error(ctx, KILN_ERR_NO_MEMORY, "kiln_prepared_open",
                           "out of memory reading %s", p->path);
    char line[LINE];
    bool have_note = false;
    ps->line = 1;
    for (const char *at = ps->text + strlen(MAGIC); at < end;) {
        const char *eol = memchr(at, '\n', (size_t)(end - at));
        ps->line++;
        if (eol == NULL || (size_t)(eol - at) >= sizeof line)
            return corrupt(ps, "a line is unterminated or too long");
        memcpy(line, at, (size_t)(eol - at));
        line[eol - at] = '\0';
        at = eol + 1;
        kiln_status rc = KILN_OK;
        if (strncmp(line, "set", 3) == 0 && !have_note) {
            if (p->n_sets == KILN_DATA_MAX_SPLITS)
                return corrupt(ps, "more datasets than fit");
            rc = parse_set(ps, line + 3, &p->sets[p->n_sets++]);
        } else if (strncmp(line, "array", 5) == 0 && !have_note) {
            rc = parse_array(ps, line + 5, &p->arrays[p->n_arrays]);
            p->n_arrays += rc == KILN_OK;
        } else if (strncmp(line, "note", 4) == 0 && !have_note) {
            const char *s = line + 4;
            uint64_t note = 0, bytes = 0;
            if (!read_number(&s, &note) || !read_number(&s, &bytes) || *s != '\0' ||
                !in_data(ps, note, bytes, false) || !no_nul(base, note, bytes))
                return corrupt(ps, "the note line needs an offset and a size in the data section");
            p->note = copy_text(ctx, base, note, bytes);
            if (p->note == NULL)
                return kiln__error(ctx, KILN_ERR_NO_MEMORY, "kiln_prepared_open",
                                   "out of memory reading %s", p->path);
            have_note = true;
        } else if (strcmp(line, "end") == 0 && have_note && at == end) {
            return p->n_sets > 0 ? KILN_OK : corrupt(ps, "the file holds no dataset");
        } else {
            return corrupt(ps, "expected 'set', 'array', 'note' (once, after them) or 'end'");
        }
        if (rc != KILN_OK)
            return rc;
    }
    return corrupt(ps, "the header has no 'end' line");
}

kiln_status kiln_prepared_open(kiln_context *ctx, const char *path, kiln_prepared **out)
{
    if (ctx == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    if (path == NULL || out == NULL)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, __func__,
                           "path and out must not be NULL");
    *out = NULL;
    kiln_status rc = KILN_OK;
    kiln_prepared *p = kiln__calloc(ctx, 1, sizeof *p);
    int fd = -1;
    if (p == NULL)
        return kiln__error(ctx, KILN_ERR_NO_MEMORY, __func__, "out of memory opening %s", path);
    p->ctx = ctx;
    p->path = kiln__strdup(ctx, path);
    p->map = kiln__calloc(ctx, 1, sizeof *p->map);
    if (p->path == NULL || p->map == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory opening %s", path);
    p->map->ctx = ctx;
    p->map->refs = 1;
    fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 && errno == ENOENT)
        KILN_FAIL(ctx, KILN_ERR_NOT_FOUND, "cannot open %s: %s", path, strerror(errno));
    if (fd < 0 || fstat(fd, &st) != 0)
        KILN_FAIL(ctx, KILN_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode) || st.st_size < PAGE || (uint64_t)st.st_size > SIZE_MAX)
        KILN_FAIL(ctx, KILN_ERR_CORRUPT,
                  "%s: not a usable prepared-data file: %lld bytes, not a regular file of at "
                  "least %d",
                  path, (long long)st.st_size, PAGE);
    /* Private and writable: callers may change a dataset's values; the file never sees it. */
    void *base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (base == MAP_FAILED)
        KILN_FAIL(ctx, KILN_ERR_IO, "cannot map %s: %s", path, strerror(errno));
    p->map->base = base;
    p->map->size = (size_t)st.st_size;
    const char *text = base;
    size_t limit = p->map->size < MAX_HEADER ? p->map->size : MAX_HEADER;
    const char *end = NULL; /* just past the header's "end" line */
    for (const char *c = text; end == NULL && c + 4 <= text + limit;) {
        if (memcmp(c, "end\n", 4) == 0)
            end = c + 4;
        const char *newline = memchr(c, '\n', (size_t)(text + limit - c));
        c = newline != NULL ? newline + 1 : text + limit;
    }
    parser ps = {.p = p, .text = text, .size = p->map->size, .line = 1};
    if (strncmp(text, MAGIC, strlen(MAGIC)) != 0)
        KILN_CHECK(corrupt(&ps, "it does not start with 'kiln-prepared-data 1 little' (another "
                                "version, byte order or kind of file)"));
    if (end == NULL)
        KILN_CHECK(corrupt(&ps, "no 'end' line in its first MiB"));
    ps.data_start = ((uint64_t)(end - text) + PAGE - 1) / PAGE * PAGE;
    KILN_CHECK(parse_header(&ps, end));
    *out = p;
    p = NULL;
cleanup:
    if (fd >= 0)
        close(fd);
    kiln_prepared_close(p);
    return rc;
}

void kiln_prepared_close(kiln_prepared *p)
{
    if (p == NULL)
        return;
    kiln_context *ctx = p->ctx;
    for (size_t i = 0; p->arrays != NULL && i < p->n_arrays; i++)
        kiln__free(ctx, (char *)p->arrays[i].name);
    kiln__free(ctx, p->arrays);
    kiln__free(ctx, p->sets);
    kiln__free(ctx, p->note);
    kiln__free(ctx, p->path);
    mapping_release(p->map);
    kiln__free(ctx, p);
}

size_t kiln_prepared_n_sets(const kiln_prepared *p)
{
    return p->n_sets;
}

size_t kiln_prepared_n_arrays(const kiln_prepared *p)
{
    return p->n_arrays;
}

const kiln_prepared_array *kiln_prepared_array_at(const kiln_prepared *p, size_t i)
{
    return i < p->n_arrays ? &p->arrays[i] : NULL;
}

const char *kiln_prepared_note(const kiln_prepared *p)
{
    return p->note != NULL ? p->note : "";
}

kiln_status kiln_prepared_get_set(kiln_prepared *p, size_t i, kiln_dataset **out)
{
    kiln_status rc = KILN_OK;
    kiln_context *ctx = p->ctx;
    kiln_dataset *ds = NULL;
    if (out == NULL || i >= p->n_sets)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, __func__,
                           "%s holds %zu datasets; asked for number %zu", p->path, p->n_sets, i);
    *out = NULL;
    const set_entry *e = &p->sets[i];
    char *base = p->map->base;
    ds = kiln__calloc(ctx, 1, sizeof *ds);
    if (ds == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory making a dataset of %s", p->path);
    ds->ctx = ctx;
    ds->mapping = p->map;
    p->map->refs++;
    ds->n = e->n;
    ds->feature_shape = e->feature_shape;
    ds->n_features = kiln_shape_count(&e->feature_shape);
    ds->features = (float *)(void *)(base + e->features);
    ds->label_kind = (kiln_label_kind)e->kind;
    if (e->classes != 0) {
        ds->classes = (int32_t *)(void *)(base + e->classes);
        ds->n_classes = (int32_t)e->n_classes;
    }
    if (e->targets != 0) {
        ds->targets = (float *)(void *)(base + e->targets);
        ds->label_shape = e->label_shape;
        ds->n_label_values = kiln_shape_count(&e->label_shape);
    }
    ds->name = copy_text(ctx, base, e->name, e->name_bytes);
    if (ds->name == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory making a dataset of %s", p->path);
    if (e->label_name != 0 &&
        (ds->label_name = copy_text(ctx, base, e->label_name, e->label_name_bytes)) == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory making a dataset of %s", p->path);
    if (e->feature_names != 0) {
        ds->feature_names = kiln__calloc(ctx, (size_t)ds->n_features, sizeof(char *));
        if (ds->feature_names == NULL)
            KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory making a dataset of %s", p->path);
        const char *name = base + e->feature_names;
        for (int64_t f = 0; f < ds->n_features; f++) {
            ds->feature_names[f] = kiln__strdup(ctx, name);
            if (ds->feature_names[f] == NULL)
                KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory making a dataset of %s", p->path);
            name += strlen(name) + 1;
        }
    }
    *out = ds;
    ds = NULL;
cleanup:
    kiln_dataset_destroy(ds);
    return rc;
}

/* ---- keys ---- */

static void hash_identity(kiln__sha256 *h, const char *path, const struct stat *st)
{
    char text[256];
    int n = snprintf(text, sizeof text, "%llu %llu %lld %lld.%09ld %lld.%09ld",
                     (unsigned long long)st->st_dev, (unsigned long long)st->st_ino,
                     (long long)st->st_size, (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec,
                     (long long)st->st_ctim.tv_sec, st->st_ctim.tv_nsec);
    uint64_t lengths[2] = {strlen(path), (uint64_t)n};
    kiln__sha256_update(h, lengths, sizeof lengths);
    kiln__sha256_update(h, path, lengths[0]);
    kiln__sha256_update(h, text, lengths[1]);
}

kiln_status kiln_prepared_key(kiln_context *ctx, const char *text, const char *const *files,
                              size_t n_files, char out[65])
{
    if (ctx == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    if (text == NULL || out == NULL || (n_files > 0 && files == NULL))
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, __func__,
                           "text, out and files (when n_files > 0) must not be NULL");
    kiln__sha256 h;
    kiln__sha256_init(&h);
    static const char DOMAIN[] = "kiln prepared data 1";
    kiln__sha256_update(&h, DOMAIN, sizeof DOMAIN);
    uint64_t length = strlen(text);
    kiln__sha256_update(&h, &length, sizeof length);
    kiln__sha256_update(&h, text, length);
    struct stat st;
    for (size_t i = 0; i < n_files; i++) {
        if (files[i] == NULL || stat(files[i], &st) != 0)
            return kiln__error(ctx, KILN_ERR_IO, __func__, "cannot examine %s: %s",
                               files[i] != NULL ? files[i] : "(null)", strerror(errno));
        hash_identity(&h, files[i], &st);
    }
    /* The code that prepares data: a shared libkiln's own file when the loader names one,
     * else the executable that runs, which holds the library when it is linked in (dladdr
     * would name it by argv[0], which may be relative or a bare name found through PATH). By
     * identity only: the same binary reached by two paths gives one key. */
    Dl_info info;
    const char *self = "/proc/self/exe";
    if (dladdr(MAGIC, &info) != 0 && info.dli_fname != NULL && info.dli_fname[0] == '/' &&
        strstr(info.dli_fname, ".so") != NULL)
        self = info.dli_fname;
    if (stat(self, &st) != 0)
        return kiln__error(ctx, KILN_ERR_IO, __func__, "cannot examine %s: %s", self,
                           strerror(errno));
    hash_identity(&h, "", &st);
    uint8_t digest[KILN_SHA256_DIGEST_SIZE];
    kiln__sha256_final(&h, digest);
    kiln__sha256_hex(digest, out);
    return KILN_OK;
}
