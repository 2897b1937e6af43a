/*
 * The context object: replaceable allocation, the last-error record and the log callback.
 *
 * Error messages are formatted into the heap when they are long (build logs run to kilobytes)
 * and into an inline buffer otherwise, so that recording "out of memory" never itself needs
 * memory. Nothing here prints; logs go to the caller's callback.
 */
#include "core/context.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef KILN_VERSION
#define KILN_VERSION "0.0.0"
#endif

static void *default_alloc(size_t n_bytes, void *user)
{
    (void)user;
    return malloc(n_bytes);
}

static void *default_realloc(void *pointer, size_t n_bytes, void *user)
{
    (void)user;
    return realloc(pointer, n_bytes);
}

static void default_free(void *pointer, void *user)
{
    (void)user;
    free(pointer);
}

const char *kiln_version_string(void)
{
    return KILN_VERSION;
}

kiln_status kiln_context_create(const kiln_context_options *options, kiln_context **out)
{
    if (out == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    *out = NULL;
    kiln_allocator allocator = {default_alloc, default_realloc, default_free, NULL};
    if (options != NULL && options->allocator != NULL) {
        const kiln_allocator *a = options->allocator;
        if (a->alloc == NULL || a->realloc == NULL || a->free == NULL)
            return KILN_ERR_INVALID_ARGUMENT;
        allocator = *a;
    }
    kiln_context *ctx = allocator.alloc(sizeof *ctx, allocator.user);
    if (ctx == NULL)
        return KILN_ERR_NO_MEMORY;
    memset(ctx, 0, sizeof *ctx);
    ctx->allocator = allocator;
    ctx->log_level = KILN_LOG_INFO;
    if (options != NULL) {
        ctx->log = options->log;
        ctx->log_user = options->log_user;
        ctx->log_level = options->log_level;
    }
    *out = ctx;
    return KILN_OK;
}

void kiln_context_destroy(kiln_context *ctx)
{
    if (ctx == NULL)
        return;
    kiln_context_clear_error(ctx);
    kiln_allocator allocator = ctx->allocator;
    allocator.free(ctx, allocator.user);
}

const char *kiln_context_last_error(const kiln_context *ctx)
{
    if (ctx == NULL)
        return "";
    return ctx->last_error_heap != NULL ? ctx->last_error_heap : ctx->last_error_inline;
}

kiln_status kiln_context_last_status(const kiln_context *ctx)
{
    return ctx == NULL ? KILN_OK : ctx->last_status;
}

void kiln_context_clear_error(kiln_context *ctx)
{
    if (ctx == NULL)
        return;
    if (ctx->last_error_heap != NULL)
        ctx->allocator.free(ctx->last_error_heap, ctx->allocator.user);
    ctx->last_error_heap = NULL;
    ctx->last_error_inline[0] = '\0';
    ctx->last_status = KILN_OK;
}

void *kiln__alloc(kiln_context *ctx, size_t n_bytes)
{
    return ctx->allocator.alloc(n_bytes == 0 ? 1 : n_bytes, ctx->allocator.user);
}

void *kiln__calloc(kiln_context *ctx, size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    void *p = kiln__alloc(ctx, n * size);
    if (p != NULL)
        memset(p, 0, n * size == 0 ? 1 : n * size);
    return p;
}

void *kiln__realloc(kiln_context *ctx, void *pointer, size_t n_bytes)
{
    return ctx->allocator.realloc(pointer, n_bytes == 0 ? 1 : n_bytes, ctx->allocator.user);
}

void kiln__free(kiln_context *ctx, void *pointer)
{
    if (pointer != NULL)
        ctx->allocator.free(pointer, ctx->allocator.user);
}

char *kiln__strdup(kiln_context *ctx, const char *text)
{
    size_t n = strlen(text) + 1;
    char *copy = kiln__alloc(ctx, n);
    if (copy != NULL)
        memcpy(copy, text, n);
    return copy;
}

static char *vformat(kiln_context *ctx, const char *fmt, va_list args)
{
    va_list measure;
    va_copy(measure, args);
    int n = vsnprintf(NULL, 0, fmt, measure);
    va_end(measure);
    if (n < 0)
        return NULL;
    char *text = kiln__alloc(ctx, (size_t)n + 1);
    if (text != NULL)
        vsnprintf(text, (size_t)n + 1, fmt, args);
    return text;
}

char *kiln__format(kiln_context *ctx, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    char *text = vformat(ctx, fmt, args);
    va_end(args);
    return text;
}

/* Replaces the last error with `prefix` + formatted text; falls back to the inline buffer
 * (truncating) when the heap copy cannot be made. */
static void set_message(kiln_context *ctx, const char *prefix, const char *fmt, va_list args)
{
    char *body = vformat(ctx, fmt, args);
    char *joined = NULL;
    if (body != NULL)
        joined = kiln__format(ctx, "%s%s", prefix, body);
    if (ctx->last_error_heap != NULL)
        kiln__free(ctx, ctx->last_error_heap);
    ctx->last_error_heap = NULL;
    if (joined != NULL && strlen(joined) >= sizeof ctx->last_error_inline) {
        ctx->last_error_heap = joined;
        joined = NULL;
    } else if (joined != NULL) {
        memcpy(ctx->last_error_inline, joined, strlen(joined) + 1);
    } else {
        snprintf(ctx->last_error_inline, sizeof ctx->last_error_inline,
                 "%s(message lost: out of memory while formatting it)", prefix);
    }
    kiln__free(ctx, joined);
    kiln__free(ctx, body);
}

kiln_status kiln__error(kiln_context *ctx, kiln_status status, const char *function,
                        const char *fmt, ...)
{
    if (ctx == NULL)
        return status;
    char prefix[128];
    snprintf(prefix, sizeof prefix, "%s: ", function);
    va_list args;
    va_start(args, fmt);
    set_message(ctx, prefix, fmt, args);
    va_end(args);
    ctx->last_status = status;
    return status;
}

void kiln__error_append(kiln_context *ctx, const char *fmt, ...)
{
    if (ctx == NULL)
        return;
    va_list args;
    va_start(args, fmt);
    char *extra = vformat(ctx, fmt, args);
    va_end(args);
    if (extra == NULL)
        return;
    const char *current = kiln_context_last_error(ctx);
    char *joined = kiln__format(ctx, "%s%s", current, extra);
    kiln__free(ctx, extra);
    if (joined == NULL)
        return;
    if (ctx->last_error_heap != NULL)
        kiln__free(ctx, ctx->last_error_heap);
    ctx->last_error_heap = joined;
}

void kiln__log(kiln_context *ctx, kiln_log_level level, const char *fmt, ...)
{
    if (ctx == NULL || ctx->log == NULL || level < ctx->log_level)
        return;
    char inline_text[512];
    va_list args;
    va_start(args, fmt);
    va_list measure;
    va_copy(measure, args);
    int n = vsnprintf(inline_text, sizeof inline_text, fmt, measure);
    va_end(measure);
    if (n >= 0 && (size_t)n >= sizeof inline_text) {
        char *text = vformat(ctx, fmt, args);
        if (text != NULL) {
            ctx->log(level, text, ctx->log_user);
            kiln__free(ctx, text);
            va_end(args);
            return;
        }
    }
    va_end(args);
    if (n >= 0)
        ctx->log(level, inline_text, ctx->log_user);
}
