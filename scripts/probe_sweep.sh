#!/usr/bin/env bash
# The CPU probe sweep of docs/probe-results.md, exactly: starts a surge-server
# (unless SURGE_SERVER is set), runs surge-train probe twice on Fashion-MNIST
# (Adam beta = (0.9, 0.999), job fmnist-adam; and beta = (0, 0), job
# fmnist-sign), then prints `surge fit` and advice for both jobs.
#
#   scripts/probe_sweep.sh                  # the full sweep (~3.5 min on 2 cores)
#   SMALL=1 scripts/probe_sweep.sh          # a small sweep (~20 s on 2 cores): the demo
#   FULL_RUN=1 scripts/probe_sweep.sh       # the paper's full-run protocol instead (~6 min)
#
# With python3-matplotlib installed it also draws $OUT/probe-results.png
# (per-batch optima with 95% intervals, the surge fit and the best model).
# It always writes $OUT/report.md: the tables of docs/probe-results.md
# (scripts/probe_report.py).
#
# Environment: BUILD_DIR (default build), OUT (work dir, default
# $BUILD_DIR/probe-sweep), SURGE_SERVER (use a running server; then SURGE_DB,
# its database file, enables the held-out check), THREADS (default nproc).
# Interrupt with Ctrl-C and rerun the same command to resume: probes already
# on the server are read back, not re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
if [ -n "${FULL_RUN:-}" ]; then OUT=${OUT:-$BUILD_DIR/full-run}; else OUT=${OUT:-$BUILD_DIR/probe-sweep}; fi
THREADS=${THREADS:-$(nproc)}
TRAIN="$BUILD_DIR/client/trainer/surge-train"
CLI="$BUILD_DIR/client/surge"
for b in "$TRAIN" "$CLI" "$BUILD_DIR/server/surge-server"; do
  [ -x "$b" ] || { echo "probe_sweep: $b not built (run scripts/build.sh)" >&2; exit 1; }
done
mkdir -p "$OUT"

SERVER_PID=""
if [ -z "${SURGE_SERVER:-}" ]; then
  rm -f "$OUT/port"
  "$BUILD_DIR/server/surge-server" --listen=127.0.0.1:0 --port_file="$OUT/port" \
    --db="$OUT/surge.db" > "$OUT/server.log" 2>&1 &
  SERVER_PID=$!
  trap 'kill -TERM $SERVER_PID 2>/dev/null || true; wait $SERVER_PID 2>/dev/null || true' EXIT
  for _ in $(seq 100); do [ -s "$OUT/port" ] && break; sleep 0.1; done
  [ -s "$OUT/port" ] || { echo "probe_sweep: surge-server did not start (see $OUT/server.log)" >&2; exit 1; }
  export SURGE_SERVER="127.0.0.1:$(cat "$OUT/port")"
fi
echo "== surge server $SURGE_SERVER (database $OUT/surge.db)"

if [ -n "${SMALL:-}" ]; then
  SWEEP=(--batch_sizes=1,2,4,8,16,32,64,128,256,512 --seeds=3 --targets=0.7,0.5 --initial_lrs=6
         --lrs_per_decade=4 --edge_margin=1 --max_lrs=12 --eval_size=500)
  JOBS=(demo-adam)
else
  SWEEP=(--batch_sizes=1,2,4,8,16,32,64,128,256,512,1024 --seeds=8 --targets=0.6,0.45
         --initial_lrs=8 --lrs_per_decade=8 --edge_margin=2 --max_lrs=24 --eval_size=1000)
  JOBS=(fmnist-adam fmnist-sign)
fi
COMMON=(--warm_steps=20 --probe_steps=10 --lr_start=1e-3 --threads="$THREADS")

if [ -n "${FULL_RUN:-}" ]; then
  # The paper's protocol for comparison (docs/probe-results.md, "Full runs"):
  # from scratch to each target loss at every (B, lr, seed), then k steps.
  JOBS=(fmnist-fullrun)
  GRID=(--targets=0.6,0.45 --batch_sizes=4,16,64,256,1024
        --lrs=3.16e-4,5.62e-4,1e-3,1.78e-3,3.16e-3,5.62e-3,1e-2 --seeds=2 --probe_steps=10
        --eval_every=5 --max_steps=6000 --eval_size=1000 --threads="$THREADS")
  echo "== surge-train full-run --job fmnist-fullrun ${GRID[*]}"
  start=$(date +%s)
  mkdir -p "$OUT/fmnist-fullrun"
  "$TRAIN" full-run --job fmnist-fullrun --progress=false "${GRID[@]}" \
    | tee "$OUT/fmnist-fullrun/runs.txt"
  echo "== fmnist-fullrun: grid took $(( $(date +%s) - start )) s"
else
  for job in "${JOBS[@]}"; do
    case "$job" in
      *-sign) BETAS=(--beta1=0 --beta2=0) ;;
      *) BETAS=(--beta1=0.9 --beta2=0.999) ;;
    esac
    echo "== surge-train probe --job $job ${BETAS[*]} ${SWEEP[*]} ${COMMON[*]}"
    start=$(date +%s)
    "$TRAIN" probe --job "$job" --work_dir="$OUT/$job" "${BETAS[@]}" "${SWEEP[@]}" "${COMMON[@]}"
    echo "== $job: sweep took $(( $(date +%s) - start )) s"
  done
fi

sleep 2  # fits are debounced after the last records
for job in "${JOBS[@]}"; do
  echo "== surge fit --job $job"
  "$CLI" fit --job "$job"
  "$CLI" fit --job "$job" --json > "$OUT/$job/fit.json" 2>/dev/null || true
  for b in 4 64 1024; do
    echo "== surge advise --job $job --batch $b"
    "$CLI" advise --job "$job" --batch "$b" || true
  done
done

if /usr/bin/python3 -c "import matplotlib" 2>/dev/null; then
  /usr/bin/python3 - "$OUT" "${JOBS[@]}" <<'PLOT'
"""Per-batch optimal LRs (95% intervals) of each job and stage, the surge-law
fit (dashed) and the model with the most Akaike weight (solid), from the
`surge fit --json` output saved above."""
import json
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

out, jobs = sys.argv[1], sys.argv[2:]
fig, axes = plt.subplots(1, len(jobs), figsize=(6.2 * len(jobs), 4.6), squeeze=False)
for ax, job in zip(axes[0], jobs):
    fit = json.load(open(f"{out}/{job}/fit.json"))
    for k, stage in enumerate(fit.get("stages", [])):
        color = f"C{k}"
        bs = [o["batchSize"] for o in stage["optima"]]
        lr = [o["lrOpt"] for o in stage["optima"]]
        se = [o.get("lnLrOptSe", 0.0) for o in stage["optima"]]
        lo = [l - l * 2.718281828 ** (-1.96 * s) for l, s in zip(lr, se)]
        hi = [l * 2.718281828 ** (1.96 * s) - l for l, s in zip(lr, se)]
        label = f"stage {stage['stageId']} (loss {stage['stageLoss']:.3f})"
        ax.errorbar(bs, lr, yerr=[lo, hi], fmt="o", color=color, capsize=3, label=label)
        models = {m["model"]: m for m in stage["models"] if m.get("fitted")}
        if not models:
            continue
        best = max(models.values(), key=lambda m: m.get("weight", 0))
        for m, style in ((models.get("surge"), "--"), (best, "-")):
            if m and m.get("curve"):
                c = [p for p in m["curve"] if min(bs) / 2 <= p["batchSize"] <= max(bs) * 2]
                ax.plot([p["batchSize"] for p in c], [p["lr"] for p in c], style, color=color,
                        lw=1, label=f"  {m['model']} (w={m.get('weight', 0):.2f})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("batch size B")
    ax.set_ylabel("optimal LR (10-step probe)")
    ax.set_title(job)
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
fig.tight_layout()
fig.savefig(f"{out}/probe-results.png", dpi=110)
print(f"== plot: {out}/probe-results.png")
PLOT
fi

# Held-out batch sizes (surge-math.md section 5): leave one B out, refit the
# stage, predict it (server/tools/surge_holdout.cc). Needs the database file:
# ours, or SURGE_DB with a server of the caller's.
DB=${SURGE_DB:-}
if [ -z "$DB" ] && [ -n "$SERVER_PID" ]; then DB="$OUT/surge.db"; fi
HOLDOUT="$BUILD_DIR/server/tools/surge-holdout"
if [ -n "$DB" ] && [ -x "$HOLDOUT" ]; then
  for job in "${JOBS[@]}"; do
    if "$HOLDOUT" --db="$DB" --job="$job" > "$OUT/$job/holdout.txt"; then
      echo "== held-out batch sizes, $job (full table: $OUT/$job/holdout.txt)"
      grep -A2 "^job $job, all stages" "$OUT/$job/holdout.txt" | tail -2
    else
      echo "probe_sweep: surge-holdout failed for $job" >&2
    fi
  done
fi

# The tables of docs/probe-results.md (optima, models, Eq. 18), from the same files.
if [ -n "${FULL_RUN:-}" ]; then
  :  # the report's Eq. 18 check reads probes.csv, which full runs do not write
elif /usr/bin/python3 scripts/probe_report.py "$OUT" "${JOBS[@]}" > "$OUT/report.md"; then
  echo "== tables: $OUT/report.md"
else
  echo "probe_sweep: scripts/probe_report.py failed (the fits above are still valid)" >&2
fi
