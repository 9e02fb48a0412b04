// Surge-law fit: variable-projection profile scan, Ceres refinement,
// covariance, and the identifiability decision (see surge_law.h).
#include "server/fit/surge_law.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "ceres/ceres.h"
#include "server/fit/fit_core.h"
#include "server/util/status_macros.h"

namespace surge::fit {
namespace {

// r = (y - (a - ln cosh((x - b) / 2))) / s, censored as in CensoredResidual.
struct SurgeLawResidual {
  explicit SurgeLawResidual(const FitPoint& pt) : pt(pt) {}

  template <typename T>
  bool operator()(const T* a, const T* b, T* r) const {
    const T f = a[0] - LogCosh((T(pt.x) - b[0]) * 0.5);
    r[0] = CensoredResidual(pt.y, f, pt.s, pt.censoring);
    return true;
  }

  static ceres::CostFunction* Create(const FitPoint& pt) {
    return new ceres::AutoDiffCostFunction<SurgeLawResidual, 1, 1, 1>(
        new SurgeLawResidual(pt));
  }

  const FitPoint pt;
};

// The profile P(b) = min_a C(a, b) on a grid of b.
struct Profile {
  std::vector<double> b;
  std::vector<double> a;
  std::vector<double> cost;
  size_t best = 0;
};

Profile ScanProfile(const std::vector<FitPoint>& pts, double lo, double hi,
                    double step, double huber_k) {
  Profile p;
  const int n = static_cast<int>(std::ceil((hi - lo) / step)) + 1;
  std::vector<double> g(pts.size());
  for (int t = 0; t < n; ++t) {
    const double b = std::min(lo + t * step, hi);
    for (size_t i = 0; i < pts.size(); ++i) g[i] = -LogCosh((pts[i].x - b) * 0.5);
    const OffsetFit off = MinimizeOffset(pts, g.data(), huber_k);
    p.b.push_back(b);
    p.a.push_back(off.a);
    p.cost.push_back(off.cost);
    if (off.cost < p.cost[p.best]) p.best = p.b.size() - 1;
  }
  return p;
}

// Walking from index `from` towards `to`, the b where P - p_min first exceeds
// `delta` (linear interpolation between grid points); the end b if never.
double ProfileCrossing(const Profile& p, int from, int to, double p_min, double delta) {
  const int dir = to > from ? 1 : -1;
  for (int t = from; t != to; t += dir) {
    const double d0 = p.cost[t] - p_min, d1 = p.cost[t + dir] - p_min;
    if (d0 <= delta && d1 > delta) {
      const double w = (delta - d0) / (d1 - d0);
      return p.b[t] + w * (p.b[t + dir] - p.b[t]);
    }
  }
  return p.b[to];
}

}  // namespace

const char* PeakIdentificationName(PeakIdentification p) {
  switch (p) {
    case PeakIdentification::kIdentified:
      return "identified";
    case PeakIdentification::kBelowPeak:
      return "below_peak";
    case PeakIdentification::kAbovePeak:
      return "above_peak";
    case PeakIdentification::kNotIdentified:
      return "not_identified";
  }
  return "unknown";
}

Estimate SurgeLawFit::LnBNoise() const {
  return {ln_b_noise, std::sqrt(cov(1, 1))};
}

Estimate SurgeLawFit::LnEpsMax() const {
  return {ln_eps_max, std::sqrt(cov(0, 0))};
}

std::vector<FitPoint> ToFitPoints(const std::vector<BatchOptimum>& optima,
                                  double se_floor) {
  std::vector<FitPoint> pts;
  pts.reserve(optima.size());
  for (const BatchOptimum& o : optima) {
    FitPoint p;
    p.x = std::log(o.batch_size);
    p.y = o.ln_lr_opt;
    p.s = std::isfinite(o.ln_lr_opt_se) ? std::max(o.ln_lr_opt_se, se_floor) : se_floor;
    p.censoring = o.censoring;
    pts.push_back(p);
  }
  return pts;
}

absl::Status CheckFitPoints(const std::vector<FitPoint>& points) {
  std::set<double> batches;
  for (const FitPoint& p : points) {
    if (!AllFinite(p.x, p.y, p.s) || p.s <= 0.0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "optimum at ln B = ", p.x, ": ln lr ", p.y, " and se ", p.s,
          " must be finite, se > 0"));
    }
    if (p.censoring == Censoring::kNone) batches.insert(p.x);
  }
  if (!points.empty() && batches.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "all ", points.size(),
        " optima are censored at an edge of the LR grid; widen the grid"));
  }
  if (batches.size() < 3) {
    return absl::FailedPreconditionError(absl::StrCat(
        "need optima at >= 3 batch sizes, have ", batches.size()));
  }
  return absl::OkStatus();
}

absl::StatusOr<SurgeLawFit> FitSurgeLaw(const std::vector<FitPoint>& points,
                                        const SurgeFitOptions& options) {
  SURGE_RETURN_IF_ERROR(CheckFitPoints(points));
  SurgeLawFit fit;
  fit.x_min = HUGE_VAL;
  fit.x_max = -HUGE_VAL;
  double all_min = HUGE_VAL, all_max = -HUGE_VAL;
  for (const FitPoint& p : points) {
    all_min = std::min(all_min, p.x);
    all_max = std::max(all_max, p.x);
    if (p.censoring != Censoring::kNone) continue;
    fit.x_min = std::min(fit.x_min, p.x);
    fit.x_max = std::max(fit.x_max, p.x);
  }
  fit.n_points = CountPoints(points);
  fit.n_bounds = CountBounds(points);
  fit.dof = fit.n_points - 2;

  // 1. Variable projection: profile over b, closed-form/1-D a for each b.
  const double b_lo = all_min - options.profile_margin;
  const double b_hi = all_max + options.profile_margin;
  const Profile profile =
      ScanProfile(points, b_lo, b_hi, options.profile_step, options.huber_k);

  // 2. Ceres refinement of (a, b) from the best grid point.
  double a = profile.a[profile.best];
  double b = profile.b[profile.best];
  ceres::HuberLoss loss(options.huber_k);
  ceres::Problem::Options problem_options;
  problem_options.loss_function_ownership = ceres::DO_NOT_TAKE_OWNERSHIP;
  ceres::Problem problem(problem_options);
  for (const FitPoint& p : points) {
    problem.AddResidualBlock(SurgeLawResidual::Create(p), &loss, &a, &b);
  }
  problem.SetParameterLowerBound(&b, 0, b_lo);
  problem.SetParameterUpperBound(&b, 0, b_hi);
  ceres::Solver::Summary summary;
  ceres::Solve(SmallProblemSolverOptions(), &problem, &summary);
  if (!summary.IsSolutionUsable()) {
    return absl::InternalError(absl::StrCat("surge fit failed: ", summary.message));
  }
  const double p_min = std::min(summary.final_cost, profile.cost[profile.best]);
  if (summary.final_cost > profile.cost[profile.best]) {  // keep the better one
    a = profile.a[profile.best];
    b = profile.b[profile.best];
  }
  fit.cost = p_min;
  fit.chi2 = 2.0 * p_min;
  fit.scale = VarianceScale(fit.chi2, fit.dof);

  // 3. Which sides of the profile are open.
  const double delta = 0.5 * options.profile_chi2 * fit.scale;
  const int last = static_cast<int>(profile.b.size()) - 1;
  const bool open_high = profile.cost[last] - p_min <= delta;
  const bool open_low = profile.cost[0] - p_min <= delta;

  if (open_high != open_low) {
    // One-sided: bound from the profile, prediction from the limit curve.
    const ModelKind limit =
        open_high ? ModelKind::kSurgeRisingLimit : ModelKind::kSurgeFallingLimit;
    fit.identification =
        open_high ? PeakIdentification::kBelowPeak : PeakIdentification::kAbovePeak;
    fit.ln_b_noise_bound = open_high ? ProfileCrossing(profile, last, 0, p_min, delta)
                                     : ProfileCrossing(profile, 0, last, p_min, delta);
    std::vector<double> g(points.size());
    for (size_t i = 0; i < points.size(); ++i) {
      g[i] = M_LN2 + (open_high ? 0.5 : -0.5) * points[i].x;
    }
    const OffsetFit start = MinimizeOffset(points, g.data(), options.huber_k);
    SURGE_ASSIGN_OR_RETURN(CurveFitResult lim,
                           FitCurve(limit, points, {start.a}, {}, options.huber_k));
    fit.curve = lim.curve;
    fit.combination = {lim.curve.params[0], std::sqrt(lim.curve.cov(0, 0))};
    return fit;
  }

  // 4. Covariance of (a, b): identified, or (open on both sides) a
  // pseudo-inverse whose point is reported as not identified.
  fit.identification = open_high ? PeakIdentification::kNotIdentified
                                 : PeakIdentification::kIdentified;
  fit.curve.kind = ModelKind::kSurge;
  fit.curve.params = {a, b};
  fit.curve.cov = Eigen::MatrixXd::Constant(2, 2, NAN);
  ceres::Covariance covariance(SmallProblemCovarianceOptions());
  const std::vector<std::pair<const double*, const double*>> blocks = {
      {&a, &a}, {&a, &b}, {&b, &b}};
  if (covariance.Compute(blocks, &problem)) {
    double caa = NAN, cab = NAN, cbb = NAN;
    covariance.GetCovarianceBlock(&a, &a, &caa);
    covariance.GetCovarianceBlock(&a, &b, &cab);
    covariance.GetCovarianceBlock(&b, &b, &cbb);
    fit.curve.cov << caa, cab, cab, cbb;
    fit.curve.cov *= fit.scale;
  }
  if (fit.identification == PeakIdentification::kIdentified) {
    fit.ln_eps_max = a;
    fit.ln_b_noise = b;
    fit.cov = fit.curve.cov;
  }
  return fit;
}

}  // namespace surge::fit
