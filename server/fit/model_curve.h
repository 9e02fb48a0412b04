// The curves ln eps_opt(ln B) that server/fit knows how to fit, their
// evaluation (templated, so Ceres can differentiate them), and a fitted curve
// that predicts ln eps_opt with a delta-method variance.
//
// With x = ln B, the curves are (all in ln space):
//   kSurge            [a, b]         a - ln cosh((x - b) / 2)
//                                    (a = ln eps_max, b = ln B_noise; Eq. 2)
//   kSgd              [a, b]         a - ln(1 + e^(b - x))
//                                    (eps_max / (1 + B_noise / B))
//   kAlphaForm        [a, b, alpha]  a - alpha ln(1 + e^(b - x)), alpha in [0.5, 1]
//   kPowerLaw         [c, alpha]     c + alpha x              (c = ln of the prefactor)
//   kSaturatingSurge  [a, c, u]      a - ln cosh(ln beta(x) - ln beta_s)
//                                    beta(x) = (1 + e^(c - x))^(-1/2), c = ln B_s,
//                                    beta_s = 1 / (1 + e^-u)   (logit transform)
//                                    which equals eps_max / ((beta_s/beta + beta/beta_s)/2);
//                                    peak at B_s beta_s^2 / (1 - beta_s^2).
//   kSurgeRisingLimit [k]            k + ln 2 + x / 2,  k = a - b / 2
//                                    (the surge law for B << B_noise)
//   kSurgeFallingLimit[k]            k + ln 2 - x / 2,  k = a + b / 2
//                                    (the surge law for B >> B_noise)
//   kSmooth           [t_1..t_n, g_1..g_n]  a penalized spline through the
//                                    knots t (ln B) with fitted values g
//                                    (smooth_curve.h; not a law: it joins the
//                                    model average, never the verdict, and is
//                                    NaN outside [t_1, t_n])
// The two limits are what the surge law reduces to when the data lie on one
// side of the peak only; they are reported under the name "surge".
#ifndef SURGE_SERVER_FIT_MODEL_CURVE_H_
#define SURGE_SERVER_FIT_MODEL_CURVE_H_

#include <cmath>
#include <vector>

#include "Eigen/Core"

namespace surge::fit {

enum class ModelKind {
  kSurge = 0,
  kSgd,
  kAlphaForm,
  kPowerLaw,
  kSaturatingSurge,
  kSurgeRisingLimit,
  kSurgeFallingLimit,
  kSmooth,
};

// Number of parameters of a curve (0 for kSmooth, whose effective number
// comes from its fit).
int NumParams(ModelKind kind);
// Stable short name: "surge", "sgd", "alpha_form", "power_law",
// "saturating_surge" (both limits are "surge"), "smooth".
const char* ModelName(ModelKind kind);
// True for the curves with a peak (surge and saturating surge, limits included).
bool IsSurgeFamily(ModelKind kind);

// ln cosh(z), stable for large |z|: |z| + ln(1 + e^(-2|z|)) - ln 2.
template <typename T>
T LogCosh(const T& z) {
  using std::abs;
  using std::exp;
  using std::log1p;
  const T az = abs(z);
  return az + log1p(exp(-2.0 * az)) - M_LN2;
}

// ln(1 + e^u), stable for large |u|.
template <typename T>
T Softplus(const T& u) {
  using std::exp;
  using std::log1p;
  if (u > T(0.0)) return u + log1p(exp(-u));
  return log1p(exp(u));
}

// ln eps_opt at x = ln B for the curve `kind` with parameters p.
template <typename T>
T EvalCurve(ModelKind kind, double x, const T* p) {
  switch (kind) {
    case ModelKind::kSurge:
      return p[0] - LogCosh((T(x) - p[1]) * 0.5);
    case ModelKind::kSgd:
      return p[0] - Softplus(p[1] - T(x));
    case ModelKind::kAlphaForm:
      return p[0] - p[2] * Softplus(p[1] - T(x));
    case ModelKind::kPowerLaw:
      return p[0] + p[1] * x;
    case ModelKind::kSaturatingSurge: {
      const T ln_beta = -0.5 * Softplus(p[1] - T(x));
      const T ln_beta_s = -Softplus(-p[2]);
      return p[0] - LogCosh(ln_beta - ln_beta_s);
    }
    case ModelKind::kSurgeRisingLimit:
      return p[0] + M_LN2 + 0.5 * x;
    case ModelKind::kSurgeFallingLimit:
      return p[0] + M_LN2 - 0.5 * x;
    case ModelKind::kSmooth:
      break;  // not a closed form: PredictSmooth
  }
  return T(NAN);
}

// Value of a fitted curve at one x: mean and variance of ln eps_opt (the
// curve's own uncertainty), and `scatter`, the variance of a real optimum
// around the curve (ModelCurve::scatter; twice it for a difference of two
// batch sizes, whose deviations are independent). A 95% prediction interval
// for the optimum at x is mean +- 1.96 sqrt(var + scatter); the curve-only
// (confidence) interval is mean +- 1.96 sqrt(var).
struct CurvePrediction {
  double mean = NAN;
  double var = NAN;
  double scatter = 0.0;

  double PredictionVar() const { return var + scatter; }
};

// A fitted curve: parameters and their covariance (already multiplied by the
// fit's variance scale factor). Predict() uses the delta method:
//   var(f(x)) = g^T C g,  g = d f(x; p) / d p  (forward-mode autodiff).
// `scatter` is the variance of real optima around the curve beyond their
// measurement errors (models.h, "Scatter"), carried into every prediction.
struct ModelCurve {
  ModelKind kind = ModelKind::kSurge;
  std::vector<double> params;
  Eigen::MatrixXd cov;
  double scatter = 0.0;
  // kSmooth only: the n x n map from knot values to second derivatives
  // (smooth_curve.h), kept from the fit so that a prediction costs O(n^2).
  Eigen::MatrixXd aux;

  CurvePrediction Predict(double x) const;

  // f(x1) - f(x0) with its delta-method variance from the joint covariance:
  //   var = (g1 - g0)^T C (g1 - g0),  g_i = d f(x_i; p) / d p.
  // Errors common to both batch sizes (e.g. the level a) cancel.
  CurvePrediction PredictDifference(double x1, double x0) const;
};

// f(x; p) and its gradient with respect to p (grad must hold NumParams).
double EvalCurveWithGradient(ModelKind kind, double x, const double* p,
                             double* grad);

}  // namespace surge::fit

#endif  // SURGE_SERVER_FIT_MODEL_CURVE_H_
