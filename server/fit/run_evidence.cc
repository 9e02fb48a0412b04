// BuildRunEvidence: LR coordinates and schedule shapes, the loss signal
// (eval or smoothed training loss), targets from the data, and per target
// the crossing step and k-step improvement of every run (rules in
// run_evidence.h).
#include "server/fit/run_evidence.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace surge::fit {
namespace {

constexpr double kCellWidth = 0.05;  // ln(1 + step) per smoothing cell
constexpr int kShapePoints = 16;
constexpr double kShapeTolerance = 0.1;

double Median(std::vector<double> v) {
  const size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + mid, v.end());
  double hi = v[mid];
  if (v.size() % 2 == 1) return hi;
  return 0.5 * (hi + *std::max_element(v.begin(), v.begin() + mid));
}

double Quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const size_t i = static_cast<size_t>(std::floor(pos));
  const size_t j = std::min(i + 1, v.size() - 1);
  return v[i] + (pos - static_cast<double>(i)) * (v[j] - v[i]);
}

// Rounds up to 3 significant digits.
double CeilSignificant3(double v) {
  const double scale = std::pow(10.0, 2 - std::floor(std::log10(v)));
  return std::ceil(v * scale - 1e-9) / scale;
}

// A run's LR schedule: lr / peak at kShapePoints fractions of its steps;
// empty for a constant LR.
std::vector<double> ScheduleShape(const RunSeries& r, double peak) {
  std::vector<double> shape;
  const double first = static_cast<double>(r.steps.front());
  const double last = static_cast<double>(r.steps.back());
  for (int i = 0; i < kShapePoints; ++i) {
    const double at = first + (i + 0.5) / kShapePoints * (last - first);
    auto it = std::upper_bound(r.steps.begin(), r.steps.end(), static_cast<int64_t>(at));
    const size_t idx = it == r.steps.begin() ? 0 : static_cast<size_t>(it - r.steps.begin()) - 1;
    shape.push_back(r.lr[idx] / peak);
  }
  return shape;
}

bool SameShape(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::fabs(a[i] - b[i]) > kShapeTolerance) return false;
  }
  return true;
}

struct UsableRun {
  const RunSeries* run;
  double lr;
  bool scheduled;
  int shape_group;  // 0: constant LR
  LossTrace trace;
};

}  // namespace

const char* LossSignalName(LossSignal s) {
  return s == LossSignal::kEval ? "eval_loss" : "smoothed_training_loss";
}

int64_t TargetStageId(double target) { return static_cast<int64_t>(std::llround(target * 1e6)); }

double LossTrace::ValueAt(double s) const {
  if (step.empty() || s > step.back() + 1e-9) return NAN;
  if (!interpolate) {
    auto it = std::lower_bound(step.begin(), step.end(), s - 1e-9);
    return value[static_cast<size_t>(it - step.begin())];
  }
  if (s <= step.front()) return value.front();
  auto it = std::upper_bound(step.begin(), step.end(), s);
  if (it == step.end()) return value.back();
  const size_t j = static_cast<size_t>(it - step.begin()), i = j - 1;
  const double t = (s - step[i]) / (step[j] - step[i]);
  return value[i] + t * (value[j] - value[i]);
}

LossTrace SmoothLoss(const std::vector<int64_t>& steps, const std::vector<double>& examples,
                     const std::vector<double>& loss) {
  LossTrace out;
  const size_t n = steps.size();
  if (n == 0) return out;
  const size_t m = std::clamp<size_t>(n / 16, 3, 16);
  // Bin boundaries: a new bin starts at a new cell once the current one has m records.
  std::vector<size_t> starts = {0};
  int64_t cell = static_cast<int64_t>(std::floor(std::log1p(std::max<double>(0, steps[0])) / kCellWidth));
  for (size_t i = 1; i < n; ++i) {
    const int64_t c =
        static_cast<int64_t>(std::floor(std::log1p(std::max<double>(0, steps[i])) / kCellWidth));
    if (c != cell && i - starts.back() >= m) starts.push_back(i);
    cell = c;
  }
  if (starts.size() > 1 && n - starts.back() < m) starts.pop_back();  // short tail joins its predecessor
  for (size_t b = 0; b < starts.size(); ++b) {
    const size_t lo = starts[b], hi = b + 1 < starts.size() ? starts[b + 1] : n;
    std::vector<double> s, e, l;
    for (size_t i = lo; i < hi; ++i) {
      s.push_back(static_cast<double>(steps[i]));
      e.push_back(examples[i]);
      l.push_back(std::isfinite(loss[i]) ? loss[i] : HUGE_VAL);  // diverged: never reached
    }
    out.step.push_back(Median(s));
    out.examples.push_back(Median(e));
    out.value.push_back(Median(l));
  }
  out.interpolate = true;
  return out;
}

LossTrace EvalTrace(const RunSeries& run) {
  LossTrace out;
  out.interpolate = false;
  for (size_t i = 0; i < run.steps.size(); ++i) {
    if (!std::isfinite(run.eval_loss[i])) continue;
    out.step.push_back(static_cast<double>(run.steps[i]));
    out.examples.push_back(run.examples[i]);
    out.value.push_back(run.eval_loss[i]);
  }
  return out;
}

Crossing FirstCrossing(const LossTrace& trace, double target) {
  Crossing c;
  for (size_t i = 0; i < trace.value.size(); ++i) {
    if (!(trace.value[i] <= target)) continue;
    c.reached = true;
    if (trace.interpolate && i > 0 && trace.value[i - 1] > target) {
      const double t = (trace.value[i - 1] - target) / (trace.value[i - 1] - trace.value[i]);
      c.step = trace.step[i - 1] + t * (trace.step[i] - trace.step[i - 1]);
      c.examples = trace.examples[i - 1] + t * (trace.examples[i] - trace.examples[i - 1]);
    } else {
      c.step = trace.step[i];
      c.examples = trace.examples[i];
    }
    return c;
  }
  return c;
}

std::vector<double> ChooseTargets(const std::vector<double>& reach,
                                  const std::vector<double>& first,
                                  const std::vector<double>& batch,
                                  const std::vector<double>& lr, int max_targets) {
  // Per batch size, per LR: the best reach over seeds.
  std::map<double, std::vector<std::pair<double, double>>> by_batch;  // B -> (ln lr, reach)
  for (size_t i = 0; i < reach.size(); ++i) by_batch[batch[i]].emplace_back(std::log(lr[i]), reach[i]);
  std::vector<double> third_best;  // per batch size with runs at >= 3 LRs
  for (auto& [b, v] : by_batch) {
    std::sort(v.begin(), v.end());
    std::vector<double> best;  // per LR
    for (size_t i = 0; i < v.size(); ++i) {
      if (i > 0 && v[i].first - v[i - 1].first < 1e-9) {
        best.back() = std::min(best.back(), v[i].second);
      } else {
        best.push_back(v[i].second);
      }
    }
    if (best.size() < 3) continue;
    std::sort(best.begin(), best.end());
    third_best.push_back(best[2]);
  }
  if (third_best.empty()) return {};
  // The loss that max(3, half) of those batch sizes reach at >= 3 LRs.
  std::sort(third_best.begin(), third_best.end());
  const size_t n_b = third_best.size();
  const size_t rank = std::min(n_b, std::max<size_t>(3, (n_b + 1) / 2)) - 1;
  const double l_low = third_best[rank];
  if (!std::isfinite(l_low) || l_low <= 0.0) return {};
  std::vector<double> finite_reach, finite_first;
  for (double r : reach) if (std::isfinite(r)) finite_reach.push_back(r);
  for (double f : first) if (std::isfinite(f)) finite_first.push_back(f);
  double l_high = Quantile(finite_reach, 0.9);
  if (!finite_first.empty()) l_high = std::min(l_high, 0.9 * Median(finite_first));
  std::vector<double> targets;
  if (!(l_high > 1.05 * l_low) || max_targets <= 1) {
    targets.push_back(CeilSignificant3(l_low));
    return targets;
  }
  // l_high / l_low overflows for losses near DBL_MAX and near 0: then the
  // same span as a difference of logs (finite: both losses are finite, > 0).
  double span = std::log(l_high / l_low);
  if (!std::isfinite(span)) span = std::log(l_high) - std::log(l_low);
  const int n = std::clamp(1 + static_cast<int>(std::floor(span / 0.05)), 2, max_targets);
  for (int i = 0; i < n; ++i) {
    const double t = CeilSignificant3(l_high * std::exp(-span * i / (n - 1)));
    if (targets.empty() || t < targets.back()) targets.push_back(t);
  }
  return targets;
}

absl::StatusOr<RunEvidence> BuildRunEvidence(const std::vector<RunSeries>& runs,
                                             const RunEvidenceOptions& options) {
  if (options.k_steps < 1) {
    return absl::InvalidArgumentError(absl::StrCat("k_steps must be >= 1, got ", options.k_steps));
  }
  for (double t : options.targets) {
    if (!std::isfinite(t) || t <= 0.0) {
      return absl::InvalidArgumentError(
          absl::StrCat("target losses must be finite and > 0, got ", t));
    }
  }
  RunEvidence ev;
  ev.k_steps = options.k_steps;
  std::vector<UsableRun> usable;
  std::vector<std::vector<double>> shapes;  // representative shape per scheduled group (1-based)
  int no_records = 0, no_lr = 0;
  for (const RunSeries& r : runs) {
    const size_t n = r.steps.size();
    if (!(r.batch_size > 0.0) || !std::isfinite(r.batch_size)) {
      return absl::InvalidArgumentError(
          absl::StrCat("run '", r.name, "': batch_size must be finite and > 0"));
    }
    if (r.examples.size() != n || r.lr.size() != n || r.loss.size() != n ||
        r.eval_loss.size() != n) {
      return absl::InvalidArgumentError(absl::StrCat("run '", r.name, "': series lengths differ"));
    }
    if (n < 3) {
      ++no_records;
      continue;
    }
    const auto [mn, mx] = std::minmax_element(r.lr.begin(), r.lr.end());
    const bool scheduled = *mx - *mn > 1e-6 * *mx;
    const double lr = r.base_lr > 0.0 ? r.base_lr : *mx;
    if (!(lr > 0.0) || !std::isfinite(lr)) {
      ++no_lr;
      continue;
    }
    int group = 0;
    if (scheduled) {
      std::vector<double> shape = ScheduleShape(r, *mx);
      group = -1;
      for (size_t g = 0; g < shapes.size(); ++g) {
        if (SameShape(shapes[g], shape)) group = static_cast<int>(g) + 1;
      }
      if (group < 0) {
        shapes.push_back(std::move(shape));
        group = static_cast<int>(shapes.size());
      }
    }
    usable.push_back({&r, lr, scheduled, group, {}});
  }
  ev.runs_left_out = no_records + no_lr;
  if (no_records > 0) ev.notes.push_back(absl::StrCat(no_records, " plain runs with < 3 records left out"));
  if (no_lr > 0) ev.notes.push_back(absl::StrCat(no_lr, " plain runs without a positive LR left out"));
  if (usable.empty()) return ev;

  // The largest schedule-shape group (constant LR wins ties).
  std::map<int, int> group_size;
  for (const UsableRun& u : usable) ++group_size[u.shape_group];
  int chosen = 0, chosen_n = -1;
  for (const auto& [g, cnt] : group_size) {
    if (cnt > chosen_n) chosen = g, chosen_n = cnt;
  }
  const int left_out = static_cast<int>(usable.size()) - chosen_n;
  if (left_out > 0) {
    ev.runs_left_out += left_out;
    ev.notes.push_back(absl::StrFormat(
        "%d plain runs left out as not comparable: their LR schedule shape differs from the %d "
        "runs used (%s)",
        left_out, chosen_n, chosen == 0 ? "constant LR" : "a shared schedule, LR = its peak"));
    usable.erase(std::remove_if(usable.begin(), usable.end(),
                                [&](const UsableRun& u) { return u.shape_group != chosen; }),
                 usable.end());
  }
  ev.runs_used = static_cast<int>(usable.size());
  for (const UsableRun& u : usable) ev.run_coordinates.emplace_back(u.run->batch_size, u.lr);
  if (chosen != 0) {
    ev.runs_scheduled = ev.runs_used;
    ev.notes.push_back(absl::StrCat(ev.runs_used,
                                    " plain runs are scheduled (their LR varies): each run's LR "
                                    "coordinate is its base_lr, else its peak LR"));
  }

  // The loss signal: eval loss when every run reports it.
  bool all_eval = true;
  for (const UsableRun& u : usable) {
    int evals = 0;
    for (double v : u.run->eval_loss) evals += std::isfinite(v) ? 1 : 0;
    all_eval = all_eval && evals >= 3;
  }
  ev.signal = all_eval ? LossSignal::kEval : LossSignal::kSmoothedTraining;
  for (UsableRun& u : usable) {
    u.trace = all_eval ? EvalTrace(*u.run) : SmoothLoss(u.run->steps, u.run->examples, u.run->loss);
  }

  // Targets.
  const double k = options.k_steps;
  if (!options.targets.empty()) {
    ev.targets = options.targets;
    std::sort(ev.targets.rbegin(), ev.targets.rend());
    ev.targets.erase(std::unique(ev.targets.begin(), ev.targets.end()), ev.targets.end());
    ev.targets_from_data = false;
  } else {
    std::vector<double> reach, first, batch, lr;
    for (const UsableRun& u : usable) {
      double best = HUGE_VAL;
      for (size_t i = 0; i < u.trace.step.size(); ++i) {
        if (u.trace.step[i] <= u.trace.step.back() - k) best = std::min(best, u.trace.value[i]);
      }
      reach.push_back(best);
      first.push_back(u.trace.value.empty() ? NAN : u.trace.value.front());
      batch.push_back(u.run->batch_size);
      lr.push_back(u.lr);
    }
    ev.targets = ChooseTargets(reach, first, batch, lr, options.max_targets);
    if (ev.targets.empty()) {
      ev.notes.push_back(
          "plain runs: no target loss chosen: no batch size has runs at >= 3 learning rates "
          "that reach a common loss");
      return ev;
    }
  }

  // Per run and target: S, E, and the k-step improvement.
  int too_late = 0;
  for (const UsableRun& u : usable) {
    const RunSeries& r = *u.run;
    for (double target : ev.targets) {
      StepsPoint sp;
      sp.stage_id = TargetStageId(target);
      sp.stage_loss = target;
      sp.batch_size = r.batch_size;
      sp.lr = u.lr;
      sp.seed = r.seed;
      sp.kind = kPlainRuns;
      ProbePoint pp;
      pp.stage_id = sp.stage_id;
      pp.stage_loss = target;
      pp.batch_size = r.batch_size;
      pp.lr = u.lr;
      pp.seed = r.seed;
      pp.kind = kPlainRuns;
      const Crossing c = FirstCrossing(u.trace, target);
      if (!c.reached) {
        sp.reached = false;
        sp.steps = static_cast<double>(r.steps.back());
        sp.examples = r.examples.back();
        pp.reached = false;
        ev.steps_points.push_back(sp);
        ev.improvement_points.push_back(pp);
        continue;
      }
      sp.steps = std::max(c.step, 1.0);
      sp.examples = c.examples;
      ev.steps_points.push_back(sp);
      const double before = u.trace.ValueAt(c.step), after = u.trace.ValueAt(c.step + k);
      if (std::isfinite(before) && std::isfinite(after)) {
        pp.improvement = before - after;
        ev.improvement_points.push_back(pp);
      } else {
        ++too_late;
      }
    }
  }
  std::vector<std::string> shown;
  for (double t : ev.targets) shown.push_back(absl::StrFormat("%.4g", t));
  ev.notes.push_back(absl::StrFormat(
      "plain runs: %d used, signal %s, targets %s (%s), k = %d", ev.runs_used,
      LossSignalName(ev.signal), absl::StrJoin(shown, ", "),
      ev.targets_from_data ? "chosen from the data" : "declared", options.k_steps));
  if (too_late > 0) {
    ev.notes.push_back(absl::StrCat(too_late,
                                    " (run, target) pairs reached the target less than k steps "
                                    "before the run's end: steps to target only"));
  }
  return ev;
}

}  // namespace surge::fit
