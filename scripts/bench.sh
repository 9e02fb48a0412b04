#!/usr/bin/env bash
# Benchmarks (long; never part of the test suite). Prints figures with the
# machine they came from.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
BUILD_DIR=${BUILD_DIR:-build}
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r)"
echo "== ingest: 4 streams x window 8 x 1000-record batches (throughput)"
"$BUILD_DIR/bench/surge-ingest-loadgen" --streams 4 --window 8 --batch 1000 --seconds 10
echo "== ingest: 4 streams x window 2 (lower latency)"
"$BUILD_DIR/bench/surge-ingest-loadgen" --streams 4 --window 2 --batch 1000 --seconds 10
echo "== ingest: one record per batch, one in flight (per-record commit baseline)"
"$BUILD_DIR/bench/surge-ingest-loadgen" --streams 1 --window 1 --batch 1 --seconds 5
echo "== advice latency (in process and over gRPC)"
"$BUILD_DIR/bench/surge-advice-bench"
for b in "$BUILD_DIR"/bench/*_bench; do
  [ -x "$b" ] || continue
  echo "== $(basename "$b")"
  "$b"
done
echo "== Python Reporter overhead"
PYTHONPATH=client/python:$BUILD_DIR/client/python/gen OMP_NUM_THREADS=1 \
  /usr/bin/python3 bench/python_reporter_overhead.py --server-bin "$BUILD_DIR/server/surge-server"
