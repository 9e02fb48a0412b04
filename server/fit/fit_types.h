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

namespace surge::fit {

// Two-sided 95% normal quantile.
inline constexpr double kZ95 = 1.959963984540054;

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

inline bool AllFinite(double v) { return std::isfinite(v); }
template <typename... Ts>
inline bool AllFinite(double v, Ts... rest) {
  return std::isfinite(v) && AllFinite(rest...);
}

}  // namespace surge::fit

#endif  // SURGE_SERVER_FIT_FIT_TYPES_H_
