#!/usr/bin/python3
"""One epoch of a Fashion-MNIST model of models/ with PyTorch on the CPU (or a CUDA GPU).

Usage: torch_train_fmnist.py [THREADS [ARCH [OPTIM]]] [--samples N] [--device cpu|cuda]
THREADS is torch's intra-op thread count (default 1); OPENBLAS_NUM_THREADS and
OPENBLAS_CORETYPE must be set by the caller (bench/*.sh) before Python starts.
ARCH picks the model:
  config  models/fashion_mnist_mlp.yaml (the default): flatten, dense 256, relu, dropout 0.2,
          dense 10; batch 128
  mlp3    784-256-128-10 without dropout, the performance issue's MLP; batch 128
  cnn     models/fashion_mnist_cnn.yaml: conv3x3 32 (same), relu, maxpool 2, conv3x3 64 (same),
          relu, maxpool 2, flatten, dense 128, relu, dense 10; batch 64
OPTIM: "adam" (lr 1e-3, the default) or "sgd" (lr 0.01, momentum 0.9).
--samples N keeps the first N samples of the training file (default: all 60000), as the
benchmarks' truncated files do for Kiln.
--device cuda trains on the first CUDA GPU, for a comparison with Kiln on the same GPU: the
whole data set is copied to the GPU first, one untimed step on a copy of the model warms
cuBLAS/cuDNN up, the loss is summed on the GPU, and the clock is read after a synchronize.
THREADS then only sets the CPU's intra-op threads; --cudnn-benchmark lets cuDNN time its
convolution algorithms (during the warm-up step).
Loss softmax cross-entropy; the split is 90/10 (54000/6000 of the full file), with the images
scaled by 1/255 and standardised by the training mean and deviation, as Kiln's configs do.
Data loading is not timed.
Prints "key value" lines: train_s (the training pass), val_s (a forward pass over the
validation split, which Kiln counts in its epoch time), train_sps, epoch_sps (both over the
training samples). Never asserts.
"""
import argparse
import copy
import gzip
import sys
import time

import numpy as np
import torch

DATA = "/usr/share/datasets/fashion-mnist"


def load(name, offset):
    with gzip.open(f"{DATA}/{name}", "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def model_of(arch):
    nn = torch.nn
    if arch == "mlp3":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128),
                             nn.ReLU(), nn.Linear(128, 10))
    if arch == "cnn":
        return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
                             nn.Linear(128, 10))
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.2),
                         nn.Linear(256, 10))


def main():
    parser = argparse.ArgumentParser(description="One epoch of a Fashion-MNIST model in PyTorch")
    parser.add_argument("threads", nargs="?", type=int, default=1)
    parser.add_argument("arch", nargs="?", default="config", choices=["config", "mlp3", "cnn"])
    parser.add_argument("optim", nargs="?", default="adam", choices=["adam", "sgd"])
    parser.add_argument("--samples", type=int, default=0, help="first N training-file samples")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--cudnn-benchmark", action="store_true",
                        help="let cuDNN time its convolution algorithms (CUDA only)")
    args = parser.parse_args()
    dev = torch.device(args.device)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # float32 arithmetic, as Kiln's
        torch.backends.cudnn.allow_tf32 = False
    threads, arch, optim = args.threads, args.arch, args.optim
    torch.set_num_threads(threads)
    torch.manual_seed(42)
    rng = np.random.default_rng(42)

    x = load("train-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28).astype(np.float32)
    y = load("train-labels-idx1-ubyte.gz", 8).astype(np.int64)
    if args.samples > 0:
        x, y = x[:args.samples], y[:args.samples]
    x *= 0.00392156862
    perm = rng.permutation(len(x))
    n_val = len(x) // 10
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    mean, std = x[train_idx].mean(), x[train_idx].std()
    x = (x - mean) / std
    x_train, y_train = torch.from_numpy(x[train_idx]), torch.from_numpy(y[train_idx])
    x_val, y_val = torch.from_numpy(x[val_idx]), torch.from_numpy(y[val_idx])
    x_train, y_train, x_val, y_val = (t.to(dev) for t in (x_train, y_train, x_val, y_val))

    def optimizer_of(model):
        if optim == "sgd":
            return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        return torch.optim.Adam(model.parameters(), lr=1e-3)

    model = model_of(arch).to(dev)
    opt = optimizer_of(model)
    loss_fn = torch.nn.CrossEntropyLoss()
    batch = 64 if arch == "cnn" else 128
    n = len(x_train)

    def step(model, opt, idx):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x_train[idx]), y_train[idx])
        loss.backward()
        opt.step()
        return loss.detach()

    if dev.type == "cuda":
        warm = copy.deepcopy(model)
        step(warm, optimizer_of(warm), torch.arange(batch, device=dev))
        torch.cuda.synchronize()

    model.train()
    t0 = time.perf_counter()
    order = torch.randperm(n, device=dev)
    total = 0.0 if dev.type == "cpu" else torch.zeros((), device=dev)
    for i in range(0, n, batch):
        idx = order[i:i + batch]
        loss = step(model, opt, idx)
        # On the CPU .item() costs nothing; on a GPU it would wait for every step.
        total += (loss.item() if dev.type == "cpu" else loss) * len(idx)
    if dev.type == "cuda":
        total = total.item()  # waits for the last step
    train_s = time.perf_counter() - t0

    model.eval()
    t0 = time.perf_counter()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x_val), batch):
            correct += (model(x_val[i:i + batch]).argmax(1) == y_val[i:i + batch]).sum()
    correct = int(correct)  # on a GPU, waits for the last batch
    val_s = time.perf_counter() - t0

    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    print(f"# torch {torch.__version__} on {where}, {torch.get_num_threads()} threads, "
          f"loss {total / n:.4f}, val_accuracy {correct / len(x_val):.4f}", file=sys.stderr)
    print(f"train_s {train_s:.3f}")
    print(f"val_s {val_s:.3f}")
    print(f"train_sps {n / train_s:.0f}")
    print(f"epoch_sps {n / (train_s + val_s):.0f}")


if __name__ == "__main__":
    main()
