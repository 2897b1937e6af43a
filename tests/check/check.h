/*
 * The op checks shared by the test suite and `kiln selftest`: each op family lists cases (op,
 * parameters, input shapes and generators, double-precision reference forward and backward,
 * tolerances) in tests/ref/<family>.c, and this harness runs them on any device:
 *   forward   device output vs the reference, element by element, |got - ref| <= atol + rtol*|ref|
 *   backward  device gradients (accumulated onto random prior values) vs the reference's
 *   backward fresh  the same call with the gradients set to NaN and marked fresh
 *             (kiln_op_args.grad_fresh): each must equal the reference's alone
 *   ref-fd    the reference's analytic gradients vs central differences of its own forward
 * NaN must match NaN and infinities must match exactly. Families with needs beyond that
 * (running statistics, RNG reproducibility, large volumes) add custom checks that report
 * rows the same way.
 */
#ifndef KILN_CHECK_H
#define KILN_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln/ops.h"

/* How a case fills an input. */
typedef enum kiln_check_gen_kind {
    KILN_GEN_NORMAL = 0, /* N(0, 1) scaled by `hi` when hi != 0 */
    KILN_GEN_UNIFORM,    /* uniform in [lo, hi) */
    KILN_GEN_AWAY,       /* random sign, magnitude uniform in [lo, hi): away from kinks at 0 */
    KILN_GEN_LABELS,     /* i32 class indices uniform in [0, classes) */
    KILN_GEN_BINARY,     /* 0 or 1 with probability 1/2 */
    KILN_GEN_SPECIAL,    /* N(0,1) with +inf, -inf and NaN planted at fixed places */
    KILN_GEN_DISTINCT,   /* a random permutation of distinct values spaced >= 0.01: no ties */
} kiln_check_gen_kind;

typedef struct kiln_check_gen {
    kiln_check_gen_kind kind;
    double lo, hi;
    int classes;
} kiln_check_gen;

/* What a reference sees: the op's parameters and inputs as doubles (i32 labels converted). */
typedef struct kiln_ref_io {
    const void *params;
    kiln_mode mode;
    uint64_t seed, step;
    uint32_t node;
    int n_inputs;
    const kiln_shape *in_shapes;
    const double *const *in;
    kiln_shape out_shape;
} kiln_ref_io;

/* Writes the output (out_shape elements). */
typedef void (*kiln_ref_forward)(const kiln_ref_io *io, double *out);
/* Writes (not accumulates) each wanted input gradient; gin[i] is NULL when not wanted.
 * `out` is the reference forward's output, `gout` the output gradient. */
typedef void (*kiln_ref_backward)(const kiln_ref_io *io, const double *out, const double *gout,
                                  double *const *gin);

typedef struct kiln_check_case {
    const char *op;
    const void *params;
    int n_inputs;
    kiln_shape inputs[KILN_OP_MAX_INPUTS];
    kiln_check_gen gen[KILN_OP_MAX_INPUTS];
    kiln_mode mode;
    kiln_ref_forward forward;
    kiln_ref_backward backward; /* NULL: forward only */
    double atol, rtol;          /* forward tolerance */
    double grad_atol, grad_rtol; /* backward tolerance */
    double fd_rtol;              /* ref-fd tolerance (0: 1e-5); the atol is scaled alike */
    uint64_t seed;
    const char *label; /* shown instead of the input shapes when set */
    /* Passed to forward and backward in kiln_op_args.activation; the reference computes the
     * activated output and differentiates through it. */
    kiln_activation activation;
} kiln_check_case;

typedef struct kiln_check_row {
    const char *op;
    char shape[96];
    const char *what; /* "forward", "backward", "ref-fd", or a custom check's name */
    double max_abs, max_rel;
    double atol, rtol;
    bool pass;
    double ms;
    char note[256]; /* why it failed, or "" */
} kiln_check_row;

typedef struct kiln_check_run {
    kiln_device *dev;
    const char *only_op; /* NULL: every op */
    void (*on_row)(const kiln_check_row *row, void *user);
    void *user;
    int n_rows, n_failed;
} kiln_check_run;

typedef struct kiln_check_suite {
    const char *name;
    const kiln_check_case *cases;
    size_t n_cases;
    /* Checks that do not fit the case pattern; may be NULL. Honour run->only_op. */
    void (*custom)(kiln_check_run *run);
} kiln_check_suite;

/* Every suite, for `kiln selftest` (suites.c). */
extern const kiln_check_suite *const kiln_check_suites[];
extern const size_t kiln_check_n_suites;

void kiln_check_run_case(kiln_check_run *run, const kiln_check_case *c);
void kiln_check_run_suite(kiln_check_run *run, const kiln_check_suite *suite);
/* The suite with this name, or NULL. */
const kiln_check_suite *kiln_check_find_suite(const char *name);

/* ---- building blocks for custom checks ---- */

/* Compares n device values with reference values and reports one row. */
void kiln_check_compare(kiln_check_run *run, const char *op, const char *shape,
                        const char *what, const float *got, const double *ref, size_t n,
                        double atol, double rtol, double ms);
/* Reports a row that failed outright (a status error, a wrong exit, ...). */
void kiln_check_fail(kiln_check_run *run, const char *op, const char *shape, const char *what,
                     const char *note);
/* Deterministic input generation (the same as cases use). */
void kiln_check_generate(const kiln_check_gen *gen, uint64_t seed, double *out, size_t n);
/* Milliseconds on a monotonic clock. */
double kiln_check_now_ms(void);
/* A device tensor holding `values` (converted to f32 or i32). NULL after reporting a row on
 * failure. */
kiln_tensor *kiln_check_tensor(kiln_check_run *run, const char *op, const kiln_shape *shape,
                               kiln_dtype dtype, const double *values, const char *name);

/* Gathers a shape label "(2, 3), (3,)" for rows. */
void kiln_check_shapes_label(const kiln_shape *shapes, int n, char *out, size_t capacity);

#endif
