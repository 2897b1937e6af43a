/*
 * Optimiser updates, in place: SGD (momentum, Nesterov, weight decay), Adam and AdamW, and the
 * elementwise parts of global gradient-norm clipping (the sums themselves go through
 * reduce.cl). These are not ops of the table, so their kernels are named by what they do
 * rather than `<op>_fwd`. Every launch may round the global size up, so every kernel checks its
 * range. Scalars derived from the step number are computed on the host in double.
 *
 * The update kernels step a group of up to OPTIM_SLOTS tensors in one launch (src/ops/optim.c
 * fills unused slots with slot 0's buffers and gives them no elements). Work-item w belongs to
 * the last slot s with first[s] <= w and updates that tensor's elements
 * [(w - first[s]) * OPTIM_RUN, + OPTIM_RUN) below count[s]: PoCL pays per work-item, and a run
 * of contiguous elements lets the compiler use vector loads and stores.
 */
#ifndef KILN_REAL
#define KILN_REAL float
#endif

#define OPTIM_RUN 16

/* Eight kernel arguments name0 .. name7 of one role, and the one of slot s among them. */
#define OPTIM_SLOT_ARGS(qual, name)                                                                \
    qual name##0, qual name##1, qual name##2, qual name##3, qual name##4, qual name##5,            \
        qual name##6, qual name##7
#define OPTIM_PICK(name, s)                                                                        \
    ((s) == 0   ? name##0                                                                          \
     : (s) == 1 ? name##1                                                                          \
     : (s) == 2 ? name##2                                                                          \
     : (s) == 3 ? name##3                                                                          \
     : (s) == 4 ? name##4                                                                          \
     : (s) == 5 ? name##5                                                                          \
     : (s) == 6 ? name##6                                                                          \
                : name##7)

/* Work-item w's slot and its run [*begin, *begin + *len) of that slot's tensor (*len 0: none). */
inline uint optim_slot(const uint w, const uint8 first, const uint8 count, uint *begin, uint *len)
{
    uint f[8], c[8];
    vstore8(first, 0, f);
    vstore8(count, 0, c);
    uint s = 0;
    for (uint k = 1; k < 8; k++)
        s = w >= f[k] ? k : s;
    const uint runs = c[s] / OPTIM_RUN + (c[s] % OPTIM_RUN != 0); /* no overflow near 2^32 */
    const uint r = w - f[s];
    *begin = r * OPTIM_RUN;
    *len = r >= runs ? 0 : (c[s] - *begin < OPTIM_RUN ? c[s] - *begin : OPTIM_RUN);
    return s;
}

/*
 * torch.optim.SGD, dampening 0. param, grad, velocity: the slot's tensors, of one size. With
 * has_momentum 0 the velocity is neither read nor written (the host passes any buffer). Weight
 * decay is skipped when 0, as PyTorch does, so that a non-finite parameter does not turn the
 * gradient into NaN.
 */
inline void sgd_update(__global KILN_REAL *param, __global const KILN_REAL *grad,
                       __global KILN_REAL *velocity, const uint i, const KILN_REAL lr,
                       const KILN_REAL momentum, const KILN_REAL weight_decay,
                       const int has_momentum, const int nesterov)
{
    const KILN_REAL p = param[i];
    const KILN_REAL g = weight_decay != 0 ? grad[i] + weight_decay * p : grad[i];
    KILN_REAL step = g;
    if (has_momentum) {
        const KILN_REAL v = momentum * velocity[i] + g;
        velocity[i] = v;
        step = nesterov ? g + momentum * v : v;
    }
    param[i] = p - lr * step;
}

__kernel void sgd_step(OPTIM_SLOT_ARGS(__global KILN_REAL *, param),
                       OPTIM_SLOT_ARGS(__global const KILN_REAL *, grad),
                       OPTIM_SLOT_ARGS(__global KILN_REAL *, velocity), const KILN_REAL lr,
                       const KILN_REAL momentum, const KILN_REAL weight_decay,
                       const int has_momentum, const int nesterov, const uint8 first,
                       const uint8 count)
{
    uint begin, len;
    const uint s = optim_slot((uint)get_global_id(0), first, count, &begin, &len);
    __global KILN_REAL *p = OPTIM_PICK(param, s);
    __global const KILN_REAL *g = OPTIM_PICK(grad, s);
    __global KILN_REAL *v = OPTIM_PICK(velocity, s);
    if (len == OPTIM_RUN) {
        for (uint j = 0; j < OPTIM_RUN; j++)
            sgd_update(p, g, v, begin + j, lr, momentum, weight_decay, has_momentum, nesterov);
    } else {
        for (uint j = 0; j < len; j++)
            sgd_update(p, g, v, begin + j, lr, momentum, weight_decay, has_momentum, nesterov);
    }
}

/*
 * torch.optim.Adam / AdamW without amsgrad. param, grad, m, v: the slot's tensors.
 * decay: 1 - lr * weight_decay for AdamW, else 1. grad_decay: weight_decay for Adam, else 0.
 * step_size: lr / (1 - beta1^t). sqrt_bc2: sqrt(1 - beta2^t).
 */
inline void adam_update(__global KILN_REAL *param, __global const KILN_REAL *grad,
                        __global KILN_REAL *m, __global KILN_REAL *v, const uint i,
                        const KILN_REAL decay, const KILN_REAL grad_decay, const KILN_REAL beta1,
                        const KILN_REAL beta2, const KILN_REAL step_size, const KILN_REAL sqrt_bc2,
                        const KILN_REAL eps)
{
    KILN_REAL p = param[i];
    const KILN_REAL g = grad_decay != 0 ? grad[i] + grad_decay * p : grad[i];
    p *= decay;
    const KILN_REAL mi = beta1 * m[i] + (1 - beta1) * g;
    const KILN_REAL vi = beta2 * v[i] + (1 - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] = p - step_size * mi / (sqrt(vi) / sqrt_bc2 + eps);
}

__kernel void adam_step(OPTIM_SLOT_ARGS(__global KILN_REAL *, param),
                        OPTIM_SLOT_ARGS(__global const KILN_REAL *, grad),
                        OPTIM_SLOT_ARGS(__global KILN_REAL *, m),
                        OPTIM_SLOT_ARGS(__global KILN_REAL *, v), const KILN_REAL decay,
                        const KILN_REAL grad_decay, const KILN_REAL beta1, const KILN_REAL beta2,
                        const KILN_REAL step_size, const KILN_REAL sqrt_bc2, const KILN_REAL eps,
                        const uint8 first, const uint8 count)
{
    uint begin, len;
    const uint s = optim_slot((uint)get_global_id(0), first, count, &begin, &len);
    __global KILN_REAL *p = OPTIM_PICK(param, s);
    __global const KILN_REAL *g = OPTIM_PICK(grad, s);
    __global KILN_REAL *ms = OPTIM_PICK(m, s);
    __global KILN_REAL *vs = OPTIM_PICK(v, s);
    if (len == OPTIM_RUN) {
        for (uint j = 0; j < OPTIM_RUN; j++)
            adam_update(p, g, ms, vs, begin + j, decay, grad_decay, beta1, beta2, step_size,
                        sqrt_bc2, eps);
    } else {
        for (uint j = 0; j < len; j++)
            adam_update(p, g, ms, vs, begin + j, decay, grad_decay, beta1, beta2, step_size,
                        sqrt_bc2, eps);
    }
}

/* squares[i] = g[i]^2, the terms of one gradient's sum of squares. g, squares: (n,). */
__kernel void clip_grad_norm_square(__global const KILN_REAL *g, __global KILN_REAL *squares,
                                    const uint n)
{
    const uint i = (uint)get_global_id(0);
    if (i < n)
        squares[i] = g[i] * g[i];
}

/* sums[slot] = total[0]: keeps one gradient's sum of squares (reduced into the one-element
 * `total`) while the next gradient's squares overwrite the scratch. One work-item. */
__kernel void clip_grad_norm_stash(__global const KILN_REAL *total, __global KILN_REAL *sums,
                                   const uint slot)
{
    if (get_global_id(0) == 0)
        sums[slot] = total[0];
}

/* ws[i] = ws[offset + i] for i < n: moves the per-gradient sums to the start of the workspace
 * for the final reduction. The host keeps offset >= n, so the ranges never overlap. */
__kernel void clip_grad_norm_gather(__global KILN_REAL *ws, const uint offset, const uint n)
{
    const uint i = (uint)get_global_id(0);
    if (i < n)
        ws[i] = ws[offset + i];
}

/* norm[0] = sqrt(norm[0]) (the sum of squares becomes the norm), or 0 when there were no
 * gradients. One work-item. */
__kernel void clip_grad_norm_finish(__global KILN_REAL *norm, const int has_sum)
{
    if (get_global_id(0) == 0)
        norm[0] = has_sum ? sqrt(norm[0]) : 0;
}

/*
 * g[i] *= min(1, max_norm / (norm + 1e-6)), as torch.nn.utils.clip_grad_norm_. The clamp is
 * written so that a NaN coefficient stays NaN, like torch.clamp (fmin would drop it). g: (n,).
 */
__kernel void clip_grad_norm_scale(__global KILN_REAL *g, __global const KILN_REAL *norm,
                                   const KILN_REAL max_norm, const uint n)
{
    const uint i = (uint)get_global_id(0);
    if (i >= n)
        return;
    const KILN_REAL coef = max_norm / (norm[0] + (KILN_REAL)1e-6);
    g[i] *= coef > 1 ? (KILN_REAL)1 : coef;
}
