/*
 * `train.callbacks.diagnose.eval_train`: the train-versus-eval check of DESIGN.md. After an
 * epoch, the training split's full batches are scored with the same weights twice, in train
 * mode (batch statistics, dropout) and in eval mode (running statistics), and a warning names
 * the usual causes when the two losses differ by more than the configured fraction. A train-mode
 * forward updates the batch-norm running statistics, so they are copied out first and put back.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train_loop.h"

/* Host copies of every buffer of the model (the batch-norm running statistics). */
typedef struct saved_buffers {
    size_t n;
    kiln_value *values;
    float **data;
} saved_buffers;

static void saved_buffers_free(saved_buffers *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->data[i]);
    free(s->data);
    free(s->values);
}

static kiln_status save_buffers(trainer *t, saved_buffers *s, config_error *err)
{
    memset(s, 0, sizeof *s);
    kiln_status rc = trainer_alloc_state(t, true, &s->values, &s->data, &s->n, err);
    return rc == KILN_OK ? trainer_copy_state(t, s->values, s->data, s->n, false) : rc;
}

/* score's loop state: the executor and the sum of the batch losses. */
typedef struct score_state {
    kiln_executor *ex;
    double sum;
} score_state;

static kiln_status score_enqueue(trainer *t, trainer_slot *s, void *state)
{
    score_state *st = state;
    kiln_status rc = kiln_executor_forward(st->ex, t->step);
    return rc == KILN_OK
               ? kiln_executor_read_async(st->ex, t->loss, &s->loss, 1, trainer_slot_ticket(s))
               : rc;
}

static kiln_status score_consume(trainer *t, const trainer_slot *s, int64_t index, void *state)
{
    (void)t;
    (void)index;
    ((score_state *)state)->sum += s->loss;
    return KILN_OK;
}

/* The mean of the device's batch loss over the training split's full batches, in order, run
 * through `ex` (forward only). */
static kiln_status score(trainer *t, kiln_executor *ex, double *out)
{
    kiln_batcher_options options = {.batch_size = t->batch, .shuffle = false, .drop_last = true};
    kiln_batcher *b = NULL;
    kiln_status rc = kiln_batcher_create(t->data->train, &options, &b);
    if (rc != KILN_OK)
        return rc;
    int64_t n_batches = kiln_batcher_n_batches(b);
    score_state st = {ex, 0};
    trainer_batch_fns fns = {.enqueue = score_enqueue, .consume = score_consume};
    rc = trainer_run_batches(t, b, t->data->train, ex, 0, &fns, &st);
    kiln_batcher_destroy(b);
    *out = n_batches > 0 ? st.sum / (double)n_batches : NAN;
    return rc;
}

static void append(train_epoch_values *v, const char *name, double value)
{
    snprintf(v->names[v->n], TRAIN_MAX_NAME, "%s", name);
    v->values[v->n++] = value;
}

kiln_status trainer_diagnose(trainer *t, int64_t epoch, train_epoch_values *v, config_error *err)
{
    saved_buffers saved;
    double train_loss = NAN, eval_loss = NAN;
    kiln_status rc = save_buffers(t, &saved, err);
    if (rc == KILN_OK)
        rc = score(t, t->train_ex, &train_loss);
    if (rc == KILN_OK)
        rc = trainer_copy_state(t, saved.values, saved.data, saved.n, true);
    if (rc == KILN_OK)
        rc = score(t, t->eval_ex, &eval_loss);
    saved_buffers_free(&saved);
    if (rc != KILN_OK)
        return rc;
    append(v, "train_mode_loss", train_loss);
    append(v, "eval_mode_loss", eval_loss);
    double gap = fabs(eval_loss - train_loss) / fmax(fabs(train_loss), 1e-12);
    double threshold = t->cfg->train.diagnose.threshold;
    if (!(gap <= threshold))
        fprintf(stderr,
                "kiln: warning: epoch %lld: on the training split the loss is %.4g in eval mode "
                "but %.4g in train mode (a %.0f%% gap, threshold %.0f%%). The model behaves "
                "differently when evaluated: batch-norm running statistics that do not match the "
                "batch statistics training used (small batches, a high momentum, too few steps), "
                "or heavy dropout. See docs/TROUBLESHOOTING.md.\n",
                (long long)epoch + 1, eval_loss, train_loss, 100 * gap, 100 * threshold);
    return KILN_OK;
}
