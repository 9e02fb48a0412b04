// The penalized spline of smooth_curve.h: Green & Silverman's Q and R, the
// AICc choice of lambda, the Bayesian covariance, and evaluation between knots.
#include "server/fit/smooth_curve.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "Eigen/Dense"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace surge::fit {
namespace {

// G (n x n): gamma = G g gives the spline's second derivatives at the knots
// (rows 0 and n-1 zero: a natural spline), G[1..n-2] = R^-1 Q^T. Also K.
struct SplineMatrices {
  Eigen::MatrixXd g;  // gamma = G g
  Eigen::MatrixXd k;  // penalty Q R^-1 Q^T
};

SplineMatrices BuildMatrices(const Eigen::VectorXd& t) {
  const int n = static_cast<int>(t.size());
  SplineMatrices out;
  out.g = Eigen::MatrixXd::Zero(n, n);
  out.k = Eigen::MatrixXd::Zero(n, n);
  if (n < 3) return out;
  Eigen::MatrixXd q = Eigen::MatrixXd::Zero(n, n - 2);
  Eigen::MatrixXd r = Eigen::MatrixXd::Zero(n - 2, n - 2);
  for (int c = 0; c < n - 2; ++c) {
    const int j = c + 1;  // interior knot
    const double h0 = t(j) - t(j - 1), h1 = t(j + 1) - t(j);
    q(j - 1, c) = 1.0 / h0;
    q(j, c) = -1.0 / h0 - 1.0 / h1;
    q(j + 1, c) = 1.0 / h1;
    r(c, c) = (h0 + h1) / 3.0;
    if (c + 1 < n - 2) r(c, c + 1) = r(c + 1, c) = h1 / 6.0;
  }
  const Eigen::MatrixXd rinv_qt = r.ldlt().solve(q.transpose());  // (n-2) x n
  out.g.block(1, 0, n - 2, n) = rinv_qt;
  out.k = q * rinv_qt;
  return out;
}

// c(x): f(x) = c(x)^T g for the natural cubic spline through (t, g). For x in
// [t_i, t_{i+1}], h = t_{i+1} - t_i, d1 = x - t_i, d2 = t_{i+1} - x:
//   f(x) = (d1 g_{i+1} + d2 g_i) / h
//          - d1 d2 / 6 ((1 + d1/h) gamma_{i+1} + (1 + d2/h) gamma_i),
// and gamma = G g. Empty vector outside [t_1, t_n].
Eigen::VectorXd Coefficients(const Eigen::VectorXd& t, const Eigen::MatrixXd& gmat, double x) {
  const int n = static_cast<int>(t.size());
  const double tol = 1e-9;
  if (n < 2 || !(x >= t(0) - tol && x <= t(n - 1) + tol)) return {};
  int i = 0;
  while (i + 2 < n && x > t(i + 1)) ++i;
  const double h = t(i + 1) - t(i);
  const double d1 = std::clamp(x - t(i), 0.0, h), d2 = h - d1;
  Eigen::VectorXd a = Eigen::VectorXd::Zero(n), b = Eigen::VectorXd::Zero(n);
  a(i) = d2 / h;
  a(i + 1) = d1 / h;
  b(i) = d1 * d2 / 6.0 * (1.0 + d2 / h);
  b(i + 1) = d1 * d2 / 6.0 * (1.0 + d1 / h);
  return a - gmat.transpose() * b;
}

// AICc of a linear smoother with weighted RSS `rss` over n points and
// effective parameters edf (k = edf + 1 for the scale):
//   n ln(rss / n) + 2k + 2k(k + 1) / (n - k - 1).
double SmoothingAicc(double rss, int n, double edf) {
  const double k = edf + 1.0;
  if (n - k - 1.0 <= 0.0) return HUGE_VAL;
  return n * std::log(std::max(rss / n, 1e-300)) + 2.0 * k + 2.0 * k * (k + 1.0) / (n - k - 1.0);
}

// The second-derivative map G of a kSmooth curve: kept from the fit (aux), or
// rebuilt from the knots into `scratch`.
const Eigen::MatrixXd& SecondDerivativeMap(const ModelCurve& curve, const Eigen::VectorXd& t,
                                           Eigen::MatrixXd* scratch) {
  if (curve.aux.rows() == t.size() && curve.aux.cols() == t.size()) return curve.aux;
  *scratch = BuildMatrices(t).g;
  return *scratch;
}

void SplitParams(const ModelCurve& curve, Eigen::VectorXd* t, Eigen::VectorXd* g) {
  const int n = static_cast<int>(curve.params.size() / 2);
  *t = Eigen::Map<const Eigen::VectorXd>(curve.params.data(), n);
  *g = Eigen::Map<const Eigen::VectorXd>(curve.params.data() + n, n);
}

}  // namespace

absl::StatusOr<SmoothFit> FitSmoothCurve(const std::vector<FitPoint>& points,
                                         const SmoothOptions& options) {
  // Merge the uncensored points by x: inverse-variance weighted means.
  std::map<double, std::pair<double, double>> merged;  // x -> (sum w y, sum w)
  int n_points = 0;
  for (const FitPoint& p : points) {
    if (p.censoring != Censoring::kNone) continue;
    const double w = 1.0 / (p.s * p.s);
    auto& [wy, ws] = merged[p.x];
    wy += w * p.y;
    ws += w;
    ++n_points;
  }
  const int n = static_cast<int>(merged.size());
  if (n < options.min_points) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the smooth curve needs point optima at >= %d batch sizes, have %d", options.min_points, n));
  }
  Eigen::VectorXd t(n), y(n), w(n);
  int i = 0;
  for (const auto& [x, acc] : merged) {
    t(i) = x;
    w(i) = acc.second;
    y(i) = acc.first / acc.second;
    ++i;
  }
  const SplineMatrices sm = BuildMatrices(t);
  const Eigen::MatrixXd wm = w.asDiagonal();
  const double lambda0 = w.sum() / std::max(sm.k.trace(), 1e-300);

  // AICc over a log grid of lambda, edf in [2, n - margin] (Hurvich,
  // Simonoff & Tsai 1998; the form the model weights use, here over the n
  // distinct batch sizes the spline is fitted on).
  const double max_edf = n - options.edf_margin;
  double best_crit = HUGE_VAL, best_lambda = NAN, best_edf = NAN, best_e = NAN;
  // log10(lambda / lambda0) = e: a grid 0.2 apart over [-8, 8], then 0.05
  // apart around the best.
  auto consider = [&](double e) {
    const double lambda = lambda0 * std::pow(10.0, e);
    const Eigen::MatrixXd a = wm + lambda * sm.k;
    const Eigen::LDLT<Eigen::MatrixXd> ldlt(a);
    const Eigen::MatrixXd hat = ldlt.solve(wm);
    const double edf = hat.trace();
    if (edf > max_edf) return;
    const Eigen::VectorXd res = y - hat * y;
    const double rss = res.cwiseProduct(res).dot(w);
    const double crit = SmoothingAicc(rss, n, edf);
    if (crit < best_crit) {
      best_crit = crit;
      best_lambda = lambda;
      best_edf = edf;
      best_e = e;
    }
  };
  for (int k = -40; k <= 40; ++k) consider(0.2 * k);
  if (std::isfinite(best_e)) {
    const double center = best_e;
    for (int k = -3; k <= 3; ++k) {
      if (k != 0) consider(center + 0.05 * k);
    }
  }
  if (!std::isfinite(best_lambda)) {
    return absl::FailedPreconditionError("the smooth curve found no admissible smoothness");
  }
  if (best_edf < options.min_edf) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the smooth curve reduces to a straight line (edf %.2f): the power law", best_edf));
  }
  const Eigen::MatrixXd a = wm + best_lambda * sm.k;
  const Eigen::LDLT<Eigen::MatrixXd> ldlt(a);
  const Eigen::VectorXd g = ldlt.solve(wm * y);
  const Eigen::MatrixXd a_inv = ldlt.solve(Eigen::MatrixXd::Identity(n, n));

  SmoothFit out;
  out.n = n_points;
  out.edf = best_edf;
  out.lambda = best_lambda;
  out.curve.kind = ModelKind::kSmooth;
  out.curve.params.assign(t.data(), t.data() + n);
  out.curve.params.insert(out.curve.params.end(), g.data(), g.data() + n);
  // RSS over the original points (what the laws' AICc uses).
  double chi2 = 0.0;
  for (const FitPoint& p : points) {
    if (p.censoring != Censoring::kNone) continue;
    const Eigen::VectorXd c = Coefficients(t, sm.g, p.x);
    const double r = (p.y - c.dot(g)) / p.s;
    chi2 += r * r;
  }
  out.chi2 = chi2;
  const double dof = n_points - best_edf;
  out.scale = dof >= 1.0 ? std::max(1.0, chi2 / dof) : 1.0;
  out.curve.cov = out.scale * a_inv;
  out.curve.aux = sm.g;
  return out;
}

CurvePrediction PredictSmooth(const ModelCurve& curve, double x) {
  Eigen::VectorXd t, g;
  SplitParams(curve, &t, &g);
  Eigen::MatrixXd scratch;
  const Eigen::VectorXd c = Coefficients(t, SecondDerivativeMap(curve, t, &scratch), x);
  if (c.size() == 0 || curve.cov.rows() != t.size()) return {};
  return {c.dot(g), std::max(0.0, c.dot(curve.cov * c)), 0.0};
}

CurvePrediction PredictSmoothDifference(const ModelCurve& curve, double x1, double x0) {
  Eigen::VectorXd t, g;
  SplitParams(curve, &t, &g);
  Eigen::MatrixXd scratch;
  const Eigen::MatrixXd& gmat = SecondDerivativeMap(curve, t, &scratch);
  const Eigen::VectorXd c1 = Coefficients(t, gmat, x1), c0 = Coefficients(t, gmat, x0);
  if (c1.size() == 0 || c0.size() == 0 || curve.cov.rows() != t.size()) return {};
  const Eigen::VectorXd d = c1 - c0;
  return {d.dot(g), std::max(0.0, d.dot(curve.cov * d)), 0.0};
}

}  // namespace surge::fit
