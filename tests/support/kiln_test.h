/*
 * Helpers shared by the test executables: the device policy (skip with 77 when no OpenCL
 * device exists, fail under CI=true), an allocator that fails on demand, temporary
 * directories, and message assertions. Test-only; never linked into the library.
 */
#ifndef KILN_TEST_H
#define KILN_TEST_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>

#include "kiln/context.h"
#include "kiln/device.h"

/* Exit status that CTest reports as "skipped" (SKIP_RETURN_CODE). */
enum { KILN_TEST_SKIP = 77 };

/* The device spec tests run on: $KILN_TEST_DEVICE, else "pocl". */
const char *kiln_test_device_spec(void);

/* Call first in main() of a device test. Returns normally when a device matching the test
 * spec exists. Otherwise prints why and exits 77, or 1 when CI=true (CI must never skip). */
void kiln_test_require_device(void);

/* A context whose warnings and errors are printed to stderr. Fails the test on error. */
kiln_context *kiln_test_context(void);

/* Opens the test device with the cache in `cache_dir` (NULL disables the cache). */
kiln_device *kiln_test_open_device(kiln_context *ctx, const char *cache_dir);

/* An allocator that succeeds `budget` times and then fails every request; counts live blocks. */
typedef struct kiln_test_allocator {
    kiln_allocator allocator;
    long budget; /* remaining successes; negative means unlimited */
    long live;   /* allocations not yet freed */
    long failures;
} kiln_test_allocator;

void kiln_test_allocator_init(kiln_test_allocator *a, long budget);

/* Out-of-memory sweeps (for budget = 0, 1, ...: set a->budget, run the call, reset it to -1,
 * destroy everything). kiln_test_counted_context initialises `a` unlimited and returns a
 * context that allocates through it; fails the test if it cannot be made. After a round,
 * kiln_test_oom_round_done asserts that nothing is left allocated and that the call either
 * succeeded (true: the sweep is over) or failed with KILN_ERR_NO_MEMORY (false: next budget). */
kiln_context *kiln_test_counted_context(kiln_test_allocator *a);
bool kiln_test_oom_round_done(const kiln_test_allocator *a, kiln_status rc);

/* A fresh, empty directory under $KILN_TEST_TMP (or /tmp); the caller frees the path. */
char *kiln_test_make_temp_dir(const char *prefix);
/* Removes a directory made by kiln_test_make_temp_dir and the files in it. */
void kiln_test_remove_dir(const char *path);
/* The entries of `dir` other than "." and "..", hidden ones included (a leftover temporary
 * counts); fails the test when the directory cannot be read. */
int kiln_test_count_entries(const char *dir);
/* "<dir>/<name>", malloc'd (the caller frees it). */
char *kiln_test_path_in(const char *dir, const char *name);
/* The whole file, malloc'd with a NUL after its *n bytes; fails the test when unreadable. */
unsigned char *kiln_test_read_file(const char *path, size_t *n);
/* Replaces `path` by n bytes of data; fails the test when it cannot. */
void kiln_test_write_file(const char *path, const void *data, size_t n);

/* Asserts that `text` contains `needle`, printing both when it does not. */
#define assert_contains(text, needle)                                                              \
    kiln_test_assert_contains((text), (needle), __FILE__, __LINE__)
void kiln_test_assert_contains(const char *text, const char *needle, const char *file, int line);

#endif

#ifndef KILN_TEST_SUITES_H
#define KILN_TEST_SUITES_H
#include "kiln/ops.h"

/* Runs the check suite `name` (tests/ref/<name>.c) on the test device; fails the cmocka test
 * when any row fails or no row ran. Prints failing rows (every row with KILN_TEST_VERBOSE=1). */
void kiln_test_run_suite(const char *name);

/* Asserts that kiln_op_infer rejects these inputs with `status` and a message naming the op,
 * every input shape, and containing `needle`. */
void kiln_test_expect_infer_error(const char *op, const void *params, const kiln_shape *inputs,
                                  int n_inputs, kiln_status status, const char *needle);
#endif
