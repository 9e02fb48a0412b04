// Implementation of the fit -> proto conversions. Log-space estimates are
// exponentiated here: lr = exp(ln lr), B = exp(ln B).
#include "server/core/fit_convert.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace surge::core {
namespace {

constexpr int kCurveSamples = 33;

void SetInterval(const fit::Interval& in, surge::v1::Interval* out) {
  out->set_lo(in.lo);
  out->set_hi(in.hi);
}

// exp of a log-space 95% interval.
void SetExpInterval(double mean, double se, surge::v1::Interval* out) {
  out->set_lo(std::exp(mean - fit::kZ95 * se));
  out->set_hi(std::exp(mean + fit::kZ95 * se));
}

surge::v1::Censoring ToProto(fit::Censoring c) {
  switch (c) {
    case fit::Censoring::kUpperBound: return surge::v1::CENSORING_UPPER_BOUND;
    case fit::Censoring::kLowerBound: return surge::v1::CENSORING_LOWER_BOUND;
    default: return surge::v1::CENSORING_NONE;
  }
}

surge::v1::Verdict ToProto(fit::Verdict v) {
  switch (v) {
    case fit::Verdict::kYes: return surge::v1::VERDICT_YES;
    case fit::Verdict::kNo: return surge::v1::VERDICT_NO;
    default: return surge::v1::VERDICT_UNDECIDED;
  }
}

surge::v1::BNoiseKind ToProto(fit::BNoiseKind k) {
  switch (k) {
    case fit::BNoiseKind::kPoint: return surge::v1::B_NOISE_KIND_POINT;
    case fit::BNoiseKind::kLowerBound: return surge::v1::B_NOISE_KIND_LOWER_BOUND;
    case fit::BNoiseKind::kUpperBound: return surge::v1::B_NOISE_KIND_UPPER_BOUND;
    default: return surge::v1::B_NOISE_KIND_UNKNOWN;
  }
}

const char* SeSourceName(fit::SeSource s) {
  switch (s) {
    case fit::SeSource::kSeedSpread: return "seed_spread";
    case fit::SeSource::kQuadraticResidual: return "quadratic_residual";
    case fit::SeSource::kGridStep: return "grid_step";
    case fit::SeSource::kMeasured: return "measured";
  }
  return "?";
}

// Samples ln eps_opt(ln B) with its 95% band on a ln-spaced grid over
// [x_lo, x_hi].
void SampleCurve(const fit::ModelCurve& curve, double x_lo, double x_hi,
                 google::protobuf::RepeatedPtrField<surge::v1::CurvePoint>* out) {
  for (int i = 0; i < kCurveSamples; ++i) {
    double x = x_lo + (x_hi - x_lo) * i / (kCurveSamples - 1);
    fit::CurvePrediction p = curve.Predict(x);
    if (!std::isfinite(p.mean)) continue;
    surge::v1::CurvePoint* pt = out->Add();
    pt->set_batch_size(std::exp(x));
    pt->set_lr(std::exp(p.mean));
    SetExpInterval(p.mean, std::isfinite(p.var) && p.var >= 0 ? std::sqrt(p.var) : NAN,
                   pt->mutable_lr_ci95());
  }
}

void StageToProto(const fit::StageFit& s, surge::v1::StageFit* out) {
  out->set_stage_id(s.stage_id);
  out->set_stage_loss(s.stage_loss);
  out->set_probe_points(s.n_probe_points);
  double x_lo = HUGE_VAL, x_hi = -HUGE_VAL;
  for (const fit::BatchOptimum& o : s.optima) {
    surge::v1::BatchOptimum* p = out->add_optima();
    p->set_batch_size(o.batch_size);
    p->set_lr_opt(std::exp(o.ln_lr_opt));
    p->set_ln_lr_opt_se(o.ln_lr_opt_se);
    p->set_censoring(ToProto(o.censoring));
    p->set_se_source(SeSourceName(o.se_source));
    p->set_n_lrs(o.n_lrs);
    p->set_n_seeds(o.n_seeds);
    p->set_n_points(o.n_points);
    p->set_n_censored(o.n_censored);
    p->set_steps_at_opt(o.steps_at_opt);
    x_lo = std::min(x_lo, std::log(o.batch_size));
    x_hi = std::max(x_hi, std::log(o.batch_size));
  }
  for (const auto& skipped : s.skipped) out->add_skipped(skipped);
  // Curves are drawn one decade beyond the data on each side.
  x_lo -= std::log(10.0);
  x_hi += std::log(10.0);

  const fit::SurgeLawFit& f = s.surge;
  surge::v1::SurgeLawFit* sp = out->mutable_surge();
  sp->set_identification(fit::PeakIdentificationName(f.identification));
  sp->set_scale(f.scale);
  sp->set_n_points(f.n_points);
  sp->set_n_bounds(f.n_bounds);
  switch (f.identification) {
    case fit::PeakIdentification::kIdentified: {
      fit::Estimate b = f.LnBNoise(), a = f.LnEpsMax();
      sp->set_b_noise_kind(surge::v1::B_NOISE_KIND_POINT);
      sp->set_b_noise(std::exp(b.value));
      SetExpInterval(b.value, b.se, sp->mutable_b_noise_ci95());
      sp->set_eps_max(std::exp(a.value));
      SetExpInterval(a.value, a.se, sp->mutable_eps_max_ci95());
      break;
    }
    case fit::PeakIdentification::kBelowPeak:
      sp->set_b_noise_kind(surge::v1::B_NOISE_KIND_LOWER_BOUND);
      sp->set_b_noise(std::exp(f.ln_b_noise_bound));
      sp->set_eps_max(NAN);
      sp->set_combination("ln eps_max - ln B_noise / 2");
      break;
    case fit::PeakIdentification::kAbovePeak:
      sp->set_b_noise_kind(surge::v1::B_NOISE_KIND_UPPER_BOUND);
      sp->set_b_noise(std::exp(f.ln_b_noise_bound));
      sp->set_eps_max(NAN);
      sp->set_combination("ln eps_max + ln B_noise / 2");
      break;
    case fit::PeakIdentification::kNotIdentified:
      sp->set_b_noise_kind(surge::v1::B_NOISE_KIND_UNKNOWN);
      sp->set_b_noise(NAN);
      sp->set_eps_max(NAN);
      break;
  }
  if (!sp->combination().empty()) {
    sp->set_combination_value(f.combination.value);
    sp->set_combination_se(f.combination.se);
  }

  for (const fit::ModelFit& m : s.models.models) {
    surge::v1::ModelFit* mp = out->add_models();
    mp->set_model(fit::ModelName(m.kind));
    mp->set_fitted(m.fitted);
    mp->set_note(m.note);
    mp->set_aicc(m.aicc);
    mp->set_weight(m.weight);
    mp->set_n(m.n);
    mp->set_k(m.k);
    mp->set_law_weight(m.law_weight);
    if (!m.fitted) continue;
    mp->set_scatter_sd(std::sqrt(m.tau2));
    mp->set_edf(m.edf);
    for (size_t i = 0; m.kind != fit::ModelKind::kSmooth && i < m.curve.params.size(); ++i) {
      mp->add_params(m.curve.params[i]);
      double var = (static_cast<Eigen::Index>(i) < m.curve.cov.rows())
                       ? m.curve.cov(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(i))
                       : NAN;
      mp->add_param_se(var >= 0 ? std::sqrt(var) : NAN);
    }
    SampleCurve(m.curve, x_lo, x_hi, mp->mutable_curve());
  }
  out->set_verdict(ToProto(s.models.verdict));
  out->set_verdict_reason(s.models.verdict_reason);
  out->set_surge_family_weight(s.models.surge_family_weight);
  out->set_monotone_weight(s.models.monotone_weight);
  out->set_smooth_weight(s.models.smooth_weight);
  out->set_evidence(fit::EvidenceNames(s.evidence));
  out->set_criterion(fit::CriterionName(s.criterion));
  out->set_runs(s.n_runs);
  out->set_censored_runs(s.n_censored_runs);
}

void SkippedToProto(const fit::SkippedStage& s, surge::v1::SkippedStage* p) {
  p->set_stage_id(s.stage_id);
  p->set_stage_loss(s.stage_loss);
  p->set_reason(std::string(s.status.message()));
}

void DriftToProto(const fit::DriftFit& drift, surge::v1::DriftFit* d) {
  d->set_mode(fit::DriftModeName(drift.mode));
  for (int64_t id : drift.stage_ids) d->add_stage_ids(id);
  d->set_alpha(drift.alpha.value);
  d->set_alpha_se(drift.alpha.se);
  d->set_c0(drift.b_coef[0]);
  d->set_c1(drift.b_coef[1]);
  d->set_d0(drift.a_coef[0]);
  d->set_d1(drift.a_coef[1]);
}

}  // namespace

void JobFitToProto(const fit::JobFit& fit, surge::v1::Fit* out) {
  for (const fit::StageFit& s : fit.stages) StageToProto(s, out->add_stages());
  for (const fit::SkippedStage& s : fit.skipped_stages) SkippedToProto(s, out->add_skipped_stages());
  DriftToProto(fit.drift, out->mutable_drift());
  for (const fit::StageFit& s : fit.fastest.stages) StageToProto(s, out->add_fastest_stages());
  for (const fit::SkippedStage& s : fit.fastest.skipped) {
    SkippedToProto(s, out->add_fastest_skipped_stages());
  }
  DriftToProto(fit.fastest.drift, out->mutable_fastest_drift());
  for (const fit::StageFit& s : fit.set_aside) StageToProto(s, out->add_set_aside_stages());
  if (fit.runs.has_value()) {
    surge::v1::RunEvidence* r = out->mutable_runs();
    r->set_signal(fit::LossSignalName(fit.runs->signal));
    for (double t : fit.runs->targets) r->add_target_losses(t);
    r->set_targets_from_data(fit.runs->targets_from_data);
    r->set_k_steps(fit.runs->k_steps);
    r->set_runs_used(fit.runs->runs_used);
    r->set_runs_scheduled(fit.runs->runs_scheduled);
    r->set_runs_left_out(fit.runs->runs_left_out);
  }
  for (const fit::NoiseScaleSeries& series : fit.noise_scale) {
    surge::v1::NoiseScaleSeries* p = out->add_noise_scale();
    p->set_run(series.run);
    p->set_last_b_simple(series.last_b_simple);
    for (const fit::NoiseScalePoint& pt : series.points) {
      p->add_steps(pt.step);
      p->add_b_simple(pt.valid ? pt.b_simple : NAN);
    }
  }
  for (const fit::SpeedDataFit& s : fit.speed_data) {
    surge::v1::SpeedDataFit* p = out->add_speed_data();
    p->set_target_loss(s.target_loss);
    p->set_s_min(s.s_min.value);
    p->set_s_min_se(s.s_min.se);
    p->set_e_min(s.e_min.value);
    p->set_e_min_se(s.e_min.se);
    p->set_b_crit(s.b_crit);
    p->set_n(s.n);
  }
  for (const auto& note : fit.notes) out->add_notes(note);
}

void AdviceToProto(const fit::Advice& a, surge::v1::Advice* out) {
  out->set_batch_size(a.batch_size);
  if (a.step) out->set_step(*a.step);
  out->set_loss(a.loss);
  out->set_lr(a.lr);
  SetInterval(a.lr_ci95, out->mutable_lr_ci95());
  SetInterval(a.lr_curve_ci95, out->mutable_lr_curve_ci95());
  out->set_b_noise_kind(ToProto(a.b_noise_kind));
  out->set_b_noise(a.b_noise);
  SetInterval(a.b_noise_ci95, out->mutable_b_noise_ci95());
  out->set_eps_max(a.eps_max);
  SetInterval(a.eps_max_ci95, out->mutable_eps_max_ci95());
  std::string model = "average:";
  for (const fit::ModelWeight& w : a.model_weights) {
    surge::v1::ModelWeight* p = out->add_model_weights();
    p->set_model(w.model);
    p->set_weight(w.weight);
    p->set_lr(w.lr);
    if (w.weight >= 0.005) absl::StrAppend(&model, " ", w.model, absl::StrFormat(" %.2f", w.weight));
  }
  out->set_model(model);
  out->set_verdict(ToProto(a.verdict));
  out->set_verdict_reason(a.verdict_reason);
  for (int64_t s : a.stages_used) out->add_stages_used(s);
  out->set_optima_used(a.optima_used);
  out->set_probe_points_used(a.probe_points_used);
  out->set_recommended_batch_size(a.recommended_batch_size);
  out->set_steps_ratio(a.steps_ratio);
  out->set_examples_ratio(a.examples_ratio);
  surge::v1::AdviceFlags* f = out->mutable_flags();
  f->set_extrapolated_in_batch(a.flags.extrapolated_in_batch);
  f->set_extrapolated_in_step(a.flags.extrapolated_in_step);
  f->set_extrapolated_in_loss(a.flags.extrapolated_in_loss);
  f->set_b_noise_bound_only(a.flags.b_noise_bound_only);
  f->set_surge_not_supported(a.flags.surge_not_supported);
  f->set_short_horizon(a.flags.short_horizon);
  out->set_criterion(a.criterion == fit::Criterion::kFastest ? surge::v1::CRITERION_FASTEST
                                                             : surge::v1::CRITERION_IMPROVEMENT);
  out->set_evidence(a.evidence);
  out->set_runs_used(a.runs_used);
  out->set_step_mapping(a.step_mapping);
  if (a.transfer.has_value()) {
    const fit::LrTransfer& t = *a.transfer;
    surge::v1::AdviceTransfer* o = out->mutable_transfer();
    surge::v1::AdviceReference* r = o->mutable_reference();
    r->set_batch_size(t.reference.batch_size);
    r->set_lr(t.reference.lr);
    if (t.reference.step.has_value()) r->set_step(*t.reference.step);
    if (t.reference.loss.has_value()) r->set_loss(*t.reference.loss);
    o->set_reference_loss(t.reference_loss);
    o->set_ratio(t.ratio);
    o->set_ln_ratio_se(t.ln_ratio_se);
    o->set_lr(t.lr);
    SetInterval(t.lr_ci95, o->mutable_lr_ci95());
    SetInterval(t.lr_curve_ci95, o->mutable_lr_curve_ci95());
    o->set_linear_rule_lr(t.linear_rule_lr);
    o->set_sqrt_rule_lr(t.sqrt_rule_lr);
    o->set_fitted_lr_at_reference(t.fitted_lr_at_reference);
    o->set_reference_outside_data(t.reference_outside_data);
    o->set_reference_extrapolated_in_loss(t.reference_extrapolated_in_loss);
    o->set_reference_other_stage(t.reference_other_stage);
  }
}

}  // namespace surge::core
