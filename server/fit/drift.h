// Peak drift across stages: how B_noise and eps_max move as the loss falls.
//
// Over the stages whose surge peak is identified (s = 1..S, l_s = ln L_s):
//   ln B_noise_s = c0 + c1 l_s,  c1 = -1 / alpha   (Kaplan: B_noise ~ L^(-1/alpha_B)),
//   ln eps_max_s = d0 + d1 l_s                      (a smooth, linear trend),
// each by weighted least squares with weights 1 / var_s (the stage fit's
// variances), coefficient covariances scaled by max(1, chi2 / (S - 2)).
// Because a_s and b_s of one stage are correlated, the cross-covariance of
// the two coefficient vectors is carried too:
//   theta_b = K_b y_b, theta_a = K_a y_a, K = (X^T W X)^-1 X^T W,
//   Cov(theta_a, theta_b) = K_a diag(cov(a_s, b_s)) K_b^T.
// alpha = -1 / c1 with se(alpha) = se(c1) / c1^2.
// With one identified stage (or all at one loss) the fit is a constant: that
// stage's (a, b) and covariance (mode kConstant).
//
// Thread-safety: pure functions; DriftFit is read-only after FitDrift.
#ifndef SURGE_SERVER_FIT_DRIFT_H_
#define SURGE_SERVER_FIT_DRIFT_H_

#include <cstdint>
#include <vector>

#include "Eigen/Core"
#include "server/fit/fit_types.h"

namespace surge::fit {

// One stage's identified surge fit.
struct DriftStage {
  int64_t stage_id = 0;
  double ln_loss = NAN;
  double a = NAN;  // ln eps_max
  double b = NAN;  // ln B_noise
  Eigen::Matrix2d cov = Eigen::Matrix2d::Constant(NAN);  // of (a, b)
};

enum class DriftMode { kNone, kConstant, kLinear };
const char* DriftModeName(DriftMode m);

// (a, b) at one loss with their joint covariance.
struct DriftPoint {
  double a = NAN;
  double b = NAN;
  Eigen::Matrix2d cov = Eigen::Matrix2d::Constant(NAN);
};

struct DriftFit {
  DriftMode mode = DriftMode::kNone;
  std::vector<int64_t> stage_ids;  // stages used
  Eigen::Vector2d b_coef = Eigen::Vector2d::Constant(NAN);  // c0, c1
  Eigen::Vector2d a_coef = Eigen::Vector2d::Constant(NAN);  // d0, d1
  // Joint covariance of (d0, d1, c0, c1), scaled.
  Eigen::Matrix4d cov = Eigen::Matrix4d::Constant(NAN);
  Estimate alpha;         // -1 / c1 (NaN unless kLinear)
  double ln_loss_min = NAN;
  double ln_loss_max = NAN;

  // (a, b) at ln L; mode kNone gives NaNs.
  DriftPoint Evaluate(double ln_loss) const;
};

// Fits the drift over the given stages (those with finite a, b and
// covariance; others are ignored).
DriftFit FitDrift(const std::vector<DriftStage>& stages);

}  // namespace surge::fit

#endif  // SURGE_SERVER_FIT_DRIFT_H_
