#!/usr/bin/env bash
# The fault tests' self-check: builds surge with a planted ack-before-commit
# bug (-DSURGE_PLANT_ACK_BEFORE_COMMIT=ON, in its own build folder) and runs
# kill_loop_test against it, which must FAIL (acked records lost after a
# kill -9). Exit 0 when the test caught the bug, 1 when it did not.
#
#   scripts/fault_canary.sh          # BUILD_DIR=build-canary, SURGE_KILL_CYCLES=20
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-canary}
mkdir -p "$BUILD_DIR"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DSURGE_PLANT_ACK_BEFORE_COMMIT=ON \
  > "$BUILD_DIR/canary-configure.log" 2>&1 || { cat "$BUILD_DIR/canary-configure.log"; exit 1; }
cmake --build "$BUILD_DIR" -j "${JOBS:-$(nproc)}" --target surge-server kill_loop_test
export SURGE_KILL_CYCLES=${SURGE_KILL_CYCLES:-20}
if (cd "$BUILD_DIR" && ctest -R kill_loop_test --output-on-failure > canary-test.log 2>&1); then
  echo "fault_canary: kill_loop_test PASSED on a build that acks before it commits: the test cannot catch lost acks" >&2
  exit 1
fi
grep -m3 -E "acked records lost|Failure" "$BUILD_DIR/canary-test.log" || true
echo "fault_canary: kill_loop_test caught the planted ack-before-commit bug (as it must)"
