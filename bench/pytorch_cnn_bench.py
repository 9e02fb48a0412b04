#!/usr/bin/python3
"""PyTorch CPU side of bench/trainer_bench.cc: the same network (LeNet-5-style
"5-layer CNN", see client/trainer/cnn_cpu.h), the same Fashion-MNIST files and
normalization, softmax cross-entropy and Adam(0.9, 0.999, eps 1e-8), lr 1e-3.
One measured unit is a full training step (index the batch, forward, backward,
Adam); samples/s = steps * B / wall time after --warmup_steps.

Prints "torch VERSION" and then one line "B SAMPLES_PER_S" per batch size.
Needs Debian's python3-torch; run with /usr/bin/python3.
"""
import argparse
import gzip
import sys
import time

import numpy as np
import torch
from torch import nn


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def make_model():
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(256, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, 10))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch_sizes", default="8,64,512")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--warmup_steps", type=int, default=5)
    ap.add_argument("--data_dir", default="/usr/share/datasets/fashion-mnist")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    images = read_idx(f"{args.data_dir}/train-images-idx3-ubyte.gz")
    labels = read_idx(f"{args.data_dir}/train-labels-idx1-ubyte.gz")
    x_all = torch.from_numpy(((images.astype(np.float32) / 255.0 - 0.2860) / 0.3530)
                             .reshape(-1, 1, 28, 28).copy())
    y_all = torch.from_numpy(labels.astype(np.int64))
    print("torch", torch.__version__, flush=True)
    gen = torch.Generator().manual_seed(2)
    for b in [int(s) for s in args.batch_sizes.split(",")]:
        model = make_model()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
        loss_fn = nn.CrossEntropyLoss()

        def step():
            idx = torch.randint(0, x_all.shape[0], (b,), generator=gen)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x_all[idx]), y_all[idx])
            loss.backward()
            opt.step()

        for _ in range(args.warmup_steps):
            step()
        steps = 0
        start = time.perf_counter()
        elapsed = 0.0
        while elapsed < args.seconds:
            step()
            steps += 1
            elapsed = time.perf_counter() - start
        print(b, f"{steps * b / elapsed:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
