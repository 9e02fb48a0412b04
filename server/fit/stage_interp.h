// What Advise() and the LR transfer share: the criterion's view of a JobFit,
// the loss a run at batch B has reached at step t, the stages bracketing a
// loss, and per-model predictions interpolated in ln L between them.
//
// Interpolation (see docs/fitting.md, "Advice"): with stages s0, s1 bracketing
// ln L and lambda = (ln L - ln L0) / (ln L1 - ln L0),
//   w_m = (1 - lambda) w_m(s0) + lambda w_m(s1)
//   mu_m = (1 - lambda) mu_m(s0) + lambda mu_m(s1),  likewise var_m,
// where mu_m, var_m is model m's prediction of either ln eps_opt(x) or of the
// difference ln eps_opt(x) - ln eps_opt(x0) (joint covariance, so errors
// common to both batch sizes cancel). With a linear drift fit the surge
// model's prediction comes from the drift point (a(L), b(L)) instead:
//   ln eps_opt(x) = a - ln cosh((x - b) / 2),  gradient [1, tanh((x - b) / 2) / 2].
// A surge limit (data on one side of the peak) adds, to a difference, the gap
// to the curve whose peak sits at the bound B_noise >= b (or <= b) as a
// systematic term: var += ((D_limit - D_b) / 1.96)^2.
#ifndef SURGE_SERVER_FIT_STAGE_INTERP_H_
#define SURGE_SERVER_FIT_STAGE_INTERP_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/fit/fit_job.h"
#include "server/fit/fit_types.h"
#include "server/fit/model_curve.h"

namespace surge::fit {

// The stages and drift one criterion answers with.
struct CriterionView {
  const std::vector<StageFit>* stages = nullptr;
  const DriftFit* drift = nullptr;
  bool run_based = false;  // any stage stands on training runs
};
CriterionView ViewFor(const JobFit& fit, Criterion criterion);

// The loss a run at batch B has reached at `step`: by the speed/data fits when
// the view is run-based ("speed_data"), else by the job's loss curve
// ("loss_curve"). Errors: kFailedPrecondition (no way to map a step).
struct StepLoss {
  double loss = NAN;
  bool extrapolated = false;
  std::string mapping;  // "speed_data" or "loss_curve"
};
absl::StatusOr<StepLoss> LossForStep(const JobFit& fit, const CriterionView& view,
                                     double batch_size, int64_t step);

// The stages (ascending loss, non-empty) bracketing ln L: indices and the
// interpolation weight lambda; outside the range, the nearest stage
// (extrapolated set when strictly outside).
struct StageBracket {
  size_t i0 = 0;
  size_t i1 = 0;
  double lambda = 0.0;
  bool extrapolated = false;
};
StageBracket BracketLoss(const std::vector<StageFit>& stages, double ln_l);

// Per-model weights w_m and predictions at ln L of ln eps_opt(x) (x0 absent)
// or of ln eps_opt(x) - ln eps_opt(x0) (x0 given). Models with w_m = 0 keep
// a NaN prediction.
struct ModelPredictions {
  std::vector<double> weights;
  std::vector<CurvePrediction> predictions;
  CurvePrediction average;  // ModelAverage of the two
};
ModelPredictions PredictModels(const CriterionView& view, const StageBracket& bracket,
                               double ln_l, double x, std::optional<double> x0);

}  // namespace surge::fit

#endif  // SURGE_SERVER_FIT_STAGE_INTERP_H_
