// "I tuned my LR at batch B0; what at B?": the user's own tuned LR scaled by
// the job's fitted curve of the optimal LR against batch size.
//
//   lr(B) = lr0 * eps_opt(B, L) / eps_opt(B0, L0)
//   ln r  = sum_m w_m d_m,  d_m = ln eps_opt_m(B, L) - ln eps_opt_m(B0, L0)
//   var   = sum_m w_m (var(d_m) + (d_m - ln r)^2)          (Buckland average)
//   95% interval: lr0 * exp(ln r +- 1.96 sqrt(var))
// At one stage (L = L0, the usual case) var(d_m) comes from the model's joint
// parameter covariance, (g(B) - g(B0))^T C (g(B) - g(B0)), so errors common to
// both batch sizes (above all the level) cancel: the ratio's interval is
// narrower than the absolute advice's. When the reference stands at another
// loss (L0 != L, flagged), the two stages' fits are separate and var(d_m) is
// var_m(B, L) + var_m(B0, L0), which is conservative. When the stage's data
// lie on one side of the peak (the surge law reduces to a limit of fixed
// slope +-1/2, no error of its own), the ratio's variance gets the gap to the
// curve with its peak at the B_noise bound (stage_interp.h).
// For comparison: the linear rule lr0 * B / B0 and the square-root rule
// lr0 * sqrt(B / B0), which the paper shows do not hold for Adam.
#ifndef SURGE_SERVER_FIT_TRANSFER_H_
#define SURGE_SERVER_FIT_TRANSFER_H_

#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/fit/fit_types.h"
#include "server/fit/stage_interp.h"

namespace surge::fit {

// Where the user's LR was tuned: batch size B0 and LR lr0, optionally the
// step (mapped to a loss at B0 as advice steps are) or the loss it was tuned at.
struct LrReference {
  double batch_size = NAN;
  double lr = NAN;
  std::optional<int64_t> step;
  std::optional<double> loss;
};

// kInvalidArgument naming the field (reference.batch_size, reference.lr,
// reference.step, reference.loss) unless B0 and lr0 are finite and > 0, the
// step >= 0 and the loss finite and > 0, and at most one of step and loss is set.
absl::Status ValidateReference(const LrReference& ref);

struct LrTransfer {
  LrReference reference;
  double reference_loss = NAN;  // L0
  double ratio = NAN;           // eps_opt(B, L) / eps_opt(B0, L0), model-averaged
  double ln_ratio_se = NAN;     // prediction SE: curve var + the scatter at B and at B0
  double ln_ratio_curve_se = NAN;  // the curve's own SE of the ratio
  double lr = NAN;              // lr0 * ratio
  Interval lr_ci95;             // 95% prediction interval, LR units
  Interval lr_curve_ci95;       // 95% curve-only interval
  double linear_rule_lr = NAN;  // lr0 * B / B0
  double sqrt_rule_lr = NAN;    // lr0 * sqrt(B / B0)
  double fitted_lr_at_reference = NAN;  // the job's own eps_opt(B0, L0)
  bool reference_outside_data = false;  // B0 outside the batch sizes of the stages used
  bool reference_extrapolated_in_loss = false;  // L0 outside the fitted stages
  bool reference_other_stage = false;   // L0 != L: variances added, not cancelled
};

// The transfer to batch B at loss L from `ref` at loss L0 (ref_loss).
// Errors: kFailedPrecondition (no model gives a finite ratio).
absl::StatusOr<LrTransfer> TransferLr(const CriterionView& view, const LrReference& ref,
                                      double ref_loss, double batch_size, double loss);

}  // namespace surge::fit

#endif  // SURGE_SERVER_FIT_TRANSFER_H_
