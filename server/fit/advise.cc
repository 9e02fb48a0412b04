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
#include "server/fit/stage_interp.h"
#include "server/util/status_macros.h"

namespace surge::fit {
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
                              std::optional<int64_t> step, Criterion criterion,
                              const std::optional<LrReference>& reference) {
  if (!std::isfinite(batch_size) || batch_size <= 0.0) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch_size must be finite and > 0, got ", batch_size));
  }
  if (step.has_value() && *step < 0) {
    return absl::InvalidArgumentError(absl::StrCat("step must be >= 0, got ", *step));
  }
  if (reference.has_value()) SURGE_RETURN_IF_ERROR(ValidateReference(*reference));
  // 0. The criterion's stages and drift.
  const bool fastest = criterion == Criterion::kFastest;
  const CriterionView view = ViewFor(job_fit, criterion);
  if (view.stages->empty()) {
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
  const std::vector<StageFit>& stages = *view.stages;
  Advice adv;
  adv.batch_size = batch_size;
  adv.step = step;
  adv.criterion = criterion;
  const double x = std::log(batch_size);

  // 1. The loss the advice is for; a reference tuned at a step or loss sets
  // it when the request has no step.
  std::optional<double> ref_loss;
  if (reference.has_value() && reference->loss.has_value()) ref_loss = *reference->loss;
  if (reference.has_value() && reference->step.has_value()) {
    SURGE_ASSIGN_OR_RETURN(StepLoss l,
                           LossForStep(job_fit, view, reference->batch_size, *reference->step));
    ref_loss = l.loss;
  }
  if (step.has_value()) {
    SURGE_ASSIGN_OR_RETURN(StepLoss l, LossForStep(job_fit, view, batch_size, *step));
    adv.loss = l.loss;
    adv.flags.extrapolated_in_step = l.extrapolated;
    adv.step_mapping = l.mapping;
  } else if (ref_loss.has_value()) {
    adv.loss = *ref_loss;
  } else {
    adv.loss = stages.front().stage_loss;  // lowest loss: the latest stage
  }
  const double ln_l = std::log(adv.loss);

  // 2-3. Bracketing stages, per-model interpolated predictions, the average.
  const StageBracket bracket = BracketLoss(stages, ln_l);
  adv.flags.extrapolated_in_loss = bracket.extrapolated;
  const StageFit& s0 = stages[bracket.i0];
  const StageFit& s1 = stages[bracket.i1];
  const StageFit& nearest = bracket.lambda <= 0.5 ? s0 : s1;
  const bool linear_drift = view.drift->mode == DriftMode::kLinear;
  const ModelPredictions mp = PredictModels(view, bracket, ln_l, x, std::nullopt);
  const CurvePrediction& avg = mp.average;
  if (!std::isfinite(avg.mean) || !std::isfinite(avg.var)) {
    return absl::FailedPreconditionError("no model gives a finite prediction at this batch size");
  }
  adv.ln_lr_se = std::sqrt(avg.PredictionVar());
  adv.ln_lr_curve_se = std::sqrt(avg.var);
  adv.lr = std::exp(avg.mean);
  adv.lr_ci95 = {std::exp(avg.mean - kZ95 * adv.ln_lr_se), std::exp(avg.mean + kZ95 * adv.ln_lr_se)};
  adv.lr_curve_ci95 = {std::exp(avg.mean - kZ95 * adv.ln_lr_curve_se),
                       std::exp(avg.mean + kZ95 * adv.ln_lr_curve_se)};
  double wsum = 0.0;
  for (double v : mp.weights) wsum += v;
  for (size_t m = 0; m < mp.weights.size(); ++m) {
    adv.model_weights.push_back({ModelName(s0.models.models[m].kind),
                                 wsum > 0.0 ? mp.weights[m] / wsum : 0.0,
                                 mp.weights[m] > 0.0 ? std::exp(mp.predictions[m].mean) : NAN});
  }
  if (reference.has_value()) {
    SURGE_ASSIGN_OR_RETURN(
        adv.transfer,
        TransferLr(view, *reference, ref_loss.value_or(adv.loss), batch_size, adv.loss));
  }
  const DriftFit& drift = *view.drift;
  const DriftPoint drift_point = linear_drift ? drift.Evaluate(ln_l) : DriftPoint{};

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
  if (linear_drift) used.insert(drift.stage_ids.begin(), drift.stage_ids.end());
  double b_min = HUGE_VAL, b_max = 0.0;
  for (const StageFit& st : stages) {
    if (!used.count(st.stage_id)) continue;
    adv.stages_used.push_back(st.stage_id);
    adv.optima_used += static_cast<int>(st.optima.size());
    adv.probe_points_used += st.n_probe_points;
    adv.runs_used = std::max(adv.runs_used, st.n_runs);  // the stages share runs
    used_evidence |= st.evidence;
    b_min = std::min(b_min, st.batch_min);
    b_max = std::max(b_max, st.batch_max);
  }
  adv.evidence = EvidenceNames(used_evidence);
  adv.flags.short_horizon = (used_evidence & kProbes) != 0 && !HasRunEvidence(used_evidence);
  const double f = job_fit.options.batch_extrapolation_factor;
  adv.flags.extrapolated_in_batch = batch_size < b_min / f || batch_size > b_max * f;
  if (std::isfinite(adv.b_noise) && adv.b_noise > 0.0) {
    adv.recommended_batch_size = adv.b_noise;
    adv.steps_ratio = StepsRatio(batch_size, adv.b_noise);
    adv.examples_ratio = ExamplesRatio(batch_size, adv.b_noise);
  }
  return adv;
}

}  // namespace surge::fit
