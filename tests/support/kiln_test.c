/*
 * Shared test helpers: device availability policy, failure-injecting allocator, temporary
 * directories and string assertions. See kiln_test.h.
 */
#define _POSIX_C_SOURCE 200809L

#include "support/kiln_test.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *kiln_test_device_spec(void)
{
    const char *spec = getenv("KILN_TEST_DEVICE");
    return spec != NULL && spec[0] != '\0' ? spec : "pocl";
}

static bool in_ci(void)
{
    const char *ci = getenv("CI");
    return ci != NULL && (strcmp(ci, "true") == 0 || strcmp(ci, "1") == 0);
}

void kiln_test_require_device(void)
{
    kiln_context *ctx = NULL;
    if (kiln_context_create(NULL, &ctx) != KILN_OK) {
        fprintf(stderr, "cannot create a context\n");
        exit(1);
    }
    size_t index = 0;
    kiln_status status = kiln_device_find(ctx, kiln_test_device_spec(), &index);
    if (status == KILN_OK) {
        kiln_context_destroy(ctx);
        return;
    }
    fprintf(stderr, "no OpenCL device for spec '%s': %s\n", kiln_test_device_spec(),
            kiln_context_last_error(ctx));
    kiln_context_destroy(ctx);
    if (in_ci()) {
        fprintf(stderr, "CI=true: a missing OpenCL device is a failure, not a skip\n");
        exit(1);
    }
    exit(KILN_TEST_SKIP);
}

static void log_to_stderr(kiln_log_level level, const char *message, void *user)
{
    (void)user;
    fprintf(stderr, "[kiln %d] %s\n", (int)level, message);
}

kiln_context *kiln_test_context(void)
{
    kiln_context_options options = {.log = log_to_stderr, .log_level = KILN_LOG_WARN};
    kiln_context *ctx = NULL;
    assert_int_equal(kiln_context_create(&options, &ctx), KILN_OK);
    return ctx;
}

kiln_device *kiln_test_open_device(kiln_context *ctx, const char *cache_dir)
{
    kiln_device_options options = {.spec = kiln_test_device_spec(),
                                   .cache_dir = cache_dir,
                                   .disable_cache = cache_dir == NULL};
    kiln_device *dev = NULL;
    kiln_status status = kiln_device_create(ctx, &options, &dev);
    if (status != KILN_OK)
        fail_msg("opening device '%s': %s", options.spec, kiln_context_last_error(ctx));
    return dev;
}

/* Spends one unit of the budget; false when the request must fail. */
static bool take_budget(kiln_test_allocator *a)
{
    if (a->budget == 0) {
        a->failures++;
        return false;
    }
    if (a->budget > 0)
        a->budget--;
    return true;
}

static void *injected_alloc(size_t n, void *user)
{
    kiln_test_allocator *a = user;
    if (!take_budget(a))
        return NULL;
    void *p = malloc(n);
    if (p != NULL)
        a->live++;
    return p;
}

static void *injected_realloc(void *pointer, size_t n, void *user)
{
    kiln_test_allocator *a = user;
    if (!take_budget(a))
        return NULL;
    void *p = realloc(pointer, n);
    if (p != NULL && pointer == NULL)
        a->live++;
    return p;
}

static void injected_free(void *pointer, void *user)
{
    kiln_test_allocator *a = user;
    if (pointer != NULL)
        a->live--;
    free(pointer);
}

void kiln_test_allocator_init(kiln_test_allocator *a, long budget)
{
    a->allocator.alloc = injected_alloc;
    a->allocator.realloc = injected_realloc;
    a->allocator.free = injected_free;
    a->allocator.user = a;
    a->budget = budget;
    a->live = 0;
    a->failures = 0;
}

kiln_context *kiln_test_counted_context(kiln_test_allocator *a)
{
    kiln_test_allocator_init(a, -1);
    kiln_context_options options = {.allocator = &a->allocator};
    kiln_context *ctx = NULL;
    assert_int_equal(kiln_context_create(&options, &ctx), KILN_OK);
    return ctx;
}

bool kiln_test_oom_round_done(const kiln_test_allocator *a, kiln_status rc)
{
    assert_int_equal(a->live, 0);
    if (rc == KILN_OK)
        return true;
    assert_int_equal(rc, KILN_ERR_NO_MEMORY);
    return false;
}

char *kiln_test_make_temp_dir(const char *prefix)
{
    const char *base = getenv("KILN_TEST_TMP");
    if (base == NULL || base[0] == '\0')
        base = "/tmp";
    mkdir(base, 0755);
    size_t n = strlen(base) + strlen(prefix) + 16;
    char *path = malloc(n);
    assert_non_null(path);
    snprintf(path, n, "%s/%s-XXXXXX", base, prefix);
    if (mkdtemp(path) == NULL)
        fail_msg("mkdtemp(%s): %s", path, strerror(errno));
    return path;
}

char *kiln_test_path_in(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    assert_non_null(path);
    snprintf(path, n, "%s/%s", dir, name);
    return path;
}

unsigned char *kiln_test_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open %s: %s", path, strerror(errno));
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    assert_true(size >= 0);
    assert_int_equal(fseek(f, 0, SEEK_SET), 0);
    unsigned char *data = malloc((size_t)size + 1);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    data[size] = '\0';
    *n = (size_t)size;
    return data;
}

void kiln_test_write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        fail_msg("cannot create %s: %s", path, strerror(errno));
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

void kiln_test_remove_dir(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return;
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char child[4096];
        snprintf(child, sizeof child, "%s/%s", path, e->d_name);
        unlink(child);
    }
    closedir(d);
    rmdir(path);
}

int kiln_test_count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d))
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

void kiln_test_assert_contains(const char *text, const char *needle, const char *file, int line)
{
    if (text == NULL || strstr(text, needle) == NULL) {
        fprintf(stderr, "%s:%d: expected to find \"%s\" in:\n%s\n", file, line, needle,
                text != NULL ? text : "(null)");
        _fail(file, line);
    }
}
