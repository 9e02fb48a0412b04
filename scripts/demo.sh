#!/usr/bin/env bash
# The main job end to end: set up, build, start surge-server on ./demo.db
# (embedded SQLite), stream a generated record sweep through the CLI and print
# what was stored, then run a small CPU probe sweep of the reference trainer on
# the real Fashion-MNIST (scripts/probe_sweep.sh with SMALL=1, ~20 s on 2
# cores) against the same server and print its fit, advice and held-out check. The server is
# stopped (SIGTERM) at the end (SURGE_DEMO_KEEP=1 keeps it up for the dashboard).
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

echo "== generating a sweep: 8 runs (batch sizes 2..256) x 500 steps"
python3 scripts/gen_records.py --runs 8 --steps 500 > "$WORK/sweep.csv"
head -3 "$WORK/sweep.csv"

echo "== surge import --job demo-sweep sweep.csv"
"$BIN/client/surge" import --job demo-sweep "$WORK/sweep.csv"
echo "== surge jobs"
"$BIN/client/surge" jobs
echo "== surge runs demo-sweep"
"$BIN/client/surge" runs demo-sweep
echo "== surge records demo-sweep --run bs64 (first 5 rows)"
"$BIN/client/surge" records demo-sweep --run bs64 > "$WORK/bs64.csv"
head -6 "$WORK/bs64.csv"
echo
echo "== the real thing: a small CPU probe sweep of the reference trainer on Fashion-MNIST"
echo "   (surge-train: base run to two target losses, then 10-step probes over batch sizes"
echo "   x learning rates x seeds, streamed to the server; then surge fit and surge advise)"
BUILD_DIR="$BIN" OUT="$WORK/sweep" SURGE_DB="$DB" SMALL=1 ./scripts/probe_sweep.sh
if [ "${SURGE_DEMO_KEEP:-0}" = 1 ]; then
  echo "== the server keeps running: dashboard on http://127.0.0.1:8080/ (Ctrl-C stops it)"
  wait "$SERVER_PID" || true
fi
echo "== stopping the server (SIGTERM)"
