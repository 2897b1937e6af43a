/*
 * The Kiln context: the allocator, the log callback and the last error of one thread of use.
 *
 * Every other Kiln object is created from a context and records its failures there, so a
 * caller reads one place after any non-zero status. A context is not thread-safe; use one per
 * thread, or serialise calls on it.
 */
#ifndef KILN_CONTEXT_H
#define KILN_CONTEXT_H

#include <stddef.h>

#include "kiln/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln_context kiln_context;

/* A replaceable allocator. All three functions are required when one is given; `realloc` must
 * behave like C's realloc (NULL pointer allocates). Tests use this to inject failures. */
typedef struct kiln_allocator {
    void *(*alloc)(size_t n_bytes, void *user);
    void *(*realloc)(void *pointer, size_t n_bytes, void *user);
    void (*free)(void *pointer, void *user);
    void *user;
} kiln_allocator;

typedef enum kiln_log_level {
    KILN_LOG_DEBUG = 0,
    KILN_LOG_INFO = 1,
    KILN_LOG_WARN = 2,
    KILN_LOG_ERROR = 3,
} kiln_log_level;

/* Receives one complete message (no trailing newline). Called on the thread that made the
 * Kiln call. The library never prints; without a callback, logs are dropped. */
typedef void (*kiln_log_fn)(kiln_log_level level, const char *message, void *user);

typedef struct kiln_context_options {
    const kiln_allocator *allocator; /* NULL: the C library's malloc/realloc/free */
    kiln_log_fn log;                 /* NULL: no logging */
    void *log_user;
    kiln_log_level log_level; /* messages below this level are not formatted */
} kiln_context_options;

/* Creates a context. `options` may be NULL for defaults. The allocator is copied.
 * Returns KILN_ERR_INVALID_ARGUMENT when `out` is NULL or an allocator lacks a function, and
 * KILN_ERR_NO_MEMORY when the context itself cannot be allocated (there is then no context to
 * carry a message). */
kiln_status kiln_context_create(const kiln_context_options *options, kiln_context **out);

/* Destroys a context; every object created from it must be destroyed first. NULL is a no-op. */
void kiln_context_destroy(kiln_context *ctx);

/* The message of the most recent failure on this context, or "" when none. The string is owned
 * by the context and valid until the next call that fails or clears it. */
const char *kiln_context_last_error(const kiln_context *ctx);

/* The status of the most recent failure, or KILN_OK. */
kiln_status kiln_context_last_status(const kiln_context *ctx);

void kiln_context_clear_error(kiln_context *ctx);

/* Writes `n_bytes` in binary units ("512 B", "1.50 GiB") into `out`; returns `out`. */
const char *kiln_format_bytes(unsigned long long n_bytes, char *out, size_t capacity);

/* The library's version, "MAJOR.MINOR.PATCH". */
const char *kiln_version_string(void);

#ifdef __cplusplus
}
#endif

#endif
