// Held-out batch sizes: does a stage fitted without one batch size's data
// predict the optimum measured at that batch size? (surge-math.md section 5:
// "predictions at held-out batch sizes should land within the reported
// intervals".)
//
// For every stage that FitJob fits from the job's probe points and measured
// optima, and every batch size B with an uncensored optimum in that full-data
// fit (y_B = ln eps_opt measured at B, s_B its SE floored as in the fit,
// max(se, SurgeFitOptions::se_floor)):
//   1. Refit the stage (FitStage) on its probe points and measured optima at
//      all batch sizes != B.
//   2. Predict ln eps_opt at x = ln B from the refit: the model average
//      (PredictAveraged: mu, se_pred, the answer the service gives) and the
//      surge law alone (SurgeLawFit::PredictLnEpsOpt).
//   3. Compare, in ln space (so y_B - mu = ln meas - ln pred):
//        inside     = mu - 1.96 se_pred <= y_B <= mu + 1.96 se_pred
//        z          = (y_B - mu) / sqrt(se_pred^2 + s_B^2)
//        consistent = |z| <= 1.96
//      `inside` ignores the measurement's own error; `z` counts both.
// Kinds:
//   interior      B strictly inside (B_min', B_max'), the uncensored range of
//                 the refit: an interpolation, counted in the coverage.
//   extrapolated  B outside that range: compared and reported, but flagged
//                 and left out of the interior counts.
//   skipped       the refit failed (e.g. fewer than 3 batch sizes left);
//                 `note` says why.
// A batch size with two uncensored optima (probes and a measured optimum)
// gives one result per optimum, sharing one refit.
//
// Cost: one FitStage per (stage, B). Thread-safety: pure functions.
#ifndef SURGE_SERVER_FIT_HOLDOUT_H_
#define SURGE_SERVER_FIT_HOLDOUT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/fit/fit_job.h"
#include "server/fit/fit_types.h"
#include "server/fit/models.h"
#include "server/fit/optimum.h"
#include "server/fit/surge_law.h"

namespace surge::fit {

enum class HoldOutKind { kInterior, kExtrapolated, kSkipped };
const char* HoldOutKindName(HoldOutKind k);  // "interior", "extrapolated", "skipped"

// One prediction of ln eps_opt(B) from the refit, compared with y_B.
struct HoldOutPrediction {
  double ln_mean = NAN;  // mu
  double ln_se = NAN;    // se_pred
  Interval ln_ci95;      // mu +- 1.96 se_pred
  bool inside = false;   // y_B inside ln_ci95
  double z = NAN;        // (y_B - mu) / sqrt(se_pred^2 + s_B^2); NaN if mu or se_pred is not finite
  bool consistent = false;  // |z| <= 1.96
};

struct HoldOutResult {
  int64_t stage_id = 0;
  double stage_loss = NAN;
  double batch_size = 0.0;
  HoldOutKind kind = HoldOutKind::kSkipped;
  std::string note;  // why skipped or extrapolated; empty otherwise

  // The optimum measured at B in the full-data fit.
  double ln_measured = NAN;     // y_B
  double ln_measured_se = NAN;  // s_B (floored)
  SeSource se_source = SeSource::kSeedSpread;

  // The refit without B (NaN / defaults when skipped).
  int refit_optima = 0;  // uncensored optima left
  double refit_batch_min = NAN;
  double refit_batch_max = NAN;
  PeakIdentification refit_identification = PeakIdentification::kNotIdentified;
  Verdict refit_verdict = Verdict::kUndecided;
  std::string refit_top_model;  // the model with the largest Akaike weight
  double refit_top_weight = 0.0;
  HoldOutPrediction averaged;  // model average: what is checked
  HoldOutPrediction surge;     // surge law alone, for comparison
};

// Runs the check over every fitted stage. Results are ordered by stage loss
// (as FitJob orders stages), then batch size. Only probe_points and
// measured_optima of `input` are used. When `full` is not null it receives
// the full-data fit the held-out refits are compared against (so a caller
// that also shows that fit need not fit the job again). Errors: those of
// FitJob (kInvalidArgument for bad input, kFailedPrecondition when no stage
// fits).
absl::StatusOr<std::vector<HoldOutResult>> HoldOutCheck(const JobInput& input,
                                                        const FitOptions& options = {},
                                                        JobFit* full = nullptr);

// Counts over the interior results (of one stage, or of all when unset).
struct HoldOutSummary {
  int interior = 0;         // N
  int consistent = 0;       // K: |z| <= 1.96 (model average)
  int inside = 0;           // M: y_B inside the predicted 95% interval (model average)
  int surge_evaluated = 0;  // interior results with a finite surge-law z
  int surge_consistent = 0;
  int surge_inside = 0;
  double mean_z = NAN;  // mean and root mean square of the model-average z
  double rms_z = NAN;   //   (mean far from 0: predictions systematically off)
  int extrapolated = 0;
  int extrapolated_consistent = 0;
  int skipped = 0;
};
HoldOutSummary SummarizeHoldOut(const std::vector<HoldOutResult>& results,
                                std::optional<int64_t> stage_id = std::nullopt);

}  // namespace surge::fit

#endif  // SURGE_SERVER_FIT_HOLDOUT_H_
