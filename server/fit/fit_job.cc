// FitStage and FitJob: grouping by stage, and the order of the fits
// (optima -> surge -> comparison models; then drift, loss curve, B_simple,
// speed/data).
#include "server/fit/fit_job.h"

#include <algorithm>
#include <cmath>
#include <map>

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

}  // namespace

absl::StatusOr<StageFit> FitStage(int64_t stage_id, double stage_loss,
                                  const std::vector<ProbePoint>& probes,
                                  const std::vector<MeasuredOptimum>& measured,
                                  const FitOptions& options) {
  StageFit st;
  st.stage_id = stage_id;
  st.stage_loss = stage_loss;
  st.n_probe_points = static_cast<int>(probes.size());

  // 1. Per-batch optima.
  absl::StatusOr<StageOptima> extracted = ExtractStageOptima(probes);
  if (!extracted.ok()) return WithStage(stage_id, extracted.status());
  st.optima = std::move(extracted->optima);
  st.skipped = std::move(extracted->skipped);
  for (const MeasuredOptimum& m : measured) {
    if (absl::Status s = ValidateMeasuredOptimum(m); !s.ok()) return s;
    st.optima.push_back(FromMeasured(m));
  }
  std::stable_sort(st.optima.begin(), st.optima.end(),
                   [](const BatchOptimum& a, const BatchOptimum& b) {
                     return a.batch_size < b.batch_size;
                   });
  const std::vector<FitPoint> points = ToFitPoints(st.optima, options.surge.se_floor);
  if (absl::Status s = CheckFitPoints(points); !s.ok()) {
    std::string msg(s.message());
    if (!st.skipped.empty()) absl::StrAppend(&msg, " (skipped: ", absl::StrJoin(st.skipped, "; "), ")");
    return WithStage(stage_id, absl::Status(s.code(), msg));
  }
  for (const BatchOptimum& o : st.optima) {
    if (o.censoring != Censoring::kNone) continue;
    st.batch_min = std::isnan(st.batch_min) ? o.batch_size : std::min(st.batch_min, o.batch_size);
    st.batch_max = std::isnan(st.batch_max) ? o.batch_size : std::max(st.batch_max, o.batch_size);
  }

  // 2. Surge law, 3. comparison models.
  absl::StatusOr<SurgeLawFit> surge = FitSurgeLaw(points, options.surge);
  if (!surge.ok()) return WithStage(stage_id, surge.status());
  st.surge = *std::move(surge);
  absl::StatusOr<ModelComparison> models = CompareModels(points, st.surge, options.models);
  if (!models.ok()) return WithStage(stage_id, models.status());
  st.models = *std::move(models);
  return st;
}

absl::StatusOr<JobFit> FitJob(const JobInput& input, const FitOptions& options) {
  JobFit job;
  job.options = options;

  // Group the evidence by stage.
  std::map<int64_t, StageData> stages;
  for (const ProbePoint& p : input.probe_points) {
    SURGE_RETURN_IF_ERROR(ValidateProbePoint(p));
    StageData& d = stages[p.stage_id];
    if (std::isnan(d.loss)) d.loss = p.stage_loss;
    SURGE_RETURN_IF_ERROR(CheckStageLoss(p.stage_id, d.loss, p.stage_loss));
    d.probes.push_back(p);
  }
  for (const MeasuredOptimum& m : input.measured_optima) {
    SURGE_RETURN_IF_ERROR(ValidateMeasuredOptimum(m));
    StageData& d = stages[m.stage_id];
    if (std::isnan(d.loss)) d.loss = m.stage_loss;
    SURGE_RETURN_IF_ERROR(CheckStageLoss(m.stage_id, d.loss, m.stage_loss));
    d.measured.push_back(m);
  }
  if (stages.empty()) {
    return absl::FailedPreconditionError("no probe points or measured optima in the job");
  }

  // Per-stage fits.
  for (const auto& [id, d] : stages) {
    absl::StatusOr<StageFit> st = FitStage(id, d.loss, d.probes, d.measured, options);
    if (st.ok()) {
      job.stages.push_back(*std::move(st));
    } else if (absl::IsFailedPrecondition(st.status())) {
      job.skipped_stages.push_back({id, d.loss, st.status()});
      job.notes.emplace_back(st.status().message());
    } else {
      return st.status();
    }
  }
  if (job.stages.empty()) {
    std::vector<std::string> why;
    for (const SkippedStage& s : job.skipped_stages) why.emplace_back(s.status.message());
    return absl::FailedPreconditionError(
        absl::StrCat("no stage could be fitted: ", absl::StrJoin(why, "; ")));
  }
  std::sort(job.stages.begin(), job.stages.end(),
            [](const StageFit& a, const StageFit& b) { return a.stage_loss < b.stage_loss; });

  // Drift over the identified stages.
  std::vector<DriftStage> drift_in;
  for (const StageFit& st : job.stages) {
    if (st.surge.identification != PeakIdentification::kIdentified) continue;
    drift_in.push_back({st.stage_id, std::log(st.stage_loss), st.surge.ln_eps_max,
                        st.surge.ln_b_noise, st.surge.cov});
  }
  job.drift = FitDrift(drift_in);
  if (job.drift.stage_ids.size() < job.stages.size()) {
    job.notes.push_back(absl::StrCat(
        "drift: ", job.stages.size() - job.drift.stage_ids.size(),
        " stage(s) without an identified peak left out"));
  }

  // Loss curve, B_simple, speed/data.
  if (!input.loss_curve.empty()) {
    SURGE_ASSIGN_OR_RETURN(LossCurve curve,
                           LossCurve::Fit(input.loss_curve, options.loss_curve_bins));
    job.loss_curve = std::move(curve);
  }
  if (!input.grad_stats.empty()) {
    SURGE_ASSIGN_OR_RETURN(job.noise_scale,
                           EstimateNoiseScale(input.grad_stats, options.ema_decay));
  }
  if (!input.speed_points.empty()) {
    SURGE_ASSIGN_OR_RETURN(job.speed_data,
                           FitSpeedDataByLoss(input.speed_points, &job.notes));
  }
  return job;
}

}  // namespace surge::fit
