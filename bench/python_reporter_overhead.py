#!/usr/bin/python3
"""Overhead of surge_client on the PyTorch training loop of the tests
(docs/examples/pytorch_fashion_mnist.py: Fashion-MNIST, Adam, CPU, batch 64 in
2 micro-batches), against a real surge-server on loopback with a real SQLite file.

Five copies of the loop (own model, optimizer and, where reporting, Reporter):
  base       training only
  base2      training only again: the A/A control (its "overhead" is the noise)
  report     + Reporter.log() every step
  gradstats  + TwoBatchGradStats (hooks + compute) every step
  both       + both
run in interleaved blocks of --block steps, the order rotated every round, so
that load from other processes falls on all five alike. Each step is timed
(training + log()); a reporting copy flushes, untimed, at the end of its block
(that leaves out at most one batch's send per block, ~1 ms in 600 steps).
Prints per variant the median step time and its overhead against base, the
process CPU time per step (all threads: training, the reporter's sender, gRPC),
and the median time spent inside log().

    PYTHONPATH=client/python:build/client/python/gen OMP_NUM_THREADS=1 \\
      /usr/bin/python3 bench/python_reporter_overhead.py --server-bin build/server/surge-server
"""
import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "docs", "examples"))

import torch  # noqa: E402

import pytorch_fashion_mnist as example  # noqa: E402
from surge_client import Reporter  # noqa: E402

VARIANTS = ("base", "base2", "report", "gradstats", "both")


def start_server(binary, workdir):
    port_file = os.path.join(workdir, "port")
    proc = subprocess.Popen([binary, "--listen=127.0.0.1:0", f"--port_file={port_file}",
                             f"--db={os.path.join(workdir, 'bench.db')}", "--http=127.0.0.1:0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if os.path.exists(port_file) and open(port_file).read().strip():
            return proc, f"127.0.0.1:{open(port_file).read().strip()}"
        if proc.poll() is not None:
            raise SystemExit(f"surge-server exited with {proc.returncode}")
        time.sleep(0.02)
    raise SystemExit("surge-server did not start")


class Loop:
    def __init__(self, variant, args, data, server):
        self.variant = variant
        self.steps = example.training_steps(10 ** 9, args.batch, args.accum, 1e-3, args.model,
                                            train=data[0], test=data[1], seed=0,
                                            grad_stats=variant in ("gradstats", "both"),
                                            eval_every=0)
        net, opt = next(self.steps)
        self.rep = (Reporter("bench", f"{args.model}-{variant}-{os.getpid()}", args.batch,
                             server=server, optimizer=opt)
                    if variant in ("report", "both") else None)
        self.step_times, self.log_times = [], []
        self.cpu, self.n = 0.0, 0

    def block(self, n, timed=True):
        c0 = time.process_time()
        t_prev = time.perf_counter()
        for _ in range(n):
            rec = next(self.steps)
            if self.rep is not None:
                t0 = time.perf_counter()
                self.rep.log(**rec)
                if timed:
                    self.log_times.append(time.perf_counter() - t0)
            t = time.perf_counter()
            if timed:
                self.step_times.append(t - t_prev)
            t_prev = t
        if timed:
            self.cpu += time.process_time() - c0
            self.n += n
        if self.rep is not None:
            self.rep.flush(60)  # untimed: the block's sends end here


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server-bin", default=os.path.join(HERE, "..", "build", "server",
                                                        "surge-server"))
    p.add_argument("--model", default="mlp", choices=["mlp", "cnn"])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--accum", type=int, default=2)
    p.add_argument("--block", type=int, default=600, help="steps per block")
    p.add_argument("--rounds", type=int, default=10)
    args = p.parse_args()
    data = (example.load_fashion_mnist("train", limit=20000),
            example.load_fashion_mnist("test", limit=500))
    with tempfile.TemporaryDirectory(prefix="surge-bench-") as d:
        proc, server = start_server(args.server_bin, d)
        try:
            loops = {v: Loop(v, args, data, server) for v in VARIANTS}
            for v in VARIANTS:
                loops[v].block(20, timed=False)  # warm-up
            for r in range(args.rounds):
                for v in VARIANTS[r % 5:] + VARIANTS[:r % 5]:
                    loops[v].block(args.block)
            for lp in loops.values():
                if lp.rep is not None:
                    lp.rep.close()
                    s = lp.rep.stats()
                    assert s.acked == s.logged and s.dropped == 0, s
        finally:
            proc.terminate()
            proc.wait()
    print(f"model {args.model}, batch {args.batch} in {args.accum} micro-batches, torch "
          f"{torch.__version__}, {torch.get_num_threads()} torch thread(s), {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}), load avg {os.getloadavg()[0]:.1f}; "
          f"{args.rounds} rounds x {args.block} steps per variant")
    print(f"{'variant':10s} {'median ms/step':>14s} {'overhead':>9s} {'mean ms/step':>12s} "
          f"{'cpu ms/step':>11s} {'cpu overhead':>12s} {'log() median us':>15s} "
          f"{'log() p99 us':>12s}")
    base = statistics.median(loops["base"].step_times)
    base_cpu = loops["base"].cpu / loops["base"].n
    for v in VARIANTS:
        lp = loops[v]
        med = statistics.median(lp.step_times)
        cpu = lp.cpu / lp.n
        lt = sorted(lp.log_times)
        lmed = f"{statistics.median(lt) * 1e6:.1f}" if lt else "-"
        lp99 = f"{lt[int(len(lt) * 0.99)] * 1e6:.1f}" if lt else "-"
        ov = f"{(med / base - 1) * 100:+.2f}%" if v != "base" else "-"
        cov = f"{(cpu / base_cpu - 1) * 100:+.2f}%" if v != "base" else "-"
        print(f"{v:10s} {med * 1e3:14.3f} {ov:>9s} {statistics.mean(lp.step_times) * 1e3:12.3f} "
              f"{cpu * 1e3:11.3f} {cov:>12s} {lmed:>15s} {lp99:>12s}")


if __name__ == "__main__":
    main()
