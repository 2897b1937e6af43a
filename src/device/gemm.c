/*
 * GEMM backends behind kiln__gemm_run: Kiln's own register-tiled kernel (cl/gemm.cl), the
 * default on CPU devices, and CLBlast's SGEMM / strided-batched SGEMM, the default elsewhere.
 * The choice per product comes from the device's tuning table (gemm_table.c) when it has an
 * entry, else from the device class's default; KILN_GEMM=kiln|clblast, KILN_GEMM_TILE=TMxNVxVW,
 * KILN_GEMM_PACK=0|1 and KILN_GEMM_DOT=0|1 override either (the last three whenever Kiln's
 * kernel runs).
 * Sizes are validated here (leading dimensions against the row-major shapes, the last
 * element inside each buffer) so a wrong call is a message naming the caller, not a fault.
 */
#include <clblast_c.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device/gemm.h"

static const char *clblast_status_name(CLBlastStatusCode code)
{
    switch (code) {
    case CLBlastNotImplemented:
        return "CLBlastNotImplemented";
    case CLBlastInvalidMatrixA:
        return "CLBlastInvalidMatrixA";
    case CLBlastInvalidMatrixB:
        return "CLBlastInvalidMatrixB";
    case CLBlastInvalidMatrixC:
        return "CLBlastInvalidMatrixC";
    case CLBlastInsufficientMemoryA:
        return "CLBlastInsufficientMemoryA";
    case CLBlastInsufficientMemoryB:
        return "CLBlastInsufficientMemoryB";
    case CLBlastInsufficientMemoryC:
        return "CLBlastInsufficientMemoryC";
    case CLBlastInvalidLocalMemUsage:
        return "CLBlastInvalidLocalMemUsage";
    case CLBlastNoHalfPrecision:
        return "CLBlastNoHalfPrecision";
    case CLBlastNoDoublePrecision:
        return "CLBlastNoDoublePrecision";
    case CLBlastInvalidBatchCount:
        return "CLBlastInvalidBatchCount";
    case CLBlastUnknownError:
        return "CLBlastUnknownError";
    default:
        return kiln__cl_error_name((cl_int)code);
    }
}

/* x * y + z into *out; false when it overflows. */
static bool mul_add(size_t x, size_t y, size_t z, size_t *out)
{
    if (x != 0 && y > (SIZE_MAX - z) / x)
        return false;
    *out = x * y + z;
    return true;
}

/* Elements one operand spans: its last element's index + 1 over the whole batch, or SIZE_MAX
 * when that overflows (which no buffer can hold). */
static size_t span(size_t rows, size_t cols, size_t ld, size_t offset, size_t stride, size_t batch)
{
    size_t last_row = 0, total = 0;
    if (!mul_add(rows - 1, ld, cols, &last_row) || !mul_add(batch - 1, stride, last_row, &total) ||
        total > SIZE_MAX - offset || total + offset > SIZE_MAX / sizeof(float))
        return SIZE_MAX;
    return total + offset;
}

static kiln_status check_operand(kiln_device *dev, const char *what, char name, size_t rows,
                                 size_t cols, size_t ld, size_t offset, size_t stride, size_t batch,
                                 const kiln_buffer *buffer)
{
    if (buffer == NULL || ld < cols)
        return kiln__error(dev->ctx, KILN_ERR_INVALID_ARGUMENT, "kiln__gemm_run",
                           "%s: GEMM operand %c (%zu x %zu) has leading dimension %zu", what, name,
                           rows, cols, ld);
    size_t elements = span(rows, cols, ld, offset, stride, batch);
    size_t need = elements == SIZE_MAX ? SIZE_MAX : elements * sizeof(float);
    if (need > kiln_buffer_get_size(buffer))
        return kiln__error(dev->ctx, KILN_ERR_INVALID_ARGUMENT, "kiln__gemm_run",
                           "%s: GEMM operand %c needs %zu bytes, its buffer has %zu", what, name,
                           need, kiln_buffer_get_size(buffer));
    return KILN_OK;
}

/* ---- backend choice ---- */

/* The backend KILN_GEMM names, or the device's default: ours on CPUs, CLBlast elsewhere. */
kiln__gemm_backend kiln__gemm_get_backend(const kiln_device *dev)
{
    const char *env = getenv("KILN_GEMM");
    if (env != NULL && strcmp(env, "clblast") == 0)
        return KILN__GEMM_CLBLAST;
    if (env != NULL && strcmp(env, "kiln") == 0)
        return KILN__GEMM_KILN;
    return dev->info.type == KILN_DEVICE_TYPE_CPU ? KILN__GEMM_KILN : KILN__GEMM_CLBLAST;
}

const char *kiln__gemm_backend_name(kiln__gemm_backend backend)
{
    return backend == KILN__GEMM_KILN ? "kiln" : "clblast";
}

static bool valid_tile(int tm, int nv, int vw)
{
    return tm >= 1 && tm <= 32 && nv >= 1 && nv <= 8 && (vw == 2 || vw == 4 || vw == 8 || vw == 16);
}

void kiln__gemm_choice_name(const kiln__gemm_choice *c, char *out, size_t capacity)
{
    if (c->backend == KILN__GEMM_CLBLAST)
        snprintf(out, capacity, "clblast");
    else
        snprintf(out, capacity, "kiln %dx%dx%d%s", c->tm, c->nv, c->vw,
                 c->pack  ? " packed"
                 : c->dot ? " dot"
                          : "");
}

bool kiln__gemm_choice_parse(const char *text, kiln__gemm_choice *out)
{
    kiln__gemm_choice c = {.backend = KILN__GEMM_CLBLAST};
    if (strcmp(text, "clblast") == 0) {
        *out = c;
        return true;
    }
    char form[8] = "";
    int used = 0, form_end = 0;
    int n = sscanf(text, "kiln %dx%dx%d%n %7s%n", &c.tm, &c.nv, &c.vw, &used, form, &form_end);
    if (n < 3 || !valid_tile(c.tm, c.nv, c.vw))
        return false;
    if (n == 3 && text[used] != '\0')
        return false;
    if (n == 4 &&
        (text[form_end] != '\0' || (strcmp(form, "packed") != 0 && strcmp(form, "dot") != 0)))
        return false;
    c.backend = KILN__GEMM_KILN;
    c.pack = n == 4 && strcmp(form, "packed") == 0;
    c.dot = n == 4 && strcmp(form, "dot") == 0;
    *out = c;
    return true;
}

/* The device's native float vector width (16 on PoCL with AVX-512, 8 with AVX2), asked of
 * the driver once per device: untuned products ask on every call. */
static cl_uint native_float_width(kiln_device *dev)
{
    if (dev->gemm_float_width == 0 &&
        clGetDeviceInfo(dev->device, CL_DEVICE_NATIVE_VECTOR_WIDTH_FLOAT,
                        sizeof dev->gemm_float_width, &dev->gemm_float_width, NULL) != CL_SUCCESS)
        dev->gemm_float_width = 4;
    return dev->gemm_float_width;
}

/* Whether Kiln's kernel should pack the operands. A transposed B always: the in-place kernel
 * gathers its columns lane by lane, and packing in local memory repays itself at every size
 * measured (untuned, 14x2x16, against in place: 128 x 256 x 128 NT 1.46x, 128 x 128 x 10
 * 1.27x, 64 x 128 x 10 and 32 x 9 x 25088 within noise). Otherwise products of at least 2^23
 * multiply-adds pack, except an untransposed one whose B fits in ~2 MB: transposed A and large
 * leading dimensions (cache-set conflicts between a tile's rows) lose up to 3.5x in place,
 * while smaller products and the MLP's forward ones lose to the packing (128 x 128 x 256 NN
 * 0.79x packed, 128 x 10 x 64 TN 0.75x; docs/PERFORMANCE.md). */
static bool default_packing(const kiln__gemm *g)
{
    if (g->transpose_b)
        return true;
    if ((double)g->m * (double)g->n * (double)g->k < (double)(1 << 23))
        return false;
    return g->transpose_a || g->k * g->n > ((size_t)1 << 19);
}

/* Kiln's kernel with the device class's tile: 16-wide, 14x2 float16 accumulators, measured
 * best with AVX-512 (28 of 32 zmm registers); narrower, 6x2 float8 (12 of AVX2's 16 ymm
 * registers), not measured. */
static kiln__gemm_choice default_kiln(kiln_device *dev, const kiln__gemm *g)
{
    kiln__gemm_choice c = {.backend = KILN__GEMM_KILN, .tm = 14, .nv = 2, .vw = 16};
    if (native_float_width(dev) < 16)
        c.tm = 6, c.vw = 8;
    c.pack = default_packing(g);
    return c;
}

kiln__gemm_choice kiln__gemm_default_choice(kiln_device *dev, const kiln__gemm *g)
{
    kiln__gemm_choice c = {.backend = KILN__GEMM_CLBLAST};
    if (dev->info.type == KILN_DEVICE_TYPE_CPU)
        c = default_kiln(dev, g);
    kiln__gemm_apply_env(dev, g, &c);
    return c;
}

void kiln__gemm_warn_env(kiln_device *dev, const char *name, const char *value, const char *form)
{
    if (dev->gemm_env_warned)
        return;
    dev->gemm_env_warned = true;
    kiln__log(dev->ctx, KILN_LOG_WARN, "%s='%s' is not %s; ignored (said once per device)", name,
              value, form);
}

void kiln__gemm_apply_env(kiln_device *dev, const kiln__gemm *g, kiln__gemm_choice *c)
{
    const char *backend = getenv("KILN_GEMM");
    if (backend != NULL && (strcmp(backend, "kiln") == 0 || strcmp(backend, "clblast") == 0))
        c->backend = kiln__gemm_get_backend(dev);
    else if (backend != NULL && backend[0] != '\0')
        kiln__gemm_warn_env(dev, "KILN_GEMM", backend, "kiln or clblast");
    if (c->backend == KILN__GEMM_KILN && c->tm == 0) /* CLBlast's choice, overridden */
        *c = default_kiln(dev, g);
    const char *tile = getenv("KILN_GEMM_TILE");
    if (tile != NULL) {
        int tm = 0, nv = 0, vw = 0;
        char end = 0;
        if (sscanf(tile, "%dx%dx%d%c", &tm, &nv, &vw, &end) == 3 && valid_tile(tm, nv, vw))
            c->tm = tm, c->nv = nv, c->vw = vw;
        else
            kiln__gemm_warn_env(dev, "KILN_GEMM_TILE", tile,
                                "TMxNVxVW (TM 1-32, NV 1-8, VW 2/4/8/16)");
    }
    const char *pack = getenv("KILN_GEMM_PACK");
    if (pack != NULL && (strcmp(pack, "0") == 0 || strcmp(pack, "1") == 0))
        c->pack = pack[0] == '1';
    else if (pack != NULL && pack[0] != '\0')
        kiln__gemm_warn_env(dev, "KILN_GEMM_PACK", pack, "0 or 1");
    const char *dot = getenv("KILN_GEMM_DOT");
    if (dot != NULL && (strcmp(dot, "0") == 0 || strcmp(dot, "1") == 0))
        c->dot = dot[0] == '1';
    else if (dot != NULL && dot[0] != '\0')
        kiln__gemm_warn_env(dev, "KILN_GEMM_DOT", dot, "0 or 1");
}

/* ---- CLBlast ---- */

static kiln_status run_clblast(kiln_device *dev, const char *what, const kiln__gemm *g,
                               size_t batch)
{
    kiln_status rc = KILN_OK;
    CLBlastTranspose ta = g->transpose_a ? CLBlastTransposeYes : CLBlastTransposeNo;
    CLBlastTranspose tb = g->transpose_b ? CLBlastTransposeYes : CLBlastTransposeNo;
    cl_event event = NULL;
    CLBlastStatusCode status;
    if (batch == 1) {
        status = CLBlastSgemm(CLBlastLayoutRowMajor, ta, tb, g->m, g->n, g->k, g->alpha, g->a->mem,
                              g->a_offset, g->lda, g->b->mem, g->b_offset, g->ldb, g->beta,
                              g->c->mem, g->c_offset, g->ldc, &dev->queue, &event);
    } else {
        status = CLBlastSgemmStridedBatched(
            CLBlastLayoutRowMajor, ta, tb, g->m, g->n, g->k, g->alpha, g->a->mem, g->a_offset,
            g->lda, g->a_stride, g->b->mem, g->b_offset, g->ldb, g->b_stride, g->beta, g->c->mem,
            g->c_offset, g->ldc, g->c_stride, batch, &dev->queue, &event);
    }
    if (event != NULL && dev->profile != NULL && status == CLBlastSuccess) {
        /* CLBlast's last kernel of the call: its intermediate copies, if any, are not timed. */
        KILN_CHECK(kiln__profile_record(dev, "gemm:clblast", event));
    } else if (event != NULL) {
        clReleaseEvent(event);
    }
    if (status != CLBlastSuccess)
        KILN_FAIL(dev->ctx, KILN_ERR_OPENCL,
                  "%s: CLBlast SGEMM%s (m %zu, n %zu, k %zu, batch %zu, trans %c%c) on device "
                  "'%s' failed with %s",
                  what, batch > 1 ? " strided-batched" : "", g->m, g->n, g->k, batch,
                  g->transpose_a ? 'T' : 'N', g->transpose_b ? 'T' : 'N', dev->info.name,
                  clblast_status_name(status));
cleanup:
    return rc;
}

/* ---- Kiln's kernel (cl/gemm.cl) ---- */

/* The name of the gemm program built for `c`'s tile: "gemm" plus its -D options, which the
 * device's program table builds (through the cache) and keeps as a program of its own. */
static void tile_program(const kiln__gemm_choice *c, char *name, size_t size)
{
    snprintf(name, size, "gemm -DGEMM_TM=%d -DGEMM_NV=%d -DGEMM_VW=%d", c->tm, c->nv, c->vw);
}

/* Tiles of `size` covering `extent` (gemm_tiles in cl/gemm.cl). */
static size_t tiles_of(size_t extent, size_t size)
{
    return (extent + size - 1) / size;
}

/* Whether every index the kernel forms fits its 32-bit arithmetic. */
static bool fits_u32(const kiln__gemm *g, size_t a_span, size_t b_span, size_t c_span)
{
    return a_span <= UINT32_MAX && b_span <= UINT32_MAX && c_span <= UINT32_MAX &&
           g->m <= UINT32_MAX && g->n <= UINT32_MAX && g->k <= UINT32_MAX;
}

/* Releases a scratch buffer of the device's, if any (OpenCL keeps it alive until the kernels
 * queued on it have run). */
static void release_scratch(kiln_device *dev, kiln_buffer **slot)
{
    kiln_buffer *ws = *slot;
    if (ws == NULL)
        return;
    clReleaseMemObject(ws->mem);
    kiln__free(dev->ctx, ws);
    *slot = NULL;
}

void kiln__gemm_release(kiln_device *dev)
{
    release_scratch(dev, &dev->gemm_workspace);
    release_scratch(dev, &dev->gemm_slices);
}

kiln_status kiln__gemm_scratch(kiln_device *dev, kiln_buffer **slot, size_t n_bytes,
                               const char *purpose, kiln_buffer **out)
{
    kiln_status rc = KILN_OK;
    if (*slot != NULL && (*slot)->n_bytes >= n_bytes) {
        *out = *slot;
        return KILN_OK;
    }
    release_scratch(dev, slot);
    kiln_buffer *ws = kiln__alloc(dev->ctx, sizeof *ws);
    if (ws == NULL)
        KILN_FAIL(dev->ctx, KILN_ERR_NO_MEMORY, "out of memory for the handle of %s", purpose);
    cl_int err = CL_SUCCESS;
    ws->mem = clCreateBuffer(dev->cl_ctx, CL_MEM_READ_WRITE, n_bytes, NULL, &err);
    if (err != CL_SUCCESS || ws->mem == NULL) {
        kiln__free(dev->ctx, ws);
        KILN_FAIL(dev->ctx, KILN_ERR_DEVICE_OOM,
                  "%s (%zu bytes) could not be allocated on device '%s': %s", purpose, n_bytes,
                  dev->info.name, kiln__cl_error_name(err));
    }
    ws->dev = dev;
    ws->n_bytes = n_bytes;
    *slot = ws;
    *out = ws;
cleanup:
    return rc;
}

/* The device's workspace for packed operands, at least n_bytes. */
static kiln_status workspace(kiln_device *dev, size_t n_bytes, kiln_buffer **out)
{
    return kiln__gemm_scratch(dev, &dev->gemm_workspace, n_bytes,
                              "the GEMM workspace of packed operands", out);
}

/* Half the per-core L2 of the CPUs measured (2 MB): what the kernels' tile order tries to keep
 * in cache. */
#define GEMM_CACHE_BYTES ((size_t)1 << 20)

/* The in-place kernels' row-tile group (gemm_grouped_tile in cl/gemm.cl) for tiles of t->tm
 * rows by nw columns. When B fits in GEMM_CACHE_BYTES, 1: tiles go along C's rows, which
 * streams C's stores (what short-k products are bound by). Otherwise as many row tiles as have
 * A rows that fit there, so each of B's column panels, read from the last-level cache, serves
 * that many tiles. Measured on PoCL (AVX-512), row by row against grouped: conv2's
 * 64 x 2940 x 288 in place 65 -> 144 GFLOP/s; the CNN's fc1 input gradient (dot form)
 * 100 -> 111 (docs/PERFORMANCE.md). */
static size_t tile_group(const kiln__gemm_choice *t, size_t k, size_t tiles_m, size_t tiles_n,
                         size_t nw)
{
    if (tiles_n * nw * k * sizeof(float) <= GEMM_CACHE_BYTES)
        return 1;
    size_t group = GEMM_CACHE_BYTES / ((size_t)t->tm * k * sizeof(float));
    return group < 1 ? 1 : group > tiles_m ? tiles_m : group;
}

/* p per work-item of gemm_pack_a (GEMM_PACK_K in cl/gemm.cl). */
#define GEMM_PACK_K ((size_t)256)

/* The most bytes of op(B)'s column panel a work-item packs at once (a k-block, in local
 * memory): it is re-read for every row tile of the item, so it should stay within a core's L2
 * (2 MB on the CPUs measured). */
#define GEMM_PANEL_BYTES ((size_t)512 << 10)

/* Work-items per compute unit the packed form aims for: fewer leave cores idle at the end. */
#define GEMM_ITEMS_PER_UNIT 4

/* Row tiles a work-item multiplies with each panel it packs, at least, before the packed form
 * splits C's rows between items: the packing is paid once per item. */
#define GEMM_PANEL_MIN_ROW_TILES 8

/* Row tiles per work-item of the packed form: all of them when the column panels of the batch's
 * entries give the device enough items, else split into groups of GEMM_PANEL_MIN_ROW_TILES or
 * more (the last may be shorter). */
static size_t panel_row_tiles(const kiln_device *dev, size_t tiles_m, size_t tiles_n, size_t batch)
{
    size_t want =
        (size_t)GEMM_ITEMS_PER_UNIT * (dev->info.compute_units > 0 ? dev->info.compute_units : 1);
    size_t panels = tiles_n * batch;
    size_t groups = panels >= want ? 1 : tiles_of(want, panels);
    size_t most = tiles_m / GEMM_PANEL_MIN_ROW_TILES;
    if (groups > most)
        groups = most > 0 ? most : 1;
    return tiles_of(tiles_m, groups);
}

/* Packs and multiplies (cl/gemm.cl: gemm_panels, or gemm_panels_a after gemm_pack_a packs a
 * transposed A into the workspace). Each work-item packs k-blocks of one column panel of op(B)
 * into local memory and multiplies its group of row tiles with them. Measured on PoCL against
 * the same kernel packing into its slot of a global workspace (docs/PERFORMANCE.md), GFLOP/s: the
 * CNN's fc1 input gradient 64 x 3136 x 128 NT 172 -> 213, conv2 64 x 2940 x 288 NN 228 ->
 * 239, 128 x 784 x 256 NT 215 -> 249, 1024^3 316 -> 321. Returns KILN_ERR_UNSUPPORTED,
 * touching nothing, when the packed A's indices or the k-blocks' overflow 32 bits or half the
 * device's local memory cannot hold one row of a panel. */
static kiln_status run_packed(kiln_device *dev, const char *program, const kiln__gemm_choice *t,
                              const kiln__gemm *g, size_t batch)
{
    kiln_status rc = KILN_OK;
    size_t nw = (size_t)(t->nv * t->vw);
    size_t tiles_m = tiles_of(g->m, (size_t)t->tm), tiles_n = tiles_of(g->n, nw);
    bool pack_a = g->transpose_a;
    size_t batch_a = g->a_stride == 0 ? 1 : batch;
    size_t panel_a = pack_a ? tiles_m * (size_t)t->tm * g->k : 0, n_a = batch_a * panel_a;
    /* half the device's local memory at most: the rest is left to the compiler and runtime */
    size_t local_half = (size_t)(dev->info.local_mem_bytes / 2);
    size_t panel_bytes = GEMM_PANEL_BYTES < local_half ? GEMM_PANEL_BYTES : local_half;
    size_t kb = panel_bytes / (nw * sizeof(float));
    /* the kernel's k-block loop steps p0 by kb in 32 bits (and its transposes p by 16) */
    if (n_a > UINT32_MAX || kb == 0 || g->k > UINT32_MAX - kb - 16)
        return KILN_ERR_UNSUPPORTED;
    if (kb > g->k)
        kb = g->k;
    size_t local[3] = {1, 1, 1};
    kiln_buffer *ws = NULL;
    if (pack_a) {
        KILN_CHECK(workspace(dev, n_a * sizeof(float), &ws));
        kiln__arg args_a[] = {KILN__ARG_UINT(g->m),   KILN__ARG_UINT(g->k),
                              KILN__ARG_BUF(g->a),    KILN__ARG_UINT(g->a_offset),
                              KILN__ARG_UINT(g->lda), KILN__ARG_UINT(g->a_stride),
                              KILN__ARG_BUF(ws)};
        size_t global_a[3] = {tiles_of(g->k, GEMM_PACK_K), tiles_m, batch_a};
        KILN_CHECK(kiln__launch(dev, program, "gemm_pack_a", args_a,
                                sizeof args_a / sizeof args_a[0], 3, global_a, local));
    }
    size_t row_tiles = panel_row_tiles(dev, tiles_m, tiles_n, batch);
    kiln__arg args[] = {
        KILN__ARG_UINT(g->m),
        KILN__ARG_UINT(g->n),
        KILN__ARG_UINT(g->k),
        KILN__ARG_FLOAT(g->alpha),
        KILN__ARG_FLOAT(g->beta),
        KILN__ARG_BUF(pack_a ? ws : g->a),
        KILN__ARG_UINT(pack_a ? 0 : g->a_offset),
        KILN__ARG_UINT(g->lda),
        KILN__ARG_UINT(pack_a ? (batch_a > 1 ? panel_a : 0) : g->a_stride),
        KILN__ARG_BUF(g->b),
        KILN__ARG_UINT(g->b_offset),
        KILN__ARG_UINT(g->ldb),
        KILN__ARG_UINT(g->b_stride),
        KILN__ARG_UINT(g->transpose_b),
        KILN__ARG_BUF(g->c),
        KILN__ARG_UINT(g->c_offset),
        KILN__ARG_UINT(g->ldc),
        KILN__ARG_UINT(g->c_stride),
        KILN__ARG_UINT(row_tiles),
        KILN__ARG_UINT(kb),
        KILN__ARG_LOCAL_BYTES(kb * nw * sizeof(float)),
    };
    size_t global[3] = {tiles_n * tiles_of(tiles_m, row_tiles), 1, batch};
    KILN_CHECK(kiln__launch(dev, program, pack_a ? "gemm_panels_a" : "gemm_panels", args,
                            sizeof args / sizeof args[0], 3, global, local));
cleanup:
    return rc;
}

static kiln_status run_kiln(kiln_device *dev, const kiln__gemm *g, const kiln__gemm_choice *t,
                            size_t batch)
{
    kiln_status rc = KILN_OK;
    char program[128];
    tile_program(t, program, sizeof program);
    if (t->pack && g->k > 0 && g->alpha != 0.0f) {
        rc = run_packed(dev, program, t, g, batch);
        if (rc != KILN_ERR_UNSUPPORTED)
            return rc;
        rc = KILN_OK;
    }
    static const char *const kernels[2][2] = {{"gemm_nn", "gemm_nt"}, {"gemm_tn", "gemm_tt"}};
    /* The dot-product form covers NT products only; others keep the tiled kernels. */
    bool dot = t->dot && !g->transpose_a && g->transpose_b;
    size_t nw = (size_t)(dot ? t->nv : t->nv * t->vw); /* columns of C per work-item */
    size_t tiles_m = tiles_of(g->m, (size_t)t->tm), tiles_n = tiles_of(g->n, nw);
    /* tiles_m x tiles_n <= m x n, which fits_u32 keeps within the 32-bit work-item id */
    /* alpha == 0 references neither A nor B (BLAS semantics): an empty sum. */
    size_t k = g->alpha == 0.0f ? 0 : g->k;
    const kiln_buffer *a = k > 0 ? g->a : g->c, *b = k > 0 ? g->b : g->c;
    kiln__arg args[] = {
        KILN__ARG_UINT(g->m),        KILN__ARG_UINT(g->n),
        KILN__ARG_UINT(k),           KILN__ARG_FLOAT(g->alpha),
        KILN__ARG_FLOAT(g->beta),    KILN__ARG_BUF(a),
        KILN__ARG_UINT(g->a_offset), KILN__ARG_UINT(g->lda),
        KILN__ARG_UINT(g->a_stride), KILN__ARG_BUF(b),
        KILN__ARG_UINT(g->b_offset), KILN__ARG_UINT(g->ldb),
        KILN__ARG_UINT(g->b_stride), KILN__ARG_BUF(g->c),
        KILN__ARG_UINT(g->c_offset), KILN__ARG_UINT(g->ldc),
        KILN__ARG_UINT(g->c_stride), KILN__ARG_UINT(tile_group(t, k, tiles_m, tiles_n, nw)),
    };
    const char *kernel = dot ? "gemm_nt_dot" : kernels[g->transpose_a][g->transpose_b];
    size_t global[3] = {tiles_m * tiles_n, 1, batch};
    size_t local[3] = {1, 1, 1};
    KILN_CHECK(
        kiln__launch(dev, program, kernel, args, sizeof args / sizeof args[0], 3, global, local));
cleanup:
    return rc;
}

kiln_status kiln__gemm_run_choice(kiln_device *dev, const char *what, const kiln__gemm *g,
                                  const kiln__gemm_choice *c)
{
    size_t batch = g->batch == 0 ? 1 : g->batch;
    if (g->m == 0 || g->n == 0)
        return KILN_OK;
    kiln_status rc = KILN_OK;
    /* Row-major storage: op(A) is (m, k), so A itself is (k, m) when transposed. */
    size_t a_rows = g->transpose_a ? g->k : g->m, a_cols = g->transpose_a ? g->m : g->k;
    size_t b_rows = g->transpose_b ? g->n : g->k, b_cols = g->transpose_b ? g->k : g->n;
    size_t a_span = 0, b_span = 0;
    if (g->k > 0) {
        KILN_CHECK(check_operand(dev, what, 'A', a_rows, a_cols, g->lda, g->a_offset, g->a_stride,
                                 batch, g->a));
        KILN_CHECK(check_operand(dev, what, 'B', b_rows, b_cols, g->ldb, g->b_offset, g->b_stride,
                                 batch, g->b));
        a_span = span(a_rows, a_cols, g->lda, g->a_offset, g->a_stride, batch);
        b_span = span(b_rows, b_cols, g->ldb, g->b_offset, g->b_stride, batch);
    }
    KILN_CHECK(
        check_operand(dev, what, 'C', g->m, g->n, g->ldc, g->c_offset, g->c_stride, batch, g->c));
    size_t c_span = span(g->m, g->n, g->ldc, g->c_offset, g->c_stride, batch);
    KILN_CHECK(kiln__gemm_table_record(dev, g));
    /* CLBlast rejects k = 0 (C = beta C); our kernel does it on any device, with the device
     * class's tile when CLBlast was the choice. */
    kiln__gemm_choice k0 = *c;
    if (g->k == 0 && c->backend == KILN__GEMM_CLBLAST) {
        k0 = kiln__gemm_default_choice(dev, g);
        if (k0.backend != KILN__GEMM_KILN || k0.tm == 0)
            k0 = (kiln__gemm_choice){.backend = KILN__GEMM_KILN, .tm = 4, .nv = 1, .vw = 4};
    }
    if (k0.backend == KILN__GEMM_KILN && fits_u32(g, a_span, b_span, c_span)) {
        rc = run_kiln(dev, g, &k0, batch);
        if (rc != KILN_OK)
            kiln__error_append(
                dev->ctx, " (in %s: GEMM m %zu, n %zu, k %zu, batch %zu, trans %c%c)", what, g->m,
                g->n, g->k, batch, g->transpose_a ? 'T' : 'N', g->transpose_b ? 'T' : 'N');
        return rc;
    }
    return run_clblast(dev, what, g, batch);
cleanup:
    return rc;
}

kiln__gemm_choice kiln__gemm_choose(kiln_device *dev, const kiln__gemm *g, bool *tuned)
{
    kiln__gemm_choice c;
    bool found = kiln__gemm_table_find(dev, g, &c);
    if (found)
        kiln__gemm_apply_env(dev, g, &c);
    else
        c = kiln__gemm_default_choice(dev, g);
    if (tuned != NULL)
        *tuned = found;
    return c;
}

kiln_status kiln__gemm_run(kiln_device *dev, const char *what, const kiln__gemm *g)
{
    size_t slices = kiln__gemm_split_slices(dev, g);
    if (slices > 1)
        return kiln__gemm_run_split(dev, what, g, slices);
    return kiln__gemm_run_whole(dev, what, g);
}

kiln_status kiln__gemm_run_whole(kiln_device *dev, const char *what, const kiln__gemm *g)
{
    kiln__gemm_choice c = kiln__gemm_choose(dev, g, NULL);
    return kiln__gemm_run_choice(dev, what, g, &c);
}
