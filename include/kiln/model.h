/*
 * Models and executors. A model binds a graph to a device: it owns the parameters and buffers
 * (BN running statistics), initialises them from a seed identically on every device, and
 * reads and writes them by name for checkpoints. An executor runs the model in one mode
 * (DESIGN.md): train (tape kept, gradients computed), eval (no tape, running statistics,
 * dropout off) or infer (as eval, with aggressive buffer reuse). Executors of different modes
 * can share one model; switching mode never changes a parameter.
 *
 * Forward and backward only queue work; nothing waits until a value is read back. Neither a
 * model nor an executor is thread-safe.
 */
#ifndef KILN_MODEL_H
#define KILN_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "kiln/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln_model kiln_model;
typedef struct kiln_executor kiln_executor;

/* Allocates every parameter and buffer of `graph` on `dev` and initialises them from `seed`.
 * The graph is borrowed and must outlive the model. */
kiln_status kiln_model_create(kiln_graph *graph, kiln_device *dev, uint64_t seed, kiln_model **out);
void kiln_model_destroy(kiln_model *model);
kiln_graph *kiln_model_get_graph(const kiln_model *model);
kiln_device *kiln_model_get_device(const kiln_model *model);

/* Re-initialises every parameter and buffer from `seed`. Values are generated on the host in
 * double precision from Philox keyed by the seed and the parameter's name, then rounded to
 * float: the same on every device, and independent of the other layers in the graph. */
kiln_status kiln_model_initialize(kiln_model *model, uint64_t seed);

/* The device tensor of a parameter or buffer (owned by the model), or NULL. */
kiln_tensor *kiln_model_get_state(const kiln_model *model, kiln_value value);
/* Blocking host copies of a parameter or buffer by name; KILN_ERR_NOT_FOUND for an unknown
 * name, KILN_ERR_SHAPE when n differs from its element count. */
kiln_status kiln_model_read_state(kiln_model *model, const char *name, float *host, int64_t n);
kiln_status kiln_model_write_state(kiln_model *model, const char *name, const float *host,
                                   int64_t n);

typedef struct kiln_executor_options {
    kiln_mode mode;
    /* Share device buffers between values whose lifetimes do not overlap. Infer mode always
     * does (DESIGN.md: infer reuses buffers aggressively); eval and train only when asked,
     * so that every intermediate value stays readable for inspection by default. */
    bool plan_memory;
    /* Node outputs to keep readable after forward even when planning (e.g. the logits a
     * metric needs); borrowed for the call only. */
    const kiln_value *keep;
    size_t n_keep;
} kiln_executor_options;

/* Allocates the activations (and in train mode the gradients) for one mode. In train mode
 * the graph needs a loss (kiln_graph_set_loss). Values that no node consumes, and the loss,
 * stay readable after forward, and so do `keep`; with planning, other intermediate values may
 * be reused.
 * Before allocating anything it builds the program of every op (an op the device cannot
 * compile fails with that status, naming the node, the op and the device) and checks that the
 * plan and the inputs fit beside what the device already holds: if not, KILN_ERR_DEVICE_OOM
 * with one message giving the bytes needed, the device's memory and the largest batch size
 * (leading dimension of the inputs) that fits. */
kiln_status kiln_executor_create(kiln_model *model, const kiln_executor_options *options,
                                 kiln_executor **out);
/* The bytes kiln_executor_planned_bytes would report for an executor created with these
 * options, computed without allocating device memory or building programs. Same argument
 * errors as kiln_executor_create. */
kiln_status kiln_executor_estimate_bytes(kiln_model *model, const kiln_executor_options *options,
                                         uint64_t *out_bytes);
void kiln_executor_destroy(kiln_executor *ex);

/* Uploads an input's data (blocking copy from host memory). */
kiln_status kiln_executor_set_input(kiln_executor *ex, kiln_value input, const void *host,
                                    int64_t n);
/* Queues the upload behind the work already queued (kiln_buffer_write_async's rules: `host`
 * stays valid and untouched until the transfer has completed); `out_transfer` (may be NULL)
 * receives the ticket to wait on and release. Queued before the next forward, it is what that
 * forward reads; queued after a forward, it does not disturb it (the queue is in order). */
kiln_status kiln_executor_set_input_async(kiln_executor *ex, kiln_value input, const void *host,
                                          int64_t n, kiln_transfer **out_transfer);
/* Queues the forward pass. `step` keys dropout masks (with the model's seed and node index). */
kiln_status kiln_executor_forward(kiln_executor *ex, uint64_t step);
/* Train mode: queues the backward pass from d(loss) = 1, leaving each parameter's gradient
 * (overwritten, not accumulated across calls) in kiln_executor_get_grad. */
kiln_status kiln_executor_backward(kiln_executor *ex);
/* Blocking read of a readable value (an input, parameter, buffer, or kept node output). */
kiln_status kiln_executor_read(kiln_executor *ex, kiln_value value, void *host, int64_t n);
/* Queues the read behind the work already queued (kiln_buffer_read_async's rules): `host`
 * holds the value once the ticket in *out_transfer (may be NULL) has been waited on. Same
 * argument errors as kiln_executor_read. */
kiln_status kiln_executor_read_async(kiln_executor *ex, kiln_value value, void *host, int64_t n,
                                     kiln_transfer **out_transfer);
/* The gradient tensor of a parameter after backward (train mode), or NULL. */
kiln_tensor *kiln_executor_get_grad(const kiln_executor *ex, kiln_value param);
/* Device bytes this executor planned: activations, saved tensors, gradients and workspace
 * (parameters, buffers and inputs excluded). */
uint64_t kiln_executor_planned_bytes(const kiln_executor *ex);
kiln_mode kiln_executor_get_mode(const kiln_executor *ex);
/* The model the executor runs (borrowed). */
kiln_model *kiln_executor_get_model(const kiln_executor *ex);

#ifdef __cplusplus
}
#endif

#endif
