// Advise(): interpolation of precomputed stage fits and drift at one (B, L)
// (see advise.h for the steps and formulas).
#include "server/fit/advise.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server/fit/speed_data.h"

namespace surge::fit {
namespace {

// Surge prediction at x from the drift point (a, b, cov):
//   mu = a - ln cosh((x - b) / 2),  g = [1, tanh((x - b) / 2) / 2],  var = g^T C g.
CurvePrediction SurgeFromDrift(const DriftPoint& d, double x) {
  const double t = 0.5 * std::tanh(0.5 * (x - d.b));
  CurvePrediction p;
  p.mean = d.a - LogCosh(0.5 * (x - d.b));
  p.var = d.cov(0, 0) + 2.0 * t * d.cov(0, 1) + t * t * d.cov(1, 1);
  return p;
}

}  // namespace

const char* BNoiseKindName(BNoiseKind k) {
  switch (k) {
    case BNoiseKind::kPoint:
      return "point";
    case BNoiseKind::kLowerBound:
      return "lower_bound";
    case BNoiseKind::kUpperBound:
      return "upper_bound";
    case BNoiseKind::kUnknown:
      return "unknown";
  }
  return "unknown";
}

absl::StatusOr<Advice> Advise(const JobFit& fit, double batch_size,
                              std::optional<int64_t> step) {
  if (!std::isfinite(batch_size) || batch_size <= 0.0) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch_size must be finite and > 0, got ", batch_size));
  }
  if (step.has_value() && *step < 0) {
    return absl::InvalidArgumentError(absl::StrCat("step must be >= 0, got ", *step));
  }
  if (fit.stages.empty()) return absl::FailedPreconditionError("the job has no fitted stage");
  Advice adv;
  adv.batch_size = batch_size;
  adv.step = step;
  const double x = std::log(batch_size);

  // 1. The loss the advice is for.
  if (step.has_value()) {
    if (!fit.loss_curve.has_value()) {
      return absl::FailedPreconditionError(
          "advice at a step needs a loss curve: the job has no plain-run loss records "
          "(ask without a step for the latest stage)");
    }
    const LossAtStep l = fit.loss_curve->At(*step);
    adv.loss = l.loss;
    adv.flags.extrapolated_in_step = l.extrapolated;
  } else {
    adv.loss = fit.stages.front().stage_loss;  // lowest loss: the latest stage
  }
  const double ln_l = std::log(adv.loss);

  // 2. Bracketing stages (ascending loss) and interpolation weight lambda.
  const size_t ns = fit.stages.size();
  size_t i0 = 0, i1 = 0;
  double lambda = 0.0;
  const double l_lo = std::log(fit.stages.front().stage_loss);
  const double l_hi = std::log(fit.stages.back().stage_loss);
  const double tol = 1e-9;
  if (ln_l <= l_lo) {
    adv.flags.extrapolated_in_loss = ln_l < l_lo - tol;
  } else if (ln_l >= l_hi) {
    i0 = i1 = ns - 1;
    adv.flags.extrapolated_in_loss = ln_l > l_hi + tol;
  } else {
    while (i1 + 1 < ns && std::log(fit.stages[i1].stage_loss) < ln_l) ++i1;
    i0 = i1 - 1;
    const double la = std::log(fit.stages[i0].stage_loss);
    const double lb = std::log(fit.stages[i1].stage_loss);
    lambda = (ln_l - la) / (lb - la);
  }
  const StageFit& s0 = fit.stages[i0];
  const StageFit& s1 = fit.stages[i1];
  const StageFit& nearest = lambda <= 0.5 ? s0 : s1;
  const bool linear_drift = fit.drift.mode == DriftMode::kLinear;

  // 3. Per-model interpolated predictions and weights, then the average.
  const size_t nm = s0.models.models.size();
  std::vector<double> w(nm, 0.0);
  std::vector<CurvePrediction> preds(nm);
  const DriftPoint drift_point = linear_drift ? fit.drift.Evaluate(ln_l) : DriftPoint{};
  for (size_t m = 0; m < nm; ++m) {
    const ModelFit& m0 = s0.models.models[m];
    const ModelFit& m1 = s1.models.models[m];
    w[m] = (1.0 - lambda) * m0.weight + lambda * m1.weight;
    if (w[m] <= 0.0) continue;
    if (m0.kind == ModelKind::kSurge && linear_drift) {
      preds[m] = SurgeFromDrift(drift_point, x);
      continue;
    }
    const CurvePrediction p0 = m0.weight > 0.0 ? m0.curve.Predict(x) : m1.curve.Predict(x);
    const CurvePrediction p1 = m1.weight > 0.0 ? m1.curve.Predict(x) : p0;
    preds[m].mean = (1.0 - lambda) * p0.mean + lambda * p1.mean;
    preds[m].var = (1.0 - lambda) * p0.var + lambda * p1.var;
  }
  const CurvePrediction avg = ModelAverage(w, preds);
  if (!std::isfinite(avg.mean) || !std::isfinite(avg.var)) {
    return absl::FailedPreconditionError("no model gives a finite prediction at this batch size");
  }
  adv.ln_lr_se = std::sqrt(avg.var);
  adv.lr = std::exp(avg.mean);
  adv.lr_ci95 = {std::exp(avg.mean - kZ95 * adv.ln_lr_se), std::exp(avg.mean + kZ95 * adv.ln_lr_se)};
  double wsum = 0.0;
  for (double v : w) wsum += v;
  for (size_t m = 0; m < nm; ++m) {
    adv.model_weights.push_back({ModelName(s0.models.models[m].kind),
                                 wsum > 0.0 ? w[m] / wsum : 0.0,
                                 w[m] > 0.0 ? std::exp(preds[m].mean) : NAN});
  }

  // 4. B_noise and eps_max.
  if (linear_drift) {
    const double sb = std::sqrt(drift_point.cov(1, 1)), sa = std::sqrt(drift_point.cov(0, 0));
    adv.b_noise_kind = BNoiseKind::kPoint;
    adv.b_noise = std::exp(drift_point.b);
    adv.b_noise_ci95 = {std::exp(drift_point.b - kZ95 * sb), std::exp(drift_point.b + kZ95 * sb)};
    adv.eps_max = std::exp(drift_point.a);
    adv.eps_max_ci95 = {std::exp(drift_point.a - kZ95 * sa), std::exp(drift_point.a + kZ95 * sa)};
  } else {
    const SurgeLawFit& sf = nearest.surge;
    switch (sf.identification) {
      case PeakIdentification::kIdentified: {
        const Interval b = sf.LnBNoise().Ci95(), a = sf.LnEpsMax().Ci95();
        adv.b_noise_kind = BNoiseKind::kPoint;
        adv.b_noise = std::exp(sf.ln_b_noise);
        adv.b_noise_ci95 = {std::exp(b.lo), std::exp(b.hi)};
        adv.eps_max = std::exp(sf.ln_eps_max);
        adv.eps_max_ci95 = {std::exp(a.lo), std::exp(a.hi)};
        break;
      }
      case PeakIdentification::kBelowPeak:
        adv.b_noise_kind = BNoiseKind::kLowerBound;
        adv.b_noise = std::exp(sf.ln_b_noise_bound);
        adv.b_noise_ci95 = {adv.b_noise, HUGE_VAL};
        break;
      case PeakIdentification::kAbovePeak:
        adv.b_noise_kind = BNoiseKind::kUpperBound;
        adv.b_noise = std::exp(sf.ln_b_noise_bound);
        adv.b_noise_ci95 = {0.0, adv.b_noise};
        break;
      case PeakIdentification::kNotIdentified:
        adv.b_noise_kind = BNoiseKind::kUnknown;
        break;
    }
  }
  adv.flags.b_noise_bound_only = adv.b_noise_kind != BNoiseKind::kPoint;

  // 5. Verdict, evidence, batch advice, extrapolation in B.
  adv.verdict = nearest.models.verdict;
  adv.verdict_reason = nearest.models.verdict_reason;
  adv.flags.surge_not_supported = adv.verdict != Verdict::kYes;
  std::set<int64_t> used = {s0.stage_id, s1.stage_id};
  if (linear_drift) used.insert(fit.drift.stage_ids.begin(), fit.drift.stage_ids.end());
  double b_min = HUGE_VAL, b_max = 0.0;
  for (const StageFit& st : fit.stages) {
    if (!used.count(st.stage_id)) continue;
    adv.stages_used.push_back(st.stage_id);
    adv.optima_used += static_cast<int>(st.optima.size());
    adv.probe_points_used += st.n_probe_points;
    b_min = std::min(b_min, st.batch_min);
    b_max = std::max(b_max, st.batch_max);
  }
  const double f = fit.options.batch_extrapolation_factor;
  adv.flags.extrapolated_in_batch = batch_size < b_min / f || batch_size > b_max * f;
  if (std::isfinite(adv.b_noise) && adv.b_noise > 0.0) {
    adv.recommended_batch_size = adv.b_noise;
    adv.steps_ratio = StepsRatio(batch_size, adv.b_noise);
    adv.examples_ratio = ExamplesRatio(batch_size, adv.b_noise);
  }
  return adv;
}

}  // namespace surge::fit
