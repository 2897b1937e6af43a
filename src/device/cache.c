/*
 * The on-disk program-binary cache: where it lives, the key of an entry, and reading and
 * writing entries so that a crash or a disk error can never make Kiln trust a bad binary.
 *
 * An entry is `<64 hex digits of the key>.kpb`: a fixed header (magic, format, key, payload
 * length, payload SHA-256) and the driver's binary. Writes go to a temporary file in the same
 * directory, are flushed and synced, then renamed over the entry. Reads verify every header
 * field and the payload hash; anything off is reported as corrupt and the caller rebuilds.
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "core/atomic_file.h"
#include "device/device.h"

static const char MAGIC[8] = {'K', 'I', 'L', 'N', 'P', 'B', 'I', 'N'};
enum {
    HEADER_BYTES = 8 + 4 + 4 + KILN_SHA256_DIGEST_SIZE + 8 + KILN_SHA256_DIGEST_SIZE,
    /* No driver binary for Kiln's kernels comes near this; larger means corruption. */
    MAX_PAYLOAD_BYTES = 1 << 30,
};

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Each field is length-prefixed so that no two different field lists hash alike. */
static void hash_field(kiln__sha256 *h, const void *data, size_t n)
{
    uint8_t len[8];
    put_u64(len, (uint64_t)n);
    kiln__sha256_update(h, len, sizeof len);
    kiln__sha256_update(h, data, n);
}

void kiln__cache_key(const kiln_device *dev, const char *source, size_t n_source,
                     const char *options, uint8_t key[KILN_SHA256_DIGEST_SIZE])
{
    kiln__sha256 h;
    kiln__sha256_init(&h);
    uint8_t format[4];
    put_u32(format, KILN__CACHE_FORMAT);
    hash_field(&h, "kiln program cache", 18);
    hash_field(&h, format, sizeof format);
    hash_field(&h, source, n_source);
    hash_field(&h, options, strlen(options));
    hash_field(&h, dev->info.platform_name, strlen(dev->info.platform_name));
    hash_field(&h, dev->info.platform_version, strlen(dev->info.platform_version));
    hash_field(&h, dev->info.name, strlen(dev->info.name));
    hash_field(&h, dev->info.vendor, strlen(dev->info.vendor));
    hash_field(&h, dev->info.driver_version, strlen(dev->info.driver_version));
    kiln__sha256_final(&h, key);
}

char *kiln__cache_entry_path(kiln_context *ctx, const char *dir,
                             const uint8_t key[KILN_SHA256_DIGEST_SIZE])
{
    char hex[KILN_SHA256_HEX_SIZE];
    kiln__sha256_hex(key, hex);
    return kiln__format(ctx, "%s/%s.kpb", dir, hex);
}

kiln_status kiln_cache_get_dir(kiln_context *ctx, const char *override, char *out, size_t capacity)
{
    kiln_status rc = KILN_OK;
    int n = 0;
    const char *env = getenv("KILN_CACHE_DIR");
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    if (out == NULL || capacity == 0)
        return KILN_ERR_INVALID_ARGUMENT;
    if (override != NULL && override[0] != '\0')
        n = snprintf(out, capacity, "%s", override);
    else if (env != NULL && env[0] != '\0')
        n = snprintf(out, capacity, "%s", env);
    else if (xdg != NULL && xdg[0] == '/') /* the XDG spec ignores relative values */
        n = snprintf(out, capacity, "%s/kiln", xdg);
    else if (home != NULL && home[0] != '\0')
        n = snprintf(out, capacity, "%s/.cache/kiln", home);
    else
        KILN_FAIL(ctx, KILN_ERR_NOT_FOUND,
                  "no cache directory: none of KILN_CACHE_DIR, XDG_CACHE_HOME (absolute) or "
                  "HOME is set; set KILN_CACHE_DIR, or KILN_NO_CACHE=1 to run without a cache");
    if (n < 0 || (size_t)n >= capacity)
        KILN_FAIL(ctx, KILN_ERR_INVALID_ARGUMENT, "the cache directory path is too long (%d bytes)",
                  n);
    /* Trailing slashes would make entry paths "dir//x"; harmless but untidy in messages. */
    for (size_t len = strlen(out); len > 1 && out[len - 1] == '/'; len--)
        out[len - 1] = '\0';
cleanup:
    return rc;
}

kiln_status kiln__cache_resolve_dir(kiln_context *ctx, const char *override, bool disable,
                                    char **out)
{
    *out = NULL;
    if (disable)
        return KILN_OK;
    char path[4096];
    kiln_status rc = kiln_cache_get_dir(ctx, override, path, sizeof path);
    if (rc != KILN_OK) {
        kiln__log(ctx, KILN_LOG_WARN, "%s; running without the program-binary cache",
                  kiln_context_last_error(ctx));
        kiln_context_clear_error(ctx);
        return KILN_OK;
    }
    *out = kiln__strdup(ctx, path);
    if (*out == NULL)
        return kiln__error(ctx, KILN_ERR_NO_MEMORY, __func__, "out of memory");
    return KILN_OK;
}

/* mkdir -p: creates each missing component; an existing directory is fine. */
static int make_dirs(char *path)
{
    for (char *p = path + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int failed = mkdir(path, 0755) != 0 && errno != EEXIST;
        *p = '/';
        if (failed)
            return -1;
    }
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* Reads a whole entry file; KILN_ERR_NOT_FOUND when absent, KILN_ERR_CORRUPT when unreadable. */
static kiln_status read_entry(kiln_context *ctx, const char *path, uint8_t **out, size_t *out_n)
{
    kiln_status rc = KILN_OK;
    uint8_t *data = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        if (errno == ENOENT)
            return kiln__error(ctx, KILN_ERR_NOT_FOUND, __func__, "no cache entry %s", path);
        return kiln__error(ctx, KILN_ERR_CORRUPT, __func__, "cannot open cache entry %s: %s", path,
                           strerror(errno));
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode))
        KILN_FAIL(ctx, KILN_ERR_CORRUPT, "cache entry %s is not a regular file", path);
    if (st.st_size < HEADER_BYTES || st.st_size > (off_t)HEADER_BYTES + MAX_PAYLOAD_BYTES)
        KILN_FAIL(ctx, KILN_ERR_CORRUPT, "cache entry %s has an impossible size (%lld bytes)", path,
                  (long long)st.st_size);
    size_t n = (size_t)st.st_size;
    data = kiln__alloc(ctx, n);
    if (data == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory reading cache entry %s (%zu bytes)", path,
                  n);
    if (fread(data, 1, n, f) != n)
        KILN_FAIL(ctx, KILN_ERR_CORRUPT, "cache entry %s: short read", path);
    *out = data;
    *out_n = n;
    data = NULL;
cleanup:
    kiln__free(ctx, data);
    fclose(f);
    return rc;
}

kiln_status kiln__cache_load(kiln_device *dev, const uint8_t key[KILN_SHA256_DIGEST_SIZE],
                             const char *options, cl_program *out)
{
    kiln_status rc = KILN_OK;
    kiln_context *ctx = dev->ctx;
    uint8_t *data = NULL;
    size_t n = 0;
    cl_program program = NULL;
    char *path = kiln__cache_entry_path(ctx, dev->cache_dir, key);
    if (path == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory");
    KILN_CHECK(read_entry(ctx, path, &data, &n));
    if (memcmp(data, MAGIC, sizeof MAGIC) != 0)
        KILN_FAIL(ctx, KILN_ERR_CORRUPT, "cache entry %s: not a Kiln program binary", path);
    if (get_u32(data + 8) != KILN__CACHE_FORMAT)
        KILN_FAIL(ctx, KILN_ERR_CORRUPT, "cache entry %s: format %u, expected %u", path,
                  (unsigned)get_u32(data + 8), (unsigned)KILN__CACHE_FORMAT);
    if (memcmp(data + 16, key, KILN_SHA256_DIGEST_SIZE) != 0)
        KILN_FAIL(ctx, KILN_ERR_CORRUPT, "cache entry %s: stored key differs from its name", path);
    uint64_t n_payload = get_u64(data + 16 + KILN_SHA256_DIGEST_SIZE);
    if (n_payload != (uint64_t)(n - HEADER_BYTES))
        KILN_FAIL(ctx, KILN_ERR_CORRUPT,
                  "cache entry %s is truncated or padded: header says %llu payload bytes, file "
                  "has %zu",
                  path, (unsigned long long)n_payload, n - HEADER_BYTES);
    const uint8_t *payload = data + HEADER_BYTES;
    uint8_t digest[KILN_SHA256_DIGEST_SIZE];
    kiln__sha256_buffer(payload, (size_t)n_payload, digest);
    if (memcmp(digest, data + 16 + KILN_SHA256_DIGEST_SIZE + 8, sizeof digest) != 0)
        KILN_FAIL(ctx, KILN_ERR_CORRUPT, "cache entry %s: payload checksum mismatch", path);

    size_t n_binary = (size_t)n_payload;
    cl_int binary_status = CL_SUCCESS;
    cl_int err = CL_SUCCESS;
    program = clCreateProgramWithBinary(dev->cl_ctx, 1, &dev->device, &n_binary, &payload,
                                        &binary_status, &err);
    if (err != CL_SUCCESS || binary_status != CL_SUCCESS || program == NULL)
        KILN_FAIL(ctx, KILN_ERR_CORRUPT, "cache entry %s: the driver rejected the binary (%s)",
                  path, kiln__cl_error_name(err != CL_SUCCESS ? err : binary_status));
    err = clBuildProgram(program, 1, &dev->device, options, NULL, NULL);
    if (err != CL_SUCCESS)
        KILN_FAIL(ctx, KILN_ERR_CORRUPT, "cache entry %s: building the binary failed with %s", path,
                  kiln__cl_error_name(err));
    *out = program;
    program = NULL;
cleanup:
    if (program != NULL)
        clReleaseProgram(program);
    kiln__free(ctx, data);
    kiln__free(ctx, path);
    return rc;
}

kiln_status kiln__cache_write_file(kiln_context *ctx, const char *dir, const char *path,
                                   const void *head, size_t n_head, const void *body, size_t n_body)
{
    char *dirs = kiln__strdup(ctx, dir);
    if (dirs == NULL)
        return kiln__error(ctx, KILN_ERR_NO_MEMORY, __func__, "out of memory");
    int made = make_dirs(dirs);
    int e = errno; /* before the free, which may change it */
    kiln__free(ctx, dirs);
    if (made != 0)
        return kiln__error(ctx, KILN_ERR_IO, __func__, "cannot create cache directory %s: %s", dir,
                           strerror(e));
    kiln__atomic_file af;
    kiln_status rc = kiln__atomic_begin(&af, ctx, __func__, path);
    if (rc != KILN_OK)
        return rc;
    if (fwrite(head, 1, n_head, af.file) != n_head || fwrite(body, 1, n_body, af.file) != n_body) {
        rc = kiln__error(ctx, KILN_ERR_IO, __func__, "cannot write %s: %s", af.temp,
                         strerror(errno));
        kiln__atomic_abort(&af);
        return rc;
    }
    return kiln__atomic_commit(&af);
}

void kiln__cache_store(kiln_device *dev, const uint8_t key[KILN_SHA256_DIGEST_SIZE],
                       cl_program program)
{
    kiln_status rc = KILN_OK;
    kiln_context *ctx = dev->ctx;
    unsigned char *binary = NULL;
    char *path = kiln__cache_entry_path(ctx, dev->cache_dir, key);
    if (path == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory");
    size_t n_binary = 0;
    cl_int err =
        clGetProgramInfo(program, CL_PROGRAM_BINARY_SIZES, sizeof n_binary, &n_binary, NULL);
    if (err != CL_SUCCESS || n_binary == 0 || n_binary > MAX_PAYLOAD_BYTES)
        KILN_FAIL(ctx, KILN_ERR_OPENCL, "the driver offers no program binary (%s, %zu bytes)",
                  kiln__cl_error_name(err), n_binary);
    binary = kiln__alloc(ctx, n_binary);
    if (binary == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory reading a %zu-byte binary", n_binary);
    err = clGetProgramInfo(program, CL_PROGRAM_BINARIES, sizeof binary, &binary, NULL);
    if (err != CL_SUCCESS)
        KILN_FAIL(ctx, KILN_ERR_OPENCL, "clGetProgramInfo(CL_PROGRAM_BINARIES) failed with %s",
                  kiln__cl_error_name(err));
    uint8_t header[HEADER_BYTES];
    memcpy(header, MAGIC, sizeof MAGIC);
    put_u32(header + 8, KILN__CACHE_FORMAT);
    put_u32(header + 12, 0);
    memcpy(header + 16, key, KILN_SHA256_DIGEST_SIZE);
    put_u64(header + 16 + KILN_SHA256_DIGEST_SIZE, (uint64_t)n_binary);
    kiln__sha256_buffer(binary, n_binary, header + 16 + KILN_SHA256_DIGEST_SIZE + 8);
    KILN_CHECK(
        kiln__cache_write_file(ctx, dev->cache_dir, path, header, HEADER_BYTES, binary, n_binary));
    dev->cache_stats.writes++;
cleanup:
    if (rc != KILN_OK) {
        dev->cache_stats.write_failures++;
        kiln__log(ctx, KILN_LOG_WARN, "program-binary cache not updated: %s",
                  kiln_context_last_error(ctx));
        kiln_context_clear_error(ctx);
    }
    kiln__free(ctx, binary);
    kiln__free(ctx, path);
}

/* Kiln's files in a cache directory: "<64 hex>.kpb" program binaries (1), "<64 hex>.kdata"
 * prepared data (3), and the temporaries of an interrupted write of either or of GEMM tuning
 * results (2). Anything else, GEMM tuning results ("<64 hex>.ktune") included, is left alone. */
static int classify(const char *name)
{
    for (int i = 0; i < 2 * KILN_SHA256_DIGEST_SIZE; i++) {
        char c = name[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
    }
    const char *rest = name + 2 * KILN_SHA256_DIGEST_SIZE;
    if (strcmp(rest, ".kpb") == 0)
        return 1;
    if (strcmp(rest, ".kdata") == 0)
        return 3;
    if (strncmp(rest, ".kpb.tmp-", 9) == 0 || strncmp(rest, ".ktune.tmp-", 11) == 0 ||
        strncmp(rest, ".kdata.tmp-", 11) == 0)
        return 2;
    return 0;
}

/* Calls visit(user, path, kind, stat) for each of Kiln's regular files in `dir` (classify's
 * kinds); a directory that does not exist yet has none. Stops at the first failing visit. */
typedef kiln_status (*visit_fn)(kiln_context *ctx, void *user, const char *path, int kind,
                                const struct stat *st);

static kiln_status scan(kiln_context *ctx, const char *dir, visit_fn visit, void *user)
{
    kiln_status rc = KILN_OK;
    DIR *d = opendir(dir);
    if (d == NULL) {
        if (errno == ENOENT)
            return KILN_OK;
        return kiln__error(ctx, KILN_ERR_IO, __func__, "cannot read cache directory %s: %s", dir,
                           strerror(errno));
    }
    for (struct dirent *e = readdir(d); e != NULL && rc == KILN_OK; e = readdir(d)) {
        int kind = classify(e->d_name);
        if (kind == 0)
            continue;
        char *path = kiln__format(ctx, "%s/%s", dir, e->d_name);
        if (path == NULL)
            rc = kiln__error(ctx, KILN_ERR_NO_MEMORY, __func__, "out of memory");
        struct stat st;
        if (path != NULL && stat(path, &st) == 0 && S_ISREG(st.st_mode))
            rc = visit(ctx, user, path, kind, &st);
        kiln__free(ctx, path);
    }
    closedir(d);
    return rc;
}

static void count(kiln_cache_info *info, int kind, const struct stat *st)
{
    if (kind == 1) {
        info->n_entries++;
        info->n_bytes += (uint64_t)st->st_size;
    } else if (kind == 3) {
        info->n_data_entries++;
        info->n_data_bytes += (uint64_t)st->st_size;
    } else {
        info->n_stale_temps++;
    }
}

static kiln_status remove_file(kiln_context *ctx, const char *path)
{
    if (unlink(path) != 0)
        return kiln__error(ctx, KILN_ERR_IO, "kiln_cache", "cannot remove %s: %s", path,
                           strerror(errno));
    return KILN_OK;
}

static kiln_status visit_count(kiln_context *ctx, void *user, const char *path, int kind,
                               const struct stat *st)
{
    (void)ctx, (void)path;
    count(user, kind, st);
    return KILN_OK;
}

static kiln_status visit_remove(kiln_context *ctx, void *user, const char *path, int kind,
                                const struct stat *st)
{
    kiln_status rc = remove_file(ctx, path);
    if (rc == KILN_OK)
        count(user, kind, st);
    return rc;
}

kiln_status kiln_cache_get_info(kiln_context *ctx, const char *dir, kiln_cache_info *out)
{
    if (ctx == NULL || dir == NULL || out == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    memset(out, 0, sizeof *out);
    return scan(ctx, dir, visit_count, out);
}

kiln_status kiln_cache_clear(kiln_context *ctx, const char *dir, kiln_cache_info *out_removed)
{
    if (ctx == NULL || dir == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    kiln_cache_info removed = {0};
    kiln_status rc = scan(ctx, dir, visit_remove, &removed);
    if (out_removed != NULL)
        *out_removed = removed;
    return rc;
}

/* kiln_cache_trim's state: the prepared-data files seen, and what was removed. */
typedef struct trim_state {
    struct data_file {
        char *path;
        struct timespec used;
        off_t size;
    } * files;
    size_t n, capacity;
    time_t now;
    kiln_cache_info removed;
} trim_state;

static kiln_status visit_trim(kiln_context *ctx, void *user, const char *path, int kind,
                              const struct stat *st)
{
    trim_state *t = user;
    if (kind == 2) /* an interrupted write: a live one renews its time as it goes */
        return t->now - st->st_mtim.tv_sec > 3600 ? visit_remove(ctx, &t->removed, path, kind, st)
                                                  : KILN_OK;
    if (kind != 3)
        return KILN_OK;
    if (t->n == t->capacity) {
        size_t capacity = t->capacity == 0 ? 16 : 2 * t->capacity;
        struct data_file *grown = kiln__realloc(ctx, t->files, capacity * sizeof *grown);
        if (grown == NULL)
            return kiln__error(ctx, KILN_ERR_NO_MEMORY, "kiln_cache_trim", "out of memory");
        t->files = grown;
        t->capacity = capacity;
    }
    char *copy = kiln__strdup(ctx, path);
    if (copy == NULL)
        return kiln__error(ctx, KILN_ERR_NO_MEMORY, "kiln_cache_trim", "out of memory");
    t->files[t->n++] = (struct data_file){copy, st->st_mtim, st->st_size};
    return KILN_OK;
}

static int newest_first(const void *a, const void *b)
{
    const struct timespec *x = &((const struct data_file *)a)->used;
    const struct timespec *y = &((const struct data_file *)b)->used;
    if (x->tv_sec != y->tv_sec)
        return x->tv_sec < y->tv_sec ? 1 : -1;
    return (x->tv_nsec < y->tv_nsec) - (x->tv_nsec > y->tv_nsec);
}

kiln_status kiln_cache_trim(kiln_context *ctx, const char *dir, size_t keep_data,
                            kiln_cache_info *out_removed)
{
    if (ctx == NULL || dir == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    trim_state t = {.now = time(NULL)};
    kiln_status rc = scan(ctx, dir, visit_trim, &t);
    if (rc == KILN_OK && t.n > keep_data)
        qsort(t.files, t.n, sizeof *t.files, newest_first);
    for (size_t i = keep_data; rc == KILN_OK && i < t.n; i++) {
        struct stat st = {.st_size = t.files[i].size};
        rc = visit_remove(ctx, &t.removed, t.files[i].path, 3, &st);
    }
    for (size_t i = 0; i < t.n; i++)
        kiln__free(ctx, t.files[i].path);
    kiln__free(ctx, t.files);
    if (out_removed != NULL)
        *out_removed = t.removed;
    return rc;
}
