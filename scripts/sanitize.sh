#!/usr/bin/env bash
# Sanitizer builds of surge (GCC), each in its own build folder. Not part of
# ./scripts/test.sh (CI time); figures in docs/operations.md, "Sanitizers".
#
# Usage: scripts/sanitize.sh asan|tsan
#
#   asan  build-asan: everything built with -fsanitize=address,undefined
#         (servers, CLI, tools and tests alike, so the e2e tests' child
#         processes are instrumented too), then the default suite,
#         `ctest -LE "gpu|slow"` less plain_vs_full_test (too slow under
#         ASan, see ASAN_EXCLUDE below). Every process writes its reports to
#         build-asan/sanitizer-logs/ (ASan, LeakSanitizer and UBSan all stop
#         at the first report); the run fails when a test fails or when any
#         report file exists, since a report in a child server whose exit
#         status a test does not check must fail the run as well. Leak
#         suppressions: tests/sanitizers/lsan.supp (Debian's libraries only).
#   tsan  build-tsan: -fsanitize=thread, only the unit tests of surge's own
#         concurrency code (the group-commit write queue, ingest streams, fit
#         service, SurgeCore; surge-train's WorkerPool), which use
#         std::thread, std::mutex and std::atomic and no gRPC:
#         Debian's gRPC, abseil and httplib are not built with TSan, so TSan
#         cannot see their synchronization and reports races that are not
#         there (tests/sanitizers/tsan.supp: frees behind abseil's reference
#         counts only). First tsan_canary_test, a planted data race, must be
#         reported (proof the instrumentation works); then the real tests must
#         be clean.
#
#   JOBS=N              build and ctest parallelism (default: nproc)
#   ASAN_BUILD=DIR      build folder for asan (default build-asan)
#   TSAN_BUILD=DIR      build folder for tsan (default build-tsan)
#   CTEST_ARGS="..."    extra ctest arguments (e.g. -R rpc_e2e_test)
#
# CUDA is left out of both builds (nvcc does not take these flags; the gpu
# label is not run anyway). Exit status 0 when the mode is clean.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MODE="${1:-}"
JOBS="${JOBS:-$(nproc)}"
case "$MODE" in
  asan) BUILD="${ASAN_BUILD:-$ROOT/build-asan}" ;;
  tsan) BUILD="${TSAN_BUILD:-$ROOT/build-tsan}" ;;
  *) echo "usage: scripts/sanitize.sh asan|tsan" >&2; exit 2 ;;
esac
SUMMARY="$BUILD/sanitize-summary.txt"

# -O1 keeps the tests' run time bearable and the reports exact; -g1 gives
# file:line in stack traces at a fraction of -g's compile time.
OPT_FLAGS="-O1 -g1 -DNDEBUG -fno-omit-frame-pointer"
if [ "$MODE" = asan ]; then
  SAN_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
  # GCC's ASan and UBSan are two runtimes. Linked as shared libraries, UBSan's
  # log_path is lost (its exported setter resolves to libasan's copy) and its
  # reports go to stderr only, which for a child server is a log file its test
  # deletes; linked statically, each keeps its own report path.
  LINK_FLAGS="$SAN_FLAGS -static-libasan -static-libubsan"
  TARGETS=(all)
  # Left out: plain_vs_full_test gives its surge-train full-run 120 s (the
  # whole test takes 16 s in the release build); the Eigen trainer runs
  # 15-35x slower under ASan+UBSan (UBSan's checks in Eigen's GEMM kernels
  # ~2.5x of it), so it cannot finish, even on a quiet machine. The same trainer code runs instrumented in
  # cpu_trainer_test, cnn_cpu_test, full_run_test, follow_test and
  # probe_sweep_test.
  ASAN_EXCLUDE='^plain_vs_full_test$'
else
  SAN_FLAGS="-fsanitize=thread"
  LINK_FLAGS="$SAN_FLAGS"
  # Run through ctest, whole.
  TSAN_TESTS=(write_queue_test ingest_stream_test fit_service_test surge_core_test)
  # surge-train's WorkerPool (atomics, spin-then-block waits) under
  # cpu_trainer_test, run directly: every case but the 300-step
  # LossFallsOnRealData, which takes 5 min under TSan here and adds only more
  # of the same ParallelFor calls.
  TRAINER_FILTER="-CpuTrainerTest.LossFallsOnRealData"
  TARGETS=(tsan_canary_test "${TSAN_TESTS[@]}" cpu_trainer_test)
fi

configure() {
  mkdir -p "$BUILD"
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Sanitize \
    -DCMAKE_CXX_FLAGS_SANITIZE="$OPT_FLAGS" \
    -DCMAKE_CXX_FLAGS="$SAN_FLAGS" \
    -DCMAKE_EXE_LINKER_FLAGS="$LINK_FLAGS" \
    -DCMAKE_SHARED_LINKER_FLAGS="$SAN_FLAGS" \
    -DCMAKE_CUDA_COMPILER=CMAKE_CUDA_COMPILER-NOTFOUND \
    >"$BUILD/cmake.log" 2>&1 || { cat "$BUILD/cmake.log"; exit 1; }
}

seconds_since() { echo $(( $(date +%s) - $1 )); }

echo "sanitize $MODE: configuring and building in $BUILD ($SAN_FLAGS, $JOBS jobs)"
t0=$(date +%s)
configure
cmake --build "$BUILD" -j "$JOBS" --target "${TARGETS[@]}"
build_s=$(seconds_since "$t0")
echo "sanitize $MODE: build ${build_s} s"

if [ "$MODE" = asan ]; then
  LOGS="$BUILD/sanitizer-logs"
  rm -rf "$LOGS"; mkdir -p "$LOGS"
  # Inherited by every child (servers, CLI, surge-backup, Python and node
  # tests' servers). log_path keeps reports out of the stderr that tests read
  # and names each file after its program and pid.
  export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:log_path=$LOGS/asan:log_exe_name=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$LOGS/ubsan:log_exe_name=1"
  export LSAN_OPTIONS="suppressions=$ROOT/tests/sanitizers/lsan.supp:print_suppressions=0"
  t0=$(date +%s)
  set +e
  (cd "$BUILD" && ctest --output-on-failure -j "$JOBS" -LE "gpu|slow" -E "$ASAN_EXCLUDE" \
    ${CTEST_ARGS:-}) |
    tee "$BUILD/ctest.log"
  ctest_rc=${PIPESTATUS[0]}
  set -e
  test_s=$(seconds_since "$t0")
  reports=$(find "$LOGS" -type f | sort)
  n_reports=$(printf '%s' "$reports" | grep -c . || true)
  ran=$(grep -Eo '[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' "$BUILD/ctest.log" || echo "no ctest summary")
  {
    echo "mode: asan+ubsan (GCC $(gcc -dumpfullversion), $SAN_FLAGS $OPT_FLAGS)"
    echo "build: ${build_s} s, $JOBS jobs; tests: ${test_s} s; $ran (left out: $ASAN_EXCLUDE)"
    echo "sanitizer report files: $n_reports"
  } >"$SUMMARY"
  for f in $reports; do
    echo "===== $f"; cat "$f"
  done
  cat "$SUMMARY"
  [ "$ctest_rc" -eq 0 ] && [ "$n_reports" -eq 0 ] && { echo "sanitize asan: clean"; exit 0; }
  echo "sanitize asan: NOT clean (ctest exit $ctest_rc, $n_reports report files in $LOGS)"
  exit 1
fi

# tsan. second_deadlock_stack: full lock-order reports if one ever comes.
# Suppressions: tests/sanitizers/tsan.supp (frees inside Debian's abseil only).
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$ROOT/tests/sanitizers/tsan.supp"
canary_log="$BUILD/tsan_canary.log"
set +e
"$BUILD/tests/server/core/tsan_canary_test" >"$canary_log" 2>&1
canary_rc=$?
set -e
if [ "$canary_rc" -ne 0 ] && grep -q "WARNING: ThreadSanitizer: data race" "$canary_log" &&
   grep -q "tsan_canary_test.cc" "$canary_log"; then
  echo "sanitize tsan: canary: the planted race was reported (exit $canary_rc):"
  grep -E "WARNING: ThreadSanitizer|tsan_canary_test.cc" "$canary_log" | head -5 | sed 's/^/  /'
else
  cat "$canary_log"
  echo "sanitize tsan: FAILED: TSan did not report the planted race (exit $canary_rc);" \
       "the instrumentation is not working, so a clean run would prove nothing" >&2
  exit 1
fi

regex="^($(IFS='|'; echo "${TSAN_TESTS[*]}"))\$"
t0=$(date +%s)
set +e
(cd "$BUILD" && ctest --output-on-failure -j "$JOBS" -R "$regex" ${CTEST_ARGS:-}) |
  tee "$BUILD/ctest.log"
ctest_rc=${PIPESTATUS[0]}
trainer_log="$BUILD/cpu_trainer_test.log"
(cd "$BUILD/tests/trainer" &&
  timeout 900 ./cpu_trainer_test --gtest_filter="$TRAINER_FILTER") >"$trainer_log" 2>&1
trainer_rc=$?
set -e
test_s=$(seconds_since "$t0")
grep -E "^\[ +(OK|FAILED|SKIPPED) +\]" "$trainer_log" | sed 's/^/cpu_trainer_test: /'
n_reports=$(cat "$BUILD/Testing/Temporary/LastTest.log" "$trainer_log" |
  grep -c "WARNING: ThreadSanitizer" || true)
ran=$(grep -Eo '[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' "$BUILD/ctest.log" || echo "no ctest summary")
trainer_cases=$(grep -Ec "^\[ +OK +\]" "$trainer_log" || true)
{
  echo "mode: tsan (GCC $(gcc -dumpfullversion), $SAN_FLAGS $OPT_FLAGS)"
  echo "build: ${build_s} s, $JOBS jobs; tests: ${test_s} s"
  echo "ctest: $ran (${TSAN_TESTS[*]})"
  echo "cpu_trainer_test ($TRAINER_FILTER): exit $trainer_rc, $trainer_cases cases passed"
  echo "canary: reported (exit $canary_rc); TSan reports in the real tests: $n_reports"
} >"$SUMMARY"
cat "$SUMMARY"
if [ "$ctest_rc" -eq 0 ] && [ "$trainer_rc" -eq 0 ] && [ "$n_reports" -eq 0 ]; then
  echo "sanitize tsan: clean"
  exit 0
fi
[ "$trainer_rc" -eq 0 ] || cat "$trainer_log"
echo "sanitize tsan: NOT clean (ctest exit $ctest_rc, cpu_trainer_test exit $trainer_rc," \
     "$n_reports reports; see $BUILD/Testing/Temporary/LastTest.log and $trainer_log)"
exit 1
