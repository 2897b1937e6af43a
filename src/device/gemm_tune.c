/*
 * kiln_device_tune_gemm: for each product shape, times every implementation the device offers
 * and keeps the fastest one whose results are right.
 *
 * Kiln's kernel (cl/gemm.cl) is tried over a set of register tiles (rows x vectors x vector
 * width, each tile a program variant built and cached once) with operands read in place and
 * packed. CLBlast is tried with its default parameters and with each parameter set below
 * passed through CLBlastOverrideParameters. CLBlast's parameters hold for the whole device,
 * not per shape, so the set with the least total time over all the shapes wins and is stored
 * with the table; per shape, CLBlast then competes with that set's time.
 *
 * Every timed implementation's output is checked against a double-precision host reference
 * on sampled entries (tolerance: 4 eps sqrt(k) sum |a b|, far above float rounding, far below
 * a missing or misplaced term); a wrong one is rejected and counted. Timing: one warm-up call
 * (which compiles), then batches of calls sized to ~20 ms, best of three, waiting once per
 * batch. The budget is checked between timings, so the search overruns it by one timing at
 * most; shapes not reached keep their earlier implementation.
 */
#define _POSIX_C_SOURCE 200809L

#include <clblast_c.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "device/gemm.h"

/* ---- CLBlast's parameter sets ---- */

typedef struct clblast_params {
    const char *name;
    size_t xgemm[16]; /* in XGEMM_NAMES' order */
} clblast_params;

static const char *const XGEMM_NAMES[16] = {"GEMMK", "KREG",  "KWG",   "KWI", "MDIMA", "MDIMC",
                                            "MWG",   "NDIMB", "NDIMC", "NWG", "SA",    "SB",
                                            "STRM",  "STRN",  "VWM",   "VWN"};

/* CPU-shaped sets: one work-item per work-group, no local memory, a register tile of 16-wide
 * vectors (what reached BLAS speed in Kiln's own kernel on PoCL). Each also sends every size to
 * the Xgemm kernel (GemmRoutine's XGEMM_MIN_INDIRECT_SIZE = 1) instead of the direct one. */
static const clblast_params CLBLAST_SETS[] = {
    {"cpu-32x8", {0, 1, 16, 2, 1, 1, 32, 1, 1, 8, 0, 0, 0, 0, 16, 8}},
    {"cpu-64x4", {0, 1, 16, 2, 1, 1, 64, 1, 1, 4, 0, 0, 0, 0, 16, 4}},
};
enum { N_CLBLAST_SETS = sizeof CLBLAST_SETS / sizeof CLBLAST_SETS[0] };

static const clblast_params *find_clblast_params(const char *name)
{
    for (size_t i = 0; i < N_CLBLAST_SETS; i++)
        if (strcmp(CLBLAST_SETS[i].name, name) == 0)
            return &CLBLAST_SETS[i];
    return NULL;
}

bool kiln__gemm_tune_clblast_params_known(const char *name)
{
    return find_clblast_params(name) != NULL;
}

/* Overrides CLBlast's Xgemm and GemmRoutine parameters for the device. */
static kiln_status override_clblast(kiln_device *dev, const clblast_params *p)
{
    const char *routine_name = "XGEMM_MIN_INDIRECT_SIZE";
    size_t routine_value = 1;
    CLBlastStatusCode status = CLBlastOverrideParameters(
        dev->device, "Xgemm", CLBlastPrecisionSingle, 16, (const char **)XGEMM_NAMES, p->xgemm);
    if (status == CLBlastSuccess)
        status = CLBlastOverrideParameters(dev->device, "GemmRoutine", CLBlastPrecisionSingle, 1,
                                           &routine_name, &routine_value);
    if (status != CLBlastSuccess)
        return kiln__error(dev->ctx, KILN_ERR_OPENCL, __func__,
                           "CLBlastOverrideParameters with set '%s' on device '%s' failed with "
                           "status %d",
                           p->name, dev->info.name, (int)status);
    return KILN_OK;
}

void kiln__gemm_tune_apply_clblast_params(kiln_device *dev)
{
    const clblast_params *p = find_clblast_params(kiln__gemm_table_clblast_params(dev));
    if (p == NULL)
        return;
    if (override_clblast(dev, p) != KILN_OK) {
        kiln__log(dev->ctx, KILN_LOG_WARN, "%s; CLBlast keeps its defaults",
                  kiln_context_last_error(dev->ctx));
        kiln_context_clear_error(dev->ctx);
    }
}

/* ---- Kiln's tiles ---- */

/* Rows x vectors x width. 16-wide tiles suit AVX-512 CPUs, 8-wide AVX2 ones; narrow tiles
 * (one vector) waste fewer lanes when n is small (the 10 classes of an output layer); 8-row
 * tiles divide the 64 and 128 rows of the CNN's and MLP's products (8x3x16: 185 GFLOP/s on
 * conv2's 64 x 2940 x 288 forward product, against 174 for the best of the others). */
static const int TILES[][3] = {{14, 2, 16}, {8, 2, 16},  {6, 4, 16},  {8, 3, 16},
                               {4, 4, 16},  {28, 1, 16}, {14, 1, 16}, {8, 1, 16},
                               {14, 2, 8},  {8, 4, 8},   {6, 2, 8},   {4, 1, 8}};
enum { N_TILES = sizeof TILES / sizeof TILES[0] };

/* The tiles a search tries: all, or the first options->max_tiles. */
static int tile_count(const kiln_gemm_tune_options *options)
{
    return options->max_tiles > 0 && options->max_tiles < N_TILES ? options->max_tiles : N_TILES;
}

/* The largest operand (elements over the batch) the tuner accepts: 1 GiB of floats. */
static const double MAX_ELEMENTS = (double)(1u << 28);

/* A challenger replaces what ran a shape before only when this much faster (time ratio). */
static const double MARGIN = 0.97;

/* ---- one shape's operands and reference ---- */

typedef struct problem {
    kiln__gemm g;
    kiln_buffer *a, *b, *c;
    float *host_a, *host_b, *host_c;
    size_t n_a, n_b, n_c; /* floats per operand over the batch */
} problem;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Deterministic values in [-1, 1). */
static void fill(float *x, size_t n, uint32_t seed)
{
    uint32_t s = seed * 2654435761u + 12345u;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((double)(s >> 8) / (double)(1u << 23) - 1.0);
    }
}

static kiln_status problem_create(kiln_device *dev, const kiln_gemm_shape *s, problem *p)
{
    kiln_status rc = KILN_OK;
    memset(p, 0, sizeof *p);
    size_t batch = s->batch;
    kiln__gemm *g = &p->g;
    *g = (kiln__gemm){.transpose_a = s->transpose_a,
                      .transpose_b = s->transpose_b,
                      .m = s->m,
                      .n = s->n,
                      .k = s->k,
                      .alpha = 1.0f,
                      .beta = 0.0f,
                      .lda = s->transpose_a ? s->m : s->k,
                      .a_stride = s->m * s->k,
                      .ldb = s->transpose_b ? s->k : s->n,
                      .b_stride = s->k * s->n,
                      .ldc = s->n,
                      .c_stride = s->m * s->n,
                      .batch = batch};
    p->n_a = batch * s->m * s->k;
    p->n_b = batch * s->k * s->n;
    p->n_c = batch * s->m * s->n;
    p->host_a = kiln__alloc(dev->ctx, (p->n_a + p->n_b + p->n_c) * sizeof(float));
    if (p->host_a == NULL)
        KILN_FAIL(dev->ctx, KILN_ERR_NO_MEMORY, "out of memory for a %zu x %zu x %zu product", s->m,
                  s->n, s->k);
    p->host_b = p->host_a + p->n_a;
    p->host_c = p->host_b + p->n_b;
    fill(p->host_a, p->n_a, 1);
    fill(p->host_b, p->n_b, 2);
    KILN_CHECK(kiln_buffer_create(dev, p->n_a * sizeof(float), "GEMM tuning A", &p->a));
    KILN_CHECK(kiln_buffer_create(dev, p->n_b * sizeof(float), "GEMM tuning B", &p->b));
    KILN_CHECK(kiln_buffer_create(dev, p->n_c * sizeof(float), "GEMM tuning C", &p->c));
    KILN_CHECK(kiln_buffer_write(p->a, 0, p->host_a, p->n_a * sizeof(float)));
    KILN_CHECK(kiln_buffer_write(p->b, 0, p->host_b, p->n_b * sizeof(float)));
    g->a = p->a;
    g->b = p->b;
    g->c = p->c;
cleanup:
    return rc;
}

static void problem_destroy(kiln_device *dev, problem *p)
{
    kiln_buffer_destroy(p->a);
    kiln_buffer_destroy(p->b);
    kiln_buffer_destroy(p->c);
    kiln__free(dev->ctx, p->host_a);
}

/* Whether entry (b, i, j) of C matches the double-precision reference. */
static bool entry_right(const problem *p, size_t b, size_t i, size_t j)
{
    const kiln__gemm *g = &p->g;
    const float *a = p->host_a + b * g->a_stride, *bb = p->host_b + b * g->b_stride;
    double sum = 0, magnitude = 0;
    for (size_t q = 0; q < g->k; q++) {
        double av = g->transpose_a ? a[q * g->lda + i] : a[i * g->lda + q];
        double bv = g->transpose_b ? bb[j * g->ldb + q] : bb[q * g->ldb + j];
        sum += av * bv;
        magnitude += fabs(av * bv);
    }
    double tolerance = 4.0 * FLT_EPSILON * sqrt((double)g->k + 1.0) * magnitude + 1e-6;
    double c = p->host_c[b * g->c_stride + i * g->ldc + j];
    return fabs(c - sum) <= tolerance; /* false for NaN: an entry never written */
}

/* Whether C matches the reference on the first and last batch entries: every entry of their
 * first and last rows and columns (the tiles' edges) and 256 pseudo-random entries (every
 * vector lane of the interior tiles, with overwhelming probability). */
static kiln_status check_result(problem *p, bool *right)
{
    kiln_status rc = KILN_OK;
    const kiln__gemm *g = &p->g;
    KILN_CHECK(kiln_buffer_read(p->c, 0, p->host_c, p->n_c * sizeof(float)));
    *right = true;
    uint32_t state = 12345u;
    size_t batches[2] = {0, g->batch - 1};
    for (int e = 0; e < 2 && *right; e++) {
        size_t b = batches[e];
        for (size_t j = 0; j < g->n && *right; j++)
            *right = entry_right(p, b, 0, j) && entry_right(p, b, g->m - 1, j);
        for (size_t i = 0; i < g->m && *right; i++)
            *right = entry_right(p, b, i, 0) && entry_right(p, b, i, g->n - 1);
        for (int r = 0; r < 256 && *right; r++) {
            state = state * 1664525u + 1013904223u;
            size_t i = (state >> 8) % g->m;
            state = state * 1664525u + 1013904223u;
            *right = entry_right(p, b, i, (state >> 8) % g->n);
        }
    }
cleanup:
    return rc;
}

/* Fills C with NaN and runs `c` once more, so that the check sees only what this run wrote. */
static kiln_status fresh_run(kiln_device *dev, problem *p, const kiln__gemm_choice *c)
{
    kiln_status rc = KILN_OK;
    for (size_t i = 0; i < p->n_c; i++)
        p->host_c[i] = NAN;
    KILN_CHECK(kiln_buffer_write(p->c, 0, p->host_c, p->n_c * sizeof(float)));
    KILN_CHECK(kiln__gemm_run_choice(dev, "kiln tune", &p->g, c));
    KILN_CHECK(kiln_device_finish(dev));
cleanup:
    return rc;
}

/* Calls in a timed batch, at most. A product of a few microseconds needs hundreds for its
 * batch to reach ~20 ms: at 50, its batches of ~0.5 ms were launch noise, and tuning chose a
 * two-launch form for 128 x 10 x 64 TN that ran at half the default's speed in the bench. */
#define MAX_REPS 1000

/* Seconds per call of `c` on the problem (best of three batches), after a warm-up call. */
static kiln_status time_choice(kiln_device *dev, problem *p, const kiln__gemm_choice *c,
                               double *seconds)
{
    kiln_status rc = KILN_OK;
    const char *what = "kiln tune";
    KILN_CHECK(kiln__gemm_run_choice(dev, what, &p->g, c));
    KILN_CHECK(kiln_device_finish(dev));
    double t0 = now();
    KILN_CHECK(kiln__gemm_run_choice(dev, what, &p->g, c));
    KILN_CHECK(kiln_device_finish(dev));
    double once = now() - t0;
    int reps = once <= 0 ? MAX_REPS : (int)fmin((double)MAX_REPS, fmax(1.0, 0.02 / once));
    double best = once;
    for (int trial = 0; trial < 3; trial++) {
        t0 = now();
        for (int r = 0; r < reps; r++)
            KILN_CHECK(kiln__gemm_run_choice(dev, what, &p->g, c));
        KILN_CHECK(kiln_device_finish(dev));
        best = fmin(best, (now() - t0) / reps);
    }
    *seconds = best;
cleanup:
    return rc;
}

/* ---- the search ---- */

typedef struct search {
    kiln_device *dev;
    const kiln_gemm_tune_options *options;
    double deadline;
    bool out_of_time;
} search;

static void say(const search *s, const char *fmt, ...) KILN__PRINTF(2, 3);
static void say(const search *s, const char *fmt, ...)
{
    if (s->options->progress == NULL)
        return;
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    s->options->progress(s->options->user, line);
}

static double gflops_of(const kiln_gemm_shape *sh, double seconds)
{
    return seconds > 0 ? 2.0 * (double)sh->m * (double)sh->n * (double)sh->k * (double)sh->batch /
                             seconds * 1e-9
                       : 0;
}

/* Times `c` and checks its result; *seconds is INFINITY when it was wrong or failed to run
 * (a build failure of a variant is reported, not fatal). */
static kiln_status try_choice(search *s, problem *p, const kiln__gemm_choice *c,
                              kiln_gemm_tune_row *row, double *seconds)
{
    *seconds = INFINITY;
    if (now() > s->deadline) {
        s->out_of_time = true;
        return KILN_OK;
    }
    char name[48];
    kiln__gemm_choice_name(c, name, sizeof name);
    double t = 0;
    kiln_status rc = time_choice(s->dev, p, c, &t);
    if (rc == KILN_OK)
        rc = fresh_run(s->dev, p, c);
    if (rc == KILN_ERR_NO_MEMORY)
        return rc;
    if (rc != KILN_OK) {
        say(s, "  %s failed: %s", name, kiln_context_last_error(s->dev->ctx));
        kiln_context_clear_error(s->dev->ctx);
        row->n_wrong++;
        return KILN_OK;
    }
    bool right = false;
    rc = check_result(p, &right);
    if (rc != KILN_OK)
        return rc;
    row->n_timed++;
    if (!right) {
        say(s, "  %s rejected: wrong results", name);
        row->n_wrong++;
        return KILN_OK;
    }
    *seconds = t;
    return KILN_OK;
}

static bool same_choice(const kiln__gemm_choice *a, const kiln__gemm_choice *b)
{
    if (a->backend != b->backend)
        return false;
    return a->backend == KILN__GEMM_CLBLAST ||
           (a->tm == b->tm && a->nv == b->nv && a->vw == b->vw && a->pack == b->pack &&
            a->dot == b->dot);
}

/* One shape: what runs it now, timed first (the comparison's baseline, in the same
 * conditions), then Kiln's tiles. The fastest in *best / *best_seconds (INFINITY if none);
 * row->before_gflops gets the baseline's rate. */
static kiln_status search_kiln(search *s, problem *p, kiln_gemm_tune_row *row,
                               kiln__gemm_choice *best, double *best_seconds)
{
    kiln_status rc = KILN_OK;
    kiln__gemm_choice before;
    *best_seconds = INFINITY;
    bool have_before = kiln__gemm_choice_parse(row->before, &before);
    bool nt = !p->g.transpose_a && p->g.transpose_b;
    if (have_before) {
        /* The dot form runs NT products only: elsewhere a "dot" baseline is the in-place one. */
        before.dot = before.dot && nt && !before.pack;
        KILN_CHECK(try_choice(s, p, &before, row, best_seconds));
        row->before_gflops = gflops_of(&row->shape, *best_seconds);
        *best = before;
    }
    /* Each tile in place and packed, and for NT products also as dot products. */
    int forms = nt ? 3 : 2;
    for (int t = 0; t < tile_count(s->options) && !s->out_of_time; t++) {
        for (int form = 0; form < forms && !s->out_of_time; form++) {
            kiln__gemm_choice c = {.backend = KILN__GEMM_KILN,
                                   .tm = TILES[t][0],
                                   .nv = TILES[t][1],
                                   .vw = TILES[t][2],
                                   .pack = form == 1,
                                   .dot = form == 2};
            if (have_before && same_choice(&c, &before))
                continue;
            double seconds = INFINITY;
            KILN_CHECK(try_choice(s, p, &c, row, &seconds));
            if (seconds < *best_seconds) {
                *best_seconds = seconds;
                *best = c;
            }
        }
    }
    /* Noise must not churn the choice: a new one has to beat the baseline by 3%. */
    double before_seconds =
        row->before_gflops > 0 ? gflops_of(&row->shape, 1.0) / row->before_gflops : INFINITY;
    if (have_before && *best_seconds > MARGIN * before_seconds) {
        *best = before;
        *best_seconds = before_seconds;
    }
cleanup:
    return rc;
}

/* CLBlast over every shape with its defaults and each parameter set; the set with the least
 * total time wins (stored in the table). clblast_seconds[i] is its time on shape i. */
static kiln_status search_clblast(search *s, problem *problems, kiln_gemm_tune_row *rows, size_t n,
                                  double *clblast_seconds)
{
    kiln_status rc = KILN_OK;
    double *trial = kiln__alloc(s->dev->ctx, n * sizeof *trial);
    if (trial == NULL)
        KILN_FAIL(s->dev->ctx, KILN_ERR_NO_MEMORY, "out of memory");
    double best_total = INFINITY;
    const kiln__gemm_choice clblast = {.backend = KILN__GEMM_CLBLAST};
    /* Overrides hold for the whole process and cannot be undone: when the device's table
     * applied a set at creation, the first trial runs that set, not CLBlast's defaults. */
    char active[32];
    snprintf(active, sizeof active, "%s", kiln__gemm_table_clblast_params(s->dev));
    for (int set = -1; set < (int)N_CLBLAST_SETS && !s->out_of_time; set++) {
        const char *name = set >= 0 ? CLBLAST_SETS[set].name : active[0] ? active : "default";
        if (set >= 0 && strcmp(name, active) == 0)
            continue; /* timed as the first trial */
        if (set >= 0 && override_clblast(s->dev, &CLBLAST_SETS[set]) != KILN_OK) {
            say(s, "CLBlast %s: %s", name, kiln_context_last_error(s->dev->ctx));
            kiln_context_clear_error(s->dev->ctx);
            continue;
        }
        say(s, "CLBlast with %s parameters (the first call compiles its kernels)", name);
        double total = 0;
        for (size_t i = 0; i < n && !s->out_of_time; i++) {
            KILN_CHECK(try_choice(s, &problems[i], &clblast, &rows[i], &trial[i]));
            total += trial[i];
        }
        if (s->out_of_time)
            break;
        say(s, "CLBlast with %s parameters: %.1f ms over the %zu shapes", name, 1e3 * total, n);
        if (total < best_total) {
            best_total = total;
            memcpy(clblast_seconds, trial, n * sizeof *trial);
            KILN_CHECK(kiln__gemm_table_set_clblast_params(s->dev, set < 0 ? active : name));
        }
    }
    /* The overrides tried last stay in this process; make the chosen ones current. CLBlast
     * has no call to restore its defaults, so after a default win this process keeps the
     * last set (later processes start from the table). */
    kiln__gemm_tune_apply_clblast_params(s->dev);
cleanup:
    kiln__free(s->dev->ctx, trial);
    return rc;
}

static kiln_status check_shapes(kiln_device *dev, const kiln_gemm_shape *shapes, size_t n)
{
    if (shapes == NULL || n == 0)
        return kiln__error(dev->ctx, KILN_ERR_INVALID_ARGUMENT, "kiln_device_tune_gemm",
                           "no shapes to tune");
    for (size_t i = 0; i < n; i++) {
        const kiln_gemm_shape *sh = &shapes[i];
        if (sh->m == 0 || sh->n == 0 || sh->k == 0 || sh->batch == 0)
            return kiln__error(dev->ctx, KILN_ERR_INVALID_ARGUMENT, "kiln_device_tune_gemm",
                               "shape %zu (m %zu, n %zu, k %zu, batch %zu) has a zero size", i,
                               sh->m, sh->n, sh->k, sh->batch);
        /* Each operand over the batch within MAX_ELEMENTS floats (Kiln's kernel indexes in
         * 32 bits; the tuner also holds every operand on the host). */
        double biggest =
            fmax(fmax((double)sh->m * sh->k, (double)sh->k * sh->n), (double)sh->m * sh->n) *
            (double)sh->batch;
        if (biggest > MAX_ELEMENTS)
            return kiln__error(dev->ctx, KILN_ERR_INVALID_ARGUMENT, "kiln_device_tune_gemm",
                               "shape %zu (m %zu, n %zu, k %zu, batch %zu) has an operand of "
                               "%.0f elements; the tuner takes at most %.0f",
                               i, sh->m, sh->n, sh->k, sh->batch, biggest, (double)MAX_ELEMENTS);
    }
    return KILN_OK;
}

kiln_status kiln_device_tune_gemm(kiln_device *dev, const kiln_gemm_shape *shapes, size_t n_shapes,
                                  const kiln_gemm_tune_options *options, kiln_gemm_tune_row *rows)
{
    kiln_status rc = KILN_OK;
    kiln_gemm_tune_options defaults = {0};
    if (options == NULL)
        options = &defaults;
    rc = check_shapes(dev, shapes, n_shapes);
    if (rc != KILN_OK)
        return rc;
    double budget = options->budget_seconds > 0 ? options->budget_seconds : 300;
    search s = {.dev = dev, .options = options, .deadline = now() + budget};
    problem *problems = kiln__calloc(dev->ctx, n_shapes, sizeof *problems);
    double *kiln_seconds = kiln__alloc(dev->ctx, 2 * n_shapes * sizeof *kiln_seconds);
    kiln__gemm_choice *kiln_best = kiln__calloc(dev->ctx, n_shapes, sizeof *kiln_best);
    if (problems == NULL || kiln_seconds == NULL || kiln_best == NULL)
        KILN_FAIL(dev->ctx, KILN_ERR_NO_MEMORY, "out of memory for %zu shapes", n_shapes);
    double *clblast_seconds = kiln_seconds + n_shapes;
    for (size_t i = 0; i < n_shapes; i++) {
        clblast_seconds[i] = INFINITY;
        kiln_seconds[i] = INFINITY;
        rows[i] = (kiln_gemm_tune_row){.shape = shapes[i]};
        kiln_device_gemm_choice(dev, &shapes[i], rows[i].before, sizeof rows[i].before, NULL);
        KILN_CHECK(problem_create(dev, &shapes[i], &problems[i]));
    }
    for (size_t i = 0; i < n_shapes && !s.out_of_time; i++) {
        const kiln_gemm_shape *sh = &shapes[i];
        say(&s, "[%zu/%zu] %c%c m %zu n %zu k %zu batch %zu: Kiln's kernel, %d tiles", i + 1,
            n_shapes, sh->transpose_a ? 'T' : 'N', sh->transpose_b ? 'T' : 'N', sh->m, sh->n, sh->k,
            sh->batch, tile_count(options));
        KILN_CHECK(search_kiln(&s, &problems[i], &rows[i], &kiln_best[i], &kiln_seconds[i]));
    }
    if (!options->skip_clblast && !s.out_of_time)
        KILN_CHECK(search_clblast(&s, problems, rows, n_shapes, clblast_seconds));
    for (size_t i = 0; i < n_shapes; i++) {
        kiln_gemm_tune_row *row = &rows[i];
        const kiln__gemm_choice clblast = {.backend = KILN__GEMM_CLBLAST};
        /* CLBlast, like any challenger, must beat what won Kiln's round by the margin. */
        bool use_clblast = clblast_seconds[i] < MARGIN * kiln_seconds[i];
        const kiln__gemm_choice *best = use_clblast ? &clblast : &kiln_best[i];
        double seconds = use_clblast ? clblast_seconds[i] : kiln_seconds[i];
        row->done = isfinite(seconds);
        if (!isfinite(seconds))
            continue;
        kiln__gemm_choice_name(best, row->best, sizeof row->best);
        row->best_gflops = gflops_of(&row->shape, seconds);
        KILN_CHECK(kiln__gemm_table_put(dev, &row->shape, best, row->best_gflops));
    }
    if (s.out_of_time)
        say(&s, "the %.0f s budget ran out; shapes not reached keep their implementation", budget);
    KILN_CHECK(kiln__gemm_table_save(dev));
cleanup:
    for (size_t i = 0; problems != NULL && i < n_shapes; i++)
        problem_destroy(dev, &problems[i]);
    kiln__free(dev->ctx, problems);
    kiln__free(dev->ctx, kiln_seconds);
    kiln__free(dev->ctx, kiln_best);
    return rc;
}
