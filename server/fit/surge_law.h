// The surge-law fit of one stage's optima (Li et al. 2024, Eq. 2):
//
//   ln eps_opt(B) = a - ln cosh((ln B - b) / 2),  a = ln eps_max, b = ln B_noise,
//
// by robust weighted least squares (fit_core.h: Huber loss, s_i floored at
// 0.05, censored optima as one-sided residuals), started by variable
// projection and refined by Ceres, with ceres::Covariance on (a, b) scaled by
// max(1, chi2 / dof). The interval of ln eps_opt at any B is the delta method
// with gradient [1, tanh((ln B - b) / 2) / 2].
//
// Identifiability: the profile cost P(b) = min_a C(a, b) is scanned over
// b in [ln B_min - 8, ln B_max + 8] (8 is "infinity": ln cosh differs from its
// linear asymptote by < e^-8 there). If P stays within the threshold
// (below) of its minimum at an end of the scan, the data do not pin b on that
// side, and the fit reports the one-sided bound and the identified
// combination instead of a point:
//   all B below the peak: a - b / 2 identified, B_noise >= bound,
//   all B above the peak: a + b / 2 identified, B_noise <= bound.
// Threshold (one-sided 95% profile-likelihood bound): chi2_1 quantile 0.90 =
// 2.7055 on the 2 C = sum rho scale, times the variance scale factor, i.e.
//   P(b) - P_min <= 0.5 * 2.7055 * scale   on Ceres's 0.5 sum rho scale.
//
// Thread-safety: pure functions.
#ifndef SURGE_SERVER_FIT_SURGE_LAW_H_
#define SURGE_SERVER_FIT_SURGE_LAW_H_

#include <vector>

#include "Eigen/Core"
#include "absl/status/statusor.h"
#include "server/fit/fit_types.h"
#include "server/fit/model_curve.h"
#include "server/fit/optimum.h"

namespace surge::fit {

struct SurgeFitOptions {
  double se_floor = 0.05;             // floor of s_i (ln units)
  double huber_k = 2.0;               // Huber threshold, in units of s_i
  double profile_margin = 8.0;        // scan b over [x_min - m, x_max + m]
  double profile_step = 0.1;          // scan step in b
  double profile_chi2 = 2.705543454;  // chi2_1(0.90): one-sided 95% bound
};

// How well the data pin the peak.
enum class PeakIdentification {
  kIdentified,     // b has a closed interval: point estimate + covariance
  kBelowPeak,      // all data below the peak: lower bound on B_noise
  kAbovePeak,      // all data above the peak: upper bound on B_noise
  kNotIdentified,  // open on both sides: no information on B_noise
};
const char* PeakIdentificationName(PeakIdentification p);

struct SurgeLawFit {
  PeakIdentification identification = PeakIdentification::kNotIdentified;
  // The minimizer (a, b) and its scaled covariance; NaN unless kIdentified.
  double ln_eps_max = NAN;
  double ln_b_noise = NAN;
  Eigen::Matrix2d cov = Eigen::Matrix2d::Constant(NAN);
  // kBelowPeak: ln B_noise >= ln_b_noise_bound; kAbovePeak: <=; else NaN.
  double ln_b_noise_bound = NAN;
  // kBelowPeak: a - b/2; kAbovePeak: a + b/2 (with SE); else NaN.
  Estimate combination;
  // What predicts ln eps_opt: kSurge [a, b] when identified (or when nothing
  // is), the one-sided limit curve otherwise.
  ModelCurve curve;
  double cost = 0.0;   // 0.5 sum rho at the optimum
  double chi2 = 0.0;   // 2 * cost
  double scale = 1.0;  // max(1, chi2 / dof)
  int n_points = 0;    // uncensored optima
  int n_bounds = 0;    // censored optima (one-sided residuals)
  int dof = 0;
  double x_min = NAN;  // ln B range of the uncensored optima
  double x_max = NAN;

  // ln B_noise with its SE (NaN unless kIdentified).
  Estimate LnBNoise() const;
  Estimate LnEpsMax() const;
  // ln eps_opt at ln B with its delta-method variance.
  CurvePrediction PredictLnEpsOpt(double ln_b) const { return curve.Predict(ln_b); }
};

// Converts optima into fit points: x = ln B, y = ln eps_opt, s = max(se, floor).
std::vector<FitPoint> ToFitPoints(const std::vector<BatchOptimum>& optima,
                                  double se_floor);

// Fits the surge law. Errors: kInvalidArgument (non-finite point),
// kFailedPrecondition ("need optima at >= 3 batch sizes, have 2", or all
// censored), kInternal (solver failure).
absl::StatusOr<SurgeLawFit> FitSurgeLaw(const std::vector<FitPoint>& points,
                                        const SurgeFitOptions& options = {});

// Checks a fit-point set: finite values, s > 0, >= 3 distinct batch sizes with
// uncensored optima. Used by every curve fit.
absl::Status CheckFitPoints(const std::vector<FitPoint>& points);

}  // namespace surge::fit

#endif  // SURGE_SERVER_FIT_SURGE_LAW_H_
