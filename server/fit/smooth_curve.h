// A shape-free curve of ln eps_opt against ln B: a penalized (cubic
// smoothing) spline whose smoothness is chosen by a small-sample AICc,
// for data that none of the five laws describes (real optima often rise,
// flatten and wiggle). It joins the model average with an AICc computed from
// its effective number of parameters; it never takes part in the verdict, and
// it predicts only inside the batch sizes it was fitted on (the laws carry
// extrapolation).
//
// With knots t_1 < ... < t_n (the distinct x = ln B of the uncensored
// optima), fitted values g = (f(t_1), ..., f(t_n)) and weights
// W = diag(1/s_i^2) (points at one x merged by inverse-variance weighting):
//   minimize  (y - g)^T W (y - g) + lambda g^T K g,   K = Q R^-1 Q^T,
// where g^T K g = integral f''(x)^2 dx for the natural cubic spline through
// g (Green & Silverman 1994, section 2.1; h_j = t_{j+1} - t_j,
// Q is n x (n-2) with Q[j-1,j] = 1/h_{j-1}, Q[j,j] = -1/h_{j-1} - 1/h_j,
// Q[j+1,j] = 1/h_j; R is (n-2) x (n-2) tridiagonal with R[j,j] =
// (h_{j-1} + h_j)/3, R[j,j+1] = h_j/6). The solution and its hat matrix:
//   g_hat = (W + lambda K)^-1 W y = H y,   edf = tr(H).
// lambda minimizes the small-sample AICc of a linear smoother (Hurvich,
// Simonoff & Tsai 1998, who show that GCV and plain AIC undersmooth at small
// n; with 14 optima GCV chose edf 10.7 of a possible 11.5 on a smooth curve):
//   AICc(lambda) = n ln(RSS_w / n) + 2k + 2k(k + 1) / (n - k - 1),
//   k = edf + 1,  RSS_w = sum w_i (y_i - g_i)^2,
// over a log grid, subject to 2 <= edf <= n - 2.5 (so that AICc is defined:
// n > k + 1). It is the same AICc the model weights use, so the curve enters
// the average with the effective number of parameters it was chosen with. As lambda grows the spline becomes the
// weighted straight line, i.e. the power law: a fit with edf < 2.2 is
// reported as not fitted ("reduces to the power law") so that one curve is
// not counted twice in the average.
//
// Uncertainty (Wahba's Bayesian covariance, which allows for the smoothing
// bias; Nychka 1988 shows its intervals cover on average):
//   Cov(g_hat) = scale (W + lambda K)^-1,  scale = max(1, RSS_w / (n - edf)).
// Between knots f(x) = c(x)^T g_hat (the natural-spline interpolation, linear
// in g): var f(x) = c(x)^T Cov(g_hat) c(x). Outside [t_1, t_n] the curve
// predicts NaN (no weight in the average there).
#ifndef SURGE_SERVER_FIT_SMOOTH_CURVE_H_
#define SURGE_SERVER_FIT_SMOOTH_CURVE_H_

#include <vector>

#include "Eigen/Core"
#include "absl/status/statusor.h"
#include "server/fit/fit_types.h"
#include "server/fit/model_curve.h"

namespace surge::fit {

struct SmoothFit {
  ModelCurve curve;    // kind kSmooth: params = knots then fitted values; cov n x n
  double chi2 = NAN;   // RSS_w over the original (unmerged) uncensored points
  double edf = NAN;    // tr(H)
  double lambda = NAN;
  double scale = 1.0;
  int n = 0;           // uncensored points
};

struct SmoothOptions {
  double min_edf = 2.2;       // below: the power law (not fitted)
  double edf_margin = 2.5;    // edf <= n - edf_margin
  int min_points = 5;
};

// Fits the spline on the uncensored points (bounds are not used).
// Errors: kFailedPrecondition with fewer than min_points distinct batch
// sizes, or when the AICc choice reduces to a straight line.
absl::StatusOr<SmoothFit> FitSmoothCurve(const std::vector<FitPoint>& points,
                                         const SmoothOptions& options = {});

// The spline's ln eps_opt at x with its variance (NaN outside the knots).
// `curve` must be a kSmooth curve from FitSmoothCurve.
CurvePrediction PredictSmooth(const ModelCurve& curve, double x);
// f(x1) - f(x0) with var (c(x1) - c(x0))^T Cov (c(x1) - c(x0)).
CurvePrediction PredictSmoothDifference(const ModelCurve& curve, double x1, double x0);

}  // namespace surge::fit

#endif  // SURGE_SERVER_FIT_SMOOTH_CURVE_H_
