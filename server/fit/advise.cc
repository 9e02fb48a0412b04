// Advise(): interpolation of precomputed stage fits and drift at one (B, L)
// (see advise.h for the steps and formulas).
#include "server/fit/advise.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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

std::optional<LossFromSpeed> LossAtStepForBatch(const std::vector<SpeedDataFit>& speed,
                                                double batch_size, double step) {
  // (ln S_j(B), ln L_j) per target, ascending S.
  std::vector<std::pair<double, double>> pts;
  for (const SpeedDataFit& f : speed) {
    const double s = f.s_min.value + f.e_min.value / batch_size;
    if (std::isfinite(s) && s > 0.0 && f.target_loss > 0.0) {
      pts.emplace_back(std::log(s), std::log(f.target_loss));
    }
  }
  if (pts.empty()) return std::nullopt;
  std::sort(pts.begin(), pts.end());
  const double ls = std::log(std::max(step, 1.0));
  LossFromSpeed out;
  if (pts.size() == 1) {
    out.loss = std::exp(pts[0].second);
    out.extrapolated = std::fabs(ls - pts[0].first) > std::log(1.1);
    return out;
  }
  size_t i = 0;
  if (ls <= pts.front().first) {
    i = 0;
    out.extrapolated = ls < pts.front().first - 1e-9;
  } else if (ls >= pts.back().first) {
    i = pts.size() - 2;
    out.extrapolated = ls > pts.back().first + 1e-9;
  } else {
    while (i + 2 < pts.size() && pts[i + 1].first < ls) ++i;
  }
  const auto& [s0, l0] = pts[i];
  const auto& [s1, l1] = pts[i + 1];
  const double t = s1 > s0 ? (ls - s0) / (s1 - s0) : 0.0;
  out.loss = std::exp(l0 + t * (l1 - l0));
  return out;
}

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

absl::StatusOr<Advice> Advise(const JobFit& job_fit, double batch_size,
                              std::optional<int64_t> step, Criterion criterion) {
  if (!std::isfinite(batch_size) || batch_size <= 0.0) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch_size must be finite and > 0, got ", batch_size));
  }
  if (step.has_value() && *step < 0) {
    return absl::InvalidArgumentError(absl::StrCat("step must be >= 0, got ", *step));
  }
  // 0. The criterion's stages and drift.
  struct View {
    const std::vector<StageFit>& stages;
    const DriftFit& drift;
    const JobFit::LossCurveOpt& loss_curve;
    const FitOptions& options;
  };
  const bool fastest = criterion == Criterion::kFastest;
  const View fit{fastest ? job_fit.fastest.stages : job_fit.stages,
                 fastest ? job_fit.fastest.drift : job_fit.drift, job_fit.loss_curve,
                 job_fit.options};
  if (fit.stages.empty()) {
    std::vector<std::string> why;
    for (const SkippedStage& s : fastest ? job_fit.fastest.skipped : job_fit.skipped_stages) {
      why.emplace_back(s.status.message());
    }
    std::string msg = fastest
        ? "criterion fastest needs training runs (plain or full runs) at >= 3 batch sizes with "
          ">= 3 learning rates each that reach a common target loss; the job has no such stage"
        : "the job has no fitted stage for criterion improvement";
    if (!why.empty()) absl::StrAppend(&msg, " (", absl::StrJoin(why, "; "), ")");
    if (!fastest && !job_fit.fastest.stages.empty()) {
      absl::StrAppend(&msg, "; ask with criterion fastest");
    }
    return absl::FailedPreconditionError(msg);
  }
  Advice adv;
  adv.batch_size = batch_size;
  adv.step = step;
  adv.criterion = criterion;
  const double x = std::log(batch_size);
  int evidence = 0;
  for (const StageFit& st : fit.stages) evidence |= st.evidence;
  const bool run_based = HasRunEvidence(evidence);

  // 1. The loss the advice is for.
  std::optional<LossFromSpeed> from_speed;
  if (step.has_value() && run_based) {
    from_speed = LossAtStepForBatch(job_fit.speed_data, batch_size, static_cast<double>(*step));
  }
  if (from_speed.has_value()) {
    adv.loss = from_speed->loss;
    adv.flags.extrapolated_in_step = from_speed->extrapolated;
    adv.step_mapping = "speed_data";
  } else if (step.has_value()) {
    adv.step_mapping = "loss_curve";
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
  int used_evidence = 0;
  std::set<int64_t> used = {s0.stage_id, s1.stage_id};
  if (linear_drift) used.insert(fit.drift.stage_ids.begin(), fit.drift.stage_ids.end());
  double b_min = HUGE_VAL, b_max = 0.0;
  for (const StageFit& st : fit.stages) {
    if (!used.count(st.stage_id)) continue;
    adv.stages_used.push_back(st.stage_id);
    adv.optima_used += static_cast<int>(st.optima.size());
    adv.probe_points_used += st.n_probe_points;
    adv.runs_used += st.n_runs;
    used_evidence |= st.evidence;
    b_min = std::min(b_min, st.batch_min);
    b_max = std::max(b_max, st.batch_max);
  }
  adv.evidence = EvidenceNames(used_evidence);
  adv.flags.short_horizon = (used_evidence & kProbes) != 0 && !HasRunEvidence(used_evidence);
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
