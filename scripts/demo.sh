#!/usr/bin/env bash
# The main job end to end: set up, build, start surge-server on ./demo.db
# (embedded SQLite), import a generated sweep of plain runs through the CLI
# (5 batch sizes x 5 LRs from a known surge law) and ask for advice; then the
# main thing: a plain-run sweep of the reference trainer on the real
# Fashion-MNIST (surge-train train, 5 batch sizes x 4 LRs x 400 steps), whose
# ordinary runs alone give the fit and the advice the demo ends with, including
# the transfer of a tuned LR to another batch size. About a minute once built.
# The probe protocol has its own script (SMALL=1 scripts/probe_sweep.sh).
# The server is stopped (SIGTERM) at the end (SURGE_DEMO_KEEP=1 keeps it up
# for the dashboard).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
BUILD_DIR=${BUILD_DIR:-build}
BIN="$BUILD_DIR"
PORT=${SURGE_DEMO_PORT:-50051}
export SURGE_SERVER="127.0.0.1:$PORT"
DB=${SURGE_DEMO_DB:-./demo.db}
WORK=$(mktemp -d)
trap 'kill -TERM $SERVER_PID 2>/dev/null || true; wait $SERVER_PID 2>/dev/null || true; rm -rf "$WORK"' EXIT

rm -f "$DB" "$DB-wal" "$DB-shm"
echo "== starting surge-server on $SURGE_SERVER, database $DB"
"$BIN/server/surge-server" --listen="$SURGE_SERVER" --db="$DB" --port_file="$WORK/port" &
SERVER_PID=$!
for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
[ -s "$WORK/port" ] || { echo "demo: surge-server did not start (port $PORT busy? set SURGE_DEMO_PORT)" >&2; exit 1; }

echo "== generating a sweep of plain runs: 5 batch sizes (4..1024) x 5 LRs x 600 steps"
echo "   (a known surge law: B_noise = 64, eps_max = 2e-3; scripts/gen_records.py --lrs)"
python3 scripts/gen_records.py --runs 5 --lrs 5 --steps 600 --eval-every 5 > "$WORK/sweep.csv"
head -3 "$WORK/sweep.csv"

echo "== surge import --job demo-sweep sweep.csv   (plain runs, no protocol declared)"
"$BIN/client/surge" import --job demo-sweep "$WORK/sweep.csv"
echo "== surge jobs"
"$BIN/client/surge" jobs
echo "== surge runs demo-sweep (first 6)"
"$BIN/client/surge" runs demo-sweep | head -7
echo "== surge advise --job demo-sweep --batch 256   (truth: 2e-3 / cosh(ln(256/64)/2) = 1.6e-3)"
sleep 1
"$BIN/client/surge" advise --job demo-sweep --batch 256
echo
echo "== the main thing: ordinary training runs of the reference trainer on Fashion-MNIST"
echo "   (surge-train train: batch sizes 8..128 x LRs 1e-3..3e-2, 400 steps each, eval loss"
echo "   every 10 steps, streamed as plain runs to job fmnist-plain)"
for b in 8 16 32 64 128; do for lr in 1e-3 3e-3 1e-2 3e-2; do echo "$b $lr"; done; done |
  xargs -P 2 -n 2 sh -c '"$0" train --job fmnist-plain --run "b$1-lr$2" --batch_size "$1" \
    --lr "$2" --steps 400 --eval_every 10 --eval_size 500 --threads 1 --log_every 0 \
    > /dev/null' "$BIN/client/trainer/surge-train"
sleep 1
echo "== surge fit --job fmnist-plain"
"$BIN/client/surge" fit --job fmnist-plain
for b in 16 64 256; do
  echo "== surge advise --job fmnist-plain --batch $b --step 300"
  "$BIN/client/surge" advise --job fmnist-plain --batch "$b" --step 300 || true
done
echo "== surge advise --job fmnist-plain --batch 64 --criterion fastest"
"$BIN/client/surge" advise --job fmnist-plain --batch 64 --criterion fastest || true
echo "== \"my LR 3e-3 is tuned at batch 32; what at 128?\": surge advise --batch 128 --from 32:3e-3"
"$BIN/client/surge" advise --job fmnist-plain --batch 128 --from 32:3e-3 || true
if [ "${SURGE_DEMO_KEEP:-0}" = 1 ]; then
  echo "== the server keeps running: dashboard on http://127.0.0.1:8080/ (Ctrl-C stops it)"
  wait "$SERVER_PID" || true
fi
echo "== stopping the server (SIGTERM)"
