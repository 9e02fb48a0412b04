#!/usr/bin/env python3
"""Markdown tables of a probe sweep, for docs/probe-results.md.

Reads what scripts/probe_sweep.sh leaves in OUT: for each job, OUT/JOB/fit.json
(`surge fit --json`) and OUT/JOB/probes.csv (the trainer's raw probe results),
and prints, per job:
  - the per-batch optima with 95% intervals at each stage (the server's fit);
  - the surge-law fit and the five models' AICc and Akaike weights;
  - the saturating surge's peak, eps_max and large-B level, and the power-law
    slope (from the fitted parameters, parametrization of server/fit/model_curve.h);
  - Eq. 18 of the paper, dL_opt(B) = dL_max / (1 + B_noise / B), fitted by least
    squares to the best mean improvement per batch size (a check outside the
    server: for each B_noise on a fine log grid dL_max has a closed form).

  scripts/probe_report.py OUT JOB [JOB ...]
"""
import csv
import json
import math
import sys
from collections import defaultdict


def fmt(v):
    return f"{v:.3g}"


def softplus(u):
    return u + math.log1p(math.exp(-u)) if u > 0 else math.log1p(math.exp(u))


def saturating_summary(params):
    """Peak B, eps_max and the large-B level of the saturating surge [a, c, u]:
    beta_s = 1/(1+e^-u), peak at B_s beta_s^2/(1-beta_s^2), B_s = e^c,
    level eps_max / ((beta_s + 1/beta_s) / 2)."""
    a, c, u = params
    beta_s = 1 / (1 + math.exp(-u))
    peak = math.exp(c) * beta_s ** 2 / (1 - beta_s ** 2)
    eps_max = math.exp(a)
    level = eps_max / ((beta_s + 1 / beta_s) / 2)
    return peak, eps_max, level


def eq18_fit(points):
    """Least squares dL = m / (1 + b / B) over (B, dL): returns (m, b, rms)."""
    best = None
    for i in range(0, 6001):
        b = 10 ** (-2 + i * 0.001)  # 0.01 .. 1e4
        f = [1 / (1 + b / bs) for bs, _ in points]
        m = sum(fi * y for fi, (_, y) in zip(f, points)) / sum(fi * fi for fi in f)
        rss = sum((m * fi - y) ** 2 for fi, (_, y) in zip(f, points))
        if best is None or rss < best[2]:
            best = (m, b, rss)
    m, b, rss = best
    return m, b, math.sqrt(rss / len(points))


def report(out, job):
    fit = json.load(open(f"{out}/{job}/fit.json"))
    stages = sorted(fit["stages"], key=lambda s: -s["stageLoss"])  # training order
    n_points = sum(s["probePoints"] for s in stages)
    print(f"### {job} (fit v{fit['version']}, {n_points} probe points)\n")
    head = " | ".join(
        f"stage {s['stageId']} (loss {s['stageLoss']:.3f}): eps_opt [95%] | LRs" for s in stages)
    print(f"| B | {head} |")
    print("| --- |" + " --- | --- |" * len(stages))
    by_b = defaultdict(dict)
    for si, s in enumerate(stages):
        for o in s["optima"]:
            se = o.get("lnLrOptSe", 0.0)
            lo, hi = o["lrOpt"] * math.exp(-1.96 * se), o["lrOpt"] * math.exp(1.96 * se)
            by_b[o["batchSize"]][si] = f"{fmt(o['lrOpt'])} [{fmt(lo)}, {fmt(hi)}] | {o['nLrs']}"
    for b in sorted(by_b):
        cells = " | ".join(by_b[b].get(si, "- | -") for si in range(len(stages)))
        print(f"| {b:g} | {cells} |")
    names = ["surge", "sgd", "alpha_form", "power_law", "saturating_surge"]
    print("\n| stage | surge fit: B_noise [95%] | eps_max [95%] | " + " | ".join(names) +
          " | verdict |")
    print("| --- | --- | --- |" + " --- |" * len(names) + " --- |")
    for s in stages:
        g = s["surge"]
        bn = f"{fmt(g['bNoise'])} [{fmt(g['bNoiseCi95']['lo'])}, {fmt(g['bNoiseCi95']['hi'])}] " \
             f"({g['identification']})"
        em = f"{fmt(g['epsMax'])} [{fmt(g['epsMaxCi95']['lo'])}, {fmt(g['epsMaxCi95']['hi'])}]"
        models = {m["model"]: m for m in s["models"]}
        cells = []
        for n in names:
            m = models.get(n)
            cells.append(f"AICc {m['aicc']:.1f}, w {m['weight']:.3f}" if m and m["fitted"] else "-")
        print(f"| {s['stageId']} (loss {s['stageLoss']:.3f}) | {bn} | {em} | " +
              " | ".join(cells) + f" | {s['verdict']} |")
    print()
    for s in stages:
        models = {m["model"]: m for m in s["models"]}
        sat = models.get("saturating_surge")
        pl = models.get("power_law")
        line = f"- stage {s['stageId']}:"
        if sat and sat["fitted"]:
            peak, eps_max, level = saturating_summary(sat["params"])
            line += (f" saturating surge peak at B = {peak:.3g}, eps_max {eps_max:.3g}, "
                     f"large-B level {level:.3g} (SE of ln B_s {sat['paramSe'][1]:.2f});")
        if pl and pl["fitted"]:
            line += f" power-law slope {pl['params'][1]:+.3f} +- {pl['paramSe'][1]:.3f};"
        print(line)
    # Eq. 18 on the best mean improvement per batch size.
    sums = defaultdict(lambda: [0.0, 0])
    checkpoint = {}
    for r in csv.DictReader(open(f"{out}/{job}/probes.csv")):
        key = (int(r["checkpoint_step"]), int(r["batch_size"]), float(r["lr"]))
        sums[key][0] += float(r["improvement"])
        sums[key][1] += 1
    best = defaultdict(lambda: -1e9)
    for (step, b, _), (total, count) in sums.items():
        best[(step, b)] = max(best[(step, b)], total / count)
    for step in sorted({k[0] for k in best}):
        pts = sorted((b, v) for (st, b), v in best.items() if st == step)
        m, bn, rms = eq18_fit(pts)
        print(f"- stage {step}: Eq. 18 on the best mean improvement per B: dL_max {m:.3g}, "
              f"B_noise {bn:.3g}, rms {rms:.2g}")
    print()


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    for job in sys.argv[2:]:
        report(sys.argv[1], job)
    return 0


if __name__ == "__main__":
    sys.exit(main())
