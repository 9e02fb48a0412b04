// Two-batch gradient-noise estimator with bias-corrected EMAs (see
// noise_scale.h).
#include "server/fit/noise_scale.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace surge::fit {

absl::StatusOr<std::vector<NoiseScaleSeries>> EstimateNoiseScale(
    const std::vector<GradStatRecord>& records, double decay) {
  if (!(decay >= 0.0 && decay < 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("EMA decay must be in [0, 1), got ", decay));
  }
  std::map<std::string, std::vector<GradStatRecord>> by_run;
  for (const GradStatRecord& r : records) {
    if (!std::isfinite(r.grad_sq_small) || !std::isfinite(r.grad_sq_big) ||
        r.grad_sq_small < 0.0 || r.grad_sq_big < 0.0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "grad stats of run '", r.run, "' step ", r.step,
          ": squared norms must be finite and >= 0"));
    }
    if (!std::isfinite(r.b_small) || !std::isfinite(r.b_big) || r.b_small < 1.0 ||
        r.b_big <= r.b_small) {
      return absl::InvalidArgumentError(absl::StrCat(
          "grad stats of run '", r.run, "' step ", r.step,
          ": need b_small >= 1 and b_big > b_small, got ", r.b_small, ", ", r.b_big));
    }
    by_run[r.run].push_back(r);
  }
  std::vector<NoiseScaleSeries> out;
  for (auto& [run, recs] : by_run) {
    std::stable_sort(recs.begin(), recs.end(),
                     [](const GradStatRecord& a, const GradStatRecord& b) { return a.step < b.step; });
    NoiseScaleSeries series;
    series.run = run;
    series.last_b_simple = NAN;
    double m_g = 0.0, m_s = 0.0, decay_pow = 1.0;
    for (const GradStatRecord& r : recs) {
      const double g2 = (r.b_big * r.grad_sq_big - r.b_small * r.grad_sq_small) /
                        (r.b_big - r.b_small);
      const double tr = (r.grad_sq_small - r.grad_sq_big) / (1.0 / r.b_small - 1.0 / r.b_big);
      m_g = decay * m_g + (1.0 - decay) * g2;
      m_s = decay * m_s + (1.0 - decay) * tr;
      decay_pow *= decay;
      NoiseScalePoint p;
      p.step = r.step;
      p.grad_sq = m_g / (1.0 - decay_pow);
      p.trace_cov = m_s / (1.0 - decay_pow);
      p.valid = p.grad_sq > 0.0 && p.trace_cov > 0.0;
      p.b_simple = p.valid ? p.trace_cov / p.grad_sq : NAN;
      if (p.valid) series.last_b_simple = p.b_simple;
      series.points.push_back(p);
    }
    out.push_back(std::move(series));
  }
  return out;
}

}  // namespace surge::fit
