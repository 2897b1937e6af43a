/*
 * Internal view of the context: allocation through the replaceable allocator, error recording
 * and logging. Every layer includes this; it includes nothing but core and libc.
 */
#ifndef KILN_CORE_CONTEXT_H
#define KILN_CORE_CONTEXT_H

#include <stdarg.h>
#include <stddef.h>

#include "kiln/context.h"

#if defined(__GNUC__) || defined(__clang__)
#define KILN__PRINTF(fmt_index, arg_index) __attribute__((format(printf, fmt_index, arg_index)))
#else
#define KILN__PRINTF(fmt_index, arg_index)
#endif

/* Short messages survive even when the heap is exhausted: they fit in this inline buffer. */
enum { KILN__ERROR_INLINE = 1024 };

struct kiln_context {
    kiln_allocator allocator;
    kiln_log_fn log;
    void *log_user;
    kiln_log_level log_level;
    kiln_status last_status;
    char *last_error_heap; /* NULL when the message is in last_error_inline */
    char last_error_inline[KILN__ERROR_INLINE];
};

void *kiln__alloc(kiln_context *ctx, size_t n_bytes);
/* Zeroed; fails cleanly (NULL) when n * size overflows. */
void *kiln__calloc(kiln_context *ctx, size_t n, size_t size);
void *kiln__realloc(kiln_context *ctx, void *pointer, size_t n_bytes);
void kiln__free(kiln_context *ctx, void *pointer);
char *kiln__strdup(kiln_context *ctx, const char *text);
/* A printf-formatted string owned by the caller (free with kiln__free); NULL when out of memory. */
char *kiln__format(kiln_context *ctx, const char *fmt, ...) KILN__PRINTF(2, 3);

/* Records "function: message" as the context's last error and returns `status`. */
kiln_status kiln__error(kiln_context *ctx, kiln_status status, const char *function,
                        const char *fmt, ...) KILN__PRINTF(4, 5);
/* Appends text to the last error (for long attachments such as a build log). */
void kiln__error_append(kiln_context *ctx, const char *fmt, ...) KILN__PRINTF(2, 3);

void kiln__log(kiln_context *ctx, kiln_log_level level, const char *fmt, ...) KILN__PRINTF(3, 4);

/* Records the error and jumps to the function's `cleanup:` label; needs a `kiln_status rc`. */
#define KILN_FAIL(ctx, status, ...)                                                                \
    do {                                                                                           \
        rc = kiln__error((ctx), (status), __func__, __VA_ARGS__);                                  \
        goto cleanup;                                                                              \
    } while (0)

/* Propagates a failure whose message is already recorded. */
#define KILN_CHECK(expr)                                                                           \
    do {                                                                                           \
        rc = (expr);                                                                               \
        if (rc != KILN_OK)                                                                         \
            goto cleanup;                                                                          \
    } while (0)

#endif
