/*
 * The context: error messages carry the function and the formatted detail, long messages
 * (build logs) survive intact, appending works, out-of-memory while formatting still leaves a
 * message, the replaceable allocator sees every allocation, and logs honour the level.
 */
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "support/kiln_test.h"

static void test_error_message(void **state)
{
    (void)state;
    kiln_context *ctx = NULL;
    assert_int_equal(kiln_context_create(NULL, &ctx), KILN_OK);
    assert_string_equal(kiln_context_last_error(ctx), "");
    kiln_status rc = kiln__error(ctx, KILN_ERR_SHAPE, "kiln_op_add", "shapes (%d, %d) and (%d)",
                                 2, 3, 4);
    assert_int_equal(rc, KILN_ERR_SHAPE);
    assert_int_equal(kiln_context_last_status(ctx), KILN_ERR_SHAPE);
    assert_string_equal(kiln_context_last_error(ctx), "kiln_op_add: shapes (2, 3) and (4)");
    kiln__error_append(ctx, "; %s", "fix it");
    assert_string_equal(kiln_context_last_error(ctx),
                        "kiln_op_add: shapes (2, 3) and (4); fix it");
    kiln_context_clear_error(ctx);
    assert_string_equal(kiln_context_last_error(ctx), "");
    assert_int_equal(kiln_context_last_status(ctx), KILN_OK);
    kiln_context_destroy(ctx);
    kiln_context_destroy(NULL); /* a no-op */
}

static void test_long_message(void **state)
{
    (void)state;
    kiln_context *ctx = NULL;
    assert_int_equal(kiln_context_create(NULL, &ctx), KILN_OK);
    size_t n = 100000; /* far past the inline buffer: a build log can be this long */
    char *log = malloc(n + 1);
    assert_non_null(log);
    for (size_t i = 0; i < n; i++)
        log[i] = (char)('a' + i % 26);
    log[n] = '\0';
    kiln__error(ctx, KILN_ERR_BUILD, "f", "%s", log);
    kiln__error_append(ctx, "%s", "<end>");
    const char *got = kiln_context_last_error(ctx);
    assert_int_equal(strlen(got), 3 + n + 5);
    assert_memory_equal(got + 3, log, n);
    assert_string_equal(got + 3 + n, "<end>");
    free(log);
    kiln_context_destroy(ctx);
}

static void test_allocator_and_oom_message(void **state)
{
    (void)state;
    kiln_test_allocator a;
    kiln_test_allocator_init(&a, -1);
    kiln_context_options options = {.allocator = &a.allocator};
    kiln_context *ctx = NULL;
    assert_int_equal(kiln_context_create(&options, &ctx), KILN_OK);
    assert_int_equal(a.live, 1);
    char *s = kiln__strdup(ctx, "hello");
    assert_string_equal(s, "hello");
    assert_int_equal(a.live, 2);
    kiln__free(ctx, s);
    /* With the heap exhausted, the message still records that it was lost, inline. */
    a.budget = 0;
    kiln__error(ctx, KILN_ERR_NO_MEMORY, "g", "%s", "detail");
    assert_contains(kiln_context_last_error(ctx), "g: (message lost: out of memory");
    assert_true(a.failures > 0);
    a.budget = -1;
    kiln_context_destroy(ctx);
    assert_int_equal(a.live, 0);

    /* A context that cannot allocate itself reports KILN_ERR_NO_MEMORY. */
    kiln_test_allocator_init(&a, 0);
    assert_int_equal(kiln_context_create(&options, &ctx), KILN_ERR_NO_MEMORY);
    assert_null(ctx);
    /* An incomplete allocator is rejected. */
    kiln_allocator partial = {.alloc = a.allocator.alloc};
    options.allocator = &partial;
    assert_int_equal(kiln_context_create(&options, &ctx), KILN_ERR_INVALID_ARGUMENT);
}

static void test_calloc_overflow(void **state)
{
    (void)state;
    kiln_context *ctx = NULL;
    assert_int_equal(kiln_context_create(NULL, &ctx), KILN_OK);
    assert_null(kiln__calloc(ctx, SIZE_MAX / 2, 4));
    kiln_context_destroy(ctx);
}

typedef struct captured {
    int n;
    kiln_log_level level;
    char text[256];
} captured;

static void capture(kiln_log_level level, const char *message, void *user)
{
    captured *c = user;
    c->n++;
    c->level = level;
    strncpy(c->text, message, sizeof c->text - 1);
}

static void test_log_levels(void **state)
{
    (void)state;
    captured c = {0};
    kiln_context_options options = {.log = capture, .log_user = &c, .log_level = KILN_LOG_WARN};
    kiln_context *ctx = NULL;
    assert_int_equal(kiln_context_create(&options, &ctx), KILN_OK);
    kiln__log(ctx, KILN_LOG_INFO, "hidden %d", 1);
    assert_int_equal(c.n, 0);
    kiln__log(ctx, KILN_LOG_WARN, "shown %d", 2);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.level, KILN_LOG_WARN);
    assert_string_equal(c.text, "shown 2");
    /* Messages longer than the inline buffer are delivered whole. */
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    kiln__log(ctx, KILN_LOG_ERROR, "%s", big);
    assert_int_equal(c.n, 2);
    assert_int_equal(strlen(c.text), sizeof c.text - 1);
    kiln_context_destroy(ctx);
}

static void test_format_bytes(void **state)
{
    (void)state;
    char out[32];
    assert_string_equal(kiln_format_bytes(0, out, sizeof out), "0 B");
    assert_string_equal(kiln_format_bytes(1023, out, sizeof out), "1023 B");
    assert_string_equal(kiln_format_bytes(1536, out, sizeof out), "1.50 KiB");
    assert_string_equal(kiln_format_bytes(3ull << 30, out, sizeof out), "3.00 GiB");
    assert_string_equal(kiln_format_bytes(80ull << 30, out, sizeof out), "80.0 GiB");
}

static void test_version(void **state)
{
    (void)state;
    assert_string_equal(kiln_version_string(), KILN_VERSION);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_message),     cmocka_unit_test(test_long_message),
        cmocka_unit_test(test_allocator_and_oom_message), cmocka_unit_test(test_calloc_overflow),
        cmocka_unit_test(test_log_levels),        cmocka_unit_test(test_format_bytes),
        cmocka_unit_test(test_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
