// Binned-median, isotonic (PAVA) loss curve with a power-law tail (see
// loss_curve.h).
#include "server/fit/loss_curve.h"

#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace surge::fit {
namespace {

double Median(std::vector<double> v) {
  const size_t n = v.size();
  std::nth_element(v.begin(), v.begin() + n / 2, v.end());
  double hi = v[n / 2];
  if (n % 2 == 1) return hi;
  const double lo = *std::max_element(v.begin(), v.begin() + n / 2);
  return 0.5 * (lo + hi);
}

// Weighted pool-adjacent-violators for a non-increasing fit.
std::vector<double> NonIncreasingPava(const std::vector<double>& y,
                                      const std::vector<double>& w) {
  struct Block {
    double sum_wy, sum_w;
    int len;
  };
  std::vector<Block> blocks;
  for (size_t i = 0; i < y.size(); ++i) {
    blocks.push_back({w[i] * y[i], w[i], 1});
    while (blocks.size() > 1) {
      const Block& b = blocks.back();
      const Block& a = blocks[blocks.size() - 2];
      if (a.sum_wy / a.sum_w >= b.sum_wy / b.sum_w) break;  // non-increasing: ok
      Block merged{a.sum_wy + b.sum_wy, a.sum_w + b.sum_w, a.len + b.len};
      blocks.pop_back();
      blocks.back() = merged;
    }
  }
  std::vector<double> out;
  for (const Block& b : blocks) out.insert(out.end(), b.len, b.sum_wy / b.sum_w);
  return out;
}

}  // namespace

absl::StatusOr<LossCurve> LossCurve::Fit(const std::vector<LossPoint>& points,
                                         int max_bins) {
  if (points.empty()) {
    return absl::FailedPreconditionError("loss curve: no plain-run loss records");
  }
  for (const LossPoint& p : points) {
    if (p.step < 0 || !std::isfinite(p.loss) || p.loss <= 0.0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "loss curve: record at step ", p.step, " has loss ", p.loss,
          "; need step >= 0 and a finite loss > 0"));
    }
  }
  std::vector<LossPoint> pts = points;
  std::sort(pts.begin(), pts.end(),
            [](const LossPoint& a, const LossPoint& b) { return a.step < b.step; });
  LossCurve c;
  c.first_step_ = pts.front().step;
  c.last_step_ = pts.back().step;

  // 1. Bins in ln(1 + step).
  const double u0 = std::log1p(static_cast<double>(c.first_step_));
  const double u1 = std::log1p(static_cast<double>(c.last_step_));
  const int nbins = std::max(1, max_bins);
  const double width = (u1 - u0) / nbins;
  auto bin_of = [&](int64_t step) {
    if (width <= 0.0) return 0;
    const int b = static_cast<int>((std::log1p(static_cast<double>(step)) - u0) / width);
    return std::clamp(b, 0, nbins - 1);
  };
  std::vector<double> med_t, med_l, count;
  size_t i = 0;
  while (i < pts.size()) {
    const int b = bin_of(pts[i].step);
    std::vector<double> ts, ls;
    for (; i < pts.size() && bin_of(pts[i].step) == b; ++i) {
      ts.push_back(static_cast<double>(pts[i].step));
      ls.push_back(pts[i].loss);
    }
    med_t.push_back(Median(ts));
    med_l.push_back(Median(ls));
    count.push_back(static_cast<double>(ts.size()));
  }

  // 2. Isotonic (non-increasing) smoothing.
  c.knot_t_ = med_t;
  c.knot_l_ = NonIncreasingPava(med_l, count);
  for (double t : c.knot_t_) c.knot_u_.push_back(std::log1p(t));

  // 4. Tail exponent from the knots in the upper half of the ln-step range.
  const double u_mid = 0.5 * (c.knot_u_.front() + c.knot_u_.back());
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  int n = 0;
  for (size_t k = 0; k < c.knot_t_.size(); ++k) {
    if (c.knot_u_[k] < u_mid || c.knot_t_[k] <= 0.0) continue;
    const double lx = std::log(c.knot_t_[k]), ly = std::log(c.knot_l_[k]);
    sx += lx;
    sy += ly;
    sxx += lx * lx;
    sxy += lx * ly;
    ++n;
  }
  if (n >= 3) {
    const double den = n * sxx - sx * sx;
    const double slope = den > 0.0 ? (n * sxy - sx * sy) / den : 0.0;
    c.tail_p_ = std::max(0.0, -slope);
  }
  return c;
}

LossAtStep LossCurve::At(int64_t step) const {
  LossAtStep out;
  const double t = static_cast<double>(step);
  if (step > last_step_) {
    out.extrapolated = true;
    const double tk = std::max(knot_t_.back(), 1.0);
    out.loss = knot_l_.back() * std::pow(std::max(t, tk) / tk, -tail_p_);
    return out;
  }
  out.extrapolated = step < first_step_;
  const double u = std::log1p(std::max(t, 0.0));
  if (u <= knot_u_.front()) {
    out.loss = knot_l_.front();
  } else if (u >= knot_u_.back()) {
    out.loss = knot_l_.back();
  } else {
    const size_t k = std::upper_bound(knot_u_.begin(), knot_u_.end(), u) - knot_u_.begin();
    const double w = (u - knot_u_[k - 1]) / (knot_u_[k] - knot_u_[k - 1]);
    out.loss = knot_l_[k - 1] + w * (knot_l_[k] - knot_l_[k - 1]);
  }
  return out;
}

}  // namespace surge::fit
