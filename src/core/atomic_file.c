/*
 * Atomic file replacement (atomic_file.h): temporary file, flush, fsync, rename.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "core/atomic_file.h"

int (*kiln__atomic_before_rename)(const char *temp_path);

kiln_status kiln__atomic_begin(kiln__atomic_file *af, kiln_context *ctx, const char *function,
                               const char *path)
{
    static unsigned counter;
    kiln_status rc = KILN_OK;
    int fd = -1;
    *af = (kiln__atomic_file){.ctx = ctx, .function = function};
    af->path = kiln__strdup(ctx, path);
    if (af->path == NULL)
        goto no_memory;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        kiln__free(ctx, af->temp);
        af->temp = kiln__format(ctx, "%s.tmp-%ld-%u", path, (long)getpid(), counter++);
        if (af->temp == NULL)
            goto no_memory;
        fd = open(af->temp, O_WRONLY | O_CREAT | O_EXCL, 0666);
        if (fd < 0 && errno != EEXIST) {
            rc = kiln__error(ctx, KILN_ERR_IO, function,
                             "cannot create the temporary file %s to write %s: %s", af->temp, path,
                             strerror(errno));
            kiln__free(ctx, af->temp);
            af->temp = NULL; /* nothing was created */
            kiln__atomic_abort(af);
            return rc;
        }
    }
    if (fd < 0) {
        rc = kiln__error(ctx, KILN_ERR_IO, function,
                         "cannot create a temporary file beside %s: 100 names taken", path);
        kiln__free(ctx, af->temp);
        af->temp = NULL;
        kiln__atomic_abort(af);
        return rc;
    }
    af->file = fdopen(fd, "wb");
    if (af->file == NULL) {
        rc = kiln__error(ctx, KILN_ERR_IO, function, "cannot open %s: %s", af->temp,
                         strerror(errno));
        close(fd);
        kiln__atomic_abort(af);
        return rc;
    }
    return KILN_OK;
no_memory:
    kiln__atomic_abort(af);
    return kiln__error(ctx, KILN_ERR_NO_MEMORY, function, "out of memory writing %s", path);
}

/* fsync of the directory makes the rename itself durable; some file systems refuse it, and
 * the file is complete either way, so failures are ignored. */
static void sync_directory(kiln_context *ctx, const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash == NULL   ? kiln__strdup(ctx, ".")
                : slash == path ? kiln__strdup(ctx, "/")
                                : kiln__format(ctx, "%.*s", (int)(slash - path), path);
    if (dir == NULL)
        return;
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    kiln__free(ctx, dir);
}

kiln_status kiln__atomic_commit(kiln__atomic_file *af)
{
    kiln_context *ctx = af->ctx;
    kiln_status rc = KILN_OK;
    FILE *f = af->file;
    af->file = NULL;
    bool failed_before = ferror(f) != 0; /* errno from then is long gone */
    bool ok = !failed_before && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int e = errno;
    int closed = fclose(f);
    if (!ok || closed != 0) {
        rc = kiln__error(ctx, KILN_ERR_IO, af->function,
                         "cannot write %s (the temporary file for %s): %s", af->temp, af->path,
                         failed_before ? "a write failed" : strerror(ok ? errno : e));
    } else if (kiln__atomic_before_rename != NULL && kiln__atomic_before_rename(af->temp) != 0) {
        rc = kiln__error(ctx, KILN_ERR_IO, af->function,
                         "cannot rename %s to %s: failure injected by a test", af->temp, af->path);
    } else if (rename(af->temp, af->path) != 0) {
        rc = kiln__error(ctx, KILN_ERR_IO, af->function, "cannot rename %s to %s: %s", af->temp,
                         af->path, strerror(errno));
    } else {
        kiln__free(ctx, af->temp);
        af->temp = NULL; /* renamed: nothing to remove */
        sync_directory(ctx, af->path);
    }
    kiln__atomic_abort(af);
    return rc;
}

void kiln__atomic_abort(kiln__atomic_file *af)
{
    if (af->file != NULL)
        fclose(af->file);
    if (af->temp != NULL)
        unlink(af->temp);
    kiln__free(af->ctx, af->temp);
    kiln__free(af->ctx, af->path);
    *af = (kiln__atomic_file){.ctx = af->ctx, .function = af->function};
}
