#!/usr/bin/env python3
"""Writes a synthetic record CSV (the format `surge import` reads).

A sweep of plain runs, one per batch size, each with a decaying loss curve
L(t) = L_inf + A * (1 + examples / E0)^-0.5 plus noise, an eval loss every
`--eval-every` steps and two-batch gradient statistics whose noise scale
grows as the loss falls. Deterministic for a given --seed.

With --lrs N > 1 it is a hyperparameter sweep: batch sizes 4, 16, 64, ...
(x4 apart) x N learning rates (half-decade grid from 1e-4), and a run's
progress follows a known surge law: after t steps at (B, lr) the loss is that
of t_eff = t / (1 + B_noise / B) * exp(-0.5 (ln lr - ln eps_opt(B))^2) steps,
eps_opt(B) = eps_max / cosh(ln(B / B_noise) / 2), B_noise = 64,
eps_max = 2e-3. Both of surge's criteria then have their optimum at eps_opt(B).

  gen_records.py --runs 8 --steps 200 > sweep.csv
  gen_records.py --runs 5 --lrs 5 --steps 500 --eval-every 5 > plain_sweep.csv
  gen_records.py --total 1000000 > big.csv     # split evenly over --runs
"""
import argparse
import math
import random
import sys


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=8, help="number of runs (batch sizes 2^1..)")
    p.add_argument("--steps", type=int, default=200, help="steps per run")
    p.add_argument("--total", type=int, default=0, help="total rows (overrides --steps)")
    p.add_argument("--eval-every", type=int, default=25)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--prefix", default="bs")
    p.add_argument("--lrs", type=int, default=1,
                   help="learning rates per batch size (> 1: a sweep from a known surge law)")
    p.add_argument("--b-noise", type=float, default=64.0)
    p.add_argument("--eps-max", type=float, default=2e-3)
    a = p.parse_args()
    rng = random.Random(a.seed)
    steps = a.steps if a.total == 0 else (a.total + a.runs - 1) // a.runs
    out = sys.stdout
    out.write("run,step,examples,batch_size,lr,loss,eval_loss,grad_sq_small,grad_sq_big,b_small,b_big\n")
    written = 0
    sweep = a.lrs > 1
    grid = [(2 ** (r + 1), a.lr) for r in range(a.runs)]
    if sweep:
        lrs = [1e-4 * 10 ** (0.5 * j) for j in range(a.lrs)]
        grid = [(4 ** (r + 1), lr) for r in range(a.runs) for lr in lrs]
    for batch, lr in grid:
        eps_opt = a.eps_max / math.cosh(math.log(batch / a.b_noise) / 2)
        speed = 1.0
        if sweep:
            speed = math.exp(-0.5 * math.log(lr / eps_opt) ** 2) / (1 + a.b_noise / batch)
        name = "%s%d" % (a.prefix, batch) if not sweep else "%s%d-lr%.3g" % (a.prefix, batch, lr)
        lines = []
        for step in range(steps):
            if a.total and written >= a.total:
                break
            examples = (step + 1) * batch
            if sweep:
                loss_true = 0.25 + 2.0 * (1 + (step + 1) * speed / 20.0) ** -0.5
            else:
                loss_true = 0.25 + 2.0 * (1 + examples / 2000.0) ** -0.5
            loss = loss_true * (1 + 0.05 * rng.gauss(0, 1) / math.sqrt(batch))
            eval_loss = ""
            if step % a.eval_every == 0:
                eval_loss = "%.6g" % (loss_true * 1.02)
            # |G|^2 = g2, tr(S) = noise; E|G_B|^2 = g2 + noise / B.
            g2 = 0.5 * loss_true ** 2
            noise = 40.0 * g2 / loss_true
            b_small = max(1, batch // 2)
            gs = (g2 + noise / b_small) * (1 + 0.1 * rng.gauss(0, 1))
            gb = (g2 + noise / batch) * (1 + 0.1 * rng.gauss(0, 1))
            grad = ""
            if batch > b_small:
                grad = "%.6g,%.6g,%d,%d" % (max(gs, 0), max(gb, 0), b_small, batch)
            else:
                grad = ",,,"
            lines.append("%s,%d,%d,%d,%.6g,%.6g,%s,%s\n" % (
                name, step, examples, batch, lr, loss, eval_loss, grad))
            written += 1
        out.write("".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
