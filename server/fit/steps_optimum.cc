// ExtractFastestOptimum: per-LR grouping, the censored-aware quadratic of
// ln S against ln lr, and its vertex (formulas in steps_optimum.h).
#include "server/fit/steps_optimum.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "Eigen/Dense"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace surge::fit {
namespace {

// The runs at one LR of the grid.
struct LrRuns {
  double x = 0.0;                // ln lr
  std::vector<double> reached;   // ln S
  std::vector<double> censored;  // ln T (S > T)
  double MeanReached() const {
    double s = 0.0;
    for (double y : reached) s += y;
    return s / static_cast<double>(reached.size());
  }
};

std::vector<LrRuns> GroupRunsByLr(const std::vector<StepsPoint>& points) {
  std::vector<std::pair<double, const StepsPoint*>> sorted;
  for (const StepsPoint& p : points) sorted.emplace_back(std::log(p.lr), &p);
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<LrRuns> groups;
  for (const auto& [x, p] : sorted) {
    if (groups.empty() || x - groups.back().x >= 1e-9) groups.push_back({x, {}, {}});
    (p->reached ? groups.back().reached : groups.back().censored)
        .push_back(std::log(std::max(p->steps, 1.0)));
  }
  return groups;
}

}  // namespace

absl::Status ValidateStepsPoint(const StepsPoint& p) {
  if (!AllFinite(p.batch_size) || p.batch_size <= 0.0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "stage ", p.stage_id, ": batch_size must be finite and > 0, got ", p.batch_size));
  }
  if (!AllFinite(p.lr) || p.lr <= 0.0) {
    return absl::InvalidArgumentError(absl::StrCat("stage ", p.stage_id, ", batch size ",
                                                   p.batch_size, ": lr must be finite and > 0, got ",
                                                   p.lr));
  }
  if (!AllFinite(p.steps) || p.steps < 0.0 || (p.reached && p.steps <= 0.0)) {
    return absl::InvalidArgumentError(absl::StrCat("stage ", p.stage_id, ", batch size ",
                                                   p.batch_size, ", lr ", p.lr,
                                                   ": steps must be finite and > 0, got ", p.steps));
  }
  return absl::OkStatus();
}

absl::StatusOr<BatchOptimum> ExtractFastestOptimum(const std::vector<StepsPoint>& points) {
  if (points.empty()) return absl::FailedPreconditionError("no runs for this batch size");
  for (const StepsPoint& p : points) {
    if (absl::Status s = ValidateStepsPoint(p); !s.ok()) return s;
    if (p.batch_size != points[0].batch_size) {
      return absl::InvalidArgumentError("ExtractFastestOptimum: points of several batch sizes");
    }
  }
  const std::vector<LrRuns> g = GroupRunsByLr(points);
  const int m = static_cast<int>(g.size());
  BatchOptimum out;
  out.batch_size = points[0].batch_size;
  std::set<int64_t> seeds;
  for (const StepsPoint& p : points) {
    seeds.insert(p.seed);
    (p.reached ? out.n_points : out.n_censored) += 1;
  }
  out.n_seeds = static_cast<int>(seeds.size());
  int k = -1, reached_lrs = 0;
  double fewest = HUGE_VAL;
  for (int j = 0; j < m; ++j) {
    if (g[j].reached.empty()) continue;
    ++reached_lrs;
    if (k < 0 || g[j].MeanReached() < g[k].MeanReached()) k = j;
    for (double y : g[j].reached) fewest = std::min(fewest, y);
  }
  out.n_lrs = reached_lrs;
  if (reached_lrs < 3) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "batch size %g: need >= 3 learning rates that reach the target, have %d (%d runs never "
        "reached it)",
        out.batch_size, reached_lrs, out.n_censored));
  }
  out.steps_at_opt = std::exp(fewest);

  // On the edge of the whole grid (no run tried beyond): a bound.
  if (k == 0 || k == m - 1) {
    const int inner = k == 0 ? 1 : m - 2;
    out.censoring = k == 0 ? Censoring::kUpperBound : Censoring::kLowerBound;
    out.ln_lr_opt = 0.5 * (g[k].x + g[inner].x);
    out.ln_lr_opt_se = 0.5 * std::fabs(g[k].x - g[inner].x);
    out.se_source = SeSource::kGridStep;
    return out;
  }
  const double step = std::max(g[k].x - g[k - 1].x, g[k + 1].x - g[k].x);
  auto grid_fallback = [&]() {
    out.ln_lr_opt = g[k].x;
    out.ln_lr_opt_se = step;
    out.se_source = SeSource::kGridStep;
    return out;
  };

  // Window of up to 5 grid LRs around k; runs in it.
  const int width = std::min(m, 5);
  const int lo = std::clamp(k - 2, 0, m - width);
  const int hi = lo + width - 1;
  struct Obs {
    double u, y;
    bool censored;
  };
  std::vector<Obs> obs;
  for (int j = lo; j <= hi; ++j) {
    const double u = g[j].x - g[k].x;
    for (double y : g[j].reached) obs.push_back({u, y, false});
    for (double y : g[j].censored) obs.push_back({u, y, true});
  }
  std::vector<bool> active(obs.size(), false);
  Eigen::Vector3d c = Eigen::Vector3d::Zero();
  Eigen::Matrix3d f_inv = Eigen::Matrix3d::Zero();
  int n_reached = 0;  // observations; active bounds are constraints, not observations
  double rss = 0.0;
  // Each pass activates at least one more bound or stops, so obs.size() + 1
  // passes always end with a fit that no inactive bound contradicts.
  for (size_t iter = 0; iter <= obs.size(); ++iter) {
    Eigen::Matrix3d a = Eigen::Matrix3d::Zero();
    Eigen::Vector3d rhs = Eigen::Vector3d::Zero();
    std::set<double> distinct_u;
    n_reached = 0;
    for (size_t i = 0; i < obs.size(); ++i) {
      if (obs[i].censored && !active[i]) continue;
      const Eigen::Vector3d f(1.0, obs[i].u, obs[i].u * obs[i].u);
      a += f * f.transpose();
      rhs += obs[i].y * f;
      distinct_u.insert(obs[i].u);
      if (!obs[i].censored) ++n_reached;
    }
    if (distinct_u.size() < 3) return grid_fallback();
    Eigen::FullPivLU<Eigen::Matrix3d> lu(a);
    if (!lu.isInvertible()) return grid_fallback();
    f_inv = lu.inverse();
    c = f_inv * rhs;
    bool changed = false;
    rss = 0.0;
    for (size_t i = 0; i < obs.size(); ++i) {
      const double pred = c(0) + c(1) * obs[i].u + c(2) * obs[i].u * obs[i].u;
      if (!obs[i].censored || active[i]) rss += (obs[i].y - pred) * (obs[i].y - pred);
      if (obs[i].censored && !active[i] && pred < obs[i].y) {
        active[i] = true;
        changed = true;
      }
    }
    if (!changed) break;
  }
  const int dof = n_reached - 3;
  if (dof < 1 || !(c(2) > 0.0)) return grid_fallback();
  const double u_lo = g[lo].x - g[k].x, u_hi = g[hi].x - g[k].x;
  const double vertex = -c(1) / (2.0 * c(2));
  if (vertex < u_lo || vertex > u_hi) return grid_fallback();
  out.ln_lr_opt = g[k].x + vertex;
  out.ln_lr_opt_se = VertexSe(c, f_inv, rss / dof, dof, u_hi - u_lo);
  out.se_source = SeSource::kQuadraticResidual;
  out.steps_at_opt = std::exp(c(0) + c(1) * vertex + c(2) * vertex * vertex);
  return out;
}

absl::StatusOr<StageOptima> ExtractFastestStageOptima(const std::vector<StepsPoint>& points) {
  return ExtractPerBatchSize(points, ValidateStepsPoint, ExtractFastestOptimum);
}

}  // namespace surge::fit
