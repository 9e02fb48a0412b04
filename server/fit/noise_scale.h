// The gradient-noise side channel (McCandlish et al. 2018, App. A): the
// simple noise scale B_simple = tr(S) / |G|^2 from squared gradient norms
// measured at a small and a big batch in the same step.
//
// Per step (unbiased single-step estimates, either may be negative):
//   |G|^2 ~ (B_big |G_big|^2 - B_small |G_small|^2) / (B_big - B_small),
//   tr(S) ~ (|G_small|^2 - |G_big|^2) / (1 / B_small - 1 / B_big).
// Numerator and denominator are smoothed with separate EMAs of decay beta,
// bias-corrected (Adam-style) by the number of steps seen:
//   m_t = beta m_{t-1} + (1 - beta) v_t,   m_hat_t = m_t / (1 - beta^t),
// and B_simple_t = tr(S)_hat_t / |G|^2_hat_t, marked invalid (NaN) when
// either smoothed value is <= 0. B_simple is NOT the surge law's B_noise: it
// tracks its trend only.
//
// Thread-safety: pure functions.
#ifndef SURGE_SERVER_FIT_NOISE_SCALE_H_
#define SURGE_SERVER_FIT_NOISE_SCALE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace surge::fit {

struct GradStatRecord {
  std::string run;            // series key
  int64_t step = 0;
  double grad_sq_small = 0;   // |G_small|^2, finite, >= 0
  double grad_sq_big = 0;     // |G_big|^2, finite, >= 0
  double b_small = 0;         // >= 1
  double b_big = 0;           // > b_small
};

struct NoiseScalePoint {
  int64_t step = 0;
  double grad_sq = 0;      // smoothed |G|^2
  double trace_cov = 0;    // smoothed tr(S)
  double b_simple = 0;     // NaN when !valid
  bool valid = false;
};

struct NoiseScaleSeries {
  std::string run;
  std::vector<NoiseScalePoint> points;  // ascending step
  // The last valid B_simple of the series (NaN if none).
  double last_b_simple = 0;
};

// One series per run, records sorted by step. Errors: kInvalidArgument
// (field named), decay outside [0, 1).
absl::StatusOr<std::vector<NoiseScaleSeries>> EstimateNoiseScale(
    const std::vector<GradStatRecord>& records, double decay = 0.95);

}  // namespace surge::fit

#endif  // SURGE_SERVER_FIT_NOISE_SCALE_H_
