// Comparison models fitted on the same optima as the surge law, their AICc
// and Akaike weights, the verdict on whether the surge is supported, and the
// model-averaged prediction of ln eps_opt(B).
//
// Models (model_curve.h, all in ln space, same points, s_i, Huber loss and
// censoring as the surge fit): surge law, SGD law, alpha form, power law,
// saturating surge (the five laws), and the shape-free smooth curve
// (smooth_curve.h), which joins the model average but not the verdict.
//
// AICc (Gaussian likelihood of the weighted residuals with a common unknown
// scale sigma^2 fitted by maximum likelihood, sigma^2 = RSS / n):
//   RSS  = sum rho(r_i^2) = 2 C  (equals sum r_i^2 without outliers),
//   n    = uncensored optima,  k = model parameters + 1 (sigma)
//          (the smooth curve: k = edf + 1, its effective number of parameters),
//   AIC  = n ln(RSS / n) + 2 k,
//   AICc = AIC + 2 k (k + 1) / (n - k - 1)   (only when n > k + 1;
//          otherwise the model gets no AICc and weight 0),
//   w_m  = exp(-(AICc_m - AICc_min) / 2) / sum_m' exp(...).
// When no model has an AICc (n <= 4) the surge law gets weight 1 and the
// verdict is "undecided".
//
// Verdict (on the five laws' weights, renormalized among themselves: the
// smooth curve follows data no law describes, it is not evidence for or
// against the surge):
//   yes        surge + saturating surge hold >= 0.9 of the weight AND the
//              surge peak is identified with ln B_noise inside [ln B_min, ln B_max];
//   no         SGD + alpha form + power law hold >= 0.9 of the weight;
//   undecided  otherwise.
//
// Scatter of real optima around a curve (random effects; Paule & Mandel 1982,
// the estimator meta-analysis uses for between-study variance): the measured
// optima can scatter around a law by more than their own SEs s_i, so each
// model m gets tau_m^2 >= 0 solving
//   sum_i r_i^2 / (s_i^2 + tau^2) = n - p,   r_i = y_i - f_m(x_i)
// (uncensored points; p = the curve's own free parameters: 1 for a surge limit,
// the edf for the smooth curve; tau^2 = 0
// when sum r_i^2 / s_i^2 <= n - p). Because tau^2 is estimated from only
// n - p degrees of freedom, the curve's scatter used downstream is
//   scatter_m = tau_m^2 (t_0.975(n - p) / 1.96)^2   (n - p rounded down, >= 1).
//
// Model averaging (Buckland et al. 1997), with each model's own delta-method
// variance var_m and scatter_m:
//   mu_bar = sum w_m mu_m,
//   curve var      = sum w_m (var_m + (mu_m - mu_bar)^2)          (confidence)
//   prediction var = sum w_m (var_m + scatter_m + (mu_m - mu_bar)^2)
// The prediction interval mu_bar +- 1.96 sqrt(prediction var) is for the
// optimum at B itself (where a measurement at B would find it, up to that
// measurement's own error); it is what advice reports as its interval.
#ifndef SURGE_SERVER_FIT_MODELS_H_
#define SURGE_SERVER_FIT_MODELS_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "server/fit/fit_types.h"
#include "server/fit/model_curve.h"
#include "server/fit/surge_law.h"

namespace surge::fit {

enum class Verdict { kYes, kNo, kUndecided };
const char* VerdictName(Verdict v);  // "yes", "no", "undecided"

// One fitted model.
struct ModelFit {
  ModelKind kind = ModelKind::kSurge;  // reported kind (kSurge for the limits)
  bool fitted = false;                 // false: see `note`
  std::string note;
  ModelCurve curve;                    // covariance scaled by `scale`; curve.scatter set
  double chi2 = NAN;                   // sum rho at the optimum
  double scale = 1.0;
  int n = 0;                           // uncensored points
  int k = 0;                           // parameters + 1 (smooth: edf + 1, rounded)
  double edf = NAN;                    // parameters (smooth: tr(H))
  double tau2 = 0.0;                   // Paule-Mandel scatter variance (ln^2)
  double aicc = NAN;                   // NaN when n <= k + 1 or not fitted
  double weight = 0.0;                 // Akaike weight among all six (the average)
  double law_weight = 0.0;             // among the five laws (the verdict; 0 for smooth)
};

struct ModelComparison {
  // Always in this order: surge, sgd, alpha_form, power_law, saturating_surge,
  // smooth.
  std::vector<ModelFit> models;
  double surge_family_weight = 0.0;  // law weights (the verdict's)
  double monotone_weight = 0.0;
  double smooth_weight = 0.0;        // the smooth curve's weight in the average
  Verdict verdict = Verdict::kUndecided;
  std::string verdict_reason;
  // ln of the saturating surge's peak B_s beta_s^2 / (1 - beta_s^2) (NaN if not fitted).
  double saturating_peak_ln_b = NAN;

  const ModelFit& Get(ModelKind kind) const;
};

struct ModelOptions {
  double huber_k = 2.0;
  double verdict_weight = 0.9;
  // Both false: the fit before prediction intervals and the smooth curve
  // (surge-holdout --laws_only, for before/after comparisons).
  bool smooth_curve = true;  // fit the smooth curve (else: not fitted, "disabled")
  bool scatter = true;       // estimate tau^2 (else 0: curve-only intervals)
};

// Fits the comparison models on `points` (already checked by the surge fit)
// and ranks them together with `surge`.
absl::StatusOr<ModelComparison> CompareModels(const std::vector<FitPoint>& points,
                                              const SurgeLawFit& surge,
                                              const ModelOptions& options = {});

// AICc as above (NaN when n <= k + 1).
double Aicc(double rss, int n, double k);
// tau^2 of the file comment for the curve values f[i] at the points (p
// parameters, effective number allowed).
double ScatterVariance(const std::vector<FitPoint>& pts, const double* f, double p);
// tau^2 (t_0.975(n - p) / 1.96)^2, n - p rounded down (0 when tau2 is 0).
double ScatterForPrediction(double tau2, int n, double p);
// Akaike weights; NaN entries get weight 0. All NaN: all zero.
std::vector<double> AkaikeWeights(const std::vector<double>& aicc);

// Buckland model average of predictions with weights (renormalized over the
// entries with positive weight and finite mean/variance).
CurvePrediction ModelAverage(const std::vector<double>& weights,
                             const std::vector<CurvePrediction>& predictions);

// Averaged ln eps_opt at ln B from one comparison, with its 95% prediction
// interval, its curve-only interval and the weights used (model name, weight;
// a model that predicts NaN here, the smooth curve outside its knots, has its
// weight moved to the others).
struct AveragedPrediction {
  double mean = NAN;
  double se = NAN;        // prediction SE: sqrt(curve var + scatter)
  Interval ci95;          // mean +- 1.96 se
  double curve_se = NAN;  // the curve's own SE
  Interval curve_ci95;
  std::vector<std::pair<std::string, double>> weights;
};
AveragedPrediction PredictAveraged(const ModelComparison& comparison, double ln_b);

}  // namespace surge::fit

#endif  // SURGE_SERVER_FIT_MODELS_H_
