#!/usr/bin/env python3
"""Held-out batch sizes for a plain-run sweep (docs/probe-results.md, "Plain runs").

From a records CSV (`surge records JOB > records.csv`, runs named
b<B>-lr<lr>-seed<r> as scripts/plain_sweep.sh names them), for each target
loss L* and each batch size B_h of the sweep:

  1. a job "<prefix>-L<L*>-no<B_h>" declaring only that target (and k) gets the
     records of every run at a batch size != B_h (`surge import`; only the
     eval records, which are all the evidence uses when every run reports an
     eval loss: the fit is the same as with every record);
  2. its fit predicts the optimum at B_h: `surge advise --batch B_h
     --criterion improvement|fastest` (the model average the service answers
     with; one stage, so no drift);
  3. the steps to L* that the predicted LR achieves at B_h are read off the
     measured runs at B_h: per LR the geometric mean of S over seeds, ln S
     interpolated linearly in ln LR between the two measured LRs around the
     prediction (no figure outside the measured LRs); against the best
     measured LR's S: share = S_best / S_predicted (1 = as fast as the best
     grid point; an interpolated S can be below S_best, share > 1).
     A seed that never reached L* counts at its last step (S is then a lower
     bound, marked ">=" and the share "<=").
A job "<prefix>-L<L*>-all" with every run gives, for reference, the full-data
optima at each B_h and the service's in-sample advice there (`surge advise`
on that job), each with the same steps share.

  scripts/plain_holdout.py --records docs/data/plain-sweep-records.csv --targets 0.6,0.45 --k 10 \
      [--server HOST:PORT] [--cli build/client/surge] [--prefix ho] [--json out.json]
  scripts/plain_holdout.py --records ... --targets 0.6,0.45 --steps-table   # S per (B, LR) only

Prints a Markdown table per target. Jobs of an earlier invocation with the
same prefix are deleted and recreated.
"""
import argparse
import csv
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time


def read_runs(path):
    runs = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            r = runs.setdefault(row["run"], {"batch": int(float(row["batch_size"])),
                                             "lr": float(row["lr"]), "evals": [], "last": 0,
                                             "rows": []})
            step = int(row["step"])
            r["last"] = max(r["last"], step)
            if row.get("eval_loss", "") != "":
                r["evals"].append((step, float(row["eval_loss"])))
                r["rows"].append(row)
    for name, r in runs.items():
        m = re.search(r"seed(\d+)", name)
        r["seed"] = int(m.group(1)) if m else 0
        r["evals"].sort()
    return runs


def crossing(run, target):
    """(S, reached): the first eval step at or below the target, else the last step."""
    for step, loss in run["evals"]:
        if loss <= target:
            return step, True
    return run["last"], False


class Cli:
    def __init__(self, path, server):
        self.path, self.server = path, server

    def __call__(self, *args, check=True):
        p = subprocess.run([self.path, "--server", self.server, *args], capture_output=True,
                           text=True)
        if check and p.returncode != 0:
            raise RuntimeError(f"surge {' '.join(args)}: {p.stderr.strip()}")
        return p

    def settled_fit(self, job):
        for _ in range(600):
            fit = self("fit", "--job", job, "--json", check=False)
            info = json.loads(self("job", "show", job, "--json").stdout)
            if fit.returncode == 0:
                f = json.loads(fit.stdout)
                if int(f.get("inputs", {}).get("recordsSeen", -1)) == int(info["recordCount"]):
                    return f
            time.sleep(0.2)
        raise RuntimeError(f"no settled fit for job {job}")

    def advise(self, job, batch, criterion):
        p = self("advise", "--job", job, "--batch", str(batch), "--criterion", criterion, "--json",
                 check=False)
        if p.returncode != 0:
            return {"error": p.stderr.strip()}
        return json.loads(p.stdout)


def make_job(cli, name, runs, target, k, header):
    cli("job", "delete", name, check=False)
    cli("job", "create", name, "--targets", f"{target:g}", "--k", str(k))
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False, newline="") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        for r in runs:
            for row in r["rows"]:
                w.writerow(row)
        path = f.name
    try:
        cli("import", "--job", name, path)
    finally:
        os.unlink(path)
    return cli.settled_fit(name)


def steps_table(runs_at_b, target):
    """Per LR: (ln lr, ln S geometric mean over seeds, all seeds reached)."""
    by_lr = {}
    for r in runs_at_b:
        s, ok = crossing(r, target)
        by_lr.setdefault(r["lr"], []).append((s, ok))
    out = []
    for lr in sorted(by_lr):
        v = by_lr[lr]
        out.append((math.log(lr), sum(math.log(s) for s, _ in v) / len(v), all(ok for _, ok in v)))
    return out


def steps_at(table, lr):
    """ln S at lr by linear interpolation in ln lr; (value, exact) or (None, _) outside."""
    x = math.log(lr)
    for (x0, y0, ok0), (x1, y1, ok1) in zip(table, table[1:]):
        if x0 - 1e-12 <= x <= x1 + 1e-12:
            t = (x - x0) / (x1 - x0)
            return y0 + t * (y1 - y0), ok0 and ok1
    return None, False


def print_steps_tables(runs, targets):
    """Per target: S per (B, LR), geometric mean over seeds (">=" when a seed never reached)."""
    batches = sorted({r["batch"] for r in runs.values()})
    lrs = sorted({r["lr"] for r in runs.values()})
    for target in targets:
        print(f"\n### steps to L* = {target:g} (geometric mean over seeds; >= : a seed never "
              "reached it, counted at its last step)\n")
        print("| B | " + " | ".join(f"{lr:.3g}" for lr in lrs) + " |")
        print("| --- |" + " --- |" * len(lrs))
        for b in batches:
            table = {math.exp(x): (math.exp(y), ok) for x, y, ok in
                     steps_table([r for r in runs.values() if r["batch"] == b], target)}
            cells = []
            for lr in lrs:
                hit = next((v for k, v in table.items() if abs(math.log(k / lr)) < 1e-9), None)
                cells.append("" if hit is None else f"{'' if hit[1] else '>= '}{hit[0]:.0f}")
            print(f"| {b} | " + " | ".join(cells) + " |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", required=True)
    ap.add_argument("--targets", required=True)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--server", default=os.environ.get("SURGE_SERVER", "127.0.0.1:50051"))
    ap.add_argument("--cli", default="build/client/surge")
    ap.add_argument("--prefix", default="ho")
    ap.add_argument("--json")
    ap.add_argument("--steps-table", action="store_true",
                    help="only print the measured steps to each target per (B, LR) and exit")
    a = ap.parse_args()
    cli = Cli(a.cli, a.server)
    runs = read_runs(a.records)
    if a.steps_table:
        print_steps_tables(runs, [float(t) for t in a.targets.split(",")])
        return 0
    with open(a.records, newline="") as f:
        header = next(csv.reader(f))
    batches = sorted({r["batch"] for r in runs.values()})
    targets = [float(t) for t in a.targets.split(",")]
    report = []
    for target in targets:
        tag = f"{a.prefix}-L{target:g}"
        full_fit = make_job(cli, f"{tag}-all", runs.values(), target, a.k, header)
        measured = {}
        for key, crit in (("stages", "improvement"), ("fastestStages", "fastest")):
            for st in full_fit.get(key, []):
                for o in st.get("optima", []):
                    measured[(crit, int(o["batchSize"]))] = o
        print(f"\n### L* = {target:g}, k = {a.k}\n")
        print("| B held out | kind | criterion | full-data optimum | predicted [95%] from the other "
              "B | S best measured (lr) | S at predicted lr | share best/predicted | in-sample "
              "advice: lr, share |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for b in batches:
            kind = "interior" if batches[0] < b < batches[-1] else "extrapolated"
            kept = [r for r in runs.values() if r["batch"] != b]
            fit = make_job(cli, f"{tag}-no{b}", kept, target, a.k, header)
            table = steps_table([r for r in runs.values() if r["batch"] == b], target)
            reached = [(y, x) for x, y, ok in table if ok]
            best = min(reached) if reached else None
            for crit in ("improvement", "fastest"):
                adv = cli.advise(f"{tag}-no{b}", b, crit)
                ins = cli.advise(f"{tag}-all", b, crit)
                row = {"target": target, "batch": b, "kind": kind, "criterion": crit,
                       "fit_version": fit.get("version")}
                m = measured.get((crit, b))
                if m:
                    cens = {"CENSORING_LOWER_BOUND": ">= ", "CENSORING_UPPER_BOUND": "<= "}.get(
                        m.get("censoring", ""), "")
                    row["measured"] = f"{cens}{m['lrOpt']:.3g}"
                    ys, exact = steps_at(table, m["lrOpt"])
                    row["s_measured_opt"] = None if ys is None else math.exp(ys)
                    row["s_measured_opt_exact"] = exact
                else:
                    row["measured"] = "-"
                if "error" in adv:
                    row["error"] = adv["error"]
                else:
                    row["lr"] = adv["lr"]
                    ci = adv.get("lrCi95", {})
                    row["lr_ci95"] = [ci.get("lo"), ci.get("hi")]
                    ys, exact = steps_at(table, adv["lr"])
                    row["s_pred"] = None if ys is None else math.exp(ys)
                    row["s_pred_exact"] = exact
                if best:
                    row["s_best"] = math.exp(best[0])
                    row["lr_best"] = math.exp(best[1])
                if "error" not in ins:
                    row["lr_in_sample"] = ins["lr"]
                    ys, exact = steps_at(table, ins["lr"])
                    row["s_in_sample"] = None if ys is None else math.exp(ys)
                    row["s_in_sample_exact"] = exact
                report.append(row)
                if "error" in row:
                    why = re.search(r"stage \d+: ([^)]*)", row["error"])
                    pred = "no fit: " + (why.group(1) if why else row["error"])
                else:
                    pred = f"{row['lr']:.3g} [{row['lr_ci95'][0]:.3g}, {row['lr_ci95'][1]:.3g}]"
                sb = f"{row['s_best']:.0f} ({row['lr_best']:.3g})" if best else "-"
                sp, share = "-", "-"
                if row.get("s_pred") is not None:
                    ge = "" if row["s_pred_exact"] else ">= "
                    sp = f"{ge}{row['s_pred']:.0f}"
                    if best:
                        share = f"{'' if row['s_pred_exact'] else '<= '}{row['s_best'] / row['s_pred']:.2f}"
                elif "lr" in row:
                    sp = "outside the measured LRs"
                sm = "-"
                if "lr_in_sample" in row:
                    sm = f"{row['lr_in_sample']:.3g}, "
                    if row.get("s_in_sample") is None:
                        sm += "outside the measured LRs"
                    elif best:
                        sm += (f"{'' if row['s_in_sample_exact'] else '<= '}"
                               f"{row['s_best'] / row['s_in_sample']:.2f}")
                print(f"| {b} | {kind} | {crit} | {row['measured']} | {pred} | {sb} | {sp} | "
                      f"{share} | {sm} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
