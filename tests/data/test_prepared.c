/*
 * Prepared-data files. A round trip keeps every field of three datasets (class labels with an
 * odd feature shape, image-shaped targets, unlabelled CSV-style data with feature and label
 * names), the named arrays and the note, value for value, NaN and -0 included. Datasets from
 * a file outlive its handle and the file itself, and changing their values never reaches the
 * file. Damaged files (truncated, another version, offsets outside the data, a class label out
 * of range, a bad header line, no 'end') are refused with KILN_ERR_CORRUPT naming the file; a
 * failed write leaves the old file whole, and a dataset the reader would refuse is not
 * written. Keys change with the text, the file list and a rewritten file. Writing and
 * opening survive every allocation failure without leaks.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/atomic_file.h"
#include "kiln/data.h"
#include "support/kiln_test.h"

/* Three datasets of different kinds with deterministic values. */
static void make_sets(kiln_context *ctx, kiln_dataset *sets[3])
{
    kiln_shape odd = kiln_shape_of(3, (int64_t[]){1, 3, 5});
    assert_int_equal(
        kiln_dataset_create(ctx, "train split", 7, &odd, KILN_LABELS_CLASS, NULL, &sets[0]),
        KILN_OK);
    for (int64_t i = 0; i < 7 * 15; i++)
        sets[0]->features[i] = (float)i * 0.37f - 11.0f;
    sets[0]->features[3] = NAN;
    sets[0]->features[4] = -0.0f;
    for (int i = 0; i < 7; i++)
        sets[0]->classes[i] = (i * 5) % 4;
    sets[0]->n_classes = 6; /* more than the labels use: kept as is */

    kiln_shape image = kiln_shape_of(2, (int64_t[]){4, 4});
    kiln_shape mask = kiln_shape_of(3, (int64_t[]){1, 4, 4});
    assert_int_equal(
        kiln_dataset_create(ctx, "masks", 2, &image, KILN_LABELS_TARGET, &mask, &sets[1]), KILN_OK);
    for (int64_t i = 0; i < 32; i++) {
        sets[1]->features[i] = 1.0f / (float)(i + 1);
        sets[1]->targets[i] = (float)(i % 2);
    }

    kiln_shape flat = kiln_shape_of(1, (int64_t[]){3});
    assert_int_equal(kiln_dataset_create(ctx, "", 1, &flat, KILN_LABELS_NONE, NULL, &sets[2]),
                     KILN_OK);
    sets[2]->features[0] = INFINITY;
    sets[2]->features[2] = 1e-40f; /* subnormal */
    sets[2]->feature_names = calloc(3, sizeof(char *));
    const char *names[3] = {"sepal length", "", "p\xc3\xa9tal"};
    for (int f = 0; f < 3; f++)
        sets[2]->feature_names[f] = strdup(names[f]);
    sets[2]->label_name = strdup("species");
}

/* The test context allocates with malloc, so the names above can be freed with it. */
static void assert_same(const kiln_dataset *a, const kiln_dataset *b)
{
    assert_string_equal(a->name, b->name);
    assert_int_equal(a->n, b->n);
    assert_true(kiln_shape_equal(&a->feature_shape, &b->feature_shape));
    assert_int_equal(a->n_features, b->n_features);
    assert_memory_equal(a->features, b->features, (size_t)(a->n * a->n_features) * sizeof(float));
    assert_int_equal(a->label_kind, b->label_kind);
    assert_int_equal(a->n_classes, b->n_classes);
    assert_int_equal(a->classes != NULL, b->classes != NULL);
    if (a->classes != NULL)
        assert_memory_equal(a->classes, b->classes, (size_t)a->n * sizeof(int32_t));
    assert_int_equal(a->n_label_values, b->n_label_values);
    assert_int_equal(a->label_shape.ndim, b->label_shape.ndim);
    if (a->targets != NULL) {
        assert_true(kiln_shape_equal(&a->label_shape, &b->label_shape));
        assert_memory_equal(a->targets, b->targets,
                            (size_t)(a->n * a->n_label_values) * sizeof(float));
    } else {
        assert_null(b->targets);
    }
    assert_int_equal(a->feature_names != NULL, b->feature_names != NULL);
    for (int64_t f = 0; a->feature_names != NULL && f < a->n_features; f++)
        assert_string_equal(a->feature_names[f], b->feature_names[f]);
    assert_int_equal(a->label_name != NULL, b->label_name != NULL);
    if (a->label_name != NULL)
        assert_string_equal(a->label_name, b->label_name);
}

static const float MEAN[1] = {0.2860f};
static const float STD[5] = {0.353f, 1, 2, 3, 4};

static void write_file(kiln_context *ctx, const char *path, kiln_dataset *sets[3])
{
    const kiln_dataset *const list[3] = {sets[0], sets[1], sets[2]};
    kiln_prepared_array arrays[2] = {{"preprocess.1.standardize.mean", MEAN, 1},
                                     {"preprocess.1.standardize.std", STD, 5}};
    assert_int_equal(
        kiln_prepared_write(ctx, path, list, 3, arrays, 2, "kiln: data: line one\nline two\n"),
        KILN_OK);
}

static void test_round_trip(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    char *dir = kiln_test_make_temp_dir("prepared");
    char *path = kiln_test_path_in(dir, "data.kdata");
    kiln_dataset *sets[3];
    make_sets(ctx, sets);
    write_file(ctx, path, sets);

    kiln_prepared *p = NULL;
    assert_int_equal(kiln_prepared_open(ctx, path, &p), KILN_OK);
    assert_int_equal(kiln_prepared_n_sets(p), 3);
    kiln_dataset *back[3];
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(kiln_prepared_get_set(p, i, &back[i]), KILN_OK);
        assert_same(sets[i], back[i]);
    }
    assert_int_equal(kiln_prepared_get_set(p, 3, &back[0]), KILN_ERR_INVALID_ARGUMENT);
    assert_int_equal(kiln_prepared_n_arrays(p), 2);
    const kiln_prepared_array *a = kiln_prepared_array_at(p, 0);
    assert_string_equal(a->name, "preprocess.1.standardize.mean");
    assert_int_equal(a->n, 1);
    assert_memory_equal(a->values, MEAN, sizeof MEAN);
    a = kiln_prepared_array_at(p, 1);
    assert_string_equal(a->name, "preprocess.1.standardize.std");
    assert_int_equal(a->n, 5);
    assert_memory_equal(a->values, STD, sizeof STD);
    assert_null(kiln_prepared_array_at(p, 2));
    assert_string_equal(kiln_prepared_note(p), "kiln: data: line one\nline two\n");

    /* The datasets outlive the handle and the file; a change stays in this process. */
    kiln_prepared_close(p);
    assert_int_equal(unlink(path), 0);
    back[0]->features[0] = 1234.5f;
    assert_float_equal(back[1]->targets[1], 1.0f, 0);
    write_file(ctx, path, sets);
    assert_int_equal(kiln_prepared_open(ctx, path, &p), KILN_OK);
    kiln_dataset *again = NULL;
    assert_int_equal(kiln_prepared_get_set(p, 0, &again), KILN_OK);
    assert_float_equal(again->features[0], sets[0]->features[0], 0);
    assert_float_equal(back[0]->features[0], 1234.5f, 0);
    kiln_prepared_close(p);
    /* A copy of a mapped dataset owns its arrays. */
    kiln_dataset *copy = NULL;
    assert_int_equal(kiln_dataset_subset(again, (int64_t[]){6, 0}, 2, "copy", &copy), KILN_OK);
    kiln_dataset_destroy(again);
    assert_memory_equal(copy->features, sets[0]->features + 6 * 15, 15 * sizeof(float));
    kiln_dataset_destroy(copy);

    for (int i = 0; i < 3; i++) {
        kiln_dataset_destroy(back[i]);
        kiln_dataset_destroy(sets[i]);
    }
    kiln_test_remove_dir(dir);
    free(path);
    free(dir);
    kiln_context_destroy(ctx);
}

/* Writes `bytes` with `from` replaced by `to` in the header to `bad` and expects a refusal
 * that names the file and contains `reason`. */
static void expect_corrupt(kiln_context *ctx, const char *bad, const char *bytes, size_t n,
                           const char *from, const char *to, const char *reason)
{
    char *copy = malloc(n + strlen(to) + 1);
    memcpy(copy, bytes, n);
    size_t m = n;
    if (from != NULL) {
        char *at = strstr(copy, from);
        assert_non_null(at);
        size_t head = (size_t)(at - copy), tail = n - head - strlen(from);
        memmove(at + strlen(to), at + strlen(from), tail);
        memcpy(at, to, strlen(to));
        m = head + strlen(to) + tail;
    }
    kiln_test_write_file(bad, copy, m);
    kiln_prepared *p = NULL;
    assert_int_equal(kiln_prepared_open(ctx, bad, &p), KILN_ERR_CORRUPT);
    assert_null(p);
    assert_contains(kiln_context_last_error(ctx), bad);
    assert_contains(kiln_context_last_error(ctx), reason);
    free(copy);
}

static void test_damaged_files(void **state)
{
    (void)state;
    kiln_context *ctx = NULL;
    assert_int_equal(kiln_context_create(NULL, &ctx), KILN_OK);
    char *dir = kiln_test_make_temp_dir("prepared");
    char *path = kiln_test_path_in(dir, "data.kdata"), *bad = kiln_test_path_in(dir, "bad.kdata");
    kiln_dataset *sets[3];
    make_sets(ctx, sets);
    write_file(ctx, path, sets);
    size_t n = 0;
    char *bytes = (char *)kiln_test_read_file(path, &n);

    /* Truncated. */
    kiln_test_write_file(bad, bytes, n - 40); /* the note ends past the file */
    kiln_prepared *p = NULL;
    assert_int_equal(kiln_prepared_open(ctx, bad, &p), KILN_ERR_CORRUPT);
    assert_contains(kiln_context_last_error(ctx), "in the data section");
    kiln_test_write_file(bad, bytes, 100); /* shorter than a page */
    assert_int_equal(kiln_prepared_open(ctx, bad, &p), KILN_ERR_CORRUPT);
    assert_contains(kiln_context_last_error(ctx), "100 bytes");

    expect_corrupt(ctx, bad, bytes, n, "kiln-prepared-data 1", "kiln-prepared-data 2",
                   "another version");
    expect_corrupt(ctx, bad, bytes, n, "little", "big   ", "byte order");
    expect_corrupt(ctx, bad, bytes, n, "array 1 ", "array 1x", "an array line needs");
    expect_corrupt(ctx, bad, bytes, n, "\nend\n", "\nfin\n", "no 'end' line");
    expect_corrupt(ctx, bad, bytes, n, "\nnote", "\nnope", "expected 'set'");
    /* Class count 6 -> 2: the labels 2 and 3 fall outside. */
    expect_corrupt(ctx, bad, bytes, n, " 1 6 0 ", " 1 2 0 ", "class label");
    /* The first set's features moved to the header. */
    char first[64];
    const char *set = strstr(bytes, "\nset 7 3 1 3 5 1 6 0 ");
    assert_non_null(set);
    snprintf(first, sizeof first, "%s", set + strlen("\nset 7 3 1 3 5 1 6 0 "));
    *strchr(first, ' ') = '\0';
    char from[96], to[96];
    snprintf(from, sizeof from, " 1 6 0 %s ", first);
    snprintf(to, sizeof to, " 1 6 0 %0*d ", (int)strlen(first), 64);
    expect_corrupt(ctx, bad, bytes, n, from, to, "outside the data section");
    /* A class label kind with no class array. */
    expect_corrupt(ctx, bad, bytes, n, " 5 1 6 0 ", " 5 0 6 0 ", "label kind");

    /* Not there: not found, naming the file. */
    char *missing = kiln_test_path_in(dir, "missing.kdata");
    assert_int_equal(kiln_prepared_open(ctx, missing, &p), KILN_ERR_NOT_FOUND);
    assert_contains(kiln_context_last_error(ctx), missing);

    for (int i = 0; i < 3; i++)
        kiln_dataset_destroy(sets[i]);
    kiln_test_remove_dir(dir);
    free(missing);
    free(bytes);
    free(bad);
    free(path);
    free(dir);
    kiln_context_destroy(ctx);
}

static int fail_before_rename(const char *temp_path)
{
    (void)temp_path;
    return 1;
}

static void test_failed_write_keeps_old_file(void **state)
{
    (void)state;
    kiln_context *ctx = NULL;
    assert_int_equal(kiln_context_create(NULL, &ctx), KILN_OK);
    char *dir = kiln_test_make_temp_dir("prepared");
    char *path = kiln_test_path_in(dir, "data.kdata");
    kiln_dataset *sets[3];
    make_sets(ctx, sets);
    write_file(ctx, path, sets);
    size_t n_old = 0;
    char *old = (char *)kiln_test_read_file(path, &n_old);
    const kiln_dataset *const one[1] = {sets[1]};
    kiln__atomic_before_rename = fail_before_rename;
    assert_int_equal(kiln_prepared_write(ctx, path, one, 1, NULL, 0, NULL), KILN_ERR_IO);
    kiln__atomic_before_rename = NULL;
    assert_contains(kiln_context_last_error(ctx), path);
    size_t n_now = 0;
    char *now = (char *)kiln_test_read_file(path, &n_now);
    assert_int_equal(n_now, n_old);
    assert_memory_equal(now, old, n_old);
    /* Nothing but the file itself is left in the directory. */
    assert_int_equal(kiln_test_count_entries(dir), 1);
    /* Bad arguments. */
    assert_int_equal(kiln_prepared_write(ctx, path, one, 0, NULL, 0, NULL),
                     KILN_ERR_INVALID_ARGUMENT);
    kiln_prepared_array unnamed = {"", STD, 5};
    assert_int_equal(kiln_prepared_write(ctx, path, one, 1, &unnamed, 1, NULL),
                     KILN_ERR_INVALID_ARGUMENT);
    /* A file the reader would refuse is not written: a class label past the class count. */
    sets[0]->classes[2] = 6;
    const kiln_dataset *const bad[1] = {sets[0]};
    assert_int_equal(kiln_prepared_write(ctx, path, bad, 1, NULL, 0, NULL),
                     KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), "class labels disagree");
    for (int i = 0; i < 3; i++)
        kiln_dataset_destroy(sets[i]);
    kiln_test_remove_dir(dir);
    free(old);
    free(now);
    free(path);
    free(dir);
    kiln_context_destroy(ctx);
}

/* Keys: equal for equal inputs, different for another text, a touched file or another file
 * list; a file that is not there is KILN_ERR_IO naming it. */
static void test_key(void **state)
{
    (void)state;
    kiln_context *ctx = NULL;
    assert_int_equal(kiln_context_create(NULL, &ctx), KILN_OK);
    char *dir = kiln_test_make_temp_dir("prepared");
    char *a = kiln_test_path_in(dir, "a.csv"), *b = kiln_test_path_in(dir, "b.csv");
    kiln_test_write_file(a, "x\n1\n", 4);
    kiln_test_write_file(b, "x\n2\n", 4);
    const char *both[2] = {a, b}, *first[1] = {a};
    char k1[65], k2[65];
    assert_int_equal(kiln_prepared_key(ctx, "data: {}", both, 2, k1), KILN_OK);
    assert_int_equal(strlen(k1), 64);
    assert_int_equal(kiln_prepared_key(ctx, "data: {}", both, 2, k2), KILN_OK);
    assert_string_equal(k1, k2);
    assert_int_equal(kiln_prepared_key(ctx, "data: {} ", both, 2, k2), KILN_OK);
    assert_string_not_equal(k1, k2);
    assert_int_equal(kiln_prepared_key(ctx, "data: {}", first, 1, k2), KILN_OK);
    assert_string_not_equal(k1, k2);
    /* Rewritten with other content of the same size: the times and so the key change. */
    struct timespec pause = {0, 20 * 1000 * 1000};
    nanosleep(&pause, NULL);
    kiln_test_write_file(b, "x\n3\n", 4);
    assert_int_equal(kiln_prepared_key(ctx, "data: {}", both, 2, k2), KILN_OK);
    assert_string_not_equal(k1, k2);
    char *missing = kiln_test_path_in(dir, "missing.csv");
    const char *gone[1] = {missing};
    assert_int_equal(kiln_prepared_key(ctx, "data: {}", gone, 1, k2), KILN_ERR_IO);
    assert_contains(kiln_context_last_error(ctx), missing);
    kiln_test_remove_dir(dir);
    free(missing);
    free(a);
    free(b);
    free(dir);
    kiln_context_destroy(ctx);
}

static void test_out_of_memory(void **state)
{
    (void)state;
    char *dir = kiln_test_make_temp_dir("prepared");
    char *path = kiln_test_path_in(dir, "data.kdata");
    for (long budget = 0;; budget++) {
        kiln_test_allocator a;
        kiln_context *ctx = kiln_test_counted_context(&a);
        kiln_shape shape = kiln_shape_of(1, (int64_t[]){2});
        kiln_dataset *ds = NULL;
        assert_int_equal(kiln_dataset_create(ctx, "d", 3, &shape, KILN_LABELS_CLASS, NULL, &ds),
                         KILN_OK);
        kiln_prepared_array array = {"stat", STD, 2};
        const kiln_dataset *const one[1] = {ds};
        a.budget = budget;
        kiln_prepared *p = NULL;
        kiln_dataset *back = NULL;
        kiln_status rc = kiln_prepared_write(ctx, path, one, 1, &array, 1, "note");
        if (rc == KILN_OK)
            rc = kiln_prepared_open(ctx, path, &p);
        if (rc == KILN_OK)
            rc = kiln_prepared_get_set(p, 0, &back);
        a.budget = -1;
        kiln_dataset_destroy(back);
        kiln_prepared_close(p);
        kiln_dataset_destroy(ds);
        kiln_context_destroy(ctx);
        if (kiln_test_oom_round_done(&a, rc))
            break;
    }
    kiln_test_remove_dir(dir);
    free(path);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_damaged_files),
        cmocka_unit_test(test_failed_write_keeps_old_file),
        cmocka_unit_test(test_key),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
