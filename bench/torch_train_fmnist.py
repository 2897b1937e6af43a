#!/usr/bin/python3
"""One epoch of the Fashion-MNIST MLP of models/fashion_mnist_mlp.yaml with PyTorch on the CPU.

Same model (flatten, dense 256, relu, dropout 0.2, dense 10), loss (softmax cross-entropy),
optimiser (Adam, lr 1e-3) and batch (128) as Kiln's config, on the same 54000/6000 split
sizes, with the images scaled by 1/255 and standardised by the training mean and deviation.
Data loading is not timed. Thread count comes from argv[1]; OPENBLAS_NUM_THREADS and
OPENBLAS_CORETYPE must be set by the caller (bench/train_fmnist.sh) before Python starts.
argv[2] picks the model: "config" (the default, above) or "mlp3" (784-256-128-10 without
dropout, the performance issue's MLP); argv[3] the optimiser: "adam" (lr 1e-3, the default) or
"sgd" (lr 0.01, momentum 0.9).
Prints "key value" lines: train_s (the training pass), val_s (a forward pass over the
validation split, which Kiln counts in its epoch time), train_sps, epoch_sps. Never asserts.
"""
import gzip
import sys
import time

import numpy as np
import torch

DATA = "/usr/share/datasets/fashion-mnist"


def load(name, offset):
    with gzip.open(f"{DATA}/{name}", "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    arch = sys.argv[2] if len(sys.argv) > 2 else "config"
    optim = sys.argv[3] if len(sys.argv) > 3 else "adam"
    torch.set_num_threads(threads)
    torch.manual_seed(42)
    rng = np.random.default_rng(42)

    x = load("train-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28).astype(np.float32)
    y = load("train-labels-idx1-ubyte.gz", 8).astype(np.int64)
    x *= 0.00392156862
    perm = rng.permutation(len(x))
    n_val = len(x) // 10
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    mean, std = x[train_idx].mean(), x[train_idx].std()
    x = (x - mean) / std
    x_train, y_train = torch.from_numpy(x[train_idx]), torch.from_numpy(y[train_idx])
    x_val, y_val = torch.from_numpy(x[val_idx]), torch.from_numpy(y[val_idx])

    if arch == "mlp3":
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 256),
                                    torch.nn.ReLU(), torch.nn.Linear(256, 128), torch.nn.ReLU(),
                                    torch.nn.Linear(128, 10))
    else:
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 256),
                                    torch.nn.ReLU(), torch.nn.Dropout(0.2),
                                    torch.nn.Linear(256, 10))
    if optim == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    batch = 128
    n = len(x_train)

    model.train()
    t0 = time.perf_counter()
    order = torch.randperm(n)
    total = 0.0
    for i in range(0, n, batch):
        idx = order[i:i + batch]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x_train[idx]), y_train[idx])
        loss.backward()
        opt.step()
        total += loss.item() * len(idx)
    train_s = time.perf_counter() - t0

    model.eval()
    t0 = time.perf_counter()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x_val), batch):
            correct += (model(x_val[i:i + batch]).argmax(1) == y_val[i:i + batch]).sum().item()
    val_s = time.perf_counter() - t0

    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"loss {total / n:.4f}, val_accuracy {correct / len(x_val):.4f}", file=sys.stderr)
    print(f"train_s {train_s:.3f}")
    print(f"val_s {val_s:.3f}")
    print(f"train_sps {n / train_s:.0f}")
    print(f"epoch_sps {n / (train_s + val_s):.0f}")


if __name__ == "__main__":
    main()
