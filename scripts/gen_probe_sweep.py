#!/usr/bin/env python3
"""Writes a synthetic probe sweep whose optimal LR follows the surge law.

Two files in --out-dir:
  base.csv    records of one plain run ("base", batch 32): the loss curve
              L(t) = 0.3 + 2.0 * (1 + t / 200)^-0.6, with gradient statistics;
  probes.csv  raw probe results (stage,stage_loss,batch_size,lr,seed,improvement)
              at two stages (checkpoint steps 300 and 1500). At each stage
              eps_opt(B) = eps_max / cosh(ln(B / B_noise) / 2), with B_noise
              growing as the loss falls; the improvement is a peak in ln lr
              around ln eps_opt(B) plus seed noise that shrinks with B.
Deterministic for a given --seed. The truth is printed on stderr.
"""
import argparse
import math
import os
import random


def loss_at(step):
    return 0.3 + 2.0 * (1 + step / 200.0) ** -0.6


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out-dir", required=True)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--seeds", type=int, default=4, help="probe seeds per grid point")
    p.add_argument("--steps", type=int, default=2000, help="steps of the base run")
    a = p.parse_args()
    rng = random.Random(a.seed)
    os.makedirs(a.out_dir, exist_ok=True)

    with open(os.path.join(a.out_dir, "base.csv"), "w") as f:
        f.write("run,step,examples,batch_size,lr,loss,eval_loss,grad_sq_small,grad_sq_big,b_small,b_big\n")
        for t in range(a.steps):
            l = loss_at(t)
            g2, noise = 0.2 * l * l, 8.0 * l
            gs = (g2 + noise / 16) * (1 + 0.05 * rng.gauss(0, 1))
            gb = (g2 + noise / 32) * (1 + 0.05 * rng.gauss(0, 1))
            ev = "%.6g" % (l * 1.01) if t % 50 == 0 else ""
            f.write("base,%d,%d,32,0.001,%.6g,%s,%.6g,%.6g,16,32\n" % (
                t, 32 * (t + 1), l * (1 + 0.02 * rng.gauss(0, 1)), ev, gs, gb))

    stages = [(300, 40.0, 2e-3), (1500, 160.0, 1.5e-3)]  # step, B_noise, eps_max
    batches = [2 ** k for k in range(1, 13)]             # 2 .. 4096
    lrs = [10 ** (-5 + i * 0.25) for i in range(17)]     # 1e-5 .. 1e-1, 4 per decade
    with open(os.path.join(a.out_dir, "probes.csv"), "w") as f:
        f.write("stage,stage_loss,batch_size,lr,seed,improvement\n")
        for step, b_noise, eps_max in stages:
            l0 = loss_at(step)
            import sys
            sys.stderr.write("truth: stage %d loss %.4f B_noise %g eps_max %g\n" % (step, l0, b_noise, eps_max))
            for b in batches:
                eps_opt = eps_max / math.cosh(math.log(b / b_noise) / 2)
                dl_opt = 0.05 * l0 / (1 + b_noise / b)
                for lr in lrs:
                    z = math.log(lr / eps_opt)
                    mean = dl_opt * (1 - 0.35 * z * z)
                    for s in range(a.seeds):
                        noise = 0.08 * dl_opt * rng.gauss(0, 1) * math.sqrt(8.0 / b + 0.1)
                        f.write("%d,%.6g,%d,%.6g,%d,%.6g\n" % (step, l0, b, lr, s, mean + noise))


if __name__ == "__main__":
    main()
