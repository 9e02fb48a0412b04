#!/usr/bin/python3
"""Trains a small classifier on Fashion-MNIST (CPU) and reports every step to surge.

Runnable example for docs/python-client.md; the Python tests and
bench/python_reporter_overhead.py import it, so what is shown here is tested.

    build/server/surge-server --listen=127.0.0.1:50051 --db=/tmp/surge.db &
    PYTHONPATH=client/python:build/client/python/gen \
        /usr/bin/python3 docs/examples/pytorch_fashion_mnist.py --server 127.0.0.1:50051 \
        --job fmnist --steps 300 --batch 64 --accum 2

Data: Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist, gzip'd IDX).
"""
import argparse
import gzip
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

from surge_client import Reporter, SurgeError
from surge_client.pytorch import AdviceScheduler, TwoBatchGradStats

DATA_DIR = "/usr/share/datasets/fashion-mnist"


def _read_idx(path, limit=None):
    """Reads a gzip'd big-endian IDX file (magic, dims as uint32, then uint8 data);
    decompresses only the first `limit` items."""
    with gzip.open(path, "rb") as f:
        magic = struct.unpack(">I", f.read(4))[0]
        if magic >> 8 != 0x08:  # 0x00000801 labels, 0x00000803 images: uint8 data
            raise ValueError(f"{path}: not a uint8 IDX file (magic {magic:#x})")
        ndim = magic & 0xFF
        dims = list(struct.unpack(">" + "I" * ndim, f.read(4 * ndim)))
        if limit is not None:
            dims[0] = min(dims[0], int(limit))
        n = int(np.prod(dims))
        data = f.read(n)
        if len(data) != n:
            raise ValueError(f"{path}: truncated ({len(data)} of {n} bytes)")
        return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def load_fashion_mnist(split="train", limit=None, data_dir=DATA_DIR):
    """(images float32 [N, 1, 28, 28] in [0, 1], labels int64 [N])."""
    prefix = "train" if split == "train" else "t10k"
    x = _read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"), limit)
    y = _read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"), limit)
    x = torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1)
    return x, torch.from_numpy(y.astype(np.int64))


def make_model(kind="mlp"):
    if kind == "mlp":
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.ReLU(),
                                   torch.nn.Linear(256, 10))
    if kind == "cnn":
        return torch.nn.Sequential(
            torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Flatten(), torch.nn.Linear(32 * 7 * 7, 10))
    raise ValueError(f"model: mlp or cnn, got {kind!r}")


def training_steps(steps, batch_size=64, accum=2, lr=1e-3, model="mlp", train=None, test=None,
                   seed=0, grad_stats=True, eval_every=50):
    """Runs `steps` Adam steps of `batch_size` examples (in `accum` micro-batches)
    and yields after each one the record to report: a dict of Reporter.log()
    keyword arguments. Yields (net, optimizer) first, so callers can attach an
    AdviceScheduler."""
    torch.manual_seed(seed)
    x, y = train if train is not None else load_fashion_mnist("train", limit=10000)
    xt, yt = test if test is not None else load_fashion_mnist("test", limit=1000)
    net = make_model(model)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gstats = (TwoBatchGradStats(net.parameters(), micro_batch_size=batch_size // accum)
              if grad_stats and accum > 1 else None)
    gen = torch.Generator().manual_seed(seed)
    perm, pos = torch.randperm(len(x), generator=gen), 0
    yield net, opt
    for step in range(steps):
        if pos + batch_size > len(perm):
            perm, pos = torch.randperm(len(x), generator=gen), 0
        idx = perm[pos:pos + batch_size]
        pos += batch_size
        opt.zero_grad(set_to_none=True)
        total = torch.zeros(())
        for xb, yb in zip(x[idx].chunk(accum), y[idx].chunk(accum)):
            loss = F.cross_entropy(net(xb), yb) / accum
            loss.backward()
            total += loss.detach()
        g = gstats.compute() if gstats is not None else None
        opt.step()
        eval_loss = None
        if eval_every and step % eval_every == 0:
            with torch.no_grad():
                eval_loss = F.cross_entropy(net(xt), yt).item()
        yield dict(step=step, loss=total.item(), lr=opt.param_groups[0]["lr"],
                   examples_seen=(step + 1) * batch_size, eval_loss=eval_loss, grad_stats=g)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server", default=None, help="host:port (default $SURGE_SERVER)")
    p.add_argument("--job", default="fmnist")
    p.add_argument("--run", default=None, help="run name (default <model>-bs<batch>)")
    p.add_argument("--model", default="mlp", choices=["mlp", "cnn"])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--accum", type=int, default=2, help="micro-batches per step (grad stats)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--advise-every", type=int, default=0,
                   help="apply surge's advised LR every N steps (0: never)")
    a = p.parse_args(argv)

    steps = training_steps(a.steps, a.batch, a.accum, a.lr, a.model)
    net, opt = next(steps)
    run = a.run or f"{a.model}-bs{a.batch}"
    with Reporter(a.job, run, batch_size=a.batch, server=a.server, optimizer=opt,
                  base_lr=a.lr) as rep:
        sched = (AdviceScheduler(opt, a.job, a.batch, every=a.advise_every, client=rep.client)
                 if a.advise_every else None)
        for record in steps:
            rep.log(**record)
            if sched is not None:
                sched.step(record["step"])
            if record["step"] % 100 == 0:
                print(f"step {record['step']:5d}  loss {record['loss']:.4f}  "
                      f"lr {record['lr']:.3g}", flush=True)
        if sched is not None:
            sched.close()
        try:
            advice = rep.advise()
            print(f"surge advises lr {advice.lr:.3g} (95% {advice.lr_ci95[0]:.3g}.."
                  f"{advice.lr_ci95[1]:.3g}) for batch {a.batch}; flags {sorted(advice.flags)}")
        except SurgeError as e:  # e.g. FAILED_PRECONDITION: no probe sweep imported yet
            print(f"no advice yet: {e}")
    print("reported:", rep.stats())
    return 0


if __name__ == "__main__":
    sys.exit(main())
