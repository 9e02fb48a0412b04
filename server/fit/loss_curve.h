// The job's loss curve: step -> training loss, smoothed and non-increasing,
// from the (step, loss) records of its plain runs, with a power-law tail
// beyond the data (flagged as extrapolated).
//
// Construction:
//   1. Bins equally spaced in ln(1 + step) over the data (at most max_bins);
//      per non-empty bin the median step t_j, the median loss m_j, count n_j.
//   2. Pool-adjacent-violators (weights n_j) makes m_j non-increasing.
//   3. Inside the data: linear interpolation in ln(1 + t) between knots,
//      constant before the first / after the last knot.
//   4. Beyond the last step: L(t) = L_K (t / t_K)^(-p), anchored at the last
//      knot K, with p the least-squares slope of ln L on ln t over the knots
//      in the upper half of the ln-step range (p <= 0 or too few knots: flat).
//   Steps before the first record are answered with the first knot's loss
//   and also flagged as extrapolated.
//
// Thread-safety: immutable after Fit(); At() is const and lock-free.
#ifndef SURGE_SERVER_FIT_LOSS_CURVE_H_
#define SURGE_SERVER_FIT_LOSS_CURVE_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace surge::fit {

struct LossPoint {
  int64_t step = 0;   // >= 0
  double loss = 0.0;  // finite, > 0
};

struct LossAtStep {
  double loss = 0.0;
  bool extrapolated = false;
};

class LossCurve {
 public:
  // Errors: kInvalidArgument (negative step, non-finite or non-positive
  // loss), kFailedPrecondition (no points).
  static absl::StatusOr<LossCurve> Fit(const std::vector<LossPoint>& points,
                                       int max_bins = 64);

  LossAtStep At(int64_t step) const;

  int64_t first_step() const { return first_step_; }
  int64_t last_step() const { return last_step_; }
  double tail_exponent() const { return tail_p_; }
  const std::vector<double>& knot_steps() const { return knot_t_; }
  const std::vector<double>& knot_losses() const { return knot_l_; }

 private:
  int64_t first_step_ = 0;
  int64_t last_step_ = 0;
  std::vector<double> knot_t_;   // median step per bin, ascending
  std::vector<double> knot_u_;   // ln(1 + knot_t_)
  std::vector<double> knot_l_;   // non-increasing
  double tail_p_ = 0.0;          // L ~ t^-p beyond the data
};

}  // namespace surge::fit

#endif  // SURGE_SERVER_FIT_LOSS_CURVE_H_
