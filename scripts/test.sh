#!/usr/bin/env bash
# The test command: set up, build, run the default test suite (ctest; labels
# gpu and slow are excluded; they run with `ctest -L gpu` / `ctest -L slow`).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
BUILD_DIR=${BUILD_DIR:-build}
cd "$BUILD_DIR"
ctest --output-on-failure -j "${JOBS:-$(nproc)}" -LE "gpu|slow"
