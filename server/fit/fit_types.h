// Small value types shared by every part of server/fit.
//
// The fitting library works in natural-log space throughout:
//   x = ln B   (batch size, in the job's declared unit)
//   y = ln eps (learning rate)
// A fitted quantity comes with a standard error (SE) in the same log space,
// and 95% intervals are mean +- kZ95 * SE unless a comment says otherwise.
//
// Everything in server/fit is plain data in, absl::StatusOr out; no type here
// owns resources, and all of them are safe to copy and to share read-only
// between threads.
#ifndef SURGE_SERVER_FIT_FIT_TYPES_H_
#define SURGE_SERVER_FIT_FIT_TYPES_H_

#include <cmath>
#include <string>

namespace surge::fit {

// Two-sided 95% normal quantile.
inline constexpr double kZ95 = 1.959963984540054;

// The 0.975 quantile of Student's t with `dof` >= 1 degrees of freedom
// (3 decimals up to 30, then the Cornish-Fisher expansion around kZ95). An SE
// whose variance has only `dof` degrees of freedom is widened by
// StudentT975(dof) / kZ95 so that the normal 95% interval used downstream has
// the t interval's width.
inline double StudentT975(int dof) {
  static constexpr double kTable[] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306,
                                      2.262,  2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120,
                                      2.110,  2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
                                      2.060,  2.056, 2.052, 2.048, 2.045, 2.042};
  if (dof < 1) return HUGE_VAL;
  if (dof <= 30) return kTable[dof - 1];
  const double z = kZ95, z3 = z * z * z, d = static_cast<double>(dof);
  return z + (z3 + z) / (4.0 * d) + (5.0 * z3 * z * z + 16.0 * z3 + 3.0 * z) / (96.0 * d * d);
}

// How an optimum is known.
//   kNone:       a point estimate (with an SE).
//   kUpperBound: the true optimum is <= the value (grid argmax at the lowest LR).
//   kLowerBound: the true optimum is >= the value (grid argmax at the highest LR).
enum class Censoring { kNone = 0, kUpperBound = 1, kLowerBound = 2 };

const char* CensoringName(Censoring c);

// One observation entering a curve fit: y = ln eps_opt at x = ln B with SE s
// (already floored), possibly a one-sided bound.
struct FitPoint {
  double x = 0.0;
  double y = 0.0;
  double s = 0.05;
  Censoring censoring = Censoring::kNone;
};

// A closed interval [lo, hi]; either end may be +-infinity.
struct Interval {
  double lo = -HUGE_VAL;
  double hi = HUGE_VAL;
};

// A value with its standard error (both in the same space).
struct Estimate {
  double value = NAN;
  double se = NAN;
  Interval Ci95() const { return {value - kZ95 * se, value + kZ95 * se}; }
};

// Where an optimum's evidence came from (bits; a stage may mix several).
//   kProbes:    k-step probes from a checkpoint (short horizon).
//   kFullRuns:  declared full runs (PROTOCOL_FULL_RUN): from scratch to L*, then k steps.
//   kPlainRuns: ordinary training runs, read as full runs at targets chosen from the data.
//   kMeasured:  optima imported with AddOptima.
enum EvidenceKind : int { kProbes = 1, kFullRuns = 2, kPlainRuns = 4, kMeasured = 8 };

// True when the evidence mask holds training runs (full or plain): the
// evidence that advice for training stands on.
inline bool HasRunEvidence(int mask) { return (mask & (kFullRuns | kPlainRuns)) != 0; }

// "plain_runs+full_runs", "probes", "measured", ... ("none" for 0).
std::string EvidenceNames(int mask);

// Which optimum a stage's LR is: the paper's criterion (the largest loss
// fall over the k steps after the stage) or the fewest steps to the stage's
// target loss (runs only).
enum class Criterion { kImprovement = 0, kFastest = 1 };
const char* CriterionName(Criterion c);

inline bool AllFinite(double v) { return std::isfinite(v); }
template <typename... Ts>
inline bool AllFinite(double v, Ts... rest) {
  return std::isfinite(v) && AllFinite(rest...);
}

}  // namespace surge::fit

#endif  // SURGE_SERVER_FIT_FIT_TYPES_H_
