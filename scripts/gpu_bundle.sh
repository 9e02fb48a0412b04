#!/usr/bin/env bash
# The trainer's GPU check for a lent device machine (the device tool's `run`):
# that machine starts bare (no network, none of the Debian dev libraries the
# build needs, no /usr/share/datasets/fashion-mnist; it has its own CUDA), so
# scripts/gpu_check.sh cannot build there. This script builds HERE the
# CUDA-enabled binaries (cnn_cuda_test, cuda_trainer_test, trainer_bench,
# surge-train, surge-server, surge) and assembles a self-contained folder:
#
#   gpu-bundle/payload.tar.xz   (xz: the folder must stay well under the
#                           device tool's 64 MiB; run.sh unpacks it to /tmp)
#       bin/                the six binaries (stripped)
#       lib/                their shared libraries from ldd, except the CUDA
#                           ones (libcuda, libcudart, libcublas*: the device's
#                           own CUDA install provides them)
#       lib/glibc/          this machine's glibc, used only where the device's
#                           glibc is older than the one the bundle was built on
#   gpu-bundle/data/fashion-mnist/   the four IDX files (already gzip)
#   gpu-bundle/CONTENTS     the payload's file list with sizes
#   gpu-bundle/run.sh       the runner (below): gpu tests, trainer_bench
#                           --backend=cuda, a short GPU probe sweep against a
#                           bundled surge-server on 127.0.0.1, all into $OUT
#   gpu-bundle/bundle.env, SHA256SUMS   what was built, and checksums
#
#   scripts/gpu_bundle.sh                  # build + assemble (checks < 60 MiB)
#   OUT=/tmp/o gpu-bundle/run.sh           # here: no GPU, so exit 3 after a
#                                          # CPU wiring check (see run.sh)
#
# Then, with the device tool (docs/trainer.md, "Running the GPU check on a
# lent device"): run with carry ["gpu-bundle"], command
# `OUT=$OUT gpu-bundle/run.sh`, timeout_s 540.
#
# Environment: BUILD_DIR (build-gpu-bundle), BUNDLE (gpu-bundle), CUDA_ARCHS
# (80;90: A100, H100/H200), BUNDLE_MARCH (x86-64-v3: AVX2 + FMA, which every
# H100/H200 host has; run.sh checks), DATA_DIR (the Debian package's folder),
# MAX_MIB (60), JOBS (nproc).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-gpu-bundle}
BUNDLE=${BUNDLE:-gpu-bundle}
ARCHS=${CUDA_ARCHS:-80;90}
MARCH=${BUNDLE_MARCH:-x86-64-v3}
DATA_DIR=${DATA_DIR:-/usr/share/datasets/fashion-mnist}
MAX_MIB=${MAX_MIB:-60}
JOBS=${JOBS:-$(nproc)}
TARGETS=(cnn_cuda_test cuda_trainer_test trainer_bench surge-train surge-server surge)
DATA_FILES=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz
  t10k-labels-idx1-ubyte.gz)

die() { echo "gpu_bundle: $*" >&2; exit 1; }

[ "$(uname -m)" = x86_64 ] || die "the device machine is x86-64; build the bundle on an x86-64 machine"
for f in "${DATA_FILES[@]}"; do
  [ -s "$DATA_DIR/$f" ] || die "$DATA_DIR/$f missing (apt-get install dataset-fashion-mnist, or set DATA_DIR)"
done

echo "== configure $BUILD_DIR (CUDA architectures $ARCHS, -march=$MARCH, Release)"
mkdir -p "$BUILD_DIR"
# Portable CPU code: not -march=native (this machine's vector units need not
# be the device host's).
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CUDA_ARCHITECTURES=$ARCHS" \
  -DSURGE_TRAINER_NATIVE=OFF "-DCMAKE_CXX_FLAGS=-march=$MARCH" > "$BUILD_DIR/bundle-configure.log" 2>&1 \
  || { cat "$BUILD_DIR/bundle-configure.log"; die "cmake failed"; }
grep -q "trainer CUDA path enabled" "$BUILD_DIR/bundle-configure.log" \
  || die "CMake did not enable the trainer's CUDA path (nvcc not found?); see $BUILD_DIR/bundle-configure.log"

echo "== build ${TARGETS[*]} (-j$JOBS)"
nice -n 10 cmake --build "$BUILD_DIR" -j "$JOBS" --target "${TARGETS[@]}"

echo "== assemble $BUNDLE/"
STAGE="$BUILD_DIR/bundle-payload"
rm -rf "$BUNDLE" "$STAGE"
mkdir -p "$STAGE/bin" "$STAGE/lib/glibc" "$BUNDLE/data/fashion-mnist"
declare -A CUDA_LIBS=()
for t in "${TARGETS[@]}"; do
  src=$(find "$BUILD_DIR" -path '*/CMakeFiles' -prune -o -type f -name "$t" -perm -u+x -print | head -n 1)
  [ -n "$src" ] || die "built binary $t not found under $BUILD_DIR"
  cp "$src" "$STAGE/bin/$t"
  strip --strip-unneeded "$STAGE/bin/$t"
  # ldd lists the whole closure: "name => path (addr)", "name => not found",
  # or the loader alone ("/lib64/ld-linux-x86-64.so.2 (addr)").
  while read -r name arrow path _; do
    case "$name" in
      linux-vdso.so.*) continue ;;
      libcuda.so* | libcudart.so* | libcublas.so* | libcublasLt.so* | libnvidia*)
        [ "$name" = libcuda.so.1 ] || CUDA_LIBS[$name]=1
        continue ;;
    esac
    if [ "$arrow" != "=>" ]; then  # the loader
      [ -e "$name" ] && cp -L "$name" "$STAGE/lib/glibc/"
      continue
    fi
    [ "$path" = not ] && die "$t needs $name, which ldd cannot find here"
    case "$name" in
      ld-linux*.so.* | libc.so.* | libm.so.* | libmvec.so.* | libpthread.so.* | libdl.so.* | \
        librt.so.* | libresolv.so.* | libutil.so.* | libanl.so.* | libnss_*)
        cp -L "$path" "$STAGE/lib/glibc/$name" ;;
      *) cp -L "$path" "$STAGE/lib/$name" ;;
    esac
  done < <(ldd "$src")
done
[ -e "$STAGE/lib/glibc/ld-linux-x86-64.so.2" ] || die "the dynamic loader was not found by ldd"
[ "${#CUDA_LIBS[@]}" -gt 0 ] || die "no CUDA library among the binaries' dependencies: not a CUDA build?"
for f in "${DATA_FILES[@]}"; do cp "$DATA_DIR/$f" "$BUNDLE/data/fashion-mnist/"; done
tar -C "$STAGE" -cf - bin lib | xz -9 -T "$JOBS" > "$BUNDLE/payload.tar.xz"
(cd "$STAGE" && find bin lib -type f -printf '%10s  %p\n' | sort -k2) > "$BUNDLE/CONTENTS"

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff-index --quiet HEAD -- 2>/dev/null || commit="$commit+uncommitted-changes"
{
  printf 'BUNDLE_COMMIT=%q\n' "$commit"
  printf 'BUNDLE_BUILT=%q\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
  printf 'BUNDLE_GLIBC=%q\n' "$(getconf GNU_LIBC_VERSION | awk '{print $2}')"
  printf 'BUNDLE_NVCC=%q\n' "$("$(grep -m1 '^CMAKE_CUDA_COMPILER:' "$BUILD_DIR/CMakeCache.txt" | cut -d= -f2)" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')"
  printf 'BUNDLE_CUDA_ARCHS=%q\n' "$ARCHS"
  printf 'BUNDLE_MARCH=%q\n' "$MARCH"
  printf 'BUNDLE_CUDA_SONAMES=%q\n' "$(printf '%s\n' "${!CUDA_LIBS[@]}" | sort | tr '\n' ' ' | sed 's/ $//')"
} > "$BUNDLE/bundle.env"

# The runner. Quoted heredoc: nothing below is expanded now.
cat > "$BUNDLE/run.sh" <<'RUNNER'
#!/usr/bin/env bash
# gpu-bundle/run.sh: the trainer's GPU check from the self-contained bundle
# that scripts/gpu_bundle.sh made. Needs no build tools, no network and no
# Debian dev libraries; the CUDA runtime and cuBLAS come from the machine's
# own CUDA install (/usr/local/cuda*/lib64, /usr/local/cuda*/targets/*/lib,
# else any folder under /usr/local, /opt or /usr/lib that holds them).
#
#   OUT=DIR gpu-bundle/run.sh
#
# Steps: preflight (files, checksums, CPU, glibc, CUDA libraries, every
# binary starts); the gpu tests (cnn_cuda_test, cuda_trainer_test: the CUDA
# path against the CPU reference; they must run, not skip); GPU samples/s
# (trainer_bench --backend=cuda, B = 1, 8, 64, 512, 1164); a short probe
# sweep with the probes on the GPU (two jobs: Adam and Adam(0, 0); batch
# sizes 1-1024, 3 seeds, 2 stages) streamed to a bundled surge-server on
# 127.0.0.1, then `surge fit` on both jobs. Everything goes to $OUT:
# run.log (all output), summary.txt, gpu_tests.log, bench.log, sweep.log,
# server.log, probes.csv.
#
# Without a GPU the gpu tests skip, the script says so, and the sweep runs
# tiny on the CPU (--backend=cpu) to prove the server / CLI / dataset wiring.
#
# Exit status: 0 the GPU check ran and passed; 1 something failed (the
# summary names it); 3 no GPU here (the wiring check passed; nothing was
# checked on a GPU).
#
# Knobs (environment): SWEEP=0 skips the sweep; SWEEP_BATCHES, SWEEP_SEEDS,
# SWEEP_TARGETS, SWEEP_THREADS; TIME_TESTS, TIME_BENCH, TIME_SWEEP (seconds
# per step: per test binary, per sweep job); DEADLINE (500 s: later steps get
# less time so the whole run ends by then, inside a 540 s device call).
# KEEP_WORK=1 keeps the scratch folder (unpacked payload, server db, sweep
# work dirs) in /tmp. GLIBC_LOADER=system|bundled overrides the loader choice.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ -z "${OUT:-}" ]; then
  echo "run.sh: set OUT to a folder for the results (the device tool's \$OUT)" >&2
  exit 1
fi
mkdir -p "$OUT" || exit 1
OUT=$(cd "$OUT" && pwd)

TIME_TESTS=${TIME_TESTS:-150}
TIME_BENCH=${TIME_BENCH:-90}
TIME_SWEEP=${TIME_SWEEP:-120}
DEADLINE=${DEADLINE:-500}
BINS=(cnn_cuda_test cuda_trainer_test trainer_bench surge-train surge-server surge)
DATA="$HERE/data/fashion-mnist"

main() {
  trap cleanup EXIT
  T0=$SECONDS
  local t0=$T0
  FAILS=()
  WARNS=()
  fail() { echo "run.sh: FAIL: $*"; FAILS+=("$*"); }
  warn() { echo "run.sh: WARNING: $*"; WARNS+=("$*"); }
  die() { echo "run.sh: FATAL: $*"; echo "run.sh: FATAL: $*" > "$OUT/summary.txt"; exit 1; }
  stage() { echo; echo "== [$((SECONDS - t0)) s] $*"; }

  stage "preflight ($HERE)"
  [ -f "$HERE/bundle.env" ] || die "$HERE/bundle.env missing: not a bundle from scripts/gpu_bundle.sh"
  # shellcheck disable=SC1091
  . "$HERE/bundle.env"
  echo "bundle: commit $BUNDLE_COMMIT, built $BUNDLE_BUILT; nvcc $BUNDLE_NVCC for sm $BUNDLE_CUDA_ARCHS;"
  echo "        CPU code -march=$BUNDLE_MARCH; glibc $BUNDLE_GLIBC; needs $BUNDLE_CUDA_SONAMES"
  local b f
  [ -s "$HERE/payload.tar.xz" ] || die "payload.tar.xz missing"
  for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz \
    t10k-labels-idx1-ubyte.gz; do
    [ -s "$DATA/$f" ] || die "data/fashion-mnist/$f missing"
  done
  if command -v sha256sum > /dev/null && [ -f "$HERE/SHA256SUMS" ]; then
    (cd "$HERE" && sha256sum -c --quiet SHA256SUMS) || die "checksums differ (SHA256SUMS): the bundle is damaged or was changed"
    echo "checksums: ok"
  fi
  [ "$(uname -m)" = x86_64 ] || die "this machine is $(uname -m); the bundle is x86-64"
  # The binaries and libraries, unpacked to a scratch folder (removed at exit).
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/surge-gpu-check.XXXXXX") || die "mktemp failed"
  P="$WORK/payload"
  mkdir -p "$P"
  if command -v xz > /dev/null; then
    tar -C "$P" -xJf "$HERE/payload.tar.xz" || die "cannot unpack payload.tar.xz (tar + xz)"
  elif command -v python3 > /dev/null; then  # no xz binary: Python's tarfile reads xz
    python3 -c 'import sys, tarfile
t = tarfile.open(sys.argv[1], "r:xz")
t.extractall(sys.argv[2], **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))' \
      "$HERE/payload.tar.xz" "$P" || die "cannot unpack payload.tar.xz (python3 tarfile)"
  else
    die "cannot unpack payload.tar.xz: neither xz nor python3 here"
  fi
  for b in "${BINS[@]}"; do [ -x "$P/bin/$b" ] || die "bin/$b missing from the payload"; done
  echo "payload: $(find "$P" -type f | wc -l) files unpacked to $P"
  if [ "$BUNDLE_MARCH" = x86-64-v3 ]; then
    if ! grep -qw avx2 /proc/cpuinfo || ! grep -qw fma /proc/cpuinfo; then
      die "this CPU lacks AVX2/FMA; rebuild with BUNDLE_MARCH=x86-64 scripts/gpu_bundle.sh"
    fi
  fi
  # The loader: the system's where its glibc is at least the build machine's,
  # else the bundled one (lib/glibc).
  local sys_glibc
  sys_glibc=$(getconf GNU_LIBC_VERSION 2> /dev/null | awk '{print $2}')
  if [ -n "$sys_glibc" ] && [ "$(printf '%s\n%s\n' "$BUNDLE_GLIBC" "$sys_glibc" | sort -V | head -n 1)" = "$BUNDLE_GLIBC" ]; then
    LOADER=system
  else
    LOADER=bundled
  fi
  case "${GLIBC_LOADER:-auto}" in
    auto) ;;
    system | bundled) LOADER=$GLIBC_LOADER ;;
    *) die "GLIBC_LOADER must be auto, system or bundled" ;;
  esac
  echo "glibc: system ${sys_glibc:-unknown}, bundle built on $BUNDLE_GLIBC: $LOADER loader"
  # CUDA runtime libraries: the device's own install.
  shopt -s nullglob
  local dirs=() d so found
  for d in /usr/local/cuda*/lib64 /usr/local/cuda*/targets/*/lib /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
    [ -d "$d" ] && dirs+=("$d")
  done
  shopt -u nullglob
  for so in $BUNDLE_CUDA_SONAMES; do
    found=""
    for d in "${dirs[@]}"; do [ -e "$d/$so" ] && { found=$d; break; }; done
    if [ -z "$found" ]; then  # e.g. pip's nvidia/cu13/lib beside PyTorch
      found=$(find /usr/local /opt /usr/lib -maxdepth 9 -name "$so" 2> /dev/null | head -n 1)
      [ -n "$found" ] && { found=$(dirname "$found"); dirs+=("$found"); }
    fi
    [ -n "$found" ] || die "$so not found (searched /usr/local/cuda*/lib64, /usr/local/cuda*/targets/*/lib, /usr/local, /opt, /usr/lib): this machine has no CUDA ${BUNDLE_NVCC%%.*} runtime"
    echo "cuda: $so in $found"
  done
  CUDA_PATH_DIRS=$(IFS=:; echo "${dirs[*]}")
  if [ "$LOADER" = system ]; then
    LIBPATH="$P/lib:$CUDA_PATH_DIRS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  else
    LIBPATH="$P/lib/glibc:$P/lib:$CUDA_PATH_DIRS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
  echo "library path: $LIBPATH"
  # Every binary must start (a missing library or symbol shows here).
  local out rc
  for b in "${BINS[@]}"; do
    bin_cmd "$b"
    case "$b" in
      *_test) out=$(timeout 30 "${BIN[@]}" --gtest_list_tests 2>&1) ;;
      surge) out=$(timeout 30 "${BIN[@]}" --help 2>&1) ;;
      *) out=$(timeout 30 "${BIN[@]}" --helpshort 2>&1) ;;
    esac
    rc=$?
    if [ $rc -ge 124 ] || grep -qE "error while loading shared libraries|version .GLIBC|symbol lookup error|cannot open shared object" <<< "$out"; then
      echo "$out" | head -n 20
      die "bin/$b does not start here (exit $rc)"
    fi
  done
  echo "binaries: all ${#BINS[@]} start"

  stage "GPU"
  local smi=""
  for d in nvidia-smi /usr/local/nvidia/bin/nvidia-smi /usr/bin/nvidia-smi; do
    if command -v "$d" > /dev/null 2>&1; then
      smi=$("$d" --query-gpu=name,memory.total,driver_version --format=csv,noheader 2> /dev/null | head -n 4)
      break
    fi
  done
  echo "nvidia-smi: ${smi:-none (no nvidia-smi, or it sees no GPU)}"

  stage "gpu tests (the CUDA path against the CPU reference)"
  export SURGE_FASHION_MNIST_DIR="$DATA"
  : > "$OUT/gpu_tests.log"
  local t n_ok n_fail n_skip skipped_all=1 any_ran=0 skip_reason="" tests_line=""
  for t in cnn_cuda_test cuda_trainer_test; do
    bin_cmd "$t"
    timeout -k 10 "$(cap "$TIME_TESTS")" "${BIN[@]}" --gtest_color=no > "$OUT/$t.tmp" 2>&1
    rc=$?
    cat "$OUT/$t.tmp" >> "$OUT/gpu_tests.log"
    grep -E '^\[ *(OK|FAILED|SKIPPED) *\].*\([0-9]+ ms\)$|^device:|max \|gpu|worst rel|Failure|Skipped|no GPU here|^step ' "$OUT/$t.tmp" | head -n 80
    n_ok=$(grep -cE '^\[ +OK \].*\([0-9]+ ms\)$' "$OUT/$t.tmp")
    n_fail=$(grep -cE '^\[  FAILED  \].*\([0-9]+ ms\)$' "$OUT/$t.tmp")
    n_skip=$(grep -cE '^\[  SKIPPED \].*\([0-9]+ ms\)$' "$OUT/$t.tmp")
    [ -z "$skip_reason" ] && skip_reason=$(grep -m1 -o 'no GPU here.*' "$OUT/$t.tmp")
    rm -f "$OUT/$t.tmp"
    echo "$t: exit $rc, $n_ok passed, $n_fail failed, $n_skip skipped"
    tests_line+="${tests_line:+; }$t: $n_ok passed, $n_fail failed, $n_skip skipped (exit $rc)"
    if [ "$n_ok" -gt 0 ] || [ "$n_fail" -gt 0 ]; then any_ran=1; fi
    if [ "$n_skip" -eq 0 ] || [ "$n_ok" -gt 0 ] || [ "$n_fail" -gt 0 ]; then skipped_all=0; fi
    if [ $rc -ne 0 ] || [ "$n_fail" -gt 0 ]; then
      fail "$t: exit $rc, $n_fail failed (gpu_tests.log)"
    fi
  done
  GPU=1
  if [ "$skipped_all" = 1 ] && [ "$any_ran" = 0 ]; then
    GPU=0
    echo
    echo "run.sh: ****************************************************************"
    echo "run.sh: NO GPU PRESENT: the gpu tests skipped ($skip_reason)."
    echo "run.sh: Nothing below runs on a GPU; only the CPU wiring check follows."
    echo "run.sh: ****************************************************************"
    [ -n "$smi" ] && fail "nvidia-smi sees a GPU ($smi) but CUDA cannot use it: $skip_reason"
  elif [ "$skipped_all" = 0 ] && grep -q 'SKIPPED \]' "$OUT/gpu_tests.log"; then
    fail "some gpu tests skipped while others ran (gpu_tests.log)"
  fi

  stage "samples/s"
  local bench_ok=1
  bin_cmd trainer_bench
  if [ "$GPU" = 1 ]; then
    echo "trainer_bench --backend=cuda (CudaTrainer steps: 2 micro-batches, noise statistics, Adam)"
    timeout -k 10 "$(cap "$TIME_BENCH")" "${BIN[@]}" --backend=cuda --data_dir="$DATA" \
      --batch_sizes=1,8,64,512,1164 --seconds=2 --repeats=2 > "$OUT/bench.log" 2>&1
    rc=$?
    cat "$OUT/bench.log"
    [ $rc -eq 0 ] || { fail "trainer_bench --backend=cuda: exit $rc (bench.log)"; bench_ok=0; }
  else
    echo "no GPU: trainer_bench --backend=cuda must refuse clearly; --backend=cpu, tiny, proves the data wiring"
    timeout -k 10 60 "${BIN[@]}" --backend=cuda --data_dir="$DATA" --batch_sizes=8 --seconds=0.2 \
      --repeats=1 > "$OUT/bench.log" 2>&1
    rc=$?
    if [ $rc -ne 0 ] && grep -q -- '--backend=cuda' "$OUT/bench.log"; then
      echo "  --backend=cuda refused (exit $rc): $(grep -m1 -- '--backend=cuda' "$OUT/bench.log")"
    else
      fail "trainer_bench --backend=cuda without a GPU: exit $rc, expected a clear refusal (bench.log)"
    fi
    timeout -k 10 "$(cap "$TIME_BENCH")" "${BIN[@]}" --backend=cpu --pytorch=false --data_dir="$DATA" \
      --batch_sizes=8,64 --seconds=0.3 --repeats=1 --warmup_steps=1 >> "$OUT/bench.log" 2>&1
    rc=$?
    tail -n 4 "$OUT/bench.log"
    [ $rc -eq 0 ] || { fail "trainer_bench --backend=cpu: exit $rc (bench.log)"; bench_ok=0; }
  fi

  local sweep_line=""
  if [ "${SWEEP:-1}" != 0 ]; then
    stage "probe sweep against a bundled surge-server"
    bin_cmd surge-server
    "${BIN[@]}" --listen=127.0.0.1:0 --port_file="$WORK/port" --db="$WORK/surge.db" --http= \
      --shutdown_grace_s=2 > "$OUT/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 200); do
      [ -s "$WORK/port" ] && break
      kill -0 "$SERVER_PID" 2> /dev/null || break
      sleep 0.1
    done
    if [ ! -s "$WORK/port" ]; then
      tail -n 20 "$OUT/server.log"
      fail "surge-server did not start (server.log)"
    else
      local server backend job betas out_job start limit
      server="127.0.0.1:$(cat "$WORK/port")"
      echo "surge-server on $server (db $WORK/surge.db)"
      local common=()
      if [ "$GPU" = 1 ]; then
        backend=cuda
        common=(--batch_sizes="${SWEEP_BATCHES:-1,2,4,8,16,32,64,128,256,512,1024}"
          --seeds="${SWEEP_SEEDS:-3}" --targets="${SWEEP_TARGETS:-0.6,0.45}" --initial_lrs=8
          --lrs_per_decade=8 --edge_margin=2 --max_lrs=16 --eval_size=1000 --warm_steps=20
          --probe_steps=10 --lr_start=1e-3 --threads="${SWEEP_THREADS:-4}")
      else
        backend=cpu
        common=(--batch_sizes="${SWEEP_BATCHES:-1,4,16,64}" --seeds="${SWEEP_SEEDS:-1}"
          --targets="${SWEEP_TARGETS:-1.6,1.2}" --initial_lrs=3 --lrs_per_decade=4 --edge_margin=1
          --max_lrs=5 --eval_size=200 --warm_steps=2 --probe_steps=3 --base_eval_every=10
          --lr_start=1e-3 --threads="${SWEEP_THREADS:-2}")
      fi
      : > "$OUT/sweep.log"
      echo "job,stage,checkpoint_step,stage_loss,batch_size,lr,seed,improvement" > "$OUT/probes.csv"
      bin_cmd surge-train
      for job in "$backend-adam" "$backend-sign"; do
        case "$job" in
          *-sign) betas=(--beta1=0 --beta2=0) ;;
          *) betas=(--beta1=0.9 --beta2=0.999) ;;
        esac
        start=$SECONDS
        echo "-- $job: surge-train probe --backend=$backend ${betas[*]} ${common[*]}" | tee -a "$OUT/sweep.log"
        # --foreground: one SIGTERM only (a second one makes surge-train quit
        # at once, unflushed); the first stops it cleanly, results kept.
        limit=$(cap "$TIME_SWEEP")
        timeout --foreground -k 30 "$limit" "${BIN[@]}" probe --backend="$backend" --server="$server" \
          --job="$job" --work_dir="$WORK/$job" --data_dir="$DATA" --progress=false "${betas[@]}" \
          "${common[@]}" > "$WORK/$job.log" 2>&1
        rc=$?
        cat "$WORK/$job.log" >> "$OUT/sweep.log"
        [ $rc -eq 0 ] || tail -n 15 "$WORK/$job.log"
        out_job=$(grep -E '^probe: [0-9]+ probes run|^streamed to' "$WORK/$job.log" | tr '\n' ' ')
        echo "   exit $rc after $((SECONDS - start)) s: $out_job"
        sweep_line+="${sweep_line:+; }$job: exit $rc, $((SECONDS - start)) s, $(grep -oE '[0-9]+ probes run' <<< "$out_job" || echo 'no probe count')"
        if [ $rc -eq 130 ] || [ $rc -eq 124 ]; then
          warn "$job: the sweep ran past its $limit s (TIME_SWEEP, DEADLINE) and was stopped (partial results fitted)"
        elif [ $rc -ne 0 ]; then
          fail "$job: surge-train probe exit $rc (sweep.log)"
        fi
        [ -f "$WORK/$job/probes.csv" ] && tail -n +2 "$WORK/$job/probes.csv" | sed "s/^/$job,/" >> "$OUT/probes.csv"
      done
      stage "surge CLI against the server"
      bin_cmd surge
      sleep 1
      out=$(timeout 30 "${BIN[@]}" --server="$server" jobs 2>&1)
      rc=$?
      echo "-- surge jobs" >> "$OUT/sweep.log"
      echo "$out" | tee -a "$OUT/sweep.log"
      if [ $rc -eq 0 ]; then
        for job in "$backend-adam" "$backend-sign"; do
          grep -q -- "$job" <<< "$out" || fail "surge jobs does not list $job"
        done
      else
        fail "surge jobs: exit $rc against $server"
      fi
      for job in "$backend-adam" "$backend-sign"; do
        echo "-- surge fit --job $job" | tee -a "$OUT/sweep.log"
        timeout 60 "${BIN[@]}" --server="$server" fit --job "$job" 2>&1 | tee -a "$OUT/sweep.log"
        rc=${PIPESTATUS[0]}
        [ "$rc" -eq 0 ] || fail "surge fit --job $job: exit $rc (sweep.log)"
      done
    fi
    stop_server
  fi

  stage "summary"
  {
    echo "bundle:   commit $BUNDLE_COMMIT (nvcc $BUNDLE_NVCC, sm $BUNDLE_CUDA_ARCHS), $LOADER glibc loader"
    if [ "$GPU" = 1 ]; then
      echo "device:   ${smi:-$(grep -m1 '^device:' "$OUT/gpu_tests.log" | cut -d' ' -f2-)}"
    else
      echo "device:   NO GPU PRESENT ($skip_reason)"
    fi
    echo "tests:    $tests_line"
    if [ "$GPU" = 1 ] && [ "$bench_ok" = 1 ]; then
      echo "bench:    samples/s on the GPU (best of 2 trials):"
      sed -n '/^ *batch /,$p' "$OUT/bench.log" | sed 's/^/          /'
    fi
    [ -n "$sweep_line" ] && echo "sweep:    $sweep_line"
    echo "time:     $((SECONDS - t0)) s"
    if [ ${#WARNS[@]} -gt 0 ]; then
      echo "warnings:"
      printf '          - %s\n' "${WARNS[@]}"
    fi
    if [ ${#FAILS[@]} -gt 0 ]; then
      echo "VERDICT:  FAIL (${#FAILS[@]}):"
      printf '          - %s\n' "${FAILS[@]}"
    elif [ "$GPU" = 0 ]; then
      echo "VERDICT:  NO GPU: the wiring check passed (binaries, libraries, dataset, server, CLI,"
      echo "          a tiny CPU probe sweep); the GPU check itself did NOT run."
    else
      echo "VERDICT:  PASS${WARNS[0]:+ (with the warnings above)}: the gpu tests ran on the GPU and passed;"
      echo "          bench and GPU sweep done."
    fi
  } | tee "$OUT/summary.txt"
  if [ ${#FAILS[@]} -gt 0 ]; then return 1; fi
  if [ "$GPU" = 0 ]; then return 3; fi
  return 0
}

# cap N: N seconds, or less where the run's DEADLINE (seconds from the start,
# 15 s kept for the summary) comes sooner; at least 5.
cap() {
  local left=$((DEADLINE - (SECONDS - T0) - 15))
  [ "$left" -lt 5 ] && left=5
  if [ "$1" -lt "$left" ]; then echo "$1"; else echo "$left"; fi
}

# BIN: the command line that runs bundled binary $1 with the bundle's libraries.
bin_cmd() {
  if [ "$LOADER" = system ]; then
    BIN=(env "LD_LIBRARY_PATH=$LIBPATH" "$P/bin/$1")
  else
    BIN=("$P/lib/glibc/ld-linux-x86-64.so.2" --library-path "$LIBPATH" "$P/bin/$1")
  fi
}

SERVER_PID=""
WORK=""
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  stop_server
  [ -n "$WORK" ] && [ "${KEEP_WORK:-0}" = 0 ] && rm -rf "$WORK"
}
stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill -TERM "$SERVER_PID" 2> /dev/null
    wait "$SERVER_PID" 2> /dev/null || true
    SERVER_PID=""
  fi
}

main "$@" 2>&1 | tee "$OUT/run.log"
exit "${PIPESTATUS[0]}"
RUNNER
chmod +x "$BUNDLE/run.sh"
# shellcheck disable=SC2094  # SHA256SUMS itself is excluded from the list
(cd "$BUNDLE" && find . -type f ! -name SHA256SUMS -print0 | sort -z | xargs -0 sha256sum > SHA256SUMS)

size_kib=$(du -sk "$BUNDLE" | cut -f1)
size_mib=$(( (size_kib + 1023) / 1024 ))
echo "== $BUNDLE/: ${size_mib} MiB: payload.tar.xz $(du -sk "$BUNDLE/payload.tar.xz" | cut -f1) KiB (unpacked: binaries $(du -sk "$STAGE/bin" | cut -f1) KiB, libraries $(du -sk "$STAGE/lib" | cut -f1) KiB in $(find "$STAGE/lib" -type f | wc -l) files), data $(du -sk "$BUNDLE/data" | cut -f1) KiB"
echo "   CUDA libraries left to the device: ${!CUDA_LIBS[*]} (+ libcuda.so.1, the driver)"
[ "$size_mib" -le "$MAX_MIB" ] || die "$BUNDLE/ is ${size_mib} MiB, over MAX_MIB=$MAX_MIB (the device tool carries 64 MiB with the working tree)"
echo "   next: OUT=/tmp/gpu-check $BUNDLE/run.sh here (no GPU: exit 3 after the wiring check), or"
echo "   the device tool's run with carry [\"$BUNDLE\"], command 'OUT=\$OUT $BUNDLE/run.sh', timeout_s 540"
