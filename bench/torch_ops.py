#!/usr/bin/python3
"""PyTorch/OpenBLAS on the CPU for the same rows as bench/ops (same keys, same shapes).

KILN_BENCH_TORCH_DEVICE=cuda runs the rows on the first CUDA GPU instead (cuBLAS for GEMM,
cuDNN for convolutions, float32 arithmetic: TF32 off), for Kiln on that GPU.

Runs with Debian's python3-torch. Thread settings follow shared/notes/pocl-performance.md:
torch at 2 intra-op threads for convolutions, OpenBLAS (through numpy, for GEMM) at 2 threads
with OPENBLAS_CORETYPE=SkylakeX, because the machine's default core type halves OpenBLAS's
speed and would flatter Kiln. Prints "key rate unit" lines; benchmarks never assert.
"""
import os
import sys

os.environ.setdefault("OPENBLAS_CORETYPE", "SkylakeX")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import numpy as np  # noqa: E402  (environment first: OpenBLAS reads it at load time)
from timing import time_it  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ.get("KILN_BENCH_TORCH_THREADS", "2")))
DEVICE = torch.device(os.environ.get("KILN_BENCH_TORCH_DEVICE", "cpu"))
CUDA = DEVICE.type == "cuda"
if CUDA:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True


def timed(fn):
    """time_it, waiting for the GPU's queue after each batch when the rows run on one."""
    return time_it(fn, torch.cuda.synchronize if CUDA else None)


ONLY = os.environ.get("KILN_BENCH_ONLY", "")


def wanted(key):
    """Whether the row `key` is wanted (KILN_BENCH_ONLY, a key prefix, as bench/ops reads it)."""
    return key.startswith(ONLY)


def row(key, amount, seconds, unit):
    print(f"{key} {amount / seconds / 1e9:.2f} {unit}", flush=True)


def bandwidth():
    if not wanted("copy") and not wanted("add"):
        return
    n = 32 << 20
    a = torch.rand(n, device=DEVICE)
    b = torch.rand(n, device=DEVICE)
    y = torch.empty(n, device=DEVICE)
    row("copy", 2.0 * 4 * n, timed(lambda: y.copy_(a)), "GB/s")
    row("add", 3.0 * 4 * n, timed(lambda: torch.add(a, b, out=y)), "GB/s")


def gemm(key, m, n, k, ta=False, tb=False):
    if not wanted(key):
        return
    a = np.random.rand(k, m).astype(np.float32) if ta else np.random.rand(m, k).astype(np.float32)
    b = np.random.rand(n, k).astype(np.float32) if tb else np.random.rand(k, n).astype(np.float32)
    c = np.empty((m, n), dtype=np.float32)
    opa = a.T if ta else a
    opb = b.T if tb else b
    if CUDA:
        ga, gb = torch.from_numpy(a).to(DEVICE), torch.from_numpy(b).to(DEVICE)
        gc = torch.empty((m, n), device=DEVICE)
        opa, opb = (ga.T if ta else ga), (gb.T if tb else gb)
        row(key, 2.0 * m * n * k, timed(lambda: torch.matmul(opa, opb, out=gc)), "GFLOP/s")
        return
    row(key, 2.0 * m * n * k, time_it(lambda: np.matmul(opa, opb, out=c)), "GFLOP/s")


def dense_layer(name, batch, fan_in, fan_out):
    gemm(f"gemm_{name}_fwd", batch, fan_out, fan_in)
    gemm(f"gemm_{name}_dw", fan_in, fan_out, batch, ta=True)
    gemm(f"gemm_{name}_dx", batch, fan_in, fan_out, tb=True)


def conv_gemms(name, f, k, p):
    """A convolution's im2col products for one chunk of samples, as bench/ops.c's."""
    gemm(f"gemm_{name}_fwd", f, p, k)
    gemm(f"gemm_{name}_dw", f, k, p, tb=True)
    gemm(f"gemm_{name}_dx", k, p, f, ta=True)


def conv(key, x_shape, w_shape, dims):
    if not wanted(key):
        return
    x = torch.rand(*x_shape, device=DEVICE, requires_grad=True)
    w = torch.rand(*w_shape, device=DEVICE, requires_grad=True)
    f = torch.nn.functional.conv2d if dims == 2 else torch.nn.functional.conv3d
    y = f(x, w, padding=1)
    spatial = y[0, 0].numel()
    window = w[0].numel()
    flops = 2.0 * y.shape[0] * y.shape[1] * spatial * window
    with torch.no_grad():
        row(f"{key}_fwd", flops, timed(lambda: f(x, w, padding=1)), "GFLOP/s")
    g = torch.rand_like(y)

    def backward():
        out = f(x, w, padding=1)
        gx, gw = torch.autograd.grad(out, (x, w), g)
        return gx, gw

    # The timed call includes a forward, as autograd needs one; count it in the work done.
    row(f"{key}_bwd", 3 * flops, timed(backward), "GFLOP/s")


def extra_gemms():
    """The rows KILN_BENCH_GEMM adds ("T:MxNxK ...", keys gemm_x_T_MxNxK, as bench/ops.c)."""
    for spec in os.environ.get("KILN_BENCH_GEMM", "").split():
        t, _, dims = spec.partition(":")
        m, n, k = (int(d) for d in dims.split("x"))
        gemm(f"gemm_x_{t}_{m}x{n}x{k}", m, n, k, ta=t[0] == "T", tb=t[1] == "T")


def main():
    where = torch.cuda.get_device_name(DEVICE) if CUDA else "the CPU"
    print(f"# torch {torch.__version__} on {where}, {torch.get_num_threads()} threads, "
          f"OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']}", file=sys.stderr)
    bandwidth()
    extra_gemms()
    gemm("gemm_1024", 1024, 1024, 1024)
    dense_layer("mlp1", 128, 784, 256)
    dense_layer("mlp2", 128, 256, 128)
    dense_layer("mlp3", 128, 128, 10)
    # Per chunk of samples, as src/ops/conv.c runs them and bench/ops.c times them.
    conv_gemms("cnn_conv1", 32, 9, 32 * 784)
    conv_gemms("cnn_conv2", 64, 288, 15 * 196)
    dense_layer("cnn_fc1", 64, 3136, 128)
    dense_layer("cnn_fc2", 64, 128, 10)
    conv("conv2d_cnn1", (64, 1, 28, 28), (32, 1, 3, 3), 2)
    conv("conv2d_cnn2", (64, 32, 14, 14), (64, 32, 3, 3), 2)
    conv("conv3d_unet", (2, 8, 32, 32, 32), (16, 8, 3, 3, 3), 3)


if __name__ == "__main__":
    main()
