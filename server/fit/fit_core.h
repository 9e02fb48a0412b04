// The robust weighted least-squares machinery every curve fit in server/fit
// shares: censored residuals, the Huber loss, the closed-form/1-D
// minimization over an additive offset (variable projection), and a generic
// Ceres fit of one ModelCurve with its covariance.
//
// Cost minimized by every curve fit (Ceres's convention, 0.5 * sum rho):
//   C(p) = sum_i 0.5 * rho(r_i(p)^2),
//   r_i  = (y_i - f(x_i; p)) / s_i                  for a point,
//   r_i  = min(0, (y_i - f(x_i; p)) / s_i)          for an upper bound y_i,
//   r_i  = max(0, (y_i - f(x_i; p)) / s_i)          for a lower bound y_i,
// with Huber rho(t) = t for t <= k^2 and 2 k sqrt(t) - k^2 above (k = 2 by
// default, in units of s_i). A bound that the curve satisfies costs nothing;
// one it violates costs like a point.
//
// Variance scale factor (reduced chi-square, only inflating):
//   chi2 = 2 C(p_hat),  dof = n_points - n_params  (bounds not counted),
//   scale = max(1, chi2 / dof) when dof >= 1, else 1;
// the covariance returned is scale * (J^T J)^-1 at p_hat (J robustified).
#ifndef SURGE_SERVER_FIT_FIT_CORE_H_
#define SURGE_SERVER_FIT_FIT_CORE_H_

#include <vector>

#include "absl/status/statusor.h"
#include "ceres/ceres.h"
#include "server/fit/fit_types.h"
#include "server/fit/model_curve.h"

namespace surge::fit {

inline constexpr double kDefaultHuberK = 2.0;

// r for one observation given the curve value f (see the file comment).
template <typename T>
T CensoredResidual(double y, const T& f, double s, Censoring c) {
  T r = (T(y) - f) / s;
  if (c == Censoring::kUpperBound && r > T(0.0)) return T(0.0);
  if (c == Censoring::kLowerBound && r < T(0.0)) return T(0.0);
  return r;
}

// 0.5 * rho(r^2) for the Huber loss: 0.5 r^2 if |r| <= k, else k|r| - 0.5 k^2.
double HalfHuber(double r, double k);

// Sum over points of 0.5 rho(r_i^2) for curve values f[i].
double RobustCost(const std::vector<FitPoint>& pts, const double* f, double k);

// Variable projection for curves f = a + g(x): with g_i = g(x_i) fixed,
// minimizes C over the offset a (C is convex, piecewise quadratic in a;
// safeguarded Newton). Without bounds and outliers this is the weighted mean
//   a = sum (y_i - g_i) / s_i^2 / sum 1 / s_i^2.
struct OffsetFit {
  double a = 0.0;
  double cost = 0.0;
};
OffsetFit MinimizeOffset(const std::vector<FitPoint>& pts, const double* g,
                         double huber_k);

// Counts of the observations in a fit.
int CountPoints(const std::vector<FitPoint>& pts);    // uncensored
int CountBounds(const std::vector<FitPoint>& pts);    // censored

// scale = max(1, chi2 / dof) for dof >= 1, else 1.
double VarianceScale(double chi2, int dof);

// Solver and covariance settings used by every fit (small dense problems).
ceres::Solver::Options SmallProblemSolverOptions();
ceres::Covariance::Options SmallProblemCovarianceOptions();

// Result of fitting one ModelCurve.
struct CurveFitResult {
  ModelCurve curve;           // cov already multiplied by `scale`
  double cost = 0.0;          // C(p_hat)
  double chi2 = 0.0;          // 2 C(p_hat)
  int n_points = 0;           // uncensored observations
  int n_bounds = 0;           // censored observations
  int dof = 0;                // n_points - n_params
  double scale = 1.0;         // variance scale factor
  bool covariance_ok = false; // false: cov is NaN
};

// Fits `kind` from `start` with Ceres (Huber loss, DENSE_QR), parameter i
// kept inside bounds[i] (when bounds is non-empty), then computes the
// covariance with ceres::Covariance (DENSE_SVD; near-null directions with
// eigenvalue ratio < 1e-12 are dropped, i.e. a pseudo-inverse).
absl::StatusOr<CurveFitResult> FitCurve(ModelKind kind,
                                        const std::vector<FitPoint>& pts,
                                        const std::vector<double>& start,
                                        const std::vector<Interval>& bounds,
                                        double huber_k);

}  // namespace surge::fit

#endif  // SURGE_SERVER_FIT_FIT_CORE_H_
