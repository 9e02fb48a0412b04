// Weighted linear fits of ln B_noise and ln eps_max against ln L, with their
// joint covariance (see drift.h).
#include "server/fit/drift.h"

#include <algorithm>
#include <cmath>

#include "Eigen/Dense"

namespace surge::fit {
namespace {

// Weighted least squares y = X theta with weights w: returns K such that
// theta = K y, and the reduced chi-square scale.
Eigen::MatrixXd SolveGain(const Eigen::MatrixXd& x, const Eigen::VectorXd& w) {
  const Eigen::MatrixXd xtw = x.transpose() * w.asDiagonal();
  return (xtw * x).inverse() * xtw;
}

double Scale(const Eigen::MatrixXd& x, const Eigen::VectorXd& y,
             const Eigen::VectorXd& w, const Eigen::VectorXd& theta) {
  const int dof = static_cast<int>(x.rows() - x.cols());
  if (dof < 1) return 1.0;
  const Eigen::VectorXd r = y - x * theta;
  return std::max(1.0, r.dot(w.asDiagonal() * r) / dof);
}

}  // namespace

const char* DriftModeName(DriftMode m) {
  switch (m) {
    case DriftMode::kNone:
      return "none";
    case DriftMode::kConstant:
      return "constant";
    case DriftMode::kLinear:
      return "linear";
  }
  return "unknown";
}

DriftFit FitDrift(const std::vector<DriftStage>& stages) {
  std::vector<DriftStage> use;
  for (const DriftStage& s : stages) {
    if (AllFinite(s.ln_loss, s.a, s.b, s.cov(0, 0), s.cov(0, 1), s.cov(1, 1)) &&
        s.cov(0, 0) > 0.0 && s.cov(1, 1) > 0.0) {
      use.push_back(s);
    }
  }
  DriftFit fit;
  if (use.empty()) return fit;
  const int n = static_cast<int>(use.size());
  fit.ln_loss_min = HUGE_VAL;
  fit.ln_loss_max = -HUGE_VAL;
  for (const DriftStage& s : use) {
    fit.stage_ids.push_back(s.stage_id);
    fit.ln_loss_min = std::min(fit.ln_loss_min, s.ln_loss);
    fit.ln_loss_max = std::max(fit.ln_loss_max, s.ln_loss);
  }
  const int p = fit.ln_loss_max - fit.ln_loss_min > 1e-9 ? 2 : 1;
  fit.mode = p == 2 ? DriftMode::kLinear : DriftMode::kConstant;

  Eigen::MatrixXd x(n, p);
  Eigen::VectorXd ya(n), yb(n), wa(n), wb(n), cab(n);
  for (int i = 0; i < n; ++i) {
    x(i, 0) = 1.0;
    if (p == 2) x(i, 1) = use[i].ln_loss;
    ya(i) = use[i].a;
    yb(i) = use[i].b;
    wa(i) = 1.0 / use[i].cov(0, 0);
    wb(i) = 1.0 / use[i].cov(1, 1);
    cab(i) = use[i].cov(0, 1);
  }
  const Eigen::MatrixXd ka = SolveGain(x, wa), kb = SolveGain(x, wb);
  const Eigen::VectorXd ta = ka * ya, tb = kb * yb;
  const double sa = Scale(x, ya, wa, ta), sb = Scale(x, yb, wb, tb);
  // Cov(theta) = K diag(var) K^T; with var = 1/w this is (X^T W X)^-1.
  const Eigen::MatrixXd caa = sa * ka * wa.cwiseInverse().asDiagonal() * ka.transpose();
  const Eigen::MatrixXd cbb = sb * kb * wb.cwiseInverse().asDiagonal() * kb.transpose();
  const Eigen::MatrixXd cab_t = std::sqrt(sa * sb) * ka * cab.asDiagonal() * kb.transpose();

  fit.a_coef.setZero();
  fit.b_coef.setZero();
  fit.cov.setZero();
  fit.a_coef.head(p) = ta;
  fit.b_coef.head(p) = tb;
  fit.cov.block(0, 0, p, p) = caa;
  fit.cov.block(2, 2, p, p) = cbb;
  fit.cov.block(0, 2, p, p) = cab_t;
  fit.cov.block(2, 0, p, p) = cab_t.transpose();
  if (p == 2 && fit.b_coef(1) != 0.0) {
    const double c1 = fit.b_coef(1);
    fit.alpha = {-1.0 / c1, std::sqrt(fit.cov(3, 3)) / (c1 * c1)};
  }
  return fit;
}

DriftPoint DriftFit::Evaluate(double ln_loss) const {
  DriftPoint out;
  if (mode == DriftMode::kNone) return out;
  const Eigen::Vector2d h(1.0, mode == DriftMode::kLinear ? ln_loss : 0.0);
  out.a = a_coef.dot(h);
  out.b = b_coef.dot(h);
  out.cov(0, 0) = h.dot(cov.block<2, 2>(0, 0) * h);
  out.cov(1, 1) = h.dot(cov.block<2, 2>(2, 2) * h);
  out.cov(0, 1) = out.cov(1, 0) = h.dot(cov.block<2, 2>(0, 2) * h);
  return out;
}

}  // namespace surge::fit
