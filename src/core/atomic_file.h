/*
 * Files written whole or not at all: the bytes go to a fresh temporary file beside the target
 * (created exclusively, so concurrent writers never share one), which is flushed, synced and
 * renamed over the target; on any failure the temporary is removed and the target untouched.
 * Checkpoints, the program-binary cache and prepared-data files all write through this.
 */
#ifndef KILN_CORE_ATOMIC_FILE_H
#define KILN_CORE_ATOMIC_FILE_H

#include <stdbool.h>
#include <stdio.h>

#include "core/context.h"

typedef struct kiln__atomic_file {
    kiln_context *ctx;
    const char *function; /* prefixes every message */
    char *path;           /* the target */
    char *temp;           /* "<path>.tmp-<pid>-<n>" */
    FILE *file;           /* open on temp until commit or abort */
} kiln__atomic_file;

/* Creates the temporary file for `path`; af->file is then open for writing. KILN_ERR_IO
 * naming the temporary and the target when it cannot be created. */
kiln_status kiln__atomic_begin(kiln__atomic_file *af, kiln_context *ctx, const char *function,
                               const char *path);
/* Flushes, syncs and closes the temporary and renames it over the target (then syncs the
 * directory, ignoring file systems that refuse). KILN_ERR_IO naming both files on failure,
 * after which the temporary is gone. Always releases what begin took. */
kiln_status kiln__atomic_commit(kiln__atomic_file *af);
/* Closes and removes the temporary; the target stays as it was. Safe after a failed begin. */
void kiln__atomic_abort(kiln__atomic_file *af);

/* Test hook, NULL in normal use: called with the temporary's path once it is complete, just
 * before the rename. A non-zero return makes the commit fail there (KILN_ERR_IO). */
extern int (*kiln__atomic_before_rename)(const char *temp_path);

#endif
