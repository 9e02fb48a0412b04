#!/usr/bin/env python3
"""Plain-run evidence against full-run evidence of the same grid.

  scripts/plain_vs_full.py --plain-records P.csv --full-records F.csv \
      --plain-fit P.json --full-fit F.json --targets 0.6,0.45 --k 10

P.csv / P.json: `surge records` and `surge fit --json` of a plain sweep (runs
b<B>-lr<lr>-seed<r>, scripts/plain_sweep.sh); F.csv / F.json: the same of a
`surge-train full-run` job (runs fr-L<L*>-b<B>-lr<lr>-seed<r>). Prints

  0. every full-run record against the plain run's record at the same step;
  1. per target, per run present in both: S (first eval record <= L*, as both
     evidence paths read it) and the k-step improvement eval(S) - eval(first
     eval record at >= S + k); how many are equal, which differ and how a run
     reached in one job is censored in the other;
  2. per criterion, stage and batch size: the two jobs' optima (value,
     censoring, SE, runs never reaching the target) side by side.
"""
import argparse
import csv
import json
import re


def runs_of(path):
    out = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            r = out.setdefault(row["run"], {"evals": [], "last": 0, "rows": {}})
            step = int(row["step"])
            r["rows"][step] = {k: v for k, v in row.items() if k != "run"}
            r["last"] = max(r["last"], step)
            if row.get("eval_loss", "") != "":
                r["evals"].append((step, float(row["eval_loss"])))
    for r in out.values():
        r["evals"].sort()
    return out


def key_of(name):
    m = re.match(r"(?:fr-L([0-9.e+-]+)-)?b(\d+)-lr([0-9.e+-]+)-seed(\d+)$", name)
    if not m:
        return None
    return (float(m.group(1)) if m.group(1) else None, int(m.group(2)), float(m.group(3)),
            int(m.group(4)))


def crossing(r, target, k):
    for i, (step, loss) in enumerate(r["evals"]):
        if loss <= target:
            after = next((l for s, l in r["evals"][i:] if s >= step + k), None)
            return step, (None if after is None else loss - after)
    return None, None


def optima(fit, key):
    out = {}
    for st in fit.get(key, []):
        for o in st.get("optima", []):
            out[(float(st["stageLoss"]), int(o["batchSize"]))] = o
    return out


def fmt(o):
    if o is None:
        return "-"
    c = {"CENSORING_LOWER_BOUND": ">= ", "CENSORING_UPPER_BOUND": "<= "}.get(o.get("censoring"), "")
    se = o.get("lnLrOptSe", 0.0)
    extra = f", {o['nCensored']} censored" if o.get("nCensored") else ""
    steps = f", S {o['stepsAtOpt']:.0f}" if isinstance(o.get("stepsAtOpt"), (int, float)) else ""
    return f"{c}{o['lrOpt']:.3g} (se {se:.2f}{extra}{steps})"


def main():
    ap = argparse.ArgumentParser()
    for n in ("plain-records", "full-records", "plain-fit", "full-fit", "targets"):
        ap.add_argument("--" + n, required=True)
    ap.add_argument("--k", type=int, default=10)
    a = ap.parse_args()
    plain, full = runs_of(a.plain_records), runs_of(a.full_records)
    pk = {key_of(n)[1:]: r for n, r in plain.items() if key_of(n)}
    # 0. Every full-run record against the plain run's record at that step (all columns).
    n = missing = differ = 0
    for name, fr in full.items():
        key = key_of(name)
        if key is None or key[1:] not in pk:
            continue
        for step, row in fr["rows"].items():
            n += 1
            other = pk[key[1:]]["rows"].get(step)
            if other is None:
                missing += 1
            elif other != row:
                differ += 1
    print(f"{n} full-run records: {n - missing - differ} equal the plain run's record at that "
          f"step in every column, {differ} differ, {missing} have no plain record there")
    for target in (float(t) for t in a.targets.split(",")):
        same_s = same_imp = both = reached = 0
        diffs = []
        for name, fr in sorted(full.items()):
            key = key_of(name)
            if key is None or key[0] is None or abs(key[0] - target) > 1e-9 or key[1:] not in pk:
                continue
            both += 1
            sf, imf = crossing(fr, target, a.k)
            sp, imp = crossing(pk[key[1:]], target, a.k)
            if sf == sp:
                same_s += 1
                reached += sf is not None
            if imf == imp:
                same_imp += 1
            if sf != sp or imf != imp:
                diffs.append(f"  B={key[1]} lr={key[2]:g} seed {key[3]}: full S={sf} "
                             f"(last step {fr['last']}), improvement {imf}; plain S={sp} (last step "
                             f"{pk[key[1:]]['last']}), improvement {imp}")
        print(f"L* = {target:g}: {both} runs in both jobs; S equal in {same_s} ({reached} "
              f"reached L* in both, {same_s - reached} censored in both), improvement equal in "
              f"{same_imp} (bitwise)")
        for d in diffs:
            print(d)
    pf, ff = json.load(open(a.plain_fit)), json.load(open(a.full_fit))
    for key, crit in (("stages", "improvement"), ("fastestStages", "fastest")):
        po, fo = optima(pf, key), optima(ff, key)
        print(f"\n| criterion {crit}: L*, B | full runs | plain runs | equal |")
        print("| --- | --- | --- | --- |")
        for k in sorted(set(po) | set(fo), key=lambda x: (-x[0], x[1])):
            p, f = po.get(k), fo.get(k)
            eq = (p is not None and f is not None and abs(p["lrOpt"] - f["lrOpt"]) <=
                  1e-9 * f["lrOpt"] and p.get("censoring") == f.get("censoring"))
            print(f"| {k[0]:g}, {k[1]} | {fmt(f)} | {fmt(p)} | {'yes' if eq else 'NO'} |")


if __name__ == "__main__":
    main()
