#!/usr/bin/env python3
"""Before/after table of the held-out batch-size check (docs/probe-results.md).

Runs `surge-holdout --json` on each job twice: with --laws_only (the fit
before prediction intervals and the smooth curve: five laws, curve-only
intervals) and as the service fits today, and prints one markdown row per
stage and criterion:

  interior N; measured optimum within the 95% interval allowing for its own
  error (|z| <= 1.96), before -> after; inside the interval itself, before ->
  after; median interval width (hi/lo), before -> after; efficiency of the
  predicted LR (mean, median, worst) before -> after; ceiling (B's own
  optimum, mean).

Usage:
  scripts/holdout_compare.py --db FILE --job A [--job B ...] [--holdout BIN]
"""
import argparse
import json
import subprocess
import sys


def run(binary, db, job, laws_only):
    cmd = [binary, f"--db={db}", f"--job={job}", "--json"]
    if laws_only:
        cmd.append("--laws_only")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def fmt(v, spec="{:.2f}"):
    return "-" if v is None else spec.format(v)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", required=True)
    p.add_argument("--job", action="append", required=True)
    p.add_argument("--holdout", default="build/server/tools/surge-holdout")
    a = p.parse_args()
    print("| job | criterion | stage (loss) | interior | within, error allowed | inside | "
          "median width (hi/lo) | efficiency mean, median (worst) | ceiling |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    totals = {"n": 0, "cb": 0, "ca": 0, "ib": 0, "ia": 0}
    for job in a.job:
        before = run(a.holdout, a.db, job, True)
        after = run(a.holdout, a.db, job, False)
        keyed = {(s["criterion"], s["stage_id"]): s for s in before["stages"]}
        for s in after["stages"]:
            b = keyed.get((s["criterion"], s["stage_id"]))
            if b is None:
                sys.exit(f"stage {s['stage_id']} ({s['criterion']}) missing before")
            sa, sb = s["summary"], b["summary"]
            n = sa["interior"]
            if n == 0:
                continue
            totals["n"] += n
            totals["cb"] += sb["consistent"]
            totals["ca"] += sa["consistent"]
            totals["ib"] += sb["inside"]
            totals["ia"] += sa["inside"]
            print(f"| {job} | {s['criterion']} | {s['stage_id']} ({s['stage_loss']:.3g}) | {n} | "
                  f"{sb['consistent']} -> {sa['consistent']} | {sb['inside']} -> {sa['inside']} | "
                  f"{fmt(sb['median_width'])} -> {fmt(sa['median_width'])} | "
                  f"{fmt(sb['mean_share'])}, {fmt(sb['median_share'])} ({fmt(sb['min_share'])}) -> "
                  f"{fmt(sa['mean_share'])}, {fmt(sa['median_share'])} ({fmt(sa['min_share'])}) | "
                  f"{fmt(sa['mean_ceiling'])} |")
    t = totals
    print(f"\nall stages: {t['n']} interior; within the interval allowing for the measurement's "
          f"error {t['cb']} -> {t['ca']}; inside the interval itself {t['ib']} -> {t['ia']}")


if __name__ == "__main__":
    main()
