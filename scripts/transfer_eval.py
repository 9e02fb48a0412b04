#!/usr/bin/env python3
"""LR transfer on real sweeps (docs/probe-results.md, "Transfer"): "my LR is
tuned at batch B0; what at B1?" answered by the fitted curve, against the
linear rule (lr0 * B1/B0) and the square-root rule (lr0 * sqrt(B1/B0)).

For a job on a running server, each criterion (improvement; fastest where the
job has training runs) and each stage of its fit, with y_B = ln of the optimum
measured at batch size B (per-batch optima of kind point):

  held-out (the honest check): for each B1, a scratch job gets the stage's
    measured optima at every batch size != B1 (`surge import` of a measured-
    optima CSV: stage, loss, B, lr_opt, lr_opt_se), so its fit never saw B1;
    for each B0 != B1 the reference (B0, exp(y_B0)) is transferred to B1
    (`surge advise --batch B1 --from B0:lr0 --json`, `transfer.lr`).
  in-sample: the same pairs on the job's own fit (which saw B1).
  error e = ln(predicted lr at B1) - y_B1, for the transfer and both rules;
  "inside" = y_B1 within the transfer's 95% interval; "consistent" = |z| <=
  1.96 with z = e / sqrt(se_transfer^2 + s_B0^2 + s_B1^2), counting the
  measured optima's own errors (the reference is a measurement too).

Prints a Markdown table per job (then one by the distance between B0 and B1): per criterion and method the number of pairs,
the median |e| and the RMS e (in ln LR; exp(|e|) is the factor off), and the
share of pairs where the transfer is closer than the rule.

  scripts/transfer_eval.py --job fmnist-plain [--job fmnist-adam ...] \\
      [--server HOST:PORT] [--cli build/client/surge] [--json out.json]

Scratch jobs are named <job>-xfer-<criterion>-s<stage>-no<B1> and deleted
afterwards.
"""
import argparse
import csv
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile


def run_cli(args, cli, server, check=True):
    p = subprocess.run([cli, "--server", server, *args], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"surge {' '.join(args)}: {p.stderr.strip()}")
    return p


def cli_json(args, cli, server):
    return json.loads(run_cli([*args, "--json"], cli, server).stdout)


def point_optima(stage):
    out = {}
    for o in stage.get("optima", []):
        if o.get("kind", "") not in ("", "OPTIMUM_KIND_POINT", "point"):
            continue
        if o.get("censoring", "CENSORING_NONE") != "CENSORING_NONE":
            continue
        lr, se = float(o["lrOpt"]), float(o.get("lnLrOptSe", "nan"))
        if lr > 0 and math.isfinite(lr):
            out[float(o["batchSize"])] = (math.log(lr), se)
    return out


def z_score(err, lo, hi, se0, se1):
    """err / sqrt(se_ratio^2 + s_B0^2 + s_B1^2): the transfer's own SE (from its
    95% interval) and both measured optima's SEs (the reference is measured too)."""
    se_ratio = math.log(hi / lo) / (2 * 1.959963984540054) if lo > 0 and hi > lo else 0.0
    s0 = se0 if math.isfinite(se0) else 0.0
    s1 = se1 if math.isfinite(se1) else 0.0
    d = math.sqrt(se_ratio ** 2 + s0 ** 2 + s1 ** 2)
    return err / d if d > 0 else float("inf")


def transfer(cli, server, job, b1, b0, lr0, criterion, loss=None):
    args = ["advise", "--job", job, "--batch", repr(b1), "--from", f"{b0!r}:{lr0!r}",
            "--criterion", criterion]
    if loss is not None:
        args += ["--from-loss", repr(loss)]
    a = cli_json(args, cli, server)
    t = a["transfer"]
    return float(t["lr"]), float(t["lrCi95"]["lo"]), float(t["lrCi95"]["hi"])


def evaluate_stage(cli, server, job, criterion, stage, tmp):
    optima = point_optima(stage)
    batches = sorted(optima)
    loss = float(stage["stageLoss"])
    sid = int(stage["stageId"])
    rows = []
    if len(batches) < 4:
        return rows
    for b1 in batches:
        # Held-out fit: the other batch sizes' optima as measured optima.
        scratch = f"{job}-xfer-{criterion}-s{sid}-no{int(b1)}"
        run_cli(["job", "delete", scratch], cli, server, check=False)
        path = os.path.join(tmp, scratch + ".csv")
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["stage", "stage_loss", "batch_size", "lr_opt", "lr_opt_se"])
            for b in batches:
                if b == b1:
                    continue
                y, se = optima[b]
                se = se if math.isfinite(se) and se > 0 else 0.0
                w.writerow([sid, repr(loss), repr(b), repr(math.exp(y)), repr(se * math.exp(y))])
        run_cli(["import", "--job", scratch, path], cli, server)
        for b0 in batches:
            if b0 == b1:
                continue
            lr0 = math.exp(optima[b0][0])
            y1 = optima[b1][0]
            row = {"criterion": criterion, "stage": sid, "loss": loss, "b0": b0, "b1": b1,
                   "y1": y1, "linear": math.log(lr0 * b1 / b0) - y1,
                   "sqrt": math.log(lr0 * math.sqrt(b1 / b0)) - y1}
            try:
                lr, lo, hi = transfer(cli, server, scratch, b1, b0, lr0, "improvement")
                row["heldout"] = math.log(lr) - y1
                row["heldout_inside"] = lo <= math.exp(y1) <= hi
                row["heldout_z"] = z_score(row["heldout"], lo, hi, optima[b0][1], optima[b1][1])
            except RuntimeError as e:
                row["heldout"] = float("nan")
                row["heldout_error"] = str(e)
            lr, lo, hi = transfer(cli, server, job, b1, b0, lr0, criterion, loss)
            row["insample"] = math.log(lr) - y1
            row["insample_inside"] = lo <= math.exp(y1) <= hi
            row["insample_z"] = z_score(row["insample"], lo, hi, optima[b0][1], optima[b1][1])
            rows.append(row)
        run_cli(["job", "delete", scratch], cli, server, check=False)
    return rows


def summarize(rows, method):
    errs = [r[method] for r in rows if math.isfinite(r[method])]
    if not errs:
        return None
    return {"n": len(errs), "median_abs": statistics.median(abs(e) for e in errs),
            "rms": math.sqrt(sum(e * e for e in errs) / len(errs)),
            "mean": sum(errs) / len(errs)}


def beats(rows, method, rule):
    pairs = [r for r in rows if math.isfinite(r[method])]
    if not pairs:
        return float("nan")
    return sum(abs(r[method]) < abs(r[rule]) for r in pairs) / len(pairs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--job", action="append", required=True)
    ap.add_argument("--server", default=os.environ.get("SURGE_SERVER", "127.0.0.1:50051"))
    ap.add_argument("--cli", default="build/client/surge")
    ap.add_argument("--json", help="write every pair's errors here")
    args = ap.parse_args()
    all_rows = {}
    with tempfile.TemporaryDirectory(prefix="surge-xfer-") as tmp:
        for job in args.job:
            fit = cli_json(["fit", "--job", job], args.cli, args.server)
            rows = []
            for criterion, key in (("improvement", "stages"), ("fastest", "fastestStages")):
                for stage in fit.get(key, []):
                    rows += evaluate_stage(args.cli, args.server, job, criterion, stage, tmp)
            all_rows[job] = rows
            print(f"\n### {job} (fit v{fit.get('version')})\n")
            print("| criterion | stages | pairs | method | median abs err (ln) | RMS err (ln) "
                  "| mean err (ln) | transfer closer than linear | than sqrt | 95% interval "
                  "holds the optimum | consistent, abs z <= 1.96 |")
            print("|---|---|---|---|---|---|---|---|---|---|---|")
            for criterion in ("improvement", "fastest"):
                rs = [r for r in rows if r["criterion"] == criterion]
                if not rs:
                    continue
                stages = ", ".join(sorted({f"{r['loss']:.3g}" for r in rs}))
                for method, label in (("heldout", "transfer, held-out fit"),
                                      ("insample", "transfer, in-sample fit"),
                                      ("linear", "linear rule"), ("sqrt", "sqrt rule")):
                    s = summarize(rs, method)
                    if s is None:
                        continue
                    closer = (f"{beats(rs, method, 'linear'):.2f} | {beats(rs, method, 'sqrt'):.2f}"
                              if method in ("heldout", "insample") else "- | -")
                    inside = consistent = "-"
                    if method in ("heldout", "insample"):
                        ok = [r[method + "_inside"] for r in rs if (method + "_inside") in r]
                        inside = f"{sum(ok)} of {len(ok)}"
                        zs = [abs(r[method + "_z"]) <= 1.96 for r in rs if (method + "_z") in r]
                        consistent = f"{sum(zs)} of {len(zs)}"
                    print(f"| {criterion} | {stages} | {s['n']} | {label} | {s['median_abs']:.3f} "
                          f"| {s['rms']:.3f} | {s['mean']:+.3f} | {closer} | {inside} | {consistent} |")
        print("\nBy distance (median abs err in ln LR; B1/B0 or B0/B1 = 2^d):\n")
        print("| job | criterion | d | pairs | transfer, held-out | linear rule | sqrt rule |")
        print("|---|---|---|---|---|---|---|")
        for job, rows in all_rows.items():
            for criterion in ("improvement", "fastest"):
                for lo, hi, label in ((0, 2.01, "1-2"), (2.01, 4.01, "3-4"), (4.01, 99, ">= 5")):
                    rs = [r for r in rows if r["criterion"] == criterion
                          and lo < abs(math.log2(r["b1"] / r["b0"])) <= hi
                          and math.isfinite(r["heldout"])]
                    if not rs:
                        continue
                    med = {m: statistics.median(abs(r[m]) for r in rs)
                           for m in ("heldout", "linear", "sqrt")}
                    print(f"| {job} | {criterion} | {label} | {len(rs)} | {med['heldout']:.3f} "
                          f"| {med['linear']:.3f} | {med['sqrt']:.3f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(all_rows, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
