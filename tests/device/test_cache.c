/*
 * The on-disk program-binary cache:
 * - miss then hit: the first build compiles and writes one entry, the next device loads it;
 * - proof that a hit really runs the cached binary: an entry holding a *different* program
 *   (fill writing value + 1) under the real source's key makes the real kernel misbehave;
 * - corrupt entries (flipped payload byte, truncation, garbage, wrong key) are rebuilt and
 *   replaced by a valid entry;
 * - different build options give different entries; KILN_NO_CACHE=1 disables the cache;
 * - `clear` removes Kiln's entries and temporaries and nothing else;
 * - `trim` keeps the newest prepared-data files and removes the rest and stale temporaries.
 */
#define _POSIX_C_SOURCE 200809L

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "device/device.h"
#include "support/kiln_test.h"

static const char *const FILL_WRONG =
    "__kernel void fill_fwd(__global float *y, const float value, const uint n)\n"
    "{ const uint i = (uint)get_global_id(0); if (i < n) y[i] = value + 1.0f; }\n"
    "__kernel void copy_fwd(__global const float *x, __global float *y, const uint n)\n"
    "{ const uint i = (uint)get_global_id(0); if (i < n) y[i] = x[i]; }\n";

typedef struct fixture {
    kiln_context *ctx;
    char *dir;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->ctx = kiln_test_context();
    f->dir = kiln_test_make_temp_dir("kiln-cache-test");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    kiln_test_remove_dir(f->dir);
    free(f->dir);
    kiln_context_destroy(f->ctx);
    free(f);
    return 0;
}

/* Opens a device on the fixture's cache, builds "fill" and returns its origin and stats. */
static kiln_program_origin prepare_fill(fixture *f, kiln_cache_stats *stats)
{
    kiln_device *dev = kiln_test_open_device(f->ctx, f->dir);
    kiln_program_origin origin = KILN_PROGRAM_IN_MEMORY;
    if (kiln_device_prepare(dev, "fill", &origin) != KILN_OK)
        fail_msg("%s", kiln_context_last_error(f->ctx));
    kiln_device_get_cache_stats(dev, stats);
    kiln_device_destroy(dev);
    return origin;
}

/* Path of the cache entry for the embedded "fill" source on the test device. */
static char *fill_entry_path(fixture *f, const char *source)
{
    kiln_device *dev = kiln_test_open_device(f->ctx, f->dir);
    size_t i = 0;
    while (strcmp(kiln__kernel_sources[i].name, "fill") != 0)
        i++;
    if (source == NULL)
        source = (const char *)kiln__kernel_sources[i].bytes;
    uint8_t key[KILN_SHA256_DIGEST_SIZE];
    kiln__cache_key(dev, source, strlen(source), kiln_device_get_build_options(dev), key);
    char *path = kiln__cache_entry_path(f->ctx, f->dir, key);
    char *copy = strdup(path);
    kiln__free(f->ctx, path);
    kiln_device_destroy(dev);
    return copy;
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void test_miss_then_hit(void **state)
{
    fixture *f = *state;
    kiln_cache_stats stats;
    assert_int_equal(prepare_fill(f, &stats), KILN_PROGRAM_FROM_SOURCE);
    assert_int_equal(stats.misses, 1);
    assert_int_equal(stats.writes, 1);
    assert_int_equal(stats.hits, 0);
    char *path = fill_entry_path(f, NULL);
    assert_true(file_size(path) > 88);
    kiln_cache_info info;
    assert_int_equal(kiln_cache_get_info(f->ctx, f->dir, &info), KILN_OK);
    assert_int_equal(info.n_entries, 1);
    assert_int_equal(info.n_stale_temps, 0);
    assert_int_equal(info.n_bytes, (uint64_t)file_size(path));

    assert_int_equal(prepare_fill(f, &stats), KILN_PROGRAM_FROM_CACHE);
    assert_int_equal(stats.hits, 1);
    assert_int_equal(stats.misses, 0);
    assert_int_equal(stats.writes, 0);
    free(path);
}

/* Runs fill_fwd(value = 2) over 5 elements on a device using the fixture's cache. */
static float run_fill(fixture *f, kiln_program_origin *origin)
{
    kiln_device *dev = kiln_test_open_device(f->ctx, f->dir);
    assert_int_equal(kiln_device_prepare(dev, "fill", origin), KILN_OK);
    kiln_buffer *y = NULL;
    assert_int_equal(kiln_buffer_create(dev, 5 * sizeof(float), "y", &y), KILN_OK);
    size_t global = 5;
    kiln__arg args[] = {KILN__ARG_BUF(y), KILN__ARG_FLOAT(2.0f), KILN__ARG_UINT(5)};
    assert_int_equal(kiln__launch(dev, "fill", "fill_fwd", args, 3, 1, &global, NULL), KILN_OK);
    float out[5];
    assert_int_equal(kiln_buffer_read(y, 0, out, sizeof out), KILN_OK);
    for (int i = 1; i < 5; i++)
        assert_true(out[i] == out[0]);
    kiln_buffer_destroy(y);
    kiln_device_destroy(dev);
    return out[0];
}

static void test_hit_runs_cached_binary(void **state)
{
    fixture *f = *state;
    /* Cache a binary of FILL_WRONG, then move it under the real fill source's key. */
    kiln_device *dev = kiln_test_open_device(f->ctx, f->dir);
    cl_program program = NULL;
    assert_int_equal(kiln__program_build(dev, "fill_wrong", FILL_WRONG, strlen(FILL_WRONG), NULL,
                                         &program, NULL),
                     KILN_OK);
    clReleaseProgram(program);
    kiln_device_destroy(dev);
    char *wrong_path = fill_entry_path(f, FILL_WRONG);
    char *real_path = fill_entry_path(f, NULL);
    size_t n = 0;
    unsigned char *entry = kiln_test_read_file(wrong_path, &n);
    assert_true(n > 0);
    unsigned char *real = NULL;
    size_t n_real = 0;
    real = kiln_test_read_file(real_path, &n_real); /* written by the previous test */
    assert_true(n_real > 0);
    memcpy(entry + 16, real + 16, KILN_SHA256_DIGEST_SIZE); /* the key field */
    kiln_test_write_file(real_path, entry, n);

    kiln_program_origin origin = KILN_PROGRAM_IN_MEMORY;
    float got = run_fill(f, &origin);
    assert_int_equal(origin, KILN_PROGRAM_FROM_CACHE);
    assert_true(got == 3.0f); /* the cached (wrong) binary ran, not a fresh compile */

    /* Restore the genuine entry; the real kernel is back. */
    kiln_test_write_file(real_path, real, n_real);
    assert_true(run_fill(f, &origin) == 2.0f);
    assert_int_equal(origin, KILN_PROGRAM_FROM_CACHE);
    unlink(wrong_path);
    free(entry);
    free(real);
    free(wrong_path);
    free(real_path);
}

typedef enum damage { FLIP_PAYLOAD, TRUNCATE, GARBAGE, WRONG_KEY, EMPTY } damage;

static void test_corrupt_entries_rebuilt(void **state)
{
    fixture *f = *state;
    char *path = fill_entry_path(f, NULL);
    kiln_cache_stats stats;
    prepare_fill(f, &stats); /* make sure a valid entry exists */
    for (int d = FLIP_PAYLOAD; d <= EMPTY; d++) {
        size_t n = 0;
        unsigned char *data = kiln_test_read_file(path, &n);
        assert_true(n > 0);
        switch ((damage)d) {
        case FLIP_PAYLOAD:
            data[n / 2 + 44] ^= 0x5a;
            kiln_test_write_file(path, data, n);
            break;
        case TRUNCATE:
            kiln_test_write_file(path, data, n / 2);
            break;
        case GARBAGE:
            kiln_test_write_file(path, (const unsigned char *)"not a binary", 12);
            break;
        case WRONG_KEY:
            data[20] ^= 0x01;
            kiln_test_write_file(path, data, n);
            break;
        case EMPTY:
            kiln_test_write_file(path, data, 0);
            break;
        }
        free(data);
        kiln_program_origin origin = prepare_fill(f, &stats);
        if (origin != KILN_PROGRAM_FROM_SOURCE || stats.corrupt != 1 || stats.writes != 1)
            fail_msg("damage %d: origin %d, corrupt %llu, writes %llu", d, origin,
                     (unsigned long long)stats.corrupt, (unsigned long long)stats.writes);
        /* The rebuilt entry is valid again. */
        assert_int_equal(prepare_fill(f, &stats), KILN_PROGRAM_FROM_CACHE);
        assert_int_equal(stats.corrupt, 0);
    }
    free(path);
}

static void test_options_key_and_disable(void **state)
{
    fixture *f = *state;
    kiln_device *dev = kiln_test_open_device(f->ctx, f->dir);
    const char *src = "__kernel void k(__global float *y) { y[0] = VALUE; }";
    cl_program p1 = NULL, p2 = NULL;
    kiln_cache_info before, after;
    assert_int_equal(kiln_cache_get_info(f->ctx, f->dir, &before), KILN_OK);
    assert_int_equal(kiln__program_build(dev, "k", src, strlen(src), "-DVALUE=1.0f", &p1, NULL),
                     KILN_OK);
    assert_int_equal(kiln__program_build(dev, "k", src, strlen(src), "-DVALUE=2.0f", &p2, NULL),
                     KILN_OK);
    assert_int_equal(kiln_cache_get_info(f->ctx, f->dir, &after), KILN_OK);
    assert_int_equal(after.n_entries, before.n_entries + 2);
    clReleaseProgram(p1);
    clReleaseProgram(p2);
    kiln_device_destroy(dev);

    setenv("KILN_NO_CACHE", "1", 1);
    kiln_device_options options = {.spec = kiln_test_device_spec(), .cache_dir = f->dir};
    assert_int_equal(kiln_device_create(f->ctx, &options, &dev), KILN_OK);
    assert_null(kiln_device_get_cache_dir(dev));
    kiln_program_origin origin = KILN_PROGRAM_IN_MEMORY;
    assert_int_equal(kiln_device_prepare(dev, "fill", &origin), KILN_OK);
    assert_int_equal(origin, KILN_PROGRAM_FROM_SOURCE);
    kiln_device_destroy(dev);
    unsetenv("KILN_NO_CACHE");
}

static void test_clear(void **state)
{
    fixture *f = *state;
    char *path = fill_entry_path(f, NULL);
    char temp[4200], tune_temp[4400], tuned[4200], foreign[4200], data[4200], data_temp[4400];
    snprintf(temp, sizeof temp, "%s.tmp-abc123", path);
    /* Prepared data (<key>.kdata) are entries of their own; so are their temporaries. */
    snprintf(data, sizeof data, "%.*s.kdata", (int)(strlen(path) - 4), path);
    snprintf(data_temp, sizeof data_temp, "%s.tmp-77-1", data);
    kiln_test_write_file(data, (const unsigned char *)"prepared", 8);
    kiln_test_write_file(data_temp, (const unsigned char *)"partial", 7);
    /* GEMM tuning results (<key>.ktune) are kept; their interrupted writes are temporaries. */
    snprintf(tuned, sizeof tuned, "%.*s.ktune", (int)(strlen(path) - 4), path);
    snprintf(tune_temp, sizeof tune_temp, "%s.tmp-def456", tuned);
    snprintf(foreign, sizeof foreign, "%s/notes.txt", f->dir);
    kiln_test_write_file(temp, (const unsigned char *)"partial", 7);
    kiln_test_write_file(tuned, (const unsigned char *)"kiln-gemm-tuning 1\n", 19);
    kiln_test_write_file(tune_temp, (const unsigned char *)"partial", 7);
    kiln_test_write_file(foreign, (const unsigned char *)"user file", 9);
    kiln_cache_info info;
    assert_int_equal(kiln_cache_get_info(f->ctx, f->dir, &info), KILN_OK);
    assert_int_equal(info.n_stale_temps, 3);
    assert_int_equal(info.n_data_entries, 1);
    assert_int_equal(info.n_data_bytes, 8);
    size_t entries = info.n_entries;
    assert_true(entries >= 1);
    kiln_cache_info removed;
    assert_int_equal(kiln_cache_clear(f->ctx, f->dir, &removed), KILN_OK);
    assert_int_equal(removed.n_entries, entries);
    assert_int_equal(removed.n_stale_temps, 3);
    assert_int_equal(removed.n_data_entries, 1);
    assert_int_equal(kiln_cache_get_info(f->ctx, f->dir, &info), KILN_OK);
    assert_int_equal(info.n_entries, 0);
    assert_int_equal(file_size(foreign), 9); /* not ours: untouched */
    assert_int_equal(file_size(tuned), 19);  /* tuning results: kept */
    assert_int_equal(file_size(tune_temp), -1);
    assert_int_equal(file_size(path), -1);
    assert_int_equal(file_size(data), -1);
    assert_int_equal(file_size(data_temp), -1);
    /* A directory that does not exist yet is an empty cache, not an error. */
    char missing[4200];
    snprintf(missing, sizeof missing, "%s/never-created", f->dir);
    assert_int_equal(kiln_cache_get_info(f->ctx, missing, &info), KILN_OK);
    assert_int_equal(info.n_entries, 0);
    free(path);
}

/* Sets path's modification time to `age` seconds ago. */
static void age_file(const char *path, long age)
{
    struct timespec times[2];
    clock_gettime(CLOCK_REALTIME, &times[0]);
    times[0].tv_sec -= age;
    times[1] = times[0];
    assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
}

/* Trimming keeps the newest prepared-data files and fresh temporaries, removes older data
 * files and temporaries untouched for over an hour, and leaves binaries, tuning results and
 * foreign files alone. */
static void test_trim(void **state)
{
    fixture *f = *state;
    char data[6][4300], old_temp[4400], new_temp[4400], tuned[4300], binary[4300], foreign[4300];
    for (int i = 0; i < 6; i++) {
        snprintf(data[i], sizeof data[i], "%s/%064x.kdata", f->dir, i);
        kiln_test_write_file(data[i], (const unsigned char *)"prepared", 8);
        age_file(data[i], 100 * (6 - i)); /* data[5] is the newest */
    }
    snprintf(old_temp, sizeof old_temp, "%s.tmp-1-1", data[0]);
    snprintf(new_temp, sizeof new_temp, "%s.tmp-1-2", data[1]);
    snprintf(tuned, sizeof tuned, "%s/%064x.ktune", f->dir, 7);
    snprintf(binary, sizeof binary, "%s/%064x.kpb", f->dir, 8);
    snprintf(foreign, sizeof foreign, "%s/notes.txt", f->dir);
    const char *others[] = {old_temp, new_temp, tuned, binary, foreign};
    for (int i = 0; i < 5; i++)
        kiln_test_write_file(others[i], (const unsigned char *)"x", 1);
    age_file(old_temp, 2 * 3600);
    age_file(new_temp, 60);
    age_file(binary, 5 * 3600);
    kiln_cache_info removed;
    assert_int_equal(kiln_cache_trim(f->ctx, f->dir, 4, &removed), KILN_OK);
    assert_int_equal(removed.n_data_entries, 2);
    assert_int_equal(removed.n_data_bytes, 16);
    assert_int_equal(removed.n_stale_temps, 1);
    assert_int_equal(removed.n_entries, 0);
    for (int i = 0; i < 6; i++)
        assert_int_equal(file_size(data[i]), i < 2 ? -1 : 8);
    assert_int_equal(file_size(old_temp), -1);
    for (int i = 1; i < 5; i++)
        assert_int_equal(file_size(others[i]), 1);
    /* Within bounds: nothing more goes. */
    assert_int_equal(kiln_cache_trim(f->ctx, f->dir, 4, &removed), KILN_OK);
    assert_int_equal(removed.n_data_entries + removed.n_stale_temps, 0);
    assert_int_equal(kiln_cache_clear(f->ctx, f->dir, NULL), KILN_OK);
}

static void test_dir_resolution(void **state)
{
    fixture *f = *state;
    char out[512];
    const char *saved = getenv("KILN_CACHE_DIR");
    char *saved_copy = saved != NULL ? strdup(saved) : NULL;
    setenv("KILN_CACHE_DIR", "/x/kiln-env", 1);
    assert_int_equal(kiln_cache_get_dir(f->ctx, "/y/override/", out, sizeof out), KILN_OK);
    assert_string_equal(out, "/y/override");
    assert_int_equal(kiln_cache_get_dir(f->ctx, NULL, out, sizeof out), KILN_OK);
    assert_string_equal(out, "/x/kiln-env");
    unsetenv("KILN_CACHE_DIR");
    setenv("XDG_CACHE_HOME", "/xdg", 1);
    assert_int_equal(kiln_cache_get_dir(f->ctx, NULL, out, sizeof out), KILN_OK);
    assert_string_equal(out, "/xdg/kiln");
    setenv("XDG_CACHE_HOME", "relative", 1); /* ignored, as the XDG spec says */
    setenv("HOME", "/home/u", 1);
    assert_int_equal(kiln_cache_get_dir(f->ctx, NULL, out, sizeof out), KILN_OK);
    assert_string_equal(out, "/home/u/.cache/kiln");
    unsetenv("XDG_CACHE_HOME");
    unsetenv("HOME");
    assert_int_equal(kiln_cache_get_dir(f->ctx, NULL, out, sizeof out), KILN_ERR_NOT_FOUND);
    assert_contains(kiln_context_last_error(f->ctx), "KILN_NO_CACHE=1");
    /* Without any location the device still opens, running uncached. */
    kiln_device_options options = {.spec = kiln_test_device_spec()};
    kiln_device *dev = NULL;
    assert_int_equal(kiln_device_create(f->ctx, &options, &dev), KILN_OK);
    assert_null(kiln_device_get_cache_dir(dev));
    kiln_device_destroy(dev);
    setenv("HOME", "/home/someone-with-a-long-name", 1);
    assert_int_equal(kiln_cache_get_dir(f->ctx, NULL, out, 8), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(f->ctx), "too long");
    if (saved_copy != NULL) {
        setenv("KILN_CACHE_DIR", saved_copy, 1);
        free(saved_copy);
    }
}

int main(void)
{
    kiln_test_require_device();
    /* The tests run in order and build on each other's entries. */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_miss_then_hit),
        cmocka_unit_test(test_hit_runs_cached_binary),
        cmocka_unit_test(test_corrupt_entries_rebuilt),
        cmocka_unit_test(test_options_key_and_disable),
        cmocka_unit_test(test_clear),
        cmocka_unit_test(test_trim),
        cmocka_unit_test(test_dir_resolution),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
