// One entry point for a whole job: everything the service has for it in,
// a complete JobFit out (per-stage optima, surge and comparison fits, drift,
// loss curve, B_simple series, speed/data fits). All expensive work happens
// here so that Advise() (advise.h) only evaluates precomputed curves.
//
// Stages: probe points and measured optima are grouped by stage_id; each
// stage's loss (checkpoint loss or target loss) must be finite, > 0 and the
// same on all its points. A stage whose data cannot be fitted (e.g. optima at
// fewer than 3 batch sizes) is listed in skipped_stages with its status; the
// job fails only when no stage can be fitted.
//
// Thread-safety: pure functions; a JobFit is immutable and may be shared
// between threads once built.
#ifndef SURGE_SERVER_FIT_FIT_JOB_H_
#define SURGE_SERVER_FIT_FIT_JOB_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/fit/drift.h"
#include "server/fit/loss_curve.h"
#include "server/fit/models.h"
#include "server/fit/noise_scale.h"
#include "server/fit/optimum.h"
#include "server/fit/run_evidence.h"
#include "server/fit/steps_optimum.h"
#include "server/fit/speed_data.h"
#include "server/fit/surge_law.h"

namespace surge::fit {

struct FitOptions {
  SurgeFitOptions surge;
  ModelOptions models;
  double ema_decay = 0.95;                  // B_simple EMAs
  int loss_curve_bins = 64;
  double batch_extrapolation_factor = 10.0; // Advise: beyond [B_min / f, B_max * f]
  // At most this many probe / imported / run stages are fitted, evenly spaced
  // in stage-loss order (the lowest and highest kept); the rest are named in
  // a note. Bounds a fit's time and size (a job with probes from thousands of
  // checkpoints). 0: no limit.
  int max_stages = 64;
};

// Everything known about a job.
struct JobInput {
  std::vector<ProbePoint> probe_points;        // probe and full-run protocol
  std::vector<MeasuredOptimum> measured_optima;
  std::vector<LossPoint> loss_curve;           // plain runs
  std::vector<SpeedPoint> speed_points;        // steps to a target loss, given directly
  std::vector<GradStatRecord> grad_stats;
  std::vector<RunSeries> runs;                 // plain runs (run_evidence.h)
  std::vector<StepsPoint> steps_points;        // full runs: steps to their target (fastest criterion)
  RunEvidenceOptions run_options;              // k and declared targets for plain runs
};

// One stage fitted.
struct StageFit {
  int64_t stage_id = 0;
  double stage_loss = NAN;
  std::vector<BatchOptimum> optima;   // ascending batch size, censored included
  std::vector<std::string> skipped;   // batch sizes without an optimum, and why
  int n_probe_points = 0;
  double batch_min = NAN;             // range of the uncensored optima
  double batch_max = NAN;
  SurgeLawFit surge;
  ModelComparison models;
  int evidence = 0;                   // EvidenceKind bits of the points behind the optima
  Criterion criterion = Criterion::kImprovement;
  int n_runs = 0;                     // training runs behind the optima (plain + full)
  int n_censored_runs = 0;            // of which never reached the stage's target
};

struct SkippedStage {
  int64_t stage_id = 0;
  double stage_loss = NAN;
  absl::Status status;
};

// The stages of one criterion with their drift.
struct StageSet {
  std::vector<StageFit> stages;              // ascending stage loss
  std::vector<SkippedStage> skipped;
  DriftFit drift;
};

// What the plain runs gave (run_evidence.h), for reports.
struct RunEvidenceSummary {
  LossSignal signal = LossSignal::kSmoothedTraining;
  std::vector<double> targets;  // descending
  bool targets_from_data = true;
  int k_steps = 10;
  int runs_used = 0;
  int runs_scheduled = 0;
  int runs_left_out = 0;
};

struct JobFit {
  // Criterion "improvement" (the paper's): the stages advice stands on. When
  // the job has training-run evidence (plain or full runs) these are the
  // run-based stages, and probe / imported-optima stages go to set_aside.
  std::vector<StageFit> stages;              // ascending stage loss
  std::vector<SkippedStage> skipped_stages;
  DriftFit drift;
  std::vector<StageFit> set_aside;           // short-horizon stages not used for advice
  StageSet fastest;                          // criterion "fastest" (runs only)
  std::optional<RunEvidenceSummary> runs;    // present when the job has plain runs
  using LossCurveOpt = std::optional<LossCurve>;
  LossCurveOpt loss_curve;                   // absent without plain-run records
  std::vector<NoiseScaleSeries> noise_scale; // one per run with grad stats
  std::vector<SpeedDataFit> speed_data;      // one per target loss with >= 3 B
  std::vector<std::string> notes;            // what was skipped and why
  FitOptions options;
};

// Fits one stage from its probe points and measured optima. Errors:
// kInvalidArgument (bad value, named), kFailedPrecondition ("stage 2: need
// optima at >= 3 batch sizes, have 2", all optima censored, ...).
absl::StatusOr<StageFit> FitStage(int64_t stage_id, double stage_loss,
                                  const std::vector<ProbePoint>& probes,
                                  const std::vector<MeasuredOptimum>& measured,
                                  const FitOptions& options = {});

// Fits one stage of the fastest criterion from its steps points.
absl::StatusOr<StageFit> FitFastestStage(int64_t stage_id, double stage_loss,
                                         const std::vector<StepsPoint>& points,
                                         const FitOptions& options = {});

// Fits a job. Errors: kInvalidArgument (any bad input), kFailedPrecondition
// (no stage could be fitted; the message lists each stage's reason).
absl::StatusOr<JobFit> FitJob(const JobInput& input, const FitOptions& options = {});

}  // namespace surge::fit

#endif  // SURGE_SERVER_FIT_FIT_JOB_H_
