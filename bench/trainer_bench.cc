// trainer_bench: training throughput (samples/s) of surge-train's CPU path at
// batch sizes 8, 64 and 512, side by side with PyTorch CPU on the same
// network, data and optimizer (bench/pytorch_cnn_bench.py, run by this
// binary in the same invocation), and the ratio surge / PyTorch.
//
// One measured unit is a full training step: gather the batch, forward,
// backward (two micro-batches, with the gradient-noise statistics), Adam.
// Each batch size runs `--seconds` after `--warmup_steps`; samples/s =
// steps * B / wall time. Both sides use `--threads` threads. The trials
// alternate between the two sides and the best of each is reported.
//
//   build-trainer/client/trainer/trainer_bench [--threads=2] [--seconds=3]
//   ... trainer_bench --backend=cuda --batch_sizes=8,64,512,1164   (GPU build)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "client/trainer/cpu_trainer.h"
#ifdef SURGE_TRAINER_HAVE_CUDA
#include "client/trainer/cuda/cuda_trainer.h"
#endif

ABSL_FLAG(std::string, batch_sizes, "8,64,512", "comma-separated batch sizes");
ABSL_FLAG(int, threads, 2, "threads for both sides");
ABSL_FLAG(double, seconds, 3.0, "measured seconds per batch size and side");
ABSL_FLAG(int, warmup_steps, 5, "unmeasured steps first");
ABSL_FLAG(int, repeats, 3,
          "trials (each: all batch sizes on both sides); the best of each side is reported, "
          "since a shared machine only ever makes a side slower");
ABSL_FLAG(std::string, data_dir, surge::trainer::kDefaultFashionMnistDir, "Fashion-MNIST dir");
ABSL_FLAG(std::string, python, "/usr/bin/python3", "interpreter with torch");
ABSL_FLAG(bool, pytorch, true, "also run the PyTorch side (cpu backend only)");
ABSL_FLAG(std::string, backend, "cpu", "cpu, or cuda (GPU samples/s; no PyTorch column)");

namespace {

using Clock = std::chrono::steady_clock;

double MeasureSurge(const surge::trainer::Dataset& data, int batch, int threads, double seconds,
                    int warmup) {
  std::unique_ptr<surge::trainer::Trainer> owned;
  if (absl::GetFlag(FLAGS_backend) == "cuda") {
#ifdef SURGE_TRAINER_HAVE_CUDA
    auto gpu = std::make_unique<surge::trainer::cuda::CudaTrainer>(surge::trainer::AdamConfig{},
                                                                   batch);
    gpu->Init(1);
    owned = std::move(gpu);
#else
    std::fprintf(stderr, "trainer_bench: built without CUDA\n");
    std::exit(1);
#endif
  } else {
    auto cpu = std::make_unique<surge::trainer::CpuTrainer>(surge::trainer::AdamConfig{}, threads);
    cpu->Init(1);
    owned = std::move(cpu);
  }
  surge::trainer::Trainer& trainer = *owned;
  surge::trainer::BatchSampler sampler(data.size, 2);
  std::vector<int> idx;
  for (int i = 0; i < warmup; ++i) {
    sampler.Next(batch, &idx);
    trainer.Step(data, idx, 1e-3);
  }
  int64_t steps = 0;
  const auto start = Clock::now();
  double elapsed = 0;
  while (elapsed < seconds) {
    sampler.Next(batch, &idx);
    trainer.Step(data, idx, 1e-3);
    ++steps;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  }
  return steps * batch / elapsed;
}

// Runs the PyTorch bench; returns samples/s per batch size (0 if missing).
std::vector<double> MeasurePytorch(const std::vector<int>& batches, int threads, double seconds,
                                   int warmup, std::string* version) {
  std::string sizes;
  for (int b : batches) sizes += (sizes.empty() ? "" : ",") + std::to_string(b);
  const std::string cmd = absl::StrFormat(
      "%s %s --batch_sizes=%s --threads=%d --seconds=%g --warmup_steps=%d --data_dir=%s",
      absl::GetFlag(FLAGS_python), SURGE_PYTORCH_BENCH, sizes, threads, seconds, warmup,
      absl::GetFlag(FLAGS_data_dir));
  std::vector<double> out(batches.size(), 0.0);
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char line[512];
  // Lines: "torch VERSION" then "B SAMPLES_PER_S".
  while (std::fgets(line, sizeof(line), p) != nullptr) {
    std::vector<std::string> parts = absl::StrSplit(std::string(line), ' ');
    if (parts.size() == 2 && parts[0] == "torch") {
      *version = std::string(absl::StripAsciiWhitespace(parts[1]));
      continue;
    }
    int b = 0;
    double v = 0;
    if (parts.size() == 2 && absl::SimpleAtoi(parts[0], &b) &&
        absl::SimpleAtod(absl::StripAsciiWhitespace(parts[1]), &v)) {
      for (size_t i = 0; i < batches.size(); ++i) {
        if (batches[i] == b) out[i] = v;
      }
    }
  }
  if (pclose(p) != 0) std::fprintf(stderr, "trainer_bench: the PyTorch bench failed: %s\n", cmd.c_str());
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::vector<int> batches;
  for (absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_batch_sizes), ',')) {
    int b = 0;
    if (!absl::SimpleAtoi(s, &b) || b < 1) {
      std::fprintf(stderr, "bad --batch_sizes entry '%s'\n", std::string(s).c_str());
      return 2;
    }
    batches.push_back(b);
  }
  auto data = surge::trainer::LoadFashionMnist(absl::GetFlag(FLAGS_data_dir), "train");
  if (!data.ok()) {
    std::fprintf(stderr, "trainer_bench: %s\n", data.status().ToString().c_str());
    return 1;
  }
  const int threads = absl::GetFlag(FLAGS_threads);
  const double seconds = absl::GetFlag(FLAGS_seconds);
  const int warmup = absl::GetFlag(FLAGS_warmup_steps);
  if (absl::GetFlag(FLAGS_backend) == "cuda") {
#ifdef SURGE_TRAINER_HAVE_CUDA
    std::string why;
    if (!surge::trainer::cuda::DeviceAvailable(&why)) {
      std::fprintf(stderr, "trainer_bench: --backend=cuda: %s\n", why.c_str());
      return 1;
    }
    std::printf("trainer_bench: device %s\n", surge::trainer::cuda::DeviceName().c_str());
#endif
  }
  std::vector<double> ours(batches.size(), 0.0), torch(batches.size(), 0.0);
  std::string version = "n/a";
  const bool with_torch = absl::GetFlag(FLAGS_pytorch) && absl::GetFlag(FLAGS_backend) == "cpu";
  for (int r = 0; r < std::max(1, absl::GetFlag(FLAGS_repeats)); ++r) {
    std::printf("trial %d:", r + 1);
    for (size_t i = 0; i < batches.size(); ++i) {
      const double v = MeasureSurge(*data, batches[i], threads, seconds, warmup);
      ours[i] = std::max(ours[i], v);
      std::printf("  B=%d surge %.0f", batches[i], v);
    }
    if (with_torch) {
      std::vector<double> t = MeasurePytorch(batches, threads, seconds, warmup, &version);
      for (size_t i = 0; i < batches.size(); ++i) {
        torch[i] = std::max(torch[i], t[i]);
        std::printf("  B=%d torch %.0f", batches[i], t[i]);
      }
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  std::printf("trainer_bench: %d threads, %.1f s per point, best of %d trials, torch %s\n",
              threads, seconds, std::max(1, absl::GetFlag(FLAGS_repeats)), version.c_str());
  std::printf("%8s %16s %16s %8s\n", "batch", "surge samples/s", "torch samples/s", "ratio");
  for (size_t i = 0; i < batches.size(); ++i) {
    if (torch[i] > 0) {
      std::printf("%8d %16.0f %16.0f %7.2fx\n", batches[i], ours[i], torch[i], ours[i] / torch[i]);
    } else {
      std::printf("%8d %16.0f %16s %8s\n", batches[i], ours[i], "n/a", "n/a");
    }
  }
  return 0;
}
