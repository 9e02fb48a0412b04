// FitStage and FitJob: grouping by stage, and the order of the fits
// (optima -> surge -> comparison models; then drift, loss curve, B_simple,
// speed/data).
#include "server/fit/fit_job.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/util/status_macros.h"

namespace surge::fit {
namespace {

absl::Status WithStage(int64_t stage_id, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat("stage ", stage_id, ": ", s.message()));
}

absl::Status CheckStageLoss(int64_t stage_id, double expected, double got) {
  if (!std::isfinite(got) || got <= 0.0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "stage ", stage_id, ": stage_loss must be finite and > 0, got ", got));
  }
  if (std::fabs(got - expected) > 1e-6 * std::fabs(expected)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "stage ", stage_id, ": inconsistent stage_loss (", expected, " vs ", got, ")"));
  }
  return absl::OkStatus();
}

// Probe points and measured optima of one stage.
struct StageData {
  double loss = NAN;
  std::vector<ProbePoint> probes;
  std::vector<MeasuredOptimum> measured;
};

// The fits that follow the optima: surge law, comparison models.
absl::StatusOr<StageFit> FitFromOptima(StageFit st, const FitOptions& options) {
  std::stable_sort(st.optima.begin(), st.optima.end(),
                   [](const BatchOptimum& a, const BatchOptimum& b) {
                     return a.batch_size < b.batch_size;
                   });
  const std::vector<FitPoint> points = ToFitPoints(st.optima, options.surge.se_floor);
  if (absl::Status s = CheckFitPoints(points); !s.ok()) {
    std::string msg(s.message());
    if (!st.skipped.empty()) absl::StrAppend(&msg, " (skipped: ", absl::StrJoin(st.skipped, "; "), ")");
    return WithStage(st.stage_id, absl::Status(s.code(), msg));
  }
  for (const BatchOptimum& o : st.optima) {
    if (o.censoring != Censoring::kNone) continue;
    st.batch_min = std::isnan(st.batch_min) ? o.batch_size : std::min(st.batch_min, o.batch_size);
    st.batch_max = std::isnan(st.batch_max) ? o.batch_size : std::max(st.batch_max, o.batch_size);
  }
  absl::StatusOr<SurgeLawFit> surge = FitSurgeLaw(points, options.surge);
  if (!surge.ok()) return WithStage(st.stage_id, surge.status());
  st.surge = *std::move(surge);
  absl::StatusOr<ModelComparison> models = CompareModels(points, st.surge, options.models);
  if (!models.ok()) return WithStage(st.stage_id, models.status());
  st.models = *std::move(models);
  return st;
}

// Drift over the identified stages of a set; a note when some are left out.
DriftFit DriftOver(const std::vector<StageFit>& stages, const char* what,
                   std::vector<std::string>* notes) {
  std::vector<DriftStage> drift_in;
  for (const StageFit& st : stages) {
    if (st.surge.identification != PeakIdentification::kIdentified) continue;
    drift_in.push_back({st.stage_id, std::log(st.stage_loss), st.surge.ln_eps_max,
                        st.surge.ln_b_noise, st.surge.cov});
  }
  DriftFit drift = FitDrift(drift_in);
  if (drift.stage_ids.size() < stages.size()) {
    notes->push_back(absl::StrCat(what, "drift: ", stages.size() - drift.stage_ids.size(),
                                  " stage(s) without an identified peak left out"));
  }
  return drift;
}

bool ByLoss(const StageFit& a, const StageFit& b) { return a.stage_loss < b.stage_loss; }

}  // namespace

absl::StatusOr<StageFit> FitStage(int64_t stage_id, double stage_loss,
                                  const std::vector<ProbePoint>& probes,
                                  const std::vector<MeasuredOptimum>& measured,
                                  const FitOptions& options) {
  StageFit st;
  st.stage_id = stage_id;
  st.stage_loss = stage_loss;
  st.criterion = Criterion::kImprovement;
  for (const ProbePoint& p : probes) {
    st.evidence |= p.kind;
    if (HasRunEvidence(p.kind)) {
      ++st.n_runs;
      if (!p.reached) ++st.n_censored_runs;
    } else {
      ++st.n_probe_points;
    }
  }
  if (!measured.empty()) st.evidence |= kMeasured;

  // 1. Per-batch optima.
  absl::StatusOr<StageOptima> extracted = ExtractStageOptima(probes);
  if (!extracted.ok()) return WithStage(stage_id, extracted.status());
  st.optima = std::move(extracted->optima);
  st.skipped = std::move(extracted->skipped);
  for (const MeasuredOptimum& m : measured) {
    if (absl::Status s = ValidateMeasuredOptimum(m); !s.ok()) return s;
    st.optima.push_back(FromMeasured(m));
  }
  // 2. Surge law, 3. comparison models.
  return FitFromOptima(std::move(st), options);
}

absl::StatusOr<StageFit> FitFastestStage(int64_t stage_id, double stage_loss,
                                         const std::vector<StepsPoint>& points,
                                         const FitOptions& options) {
  StageFit st;
  st.stage_id = stage_id;
  st.stage_loss = stage_loss;
  st.criterion = Criterion::kFastest;
  for (const StepsPoint& p : points) {
    st.evidence |= p.kind;
    ++st.n_runs;
    if (!p.reached) ++st.n_censored_runs;
  }
  absl::StatusOr<StageOptima> extracted = ExtractFastestStageOptima(points);
  if (!extracted.ok()) return WithStage(stage_id, extracted.status());
  st.optima = std::move(extracted->optima);
  st.skipped = std::move(extracted->skipped);
  return FitFromOptima(std::move(st), options);
}

absl::StatusOr<JobFit> FitJob(const JobInput& input, const FitOptions& options) {
  JobFit job;
  job.options = options;

  // Plain runs -> improvement points and steps points at their targets.
  std::vector<ProbePoint> run_points;
  std::vector<StepsPoint> steps = input.steps_points;
  std::string runs_missing;  // why the plain runs give no stage, if they don't
  if (!input.runs.empty()) {
    SURGE_ASSIGN_OR_RETURN(RunEvidence ev, BuildRunEvidence(input.runs, input.run_options));
    job.runs = RunEvidenceSummary{ev.signal,    ev.targets,        ev.targets_from_data,
                                  ev.k_steps,   ev.runs_used,      ev.runs_scheduled,
                                  ev.runs_left_out};
    for (std::string& n : ev.notes) job.notes.push_back(std::move(n));
    run_points = std::move(ev.improvement_points);
    steps.insert(steps.end(), ev.steps_points.begin(), ev.steps_points.end());
    std::map<double, std::set<double>> lrs_by_batch;
    for (const StepsPoint& p : steps) lrs_by_batch[p.batch_size].insert(p.lr);
    // The used runs count even without a target (then there are no steps points).
    for (const auto& [b, lr] : ev.run_coordinates) lrs_by_batch[b].insert(lr);
    int wide = 0;
    std::vector<std::string> have;
    for (const auto& [b, lrs] : lrs_by_batch) {
      have.push_back(absl::StrCat(b, " (", lrs.size(), " LRs)"));
      if (lrs.size() >= 3) ++wide;
    }
    if (ev.targets.empty() || wide < 3) {
      runs_missing = absl::StrCat(
          "plain runs need >= 3 batch sizes with runs at >= 3 learning rates each; have ",
          ev.runs_used, " usable runs at batch sizes ",
          have.empty() ? std::string("none") : absl::StrJoin(have, ", "));
    }
  }

  // Group the evidence by stage. Training-run stages (id = round(L* x 10^6))
  // and probe / imported stages (id = checkpoint step) are separate even when
  // their ids coincide (a checkpoint at step 500000 and a target loss 0.5).
  std::map<std::pair<int64_t, bool>, StageData> stages;  // (id, run-based)
  auto add_point = [&](const ProbePoint& p) -> absl::Status {
    SURGE_RETURN_IF_ERROR(ValidateProbePoint(p));
    StageData& d = stages[{p.stage_id, HasRunEvidence(p.kind)}];
    if (std::isnan(d.loss)) d.loss = p.stage_loss;
    SURGE_RETURN_IF_ERROR(CheckStageLoss(p.stage_id, d.loss, p.stage_loss));
    d.probes.push_back(p);
    return absl::OkStatus();
  };
  for (const ProbePoint& p : input.probe_points) SURGE_RETURN_IF_ERROR(add_point(p));
  for (const ProbePoint& p : run_points) SURGE_RETURN_IF_ERROR(add_point(p));
  for (const MeasuredOptimum& m : input.measured_optima) {
    SURGE_RETURN_IF_ERROR(ValidateMeasuredOptimum(m));
    StageData& d = stages[{m.stage_id, false}];
    if (std::isnan(d.loss)) d.loss = m.stage_loss;
    SURGE_RETURN_IF_ERROR(CheckStageLoss(m.stage_id, d.loss, m.stage_loss));
    d.measured.push_back(m);
  }
  std::map<int64_t, std::pair<double, std::vector<StepsPoint>>> steps_stages;
  for (const StepsPoint& p : steps) {
    SURGE_RETURN_IF_ERROR(ValidateStepsPoint(p));
    auto& d = steps_stages[p.stage_id];
    if (d.second.empty()) d.first = p.stage_loss;
    SURGE_RETURN_IF_ERROR(CheckStageLoss(p.stage_id, d.first, p.stage_loss));
    d.second.push_back(p);
  }
  // Too many stages: keep max_stages, evenly spaced in stage-loss order.
  if (options.max_stages > 1 && static_cast<int>(stages.size()) > options.max_stages) {
    std::vector<std::pair<double, std::pair<int64_t, bool>>> by_loss;
    for (const auto& [key, d] : stages) by_loss.emplace_back(d.loss, key);
    std::sort(by_loss.begin(), by_loss.end());
    const size_t n = by_loss.size(), k = static_cast<size_t>(options.max_stages);
    std::set<size_t> keep;
    for (size_t i = 0; i < k; ++i) keep.insert((i * (n - 1) + (k - 1) / 2) / (k - 1));
    for (size_t i = 0; i < n; ++i) {
      if (!keep.count(i)) stages.erase(by_loss[i].second);
    }
    job.notes.push_back(absl::StrCat(
        n - stages.size(), " of ", n, " stages left out: a fit covers at most ",
        options.max_stages, " stages, evenly spaced in loss (losses ", by_loss.front().first,
        " to ", by_loss.back().first, ")"));
  }
  if (stages.empty() && steps_stages.empty()) {
    if (!runs_missing.empty()) return absl::FailedPreconditionError(runs_missing);
    return absl::FailedPreconditionError(
        "no probe points, measured optima or training runs spanning enough batch sizes and "
        "learning rates in the job (plain runs need >= 3 batch sizes with >= 3 learning rates "
        "each)");
  }

  // Per-stage fits, criterion "improvement".
  std::vector<StageFit> fitted;
  for (const auto& [key, d] : stages) {
    const int64_t id = key.first;
    absl::StatusOr<StageFit> st = FitStage(id, d.loss, d.probes, d.measured, options);
    if (st.ok()) {
      fitted.push_back(*std::move(st));
    } else if (absl::IsFailedPrecondition(st.status())) {
      job.skipped_stages.push_back({id, d.loss, st.status()});
      job.notes.emplace_back(st.status().message());
    } else {
      return st.status();
    }
  }
  // Run evidence wins for the level of the LR: probe and imported stages are
  // set aside (shown, not used for advice) when a run-based stage exists.
  const bool run_based = std::any_of(fitted.begin(), fitted.end(), [](const StageFit& st) {
    return HasRunEvidence(st.evidence);
  });
  for (StageFit& st : fitted) {
    if (!run_based || HasRunEvidence(st.evidence)) {
      job.stages.push_back(std::move(st));
    } else {
      job.set_aside.push_back(std::move(st));
    }
  }
  if (!job.set_aside.empty()) {
    job.notes.push_back(absl::StrCat(job.set_aside.size(),
                                     " short-horizon stage(s) (probes / imported optima) set "
                                     "aside: training-run evidence sets the LR level"));
  }

  // Criterion "fastest".
  for (const auto& [id, d] : steps_stages) {
    absl::StatusOr<StageFit> st = FitFastestStage(id, d.first, d.second, options);
    if (st.ok()) {
      job.fastest.stages.push_back(*std::move(st));
    } else if (absl::IsFailedPrecondition(st.status())) {
      job.fastest.skipped.push_back({id, d.first, st.status()});
    } else {
      return st.status();
    }
  }
  if (job.stages.empty() && job.fastest.stages.empty()) {
    std::vector<std::string> why;
    if (!runs_missing.empty()) why.push_back(runs_missing);
    for (const SkippedStage& s : job.skipped_stages) why.emplace_back(s.status.message());
    if (job.skipped_stages.empty()) {
      for (const SkippedStage& s : job.fastest.skipped) why.emplace_back(s.status.message());
    }
    return absl::FailedPreconditionError(
        absl::StrCat("no stage could be fitted: ", absl::StrJoin(why, "; ")));
  }
  std::sort(job.stages.begin(), job.stages.end(), ByLoss);
  std::sort(job.set_aside.begin(), job.set_aside.end(), ByLoss);
  std::sort(job.fastest.stages.begin(), job.fastest.stages.end(), ByLoss);
  job.drift = DriftOver(job.stages, "", &job.notes);
  job.fastest.drift = DriftOver(job.fastest.stages, "fastest criterion ", &job.notes);

  // Loss curve, B_simple, speed/data (per target: the fastest LR's steps at
  // each batch size, from the fastest criterion's optima).
  if (!input.loss_curve.empty()) {
    SURGE_ASSIGN_OR_RETURN(LossCurve curve,
                           LossCurve::Fit(input.loss_curve, options.loss_curve_bins));
    job.loss_curve = std::move(curve);
  }
  if (!input.grad_stats.empty()) {
    SURGE_ASSIGN_OR_RETURN(job.noise_scale,
                           EstimateNoiseScale(input.grad_stats, options.ema_decay));
  }
  std::vector<SpeedPoint> speed = input.speed_points;
  for (const StageFit& st : job.fastest.stages) {
    for (const BatchOptimum& o : st.optima) {
      if (std::isfinite(o.steps_at_opt) && o.steps_at_opt > 0.0) {
        speed.push_back({st.stage_loss, o.batch_size, o.steps_at_opt});
      }
    }
  }
  if (!speed.empty()) {
    SURGE_ASSIGN_OR_RETURN(job.speed_data, FitSpeedDataByLoss(speed, &job.notes));
  }
  return job;
}

}  // namespace surge::fit
