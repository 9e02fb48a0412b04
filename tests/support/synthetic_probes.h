// Synthetic probe sweeps with a known surge law, loaded straight into a
// SurgeCore (tests and benchmarks). Same model as scripts/gen_probe_sweep.py:
//   loss curve  L(t) = 0.3 + 2 (1 + t / 200)^-0.6 (plain run "base", batch 32)
//   stage s     eps_opt(B) = eps_max_s / cosh(ln(B / B_noise_s) / 2)
//   probe       dL(B, lr) = dL_opt(B) (1 - 0.35 z^2) + noise, z = ln(lr / eps_opt(B)),
//               dL_opt(B) = 0.05 L0 / (1 + B_noise / B)
#ifndef SURGE_TESTS_SUPPORT_SYNTHETIC_PROBES_H_
#define SURGE_TESTS_SUPPORT_SYNTHETIC_PROBES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "server/core/surge_core.h"

namespace surge::testing {

struct SyntheticStage {
  int64_t step;
  double b_noise;
  double eps_max;
};

struct SweepSpec {
  std::vector<SyntheticStage> stages = {{300, 40.0, 2e-3}, {1500, 160.0, 1.5e-3}};
  std::vector<int64_t> batch_sizes = {2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
  int lrs = 17;              // 1e-5 .. 1e-1, 4 per decade
  int seeds = 4;
  int64_t base_steps = 2000;
  uint32_t seed = 7;
};

double SyntheticLoss(int64_t step);

// Creates `job` (examples) with the base run and every probe run and their
// records. Returns the number of probe runs.
absl::StatusOr<int> LoadSyntheticSweep(core::SurgeCore& core, const std::string& job,
                                       const SweepSpec& spec = {});

}  // namespace surge::testing

#endif  // SURGE_TESTS_SUPPORT_SYNTHETIC_PROBES_H_
