// HoldOutCheck: leave one batch size out per stage, refit, predict it. The
// formulas are in holdout.h.
#include "server/fit/holdout.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "server/util/status_macros.h"

namespace surge::fit {
namespace {

// One stage's raw evidence, as FitJob groups it.
struct StageEvidence {
  std::vector<ProbePoint> probes;
  std::vector<MeasuredOptimum> measured;
};

std::map<int64_t, StageEvidence> GroupByStage(const JobInput& input) {
  std::map<int64_t, StageEvidence> stages;
  for (const ProbePoint& p : input.probe_points) stages[p.stage_id].probes.push_back(p);
  for (const MeasuredOptimum& m : input.measured_optima) {
    stages[m.stage_id].measured.push_back(m);
  }
  return stages;
}

// The evidence of a stage without batch size `b`.
StageEvidence Without(const StageEvidence& all, double b) {
  StageEvidence out;
  for (const ProbePoint& p : all.probes) {
    if (p.batch_size != b) out.probes.push_back(p);
  }
  for (const MeasuredOptimum& m : all.measured) {
    if (m.batch_size != b) out.measured.push_back(m);
  }
  return out;
}

// inside, z and consistent for a prediction (mu, se) of y measured with SE s.
HoldOutPrediction Compare(double mu, double se, double y, double s) {
  HoldOutPrediction p;
  p.ln_mean = mu;
  p.ln_se = se;
  if (!AllFinite(mu, se)) return p;
  p.ln_ci95 = {mu - kZ95 * se, mu + kZ95 * se};
  p.inside = p.ln_ci95.lo <= y && y <= p.ln_ci95.hi;
  const double denom = std::sqrt(se * se + s * s);
  if (denom > 0.0) {
    p.z = (y - mu) / denom;
    p.consistent = std::fabs(p.z) <= kZ95;
  }
  return p;
}

// Fills the refit half of `r` from a successful refit.
void FillRefit(const StageFit& refit, double ln_b, HoldOutResult& r) {
  r.refit_batch_min = refit.batch_min;
  r.refit_batch_max = refit.batch_max;
  r.refit_optima = refit.surge.n_points;
  r.refit_identification = refit.surge.identification;
  r.refit_verdict = refit.models.verdict;
  for (const ModelFit& m : refit.models.models) {
    if (m.weight > r.refit_top_weight) {
      r.refit_top_weight = m.weight;
      r.refit_top_model = ModelName(m.kind);
    }
  }
  const AveragedPrediction avg = PredictAveraged(refit.models, ln_b);
  r.averaged = Compare(avg.mean, avg.se, r.ln_measured, r.ln_measured_se);
  const CurvePrediction surge = refit.surge.PredictLnEpsOpt(ln_b);
  r.surge = Compare(surge.mean, std::sqrt(surge.var), r.ln_measured, r.ln_measured_se);
}

}  // namespace

const char* HoldOutKindName(HoldOutKind k) {
  switch (k) {
    case HoldOutKind::kInterior:
      return "interior";
    case HoldOutKind::kExtrapolated:
      return "extrapolated";
    case HoldOutKind::kSkipped:
      return "skipped";
  }
  return "unknown";
}

absl::StatusOr<std::vector<HoldOutResult>> HoldOutCheck(const JobInput& input,
                                                        const FitOptions& options,
                                                        JobFit* full) {
  // The full-data fit of each stage, from the optimum evidence only.
  JobInput optima_only;
  optima_only.probe_points = input.probe_points;
  optima_only.measured_optima = input.measured_optima;
  SURGE_ASSIGN_OR_RETURN(JobFit fit, FitJob(optima_only, options));
  const std::map<int64_t, StageEvidence> evidence = GroupByStage(optima_only);

  std::vector<HoldOutResult> results;
  for (const StageFit& st : fit.stages) {
    const StageEvidence& all = evidence.at(st.stage_id);
    std::vector<double> batches;  // distinct B with an uncensored optimum
    for (const BatchOptimum& o : st.optima) {
      if (o.censoring == Censoring::kNone && (batches.empty() || batches.back() != o.batch_size)) {
        batches.push_back(o.batch_size);
      }
    }
    for (double b : batches) {
      const StageEvidence rest = Without(all, b);
      const absl::StatusOr<StageFit> refit =
          FitStage(st.stage_id, st.stage_loss, rest.probes, rest.measured, options);
      for (const BatchOptimum& o : st.optima) {
        if (o.batch_size != b || o.censoring != Censoring::kNone) continue;
        HoldOutResult r;
        r.stage_id = st.stage_id;
        r.stage_loss = st.stage_loss;
        r.batch_size = b;
        r.ln_measured = o.ln_lr_opt;
        r.ln_measured_se = std::isfinite(o.ln_lr_opt_se)
                               ? std::max(o.ln_lr_opt_se, options.surge.se_floor)
                               : options.surge.se_floor;
        r.se_source = o.se_source;
        if (!refit.ok()) {
          r.kind = HoldOutKind::kSkipped;
          r.note = absl::StrCat("refit without B=", b, " failed: ", refit.status().message());
          results.push_back(std::move(r));
          continue;
        }
        FillRefit(*refit, std::log(b), r);
        if (b > refit->batch_min && b < refit->batch_max) {
          r.kind = HoldOutKind::kInterior;
        } else {
          r.kind = HoldOutKind::kExtrapolated;
          r.note = absl::StrCat("B=", b, " outside the remaining range [", refit->batch_min, ", ",
                                refit->batch_max, "]");
        }
        results.push_back(std::move(r));
      }
    }
  }
  if (full != nullptr) *full = std::move(fit);
  return results;
}

HoldOutSummary SummarizeHoldOut(const std::vector<HoldOutResult>& results,
                                std::optional<int64_t> stage_id) {
  HoldOutSummary s;
  double sum_z = 0.0, sum_z2 = 0.0;
  int n_z = 0;
  for (const HoldOutResult& r : results) {
    if (stage_id && r.stage_id != *stage_id) continue;
    switch (r.kind) {
      case HoldOutKind::kSkipped:
        ++s.skipped;
        continue;
      case HoldOutKind::kExtrapolated:
        ++s.extrapolated;
        if (r.averaged.consistent) ++s.extrapolated_consistent;
        continue;
      case HoldOutKind::kInterior:
        break;
    }
    ++s.interior;
    if (r.averaged.consistent) ++s.consistent;
    if (r.averaged.inside) ++s.inside;
    if (std::isfinite(r.averaged.z)) {
      sum_z += r.averaged.z;
      sum_z2 += r.averaged.z * r.averaged.z;
      ++n_z;
    }
    if (std::isfinite(r.surge.z)) {
      ++s.surge_evaluated;
      if (r.surge.consistent) ++s.surge_consistent;
      if (r.surge.inside) ++s.surge_inside;
    }
  }
  if (n_z > 0) {
    s.mean_z = sum_z / n_z;
    s.rms_z = std::sqrt(sum_z2 / n_z);
  }
  return s;
}

}  // namespace surge::fit
