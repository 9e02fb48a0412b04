#!/usr/bin/env bash
# Installs what is missing (scripts/setup.sh), then configures and builds surge
# in ${BUILD_DIR:-build} (Release). Prints the configure summary (CUDA or not).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release 2>&1 | grep -E "^-- surge|Error|error" || true
test -f "$BUILD_DIR/CMakeCache.txt" || { echo "build: cmake configure failed" >&2; exit 1; }
cmake --build "$BUILD_DIR" -j "$JOBS"
