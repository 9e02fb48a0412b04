// Robust weighted least squares shared by all curve fits (see fit_core.h).
#include "server/fit/fit_core.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace surge::fit {
namespace {

// Residual of one observation against curve `kind` with N parameters in one
// parameter block.
template <int N>
struct CurveResidual {
  CurveResidual(ModelKind kind, const FitPoint& pt) : kind(kind), pt(pt) {}

  template <typename T>
  bool operator()(const T* p, T* r) const {
    r[0] = CensoredResidual(pt.y, EvalCurve(kind, pt.x, p), pt.s, pt.censoring);
    return true;
  }

  static ceres::CostFunction* Create(ModelKind kind, const FitPoint& pt) {
    return new ceres::AutoDiffCostFunction<CurveResidual<N>, 1, N>(
        new CurveResidual<N>(kind, pt));
  }

  const ModelKind kind;
  const FitPoint pt;
};

template <int N>
absl::StatusOr<CurveFitResult> FitCurveN(ModelKind kind,
                                         const std::vector<FitPoint>& pts,
                                         const std::vector<double>& start,
                                         const std::vector<Interval>& bounds,
                                         double huber_k) {
  double p[N];
  for (int i = 0; i < N; ++i) p[i] = start[i];
  for (int i = 0; i < N && !bounds.empty(); ++i) {
    p[i] = std::clamp(p[i], bounds[i].lo, bounds[i].hi);
  }

  // Build the problem: one residual block per observation.
  ceres::HuberLoss loss(huber_k);
  ceres::Problem::Options problem_options;
  problem_options.loss_function_ownership = ceres::DO_NOT_TAKE_OWNERSHIP;
  ceres::Problem problem(problem_options);
  for (const FitPoint& pt : pts) {
    problem.AddResidualBlock(CurveResidual<N>::Create(kind, pt), &loss, p);
  }
  for (int i = 0; i < N && !bounds.empty(); ++i) {
    if (std::isfinite(bounds[i].lo)) problem.SetParameterLowerBound(p, i, bounds[i].lo);
    if (std::isfinite(bounds[i].hi)) problem.SetParameterUpperBound(p, i, bounds[i].hi);
  }

  // Solve.
  ceres::Solver::Summary summary;
  ceres::Solve(SmallProblemSolverOptions(), &problem, &summary);
  if (!summary.IsSolutionUsable()) {
    return absl::InternalError(absl::StrCat(ModelName(kind),
                                            " fit failed: ", summary.message));
  }

  // Covariance, scaled by the reduced chi-square.
  CurveFitResult out;
  out.curve.kind = kind;
  out.curve.params.assign(p, p + N);
  out.cost = summary.final_cost;
  out.chi2 = 2.0 * summary.final_cost;
  out.n_points = CountPoints(pts);
  out.n_bounds = CountBounds(pts);
  out.dof = out.n_points - N;
  out.scale = VarianceScale(out.chi2, out.dof);
  out.curve.cov = Eigen::MatrixXd::Constant(N, N, NAN);
  ceres::Covariance covariance(SmallProblemCovarianceOptions());
  std::vector<std::pair<const double*, const double*>> blocks = {{p, p}};
  if (covariance.Compute(blocks, &problem)) {
    double c[N * N];
    if (covariance.GetCovarianceBlock(p, p, c)) {
      for (int i = 0; i < N; ++i) {
        for (int j = 0; j < N; ++j) out.curve.cov(i, j) = out.scale * c[i * N + j];
      }
      out.covariance_ok = true;
    }
  }
  return out;
}

}  // namespace

double HalfHuber(double r, double k) {
  const double ar = std::fabs(r);
  return ar <= k ? 0.5 * r * r : k * ar - 0.5 * k * k;
}

double RobustCost(const std::vector<FitPoint>& pts, const double* f, double k) {
  double c = 0.0;
  for (size_t i = 0; i < pts.size(); ++i) {
    c += HalfHuber(CensoredResidual(pts[i].y, f[i], pts[i].s, pts[i].censoring), k);
  }
  return c;
}

// Minimizes C(a) = sum 0.5 rho(r_i(a)^2), r_i(a) = (y_i - g_i - a) / s_i
// (censored as in CensoredResidual). C'(a) = -sum psi(r_i) / s_i with
// psi(r) = clamp(r, -k, k) is nondecreasing, so the root is bracketed by
// [min(y - g) - 1, max(y - g) + 1]; Newton steps with C''(a) = sum over
// active quadratic-zone points of 1 / s_i^2, bisection when a step leaves the
// bracket. Being piecewise quadratic, it converges in a few steps.
OffsetFit MinimizeOffset(const std::vector<FitPoint>& pts, const double* g,
                         double huber_k) {
  double lo = HUGE_VAL, hi = -HUGE_VAL, sw = 0.0, swz = 0.0;
  for (size_t i = 0; i < pts.size(); ++i) {
    const double z = pts[i].y - g[i];
    lo = std::min(lo, z);
    hi = std::max(hi, z);
    if (pts[i].censoring == Censoring::kNone) {
      const double w = 1.0 / (pts[i].s * pts[i].s);
      sw += w;
      swz += w * z;
    }
  }
  lo -= 1.0;
  hi += 1.0;
  double a = sw > 0.0 ? swz / sw : 0.5 * (lo + hi);
  for (int iter = 0; iter < 100; ++iter) {
    double d1 = 0.0, d2 = 0.0;
    for (size_t i = 0; i < pts.size(); ++i) {
      const double r = CensoredResidual(pts[i].y, g[i] + a, pts[i].s, pts[i].censoring);
      if (r == 0.0 && pts[i].censoring != Censoring::kNone) continue;  // inactive bound
      const double inv_s = 1.0 / pts[i].s;
      if (std::fabs(r) <= huber_k) {
        d1 -= r * inv_s;
        d2 += inv_s * inv_s;
      } else {
        d1 -= (r > 0 ? huber_k : -huber_k) * inv_s;
      }
    }
    if (d1 == 0.0) break;
    if (d1 < 0.0) lo = a; else hi = a;
    double next = d2 > 0.0 ? a - d1 / d2 : 0.5 * (lo + hi);
    if (!(next > lo && next < hi)) next = 0.5 * (lo + hi);
    const double step = std::fabs(next - a);
    a = next;
    if (step < 1e-13 * (1.0 + std::fabs(a)) || hi - lo < 1e-13) break;
  }
  OffsetFit out;
  out.a = a;
  for (size_t i = 0; i < pts.size(); ++i) {
    out.cost += HalfHuber(CensoredResidual(pts[i].y, g[i] + a, pts[i].s, pts[i].censoring), huber_k);
  }
  return out;
}

int CountPoints(const std::vector<FitPoint>& pts) {
  return static_cast<int>(std::count_if(pts.begin(), pts.end(), [](const FitPoint& p) {
    return p.censoring == Censoring::kNone;
  }));
}

int CountBounds(const std::vector<FitPoint>& pts) {
  return static_cast<int>(pts.size()) - CountPoints(pts);
}

double VarianceScale(double chi2, int dof) {
  if (dof < 1) return 1.0;
  return std::max(1.0, chi2 / dof);
}

ceres::Solver::Options SmallProblemSolverOptions() {
  ceres::Solver::Options o;
  o.linear_solver_type = ceres::DENSE_QR;
  o.logging_type = ceres::SILENT;
  o.minimizer_progress_to_stdout = false;
  o.max_num_iterations = 200;
  o.function_tolerance = 1e-12;
  o.gradient_tolerance = 1e-12;
  o.parameter_tolerance = 1e-10;
  o.num_threads = 1;
  return o;
}

ceres::Covariance::Options SmallProblemCovarianceOptions() {
  ceres::Covariance::Options o;
  o.algorithm_type = ceres::DENSE_SVD;
  o.null_space_rank = -1;
  o.min_reciprocal_condition_number = 1e-12;
  o.num_threads = 1;
  o.apply_loss_function = true;
  return o;
}

absl::StatusOr<CurveFitResult> FitCurve(ModelKind kind,
                                        const std::vector<FitPoint>& pts,
                                        const std::vector<double>& start,
                                        const std::vector<Interval>& bounds,
                                        double huber_k) {
  const int n = NumParams(kind);
  if (static_cast<int>(start.size()) != n ||
      (!bounds.empty() && static_cast<int>(bounds.size()) != n)) {
    return absl::InvalidArgumentError(absl::StrCat(
        ModelName(kind), ": need ", n, " start values and bounds"));
  }
  if (pts.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(ModelName(kind), ": no points"));
  }
  switch (n) {
    case 1:
      return FitCurveN<1>(kind, pts, start, bounds, huber_k);
    case 2:
      return FitCurveN<2>(kind, pts, start, bounds, huber_k);
    case 3:
      return FitCurveN<3>(kind, pts, start, bounds, huber_k);
  }
  return absl::InternalError("unsupported parameter count");
}

}  // namespace surge::fit
