/*
 * The check harness: runs a case's forward, backward and reference finite-difference checks
 * on a device and reports one row each. See check.h for what each row means.
 */
#define _POSIX_C_SOURCE 200809L

#include "check/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double kiln_check_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return 1e3 * (double)t.tv_sec + 1e-6 * (double)t.tv_nsec;
}

/* splitmix64: a small, well-mixed generator; inputs must be identical on every machine. */
static uint64_t next_u64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double next_unit(uint64_t *state)
{
    return (double)(next_u64(state) >> 11) * (1.0 / 9007199254740992.0);
}

static double next_normal(uint64_t *state)
{
    double u = next_unit(state), v = next_unit(state);
    if (u < 1e-300)
        u = 1e-300;
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

void kiln_check_generate(const kiln_check_gen *gen, uint64_t seed, double *out, size_t n)
{
    uint64_t state = seed * 0x2545f4914f6cdd1dull + 12345;
    for (size_t i = 0; i < n; i++) {
        double v = 0;
        switch (gen->kind) {
        case KILN_GEN_NORMAL:
            v = next_normal(&state) * (gen->hi != 0 ? gen->hi : 1.0);
            break;
        case KILN_GEN_UNIFORM:
            v = gen->lo + (gen->hi - gen->lo) * next_unit(&state);
            break;
        case KILN_GEN_AWAY: {
            double m = gen->lo + (gen->hi - gen->lo) * next_unit(&state);
            v = (next_u64(&state) & 1) ? m : -m;
            break;
        }
        case KILN_GEN_LABELS:
            v = (double)(next_u64(&state) % (uint64_t)(gen->classes > 0 ? gen->classes : 1));
            break;
        case KILN_GEN_BINARY:
            v = (double)(next_u64(&state) & 1);
            break;
        case KILN_GEN_SPECIAL:
            v = next_normal(&state);
            if (i % 7 == 3)
                v = INFINITY;
            else if (i % 7 == 5)
                v = -INFINITY;
            else if (i % 11 == 8)
                v = NAN;
            break;
        case KILN_GEN_DISTINCT:
            v = 0.01 * (double)i - 0.005 * (double)n;
            break;
        }
        out[i] = v;
    }
    if (gen->kind == KILN_GEN_DISTINCT) {
        for (size_t i = n; i > 1; i--) { /* Fisher-Yates */
            size_t j = (size_t)(next_u64(&state) % i);
            double t = out[i - 1];
            out[i - 1] = out[j];
            out[j] = t;
        }
    }
    /* The device sees float values; the reference must see exactly the same numbers. */
    if (gen->kind != KILN_GEN_LABELS) {
        for (size_t i = 0; i < n; i++)
            out[i] = (double)(float)out[i];
    }
}

void kiln_check_shapes_label(const kiln_shape *shapes, int n, char *out, size_t capacity)
{
    size_t used = 0;
    out[0] = '\0';
    if (n == 0)
        snprintf(out, capacity, "()");
    for (int i = 0; i < n && used < capacity; i++) {
        char s[96];
        int k = snprintf(out + used, capacity - used, "%s%s", i > 0 ? " " : "",
                         kiln_shape_format(&shapes[i], s, sizeof s));
        used += k > 0 ? (size_t)k : 0;
    }
}

static void report(kiln_check_run *run, kiln_check_row *row)
{
    run->n_rows++;
    if (!row->pass)
        run->n_failed++;
    if (run->on_row != NULL)
        run->on_row(row, run->user);
}

void kiln_check_fail(kiln_check_run *run, const char *op, const char *shape, const char *what,
                     const char *note)
{
    kiln_check_row row;
    memset(&row, 0, sizeof row);
    row.op = op;
    row.what = what;
    snprintf(row.shape, sizeof row.shape, "%s", shape);
    snprintf(row.note, sizeof row.note, "%s", note);
    row.max_abs = NAN;
    row.max_rel = NAN;
    row.pass = false;
    report(run, &row);
}

/* Compares with NaN and infinities handled explicitly; fills row and returns pass. */
static bool compare_values(const float *got, const double *ref, size_t n, double atol,
                           double rtol, kiln_check_row *row)
{
    bool pass = true;
    row->max_abs = 0;
    row->max_rel = 0;
    for (size_t i = 0; i < n; i++) {
        double g = (double)got[i], r = ref[i];
        bool ok;
        if (isnan(r) || isnan(g)) {
            ok = isnan(r) && isnan(g);
        } else if (isinf(r) || isinf(g)) {
            ok = g == r;
        } else {
            double err = fabs(g - r);
            double rel = err / (fabs(r) > 1e-30 ? fabs(r) : 1e-30);
            if (err > row->max_abs)
                row->max_abs = err;
            if (fabs(r) > atol && rel > row->max_rel)
                row->max_rel = rel;
            ok = err <= atol + rtol * fabs(r);
        }
        if (!ok && pass) {
            snprintf(row->note, sizeof row->note, "first mismatch at element %zu: got %.9g, "
                     "reference %.9g", i, g, r);
            pass = false;
        }
    }
    return pass;
}

void kiln_check_compare(kiln_check_run *run, const char *op, const char *shape,
                        const char *what, const float *got, const double *ref, size_t n,
                        double atol, double rtol, double ms)
{
    kiln_check_row row;
    memset(&row, 0, sizeof row);
    row.op = op;
    row.what = what;
    snprintf(row.shape, sizeof row.shape, "%s", shape);
    row.atol = atol;
    row.rtol = rtol;
    row.ms = ms;
    row.pass = compare_values(got, ref, n, atol, rtol, &row);
    report(run, &row);
}

kiln_tensor *kiln_check_tensor(kiln_check_run *run, const char *op, const kiln_shape *shape,
                               kiln_dtype dtype, const double *values, const char *name)
{
    kiln_tensor *t = NULL;
    kiln_context *ctx = kiln_device_get_context(run->dev);
    char label[96];
    kiln_shape_format(shape, label, sizeof label);
    if (kiln_tensor_create(run->dev, shape, dtype, name, &t) != KILN_OK) {
        kiln_check_fail(run, op, label, "setup", kiln_context_last_error(ctx));
        return NULL;
    }
    int64_t n = kiln_shape_count(shape);
    if (values != NULL) {
        void *host = malloc((size_t)n * 4);
        for (int64_t i = 0; host != NULL && i < n; i++) {
            if (dtype == KILN_I32)
                ((int32_t *)host)[i] = (int32_t)values[i];
            else
                ((float *)host)[i] = (float)values[i];
        }
        if (host == NULL || kiln_tensor_upload(t, host, n) != KILN_OK) {
            kiln_check_fail(run, op, label, "setup", kiln_context_last_error(ctx));
            kiln_tensor_destroy(t);
            t = NULL;
        }
        free(host);
    }
    return t;
}

/* Everything one case allocates, released in one place. */
typedef struct case_state {
    const kiln_op *op;
    kiln_shape out_shape, saved_shapes[KILN_OP_MAX_SAVED];
    double *in[KILN_OP_MAX_INPUTS];
    double *ref_out, *gout, *ref_grad[KILN_OP_MAX_INPUTS], *prior[KILN_OP_MAX_INPUTS];
    float *host;
    kiln_tensor *inputs[KILN_OP_MAX_INPUTS], *grads[KILN_OP_MAX_INPUTS];
    kiln_tensor *output, *grad_output, *saved[KILN_OP_MAX_SAVED];
    kiln_buffer *workspace;
} case_state;

static void release(case_state *s)
{
    for (int i = 0; i < KILN_OP_MAX_INPUTS; i++) {
        free(s->in[i]);
        free(s->ref_grad[i]);
        free(s->prior[i]);
        kiln_tensor_destroy(s->inputs[i]);
        kiln_tensor_destroy(s->grads[i]);
    }
    for (int i = 0; i < KILN_OP_MAX_SAVED; i++)
        kiln_tensor_destroy(s->saved[i]);
    free(s->ref_out);
    free(s->gout);
    free(s->host);
    kiln_tensor_destroy(s->output);
    kiln_tensor_destroy(s->grad_output);
    kiln_buffer_destroy(s->workspace);
}

static kiln_ref_io make_io(const kiln_check_case *c, const case_state *s)
{
    kiln_ref_io io;
    memset(&io, 0, sizeof io);
    io.params = c->params;
    io.mode = c->mode;
    io.seed = c->seed;
    io.step = 3;
    io.node = 7;
    io.n_inputs = c->n_inputs;
    io.in_shapes = c->inputs;
    io.in = (const double *const *)s->in;
    io.out_shape = s->out_shape;
    return io;
}

/* L(x) = sum(out(x) * gout): the scalar whose gradient the backward pass computes. */
static double loss_of(const kiln_check_case *c, case_state *s, double *scratch)
{
    kiln_ref_io io = make_io(c, s);
    c->forward(&io, scratch);
    /* Neumaier-compensated: a plain serial sum re-rounds differently when one input moves,
     * which adds noise to the difference quotient that grows with the output size. */
    double sum = 0, comp = 0;
    int64_t n = kiln_shape_count(&s->out_shape);
    for (int64_t i = 0; i < n; i++) {
        double term = scratch[i] * s->gout[i];
        double t = sum + term;
        comp += fabs(sum) >= fabs(term) ? (sum - t) + term : (term - t) + sum;
        sum = t;
    }
    return sum + comp;
}

/* The reference's analytic gradient against central differences, at up to 24 elements of
 * each differentiable input (both ends and evenly spaced between). */
static void check_reference_fd(kiln_check_run *run, const kiln_check_case *c, case_state *s,
                               const char *label)
{
    int64_t n_out = kiln_shape_count(&s->out_shape);
    double *scratch = malloc((size_t)n_out * sizeof *scratch);
    double worst_abs = 0, worst_rel = 0;
    double rtol = c->fd_rtol > 0 ? c->fd_rtol : 1e-5;
    double atol = rtol;
    bool pass = true;
    char note[256] = "";
    double t0 = kiln_check_now_ms();
    for (int i = 0; scratch != NULL && i < c->n_inputs; i++) {
        if (s->ref_grad[i] == NULL)
            continue;
        int64_t n = kiln_shape_count(&c->inputs[i]);
        int samples = n < 24 ? (int)n : 24;
        for (int k = 0; k < samples; k++) {
            int64_t e = samples == 1 ? 0 : k * (n - 1) / (samples - 1);
            double x = s->in[i][e];
            double h = 1e-6 * (fabs(x) > 1 ? fabs(x) : 1);
            s->in[i][e] = x + h;
            double up = loss_of(c, s, scratch);
            s->in[i][e] = x - h;
            double down = loss_of(c, s, scratch);
            s->in[i][e] = x;
            double fd = (up - down) / (2 * h);
            double an = s->ref_grad[i][e];
            double err = fabs(fd - an);
            /* Rounding in L itself limits the difference quotient: ~eps |L| / h. */
            double rounding = 8 * 2.3e-16 * fmax(fabs(up), fabs(down)) / h;
            if (err > worst_abs)
                worst_abs = err;
            if (fabs(an) > atol && err / fabs(an) > worst_rel)
                worst_rel = err / fabs(an);
            /* Written as !(err <= tol) so that a NaN on either side fails instead of passing. */
            if (!(err <= atol + rounding + rtol * fabs(an)) && pass) {
                pass = false;
                snprintf(note, sizeof note,
                         "input %d element %lld: analytic %.9g, central difference %.9g", i,
                         (long long)e, an, fd);
            }
        }
    }
    kiln_check_row row;
    memset(&row, 0, sizeof row);
    row.op = c->op;
    row.what = "ref-fd";
    snprintf(row.shape, sizeof row.shape, "%s", label);
    row.max_abs = worst_abs;
    row.max_rel = worst_rel;
    row.atol = atol;
    row.rtol = rtol;
    row.pass = pass && scratch != NULL;
    row.ms = kiln_check_now_ms() - t0;
    snprintf(row.note, sizeof row.note, "%s", scratch == NULL ? "out of memory" : note);
    report(run, &row);
    free(scratch);
}

/* Allocates the device tensors and host arrays of a case; false after reporting a failure. */
static bool set_up(kiln_check_run *run, const kiln_check_case *c, case_state *s,
                   const char *label)
{
    kiln_context *ctx = kiln_device_get_context(run->dev);
    s->op = kiln_op_find(c->op);
    if (s->op == NULL) {
        kiln_check_fail(run, c->op, label, "setup", "no such op in the table");
        return false;
    }
    if (kiln_op_infer(ctx, s->op, c->params, c->inputs, c->n_inputs, &s->out_shape,
                      s->saved_shapes) != KILN_OK) {
        kiln_check_fail(run, c->op, label, "setup", kiln_context_last_error(ctx));
        return false;
    }
    for (int i = 0; i < c->n_inputs; i++) {
        size_t n = (size_t)kiln_shape_count(&c->inputs[i]);
        s->in[i] = malloc(n * sizeof(double));
        if (s->in[i] == NULL)
            return false;
        kiln_check_generate(&c->gen[i], c->seed * 31 + (uint64_t)i, s->in[i], n);
        s->inputs[i] = kiln_check_tensor(run, c->op, &c->inputs[i],
                                         kiln_op_input_dtype(s->op, i), s->in[i], "input");
        if (s->inputs[i] == NULL)
            return false;
    }
    s->output = kiln_check_tensor(run, c->op, &s->out_shape, KILN_F32, NULL, "output");
    for (int k = 0; s->output != NULL && k < kiln_op_n_saved(s->op); k++) {
        s->saved[k] = kiln_check_tensor(run, c->op, &s->saved_shapes[k], KILN_F32, NULL, "saved");
        if (s->saved[k] == NULL)
            return false;
    }
    size_t ws = kiln_op_workspace_bytes(s->op, c->params, c->inputs, c->n_inputs);
    if (ws > 0 && kiln_buffer_create(run->dev, ws, "op workspace", &s->workspace) != KILN_OK) {
        kiln_check_fail(run, c->op, label, "setup", kiln_context_last_error(ctx));
        return false;
    }
    int64_t n_out = kiln_shape_count(&s->out_shape);
    s->ref_out = malloc((size_t)n_out * sizeof(double));
    s->host = malloc((size_t)n_out * sizeof(float));
    return s->output != NULL && s->ref_out != NULL && s->host != NULL;
}

static kiln_op_args make_args(const kiln_check_case *c, case_state *s)
{
    kiln_op_args args;
    memset(&args, 0, sizeof args);
    args.params = c->params;
    args.mode = c->mode;
    args.seed = c->seed;
    args.step = 3;
    args.node = 7;
    args.inputs = s->inputs;
    args.n_inputs = c->n_inputs;
    args.output = s->output;
    args.saved = s->saved;
    args.workspace = s->workspace;
    args.grad_output = s->grad_output;
    args.grad_inputs = s->grads;
    args.activation = c->activation;
    return args;
}

/*
 * One backward call, compared with the reference: onto the random prior values (the gradients
 * as check_backward created them; each must come out prior + reference), or, `fresh`, onto
 * gradients set to NaN and marked in grad_fresh (each must come out the reference alone, so an
 * op that reads a fresh gradient, or leaves part of it unwritten, fails).
 */
static void run_backward(kiln_check_run *run, const kiln_check_case *c, case_state *s,
                         const char *label, bool fresh)
{
    static const char *const WHAT[2][KILN_OP_MAX_INPUTS] = {
        {"backward 0", "backward 1", "backward 2", "backward 3", "backward 4", "backward 5",
         "backward 6", "backward 7"},
        {"backward 0 fresh", "backward 1 fresh", "backward 2 fresh", "backward 3 fresh",
         "backward 4 fresh", "backward 5 fresh", "backward 6 fresh", "backward 7 fresh"}};
    const char *what = fresh ? "backward fresh" : "backward";
    kiln_context *ctx = kiln_device_get_context(run->dev);
    kiln_op_args args = make_args(c, s);
    for (int i = 0; fresh && i < c->n_inputs; i++) {
        if (s->grads[i] == NULL)
            continue;
        int64_t n = kiln_shape_count(&c->inputs[i]);
        float *nan_values = malloc((size_t)n * sizeof(float));
        kiln_status up = KILN_ERR_NO_MEMORY;
        if (nan_values != NULL) {
            for (int64_t e = 0; e < n; e++)
                nan_values[e] = NAN;
            up = kiln_tensor_upload(s->grads[i], nan_values, n);
        }
        free(nan_values);
        if (up != KILN_OK) {
            kiln_check_fail(run, c->op, label, what, kiln_context_last_error(ctx));
            return;
        }
        args.grad_fresh |= 1u << i;
    }
    double t0 = kiln_check_now_ms();
    kiln_status rc = kiln_op_backward(run->dev, s->op, &args);
    if (rc == KILN_OK)
        rc = kiln_device_finish(run->dev);
    double ms = kiln_check_now_ms() - t0;
    if (rc != KILN_OK) {
        kiln_check_fail(run, c->op, label, what, kiln_context_last_error(ctx));
        return;
    }
    for (int i = 0; i < c->n_inputs; i++) {
        if (s->grads[i] == NULL)
            continue;
        int64_t n = kiln_shape_count(&c->inputs[i]);
        float *got = malloc((size_t)n * sizeof(float));
        double *want = malloc((size_t)n * sizeof(double));
        if (got == NULL || want == NULL ||
            kiln_tensor_download(s->grads[i], got, n) != KILN_OK) {
            kiln_check_fail(run, c->op, label, what, kiln_context_last_error(ctx));
        } else {
            for (int64_t e = 0; e < n; e++)
                want[e] = (fresh ? 0.0 : s->prior[i][e]) + s->ref_grad[i][e];
            kiln_check_compare(run, c->op, label, WHAT[fresh][i], got, want, (size_t)n,
                               c->grad_atol, c->grad_rtol, ms);
        }
        free(got);
        free(want);
    }
}

static void check_backward(kiln_check_run *run, const kiln_check_case *c, case_state *s,
                           const char *label)
{
    int64_t n_out = kiln_shape_count(&s->out_shape);
    kiln_check_gen normal = {KILN_GEN_NORMAL, 0, 0, 0};
    s->gout = malloc((size_t)n_out * sizeof(double));
    if (s->gout == NULL)
        return;
    kiln_check_generate(&normal, c->seed * 977 + 5, s->gout, (size_t)n_out);
    s->grad_output = kiln_check_tensor(run, c->op, &s->out_shape, KILN_F32, s->gout, "gout");
    if (s->grad_output == NULL)
        return;
    double *gin[KILN_OP_MAX_INPUTS] = {0};
    for (int i = 0; i < c->n_inputs; i++) {
        if (!kiln_op_input_differentiable(s->op, i))
            continue;
        size_t n = (size_t)kiln_shape_count(&c->inputs[i]);
        s->ref_grad[i] = calloc(n, sizeof(double));
        s->prior[i] = malloc(n * sizeof(double));
        if (s->ref_grad[i] == NULL || s->prior[i] == NULL)
            return;
        kiln_check_generate(&normal, c->seed * 131 + (uint64_t)i, s->prior[i], n);
        s->grads[i] = kiln_check_tensor(run, c->op, &c->inputs[i], KILN_F32, s->prior[i],
                                        "grad");
        if (s->grads[i] == NULL)
            return;
        gin[i] = s->ref_grad[i];
    }
    kiln_ref_io io = make_io(c, s);
    c->backward(&io, s->ref_out, s->gout, gin);
    run_backward(run, c, s, label, false);
    run_backward(run, c, s, label, true);
    check_reference_fd(run, c, s, label);
}

void kiln_check_run_case(kiln_check_run *run, const kiln_check_case *c)
{
    if (run->only_op != NULL && strcmp(run->only_op, c->op) != 0)
        return;
    char label[96];
    if (c->label != NULL)
        snprintf(label, sizeof label, "%s", c->label);
    else
        kiln_check_shapes_label(c->inputs, c->n_inputs, label, sizeof label);
    kiln_context *ctx = kiln_device_get_context(run->dev);
    case_state s;
    memset(&s, 0, sizeof s);
    if (!set_up(run, c, &s, label)) {
        release(&s);
        return;
    }
    kiln_ref_io io = make_io(c, &s);
    c->forward(&io, s.ref_out);
    kiln_op_args args = make_args(c, &s);
    double t0 = kiln_check_now_ms();
    kiln_status rc = kiln_op_forward(run->dev, s.op, &args);
    int64_t n_out = kiln_shape_count(&s.out_shape);
    if (rc == KILN_OK)
        rc = kiln_tensor_download(s.output, s.host, n_out);
    double ms = kiln_check_now_ms() - t0;
    if (rc != KILN_OK)
        kiln_check_fail(run, c->op, label, "forward", kiln_context_last_error(ctx));
    else
        kiln_check_compare(run, c->op, label, "forward", s.host, s.ref_out, (size_t)n_out,
                           c->atol, c->rtol, ms);
    if (rc == KILN_OK && c->backward != NULL && kiln_op_has_backward(s.op))
        check_backward(run, c, &s, label);
    release(&s);
}

void kiln_check_run_suite(kiln_check_run *run, const kiln_check_suite *suite)
{
    for (size_t i = 0; i < suite->n_cases; i++)
        kiln_check_run_case(run, &suite->cases[i]);
    if (suite->custom != NULL)
        suite->custom(run);
}

const kiln_check_suite *kiln_check_find_suite(const char *name)
{
    for (size_t i = 0; i < kiln_check_n_suites; i++) {
        if (strcmp(kiln_check_suites[i]->name, name) == 0)
            return kiln_check_suites[i];
    }
    return NULL;
}
