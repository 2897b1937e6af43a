/*
 * Byte input for the readers: files opened with zlib's gzopen (plain and gzip alike, told
 * apart by content), read in chunks that fit gzread's int, with the decompressed offset kept
 * for messages. Short reads, damaged or truncated gzip streams and trailing bytes become
 * errors naming the file and offset. Parsing belongs to idx.c, csv.c and npy.c.
 * zlib allocates its own stream state with malloc; everything else uses the context.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <zlib.h>

#include "data/data_internal.h"

enum { CHUNK = 1 << 30, GZ_BUFFER = 1 << 17 };

kiln_status kiln__reader_open(kiln__reader *r, kiln_context *ctx, const char *function,
                              const char *path)
{
    memset(r, 0, sizeof *r);
    r->ctx = ctx;
    r->function = function;
    r->path = path;
    if (path == NULL || path[0] == '\0')
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, function, "the file path is empty");
    errno = 0;
    gzFile file = gzopen(path, "rb");
    if (file == NULL) {
        const char *reason = errno != 0 ? strerror(errno) : "out of memory in zlib";
        return kiln__error(ctx, KILN_ERR_IO, function, "cannot open '%s': %s", path, reason);
    }
    gzbuffer(file, GZ_BUFFER);
    r->file = file;
    return KILN_OK;
}

void kiln__reader_close(kiln__reader *r)
{
    if (r->file != NULL)
        gzclose_r((gzFile)r->file);
    r->file = NULL;
}

kiln_status kiln__reader_read(kiln__reader *r, void *buffer, size_t n, size_t *got)
{
    gzFile file = r->file;
    unsigned char *out = buffer;
    size_t done = 0;
    *got = 0;
    while (done < n) {
        size_t want = n - done < CHUNK ? n - done : CHUNK;
        int k = gzread(file, out + done, (unsigned)want);
        int errnum = Z_OK;
        const char *message = gzerror(file, &errnum);
        if (k < 0 || (errnum != Z_OK && errnum != Z_BUF_ERROR)) {
            r->offset += k > 0 ? k : 0;
            if (errnum == Z_ERRNO)
                return kiln__error(r->ctx, KILN_ERR_IO, r->function,
                                   "reading '%s' failed at byte offset %lld: %s", r->path,
                                   (long long)r->offset, strerror(errno));
            return kiln__error(r->ctx, KILN_ERR_CORRUPT, r->function,
                               "'%s': damaged gzip data at decompressed byte offset %lld (%s)",
                               r->path, (long long)r->offset, message);
        }
        done += (size_t)k;
        r->offset += k;
        if (errnum == Z_BUF_ERROR)
            return kiln__error(r->ctx, KILN_ERR_CORRUPT, r->function,
                               "'%s': the gzip stream ends early, at decompressed byte offset "
                               "%lld (a truncated .gz file)",
                               r->path, (long long)r->offset);
        if ((size_t)k < want)
            break; /* end of file */
    }
    *got = done;
    return KILN_OK;
}

kiln_status kiln__reader_read_exact(kiln__reader *r, void *buffer, size_t n, const char *what)
{
    int64_t start = r->offset;
    size_t got = 0;
    kiln_status rc = kiln__reader_read(r, buffer, n, &got);
    if (rc != KILN_OK)
        return rc;
    if (got < n)
        return kiln__error(r->ctx, KILN_ERR_CORRUPT, r->function,
                           "'%s': truncated at byte offset %lld: expected %zu bytes of %s from "
                           "byte offset %lld, got %zu",
                           r->path, (long long)r->offset, n, what, (long long)start, got);
    return KILN_OK;
}

kiln_status kiln__reader_expect_end(kiln__reader *r, const char *what)
{
    unsigned char extra[256];
    int64_t end = r->offset;
    size_t got = 0;
    kiln_status rc = kiln__reader_read(r, extra, sizeof extra, &got);
    if (rc != KILN_OK)
        return rc;
    if (got > 0) {
        /* Count the rest so the message says how much is extra. */
        size_t more = got;
        while (more == sizeof extra) {
            rc = kiln__reader_read(r, extra, sizeof extra, &more);
            if (rc != KILN_OK)
                return rc;
        }
        return kiln__error(r->ctx, KILN_ERR_CORRUPT, r->function,
                           "'%s': %lld unexpected bytes after byte offset %lld, where %s ends "
                           "(is the header's size wrong?)",
                           r->path, (long long)(r->offset - end), (long long)end, what);
    }
    return KILN_OK;
}

kiln_status kiln__read_file(kiln_context *ctx, const char *function, const char *path, char **data,
                            size_t *n_bytes)
{
    kiln_status rc = KILN_OK;
    kiln__reader r;
    char *buffer = NULL;
    size_t capacity = 1 << 16, used = 0;
    *data = NULL;
    *n_bytes = 0;
    KILN_CHECK(kiln__reader_open(&r, ctx, function, path));
    buffer = kiln__alloc(ctx, capacity);
    if (buffer == NULL)
        KILN__FAIL_AS(function, ctx, KILN_ERR_NO_MEMORY, "no memory for %zu bytes of '%s'",
                      capacity, path);
    for (;;) {
        size_t got = 0;
        KILN_CHECK(kiln__reader_read(&r, buffer + used, capacity - used - 1, &got));
        used += got;
        if (used < capacity - 1)
            break; /* end of file; one byte is left for the terminator */
        if (capacity > SIZE_MAX / 2)
            KILN__FAIL_AS(function, ctx, KILN_ERR_NO_MEMORY, "'%s' is too large to read", path);
        char *grown = kiln__realloc(ctx, buffer, capacity * 2);
        if (grown == NULL)
            KILN__FAIL_AS(function, ctx, KILN_ERR_NO_MEMORY, "no memory for %zu bytes of '%s'",
                          capacity * 2, path);
        buffer = grown;
        capacity *= 2;
    }
    buffer[used] = '\0';
    *data = buffer;
    *n_bytes = used;
    buffer = NULL;
cleanup:
    kiln__free(ctx, buffer);
    kiln__reader_close(&r);
    return rc;
}
