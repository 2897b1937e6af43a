/*
 * CSV reader: a header with the label chosen by name, by index and by negative index, or no
 * labels; feature names; float targets; no header (names column_<k>); quoted fields with
 * delimiters and doubled quotes inside; empty, NA, N/A and NaN cells (any case, quoted or
 * not) read as NaN; CRLF, a UTF-8 BOM, blank lines, spaces and a gzip file; another
 * delimiter. Errors have exact messages naming the file, line, column and column name: ragged
 * rows, non-numeric and infinite cells, missing and non-integer class labels, an unknown or
 * repeated label column, an unclosed quote, an empty file, a header without rows. Allocation
 * failures are reported without leaks.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "kiln/data.h"
#include "support/kiln_test.h"

static char *g_dir;

/* Writes `text` to a new file in the temporary directory; the caller frees the path. */
static char *write_csv(const char *name, const char *text, bool gz)
{
    size_t n = strlen(g_dir) + strlen(name) + 2;
    char *path = malloc(n);
    assert_non_null(path);
    snprintf(path, n, "%s/%s", g_dir, name);
    if (gz) {
        gzFile f = gzopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(gzwrite(f, text, (unsigned)strlen(text)), (int)strlen(text));
        gzclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
    }
    return path;
}

static const char IRIS[] = "sepal_length,sepal_width,species,petal_length\n"
                           "5.1,3.5,0,1.4\n"
                           "4.9,3.0,0,1.4\n"
                           "6.3,3.3,2,6.0\n"
                           "5.8,2.7,1,4.1\n";

static void check_iris(const kiln_dataset *ds)
{
    static const float X[4][3] = {
        {5.1f, 3.5f, 1.4f}, {4.9f, 3.0f, 1.4f}, {6.3f, 3.3f, 6.0f}, {5.8f, 2.7f, 4.1f}};
    assert_int_equal(ds->n, 4);
    assert_int_equal(ds->feature_shape.ndim, 1);
    assert_int_equal(ds->feature_shape.dim[0], 3);
    assert_memory_equal(ds->features, X, sizeof X);
    assert_int_equal(ds->label_kind, KILN_LABELS_CLASS);
    assert_int_equal(ds->classes[0], 0);
    assert_int_equal(ds->classes[2], 2);
    assert_int_equal(ds->classes[3], 1);
    assert_int_equal(ds->n_classes, 3);
    assert_string_equal(ds->label_name, "species");
    assert_string_equal(ds->feature_names[0], "sepal_length");
    assert_string_equal(ds->feature_names[1], "sepal_width");
    assert_string_equal(ds->feature_names[2], "petal_length");
}

static void test_label_by_name_and_index(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    char *path = write_csv("iris.csv", IRIS, false);
    kiln_csv_options o;
    kiln_csv_options_init(&o);
    kiln_dataset *ds = NULL;
    o.label_column = "species";
    assert_int_equal(kiln_dataset_read_csv(ctx, path, &o, &ds), KILN_OK);
    check_iris(ds);
    kiln_dataset_destroy(ds);
    o.label_column = NULL;
    o.label_index = 2;
    assert_int_equal(kiln_dataset_read_csv(ctx, path, &o, &ds), KILN_OK);
    check_iris(ds);
    kiln_dataset_destroy(ds);
    o.label_index = -2;
    assert_int_equal(kiln_dataset_read_csv(ctx, path, &o, &ds), KILN_OK);
    check_iris(ds);
    kiln_dataset_destroy(ds);
    /* Default: the last column as class labels, which petal_length's 1.4 is not. */
    assert_int_equal(kiln_dataset_read_csv(ctx, path, NULL, &ds), KILN_ERR_CORRUPT);
    assert_contains(kiln_context_last_error(ctx), "line 2, column 4 ('petal_length'): expected "
                                                  "a class index (an integer >= 0), got '1.4'");
    /* No labels: four features. */
    o.labels = KILN_LABELS_NONE;
    assert_int_equal(kiln_dataset_read_csv(ctx, path, &o, &ds), KILN_OK);
    assert_int_equal(ds->n_features, 4);
    assert_int_equal(ds->label_kind, KILN_LABELS_NONE);
    assert_null(ds->label_name);
    assert_string_equal(ds->feature_names[3], "petal_length");
    kiln_dataset_destroy(ds);
    /* Float targets. */
    o.labels = KILN_LABELS_TARGET;
    o.label_column = "sepal_width";
    assert_int_equal(kiln_dataset_read_csv(ctx, path, &o, &ds), KILN_OK);
    assert_int_equal(ds->label_kind, KILN_LABELS_TARGET);
    assert_int_equal(ds->label_shape.ndim, 1);
    assert_int_equal(ds->label_shape.dim[0], 1);
    assert_true(ds->targets[0] == 3.5f && ds->targets[3] == 2.7f);
    assert_true(ds->features[3 * 3 + 1] == 1.0f); /* species is a feature now */
    kiln_dataset_destroy(ds);
    free(path);
    kiln_context_destroy(ctx);
}

static void test_no_header_gzip_crlf_bom(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    char *path = write_csv("plain.csv.gz", "\xEF\xBB\xBF 1, 2.5 ,3\r\n\r\n  \n4,-5e-1,6\r\n", true);
    kiln_csv_options o;
    kiln_csv_options_init(&o);
    o.header = false;
    o.label_index = 0;
    kiln_dataset *ds = NULL;
    assert_int_equal(kiln_dataset_read_csv(ctx, path, &o, &ds), KILN_OK);
    assert_int_equal(ds->n, 2);
    assert_int_equal(ds->n_features, 2);
    assert_true(ds->features[0] == 2.5f && ds->features[1] == 3.0f);
    assert_true(ds->features[2] == -0.5f && ds->features[3] == 6.0f);
    assert_int_equal(ds->classes[0], 1);
    assert_int_equal(ds->classes[1], 4);
    assert_string_equal(ds->label_name, "column_1");
    assert_string_equal(ds->feature_names[0], "column_2");
    assert_string_equal(ds->feature_names[1], "column_3");
    kiln_dataset_destroy(ds);
    free(path);
    kiln_context_destroy(ctx);
}

static void test_quotes_and_missing(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    char *path = write_csv("quoted.csv",
                           "\"a, first\",\"say \"\"b\"\"\",c,d,e,label\n"
                           "\"1.5\",,NA,nan,\"N/A\",1\n"
                           "na,NaN, \"\" ,NAN,n/a,0\n"
                           "7,8,9,10,11,1",
                           false);
    kiln_csv_options o;
    kiln_csv_options_init(&o);
    o.label_column = "label";
    kiln_dataset *ds = NULL;
    assert_int_equal(kiln_dataset_read_csv(ctx, path, &o, &ds), KILN_OK);
    assert_string_equal(ds->feature_names[0], "a, first");
    assert_string_equal(ds->feature_names[1], "say \"b\"");
    assert_int_equal(ds->n, 3);
    assert_true(ds->features[0] == 1.5f);
    for (int i = 1; i < 10; i++)
        assert_true(isnan(ds->features[i]));
    assert_true(ds->features[14] == 11.0f);
    assert_int_equal(kiln_dataset_n_missing(ds), 9);
    kiln_dataset_destroy(ds);
    /* Semicolons. */
    char *semi = write_csv("semi.csv", "x;y;t\n1,5;2;3\n", false);
    o.label_column = "t";
    o.delimiter = ';';
    o.labels = KILN_LABELS_TARGET;
    assert_int_equal(kiln_dataset_read_csv(ctx, semi, &o, &ds), KILN_ERR_CORRUPT);
    assert_contains(kiln_context_last_error(ctx), "line 2, column 1 ('x'): expected a finite "
                                                  "number or a missing value");
    free(semi);
    semi = write_csv("semi2.csv", "x;y;t\n1.5;2;3\n", false);
    assert_int_equal(kiln_dataset_read_csv(ctx, semi, &o, &ds), KILN_OK);
    assert_true(ds->features[0] == 1.5f && ds->targets[0] == 3.0f);
    kiln_dataset_destroy(ds);
    free(semi);
    free(path);
    kiln_context_destroy(ctx);
}

/* Reads `text` with the label column "y" (or by index without a header) and checks the
 * status and the exact message, "{}" standing for the path. */
static void expect_error(const char *text, bool header, kiln_status status,
                         const char *expected_format)
{
    kiln_context *ctx = kiln_test_context();
    char *path = write_csv("bad.csv", text, false);
    kiln_csv_options o;
    kiln_csv_options_init(&o);
    o.header = header;
    o.label_column = header ? "y" : NULL;
    kiln_dataset *ds = (kiln_dataset *)&o;
    assert_int_equal(kiln_dataset_read_csv(ctx, path, &o, &ds), status);
    assert_null(ds);
    char expected[1024];
    const char *hole = strstr(expected_format, "{}");
    assert_non_null(hole);
    snprintf(expected, sizeof expected, "kiln_dataset_read_csv: %.*s%s%s",
             (int)(hole - expected_format), expected_format, path, hole + 2);
    assert_string_equal(kiln_context_last_error(ctx), expected);
    free(path);
    kiln_context_destroy(ctx);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("a,b,y\n1,2,0\n3,4\n", true, KILN_ERR_CORRUPT,
                 "'{}' line 3 has 2 fields, expected 3 (as in the header on line 1)");
    expect_error("1,2,0\n3,4,1,5\n", false, KILN_ERR_CORRUPT,
                 "'{}' line 2 has 4 fields, expected 3 (as on the first row, line 1)");
    expect_error("a,b,y\n1,2,0\n\n3,abc,1\n", true, KILN_ERR_CORRUPT,
                 "'{}' line 4, column 2 ('b'): expected a finite number or a missing value "
                 "(empty, NA, N/A, NaN), got 'abc'");
    expect_error("a,b,y\n1,2 3,0\n", true, KILN_ERR_CORRUPT,
                 "'{}' line 2, column 2 ('b'): expected a finite number or a missing value "
                 "(empty, NA, N/A, NaN), got '2 3'");
    expect_error("a,b,y\n1,inf,0\n", true, KILN_ERR_CORRUPT,
                 "'{}' line 2, column 2 ('b'): expected a finite number or a missing value "
                 "(empty, NA, N/A, NaN), got 'inf'");
    expect_error("a,b,y\n1,2,NA\n", true, KILN_ERR_CORRUPT,
                 "'{}' line 2, column 3 ('y'): the label is missing");
    expect_error("a,y,b\n1,2.5,0\n", true, KILN_ERR_CORRUPT,
                 "'{}' line 2, column 2 ('y'): expected a class index (an integer >= 0), got "
                 "'2.5'");
    expect_error("a,y,b\n1,-1,0\n", true, KILN_ERR_CORRUPT,
                 "'{}' line 2, column 2 ('y'): expected a class index (an integer >= 0), got "
                 "'-1'");
    expect_error("a,b,c\n1,2,0\n", true, KILN_ERR_NOT_FOUND,
                 "'{}' line 1: no column is named 'y'; the columns are 'a', 'b', 'c'");
    expect_error("y,b,y\n1,2,0\n", true, KILN_ERR_CORRUPT,
                 "'{}' line 1: label column 'y' appears twice (columns 1 and 3); rename one");
    expect_error("a,b,y\n1,\"2,0\n", true, KILN_ERR_CORRUPT,
                 "'{}' line 2, column 2: the quoted field is not closed on this line (quoted "
                 "fields cannot span lines)");
    expect_error("a,b,y\n1,\"2\"x,0\n", true, KILN_ERR_CORRUPT,
                 "'{}' line 2, column 2: unexpected 'x' after the closing quote (expected ',' "
                 "or the end of the line)");
    expect_error("\n \n", true, KILN_ERR_CORRUPT, "'{}' is empty");
    expect_error("a,b,y\n\n", true, KILN_ERR_CORRUPT,
                 "'{}' has a header (line 1) but no data rows");
    expect_error("y\n1\n", true, KILN_ERR_CORRUPT,
                 "'{}' line 1: no feature columns besides the label");
}

static void test_bad_options(void **state)
{
    (void)state;
    kiln_context *ctx = kiln_test_context();
    char *path = write_csv("opts.csv", "1,2\n", false);
    kiln_csv_options o;
    kiln_csv_options_init(&o);
    o.header = false;
    o.label_column = "y";
    kiln_dataset *ds = NULL;
    assert_int_equal(kiln_dataset_read_csv(ctx, path, &o, &ds), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), "label column 'y' is chosen by name but");
    o.label_column = NULL;
    o.label_index = 2;
    assert_int_equal(kiln_dataset_read_csv(ctx, path, &o, &ds), KILN_ERR_INVALID_ARGUMENT);
    assert_contains(kiln_context_last_error(ctx), "label index 2 is outside the 2 columns of");
    o.label_index = -3;
    assert_int_equal(kiln_dataset_read_csv(ctx, path, &o, &ds), KILN_ERR_INVALID_ARGUMENT);
    o.label_index = 0;
    o.delimiter = '"';
    assert_int_equal(kiln_dataset_read_csv(ctx, path, &o, &ds), KILN_ERR_INVALID_ARGUMENT);
    o.delimiter = ',';
    assert_int_equal(kiln_dataset_read_csv(ctx, path, &o, &ds), KILN_OK);
    kiln_dataset_destroy(ds);
    free(path);
    kiln_context_destroy(ctx);
}

static void test_out_of_memory(void **state)
{
    (void)state;
    char *path = write_csv("oom.csv", IRIS, false);
    kiln_csv_options o;
    kiln_csv_options_init(&o);
    o.label_column = "species";
    for (long budget = 0;; budget++) {
        kiln_test_allocator a;
        kiln_context *ctx = kiln_test_counted_context(&a);
        a.budget = budget;
        kiln_dataset *ds = NULL;
        kiln_status rc = kiln_dataset_read_csv(ctx, path, &o, &ds);
        a.budget = -1;
        if (rc == KILN_OK) {
            check_iris(ds);
            kiln_dataset_destroy(ds);
            kiln_context_destroy(ctx);
            assert_int_equal(a.live, 0);
            assert_true(budget > 10);
            break;
        }
        assert_int_equal(rc, KILN_ERR_NO_MEMORY);
        assert_null(ds);
        kiln_context_destroy(ctx);
        assert_int_equal(a.live, 0);
    }
    free(path);
}

int main(void)
{
    g_dir = kiln_test_make_temp_dir("test_csv");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_label_by_name_and_index),
        cmocka_unit_test(test_no_header_gzip_crlf_bom),
        cmocka_unit_test(test_quotes_and_missing),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_out_of_memory),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    kiln_test_remove_dir(g_dir);
    free(g_dir);
    return failed;
}
