// Comparison models, AICc, Akaike weights, verdict and model averaging (see
// models.h for the formulas).
#include "server/fit/models.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"
#include "server/fit/fit_core.h"
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
  m->aicc = m->fitted ? Aicc(m->chi2, m->n, m->k) : NAN;
  if (m->fitted && !std::isfinite(m->aicc)) {
    m->note = absl::StrFormat("no AICc: n = %d <= k + 1 = %d", m->n, m->k + 1);
  }
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

double Aicc(double rss, int n, int k) {
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
  double var = 0.0;
  for (size_t i = 0; i < weights.size(); ++i) {
    const CurvePrediction& p = predictions[i];
    if (weights[i] <= 0.0 || !std::isfinite(p.mean) || !std::isfinite(p.var)) continue;
    var += weights[i] / wsum * (p.var + (p.mean - mean) * (p.mean - mean));
  }
  return {mean, var};
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
    out.models.push_back(m);
  }

  // Akaike weights and family sums.
  std::vector<double> aicc;
  for (const ModelFit& m : out.models) aicc.push_back(m.aicc);
  std::vector<double> w = AkaikeWeights(aicc);
  const bool comparable = std::any_of(w.begin(), w.end(), [](double x) { return x > 0; });
  if (!comparable) w[0] = 1.0;  // surge alone
  for (size_t i = 0; i < out.models.size(); ++i) {
    out.models[i].weight = w[i];
    (IsSurgeFamily(out.models[i].kind) ? out.surge_family_weight : out.monotone_weight) += w[i];
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
  for (const ModelFit& m : comparison.models) {
    w.push_back(m.weight);
    preds.push_back(m.weight > 0.0 ? m.curve.Predict(ln_b) : CurvePrediction{});
    out.weights.emplace_back(ModelName(m.kind), m.weight);
  }
  const CurvePrediction avg = ModelAverage(w, preds);
  out.mean = avg.mean;
  out.se = std::sqrt(avg.var);
  out.ci95 = {avg.mean - kZ95 * out.se, avg.mean + kZ95 * out.se};
  return out;
}

}  // namespace surge::fit
