#!/usr/bin/env bash
# The trainer's GPU checks, for a GPU machine that can BUILD the project (one
# short script): builds the CUDA path, runs the gpu-labelled tests (the CUDA
# path against the CPU reference, layer by layer and over five Adam steps, and
# CudaTrainer against CpuTrainer; they must run, not skip), measures GPU
# samples/s, and runs a paper-scale probe sweep (batch sizes 1-1164, both
# optimizers) with the probes on the GPU, timed, then prints the fits.
#
#   scripts/gpu_check.sh                 # everything (~5-10 min on one GPU)
#   SWEEP=0 scripts/gpu_check.sh         # test and benchmark only
#
# Needs the Debian packages of scripts/setup.sh (run it first where apt is
# reachable) and nvcc. CUDA_ARCHS (default 80;90) sets the architectures.
#
# A lent device machine (the device tool's `run`) cannot run this script: it
# starts bare (no network, none of the Debian dev libraries, no Fashion-MNIST
# package). There, use the bundle route instead: scripts/gpu_bundle.sh HERE
# builds the binaries and packs them with their libraries and the data into
# gpu-bundle/; the device runs `OUT=$OUT gpu-bundle/run.sh` (carry
# ["gpu-bundle"]): the same tests, benchmark and a shorter GPU sweep. See
# docs/trainer.md, "Running the GPU check on a lent device".
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-gpu}
ARCHS=${CUDA_ARCHS:-80;90}
OUT=${OUT:-$BUILD_DIR/gpu-check}
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
echo "== build ($BUILD_DIR, CUDA architectures $ARCHS)"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CUDA_ARCHITECTURES=$ARCHS" > "$BUILD_DIR.configure.log" 2>&1 \
  || { cat "$BUILD_DIR.configure.log"; exit 1; }
grep -q "trainer CUDA path enabled" "$BUILD_DIR.configure.log" || { echo "gpu_check: nvcc not found by CMake" >&2; exit 1; }
cmake --build "$BUILD_DIR" -j "$(nproc)" --target cnn_cuda_test cuda_trainer_test surge-train \
  trainer_bench surge-server surge

echo "== gpu tests: CUDA path vs CPU reference; CudaTrainer vs CpuTrainer"
for t in cnn_cuda_test cuda_trainer_test; do
  "$BUILD_DIR/tests/trainer/$t" | tee "$BUILD_DIR.$t.log"
  if grep -q "SKIPPED \]" "$BUILD_DIR.$t.log"; then
    echo "gpu_check: $t skipped: no usable GPU" >&2
    exit 1
  fi
done

echo "== samples/s on the GPU (CudaTrainer steps, 2 micro-batches, Adam)"
"$BUILD_DIR/bench/trainer_bench" --backend=cuda --batch_sizes=1,8,64,512,1164 --seconds=2

[ "${SWEEP:-1}" = "0" ] && exit 0
echo "== GPU probe sweep, batch sizes 1-1164 (probes on the GPU; base run on the CPU)"
mkdir -p "$OUT"
rm -f "$OUT/port"
"$BUILD_DIR/server/surge-server" --listen=127.0.0.1:0 --port_file="$OUT/port" --db="$OUT/surge.db" \
  > "$OUT/server.log" 2>&1 &
SERVER_PID=$!
trap 'kill -TERM $SERVER_PID 2>/dev/null || true; wait $SERVER_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$OUT/port" ] && break; sleep 0.1; done
[ -s "$OUT/port" ] || { echo "gpu_check: surge-server did not start (see $OUT/server.log)" >&2; exit 1; }
export SURGE_SERVER="127.0.0.1:$(cat "$OUT/port")"
BATCHES=1,2,3,4,6,8,12,16,24,32,48,64,96,128,192,256,384,512,768,1024,1164
for job in gpu-adam gpu-sign; do
  case "$job" in
    *-sign) BETAS=(--beta1=0 --beta2=0) ;;
    *) BETAS=(--beta1=0.9 --beta2=0.999) ;;
  esac
  start=$(date +%s)
  "$BUILD_DIR/client/trainer/surge-train" probe --backend=cuda --job "$job" --work_dir="$OUT/$job" \
    "${BETAS[@]}" --batch_sizes=$BATCHES --seeds=8 --targets=0.6,0.45 --initial_lrs=8 \
    --lrs_per_decade=8 --edge_margin=2 --max_lrs=24 --eval_size=1000 --warm_steps=20 \
    --probe_steps=10 --lr_start=1e-3 --threads=4 --progress=false
  echo "== $job: GPU sweep took $(( $(date +%s) - start )) s"
done
sleep 2
for job in gpu-adam gpu-sign; do
  "$BUILD_DIR/client/surge" fit --job "$job"
done
