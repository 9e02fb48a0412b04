#!/usr/bin/env bash
# Installs the Debian 12 packages that surge's build, demo and tests need.
# Idempotent: when every package is already installed it does not touch apt.
# Usage: scripts/setup.sh            (run as root, or with sudo available)
#        SURGE_SETUP_FUZZ=1 scripts/setup.sh   also clang and libFuzzer, for
#                                              scripts/fuzz.sh (not needed by the tests)
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git python3 zlib1g-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto
  libabsl-dev libeigen3-dev libceres-dev libsqlite3-dev sqlite3
  libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev
  dataset-fashion-mnist python3-torch python3-matplotlib
  python3-grpcio python3-protobuf python3-numpy python3-optuna
  libcpp-httplib-dev prometheus-cpp-dev chromium fonts-liberation
  fiu-utils libfiu0
  libssl-dev openssl
  nginx python3-yaml
  postgresql-15 libpq-dev
)

# Optional: clang (14) and its compiler-rt, which holds libFuzzer and the ASan/UBSan runtimes
# (libfuzzer-14-dev, the standalone libFuzzer, is not needed for -fsanitize=fuzzer),
# for the fuzz targets of scripts/fuzz.sh.
if [ "${SURGE_SETUP_FUZZ:-0}" = 1 ]; then
  PACKAGES+=(clang libclang-rt-14-dev)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# Node.js and npm: the machine's own when present, else Debian's.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
else
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# npm packages of the dashboard's browser test (playwright-core, no browser
# download: it drives Debian's chromium). Skipped when node_modules matches the lock.
DASHBOARD_TESTS="$(cd "$(dirname "$0")/.." && pwd)/tests/dashboard"
if [ -f "$DASHBOARD_TESTS/package-lock.json" ] &&
   [ ! "$DASHBOARD_TESTS/node_modules/.package-lock.json" -nt "$DASHBOARD_TESTS/package-lock.json" ]; then
  echo "setup: npm ci in tests/dashboard"
  (cd "$DASHBOARD_TESTS" && npm ci --no-audit --no-fund)
fi
echo "setup: done"
