// Implementation of TransferLr (see transfer.h for the formulas).
#include "server/fit/transfer.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"
#include "server/fit/models.h"

namespace surge::fit {

absl::Status ValidateReference(const LrReference& ref) {
  if (!std::isfinite(ref.batch_size) || ref.batch_size <= 0.0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "reference.batch_size must be finite and > 0 (the batch size the LR was tuned at), got ",
        ref.batch_size));
  }
  if (!std::isfinite(ref.lr) || ref.lr <= 0.0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "reference.lr must be finite and > 0 (the LR tuned at reference.batch_size), got ",
        ref.lr));
  }
  if (ref.step.has_value() && *ref.step < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("reference.step must be >= 0, got ", *ref.step));
  }
  if (ref.loss.has_value() && (!std::isfinite(*ref.loss) || *ref.loss <= 0.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("reference.loss must be finite and > 0, got ", *ref.loss));
  }
  if (ref.step.has_value() && ref.loss.has_value()) {
    return absl::InvalidArgumentError(
        "reference.step and reference.loss are exclusive: give the step or the loss the LR "
        "was tuned at, not both");
  }
  return absl::OkStatus();
}

absl::StatusOr<LrTransfer> TransferLr(const CriterionView& view, const LrReference& ref,
                                      double ref_loss, double batch_size, double loss) {
  const std::vector<StageFit>& stages = *view.stages;
  const double x = std::log(batch_size), x0 = std::log(ref.batch_size);
  const double ln_l = std::log(loss), ln_l0 = std::log(ref_loss);
  LrTransfer t;
  t.reference = ref;
  t.reference_loss = ref_loss;
  t.reference_other_stage = std::fabs(ln_l - ln_l0) > 1e-9;
  const StageBracket b = BracketLoss(stages, ln_l);
  const StageBracket b0 = BracketLoss(stages, ln_l0);
  t.reference_extrapolated_in_loss = b0.extrapolated;

  CurvePrediction ln_ratio;
  if (!t.reference_other_stage) {
    ln_ratio = PredictModels(view, b, ln_l, x, x0).average;
  } else {
    // Separate stages: d_m = mu_m(B, L) - mu_m(B0, L0), var_m added, weights
    // averaged over the two losses.
    const ModelPredictions at = PredictModels(view, b, ln_l, x, std::nullopt);
    const ModelPredictions at0 = PredictModels(view, b0, ln_l0, x0, std::nullopt);
    std::vector<double> w(at.weights.size(), 0.0);
    std::vector<CurvePrediction> d(at.weights.size());
    for (size_t m = 0; m < w.size(); ++m) {
      if (at.weights[m] <= 0.0 || at0.weights[m] <= 0.0) continue;
      w[m] = 0.5 * (at.weights[m] + at0.weights[m]);
      d[m].mean = at.predictions[m].mean - at0.predictions[m].mean;
      d[m].var = at.predictions[m].var + at0.predictions[m].var;
      d[m].scatter = at.predictions[m].scatter + at0.predictions[m].scatter;
    }
    ln_ratio = ModelAverage(w, d);
  }
  if (!std::isfinite(ln_ratio.mean) || !std::isfinite(ln_ratio.var)) {
    return absl::FailedPreconditionError(
        "no model gives a finite LR ratio between the reference and the asked batch size");
  }
  t.ratio = std::exp(ln_ratio.mean);
  t.ln_ratio_se = std::sqrt(ln_ratio.PredictionVar());
  t.ln_ratio_curve_se = std::sqrt(ln_ratio.var);
  t.lr = ref.lr * t.ratio;
  t.lr_ci95 = {ref.lr * std::exp(ln_ratio.mean - kZ95 * t.ln_ratio_se),
               ref.lr * std::exp(ln_ratio.mean + kZ95 * t.ln_ratio_se)};
  t.lr_curve_ci95 = {ref.lr * std::exp(ln_ratio.mean - kZ95 * t.ln_ratio_curve_se),
                     ref.lr * std::exp(ln_ratio.mean + kZ95 * t.ln_ratio_curve_se)};
  t.linear_rule_lr = ref.lr * batch_size / ref.batch_size;
  t.sqrt_rule_lr = ref.lr * std::sqrt(batch_size / ref.batch_size);
  const CurvePrediction level = PredictModels(view, b0, ln_l0, x0, std::nullopt).average;
  if (std::isfinite(level.mean)) t.fitted_lr_at_reference = std::exp(level.mean);

  // The reference is inside the job's data when B0 lies within the batch
  // sizes of the stages bracketing L0.
  double b_min = HUGE_VAL, b_max = 0.0;
  for (size_t i : std::set<size_t>{b0.i0, b0.i1}) {
    b_min = std::min(b_min, stages[i].batch_min);
    b_max = std::max(b_max, stages[i].batch_max);
  }
  t.reference_outside_data = ref.batch_size < b_min * (1.0 - 1e-9) ||
                             ref.batch_size > b_max * (1.0 + 1e-9);
  return t;
}

}  // namespace surge::fit
