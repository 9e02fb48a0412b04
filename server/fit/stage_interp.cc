// Implementation of the shared advice steps (see stage_interp.h).
#include "server/fit/stage_interp.h"

#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "server/fit/advise.h"
#include "server/fit/models.h"

namespace surge::fit {
namespace {

// Surge prediction from the drift point (a, b, cov) at x, or of the
// difference between x and x0:
//   f(x) = a - ln cosh((x - b) / 2),  g(x) = [1, t(x)],  t(x) = tanh((x - b) / 2) / 2
//   value:      mu = f(x),          var = g^T C g
//   difference: mu = f(x) - f(x0),  var = (t(x) - t(x0))^2 C_bb  (a cancels)
CurvePrediction SurgeFromDrift(const DriftPoint& d, double x, std::optional<double> x0) {
  const double t = 0.5 * std::tanh(0.5 * (x - d.b));
  CurvePrediction p;
  if (!x0.has_value()) {
    p.mean = d.a - LogCosh(0.5 * (x - d.b));
    p.var = d.cov(0, 0) + 2.0 * t * d.cov(0, 1) + t * t * d.cov(1, 1);
    return p;
  }
  const double t0 = 0.5 * std::tanh(0.5 * (*x0 - d.b));
  p.mean = LogCosh(0.5 * (*x0 - d.b)) - LogCosh(0.5 * (x - d.b));
  p.var = (t - t0) * (t - t0) * d.cov(1, 1);
  return p;
}

// Model m's prediction at one stage. A surge limit's difference assumes the
// peak is far away, while the data only bound it (B_noise >= or <= b, the
// stage's ln_b_noise_bound). With the peak at its bound the difference would be
//   D_b = ln cosh((x0 - b) / 2) - ln cosh((x - b) / 2);
// the gap to the limit's D enters as a systematic term,
//   var += ((D - D_b) / 1.96)^2,
// so the 95% interval reaches the curve whose peak sits at the bound (the
// limit alone has no error in its slope, and would give a zero-width ratio).
CurvePrediction CurveAt(const StageFit& stage, const ModelCurve& c, double x,
                        std::optional<double> x0) {
  if (!x0.has_value()) return c.Predict(x);
  CurvePrediction p = c.PredictDifference(x, *x0);
  const bool limit =
      c.kind == ModelKind::kSurgeRisingLimit || c.kind == ModelKind::kSurgeFallingLimit;
  const double b = stage.surge.ln_b_noise_bound;
  if (limit && std::isfinite(b) && std::isfinite(p.mean)) {
    const double d_b = LogCosh(0.5 * (*x0 - b)) - LogCosh(0.5 * (x - b));
    const double gap = (p.mean - d_b) / kZ95;
    p.var += gap * gap;
  }
  return p;
}

}  // namespace

CriterionView ViewFor(const JobFit& fit, Criterion criterion) {
  const bool fastest = criterion == Criterion::kFastest;
  CriterionView v;
  v.stages = fastest ? &fit.fastest.stages : &fit.stages;
  v.drift = fastest ? &fit.fastest.drift : &fit.drift;
  int evidence = 0;
  for (const StageFit& st : *v.stages) evidence |= st.evidence;
  v.run_based = HasRunEvidence(evidence);
  return v;
}

absl::StatusOr<StepLoss> LossForStep(const JobFit& fit, const CriterionView& view,
                                     double batch_size, int64_t step) {
  StepLoss out;
  if (view.run_based) {
    const std::optional<LossFromSpeed> s =
        LossAtStepForBatch(fit.speed_data, batch_size, static_cast<double>(step));
    if (s.has_value()) {
      out.loss = s->loss;
      out.extrapolated = s->extrapolated;
      out.mapping = "speed_data";
      return out;
    }
  }
  if (!fit.loss_curve.has_value()) {
    return absl::FailedPreconditionError(
        "advice at a step needs a loss curve: the job has no plain-run loss records "
        "(ask without a step for the latest stage)");
  }
  const LossAtStep l = fit.loss_curve->At(step);
  out.loss = l.loss;
  out.extrapolated = l.extrapolated;
  out.mapping = "loss_curve";
  return out;
}

StageBracket BracketLoss(const std::vector<StageFit>& stages, double ln_l) {
  StageBracket b;
  const size_t ns = stages.size();
  const double l_lo = std::log(stages.front().stage_loss);
  const double l_hi = std::log(stages.back().stage_loss);
  const double tol = 1e-9;
  if (ln_l <= l_lo) {
    b.extrapolated = ln_l < l_lo - tol;
  } else if (ln_l >= l_hi) {
    b.i0 = b.i1 = ns - 1;
    b.extrapolated = ln_l > l_hi + tol;
  } else {
    while (b.i1 + 1 < ns && std::log(stages[b.i1].stage_loss) < ln_l) ++b.i1;
    b.i0 = b.i1 - 1;
    const double la = std::log(stages[b.i0].stage_loss);
    const double lb = std::log(stages[b.i1].stage_loss);
    b.lambda = (ln_l - la) / (lb - la);
  }
  return b;
}

ModelPredictions PredictModels(const CriterionView& view, const StageBracket& bracket,
                               double ln_l, double x, std::optional<double> x0) {
  const StageFit& s0 = (*view.stages)[bracket.i0];
  const StageFit& s1 = (*view.stages)[bracket.i1];
  const double lambda = bracket.lambda;
  const bool linear_drift = view.drift->mode == DriftMode::kLinear;
  const DriftPoint drift_point = linear_drift ? view.drift->Evaluate(ln_l) : DriftPoint{};
  const size_t nm = s0.models.models.size();
  ModelPredictions out;
  out.weights.assign(nm, 0.0);
  out.predictions.assign(nm, CurvePrediction{});
  for (size_t m = 0; m < nm; ++m) {
    const ModelFit& m0 = s0.models.models[m];
    const ModelFit& m1 = s1.models.models[m];
    out.weights[m] = (1.0 - lambda) * m0.weight + lambda * m1.weight;
    if (out.weights[m] <= 0.0) continue;
    if (m0.kind == ModelKind::kSurge && linear_drift) {
      out.predictions[m] = SurgeFromDrift(drift_point, x, x0);
      const double scatter = (1.0 - lambda) * m0.curve.scatter + lambda * m1.curve.scatter;
      out.predictions[m].scatter = x0.has_value() ? 2.0 * scatter : scatter;
      continue;
    }
    const CurvePrediction p0 =
        m0.weight > 0.0 ? CurveAt(s0, m0.curve, x, x0) : CurveAt(s1, m1.curve, x, x0);
    const CurvePrediction p1 = m1.weight > 0.0 ? CurveAt(s1, m1.curve, x, x0) : p0;
    out.predictions[m].mean = (1.0 - lambda) * p0.mean + lambda * p1.mean;
    out.predictions[m].var = (1.0 - lambda) * p0.var + lambda * p1.var;
    out.predictions[m].scatter = (1.0 - lambda) * p0.scatter + lambda * p1.scatter;
    // A model that cannot predict here (the smooth curve outside its knots)
    // leaves its weight to the others.
    if (!std::isfinite(out.predictions[m].mean) || !std::isfinite(out.predictions[m].var)) {
      out.weights[m] = 0.0;
    }
  }
  out.average = ModelAverage(out.weights, out.predictions);
  return out;
}

}  // namespace surge::fit
