// Comparison models, AICc, Akaike weights, verdict and model averaging (see
// models.h for the formulas).
#include "server/fit/models.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"
#include "server/fit/fit_core.h"
#include "server/fit/smooth_curve.h"
#include "server/util/status_macros.h"

namespace surge::fit {
namespace {

constexpr ModelKind kOrder[] = {ModelKind::kSurge, ModelKind::kSgd,
                                ModelKind::kAlphaForm, ModelKind::kPowerLaw,
                                ModelKind::kSaturatingSurge};

// Start values by variable projection: every curve here is f = p0 + g(x; p1..),
// so for each candidate (p1..) the best p0 comes from MinimizeOffset; the
// candidate with the lowest cost wins.
std::vector<double> ScanStart(ModelKind kind, const std::vector<FitPoint>& pts,
                              const std::vector<std::vector<double>>& candidates,
                              double huber_k) {
  std::vector<double> best;
  double best_cost = HUGE_VAL;
  std::vector<double> g(pts.size());
  for (const std::vector<double>& cand : candidates) {
    std::vector<double> p = {0.0};
    p.insert(p.end(), cand.begin(), cand.end());
    for (size_t i = 0; i < pts.size(); ++i) g[i] = EvalCurve(kind, pts[i].x, p.data());
    const OffsetFit off = MinimizeOffset(pts, g.data(), huber_k);
    if (off.cost < best_cost) {
      best_cost = off.cost;
      p[0] = off.a;
      best = p;
    }
  }
  return best;
}

std::vector<double> Range(double lo, double hi, double step) {
  std::vector<double> v;
  for (double t = lo; t <= hi + 1e-9; t += step) v.push_back(t);
  return v;
}

// Start candidates and parameter bounds of one comparison model.
void ModelSetup(ModelKind kind, double x_min, double x_max,
                std::vector<std::vector<double>>* candidates,
                std::vector<Interval>* bounds) {
  const Interval free;
  const Interval b_range{x_min - 10.0, x_max + 10.0};
  switch (kind) {
    case ModelKind::kSgd:
      for (double b : Range(x_min - 6.0, x_max + 6.0, 0.25)) candidates->push_back({b});
      *bounds = {free, b_range};
      break;
    case ModelKind::kAlphaForm:
      for (double b : Range(x_min - 6.0, x_max + 6.0, 0.5)) {
        for (double alpha : {0.5, 0.625, 0.75, 0.875, 1.0}) candidates->push_back({b, alpha});
      }
      *bounds = {free, b_range, {0.5, 1.0}};
      break;
    case ModelKind::kPowerLaw:
      for (double alpha : Range(-2.0, 2.0, 0.05)) candidates->push_back({alpha});
      *bounds = {};
      break;
    case ModelKind::kSaturatingSurge:
      for (double c : Range(x_min - 4.0, x_max + 8.0, 0.5)) {
        for (double u : {-4.0, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5}) candidates->push_back({c, u});
      }
      *bounds = {free, {x_min - 10.0, x_max + 12.0}, {-10.0, 10.0}};
      break;
    default:
      break;
  }
}

void SetAicc(ModelFit* m) {
  m->aicc = m->fitted ? Aicc(m->chi2, m->n, m->edf + 1.0) : NAN;
  if (m->fitted && !std::isfinite(m->aicc)) {
    m->note = absl::StrFormat("no AICc: n = %d <= k + 1 = %.3g", m->n, m->edf + 2.0);
  }
}

// The curve's values at the points (for the scatter and the robust cost).
std::vector<double> ValuesAt(const ModelCurve& curve, const std::vector<FitPoint>& pts) {
  std::vector<double> f(pts.size());
  for (size_t i = 0; i < pts.size(); ++i) f[i] = curve.Predict(pts[i].x).mean;
  return f;
}

// Sets tau2 and the curve's scatter of a fitted model.
void SetScatter(const std::vector<FitPoint>& pts, bool enabled, ModelFit* m) {
  if (!m->fitted || !enabled) return;
  const std::vector<double> f = ValuesAt(m->curve, pts);
  // The curve's own free parameters: a surge limit (one side of the peak)
  // has one, the spline its edf.
  const double p = m->kind == ModelKind::kSmooth ? m->edf
                                                 : static_cast<double>(m->curve.params.size());
  m->tau2 = ScatterVariance(pts, f.data(), p);
  m->curve.scatter = ScatterForPrediction(m->tau2, m->n, p);
}

// The smooth curve as a ModelFit: AICc from the same Huber cost as the laws.
ModelFit FitSmooth(const std::vector<FitPoint>& points, int n, double huber_k) {
  ModelFit m;
  m.kind = ModelKind::kSmooth;
  m.n = n;
  absl::StatusOr<SmoothFit> r = FitSmoothCurve(points);
  if (!r.ok()) {
    m.note = std::string(r.status().message());
    m.k = 0;
    return m;
  }
  m.fitted = true;
  m.curve = r->curve;
  m.edf = r->edf;
  m.k = static_cast<int>(std::lround(r->edf + 1.0));
  m.scale = r->scale;
  const std::vector<double> f = ValuesAt(m.curve, points);
  m.chi2 = 2.0 * RobustCost(points, f.data(), huber_k);
  m.note = absl::StrFormat("penalized spline, edf %.2f (smoothness by AICc)", r->edf);
  return m;
}

}  // namespace

const char* VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kYes:
      return "yes";
    case Verdict::kNo:
      return "no";
    case Verdict::kUndecided:
      return "undecided";
  }
  return "unknown";
}

const ModelFit& ModelComparison::Get(ModelKind kind) const {
  for (const ModelFit& m : models) {
    if (m.kind == kind) return m;
  }
  return models.front();
}

double Aicc(double rss, int n, double k) {
  if (n <= k + 1 || n <= 0) return NAN;
  const double sigma2 = std::max(rss / n, 1e-12);
  const double aic = n * std::log(sigma2) + 2.0 * k;
  return aic + 2.0 * k * (k + 1.0) / (n - k - 1.0);
}

std::vector<double> AkaikeWeights(const std::vector<double>& aicc) {
  std::vector<double> w(aicc.size(), 0.0);
  double best = HUGE_VAL;
  for (double a : aicc) {
    if (std::isfinite(a)) best = std::min(best, a);
  }
  if (!std::isfinite(best)) return w;
  double sum = 0.0;
  for (size_t i = 0; i < aicc.size(); ++i) {
    if (std::isfinite(aicc[i])) sum += (w[i] = std::exp(-0.5 * (aicc[i] - best)));
  }
  for (double& x : w) x /= sum;
  return w;
}

double ScatterVariance(const std::vector<FitPoint>& pts, const double* f, double p) {
  std::vector<std::pair<double, double>> rs;  // (r_i^2, s_i^2)
  for (size_t i = 0; i < pts.size(); ++i) {
    if (pts[i].censoring != Censoring::kNone || !std::isfinite(f[i])) continue;
    const double r = pts[i].y - f[i];
    rs.emplace_back(r * r, pts[i].s * pts[i].s);
  }
  const double dof = static_cast<double>(rs.size()) - p;
  if (dof <= 0.0) return 0.0;
  // Q(tau2) = sum r^2 / (s^2 + tau2) - dof falls monotonically in tau2.
  auto q = [&](double tau2) {
    double sum = 0.0;
    for (const auto& [r2, s2] : rs) sum += r2 / (s2 + tau2);
    return sum - dof;
  };
  if (q(0.0) <= 0.0) return 0.0;
  double lo = 0.0, hi = 1e-4;
  while (q(hi) > 0.0 && hi < 1e6) hi *= 2.0;
  for (int it = 0; it < 100 && hi - lo > 1e-12 * hi; ++it) {
    const double mid = 0.5 * (lo + hi);
    (q(mid) > 0.0 ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

double ScatterForPrediction(double tau2, int n, double p) {
  if (!(tau2 > 0.0)) return 0.0;
  const int dof = std::max(1, static_cast<int>(std::floor(n - p + 1e-9)));
  const double t = StudentT975(dof) / kZ95;
  return tau2 * t * t;
}

CurvePrediction ModelAverage(const std::vector<double>& weights,
                             const std::vector<CurvePrediction>& predictions) {
  double wsum = 0.0, mean = 0.0;
  for (size_t i = 0; i < weights.size(); ++i) {
    const CurvePrediction& p = predictions[i];
    if (weights[i] <= 0.0 || !std::isfinite(p.mean) || !std::isfinite(p.var)) continue;
    wsum += weights[i];
    mean += weights[i] * p.mean;
  }
  if (wsum <= 0.0) return {};
  mean /= wsum;
  double var = 0.0, scatter = 0.0;
  for (size_t i = 0; i < weights.size(); ++i) {
    const CurvePrediction& p = predictions[i];
    if (weights[i] <= 0.0 || !std::isfinite(p.mean) || !std::isfinite(p.var)) continue;
    var += weights[i] / wsum * (p.var + (p.mean - mean) * (p.mean - mean));
    if (std::isfinite(p.scatter)) scatter += weights[i] / wsum * p.scatter;
  }
  return {mean, var, scatter};
}

absl::StatusOr<ModelComparison> CompareModels(const std::vector<FitPoint>& points,
                                              const SurgeLawFit& surge,
                                              const ModelOptions& options) {
  SURGE_RETURN_IF_ERROR(CheckFitPoints(points));
  ModelComparison out;
  const int n = CountPoints(points);
  for (ModelKind kind : kOrder) {
    ModelFit m;
    m.kind = kind;
    m.n = n;
    m.k = NumParams(kind) + 1;
    m.edf = NumParams(kind);
    if (kind == ModelKind::kSurge) {
      m.fitted = true;
      m.curve = surge.curve;
      m.chi2 = surge.chi2;
      m.scale = surge.scale;
    } else {
      std::vector<std::vector<double>> candidates;
      std::vector<Interval> bounds;
      ModelSetup(kind, surge.x_min, surge.x_max, &candidates, &bounds);
      const std::vector<double> start = ScanStart(kind, points, candidates, options.huber_k);
      absl::StatusOr<CurveFitResult> r =
          FitCurve(kind, points, start, bounds, options.huber_k);
      if (r.ok()) {
        m.fitted = r->covariance_ok;
        m.note = r->covariance_ok ? "" : "covariance failed";
        m.curve = r->curve;
        m.chi2 = r->chi2;
        m.scale = r->scale;
      } else {
        m.note = std::string(r.status().message());
      }
    }
    SetAicc(&m);
    SetScatter(points, options.scatter, &m);
    out.models.push_back(m);
  }
  ModelFit smooth;
  if (options.smooth_curve) {
    smooth = FitSmooth(points, n, options.huber_k);
  } else {
    smooth.kind = ModelKind::kSmooth;
    smooth.n = n;
    smooth.note = "disabled";
  }
  SetAicc(&smooth);
  SetScatter(points, options.scatter, &smooth);
  out.models.push_back(smooth);

  // Akaike weights: over the five laws (the verdict) and over all six (the
  // average).
  std::vector<double> aicc;
  for (const ModelFit& m : out.models) aicc.push_back(m.aicc);
  std::vector<double> w = AkaikeWeights(aicc);
  std::vector<double> law_aicc(aicc.begin(), aicc.end() - 1);
  std::vector<double> lw = AkaikeWeights(law_aicc);
  const bool comparable = std::any_of(lw.begin(), lw.end(), [](double x) { return x > 0; });
  if (!comparable) {  // surge alone
    std::fill(w.begin(), w.end(), 0.0);
    w[0] = lw[0] = 1.0;
  }
  lw.push_back(0.0);
  for (size_t i = 0; i < out.models.size(); ++i) {
    ModelFit& m = out.models[i];
    m.weight = w[i];
    m.law_weight = lw[i];
    if (m.kind == ModelKind::kSmooth) {
      out.smooth_weight = w[i];
    } else {
      (IsSurgeFamily(m.kind) ? out.surge_family_weight : out.monotone_weight) += lw[i];
    }
  }
  const ModelFit& sat = out.Get(ModelKind::kSaturatingSurge);
  if (sat.fitted) {
    const double c = sat.curve.params[1], u = sat.curve.params[2];
    const double beta_s2 = 1.0 / ((1.0 + std::exp(-u)) * (1.0 + std::exp(-u)));
    out.saturating_peak_ln_b = c + std::log(beta_s2) - std::log1p(-beta_s2);
  }

  // Verdict.
  const bool peak_inside = surge.identification == PeakIdentification::kIdentified &&
                           surge.ln_b_noise >= surge.x_min &&
                           surge.ln_b_noise <= surge.x_max;
  if (!comparable) {
    out.verdict = Verdict::kUndecided;
    out.verdict_reason = absl::StrFormat(
        "too few optima to compare models (n = %d; AICc needs n >= 5)", n);
  } else if (out.surge_family_weight >= options.verdict_weight && peak_inside) {
    out.verdict = Verdict::kYes;
    out.verdict_reason = absl::StrFormat(
        "surge models hold %.3f of the Akaike weight and the peak is inside the data",
        out.surge_family_weight);
  } else if (out.monotone_weight >= options.verdict_weight) {
    out.verdict = Verdict::kNo;
    out.verdict_reason = absl::StrFormat("monotone models hold %.3f of the Akaike weight",
                                         out.monotone_weight);
  } else {
    out.verdict = Verdict::kUndecided;
    out.verdict_reason = absl::StrFormat(
        "surge models hold %.3f of the Akaike weight; peak %s (identification: %s)",
        out.surge_family_weight, peak_inside ? "inside the data" : "not inside the data",
        PeakIdentificationName(surge.identification));
  }
  return out;
}

AveragedPrediction PredictAveraged(const ModelComparison& comparison, double ln_b) {
  std::vector<double> w;
  std::vector<CurvePrediction> preds;
  AveragedPrediction out;
  double wsum = 0.0;
  for (const ModelFit& m : comparison.models) {
    preds.push_back(m.weight > 0.0 ? m.curve.Predict(ln_b) : CurvePrediction{});
    const bool usable = std::isfinite(preds.back().mean) && std::isfinite(preds.back().var);
    w.push_back(usable ? m.weight : 0.0);
    wsum += w.back();
  }
  for (size_t i = 0; i < w.size(); ++i) {
    out.weights.emplace_back(ModelName(comparison.models[i].kind), wsum > 0 ? w[i] / wsum : 0.0);
  }
  const CurvePrediction avg = ModelAverage(w, preds);
  out.mean = avg.mean;
  out.se = std::sqrt(avg.PredictionVar());
  out.ci95 = {avg.mean - kZ95 * out.se, avg.mean + kZ95 * out.se};
  out.curve_se = std::sqrt(avg.var);
  out.curve_ci95 = {avg.mean - kZ95 * out.curve_se, avg.mean + kZ95 * out.curve_se};
  return out;
}

}  // namespace surge::fit
