// Per-batch-size optimum: seed means per LR, a weighted quadratic around the
// argmax, the vertex and its delta-method SE.
//
// Per LR j of the grid (x_j = ln lr_j): n_j seeds, mean m_j, sample variance v_j.
// k = argmax_j m_j.
//   k at the lowest LR  -> upper bound: ln eps_opt <= (x_0 + x_1) / 2
//   k at the highest LR -> lower bound: ln eps_opt >= (x_{m-2} + x_{m-1}) / 2
// (the half step: an optimum up to half a step inside the grid can still put
// the argmax on the edge). Otherwise a window W of 5 consecutive grid points
// containing k (all points when the grid has 3 or 4), u_j = x_j - x_k, and
//   m_j ~ c0 + c1 u_j + c2 u_j^2, weights n_j  (the variance of a mean is sigma^2 / n_j),
//   c = A^-1 sum n_j m_j [1, u_j, u_j^2],  A = sum n_j [1, u_j, u_j^2][1, u_j, u_j^2]^T,
//   Cov(c) = sigma^2 A^-1.
// sigma^2 (the seed variance of one probe):
//   pooled over W:  s2 = sum (n_j - 1) v_j / sum (n_j - 1),
//   times the lack-of-fit factor max(1, (sum n_j (m_j - q_j)^2 / s2) / (|W| - 3))
//   when |W| > 3 (so a poorly quadratic peak widens the SE instead of hiding);
//   with a single seed per LR: sum n_j (m_j - q_j)^2 / (|W| - 3).
// Vertex and delta method (chosen over a bootstrap: deterministic and fast):
//   u* = -c1 / (2 c2),  g = d u* / d(c0, c1, c2) = [0, -1 / (2 c2), c1 / (2 c2^2)],
//   se(u*) = t_0.975(dof) / z_0.975 sqrt(g^T Cov(c) g), capped at the window width,
// with dof the degrees of freedom of sigma^2 (sum (n_j - 1) for the seed
// spread, |W| - 3 for the residual): downstream the SE is used as a normal
// one, and with 2 seeds per LR sigma^2 has only ~5 degrees of freedom.
// The vertex is used when c2 < 0 and u* lies inside the window; otherwise the
// grid argmax is returned with an SE of one grid step (SeSource::kGridStep).
#include "server/fit/optimum.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "Eigen/Dense"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace surge::fit {
namespace {


}  // namespace

std::vector<LrGroup> GroupByLr(const std::vector<ProbePoint>& points) {
  std::vector<std::pair<double, double>> xy;
  xy.reserve(points.size());
  for (const ProbePoint& p : points) {
    if (p.reached) xy.emplace_back(std::log(p.lr), p.improvement);
  }
  std::sort(xy.begin(), xy.end());
  std::vector<LrGroup> groups;
  size_t i = 0;
  while (i < xy.size()) {
    size_t j = i;
    double sum = 0.0;
    while (j < xy.size() && xy[j].first - xy[i].first < 1e-9) sum += xy[j++].second;
    LrGroup g;
    g.x = xy[i].first;
    g.n = static_cast<int>(j - i);
    g.mean = sum / g.n;
    double ss = 0.0;
    for (size_t t = i; t < j; ++t) ss += (xy[t].second - g.mean) * (xy[t].second - g.mean);
    g.var = g.n > 1 ? ss / (g.n - 1) : 0.0;
    groups.push_back(g);
    i = j;
  }
  return groups;
}

WindowQuadratic FitWindowQuadratic(const std::vector<LrGroup>& g, int k, int lo, int hi,
                                   bool lack_of_fit) {
  WindowQuadratic q;
  Eigen::Matrix3d a = Eigen::Matrix3d::Zero();
  Eigen::Vector3d rhs = Eigen::Vector3d::Zero();
  double pooled_ss = 0.0;
  int pooled_dof = 0;
  for (int j = lo; j <= hi; ++j) {
    const double u = g[j].x - g[k].x;
    const Eigen::Vector3d f(1.0, u, u * u);
    a += g[j].n * f * f.transpose();
    rhs += g[j].n * g[j].mean * f;
    pooled_ss += (g[j].n - 1) * g[j].var;
    pooled_dof += g[j].n - 1;
  }
  Eigen::FullPivLU<Eigen::Matrix3d> lu(a);
  if (!lu.isInvertible()) return q;
  q.invertible = true;
  q.a_inv = lu.inverse();
  q.c = q.a_inv * rhs;
  for (int j = lo; j <= hi; ++j) {
    const double u = g[j].x - g[k].x;
    const double r = g[j].mean - (q.c(0) + q.c(1) * u + q.c(2) * u * u);
    q.rss += g[j].n * r * r;
  }
  const int lack_dof = hi - lo + 1 - 3;
  if (pooled_dof > 0 && pooled_ss > 0.0) {
    const double s2 = pooled_ss / pooled_dof;
    q.sigma2 = s2 * (lack_of_fit && lack_dof > 0 ? std::max(1.0, q.rss / s2 / lack_dof) : 1.0);
    q.sigma2_dof = pooled_dof;  // (the lack-of-fit factor only ever widens)
    q.source = SeSource::kSeedSpread;
  } else if (lack_dof > 0) {
    q.sigma2 = q.rss / lack_dof;
    q.sigma2_dof = lack_dof;
    q.source = SeSource::kQuadraticResidual;
  }
  return q;
}

absl::Status ValidateProbePoint(const ProbePoint& p) {
  if (!AllFinite(p.batch_size) || p.batch_size <= 0.0) {
    return absl::InvalidArgumentError(
        absl::StrCat("stage ", p.stage_id, ": batch_size must be finite and > 0, got ",
                     p.batch_size));
  }
  if (!AllFinite(p.lr) || p.lr <= 0.0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "stage ", p.stage_id, ", batch size ", p.batch_size,
        ": lr must be finite and > 0, got ", p.lr));
  }
  if (p.reached && !AllFinite(p.improvement)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "stage ", p.stage_id, ", batch size ", p.batch_size, ", lr ", p.lr,
        ": improvement must be finite, got ", p.improvement));
  }
  return absl::OkStatus();
}

absl::Status ValidateMeasuredOptimum(const MeasuredOptimum& m) {
  if (!AllFinite(m.batch_size) || m.batch_size <= 0.0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "stage ", m.stage_id, ": measured optimum batch_size must be finite and > 0, got ",
        m.batch_size));
  }
  if (!AllFinite(m.lr_opt) || m.lr_opt <= 0.0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "stage ", m.stage_id, ", batch size ", m.batch_size,
        ": lr_opt must be finite and > 0, got ", m.lr_opt));
  }
  if (!AllFinite(m.lr_opt_se) || m.lr_opt_se < 0.0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "stage ", m.stage_id, ", batch size ", m.batch_size,
        ": lr_opt_se must be finite and >= 0, got ", m.lr_opt_se));
  }
  return absl::OkStatus();
}

absl::StatusOr<BatchOptimum> ExtractOptimum(const std::vector<ProbePoint>& points) {
  if (points.empty()) {
    return absl::FailedPreconditionError("no probe points for this batch size");
  }
  for (const ProbePoint& p : points) {
    if (absl::Status s = ValidateProbePoint(p); !s.ok()) return s;
    if (p.batch_size != points[0].batch_size) {
      return absl::InvalidArgumentError("ExtractOptimum: points of several batch sizes");
    }
  }
  std::vector<ProbePoint> reached;
  double unreached_lo = HUGE_VAL, unreached_hi = -HUGE_VAL;  // ln lr of censored runs
  for (const ProbePoint& p : points) {
    if (p.reached) {
      reached.push_back(p);
    } else {
      unreached_lo = std::min(unreached_lo, std::log(p.lr));
      unreached_hi = std::max(unreached_hi, std::log(p.lr));
    }
  }
  const std::vector<LrGroup> g = GroupByLr(reached);
  const int m = static_cast<int>(g.size());
  BatchOptimum out;
  out.batch_size = points[0].batch_size;
  out.n_lrs = m;
  out.n_points = static_cast<int>(reached.size());
  out.n_censored = static_cast<int>(points.size() - reached.size());
  std::set<int64_t> seeds;
  for (const ProbePoint& p : points) seeds.insert(p.seed);
  out.n_seeds = static_cast<int>(seeds.size());
  if (m < 3) {
    if (out.n_censored > 0) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "batch size %g: need >= 3 distinct learning rates that reach the target, have %d "
          "(%d runs never reached it)",
          out.batch_size, m, out.n_censored));
    }
    return absl::FailedPreconditionError(absl::StrFormat(
        "batch size %g: need >= 3 distinct learning rates, have %d", out.batch_size, m));
  }

  int k = 0;
  for (int j = 1; j < m; ++j) {
    if (g[j].mean > g[k].mean) k = j;
  }
  // The argmax on the edge of the reached LRs with a censored run beyond it:
  // the optimum lies between, a point one grid step wide.
  const bool beyond_hi = k == m - 1 && unreached_hi > g[k].x + 1e-9;
  const bool beyond_lo = k == 0 && unreached_lo < g[k].x - 1e-9;
  if (beyond_hi || beyond_lo) {
    out.ln_lr_opt = g[k].x;
    out.ln_lr_opt_se = std::fabs(g[k].x - g[k == 0 ? 1 : m - 2].x);
    out.se_source = SeSource::kGridStep;
    return out;
  }
  // Censored at a grid edge: a bound half a step inside the grid.
  if (k == 0 || k == m - 1) {
    const int inner = k == 0 ? 1 : m - 2;
    out.censoring = k == 0 ? Censoring::kUpperBound : Censoring::kLowerBound;
    out.ln_lr_opt = 0.5 * (g[k].x + g[inner].x);
    out.ln_lr_opt_se = 0.5 * std::fabs(g[k].x - g[inner].x);
    out.se_source = SeSource::kGridStep;
    return out;
  }

  // Window of up to 5 grid points containing k.
  const int width = std::min(m, 5);
  const int lo = std::clamp(k - 2, 0, m - width);
  const int hi = lo + width - 1;
  const double step = std::max(g[k].x - g[k - 1].x, g[k + 1].x - g[k].x);
  auto grid_fallback = [&]() {
    out.ln_lr_opt = g[k].x;
    out.ln_lr_opt_se = step;
    out.se_source = SeSource::kGridStep;
    return out;
  };
  const WindowQuadratic q = FitWindowQuadratic(g, k, lo, hi);
  if (!q.invertible) return grid_fallback();
  const Eigen::Vector3d& c = q.c;
  const double sigma2 = q.sigma2;
  if (std::isfinite(sigma2)) out.se_source = q.source;
  const double u_lo = g[lo].x - g[k].x, u_hi = g[hi].x - g[k].x;
  if (!(c(2) < 0.0) || !std::isfinite(sigma2)) return grid_fallback();
  const double vertex = -c(1) / (2.0 * c(2));
  if (vertex < u_lo || vertex > u_hi) return grid_fallback();
  // sigma2 is estimated from few degrees of freedom (5 with 2 seeds x 5 LRs):
  // VertexSe widens the SE by t/z so the normal 95% interval downstream has
  // nominal coverage (without it: 0.91 with 2 seeds, OptimumTest.SeShrinksWithSeedsAndCovers).
  out.ln_lr_opt = g[k].x + vertex;
  out.ln_lr_opt_se = VertexSe(c, q.a_inv, sigma2, q.sigma2_dof, u_hi - u_lo);
  return out;
}

absl::StatusOr<StageOptima> ExtractStageOptima(const std::vector<ProbePoint>& points) {
  return ExtractPerBatchSize(points, ValidateProbePoint, ExtractOptimum);
}

double VertexSe(const Eigen::Vector3d& c, const Eigen::Matrix3d& a_inv, double sigma2, int dof,
                double width) {
  const Eigen::Vector3d grad(0.0, -1.0 / (2.0 * c(2)), c(1) / (2.0 * c(2) * c(2)));
  const double var = sigma2 * grad.dot(a_inv * grad);
  const double t_factor = StudentT975(dof) / kZ95;
  return std::min(t_factor * std::sqrt(std::max(var, 0.0)), width);
}

BatchOptimum FromMeasured(const MeasuredOptimum& m) {
  BatchOptimum out;
  out.batch_size = m.batch_size;
  out.ln_lr_opt = std::log(m.lr_opt);
  out.ln_lr_opt_se = m.lr_opt_se / m.lr_opt;
  out.censoring = m.censoring;
  out.se_source = SeSource::kMeasured;
  out.n_lrs = 0;
  out.n_seeds = 0;
  out.n_points = 1;
  return out;
}

}  // namespace surge::fit
