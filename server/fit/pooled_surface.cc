// The pooled improvement-surface fit and its held-out comparison. The model
// and the formulas are in pooled_surface.h.
#include "server/fit/pooled_surface.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>

#include "Eigen/Dense"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "ceres/ceres.h"
#include "ceres/jet.h"
#include "server/fit/fit_core.h"
#include "server/fit/model_curve.h"
#include "server/fit/surge_law.h"

namespace surge::fit {
namespace {

// The law's curve kind in model_curve.h (same parametrization).
ModelKind LawKind(PeakLaw law) {
  switch (law) {
    case PeakLaw::kSurge:
      return ModelKind::kSurge;
    case PeakLaw::kSaturatingSurge:
      return ModelKind::kSaturatingSurge;
    case PeakLaw::kPowerLaw:
      return ModelKind::kPowerLaw;
  }
  return ModelKind::kSurge;
}

// m(x) for a law with parameters p.
template <typename T>
T LawValue(PeakLaw law, double x, const T* p) {
  return EvalCurve(LawKind(law), x, p);
}

// Index of the law parameter that locates the peak in x (bounded), or -1.
int LocationParam(PeakLaw law) { return law == PeakLaw::kPowerLaw ? -1 : 1; }

template <int N, typename T>
T Poly(const T* c, double t) {
  if constexpr (N == 1) {
    return c[0];
  } else {
    return c[0] + c[1] * t + c[2] * (t * t);
  }
}

// One window cell of one batch size.
struct Cell {
  double x = 0.0;   // ln B
  double t = 0.0;   // ln B - x_center
  double y = 0.0;   // ln lr
  double mean = 0.0;
  double sd = 1.0;  // s_B / sqrt(n)
  int batch = 0;    // index into the used batches
};

template <int NL, int NH, int NC>
struct CellResidual {
  CellResidual(PeakLaw law, const Cell& c) : law(law), cell(c) {}
  template <typename T>
  bool operator()(const T* loc, const T* h, const T* lc, T* r) const {
    using std::exp;
    const T m = LawValue(law, cell.x, loc);
    const T d = T(cell.y) - m;
    const T f = Poly<NH>(h, cell.t) - exp(Poly<NC>(lc, cell.t)) * d * d;
    r[0] = (T(cell.mean) - f) / cell.sd;
    return true;
  }
  const PeakLaw law;
  const Cell cell;
};

// One batch size prepared for the fit: its window cells, noise scale and its
// own quadratic (for start values).
struct BatchData {
  PooledBatch info;
  std::vector<LrGroup> window;
  double c2 = NAN;  // own quadratic's curvature coefficient
};

// Builds B's window; FailedPrecondition with the reason when B cannot enter.
absl::StatusOr<BatchData> PrepareBatch(double b, const std::vector<ProbePoint>& pts,
                                       const PooledOptions& o) {
  const std::vector<LrGroup> g = GroupByLr(pts);
  const int m = static_cast<int>(g.size());
  if (m < 3) {
    return absl::FailedPreconditionError(
        absl::StrFormat("batch size %g: need >= 3 distinct learning rates, have %d", b, m));
  }
  int k = 0;
  for (int j = 1; j < m; ++j) {
    if (g[j].mean > g[k].mean) k = j;
  }
  BatchData out;
  out.info.batch_size = b;
  out.info.edge = k == 0 || k == m - 1;
  if (out.info.edge && !o.include_edge_batches) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "batch size %g: best LR on the %s edge of the grid (censored)", b, k == 0 ? "low" : "high"));
  }
  const int width = std::min(m, std::max(3, o.window));
  const int lo = std::clamp(k - width / 2, 0, m - width);
  const int hi = lo + width - 1;
  for (int j = lo; j <= hi; ++j) {
    out.window.push_back(g[j]);
    out.info.n_points += g[j].n;
  }
  out.info.n_cells = width;
  out.info.ln_lr_lo = g[lo].x;
  out.info.ln_lr_hi = g[hi].x;
  const WindowQuadratic q = FitWindowQuadratic(g, k, lo, hi, o.lack_of_fit);
  if (!q.invertible) {
    return absl::FailedPreconditionError(
        absl::StrFormat("batch size %g: singular quadratic window", b));
  }
  const Eigen::Vector3d& c = q.c;
  const Eigen::Matrix3d& a_inv = q.a_inv;
  const double sigma2 = q.sigma2;
  const int sigma2_dof = q.sigma2_dof;
  if (!(sigma2 > 0.0) || !std::isfinite(sigma2)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "batch size %g: no noise estimate (one seed per LR and no residual dof)", b));
  }
  out.c2 = c(2);
  double sd = std::sqrt(sigma2);
  const double u_lo = g[lo].x - g[k].x, u_hi = g[hi].x - g[k].x;
  if (c(2) < 0.0) {
    const double vertex = -c(1) / (2.0 * c(2));
    if (vertex >= u_lo && vertex <= u_hi) {
      out.info.vertex = g[k].x + vertex;
      out.info.vertex_se = VertexSe(c, a_inv, sigma2, sigma2_dof, u_hi - u_lo);
      // The two-step fit's SE floor, as a cap on B's information (header).
      if (o.se_floor > 0.0 && out.info.vertex_se > 0.0 && out.info.vertex_se < o.se_floor) {
        sd *= o.se_floor / out.info.vertex_se;
      }
    }
  }
  if (!std::isfinite(out.info.vertex)) out.info.vertex = g[k].x;  // grid argmax as start
  out.info.sd = sd;
  return out;
}

// The full parameter vector of one fit.
struct Params {
  std::vector<double> law;
  std::vector<double> h;   // per B or 3
  std::vector<double> lc;  // per B or 3
};

// Least squares of v on [1, t, t^2] (weights w), for quadratic starts.
std::vector<double> QuadFit(const std::vector<double>& t, const std::vector<double>& v,
                            const std::vector<double>& w) {
  Eigen::Matrix3d a = Eigen::Matrix3d::Zero();
  Eigen::Vector3d rhs = Eigen::Vector3d::Zero();
  for (size_t i = 0; i < t.size(); ++i) {
    const Eigen::Vector3d f(1.0, t[i], t[i] * t[i]);
    a += w[i] * f * f.transpose();
    rhs += w[i] * v[i] * f;
  }
  a += 1e-9 * Eigen::Matrix3d::Identity();
  const Eigen::Vector3d c = a.ldlt().solve(rhs);
  return {c(0), c(1), c(2)};
}

template <int NL, int NH, int NC>
void AddCells(ceres::Problem& problem, ceres::LossFunction* loss, PeakLaw law,
              const std::vector<Cell>& cells, Params& p, bool per_b_h, bool per_b_c) {
  for (const Cell& c : cells) {
    auto* cost = new ceres::AutoDiffCostFunction<CellResidual<NL, NH, NC>, 1, NL, NH, NC>(
        new CellResidual<NL, NH, NC>(law, c));
    problem.AddResidualBlock(cost, loss, p.law.data(),
                             per_b_h ? &p.h[c.batch] : p.h.data(),
                             per_b_c ? &p.lc[c.batch] : p.lc.data());
  }
}

// Builds the problem over `p` (which must outlive it).
void BuildProblem(ceres::Problem& problem, ceres::LossFunction* loss, const PooledOptions& o,
                  const std::vector<Cell>& cells, Params& p, const std::vector<double>& lc_start,
                  double loc_lo, double loc_hi) {
  const bool ph = o.heights == ShapeTerm::kPerBatch;
  const bool pc = o.curvature == ShapeTerm::kPerBatch;
  const int nl = PeakLawParams(o.law);
  if (nl == 2) {
    if (ph && pc) AddCells<2, 1, 1>(problem, loss, o.law, cells, p, ph, pc);
    if (ph && !pc) AddCells<2, 1, 3>(problem, loss, o.law, cells, p, ph, pc);
    if (!ph && pc) AddCells<2, 3, 1>(problem, loss, o.law, cells, p, ph, pc);
    if (!ph && !pc) AddCells<2, 3, 3>(problem, loss, o.law, cells, p, ph, pc);
  } else {
    if (ph && pc) AddCells<3, 1, 1>(problem, loss, o.law, cells, p, ph, pc);
    if (ph && !pc) AddCells<3, 1, 3>(problem, loss, o.law, cells, p, ph, pc);
    if (!ph && pc) AddCells<3, 3, 1>(problem, loss, o.law, cells, p, ph, pc);
    if (!ph && !pc) AddCells<3, 3, 3>(problem, loss, o.law, cells, p, ph, pc);
  }
  // Keep ln c where exp() is finite: per-B values within +-15 of their start
  // (a factor 3e6 either way), quadratic coefficients within generous limits.
  if (pc) {
    for (size_t i = 0; i < p.lc.size(); ++i) {
      problem.SetParameterLowerBound(&p.lc[i], 0, lc_start[i] - 15.0);
      problem.SetParameterUpperBound(&p.lc[i], 0, lc_start[i] + 15.0);
    }
  } else {
    problem.SetParameterLowerBound(p.lc.data(), 0, lc_start[0] - 15.0);
    problem.SetParameterUpperBound(p.lc.data(), 0, lc_start[0] + 15.0);
    for (int i = 1; i < 3; ++i) {
      problem.SetParameterLowerBound(p.lc.data(), i, -5.0);
      problem.SetParameterUpperBound(p.lc.data(), i, 5.0);
    }
  }
  const int li = LocationParam(o.law);
  if (li >= 0) {
    problem.SetParameterLowerBound(p.law.data(), li, loc_lo);
    problem.SetParameterUpperBound(p.law.data(), li, loc_hi);
  }
  if (o.law == PeakLaw::kSaturatingSurge) {
    problem.SetParameterLowerBound(p.law.data(), 2, -10.0);
    problem.SetParameterUpperBound(p.law.data(), 2, 10.0);
  }
}

// m(x) with its gradient with respect to the law parameters (<= 3).
double LawWithGradient(PeakLaw law, double x, const std::vector<double>& p, double* grad) {
  using J = ceres::Jet<double, 3>;
  J jp[3];
  for (int i = 0; i < 3; ++i) {
    jp[i] = J(i < static_cast<int>(p.size()) ? p[i] : 0.0, i);
  }
  const J v = LawValue(law, x, jp);
  for (int i = 0; i < static_cast<int>(p.size()); ++i) grad[i] = v.v[i];
  return v.a;
}

}  // namespace

const char* PeakLawName(PeakLaw law) {
  switch (law) {
    case PeakLaw::kSurge:
      return "surge";
    case PeakLaw::kSaturatingSurge:
      return "saturating_surge";
    case PeakLaw::kPowerLaw:
      return "power_law";
  }
  return "unknown";
}

int PeakLawParams(PeakLaw law) { return law == PeakLaw::kSaturatingSurge ? 3 : 2; }

const char* ShapeTermName(ShapeTerm t) {
  return t == ShapeTerm::kPerBatch ? "per_batch" : "quadratic";
}

CurvePrediction PooledSurfaceFit::PredictLnLrPeak(double ln_b) const {
  CurvePrediction out;
  if (law_params.empty()) return out;
  double g[3] = {0, 0, 0};
  out.mean = LawWithGradient(options.law, ln_b, law_params, g);
  const int n = static_cast<int>(law_params.size());
  if (covariance_ok) {
    Eigen::VectorXd gv(n);
    for (int i = 0; i < n; ++i) gv(i) = g[i];
    out.var = std::max(0.0, gv.dot(law_cov * gv));
  }
  return out;
}

Estimate PooledSurfaceFit::LnBNoise() const {
  Estimate e;
  if (law_params.empty()) return e;
  if (options.law == PeakLaw::kSurge) {
    e.value = law_params[1];
    if (covariance_ok) e.se = std::sqrt(std::max(0.0, law_cov(1, 1)));
  } else if (options.law == PeakLaw::kSaturatingSurge) {
    // peak at B_s beta_s^2 / (1 - beta_s^2), beta_s = 1 / (1 + e^-u)
    const double bs = 1.0 / (1.0 + std::exp(-law_params[2]));
    e.value = law_params[1] + 2.0 * std::log(bs) - std::log1p(-bs * bs);
  }
  return e;
}

absl::StatusOr<PooledSurfaceFit> FitPooledSurface(const std::vector<ProbePoint>& points,
                                                  const PooledOptions& options) {
  if (points.empty()) return absl::FailedPreconditionError("pooled surface: no probe points");
  std::map<double, std::vector<ProbePoint>> by_batch;
  for (const ProbePoint& p : points) {
    if (absl::Status s = ValidateProbePoint(p); !s.ok()) return s;
    if (p.stage_id != points[0].stage_id) {
      return absl::InvalidArgumentError(absl::StrCat("pooled surface: points of several stages (",
                                                     points[0].stage_id, " and ", p.stage_id, ")"));
    }
    by_batch[p.batch_size].push_back(p);
  }
  if (options.window < 3) {
    return absl::InvalidArgumentError("pooled surface: window must be >= 3");
  }
  PooledSurfaceFit fit;
  fit.stage_id = points[0].stage_id;
  fit.stage_loss = points[0].stage_loss;
  fit.options = options;
  std::vector<BatchData> used;
  for (const auto& [b, pts] : by_batch) {
    absl::StatusOr<BatchData> d = PrepareBatch(b, pts, options);
    if (d.ok()) {
      used.push_back(*std::move(d));
    } else {
      fit.skipped.emplace_back(d.status().message());
    }
  }
  const int nb = static_cast<int>(used.size());
  auto precondition = [&](const std::string& what) {
    std::string msg = absl::StrCat("stage ", fit.stage_id, ": pooled surface: ", what);
    if (!fit.skipped.empty()) absl::StrAppend(&msg, " (skipped: ", absl::StrJoin(fit.skipped, "; "), ")");
    return absl::FailedPreconditionError(msg);
  };
  const int nl = PeakLawParams(options.law);
  if (nb < nl + 1) {
    return precondition(absl::StrCat("need >= ", nl + 1, " usable batch sizes, have ", nb));
  }

  // Cells.
  double xsum = 0.0;
  fit.x_min = HUGE_VAL;
  fit.x_max = -HUGE_VAL;
  for (const BatchData& d : used) {
    const double x = std::log(d.info.batch_size);
    xsum += x;
    fit.x_min = std::min(fit.x_min, x);
    fit.x_max = std::max(fit.x_max, x);
  }
  fit.x_center = xsum / nb;
  std::vector<Cell> cells;
  for (int i = 0; i < nb; ++i) {
    const double x = std::log(used[i].info.batch_size);
    for (const LrGroup& g : used[i].window) {
      Cell c;
      c.x = x;
      c.t = x - fit.x_center;
      c.y = g.x;
      c.mean = g.mean;
      c.sd = used[i].info.sd / std::sqrt(static_cast<double>(g.n));
      c.batch = i;
      cells.push_back(c);
    }
  }
  fit.n_cells = static_cast<int>(cells.size());
  const bool ph = options.heights == ShapeTerm::kPerBatch;
  const bool pc = options.curvature == ShapeTerm::kPerBatch;
  fit.n_params = nl + (ph ? nb : 3) + (pc ? nb : 3);
  fit.dof = fit.n_cells - fit.n_params;
  if (fit.dof < 1) {
    return precondition(absl::StrCat(fit.n_cells, " cells for ", fit.n_params,
                                     " parameters: no residual degrees of freedom"));
  }

  // Start values for the shape terms from the per-B quadratics.
  std::vector<double> ts, hs, lcs, ws, lcw;
  std::vector<double> lc_b(nb, NAN);
  for (int i = 0; i < nb; ++i) {
    const BatchData& d = used[i];
    double best = -HUGE_VAL;
    for (const LrGroup& g : d.window) best = std::max(best, g.mean);
    hs.push_back(best);
    ts.push_back(std::log(d.info.batch_size) - fit.x_center);
    ws.push_back(1.0);
    if (d.c2 < 0.0) lc_b[i] = std::log(-d.c2);
  }
  {
    std::vector<double> good;
    for (double v : lc_b) {
      if (std::isfinite(v)) good.push_back(v);
    }
    double med = 0.0;
    if (!good.empty()) {
      std::nth_element(good.begin(), good.begin() + good.size() / 2, good.end());
      med = good[good.size() / 2];
    }
    for (double& v : lc_b) {
      if (!std::isfinite(v)) v = med;
    }
  }
  Params shape;
  shape.h = ph ? hs : QuadFit(ts, hs, ws);
  shape.lc = pc ? lc_b : QuadFit(ts, lc_b, ws);
  if (!pc) {
    for (int i = 1; i < 3; ++i) shape.lc[i] = std::clamp(shape.lc[i], -5.0, 5.0);
  }

  // Start values for the law: the two-step fit through the per-B vertices,
  // and a multi-start over the location parameter.
  std::vector<FitPoint> vpts;
  for (const BatchData& d : used) {
    if (d.info.edge) continue;
    FitPoint fp;
    fp.x = std::log(d.info.batch_size);
    fp.y = d.info.vertex;
    fp.s = std::isfinite(d.info.vertex_se) ? std::max(d.info.vertex_se, 0.05) : 0.5;
    vpts.push_back(fp);
  }
  auto project_a = [&](const std::vector<double>& law) {
    // Weighted mean offset of the vertices given the other law parameters.
    double sw = 0.0, swz = 0.0;
    std::vector<double> p = law;
    p[0] = 0.0;
    for (const FitPoint& fp : vpts) {
      const double w = 1.0 / (fp.s * fp.s);
      sw += w;
      swz += w * (fp.y - LawValue(options.law, fp.x, p.data()));
    }
    return sw > 0.0 ? swz / sw : 0.0;
  };
  std::vector<std::vector<double>> starts;
  const double loc_lo = fit.x_min - options.margin, loc_hi = fit.x_max + options.margin;
  if (options.law == PeakLaw::kPowerLaw) {
    double sw = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (const FitPoint& fp : vpts) {
      const double w = 1.0 / (fp.s * fp.s);
      sw += w;
      sx += w * fp.x;
      sy += w * fp.y;
      sxx += w * fp.x * fp.x;
      sxy += w * fp.x * fp.y;
    }
    const double det = sw * sxx - sx * sx;
    const double slope = det > 0 ? (sw * sxy - sx * sy) / det : 0.0;
    const double icpt = sw > 0 ? (sy - slope * sx) / sw : 0.0;
    starts.push_back({icpt, slope});
  } else {
    if (options.law == PeakLaw::kSurge && CheckFitPoints(vpts).ok()) {
      absl::StatusOr<SurgeLawFit> sf = FitSurgeLaw(vpts);
      if (sf.ok()) {
        double b = NAN;
        if (sf->identification == PeakIdentification::kIdentified) b = sf->ln_b_noise;
        else if (std::isfinite(sf->ln_b_noise_bound)) b = sf->ln_b_noise_bound;
        if (std::isfinite(b)) {
          b = std::clamp(b, loc_lo, loc_hi);
          std::vector<double> s = {0.0, b};
          s[0] = project_a(s);
          starts.push_back(s);
        }
      }
    }
    const std::vector<double> us = options.law == PeakLaw::kSaturatingSurge
                                       ? std::vector<double>{-1.0, 1.0, 3.0}
                                       : std::vector<double>{0.0};
    for (double loc = fit.x_min - 3.0; loc <= fit.x_max + 3.0 + 1e-9; loc += 1.0) {
      for (double u : us) {
        std::vector<double> s = {0.0, loc};
        if (options.law == PeakLaw::kSaturatingSurge) s.push_back(u);
        s[0] = project_a(s);
        starts.push_back(s);
      }
    }
  }

  // Solve from every start; keep the lowest cost.
  ceres::HuberLoss loss(options.huber_k);
  ceres::Problem::Options po;
  po.loss_function_ownership = ceres::DO_NOT_TAKE_OWNERSHIP;
  ceres::Solver::Options so = SmallProblemSolverOptions();
  so.max_num_iterations = 100;
  Params best;
  double best_cost = HUGE_VAL;
  std::string last_error;
  for (const std::vector<double>& s : starts) {
    Params p = shape;
    p.law = s;
    ceres::Problem problem(po);
    BuildProblem(problem, &loss, options, cells, p, shape.lc, loc_lo, loc_hi);
    ceres::Solver::Summary summary;
    ceres::Solve(so, &problem, &summary);
    if (!summary.IsSolutionUsable()) {
      last_error = summary.message;
      continue;
    }
    if (summary.final_cost < best_cost) {
      best_cost = summary.final_cost;
      best = p;
    }
  }
  if (!std::isfinite(best_cost)) {
    return absl::InternalError(absl::StrCat("stage ", fit.stage_id,
                                            ": pooled surface fit failed: ", last_error));
  }

  // Covariance of the law block at the best solution.
  ceres::Problem problem(po);
  BuildProblem(problem, &loss, options, cells, best, shape.lc, loc_lo, loc_hi);
  fit.cost = best_cost;
  fit.chi2 = 2.0 * best_cost;
  fit.scale = VarianceScale(fit.chi2, fit.dof);
  fit.law_params = best.law;
  fit.height_params = best.h;
  fit.curvature_params = best.lc;
  fit.law_cov = Eigen::MatrixXd::Constant(nl, nl, NAN);
  const int li = LocationParam(options.law);
  fit.location_at_bound =
      li >= 0 && (best.law[li] <= loc_lo + 1e-6 || best.law[li] >= loc_hi - 1e-6);
  ceres::Covariance covariance(SmallProblemCovarianceOptions());
  std::vector<std::pair<const double*, const double*>> blocks = {
      {best.law.data(), best.law.data()}};
  if (covariance.Compute(blocks, &problem)) {
    std::vector<double> c(nl * nl);
    if (covariance.GetCovarianceBlock(best.law.data(), best.law.data(), c.data())) {
      for (int i = 0; i < nl; ++i) {
        for (int j = 0; j < nl; ++j) fit.law_cov(i, j) = fit.scale * c[i * nl + j];
      }
      fit.covariance_ok = true;
    }
  }

  // Per-B summary of the fitted surface.
  for (int i = 0; i < nb; ++i) {
    PooledBatch info = used[i].info;
    const double x = std::log(info.batch_size);
    const double t = x - fit.x_center;
    info.height = ph ? best.h[i] : Poly<3>(best.h.data(), t);
    info.curvature = std::exp(pc ? best.lc[i] : Poly<3>(best.lc.data(), t));
    info.ln_lr_peak = LawValue(options.law, x, best.law.data());
    fit.batches.push_back(info);
  }
  return fit;
}

double ShareOfBest(const std::vector<ProbePoint>& points_at_b, double ln_lr) {
  const std::vector<LrGroup> g = GroupByLr(points_at_b);
  if (g.empty() || !std::isfinite(ln_lr)) return NAN;
  double best = -HUGE_VAL;
  for (const LrGroup& e : g) best = std::max(best, e.mean);
  if (!(best > 0.0)) return NAN;
  double v;
  if (ln_lr <= g.front().x) {
    v = g.front().mean;
  } else if (ln_lr >= g.back().x) {
    v = g.back().mean;
  } else {
    size_t j = 1;
    while (g[j].x < ln_lr) ++j;
    const double w = (ln_lr - g[j - 1].x) / (g[j].x - g[j - 1].x);
    v = (1.0 - w) * g[j - 1].mean + w * g[j].mean;
  }
  return v / best;
}

absl::StatusOr<std::vector<PooledHoldOutRow>> PooledHoldOut(
    const JobInput& input, const PooledOptions& options,
    std::vector<PooledSurfaceFit>* full_pooled, JobFit* full_two_step) {
  JobFit full;
  absl::StatusOr<std::vector<HoldOutResult>> two_step = HoldOutCheck(input, {}, &full);
  if (!two_step.ok()) return two_step.status();
  std::map<int64_t, std::vector<ProbePoint>> by_stage;
  for (const ProbePoint& p : input.probe_points) by_stage[p.stage_id].push_back(p);

  if (full_pooled != nullptr) {
    full_pooled->clear();
    for (const StageFit& st : full.stages) {
      auto it = by_stage.find(st.stage_id);
      if (it == by_stage.end()) continue;
      absl::StatusOr<PooledSurfaceFit> f = FitPooledSurface(it->second, options);
      if (f.ok()) full_pooled->push_back(*std::move(f));
    }
  }
  std::vector<PooledHoldOutRow> rows;
  for (const HoldOutResult& r : *two_step) {
    PooledHoldOutRow row;
    row.two_step = r;
    auto it = by_stage.find(r.stage_id);
    std::vector<ProbePoint> at_b, rest;
    if (it != by_stage.end()) {
      for (const ProbePoint& p : it->second) {
        (p.batch_size == r.batch_size ? at_b : rest).push_back(p);
      }
    }
    if (r.kind != HoldOutKind::kSkipped) {
      absl::StatusOr<PooledSurfaceFit> f = FitPooledSurface(rest, options);
      if (f.ok()) {
        const CurvePrediction pr = f->PredictLnLrPeak(std::log(r.batch_size));
        row.pooled_ln = pr.mean;
        row.pooled_se = std::sqrt(pr.var);
      } else {
        row.pooled_note = std::string(f.status().message());
      }
    }
    row.share_pooled = ShareOfBest(at_b, row.pooled_ln);
    row.share_averaged = ShareOfBest(at_b, r.averaged.ln_mean);
    row.share_surge = ShareOfBest(at_b, r.surge.ln_mean);
    row.share_measured = ShareOfBest(at_b, r.ln_measured);
    rows.push_back(std::move(row));
  }
  if (full_two_step != nullptr) *full_two_step = std::move(full);
  return rows;
}

MethodStats SummarizeMethod(const std::vector<PooledHoldOutRow>& rows, HoldOutMethod method,
                            int64_t stage_id) {
  MethodStats s;
  double sum_abs = 0.0, sum_sq = 0.0, sum_share = 0.0;
  s.worst_share = HUGE_VAL;
  for (const PooledHoldOutRow& r : rows) {
    if (r.two_step.stage_id != stage_id || r.two_step.kind != HoldOutKind::kInterior) continue;
    // The common set: every method has a prediction.
    if (!AllFinite(r.pooled_ln, r.two_step.averaged.ln_mean, r.two_step.surge.ln_mean)) continue;
    double pred = r.pooled_ln, share = r.share_pooled;
    if (method == HoldOutMethod::kAveraged) {
      pred = r.two_step.averaged.ln_mean;
      share = r.share_averaged;
    } else if (method == HoldOutMethod::kSurge) {
      pred = r.two_step.surge.ln_mean;
      share = r.share_surge;
    }
    const double err = pred - r.two_step.ln_measured;
    ++s.n;
    sum_abs += std::fabs(err);
    sum_sq += err * err;
    if (std::isfinite(share)) {
      ++s.n_share;
      sum_share += share;
      s.worst_share = std::min(s.worst_share, share);
    }
  }
  if (s.n > 0) {
    s.mean_abs_err = sum_abs / s.n;
    s.rms_err = std::sqrt(sum_sq / s.n);
  }
  if (s.n_share > 0) {
    s.mean_share = sum_share / s.n_share;
  } else {
    s.worst_share = NAN;
  }
  return s;
}

}  // namespace surge::fit
