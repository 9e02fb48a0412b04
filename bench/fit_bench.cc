// Benchmarks of server/fit (Google Benchmark):
//   BM_StageFit  one stage from raw probe points (12 batch sizes x 16 LRs x
//                8 seeds): optimum extraction, surge fit, comparison models.
//   BM_FitJob    a 2-stage job from raw probes, with loss curve, B_simple and
//                speed/data inputs.
//   BM_Advise    one in-process Advise() call on a fitted 2-stage job.
// Targets: a stage fit <= 5 ms, Advise p99 <= 1 ms.
#include <cmath>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "server/fit/advise.h"
#include "server/fit/fit_job.h"

namespace surge::fit {
namespace {

// Probe grid of one stage from a surge law (eps_max, B_noise): per (B, lr, seed)
//   dL = h(B) exp(-(ln lr - ln eps_opt(B))^2 / 2) + noise.
std::vector<ProbePoint> StageProbes(int64_t stage, double loss, double eps_max,
                                    double b_noise, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> n01(0.0, 1.0);
  std::vector<ProbePoint> out;
  for (int e = 3; e <= 14; ++e) {
    const double b = std::ldexp(1.0, e);
    const double x_opt = std::log(eps_max) - std::log(std::cosh(0.5 * std::log(b / b_noise)));
    const double h = 0.5 / (1.0 + b_noise / b);
    const double sd = 0.02 * h * std::sqrt(64.0 / b) + 0.002 * h;
    for (int j = 0; j < 16; ++j) {
      const double lr = 3e-5 * std::pow(std::sqrt(2.0), j);
      const double d = std::log(lr) - x_opt;
      for (int s = 0; s < 8; ++s) {
        out.push_back({stage, loss, b, lr, s, h * std::exp(-0.5 * d * d) + sd * n01(rng)});
      }
    }
  }
  return out;
}

JobInput TwoStageJob() {
  JobInput in;
  in.probe_points = StageProbes(1, 2.0, 1e-3, 200.0, 1);
  const auto s2 = StageProbes(2, 1.5, 1.2e-3, 450.0, 2);
  in.probe_points.insert(in.probe_points.end(), s2.begin(), s2.end());
  for (int run = 0; run < 4; ++run) {
    for (int64_t t = 0; t <= 20000; t += 20) {
      in.loss_curve.push_back({t, 1.2 + 5.0 / std::sqrt(1.0 + t) + 0.01 * run});
    }
  }
  for (int64_t t = 0; t < 2000; ++t) {
    in.grad_stats.push_back({"plain-256", t, 2.0 + 400.0 / 32, 2.0 + 400.0 / 256, 32, 256});
  }
  for (double b : {32.0, 64.0, 128.0, 256.0, 512.0, 1024.0}) {
    in.speed_points.push_back({1.5, b, 1000.0 + 256000.0 / b});
  }
  return in;
}

void BM_StageFit(benchmark::State& state) {
  const std::vector<ProbePoint> probes = StageProbes(1, 2.0, 1e-3, 400.0, 7);
  for (auto _ : state) {
    absl::StatusOr<StageFit> st = FitStage(1, 2.0, probes, {});
    if (!st.ok()) state.SkipWithError(std::string(st.status().message()).c_str());
    benchmark::DoNotOptimize(st);
  }
}
BENCHMARK(BM_StageFit)->Unit(benchmark::kMillisecond);

void BM_FitJob(benchmark::State& state) {
  const JobInput in = TwoStageJob();
  for (auto _ : state) {
    absl::StatusOr<JobFit> job = FitJob(in);
    if (!job.ok()) state.SkipWithError(std::string(job.status().message()).c_str());
    benchmark::DoNotOptimize(job);
  }
}
BENCHMARK(BM_FitJob)->Unit(benchmark::kMillisecond);

void BM_Advise(benchmark::State& state) {
  const absl::StatusOr<JobFit> job = FitJob(TwoStageJob());
  if (!job.ok()) {
    state.SkipWithError(std::string(job.status().message()).c_str());
    return;
  }
  double b = 16.0;
  int64_t step = 0;
  for (auto _ : state) {
    absl::StatusOr<Advice> adv = Advise(*job, b, step);
    benchmark::DoNotOptimize(adv);
    b = b < 8192.0 ? b * 1.37 : 16.0;
    step = (step + 997) % 40000;
  }
}
BENCHMARK(BM_Advise)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace surge::fit

BENCHMARK_MAIN();
