// Advice for one request: the LR for batch size B at training step t (or at
// the latest stage when no step is given), from a precomputed JobFit.
//
// Steps (see docs/fitting.md):
//   0. The criterion's stages: "improvement" (the paper's, default: JobFit::
//      stages, run-based when the job has training runs) or "fastest" (fewest
//      steps to each target, runs only: JobFit::fastest).
//   1. L = the loss a run at batch B reaches at step t: by the speed/data
//      fits across targets when the stages are run-based
//      (LossAtStepForBatch), else loss_curve(t) (flag extrapolated_in_step
//      beyond the data), or the lowest stage loss when no step is given.
//   2. The fitted stages bracketing ln L (nearest one outside the range; flag
//      extrapolated_in_loss). Per model m, its prediction mu_m, var_m of
//      ln eps_opt(B) and its Akaike weight w_m are interpolated linearly in
//      ln L between the two stages. When the drift fit is linear (>= 2 stages
//      with an identified peak), the surge model's prediction comes from the
//      drift (a(L), b(L)) instead, by the delta method with gradient
//      [1, tanh((ln B - b) / 2) / 2].
//   3. ln lr = sum w_m mu_m, var = sum w_m (var_m + (mu_m - mu_bar)^2);
//      95% interval exp(mu_bar +- 1.96 sqrt(var)).
//   4. B_noise (and eps_max) from the drift when linear, else from the nearest
//      stage: a point with a 95% interval, or a one-sided bound.
//   5. With a reference (B0, lr0): lr0 * eps_opt(B) / eps_opt(B0) at the
//      same stage, from the joint covariance (transfer.h).
//   6. Recommended batch size = B_noise (or its bound), with
//      S / S_min = 1 + B_noise / B and E / E_min = 1 + B / B_noise at B.
//
// Cost: a handful of curve evaluations; no allocation beyond the result.
// Thread-safety: pure function of a const JobFit.
#ifndef SURGE_SERVER_FIT_ADVISE_H_
#define SURGE_SERVER_FIT_ADVISE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/fit/fit_job.h"
#include "server/fit/fit_types.h"
#include "server/fit/models.h"
#include "server/fit/transfer.h"

namespace surge::fit {

enum class BNoiseKind { kPoint, kLowerBound, kUpperBound, kUnknown };
const char* BNoiseKindName(BNoiseKind k);

struct ModelWeight {
  std::string model;   // "surge", "sgd", "alpha_form", "power_law", "saturating_surge"
  double weight = 0.0;
  double lr = NAN;     // that model's prediction at B
};

struct AdviceFlags {
  bool extrapolated_in_batch = false;  // B outside [B_min / 10, B_max * 10] of the stages used
  bool extrapolated_in_step = false;   // step outside the loss curve's records
  bool extrapolated_in_loss = false;   // L outside the range of the fitted stages
  bool b_noise_bound_only = false;     // B_noise is a one-sided bound (or unknown)
  bool surge_not_supported = false;    // verdict is not "yes"
  bool short_horizon = false;          // stands on probes only: "best LR for the next k steps"
};

struct Advice {
  double batch_size = 0.0;
  std::optional<int64_t> step;
  double loss = NAN;              // L the advice is for
  double lr = NAN;                // exp(model-averaged ln eps_opt)
  Interval lr_ci95;               // 95% prediction interval for the optimum at B, LR units
  double ln_lr_se = NAN;          // its SE: sqrt(curve var + scatter)
  Interval lr_curve_ci95;         // 95% interval of the fitted curve alone
  double ln_lr_curve_se = NAN;
  BNoiseKind b_noise_kind = BNoiseKind::kUnknown;
  double b_noise = NAN;           // point, or the bound
  Interval b_noise_ci95;          // point: 95%; bound: [bound, inf) or [0, bound]
  double eps_max = NAN;           // NaN unless the peak is identified
  Interval eps_max_ci95;
  std::vector<ModelWeight> model_weights;
  Verdict verdict = Verdict::kUndecided;  // of the nearest stage
  std::string verdict_reason;
  std::vector<int64_t> stages_used;
  int optima_used = 0;            // optima (points + bounds) in those stages
  int probe_points_used = 0;      // raw probe points behind them
  Criterion criterion = Criterion::kImprovement;
  std::string evidence;           // EvidenceNames of the stages used, e.g. "plain_runs"
  int runs_used = 0;              // training runs behind those stages (the most any one used: they share runs)
  std::string step_mapping;       // how the step became a loss: "speed_data", "loss_curve", ""
  double recommended_batch_size = NAN;  // = b_noise
  double steps_ratio = NAN;       // S / S_min = 1 + B_noise / B
  double examples_ratio = NAN;    // E / E_min = 1 + B / B_noise
  AdviceFlags flags;
  // Present when the request gave a reference (B0, lr0): lr0 scaled by the
  // fitted eps_opt(B) / eps_opt(B0) (see transfer.h).
  std::optional<LrTransfer> transfer;
};

// With a reference, Advice::transfer scales the reference's LR by the fitted
// curve at the same stage; a reference tuned at a step or loss sets the
// stage when `step` is absent.
// Errors: kInvalidArgument (batch_size not finite and > 0, negative step, a
// bad reference field, named), kFailedPrecondition (a step was given but the
// job has no loss curve; the fit has no stage).
absl::StatusOr<Advice> Advise(const JobFit& fit, double batch_size,
                              std::optional<int64_t> step,
                              Criterion criterion = Criterion::kImprovement,
                              const std::optional<LrReference>& reference = std::nullopt);

// The loss a run at batch B has reached after t steps, by the speed/data fits
// of the job's targets: S_j(B) = S_min_j + E_min_j / B per target L_j, and
// ln L interpolated linearly in ln S between targets (the end segment beyond
// them, flagged). nullopt without a usable speed/data fit.
struct LossFromSpeed {
  double loss = NAN;
  bool extrapolated = false;
};
std::optional<LossFromSpeed> LossAtStepForBatch(const std::vector<SpeedDataFit>& speed,
                                                double batch_size, double step);

}  // namespace surge::fit

#endif  // SURGE_SERVER_FIT_ADVISE_H_
