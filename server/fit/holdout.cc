// HoldOutCheck: leave one batch size out per stage, refit, predict it, and
// read the predicted LR's efficiency off the held-out data. The formulas are
// in holdout.h.
#include "server/fit/holdout.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/fit/run_evidence.h"
#include "server/util/status_macros.h"

namespace surge::fit {
namespace {

// One stage's raw evidence, as FitJob groups it.
struct StageEvidence {
  std::vector<ProbePoint> probes;
  std::vector<MeasuredOptimum> measured;
  std::vector<StepsPoint> steps;
};

// Improvement stages are keyed by (id, run-based), as in FitJob; fastest
// stages by id.
using ImprovementKey = std::pair<int64_t, bool>;

// The evidence of a stage without batch size `b`.
StageEvidence Without(const StageEvidence& all, double b) {
  StageEvidence out;
  for (const ProbePoint& p : all.probes) {
    if (p.batch_size != b) out.probes.push_back(p);
  }
  for (const MeasuredOptimum& m : all.measured) {
    if (m.batch_size != b) out.measured.push_back(m);
  }
  for (const StepsPoint& p : all.steps) {
    if (p.batch_size != b) out.steps.push_back(p);
  }
  return out;
}

// One outcome per grid LR at a batch size, ascending ln lr.
struct GridOutcome {
  std::vector<double> x;      // ln lr
  std::vector<double> v;      // mean dL, or mean ln S
  std::vector<bool> bound;    // fastest: some run never reached L* (ln S a lower bound)
};

// Groups (ln lr, value, bound) by LR (equal within 1e-9 in ln lr).
GridOutcome Group(std::vector<std::pair<double, std::pair<double, bool>>> pts) {
  std::sort(pts.begin(), pts.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  GridOutcome g;
  size_t i = 0;
  while (i < pts.size()) {
    size_t j = i;
    double sum = 0.0;
    bool bound = false;
    while (j < pts.size() && pts[j].first - pts[i].first < 1e-9) {
      sum += pts[j].second.first;
      bound = bound || pts[j].second.second;
      ++j;
    }
    g.x.push_back(pts[i].first);
    g.v.push_back(sum / static_cast<double>(j - i));
    g.bound.push_back(bound);
    i = j;
  }
  return g;
}

// Linear interpolation of the grid at y (edge value outside); `bound` is set
// when a grid point with positive interpolation weight is a bound.
double Interpolate(const GridOutcome& g, double y, bool* bound) {
  const size_t n = g.x.size();
  if (y <= g.x.front()) {
    *bound = g.bound.front();
    return g.v.front();
  }
  if (y >= g.x.back()) {
    *bound = g.bound.back();
    return g.v.back();
  }
  size_t i = 0;
  while (i + 2 < n && g.x[i + 1] < y) ++i;
  const double t = (y - g.x[i]) / (g.x[i + 1] - g.x[i]);
  *bound = (t < 1.0 && g.bound[i]) || (t > 0.0 && g.bound[i + 1]);
  return (1.0 - t) * g.v[i] + t * g.v[i + 1];
}

// Improvement: share = dL(y) / max_j dL_j over reached points at B.
void ImprovementEfficiency(const StageEvidence& ev, double b, double y_pred, double y_own,
                           HoldOutEfficiency* e) {
  std::vector<ProbePoint> at_b;
  for (const ProbePoint& p : ev.probes) {
    if (p.batch_size == b) at_b.push_back(p);
  }
  GridOutcome g;
  for (const LrGroup& l : GroupByLr(at_b)) {  // seed means of the reached points
    g.x.push_back(l.x);
    g.v.push_back(l.mean);
    g.bound.push_back(false);
  }
  if (g.x.empty()) return;
  const size_t k = std::max_element(g.v.begin(), g.v.end()) - g.v.begin();
  const double best = g.v[k];
  if (!(best > 0.0)) return;
  e->best_lr = std::exp(g.x[k]);
  bool unused = false;
  if (std::isfinite(y_pred)) e->share = Interpolate(g, y_pred, &unused) / best;
  if (std::isfinite(y_own)) e->ceiling = Interpolate(g, y_own, &unused) / best;
}

// Fastest: share = S_best / S(y), ln S geometric-mean per LR.
void FastestEfficiency(const StageEvidence& ev, double b, double y_pred, double y_own,
                       HoldOutEfficiency* e) {
  std::vector<std::pair<double, std::pair<double, bool>>> pts;
  for (const StepsPoint& p : ev.steps) {
    if (p.batch_size == b && p.steps > 0.0) {
      pts.push_back({std::log(p.lr), {std::log(p.steps), !p.reached}});
    }
  }
  if (pts.empty()) return;
  const GridOutcome g = Group(std::move(pts));
  double best = HUGE_VAL;
  for (size_t j = 0; j < g.x.size(); ++j) {
    if (!g.bound[j] && g.v[j] < best) {
      best = g.v[j];
      e->best_lr = std::exp(g.x[j]);
    }
  }
  if (!std::isfinite(best)) return;
  if (std::isfinite(y_pred)) {
    e->share = std::exp(best - Interpolate(g, y_pred, &e->share_bound));
  }
  if (std::isfinite(y_own)) {
    e->ceiling = std::exp(best - Interpolate(g, y_own, &e->ceiling_bound));
  }
}

// inside, z and consistent for a prediction of y measured with SE s:
// prediction SE `se`, curve-only SE `curve_se`.
HoldOutPrediction Compare(double mu, double se, double curve_se, double y, double s) {
  HoldOutPrediction p;
  p.ln_mean = mu;
  p.ln_se = se;
  p.ln_curve_se = curve_se;
  if (!AllFinite(mu, se)) return p;
  p.ln_ci95 = {mu - kZ95 * se, mu + kZ95 * se};
  p.inside = p.ln_ci95.lo <= y && y <= p.ln_ci95.hi;
  if (std::isfinite(curve_se)) p.curve_inside = std::fabs(y - mu) <= kZ95 * curve_se;
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
  r.averaged = Compare(avg.mean, avg.se, avg.curve_se, r.ln_measured, r.ln_measured_se);
  const CurvePrediction surge = refit.surge.PredictLnEpsOpt(ln_b);
  const double surge_se = std::sqrt(surge.var);
  r.surge = Compare(surge.mean, surge_se, surge_se, r.ln_measured, r.ln_measured_se);
}

// The check of one fitted stage against its evidence.
void CheckStage(const StageFit& st, const StageEvidence& all, const FitOptions& options,
                std::vector<HoldOutResult>* results) {
  const bool fastest = st.criterion == Criterion::kFastest;
  std::vector<double> batches;  // distinct B with an uncensored optimum
  for (const BatchOptimum& o : st.optima) {
    if (o.censoring == Censoring::kNone && (batches.empty() || batches.back() != o.batch_size)) {
      batches.push_back(o.batch_size);
    }
  }
  for (double b : batches) {
    const StageEvidence rest = Without(all, b);
    const absl::StatusOr<StageFit> refit =
        fastest ? FitFastestStage(st.stage_id, st.stage_loss, rest.steps, options)
                : FitStage(st.stage_id, st.stage_loss, rest.probes, rest.measured, options);
    for (const BatchOptimum& o : st.optima) {
      if (o.batch_size != b || o.censoring != Censoring::kNone) continue;
      HoldOutResult r;
      r.criterion = st.criterion;
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
        results->push_back(std::move(r));
        continue;
      }
      FillRefit(*refit, std::log(b), r);
      if (fastest) {
        FastestEfficiency(all, b, r.averaged.ln_mean, r.ln_measured, &r.efficiency);
      } else {
        ImprovementEfficiency(all, b, r.averaged.ln_mean, r.ln_measured, &r.efficiency);
      }
      if (b > refit->batch_min && b < refit->batch_max) {
        r.kind = HoldOutKind::kInterior;
      } else {
        r.kind = HoldOutKind::kExtrapolated;
        r.note = absl::StrCat("B=", b, " outside the remaining range [", refit->batch_min, ", ",
                              refit->batch_max, "]");
      }
      results->push_back(std::move(r));
    }
  }
}

double Median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
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
  SURGE_ASSIGN_OR_RETURN(JobFit fit, FitJob(input, options));

  // The raw evidence of every stage, grouped as FitJob groups it (plain runs
  // give improvement points and steps points at their targets).
  std::map<ImprovementKey, StageEvidence> improvement;
  std::map<int64_t, StageEvidence> fastest;
  for (const ProbePoint& p : input.probe_points) {
    improvement[{p.stage_id, HasRunEvidence(p.kind)}].probes.push_back(p);
  }
  for (const MeasuredOptimum& m : input.measured_optima) {
    improvement[{m.stage_id, false}].measured.push_back(m);
  }
  for (const StepsPoint& p : input.steps_points) fastest[p.stage_id].steps.push_back(p);
  if (!input.runs.empty()) {
    SURGE_ASSIGN_OR_RETURN(RunEvidence ev, BuildRunEvidence(input.runs, input.run_options));
    for (const ProbePoint& p : ev.improvement_points) {
      improvement[{p.stage_id, true}].probes.push_back(p);
    }
    for (const StepsPoint& p : ev.steps_points) fastest[p.stage_id].steps.push_back(p);
  }

  std::vector<HoldOutResult> results;
  std::vector<const StageFit*> stages;
  for (const StageFit& st : fit.stages) stages.push_back(&st);
  for (const StageFit& st : fit.set_aside) stages.push_back(&st);
  std::stable_sort(stages.begin(), stages.end(), [](const StageFit* a, const StageFit* b) {
    return a->stage_loss < b->stage_loss;
  });
  for (const StageFit* st : stages) {
    const auto it = improvement.find({st->stage_id, HasRunEvidence(st->evidence)});
    if (it != improvement.end()) CheckStage(*st, it->second, options, &results);
  }
  for (const StageFit& st : fit.fastest.stages) {
    const auto it = fastest.find(st.stage_id);
    if (it != fastest.end()) CheckStage(st, it->second, options, &results);
  }
  if (full != nullptr) *full = std::move(fit);
  return results;
}

HoldOutSummary SummarizeHoldOut(const std::vector<HoldOutResult>& results,
                                std::optional<int64_t> stage_id,
                                std::optional<Criterion> criterion) {
  HoldOutSummary s;
  double sum_z = 0.0, sum_z2 = 0.0, sum_share = 0.0, sum_ceiling = 0.0;
  int n_z = 0;
  std::vector<double> widths, curve_widths, shares;
  for (const HoldOutResult& r : results) {
    if (stage_id && r.stage_id != *stage_id) continue;
    if (criterion && r.criterion != *criterion) continue;
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
    if (r.averaged.curve_inside) ++s.curve_inside;
    // hi / lo of a 95% interval in LR units: exp(2 * 1.96 * se).
    if (std::isfinite(r.averaged.ln_se)) widths.push_back(std::exp(2 * kZ95 * r.averaged.ln_se));
    if (std::isfinite(r.averaged.ln_curve_se)) {
      curve_widths.push_back(std::exp(2 * kZ95 * r.averaged.ln_curve_se));
    }
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
    const HoldOutEfficiency& e = r.efficiency;
    if (std::isfinite(e.share) && std::isfinite(e.ceiling)) {
      ++s.efficiency_n;
      sum_share += e.share;
      shares.push_back(e.share);
      sum_ceiling += e.ceiling;
      s.min_share = std::isfinite(s.min_share) ? std::min(s.min_share, e.share) : e.share;
    }
  }
  if (n_z > 0) {
    s.mean_z = sum_z / n_z;
    s.rms_z = std::sqrt(sum_z2 / n_z);
  }
  if (s.efficiency_n > 0) {
    s.mean_share = sum_share / s.efficiency_n;
    s.mean_ceiling = sum_ceiling / s.efficiency_n;
  }
  s.median_share = Median(shares);
  s.median_width = Median(widths);
  s.median_curve_width = Median(curve_widths);
  return s;
}

}  // namespace surge::fit
