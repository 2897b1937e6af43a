#!/usr/bin/python3
"""PyTorch on the CPU for the rows of bench/conv3d: the seg3d U-Net's conv3d layers (with bias).

Reads bench/conv3d's lines ("key x-shape w-shape count ...") on stdin so both sides time the
same shapes, and prints "key fwd_ms bwd_ms bwd_nodx_ms" per layer: forward, the backward of
dx, dw and db through aten's convolution_backward (no forward inside), and the backward without
dx. Thread count from KILN_BENCH_TORCH_THREADS; bench/conv3d.sh runs it at 1 and 2. Runs with
Debian's python3-torch; benchmarks never assert.
"""
import os
import sys

os.environ.setdefault("OPENBLAS_CORETYPE", "SkylakeX")

from timing import time_it  # noqa: E402
import torch  # noqa: E402  (environment first: OpenBLAS reads it at load time)

torch.set_num_threads(int(os.environ.get("KILN_BENCH_TORCH_THREADS", "2")))


def shape(text):
    return tuple(int(v) for v in text.strip("()").split(","))


def layer(key, x_shape, w_shape):
    x = torch.rand(*x_shape) * 2 - 1
    w = torch.rand(*w_shape) * 2 - 1
    b = torch.rand(w_shape[0]) * 2 - 1
    pad = [(w_shape[2] - 1) // 2] * 3
    with torch.no_grad():
        y = torch.nn.functional.conv3d(x, w, b, padding=pad)
        g = torch.rand_like(y) * 2 - 1
        fwd = time_it(lambda: torch.nn.functional.conv3d(x, w, b, padding=pad))

        def backward(mask):
            return torch.ops.aten.convolution_backward(
                g, x, w, [w_shape[0]], [1, 1, 1], pad, [1, 1, 1], False, [0, 0, 0], 1, mask)

        bwd = time_it(lambda: backward([True, True, True]))
        nodx = time_it(lambda: backward([False, True, True]))
    print(f"{key} {fwd * 1e3:.4f} {bwd * 1e3:.4f} {nodx * 1e3:.4f}", flush=True)


def main():
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']}, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '-')}", flush=True)
    for line in sys.stdin:
        f = line.split()
        if line.startswith("#") or len(f) < 4:
            continue
        layer(f[0], shape(f[1]), shape(f[2]))


if __name__ == "__main__":
    main()
