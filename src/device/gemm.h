/*
 * The one internal GEMM interface: row-major C = alpha op(A) op(B) + beta C, optionally
 * batched with fixed strides. Ops call only this; which implementation runs (Kiln's own
 * register-tiled kernel on CPU devices, CLBlast elsewhere) is the device layer's choice.
 */
#ifndef KILN_DEVICE_GEMM_H
#define KILN_DEVICE_GEMM_H

#include <stdbool.h>
#include <stddef.h>

#include "device/device.h"

typedef struct kiln__gemm {
    bool transpose_a, transpose_b;
    size_t m, n, k; /* C is (m, n); op(A) is (m, k); op(B) is (k, n) */
    float alpha, beta;
    const kiln_buffer *a;
    size_t a_offset, lda, a_stride; /* offsets and strides in elements */
    const kiln_buffer *b;
    size_t b_offset, ldb, b_stride;
    const kiln_buffer *c;
    size_t c_offset, ldc, c_stride;
    size_t batch; /* 0 or 1: a single product */
} kiln__gemm;

/* Queues the product. `what` names the caller (op and tensor) in error messages. Returns
 * KILN_ERR_INVALID_ARGUMENT for inconsistent sizes and KILN_ERR_OPENCL when the backend
 * fails. Zero-sized products are no-ops. */
kiln_status kiln__gemm_run(kiln_device *dev, const char *what, const kiln__gemm *g);

/* The implementations behind kiln__gemm_run. */
typedef enum kiln__gemm_backend {
    KILN__GEMM_KILN,    /* cl/gemm.cl, the default on CPU devices */
    KILN__GEMM_CLBLAST, /* CLBlast, the default on every other device */
} kiln__gemm_backend;

/* The backend kiln__gemm_run uses on `dev`: the environment variable KILN_GEMM ("kiln" or
 * "clblast", read on every call, for comparisons and tests) or the device's default. Products
 * whose indices overflow 32 bits go to CLBlast whatever the choice, and k = 0 (C = beta C,
 * which CLBlast rejects) to Kiln's kernel. */
kiln__gemm_backend kiln__gemm_get_backend(const kiln_device *dev);

/* Frees the device's GEMM scratch buffers, the workspace (a transposed A packed for Kiln's
 * kernel) and the split products' slices, each kept between calls and grown on demand. They are
 * not counted in kiln_device_get_allocated_bytes, which tracks the caller's buffers. Called by
 * kiln_device_destroy after the queue finished. */
void kiln__gemm_release(kiln_device *dev);

/* A scratch buffer of the device's GEMM layer, `*slot`, grown to at least n_bytes (a smaller
 * one is released and replaced); `purpose` names it in an allocation failure. */
kiln_status kiln__gemm_scratch(kiln_device *dev, kiln_buffer **slot, size_t n_bytes,
                               const char *purpose, kiln_buffer **out);

/* ---- split-k: a long sum over few outputs, in slices (gemm_split.c) ---- */

/* How many slices of k kiln__gemm_run cuts `g` into: 1 (not split) unless the device is no
 * CPU and `g` is a single product with few outputs and a long k (KILN_GEMM_SPLIT=N forces N
 * on any device, 0 or 1 turns splitting off; another value is logged and ignored). */
size_t kiln__gemm_split_slices(kiln_device *dev, const kiln__gemm *g);

/* Runs `g` as `slices` products over consecutive slices of k, batched into a scratch buffer,
 * then sums them into C (C = beta C + the sum). */
kiln_status kiln__gemm_run_split(kiln_device *dev, const char *what, const kiln__gemm *g,
                                 size_t slices);

/* "kiln" or "clblast". */
const char *kiln__gemm_backend_name(kiln__gemm_backend backend);

/* ---- choices: which implementation runs a product ---- */

/* One way to run a product: CLBlast, or Kiln's kernel with a register tile of `tm` rows by
 * `nv` vectors of `vw` floats, reading its operands in place or from packed panels; or, for an
 * NT product read in place (`dot`), gemm_nt_dot's tile of `tm` rows by `nv` columns, each a
 * dot product over `vw`-wide vectors of k. */
typedef struct kiln__gemm_choice {
    kiln__gemm_backend backend;
    int tm, nv, vw; /* Kiln's kernel only: 1-32, 1-8, 2/4/8/16 */
    bool pack;      /* Kiln's kernel only */
    bool dot;       /* Kiln's kernel, NT products only; pack wins when both are set */
} kiln__gemm_choice;

/* The choice for `g` on `dev` without tuning results: the shipped default of the device's
 * class (Kiln's kernel on CPUs, with the tile measured best for the device's native float
 * vector width; CLBlast on GPUs and accelerators), then the environment's overrides
 * (KILN_GEMM, KILN_GEMM_TILE, KILN_GEMM_PACK, KILN_GEMM_DOT). kiln__gemm_run uses the device's
 * tuning table (gemm_table.c) before this. */
kiln__gemm_choice kiln__gemm_default_choice(kiln_device *dev, const kiln__gemm *g);

/* What kiln__gemm_run runs `g` with: the tuning table's entry with the environment's overrides
 * applied, else kiln__gemm_default_choice. *tuned (may be NULL) says which. */
kiln__gemm_choice kiln__gemm_choose(kiln_device *dev, const kiln__gemm *g, bool *tuned);

/* Logs that GEMM environment variable `name` holds `value`, which is not `form`, once per
 * device (products run by the thousand): the value is ignored. */
void kiln__gemm_warn_env(kiln_device *dev, const char *name, const char *value, const char *form);

/* Applies the environment's overrides to `c` (the environment always wins, for comparisons). */
void kiln__gemm_apply_env(kiln_device *dev, const kiln__gemm *g, kiln__gemm_choice *c);

/* kiln__gemm_run without splitting k: one product (or batch) with kiln__gemm_choose's choice.
 * The split product runs its slices through this, so they are never split again. */
kiln_status kiln__gemm_run_whole(kiln_device *dev, const char *what, const kiln__gemm *g);

/* kiln__gemm_run with the implementation fixed to `c` (the tuner times each choice through
 * this; products whose indices overflow 32 bits still go to CLBlast). */
kiln_status kiln__gemm_run_choice(kiln_device *dev, const char *what, const kiln__gemm *g,
                                  const kiln__gemm_choice *c);

/* "clblast", or "kiln 14x2x16" with " packed" when it packs or " dot" for the dot-product
 * form, into `out`. */
void kiln__gemm_choice_name(const kiln__gemm_choice *c, char *out, size_t capacity);
/* Parses kiln__gemm_choice_name's form; false when `text` is not one. */
bool kiln__gemm_choice_parse(const char *text, kiln__gemm_choice *out);

/* ---- the tuning table (gemm_table.c) ---- */

/* The tuned choice for `g`: an entry for exactly this shape (transposes, m, n, k, batch
 * count), else the first whose transposes and batching (one product or several) agree and whose
 * m, n and k fall in the same power-of-two classes. False when the device has no tuning
 * results or none fits. */
bool kiln__gemm_table_find(const kiln_device *dev, const kiln__gemm *g, kiln__gemm_choice *out);
/* Reads the device's tuning file from the cache directory, if any, at device creation. A
 * missing file is normal; an unreadable or malformed one is logged as a warning naming it and
 * ignored (defaults are used): tuning results never stop a run. */
void kiln__gemm_table_load(kiln_device *dev);
/* Adds `g`'s shape to the device's recording when one is on (kiln_device_record_gemm_shapes). */
kiln_status kiln__gemm_table_record(kiln_device *dev, const kiln__gemm *g);
void kiln__gemm_table_release(kiln_device *dev);
/* Sets `shape`'s entry (replacing one for the same shape). */
kiln_status kiln__gemm_table_put(kiln_device *dev, const kiln_gemm_shape *shape,
                                 const kiln__gemm_choice *choice, double gflops);
/* The CLBlast parameter set tuning chose ("" for CLBlast's defaults), and setting it. */
const char *kiln__gemm_table_clblast_params(const kiln_device *dev);
kiln_status kiln__gemm_table_set_clblast_params(kiln_device *dev, const char *name);
/* Writes the table to the device's tuning file atomically; nothing when the cache is off. */
kiln_status kiln__gemm_table_save(kiln_device *dev);

/* ---- CLBlast's parameter sets (gemm_tune.c) ---- */

/* Whether `name` is one of the parameter sets the tuner tries. */
bool kiln__gemm_tune_clblast_params_known(const char *name);
/* Passes the table's CLBlast parameter set to CLBlastOverrideParameters (a failure is logged;
 * CLBlast then keeps its defaults). Nothing when the table holds none. */
void kiln__gemm_tune_apply_clblast_params(kiln_device *dev);

#endif
