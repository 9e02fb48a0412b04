#!/usr/bin/env bash
# A plain-run sweep: ordinary `surge-train train` runs (PROTOCOL_PLAIN, a
# constant LR each) over a grid of batch sizes x learning rates x seeds,
# streamed into one job that declares the target losses and k, then the
# server's fit of that evidence (server/fit/run_evidence.h: per target L*,
# S = the first eval record <= L*, the k-step improvement after it, runs that
# miss L* censored) and advice for a few batch sizes with both criteria
# (improvement: the paper's; fastest: fewest steps to L*).
#
#   scripts/plain_sweep.sh            # the full-run grid of docs/probe-results.md (70 runs, 16.5 min on 2 cores)
#   BATCH_SIZES=64,256,1024 LRS=1.78e-2,3.16e-2 scripts/plain_sweep.sh   # + 12 runs ("Plain runs", 2.4 min)
#   SMALL=1 scripts/plain_sweep.sh    # 25 short runs (~22 s on 2 cores once built): the demo
#
# Starts a surge-server on $OUT/surge.db unless SURGE_SERVER is set. The grid
# (environment; lists comma-separated):
#   BATCH_SIZES  batch sizes                      (4,16,64,256,1024)
#   LRS          learning rates                   (3.16e-4,5.62e-4,1e-3,1.78e-3,3.16e-3,5.62e-3,1e-2)
#   SEEDS        seeds 1..SEEDS per grid point    (2)
#   STEPS        step budget: one number for every batch size, or B:steps
#                per batch size                   (4:6000,16:6000,64:1700,256:1000,1024:600)
#   TARGETS      target losses the job declares   (0.6,0.45)
#   K            k, steps after L* (a multiple of EVAL_EVERY) (10)
#   EVAL_EVERY   eval-subset loss every N steps   (5)
#   EVAL_SIZE    eval subset: first N test images (1000)
#   PARALLEL     runs at once, --threads=1 each   (nproc)
#   JOB          job name                         (fmnist-plain; SMALL: demo-plain)
#   ADVISE       batch sizes to advise for        (4,64,1024)
#   BUILD_DIR (build), OUT ($BUILD_DIR/plain-sweep)
# The default budgets cover, at each B, the slowest run of the full-run sweep
# (FULL_RUN=1 scripts/probe_sweep.sh: its S + k at L* = 0.45; 6000 = its
# --max_steps), so that sweep's runs are reproduced exactly.
# Runs are named b<B>-lr<lr>-seed<r>. Training is deterministic per seed (and
# a run is the full-run protocol's trajectory: tests/trainer/plain_vs_full_test.cc;
# --threads 1, since more than 2 threads can split a batch into more
# micro-batches and change the float sums), so the output does not depend on
# PARALLEL. Ctrl-C, then the same command,
# resumes: runs whose records reach their budget on the server are skipped,
# the others are rerun from scratch (the server stores a re-sent record once).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
OUT=${OUT:-$BUILD_DIR/plain-sweep}
TRAIN="$BUILD_DIR/client/trainer/surge-train"
CLI="$BUILD_DIR/client/surge"
for b in "$TRAIN" "$CLI" "$BUILD_DIR/server/surge-server"; do
  [ -x "$b" ] || { echo "plain_sweep: $b not built (run scripts/build.sh)" >&2; exit 1; }
done
command -v python3 > /dev/null || { echo "plain_sweep: needs python3 (JSON of the CLI)" >&2; exit 1; }

if [ -n "${SMALL:-}" ]; then
  : "${BATCH_SIZES:=4,8,32,128,512}" "${LRS:=1e-3,2e-3,4e-3,8e-3,1.6e-2}" "${SEEDS:=1}"
  : "${STEPS:=4:450,8:300,32:150,128:100,512:60}" "${TARGETS:=0.9,0.8}" "${EVAL_SIZE:=500}"
  : "${JOB:=demo-plain}" "${ADVISE:=4,64,512}"
fi
BATCH_SIZES=${BATCH_SIZES:-4,16,64,256,1024}
LRS=${LRS:-3.16e-4,5.62e-4,1e-3,1.78e-3,3.16e-3,5.62e-3,1e-2}
SEEDS=${SEEDS:-2}
STEPS=${STEPS:-4:6000,16:6000,64:1700,256:1000,1024:600}
TARGETS=${TARGETS:-0.6,0.45}
K=${K:-10}
EVAL_EVERY=${EVAL_EVERY:-5}
EVAL_SIZE=${EVAL_SIZE:-1000}
PARALLEL=${PARALLEL:-$(nproc)}
JOB=${JOB:-fmnist-plain}
ADVISE=${ADVISE:-4,64,1024}
if [ $((K % EVAL_EVERY)) -ne 0 ]; then
  echo "plain_sweep: K=$K is not a multiple of EVAL_EVERY=$EVAL_EVERY: the improvement would" \
       "be measured at the next evaluation after S + K, not at S + K" >&2
fi
mkdir -p "$OUT/logs"

# Step budget of batch size $1.
steps_for() {
  local b=$1 entry
  if [[ "$STEPS" != *:* ]]; then echo "$STEPS"; return; fi
  for entry in ${STEPS//,/ }; do
    if [ "${entry%%:*}" = "$b" ]; then echo "${entry#*:}"; return; fi
  done
  echo "plain_sweep: STEPS=$STEPS has no budget for batch size $b" >&2
  return 1
}

SERVER_PID=""
if [ -z "${SURGE_SERVER:-}" ]; then
  rm -f "$OUT/port"
  "$BUILD_DIR/server/surge-server" --listen=127.0.0.1:0 --port_file="$OUT/port" \
    --db="$OUT/surge.db" --http=127.0.0.1:0 > "$OUT/server.log" 2>&1 &
  SERVER_PID=$!
  trap 'kill -TERM $SERVER_PID 2>/dev/null || true; wait $SERVER_PID 2>/dev/null || true' EXIT
  for _ in $(seq 100); do [ -s "$OUT/port" ] && break; sleep 0.1; done
  [ -s "$OUT/port" ] || { echo "plain_sweep: surge-server did not start (see $OUT/server.log)" >&2; exit 1; }
  SURGE_SERVER="127.0.0.1:$(cat "$OUT/port")"
  export SURGE_SERVER
fi
echo "== surge server $SURGE_SERVER${SERVER_PID:+ (database $OUT/surge.db)}"

# The job declares the targets and k (an existing job keeps its own: say so
# when they differ).
if "$CLI" job show "$JOB" --json > "$OUT/job.json" 2>/dev/null; then
  python3 - "$OUT/job.json" "$TARGETS" "$K" <<'PY' || true
import json, sys
job = json.load(open(sys.argv[1]))
want = sorted(float(t) for t in sys.argv[2].split(","))
have = sorted(job.get("targetLosses", []))
if have != want or int(job.get("kSteps", 0) or 10) != int(sys.argv[3]):
    print(f"plain_sweep: job {job['name']} exists with targets {have} and k {job.get('kSteps', 0)};"
          " they are kept (delete the job to change them)", file=sys.stderr)
PY
else
  "$CLI" job create "$JOB" --targets "$TARGETS" --k "$K" \
    --description "plain_sweep.sh: surge-train train over B=$BATCH_SIZES x lr=$LRS x $SEEDS seeds" \
    > /dev/null
fi

# What the server already holds: run -> last step.
"$CLI" runs "$JOB" --json > "$OUT/runs.json"
declare -A LAST
while read -r name last; do LAST[$name]=$last; done < <(python3 -c '
import json, sys
for r in json.load(open(sys.argv[1])).get("runs", []):
    print(r["name"], r.get("lastStep", 0) if int(r.get("recordCount", 0)) > 0 else 0)
' "$OUT/runs.json")

# The work list, most expensive first (so the pool ends evenly): "cost B lr seed steps".
: > "$OUT/todo.txt"
total=0 skipped=0
for b in ${BATCH_SIZES//,/ }; do
  steps=$(steps_for "$b")
  for lr in ${LRS//,/ }; do
    for seed in $(seq 1 "$SEEDS"); do
      total=$((total + 1))
      name="b$b-lr$lr-seed$seed"
      if [ "${LAST[$name]:-0}" -ge "$steps" ]; then skipped=$((skipped + 1)); continue; fi
      # Cost ~ steps x (B + forward cost of the evaluations per step).
      echo "$((steps * (b + EVAL_SIZE / (3 * EVAL_EVERY)))) $b $lr $seed $steps" >> "$OUT/todo.txt"
    done
  done
done
sort -k1,1nr -o "$OUT/todo.txt" "$OUT/todo.txt"
todo=$(wc -l < "$OUT/todo.txt")
echo "== $JOB: $total runs (B = $BATCH_SIZES; lr = $LRS; seeds 1..$SEEDS; steps $STEPS;" \
     "targets $TARGETS, k = $K, eval every $EVAL_EVERY on $EVAL_SIZE images): $todo to train," \
     "$skipped already on the server; $PARALLEL at a time"

export TRAIN JOB EVAL_EVERY EVAL_SIZE OUT
run_one() {  # cost B lr seed steps
  local b=$2 lr=$3 seed=$4 steps=$5 name="b$2-lr$3-seed$4"
  if "$TRAIN" train --job "$JOB" --run "$name" --batch_size "$b" --lr "$lr" --seed "$seed" \
       --steps "$steps" --eval_every "$EVAL_EVERY" --eval_size "$EVAL_SIZE" --threads 1 \
       --log_every 0 > "$OUT/logs/$name.log" 2>&1; then
    echo "   $name: $(grep -o 'final eval loss [0-9.]*' "$OUT/logs/$name.log")"
  else
    echo "   $name: FAILED (exit $?; see $OUT/logs/$name.log)" >&2
    return 1
  fi
}
export -f run_one
start=$(date +%s)
rc=0
if [ "$todo" -gt 0 ]; then
  xargs -P "$PARALLEL" -L 1 bash -c 'run_one "$@"' _ < "$OUT/todo.txt" > "$OUT/trained.txt" || rc=$?
  sort -V "$OUT/trained.txt"
fi
echo "== $JOB: $todo runs trained in $(( $(date +%s) - start )) s"
[ "$rc" -eq 0 ] || { echo "plain_sweep: some runs failed (rerun the same command to resume)" >&2; exit 1; }

# The fit that covers every record (fits are recomputed in the background).
for _ in $(seq 300); do
  if "$CLI" fit --job "$JOB" --json > "$OUT/fit.json" 2>/dev/null &&
     "$CLI" job show "$JOB" --json > "$OUT/job.json" &&
     python3 -c '
import json, sys
fit, job = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
sys.exit(0 if int(fit.get("inputs", {}).get("recordsSeen", -1)) == int(job["recordCount"]) else 1)
' "$OUT/fit.json" "$OUT/job.json"; then
    break
  fi
  sleep 0.5
done
echo "== surge fit --job $JOB"
"$CLI" fit --job "$JOB"
for b in ${ADVISE//,/ }; do
  for criterion in improvement fastest; do
    echo "== surge advise --job $JOB --batch $b --criterion $criterion"
    "$CLI" advise --job "$JOB" --batch "$b" --criterion "$criterion" || true
  done
done
echo "== fit as JSON: $OUT/fit.json; records: $CLI records $JOB > records.csv"
