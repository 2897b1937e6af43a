/*
 * Learning-rate schedules (include/kiln/train.h): the rate for a step and epoch as a pure
 * function of a small caller-owned struct, with PyTorch's semantics (StepLR,
 * CosineAnnealingLR, ReduceLROnPlateau) and a linear warm-up composed in front. All host
 * arithmetic in double; the only state is the plateau's, which kiln_schedule_report advances
 * and which lives in the struct so that checkpoints can save it.
 */
#include <math.h>
#include <string.h>

#include "core/context.h"
#include "kiln/train.h"

void kiln_schedule_init(kiln_schedule *s, kiln_schedule_kind kind, double base_lr)
{
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->base_lr = base_lr;
    s->step_size = 1;
    s->gamma = 0.1;
    s->t_max = 1;
    s->factor = 0.1;
    s->patience = 10;
    s->min_delta = 1e-4;
    s->eps = 1e-8;
}

/* Records KILN_ERR_INVALID_ARGUMENT for field `field` unless `ok`. */
static kiln_status check_field(kiln_context *ctx, bool ok, const char *field, const char *rule,
                               double value)
{
    if (ok)
        return KILN_OK;
    return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, "kiln_schedule_check",
                       "%s must be %s, got %g", field, rule, value);
}

static bool finite_at_least(double x, double lo)
{
    return isfinite(x) && x >= lo;
}

kiln_status kiln_schedule_check(kiln_context *ctx, const kiln_schedule *s)
{
    if (ctx == NULL || s == NULL)
        return KILN_ERR_INVALID_ARGUMENT;
    if (s->kind < KILN_SCHEDULE_CONSTANT || s->kind > KILN_SCHEDULE_PLATEAU)
        return kiln__error(ctx, KILN_ERR_INVALID_ARGUMENT, "kiln_schedule_check",
                           "kind %d is not a schedule (CONSTANT, STEP, COSINE or PLATEAU)",
                           (int)s->kind);
    kiln_status rc = check_field(ctx, isfinite(s->base_lr) && s->base_lr > 0, "base_lr",
                                 "a finite number > 0", s->base_lr);
    if (rc == KILN_OK)
        rc =
            check_field(ctx, s->warmup_steps >= 0, "warmup_steps", ">= 0", (double)s->warmup_steps);
    switch (s->kind) {
    case KILN_SCHEDULE_STEP:
        if (rc == KILN_OK)
            rc = check_field(ctx, s->step_size >= 1, "step_size", ">= 1 epoch",
                             (double)s->step_size);
        if (rc == KILN_OK)
            rc = check_field(ctx, isfinite(s->gamma) && s->gamma > 0, "gamma",
                             "a finite number > 0", s->gamma);
        break;
    case KILN_SCHEDULE_COSINE:
        if (rc == KILN_OK)
            rc = check_field(ctx, s->t_max >= 1, "t_max", ">= 1 epoch", (double)s->t_max);
        if (rc == KILN_OK)
            rc = check_field(ctx, finite_at_least(s->min_lr, 0), "min_lr", "a finite number >= 0",
                             s->min_lr);
        break;
    case KILN_SCHEDULE_PLATEAU:
        if (rc == KILN_OK)
            rc = check_field(ctx, s->factor > 0 && s->factor < 1, "factor", "in (0, 1)", s->factor);
        if (rc == KILN_OK)
            rc = check_field(ctx, s->patience >= 0, "patience", ">= 0", (double)s->patience);
        if (rc == KILN_OK)
            rc = check_field(ctx, finite_at_least(s->min_delta, 0), "min_delta",
                             "a finite number >= 0", s->min_delta);
        if (rc == KILN_OK)
            rc = check_field(ctx, s->cooldown >= 0, "cooldown", ">= 0", (double)s->cooldown);
        if (rc == KILN_OK)
            rc = check_field(ctx, finite_at_least(s->min_lr, 0), "min_lr", "a finite number >= 0",
                             s->min_lr);
        if (rc == KILN_OK)
            rc =
                check_field(ctx, finite_at_least(s->eps, 0), "eps", "a finite number >= 0", s->eps);
        if (rc == KILN_OK)
            rc = check_field(ctx, finite_at_least(s->plateau_lr, 0), "plateau_lr",
                             "a finite number >= 0 (0: base_lr)", s->plateau_lr);
        break;
    case KILN_SCHEDULE_CONSTANT:
        break;
    }
    return rc;
}

/* The linear warm-up factor: (step + 1) / (w + 1) for the first w steps, then 1. */
static double warmup(int64_t warmup_steps, int64_t step)
{
    if (step >= warmup_steps)
        return 1.0;
    return (double)(step + 1) / (double)(warmup_steps + 1);
}

static double plateau_lr(const kiln_schedule *s)
{
    return s->plateau_lr > 0 ? s->plateau_lr : s->base_lr;
}

double kiln_schedule_lr(const kiln_schedule *s, int64_t step, int64_t epoch)
{
    step = step > 0 ? step : 0;
    epoch = epoch > 0 ? epoch : 0;
    double lr = s->base_lr;
    switch (s->kind) {
    case KILN_SCHEDULE_STEP:
        lr = s->base_lr * pow(s->gamma, (double)(epoch / s->step_size));
        break;
    case KILN_SCHEDULE_COSINE: {
        /* The closed form of torch.optim.lr_scheduler.CosineAnnealingLR. */
        int64_t t = epoch < s->t_max ? epoch : s->t_max;
        double pi = 3.14159265358979323846;
        lr = s->min_lr +
             (s->base_lr - s->min_lr) * (1.0 + cos(pi * (double)t / (double)s->t_max)) / 2.0;
        break;
    }
    case KILN_SCHEDULE_PLATEAU:
        lr = plateau_lr(s);
        break;
    case KILN_SCHEDULE_CONSTANT:
        break;
    }
    return warmup(s->warmup_steps, step) * lr;
}

/* torch.optim.lr_scheduler.ReduceLROnPlateau.is_better; the first report always improves
 * (on an infinite best), unless it is NaN. */
static bool improves(const kiln_schedule *s, double value)
{
    double best = s->has_best ? s->best : s->maximize ? -INFINITY : INFINITY;
    if (s->maximize)
        return s->absolute ? value > best + s->min_delta : value > best * (1.0 + s->min_delta);
    return s->absolute ? value < best - s->min_delta : value < best * (1.0 - s->min_delta);
}

bool kiln_schedule_report(kiln_schedule *s, double value)
{
    if (s->kind != KILN_SCHEDULE_PLATEAU)
        return false;
    if (improves(s, value)) {
        s->best = value;
        s->has_best = true;
        s->bad_epochs = 0;
    } else {
        s->bad_epochs++;
    }
    if (s->cooldown_left > 0) { /* bad epochs in cooldown are ignored */
        s->cooldown_left--;
        s->bad_epochs = 0;
    }
    if (s->bad_epochs <= s->patience)
        return false;
    s->cooldown_left = s->cooldown;
    s->bad_epochs = 0;
    double old_lr = plateau_lr(s);
    double new_lr = fmax(old_lr * s->factor, s->min_lr);
    if (old_lr - new_lr <= s->eps)
        return false;
    s->plateau_lr = new_lr;
    return true;
}
