/*
 * The device's GEMM tuning table: which implementation runs each product shape, as measured by
 * kiln_device_tune_gemm (gemm_tune.c), kept in memory and in a text file in the cache
 * directory, plus the recording of the shapes a device runs (what `kiln tune --config` tunes).
 *
 * The file, "<cache dir>/<64 hex>.ktune", is keyed like a program binary (kiln__cache_key over
 * the gemm kernel's source and the device identity, with its own options string), so a new
 * driver or a changed kernel never reuses stale results. It is text, one product per line:
 *
 *     kiln-gemm-tuning 1
 *     # device 'NAME' on 'PLATFORM' (DRIVER)
 *     clblast-params cpu-wide
 *     gemm NT 128 256 784 1 312.5 kiln 14x2x16 packed
 *
 * `gemm` lines hold the transposes, m, n, k, batch, the GFLOP/s measured and the choice
 * (kiln__gemm_choice_name's form); `clblast-params` names the CLBlast parameter set tuning
 * chose (gemm_tune.c applies it when the table loads). A shape not in the table uses the entry
 * whose m, n and k fall in the same power-of-two classes (same transposes and batching), else
 * the device class's default (gemm.c).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device/gemm.h"

typedef struct entry {
    kiln_gemm_shape shape;
    kiln__gemm_choice choice;
    double gflops;
} entry;

struct kiln__gemm_table {
    char *path; /* NULL: cache disabled */
    entry *entries;
    size_t n_entries, capacity;
    char clblast_params[32]; /* "" for CLBlast's defaults */
    bool recording;
    kiln_gemm_shape *recorded;
    size_t n_recorded, recorded_capacity;
};

enum { TABLE_FORMAT = 1 };

/* The largest size of a shape's dimension that a tuning file or `kiln tune --shape` holds. */
#define SHAPE_MOST (1ull << 31)

bool kiln_gemm_shape_parse(const char *text, kiln_gemm_shape *out)
{
    if ((text[0] != 'N' && text[0] != 'T') || (text[1] != 'N' && text[1] != 'T') || text[2] != ':')
        return false;
    unsigned long long size[4] = {0, 0, 0, 1};
    const char *p = text + 3;
    int count = 0;
    while (count < 4) {
        char *end = NULL;
        if (*p < '1' || *p > '9') /* digits only: no sign, space or leading zero */
            return false;
        errno = 0;
        size[count++] = strtoull(p, &end, 10);
        if (errno != 0 || size[count - 1] > SHAPE_MOST)
            return false;
        p = end;
        if (*p == '\0')
            break;
        if (*p++ != 'x')
            return false;
    }
    if (count < 3 || *p != '\0')
        return false;
    *out = (kiln_gemm_shape){.transpose_a = text[0] == 'T',
                             .transpose_b = text[1] == 'T',
                             .m = size[0],
                             .n = size[1],
                             .k = size[2],
                             .batch = size[3]};
    return true;
}

static kiln_gemm_shape shape_of(const kiln__gemm *g)
{
    return (kiln_gemm_shape){.transpose_a = g->transpose_a,
                             .transpose_b = g->transpose_b,
                             .m = g->m,
                             .n = g->n,
                             .k = g->k,
                             .batch = g->batch == 0 ? 1 : g->batch};
}

static bool same_shape(const kiln_gemm_shape *a, const kiln_gemm_shape *b)
{
    return a->transpose_a == b->transpose_a && a->transpose_b == b->transpose_b && a->m == b->m &&
           a->n == b->n && a->k == b->k && a->batch == b->batch;
}

/* The power-of-two class of a size: 1 -> 0, 2 -> 1, 3-4 -> 2, 5-8 -> 3, ... */
static int size_class(size_t d)
{
    int c = 0;
    for (size_t v = d > 0 ? d - 1 : 0; v > 0; v >>= 1)
        c++;
    return c;
}

static bool same_class(const kiln_gemm_shape *a, const kiln_gemm_shape *b)
{
    return a->transpose_a == b->transpose_a && a->transpose_b == b->transpose_b &&
           (a->batch > 1) == (b->batch > 1) && size_class(a->m) == size_class(b->m) &&
           size_class(a->n) == size_class(b->n) && size_class(a->k) == size_class(b->k);
}

/* Grows the array *items (of *capacity elements of `size` bytes) to hold n + 1; false when
 * out of memory (the array is unchanged). */
static bool room_for_one(kiln_device *dev, void **items, size_t *capacity, size_t n, size_t size)
{
    if (n < *capacity)
        return true;
    size_t grown_capacity = *capacity == 0 ? 16 : 2 * *capacity;
    void *grown = kiln__realloc(dev->ctx, *items, grown_capacity * size);
    if (grown == NULL)
        return false;
    *items = grown;
    *capacity = grown_capacity;
    return true;
}

/* The device's table, created empty on first use; NULL when out of memory (logged). */
static kiln__gemm_table *table_of(kiln_device *dev)
{
    if (dev->gemm_table == NULL)
        dev->gemm_table = kiln__calloc(dev->ctx, 1, sizeof *dev->gemm_table);
    return dev->gemm_table;
}

bool kiln__gemm_table_find(const kiln_device *dev, const kiln__gemm *g, kiln__gemm_choice *out)
{
    const kiln__gemm_table *t = dev->gemm_table;
    if (t == NULL || t->n_entries == 0)
        return false;
    kiln_gemm_shape s = shape_of(g);
    const entry *near = NULL;
    for (size_t i = 0; i < t->n_entries; i++) {
        if (same_shape(&t->entries[i].shape, &s)) {
            *out = t->entries[i].choice;
            return true;
        }
        if (near == NULL && same_class(&t->entries[i].shape, &s))
            near = &t->entries[i];
    }
    if (near != NULL)
        *out = near->choice;
    return near != NULL;
}

kiln_status kiln__gemm_table_put(kiln_device *dev, const kiln_gemm_shape *shape,
                                 const kiln__gemm_choice *choice, double gflops)
{
    kiln__gemm_table *t = table_of(dev);
    if (t == NULL)
        return kiln__error(dev->ctx, KILN_ERR_NO_MEMORY, __func__, "out of memory");
    for (size_t i = 0; i < t->n_entries; i++) {
        if (same_shape(&t->entries[i].shape, shape)) {
            t->entries[i].choice = *choice;
            t->entries[i].gflops = gflops;
            return KILN_OK;
        }
    }
    if (!room_for_one(dev, (void **)&t->entries, &t->capacity, t->n_entries, sizeof(entry)))
        return kiln__error(dev->ctx, KILN_ERR_NO_MEMORY, __func__,
                           "out of memory for %zu GEMM tuning entries", t->n_entries + 1);
    t->entries[t->n_entries++] = (entry){.shape = *shape, .choice = *choice, .gflops = gflops};
    return KILN_OK;
}

kiln_status kiln__gemm_table_set_clblast_params(kiln_device *dev, const char *name)
{
    kiln__gemm_table *t = table_of(dev);
    if (t == NULL)
        return kiln__error(dev->ctx, KILN_ERR_NO_MEMORY, __func__, "out of memory");
    snprintf(t->clblast_params, sizeof t->clblast_params, "%s", name);
    return KILN_OK;
}

const char *kiln__gemm_table_clblast_params(const kiln_device *dev)
{
    return dev->gemm_table != NULL ? dev->gemm_table->clblast_params : "";
}

/* ---- the file ---- */

static char *tuning_path(kiln_device *dev)
{
    const kiln__kernel_source *src = NULL;
    for (size_t i = 0; i < kiln__n_kernel_sources; i++)
        if (strcmp(kiln__kernel_sources[i].name, "gemm") == 0)
            src = &kiln__kernel_sources[i];
    uint8_t key[KILN_SHA256_DIGEST_SIZE];
    kiln__cache_key(dev, src != NULL ? (const char *)src->bytes : "",
                    src != NULL ? src->n_bytes : 0, "kiln gemm tuning", key);
    char hex[KILN_SHA256_HEX_SIZE];
    kiln__sha256_hex(key, hex);
    return kiln__format(dev->ctx, "%s/%s.ktune", dev->cache_dir, hex);
}

/* Parses one line into the table; false when it is malformed. */
static bool parse_line(kiln_device *dev, char *line)
{
    line[strcspn(line, "\r\n")] = '\0';
    if (line[0] == '\0' || line[0] == '#')
        return true;
    char name[32];
    if (sscanf(line, "clblast-params %31s", name) == 1)
        return kiln__gemm_tune_clblast_params_known(name) &&
               kiln__gemm_table_set_clblast_params(dev, name) == KILN_OK;
    char ta = 0, tb = 0;
    unsigned long long m = 0, n = 0, k = 0, batch = 0;
    double gflops = 0;
    int used = 0;
    if (sscanf(line, "gemm %c%c %llu %llu %llu %llu %lf %n", &ta, &tb, &m, &n, &k, &batch, &gflops,
               &used) != 7 ||
        used == 0)
        return false;
    kiln__gemm_choice choice;
    const unsigned long long most = SHAPE_MOST;
    if ((ta != 'N' && ta != 'T') || (tb != 'N' && tb != 'T') || m == 0 || n == 0 || k == 0 ||
        batch == 0 || m > most || n > most || k > most || batch > most ||
        strchr(line, '-') != NULL || !kiln__gemm_choice_parse(line + used, &choice))
        return false;
    kiln_gemm_shape shape = {
        .transpose_a = ta == 'T', .transpose_b = tb == 'T', .m = m, .n = n, .k = k, .batch = batch};
    return kiln__gemm_table_put(dev, &shape, &choice, gflops) == KILN_OK;
}

void kiln__gemm_table_load(kiln_device *dev)
{
    if (dev->cache_dir == NULL)
        return;
    kiln__gemm_table *t = table_of(dev);
    if (t == NULL || (t->path = tuning_path(dev)) == NULL) {
        kiln__log(dev->ctx, KILN_LOG_WARN, "out of memory reading the GEMM tuning results");
        return;
    }
    FILE *f = fopen(t->path, "r");
    if (f == NULL) {
        if (errno != ENOENT)
            kiln__log(dev->ctx, KILN_LOG_WARN,
                      "GEMM tuning results %s unreadable (%s); using "
                      "the defaults",
                      t->path, strerror(errno));
        return;
    }
    char line[512];
    int number = 0, bad = 0;
    bool header = fgets(line, sizeof line, f) != NULL && strcmp(line, "kiln-gemm-tuning 1\n") == 0;
    while (header && bad == 0 && fgets(line, sizeof line, f) != NULL) {
        number++;
        if (!parse_line(dev, line))
            bad = number + 1;
    }
    fclose(f);
    if (!header || bad != 0) {
        if (header)
            kiln__log(dev->ctx, KILN_LOG_WARN,
                      "GEMM tuning results %s: line %d is malformed; ignoring the file (run "
                      "`kiln tune` again)",
                      t->path, bad);
        else
            kiln__log(dev->ctx, KILN_LOG_WARN,
                      "GEMM tuning results %s: not a kiln-gemm-tuning 1 file; ignoring it (run "
                      "`kiln tune` again)",
                      t->path);
        t->n_entries = 0;
        t->clblast_params[0] = '\0';
        return;
    }
    kiln__gemm_tune_apply_clblast_params(dev);
    kiln__log(dev->ctx, KILN_LOG_DEBUG, "GEMM tuning results: %zu shapes from %s", t->n_entries,
              t->path);
}

kiln_status kiln__gemm_table_save(kiln_device *dev)
{
    kiln_status rc = KILN_OK;
    kiln__gemm_table *t = dev->gemm_table;
    if (t == NULL || t->path == NULL)
        return KILN_OK;
    char *text = NULL;
    size_t length = 0;
    FILE *f = open_memstream(&text, &length);
    if (f == NULL)
        KILN_FAIL(dev->ctx, KILN_ERR_NO_MEMORY, "out of memory formatting %s", t->path);
    fprintf(f, "kiln-gemm-tuning %d\n# device '%s' on '%s' (%s)\n", TABLE_FORMAT, dev->info.name,
            dev->info.platform_name, dev->info.driver_version);
    if (t->clblast_params[0] != '\0')
        fprintf(f, "clblast-params %s\n", t->clblast_params);
    for (size_t i = 0; i < t->n_entries; i++) {
        const entry *e = &t->entries[i];
        char choice[48];
        kiln__gemm_choice_name(&e->choice, choice, sizeof choice);
        fprintf(f, "gemm %c%c %zu %zu %zu %zu %.1f %s\n", e->shape.transpose_a ? 'T' : 'N',
                e->shape.transpose_b ? 'T' : 'N', e->shape.m, e->shape.n, e->shape.k,
                e->shape.batch, e->gflops, choice);
    }
    if (fclose(f) != 0 || text == NULL)
        KILN_FAIL(dev->ctx, KILN_ERR_NO_MEMORY, "out of memory formatting %s", t->path);
    rc = kiln__cache_write_file(dev->ctx, dev->cache_dir, t->path, text, length, "", 0);
cleanup:
    free(text);
    return rc;
}

/* ---- recording ---- */

kiln_status kiln__gemm_table_record(kiln_device *dev, const kiln__gemm *g)
{
    kiln__gemm_table *t = dev->gemm_table;
    if (t == NULL || !t->recording)
        return KILN_OK;
    kiln_gemm_shape s = shape_of(g);
    for (size_t i = 0; i < t->n_recorded; i++)
        if (same_shape(&t->recorded[i], &s))
            return KILN_OK;
    if (!room_for_one(dev, (void **)&t->recorded, &t->recorded_capacity, t->n_recorded,
                      sizeof(kiln_gemm_shape)))
        return kiln__error(dev->ctx, KILN_ERR_NO_MEMORY, __func__,
                           "out of memory recording %zu GEMM shapes", t->n_recorded + 1);
    t->recorded[t->n_recorded++] = s;
    return KILN_OK;
}

kiln_status kiln_device_record_gemm_shapes(kiln_device *dev, bool on)
{
    kiln__gemm_table *t = table_of(dev);
    if (t == NULL)
        return kiln__error(dev->ctx, KILN_ERR_NO_MEMORY, __func__, "out of memory");
    if (on)
        t->n_recorded = 0;
    t->recording = on;
    return KILN_OK;
}

void kiln_device_get_gemm_shapes(const kiln_device *dev, const kiln_gemm_shape **shapes,
                                 size_t *n_shapes)
{
    const kiln__gemm_table *t = dev->gemm_table;
    *shapes = t != NULL ? t->recorded : NULL;
    *n_shapes = t != NULL ? t->n_recorded : 0;
}

void kiln_device_gemm_choice(kiln_device *dev, const kiln_gemm_shape *shape, char *out,
                             size_t capacity, bool *tuned)
{
    kiln__gemm g = {.transpose_a = shape->transpose_a,
                    .transpose_b = shape->transpose_b,
                    .m = shape->m,
                    .n = shape->n,
                    .k = shape->k,
                    .alpha = 1.0f,
                    .batch = shape->batch};
    kiln__gemm_choice c = kiln__gemm_choose(dev, &g, tuned);
    kiln__gemm_choice_name(&c, out, capacity);
}

const char *kiln_device_get_tuning_path(const kiln_device *dev)
{
    return dev->gemm_table != NULL ? dev->gemm_table->path : NULL;
}

void kiln__gemm_table_release(kiln_device *dev)
{
    kiln__gemm_table *t = dev->gemm_table;
    if (t == NULL)
        return;
    kiln__free(dev->ctx, t->path);
    kiln__free(dev->ctx, t->entries);
    kiln__free(dev->ctx, t->recorded);
    kiln__free(dev->ctx, t);
    dev->gemm_table = NULL;
}
