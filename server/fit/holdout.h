// Held-out batch sizes: does a stage fitted without one batch size's data
// predict the optimum at that batch size, and how good is the predicted LR
// there? (surge-math.md section 5: "predictions at held-out batch sizes
// should land within the reported intervals".)
//
// Stages: every stage FitJob fits, of both criteria: "improvement" stages
// from probe points, measured optima, full runs and plain runs (also the
// short-horizon stages FitJob sets aside when the job has runs), and
// "fastest" stages from steps to a target (full and plain runs). For every
// batch size B with an uncensored optimum in the full-data fit (y_B = ln
// eps_opt measured at B, s_B its SE floored as in the fit,
// max(se, SurgeFitOptions::se_floor)):
//   1. Refit the stage (FitStage / FitFastestStage) on its evidence at all
//      batch sizes != B.
//   2. Predict ln eps_opt at x = ln B from the refit: the model average
//      (PredictAveraged: mu, its prediction SE se_pred and curve-only SE
//      se_curve, the answer the service gives) and the surge law alone
//      (SurgeLawFit::PredictLnEpsOpt, curve-only).
//   3. Compare, in ln space (so y_B - mu = ln meas - ln pred):
//        inside       = mu - 1.96 se_pred <= y_B <= mu + 1.96 se_pred
//        curve_inside = the same with se_curve (the interval before issue 13)
//        z            = (y_B - mu) / sqrt(se_pred^2 + s_B^2)
//        consistent   = |z| <= 1.96
//      `inside` ignores the measurement's own error. `consistent` allows for
//      it: the prediction interval is for the optimum at B, and a
//      measurement of it adds its own independent error s_B, so 95% of
//      measured optima fall within mu +- 1.96 sqrt(se_pred^2 + s_B^2).
//   4. Efficiency at B, read off B's own raw evidence (the data the refit
//      did not see):
//        improvement: share = dL(pred) / max_j dL_j, with dL_j the seed-mean
//          improvement at grid LR j (reached runs only) and dL(y) linear in
//          ln lr between grid LRs (the edge value outside the grid);
//        fastest: share = S_best / S(pred), with S_j the geometric mean over
//          seeds of the steps to L* at grid LR j, S_best the fewest among
//          LRs whose runs all reached L*, and ln S(y) linear in ln lr between
//          grid LRs. When an LR used in the interpolation has a run that never
//          reached L*, S(pred) is only a lower bound and the share an upper
//          bound (`share_bound`).
//      `ceiling` is the same share at B's own full-data optimum y_B: how
//      close measuring B itself comes. NaN where B has no raw evidence
//      (imported optima) or no positive best improvement.
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
// Cost: one stage refit per (stage, B). Thread-safety: pure functions.
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
#include "server/fit/steps_optimum.h"
#include "server/fit/surge_law.h"

namespace surge::fit {

enum class HoldOutKind { kInterior, kExtrapolated, kSkipped };
const char* HoldOutKindName(HoldOutKind k);  // "interior", "extrapolated", "skipped"

// One prediction of ln eps_opt(B) from the refit, compared with y_B.
struct HoldOutPrediction {
  double ln_mean = NAN;  // mu
  double ln_se = NAN;    // se_pred (prediction SE; the curve's SE for the surge law alone)
  Interval ln_ci95;      // mu +- 1.96 se_pred
  bool inside = false;   // y_B inside ln_ci95
  double ln_curve_se = NAN;   // se_curve
  bool curve_inside = false;  // y_B inside mu +- 1.96 se_curve
  double z = NAN;        // (y_B - mu) / sqrt(se_pred^2 + s_B^2); NaN if mu or se_pred is not finite
  bool consistent = false;  // |z| <= 1.96
};

// The share of the best measured outcome at B that an LR achieves (see 4.).
struct HoldOutEfficiency {
  double share = NAN;         // at the predicted LR (model average)
  bool share_bound = false;   // share is an upper bound (fastest, a censored neighbour)
  double ceiling = NAN;       // at B's own full-data optimum
  bool ceiling_bound = false;
  double best_lr = NAN;       // the grid LR with the best outcome
};

struct HoldOutResult {
  Criterion criterion = Criterion::kImprovement;
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
  HoldOutEfficiency efficiency;
};

// Runs the check over every fitted stage. Results are ordered by criterion
// (improvement, then fastest), stage loss, then batch size. When `full` is
// not null it receives the full-data fit (FitJob(input)) the held-out refits
// are compared against: its stages, set_aside and fastest.stages are the
// stages checked. Errors: those of FitJob (kInvalidArgument for bad input,
// kFailedPrecondition when no stage fits).
absl::StatusOr<std::vector<HoldOutResult>> HoldOutCheck(const JobInput& input,
                                                        const FitOptions& options = {},
                                                        JobFit* full = nullptr);

// Counts over the interior results (of one stage and criterion, or of all
// when unset).
struct HoldOutSummary {
  int interior = 0;         // N
  int consistent = 0;       // K: |z| <= 1.96 (model average, measurement error allowed)
  int inside = 0;           // M: y_B inside the 95% prediction interval (model average)
  int curve_inside = 0;     // y_B inside the curve-only 95% interval
  double median_width = NAN;        // median hi/lo ratio of the prediction interval (LR units)
  double median_curve_width = NAN;  // the same for the curve-only interval
  int efficiency_n = 0;             // interior results with a finite share
  double mean_share = NAN;          // mean share at the predicted LR
  double min_share = NAN;           // the worst
  double median_share = NAN;        // robust to one noisy batch size
  double mean_ceiling = NAN;        // mean share at B's own optimum (same results)
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
                                std::optional<int64_t> stage_id = std::nullopt,
                                std::optional<Criterion> criterion = std::nullopt);

}  // namespace surge::fit

#endif  // SURGE_SERVER_FIT_HOLDOUT_H_
