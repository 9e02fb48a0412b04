// Evaluation of the fitted curves and their delta-method variance.
#include "server/fit/model_curve.h"

#include "ceres/jet.h"
#include "server/fit/fit_types.h"
#include "server/fit/smooth_curve.h"

namespace surge::fit {

const char* CensoringName(Censoring c) {
  switch (c) {
    case Censoring::kNone:
      return "none";
    case Censoring::kUpperBound:
      return "upper_bound";
    case Censoring::kLowerBound:
      return "lower_bound";
  }
  return "unknown";
}

std::string EvidenceNames(int mask) {
  std::string out;
  auto add = [&](int bit, const char* name) {
    if ((mask & bit) == 0) return;
    if (!out.empty()) out += "+";
    out += name;
  };
  add(kPlainRuns, "plain_runs");
  add(kFullRuns, "full_runs");
  add(kProbes, "probes");
  add(kMeasured, "measured");
  return out.empty() ? "none" : out;
}

const char* CriterionName(Criterion c) {
  return c == Criterion::kFastest ? "fastest" : "improvement";
}

int NumParams(ModelKind kind) {
  switch (kind) {
    case ModelKind::kSurge:
    case ModelKind::kSgd:
    case ModelKind::kPowerLaw:
      return 2;
    case ModelKind::kAlphaForm:
    case ModelKind::kSaturatingSurge:
      return 3;
    case ModelKind::kSurgeRisingLimit:
    case ModelKind::kSurgeFallingLimit:
      return 1;
    case ModelKind::kSmooth:
      return 0;
  }
  return 0;
}

const char* ModelName(ModelKind kind) {
  switch (kind) {
    case ModelKind::kSurge:
    case ModelKind::kSurgeRisingLimit:
    case ModelKind::kSurgeFallingLimit:
      return "surge";
    case ModelKind::kSgd:
      return "sgd";
    case ModelKind::kAlphaForm:
      return "alpha_form";
    case ModelKind::kPowerLaw:
      return "power_law";
    case ModelKind::kSaturatingSurge:
      return "saturating_surge";
    case ModelKind::kSmooth:
      return "smooth";
  }
  return "unknown";
}

bool IsSurgeFamily(ModelKind kind) {
  return kind == ModelKind::kSurge || kind == ModelKind::kSurgeRisingLimit ||
         kind == ModelKind::kSurgeFallingLimit ||
         kind == ModelKind::kSaturatingSurge;
}

double EvalCurveWithGradient(ModelKind kind, double x, const double* p,
                             double* grad) {
  using J = ceres::Jet<double, 3>;
  const int n = NumParams(kind);
  J jp[3];
  for (int i = 0; i < n; ++i) jp[i] = J(p[i], i);
  const J f = EvalCurve(kind, x, jp);
  for (int i = 0; i < n; ++i) grad[i] = f.v[i];
  return f.a;
}

CurvePrediction ModelCurve::Predict(double x) const {
  if (kind == ModelKind::kSmooth) {
    CurvePrediction p = PredictSmooth(*this, x);
    p.scatter = scatter;
    return p;
  }
  const int n = NumParams(kind);
  double g[3] = {0, 0, 0};
  CurvePrediction out;
  out.mean = EvalCurveWithGradient(kind, x, params.data(), g);
  double var = 0.0;
  if (cov.rows() == n && cov.cols() == n) {
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < n; ++j) var += g[i] * cov(i, j) * g[j];
    }
  } else {
    var = NAN;
  }
  out.var = var < 0.0 ? 0.0 : var;
  out.scatter = scatter;
  return out;
}

CurvePrediction ModelCurve::PredictDifference(double x1, double x0) const {
  if (kind == ModelKind::kSmooth) {
    CurvePrediction p = PredictSmoothDifference(*this, x1, x0);
    p.scatter = 2.0 * scatter;
    return p;
  }
  const int n = NumParams(kind);
  double g1[3] = {0, 0, 0}, g0[3] = {0, 0, 0};
  CurvePrediction out;
  out.mean = EvalCurveWithGradient(kind, x1, params.data(), g1) -
             EvalCurveWithGradient(kind, x0, params.data(), g0);
  if (cov.rows() != n || cov.cols() != n) {
    out.var = NAN;
    return out;
  }
  double var = 0.0;
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) var += (g1[i] - g0[i]) * cov(i, j) * (g1[j] - g0[j]);
  }
  out.var = var < 0.0 ? 0.0 : var;
  out.scatter = 2.0 * scatter;
  return out;
}

}  // namespace surge::fit
