// Ordinary training runs as evidence (surge-math.md, section 2: "Ordinary
// runs are the full-run protocol").
//
// A job's plain runs at several (B, LR) hold the paper's evidence: for a
// target loss L* that a run crosses, S = its first step at or below L*
// (E = examples seen at S), and the k steps after S give the paper's
// improvement. BuildRunEvidence turns runs into
//   * improvement points (criterion "improvement"; ProbePoint, kind plain_runs)
//   * steps points        (criterion "fastest"; StepsPoint)
// at every target, a run that never reaches L* being censored (S > its last
// step), not dropped.
//
// Per run:
//   LR coordinate: the declared base_lr (> 0), else the constant LR of its
//     records; a run whose record LRs vary is "scheduled" (coordinate: base_lr,
//     else its peak LR). Runs are grouped by schedule shape (lr / peak at 16
//     fractions of the run, equal within 0.1; all constant runs are one
//     shape); the largest group is used and the others are left out as not
//     comparable, with a note.
//   Loss signal: the eval loss when every usable run reports one (>= 3 eval
//     records; non-finite eval values are skipped), else the training loss
//     of every run (a non-finite value, e.g. a diverged run, counts as +inf),
//     smoothed (SmoothLoss):
//     records binned by ln(1 + step) in cells 0.05 wide (5% of the step),
//     cells merged forward until each holds >= m records
//     (m = clamp(n / 16, 3, 16)), one knot per bin at (median step, median
//     loss), linear in between. The median is robust to loss spikes and, in
//     a centered bin, unbiased for a locally linear trend (an EMA would lag
//     by ~1/(1-beta) steps, and by more at small LRs whose curves are flat).
//   Crossing of L*: the first knot at or below L*; for the smoothed signal
//     S is interpolated linearly between that knot and the one before it;
//     for eval losses S is that record's step (as the full-run protocol).
//   Improvement: signal(S) - signal(S + k), where for eval losses the second
//     value is the first eval record at a step >= S + k (k steps, or to the
//     next evaluation when evaluations are sparser). A run that reached L*
//     less than k steps before its end gives a steps point but no improvement.
// Targets (when none are declared): the range most runs reach.
//   reach(run) = the lowest signal value at a knot with step <= last - k;
//   L_low  = per batch size with runs at >= 3 LRs, the third lowest reach
//            (best over seeds, per LR: an optimum of either criterion needs
//            three LRs that get there); over those batch sizes, the value
//            that max(3, half of them) reach (the rank-th smallest): slow
//            batch sizes drop out of the lowest stages instead of holding
//            every stage at the loss they reach;
//   L_high = the 90th percentile of reach over runs (nine in ten of the
//            runs get there), at most 0.9 x the median first-knot value;
//   n = 1 if L_high <= 1.05 L_low or max_targets <= 1 (the target is then
//       L_low), else clamp(1 + floor(ln(L_high/L_low)/0.05), 2, max_targets)
//   targets geometrically spaced from L_high down to L_low, rounded up to
//   3 significant digits (stage ids stay stable while a sweep grows).
//
// Thread-safety: pure functions.
#ifndef SURGE_SERVER_FIT_RUN_EVIDENCE_H_
#define SURGE_SERVER_FIT_RUN_EVIDENCE_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "server/fit/optimum.h"
#include "server/fit/steps_optimum.h"

namespace surge::fit {

// One run's records, ascending step. eval_loss is NaN where absent.
struct RunSeries {
  std::string name;
  double batch_size = 0.0;  // > 0
  double base_lr = 0.0;     // declared; 0 = none
  int64_t seed = 0;
  std::vector<int64_t> steps;
  std::vector<double> examples;
  std::vector<double> lr;
  std::vector<double> loss;
  std::vector<double> eval_loss;
};

struct RunEvidenceOptions {
  int k_steps = 10;             // the paper's k (>= 1)
  std::vector<double> targets;  // declared target losses; empty: chosen from the data
  int max_targets = 4;          // when chosen from the data
};

enum class LossSignal { kEval, kSmoothedTraining };
const char* LossSignalName(LossSignal s);

// A run's loss signal: knots (step, examples, value), ascending step.
struct LossTrace {
  std::vector<double> step;
  std::vector<double> examples;
  std::vector<double> value;
  bool interpolate = true;  // smoothed training loss: linear between knots
  double ValueAt(double s) const;  // interpolated (or the first knot at >= s); NaN beyond the end
};

// The smoothed training loss of one run (the rule in the header comment).
LossTrace SmoothLoss(const std::vector<int64_t>& steps, const std::vector<double>& examples,
                     const std::vector<double>& loss);
// The eval records of one run as a trace (no interpolation).
LossTrace EvalTrace(const RunSeries& run);

struct Crossing {
  bool reached = false;
  double step = NAN;      // S (first step at or below the target)
  double examples = NAN;  // E at S
};
Crossing FirstCrossing(const LossTrace& trace, double target);

// Targets chosen from the data (descending loss); `reach` is each run's
// reach, `first` each run's first knot value, `batch` and `lr` its
// coordinates (the rule in the header comment). Empty when no batch size has
// runs at >= 3 LRs.
std::vector<double> ChooseTargets(const std::vector<double>& reach,
                                  const std::vector<double>& first,
                                  const std::vector<double>& batch,
                                  const std::vector<double>& lr, int max_targets);

struct RunEvidence {
  LossSignal signal = LossSignal::kSmoothedTraining;
  std::vector<double> targets;         // descending
  bool targets_from_data = true;       // false: declared
  int k_steps = 10;
  std::vector<ProbePoint> improvement_points;  // one per (run, target) reached with k steps after
  std::vector<StepsPoint> steps_points;        // one per (run, target), censored included
  int runs_used = 0;
  int runs_scheduled = 0;              // of the used runs
  int runs_left_out = 0;               // not comparable, no records, bad LR
  std::vector<std::string> notes;
  // (batch size, LR coordinate) of every used run, for messages about what
  // a sweep lacks.
  std::vector<std::pair<double, double>> run_coordinates;
};

// Stage id of a target loss L*: round(L* x 10^6) (as full runs).
int64_t TargetStageId(double target);

// Errors: kInvalidArgument (a run with a non-positive batch size, mismatched
// series lengths, a declared target not finite and > 0, k < 1). Runs that
// cannot be used are counted and noted, not errors; no runs give an empty
// RunEvidence.
absl::StatusOr<RunEvidence> BuildRunEvidence(const std::vector<RunSeries>& runs,
                                             const RunEvidenceOptions& options);

}  // namespace surge::fit

#endif  // SURGE_SERVER_FIT_RUN_EVIDENCE_H_
