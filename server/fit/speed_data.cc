// Least squares of steps on 1/B at one target loss (see speed_data.h).
#include "server/fit/speed_data.h"

#include <cmath>
#include <map>
#include <set>
#include <string>

#include "Eigen/Dense"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace surge::fit {

absl::StatusOr<SpeedDataFit> FitSpeedData(const std::vector<SpeedPoint>& points) {
  std::set<double> batches;
  for (const SpeedPoint& p : points) {
    if (!AllFinite(p.target_loss, p.batch_size, p.steps) || p.batch_size <= 0.0 ||
        p.steps <= 0.0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "speed point (target_loss ", p.target_loss, ", batch_size ", p.batch_size,
          ", steps ", p.steps, "): fields must be finite, batch_size and steps > 0"));
    }
    if (p.target_loss != points[0].target_loss) {
      return absl::InvalidArgumentError("FitSpeedData: points of several target losses");
    }
    batches.insert(p.batch_size);
  }
  if (batches.size() < 3) {
    return absl::FailedPreconditionError(absl::StrCat(
        "speed/data fit: need runs at >= 3 batch sizes, have ", batches.size()));
  }
  // S_i = S_min + E_min z_i, z_i = 1 / B_i.
  Eigen::Matrix2d xtx = Eigen::Matrix2d::Zero();
  Eigen::Vector2d xty = Eigen::Vector2d::Zero();
  for (const SpeedPoint& p : points) {
    const Eigen::Vector2d row(1.0, 1.0 / p.batch_size);
    xtx += row * row.transpose();
    xty += row * p.steps;
  }
  const Eigen::Matrix2d inv = xtx.inverse();
  const Eigen::Vector2d coef = inv * xty;
  double rss = 0.0;
  for (const SpeedPoint& p : points) {
    const double r = p.steps - coef(0) - coef(1) / p.batch_size;
    rss += r * r;
  }
  const int n = static_cast<int>(points.size());
  const Eigen::Matrix2d cov = (rss / (n - 2)) * inv;
  SpeedDataFit out;
  out.target_loss = points[0].target_loss;
  out.n = n;
  out.s_min = {coef(0), std::sqrt(cov(0, 0))};
  out.e_min = {coef(1), std::sqrt(cov(1, 1))};
  if (coef(0) > 0.0 && coef(1) > 0.0) {
    const double s = coef(0), e = coef(1);
    const double var = cov(1, 1) / (e * e) + cov(0, 0) / (s * s) - 2.0 * cov(0, 1) / (s * e);
    out.ln_b_crit = {std::log(e / s), std::sqrt(std::max(var, 0.0))};
    out.b_crit = e / s;
  }
  return out;
}

absl::StatusOr<std::vector<SpeedDataFit>> FitSpeedDataByLoss(
    const std::vector<SpeedPoint>& points, std::vector<std::string>* skipped) {
  std::map<double, std::vector<SpeedPoint>> groups;
  for (const SpeedPoint& p : points) groups[p.target_loss].push_back(p);
  std::vector<SpeedDataFit> out;
  for (const auto& [loss, pts] : groups) {
    absl::StatusOr<SpeedDataFit> fit = FitSpeedData(pts);
    if (fit.ok()) {
      out.push_back(*fit);
    } else if (absl::IsFailedPrecondition(fit.status())) {
      if (skipped) skipped->push_back(absl::StrCat("target loss ", loss, ": ", fit.status().message()));
    } else {
      return fit.status();
    }
  }
  return out;
}

}  // namespace surge::fit
