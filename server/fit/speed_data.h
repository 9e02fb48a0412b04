// Speed vs data at one target loss (Li et al. Eqs. 20-22; McCandlish et al.):
//
//   S(B) = S_min + E_min / B,   B_crit = E_min / S_min,
//   (S / S_min - 1)(E / E_min - 1) = 1,
//
// fitted by ordinary least squares of S on z = 1/B across full runs that
// reached the same target loss. Standard errors from the residual variance
//   sigma^2 = RSS / (n - 2),  Cov(S_min, E_min) = sigma^2 (X^T X)^-1,
// and for ln B_crit by the delta method:
//   var(ln B_crit) = var(E)/E^2 + var(S)/S^2 - 2 cov(S, E) / (S E).
// The cost ratios at any B given B_noise (the balance point):
//   S / S_min = 1 + B_noise / B,   E / E_min = 1 + B / B_noise.
//
// Thread-safety: pure functions.
#ifndef SURGE_SERVER_FIT_SPEED_DATA_H_
#define SURGE_SERVER_FIT_SPEED_DATA_H_

#include <vector>

#include "absl/status/statusor.h"
#include "server/fit/fit_types.h"

namespace surge::fit {

// One full run: the steps it took to reach `target_loss` at `batch_size`.
struct SpeedPoint {
  double target_loss = NAN;
  double batch_size = 0.0;  // > 0
  double steps = 0.0;       // > 0
};

struct SpeedDataFit {
  double target_loss = NAN;
  Estimate s_min;      // steps
  Estimate e_min;      // examples (in the batch unit)
  Estimate ln_b_crit;  // NaN when S_min or E_min <= 0
  double b_crit = NAN;
  int n = 0;           // runs
};

// Fits one target loss (all points must share it). Errors: kInvalidArgument
// (non-finite or non-positive field), kFailedPrecondition ("need runs at
// >= 3 batch sizes, have 2").
absl::StatusOr<SpeedDataFit> FitSpeedData(const std::vector<SpeedPoint>& points);

// Groups points by target loss and fits each group that has >= 3 batch sizes
// (the others are skipped, their reasons appended to `skipped`).
absl::StatusOr<std::vector<SpeedDataFit>> FitSpeedDataByLoss(
    const std::vector<SpeedPoint>& points, std::vector<std::string>* skipped);

inline double StepsRatio(double batch_size, double b_noise) {
  return 1.0 + b_noise / batch_size;
}
inline double ExamplesRatio(double batch_size, double b_noise) {
  return 1.0 + batch_size / b_noise;
}

}  // namespace surge::fit

#endif  // SURGE_SERVER_FIT_SPEED_DATA_H_
