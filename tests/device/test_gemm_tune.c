/*
 * GEMM tuning (src/device/gemm_tune.c, gemm_table.c): kiln_device_tune_gemm on small awkward
 * shapes (Kiln's kernels only; CLBlast's compile is test_gemm's) times implementations, finds
 * none wrong, and stores its choices in the cache directory; a new device for the same
 * hardware reads them and runs each shape, and shapes of the same power-of-two classes, with
 * them, while other shapes keep the defaults; a malformed tuning file is ignored with a
 * warning naming it; bad shapes are refused; shape recording keeps each distinct product once;
 * choice names round-trip and malformed ones are refused; a disabled cache keeps results in
 * memory only; the environment wins over tuning results and a malformed variable is logged
 * once. Nothing here is timed: the rates are only checked to be positive.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device/gemm.h"
#include "support/kiln_test.h"

static char WARNINGS[2048];

static void capture(kiln_log_level level, const char *message, void *user)
{
    (void)user;
    if (level >= KILN_LOG_WARN)
        snprintf(WARNINGS + strlen(WARNINGS), sizeof WARNINGS - strlen(WARNINGS), "%s\n", message);
}

static kiln_context *capturing_context(void)
{
    kiln_context_options options = {.log = capture, .log_level = KILN_LOG_WARN};
    kiln_context *ctx = NULL;
    assert_int_equal(kiln_context_create(&options, &ctx), KILN_OK);
    WARNINGS[0] = '\0';
    return ctx;
}

static const kiln_gemm_shape SHAPES[] = {
    {false, false, 33, 17, 9, 1}, /* odd sizes, smaller than a tile */
    {true, false, 5, 40, 3, 2},   /* transposed A, batched */
    {false, true, 1, 70, 31, 1},  /* one row, transposed B */
};
enum { N_SHAPES = sizeof SHAPES / sizeof SHAPES[0] };

static void test_tune_store_and_reload(void **state)
{
    (void)state;
    char *dir = kiln_test_make_temp_dir("gemm-tune");
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, dir);
    const char *path = kiln_device_get_tuning_path(dev);
    assert_non_null(path);
    assert_contains(path, dir);
    assert_contains(path, ".ktune");
    kiln_gemm_tune_row rows[N_SHAPES];
    /* Three tiles: each is a kernel variant to compile (cli_tune_tiny runs them all). */
    kiln_gemm_tune_options options = {.budget_seconds = 600, .skip_clblast = true, .max_tiles = 3};
    assert_int_equal(kiln_device_tune_gemm(dev, SHAPES, N_SHAPES, &options, rows), KILN_OK);
    for (int i = 0; i < N_SHAPES; i++) {
        assert_true(rows[i].done);
        assert_int_equal(rows[i].n_wrong, 0);
        /* the baseline and the challengers: 3 tiles x 2, less the baseline if among them */
        assert_true(rows[i].n_timed >= 6);
        assert_true(rows[i].best_gflops > 0 && rows[i].before_gflops > 0);
        /* With CLBlast's search skipped the winner is one of Kiln's forms, or the baseline that
         * ran the shape before (CLBlast on a GPU, where it is the default), never slower (a
         * kept baseline's rate goes through seconds and back: 1e-9 for the rounding). */
        assert_true(strncmp(rows[i].best, "kiln ", 5) == 0 ||
                    strcmp(rows[i].best, rows[i].before) == 0);
        assert_true(rows[i].best_gflops >= rows[i].before_gflops * (1 - 1e-9));
        char now[48];
        bool tuned = false;
        kiln_device_gemm_choice(dev, &SHAPES[i], now, sizeof now, &tuned);
        assert_true(tuned);
        assert_string_equal(now, rows[i].best);
    }
    kiln_device_destroy(dev);

    /* A new device reads the file: the same choices, for the shapes and their neighbours. */
    dev = kiln_test_open_device(ctx, dir);
    for (int i = 0; i < N_SHAPES; i++) {
        char now[48];
        bool tuned = false;
        kiln_device_gemm_choice(dev, &SHAPES[i], now, sizeof now, &tuned);
        assert_true(tuned);
        assert_string_equal(now, rows[i].best);
    }
    kiln_gemm_shape near = {false, false, 40, 30, 12, 1}; /* classes of 33, 17, 9: 6, 5, 4 */
    char choice[48];
    bool tuned = false;
    kiln_device_gemm_choice(dev, &near, choice, sizeof choice, &tuned);
    assert_true(tuned);
    assert_string_equal(choice, rows[0].best);
    kiln_gemm_shape far = {false, false, 1000, 1000, 1000, 1};
    kiln_device_gemm_choice(dev, &far, choice, sizeof choice, &tuned);
    assert_false(tuned);
    kiln_gemm_shape unbatched = {true, false, 5, 40, 3, 1}; /* SHAPES[1] without its batch */
    kiln_device_gemm_choice(dev, &unbatched, choice, sizeof choice, &tuned);
    assert_false(tuned);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
    kiln_test_remove_dir(dir);
    free(dir);
}

static void test_malformed_file_ignored(void **state)
{
    (void)state;
    char *dir = kiln_test_make_temp_dir("gemm-tune-bad");
    kiln_context *ctx = capturing_context();
    kiln_device *dev = kiln_test_open_device(ctx, dir);
    char path[4096];
    snprintf(path, sizeof path, "%s", kiln_device_get_tuning_path(dev));
    kiln_device_destroy(dev);
    const char *bad[] = {
        "not a tuning file\n",
        "kiln-gemm-tuning 1\ngemm NN 33 17 9 1 10.0 kiln 99x2x16\n",    /* tile out of range */
        "kiln-gemm-tuning 1\ngemm XN 33 17 9 1 10.0 clblast\n",         /* transpose letter */
        "kiln-gemm-tuning 1\ngemm NN 33 17 9 1 10.0 kiln 14x2x16 pk\n", /* trailing word */
        "kiln-gemm-tuning 1\nclblast-params no-such-set\n",
        "kiln-gemm-tuning 10\n",                                 /* another format */
        "kiln-gemm-tuning 1\ngemm NN 33 -17 9 1 10.0 clblast\n", /* a negative size */
        "kiln-gemm-tuning 1\ngemm NN 33 17 0 1 10.0 clblast\n",  /* k = 0 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kiln_test_write_file(path, bad[i], strlen(bad[i]));
        WARNINGS[0] = '\0';
        dev = kiln_test_open_device(ctx, dir);
        assert_contains(WARNINGS, path);
        assert_contains(WARNINGS, "ignoring");
        if (i > 0 && i != 5)
            assert_contains(WARNINGS, "line 2 is malformed");
        char choice[48];
        bool tuned = true;
        kiln_device_gemm_choice(dev, &SHAPES[0], choice, sizeof choice, &tuned);
        assert_false(tuned);
        kiln_device_destroy(dev);
    }
    /* A well-formed file by hand is read. */
    const char *good = "kiln-gemm-tuning 1\n# comment\ngemm NN 33 17 9 1 10.0 kiln 4x1x8 packed\n";
    kiln_test_write_file(path, good, strlen(good));
    WARNINGS[0] = '\0';
    dev = kiln_test_open_device(ctx, dir);
    assert_string_equal(WARNINGS, "");
    char choice[48];
    bool tuned = false;
    kiln_device_gemm_choice(dev, &SHAPES[0], choice, sizeof choice, &tuned);
    assert_true(tuned);
    assert_string_equal(choice, "kiln 4x1x8 packed");
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
    kiln_test_remove_dir(dir);
    free(dir);
}

/* The environment wins over tuning results; a malformed variable is logged once, not per
 * product. */
static void test_environment_wins(void **state)
{
    (void)state;
    kiln_context *ctx = capturing_context();
    kiln_device *dev = kiln_test_open_device(ctx, NULL);
    kiln_gemm_tune_row row;
    kiln_gemm_tune_options options = {.skip_clblast = true, .max_tiles = 2};
    assert_int_equal(kiln_device_tune_gemm(dev, SHAPES, 1, &options, &row), KILN_OK);
    char choice[48];
    bool tuned = false;
    setenv("KILN_GEMM_TILE", "4x1x8", 1);
    setenv("KILN_GEMM_PACK", "1", 1);
    kiln_device_gemm_choice(dev, &SHAPES[0], choice, sizeof choice, &tuned);
    assert_true(tuned);
    assert_string_equal(choice, "kiln 4x1x8 packed");
    setenv("KILN_GEMM", "clblast", 1);
    kiln_device_gemm_choice(dev, &SHAPES[0], choice, sizeof choice, &tuned);
    assert_string_equal(choice, "clblast");
    unsetenv("KILN_GEMM");
    unsetenv("KILN_GEMM_PACK");
    setenv("KILN_GEMM_TILE", "99x1x8", 1);
    WARNINGS[0] = '\0';
    kiln_device_gemm_choice(dev, &SHAPES[0], choice, sizeof choice, &tuned);
    kiln_device_gemm_choice(dev, &SHAPES[1], choice, sizeof choice, &tuned);
    unsetenv("KILN_GEMM_TILE");
    assert_contains(WARNINGS, "KILN_GEMM_TILE='99x1x8' is not TMxNVxVW");
    const char *second = strstr(strstr(WARNINGS, "KILN_GEMM_TILE") + 1, "KILN_GEMM_TILE");
    assert_null(second);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

static void test_bad_shapes(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, NULL);
    assert_null(kiln_device_get_tuning_path(dev));
    kiln_gemm_tune_row rows[2];
    assert_int_equal(kiln_device_tune_gemm(dev, SHAPES, 0, NULL, rows), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), "no shapes");
    kiln_gemm_shape zero[2] = {SHAPES[0], {false, false, 4, 0, 3, 1}};
    assert_int_equal(kiln_device_tune_gemm(dev, zero, 2, NULL, rows), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), "shape 1 (m 4, n 0, k 3, batch 1)");
    /* Without a cache the results hold in memory. */
    kiln_gemm_tune_options options = {.skip_clblast = true, .max_tiles = 2};
    assert_int_equal(kiln_device_tune_gemm(dev, SHAPES, 1, &options, rows), KILN_OK);
    char choice[48];
    bool tuned = false;
    kiln_device_gemm_choice(dev, &SHAPES[0], choice, sizeof choice, &tuned);
    assert_true(tuned);
    assert_string_equal(choice, rows[0].best);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

static void test_recording(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    kiln_device *dev = kiln_test_open_device(ctx, NULL);
    kiln_buffer *buf = NULL;
    assert_int_equal(kiln_buffer_create(dev, 4096 * sizeof(float), "recording", &buf), KILN_OK);
    kiln__gemm g = {.m = 8,
                    .n = 9,
                    .k = 10,
                    .alpha = 1,
                    .a = buf,
                    .lda = 10,
                    .b = buf,
                    .ldb = 9,
                    .c = buf,
                    .c_offset = 2048,
                    .ldc = 9};
    assert_int_equal(kiln__gemm_run(dev, "test", &g), KILN_OK);
    const kiln_gemm_shape *shapes = NULL;
    size_t n = 7;
    kiln_device_get_gemm_shapes(dev, &shapes, &n);
    assert_int_equal(n, 0); /* nothing recorded before recording starts */
    assert_int_equal(kiln_device_record_gemm_shapes(dev, true), KILN_OK);
    assert_int_equal(kiln__gemm_run(dev, "test", &g), KILN_OK);
    assert_int_equal(kiln__gemm_run(dev, "test", &g), KILN_OK);
    kiln__gemm t = g;
    t.transpose_b = true;
    t.ldb = 10;
    assert_int_equal(kiln__gemm_run(dev, "test", &t), KILN_OK);
    assert_int_equal(kiln_device_record_gemm_shapes(dev, false), KILN_OK);
    assert_int_equal(kiln__gemm_run(dev, "test",
                                    &(kiln__gemm){.m = 2,
                                                  .n = 2,
                                                  .k = 2,
                                                  .alpha = 1,
                                                  .a = buf,
                                                  .lda = 2,
                                                  .b = buf,
                                                  .ldb = 2,
                                                  .c = buf,
                                                  .ldc = 2}),
                     KILN_OK);
    kiln_device_get_gemm_shapes(dev, &shapes, &n);
    assert_int_equal(n, 2);
    assert_false(shapes[0].transpose_b);
    assert_true(shapes[1].transpose_b);
    assert_int_equal(shapes[1].m, 8);
    assert_int_equal(shapes[1].n, 9);
    assert_int_equal(shapes[1].k, 10);
    assert_int_equal(shapes[1].batch, 1);
    assert_int_equal(kiln_device_finish(dev), KILN_OK);
    kiln_buffer_destroy(buf);
    kiln_device_destroy(dev);
    kiln_context_destroy(ctx);
}

/* kiln_gemm_shape_parse: both transposes, the batch optional, 2^31 the largest size; signs,
 * spaces, leading zeros, zero, a fifth size, a missing colon and 2^31 + 1 refused. */
static void test_shape_parse(void **state)
{
    (void)state;
    kiln_gemm_shape s;
    assert_true(kiln_gemm_shape_parse("TN:3136x128x64", &s));
    assert_true(s.transpose_a && !s.transpose_b);
    assert_int_equal(s.m, 3136), assert_int_equal(s.n, 128), assert_int_equal(s.k, 64);
    assert_int_equal(s.batch, 1);
    assert_true(kiln_gemm_shape_parse("NT:1x2x3x2147483648", &s));
    assert_true(!s.transpose_a && s.transpose_b);
    assert_int_equal(s.batch, 2147483648u);
    const char *bad[] = {"NN:1x2",    "NX:1x2x3",  "NN1x2x3",           "NN:1x2x3x4x5",
                         "NN:0x2x3",  "NN:01x2x3", "NN:-1x2x3",         "NN: 1x2x3",
                         "NN:1x2x3 ", "NN:1x2x3x", "NN:2147483649x1x1", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (kiln_gemm_shape_parse(bad[i], &s))
            fail_msg("'%s' parsed as a shape", bad[i]);
}

static void test_choice_names(void **state)
{
    (void)state;
    const char *good[] = {"clblast", "kiln 14x2x16", "kiln 4x1x8 packed", "kiln 32x8x2",
                          "kiln 6x4x16 dot"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        kiln__gemm_choice c;
        assert_true(kiln__gemm_choice_parse(good[i], &c));
        char name[48];
        kiln__gemm_choice_name(&c, name, sizeof name);
        assert_string_equal(name, good[i]);
    }
    const char *bad[] = {"",
                         "kiln",
                         "kiln 14x2",
                         "kiln 0x2x16",
                         "kiln 14x9x16",
                         "kiln 14x2x3",
                         "kiln 14x2x16 fast",
                         "kiln 6x4x16 dot packed",
                         "kiln 6x4x16 dots",
                         "kiln 14x2x16x",
                         "CLBlast"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kiln__gemm_choice c;
        if (kiln__gemm_choice_parse(bad[i], &c))
            fail_msg("'%s' parsed as a GEMM choice", bad[i]);
    }
}

int main(void)
{
    kiln_test_require_device();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape_parse),
        cmocka_unit_test(test_choice_names),
        cmocka_unit_test(test_recording),
        cmocka_unit_test(test_bad_shapes),
        cmocka_unit_test(test_environment_wins),
        cmocka_unit_test(test_malformed_file_ignored),
        cmocka_unit_test(test_tune_store_and_reload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
