#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang (ASan+UBSan, in their own
# build folder) and runs each for RUNS executions, starting from its seed
# corpus in fuzz/corpus/TARGET and the crash reproducers in
# fuzz/regressions/TARGET. Not part of ./scripts/test.sh.
#
# Usage: scripts/fuzz.sh [TARGET...]     (default: all four targets)
#   RUNS=N          executions per target (default 1000000)
#   FUZZ_BUILD=DIR  build folder (default build-fuzz)
#   FUZZ_SEEDS=1    regenerate fuzz/corpus/ from real inputs first, then fuzz
#   JOBS=N          build parallelism (default: nproc)
# Needs clang and libFuzzer: SURGE_SETUP_FUZZ=1 scripts/setup.sh.
#
# New inputs libFuzzer finds go to FUZZ_BUILD/corpus/TARGET (the repository's
# corpus is only read); a crash leaves FUZZ_BUILD/artifacts/TARGET-crash-*
# (copy it to fuzz/regressions/TARGET/ once fixed). Prints per target the
# executions, wall time, executions/s and crashes, also written to
# FUZZ_BUILD/fuzz-summary.txt. Exit status 0 when every target ran RUNS
# executions without a crash.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${FUZZ_BUILD:-$ROOT/build-fuzz}"
RUNS="${RUNS:-1000000}"
JOBS="${JOBS:-$(nproc)}"
ALL=(fuzz_validation fuzz_csv fuzz_json_api fuzz_fit_job)
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=("${ALL[@]}")

# Largest input per target (the seeds stay under it).
declare -A MAX_LEN=([fuzz_validation]=4096 [fuzz_csv]=4096 [fuzz_json_api]=512 [fuzz_fit_job]=8192)

for t in "${TARGETS[@]}"; do
  [ -n "${MAX_LEN[$t]:-}" ] || { echo "fuzz: unknown target '$t' (have: ${ALL[*]})" >&2; exit 2; }
done
for tool in clang clang++; do
  command -v "$tool" >/dev/null || { echo "fuzz: $tool missing; run SURGE_SETUP_FUZZ=1 scripts/setup.sh" >&2; exit 2; }
done

echo "fuzz: building in $BUILD"
mkdir -p "$BUILD"
CC=clang CXX=clang++ cmake -S "$ROOT" -B "$BUILD" -DSURGE_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$BUILD/cmake.log" 2>&1 ||
  { cat "$BUILD/cmake.log"; exit 1; }
cmake --build "$BUILD" -j "$JOBS" --target "${TARGETS[@]}" make_fuzz_seeds

if [ "${FUZZ_SEEDS:-0}" = 1 ]; then
  echo "fuzz: writing the seed corpus in fuzz/corpus/"
  CORPUS="$ROOT/fuzz/corpus"
  rm -rf "$CORPUS"
  mkdir -p "$CORPUS/fuzz_csv" "$CORPUS/fuzz_json_api"
  "$BUILD/fuzz/make_fuzz_seeds" "$CORPUS"
  # CSV: heads of the files `surge import` reads, as the generators write them.
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  /usr/bin/python3 "$ROOT/scripts/gen_records.py" --runs 3 --steps 40 --eval-every 5 >"$tmp/grad.csv"
  head -n 12 "$tmp/grad.csv" >"$CORPUS/fuzz_csv/records_grad_eval.csv"
  /usr/bin/python3 "$ROOT/scripts/gen_records.py" --runs 3 --lrs 3 --steps 20 >"$tmp/plain.csv"
  cut -d, -f1-6 "$tmp/plain.csv" | head -n 10 >"$CORPUS/fuzz_csv/records_plain.csv"
  /usr/bin/python3 "$ROOT/scripts/gen_probe_sweep.py" --out-dir "$tmp" >/dev/null
  head -n 12 "$tmp/probes.csv" >"$CORPUS/fuzz_csv/probes.csv"
  head -n 8 "$tmp/base.csv" >"$CORPUS/fuzz_csv/base_run.csv"
  printf 'stage,stage_loss,batch_size,lr_opt,lr_opt_se\n1,2.0,16,5.3e-4,2.6e-5\n1,2.0,64,1e-3,5e-5\n1,2.0,256,5.3e-4,2.6e-5\n2,1.0,64,2e-3,1e-4\n' \
    >"$CORPUS/fuzz_csv/optima.csv"
  # The same records with a BOM, CRLF line ends and RFC 4180 quoting.
  { printf '\xef\xbb\xbf'; head -n 4 "$CORPUS/fuzz_csv/records_plain.csv" \
      | sed -e 's/^\([^,]*\),/"\1",/' -e 's/$/\r/'; printf '"bs,x",9,1,2,1e-3,2.0\r\n'; } \
    >"$CORPUS/fuzz_csv/records_bom_crlf_quoted.csv"
  # JSON API: the requests the dashboard and docs/dashboard.md make.
  i=0
  while IFS= read -r line; do
    i=$((i + 1)); printf '%s' "$line" >"$CORPUS/fuzz_json_api/request_$i"
  done <<'REQUESTS'
jobs 
job sweep
runs runs
records runs?run=bs16&page_size=10
records runs?page_size=5&page_token=r1%3A1%3A5
records runs?run=bs32&page_token=r1:2:20
fit sweep
advice sweep?batch_size=256
advice sweep?batch_size=1024&step=12000
advice sweep?batch_size=1024&criterion=fastest
advice sweep?batch_size=512&criterion=CRITERION_IMPROVEMENT
advice sweep?batch_size=1024&ref_batch_size=256&ref_lr=3e-4
advice sweep?batch_size=1024&ref_batch_size=256&ref_lr=3e-4&ref_step=500
advice sweep?batch_size=64&ref_batch_size=32&ref_lr=0.003&ref_loss=1.5
advice my%2Djob?batch_size=2e3&step=
advice empty?batch_size=128
REQUESTS
  du -sh "$CORPUS"
fi

# Shorter allocation stacks: recording 30 frames per malloc cost fuzz_fit_job
# (Ceres allocates per solve) a sixth of its time; reports keep 10 frames.
# fuzz_fit_job keeps 2 (the allocation and its caller): ASan's fast unwinder
# reads frame pointers, and Debian's Ceres is built without them, so frames
# past the caller are stray register values and almost every allocation got a
# stack of its own. The stack depot then held 950,000 stacks after 1,300
# executions (930 with 2 frames) and grew for the whole run, slowing every
# allocation and raising the RSS past 1 GB. Stacks of the reports themselves
# (the bad access) are complete either way. A set ASAN_OPTIONS wins.
declare -A MALLOC_CONTEXT=([fuzz_fit_job]=2)
USER_ASAN_OPTIONS="${ASAN_OPTIONS:-}"

SUMMARY="$BUILD/fuzz-summary.txt"
: >"$SUMMARY"
status=0
printf '%-16s %12s %9s %9s %8s\n' target executions wall_s exec/s crashes | tee -a "$SUMMARY"
for t in "${TARGETS[@]}"; do
  work="$BUILD/corpus/$t"
  mkdir -p "$work" "$BUILD/artifacts" "$BUILD/logs"
  cp -n "$ROOT/fuzz/corpus/$t"/* "$work/" 2>/dev/null || true
  dirs=("$work")
  [ -d "$ROOT/fuzz/regressions/$t" ] && dirs+=("$ROOT/fuzz/regressions/$t")
  log="$BUILD/logs/$t.log"
  before=$(find "$BUILD/artifacts" -name "$t-*" | wc -l)
  start=$(date +%s.%N)
  rc=0
  export ASAN_OPTIONS="${USER_ASAN_OPTIONS:-malloc_context_size=${MALLOC_CONTEXT[$t]:-10}}"
  (cd "$BUILD" && "$BUILD/fuzz/$t" -runs="$RUNS" -max_len="${MAX_LEN[$t]}" -timeout=30 \
      -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$BUILD/artifacts/$t-" \
      "${dirs[@]}") >"$log" 2>&1 || rc=$?
  end=$(date +%s.%N)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  execs=${execs:-0}
  crashes=$(($(find "$BUILD/artifacts" -name "$t-*" | wc -l) - before))
  [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ] && crashes=1
  awk -v t="$t" -v n="$execs" -v s="$start" -v e="$end" -v c="$crashes" \
    'BEGIN { printf "%-16s %12d %9.0f %9.0f %8d\n", t, n, e - s, n / (e - s), c }' | tee -a "$SUMMARY"
  if [ "$crashes" -ne 0 ] || [ "$execs" -lt "$RUNS" ]; then
    status=1
    echo "fuzz: $t: exit $rc; log $log" >&2
    grep -m 5 -E 'ERROR|SUMMARY|Test unit written|fuzz_' "$log" >&2 || true
  fi
done
echo "machine: $(nproc) cores, $(uname -m), $(clang --version | head -n 1)" | tee -a "$SUMMARY"
exit $status
