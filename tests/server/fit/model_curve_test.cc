// Tests of server/fit/model_curve: the curve formulas in their original
// (linear-space) forms, the surge limits, and the autodiff gradient.
#include "server/fit/model_curve.h"

#include <cmath>

#include "gtest/gtest.h"

namespace surge::fit {
namespace {

TEST(ModelCurveTest, MatchesLinearSpaceFormulas) {
  const double eps = 1e-3, bn = 300.0;
  for (double b : {1.0, 17.0, 300.0, 5000.0, 1e6}) {
    const double x = std::log(b);
    SCOPED_TRACE(::testing::Message() << "B=" << b);
    // Surge: 2 eps sqrt(B/Bn) / (1 + B/Bn).
    const double surge[] = {std::log(eps), std::log(bn)};
    EXPECT_NEAR(EvalCurve(ModelKind::kSurge, x, surge),
                std::log(2 * eps * std::sqrt(b / bn) / (1 + b / bn)), 1e-12);
    // SGD: eps / (1 + Bn/B); alpha form with alpha = 0.7.
    EXPECT_NEAR(EvalCurve(ModelKind::kSgd, x, surge), std::log(eps / (1 + bn / b)), 1e-12);
    const double alpha_form[] = {std::log(eps), std::log(bn), 0.7};
    EXPECT_NEAR(EvalCurve(ModelKind::kAlphaForm, x, alpha_form),
                std::log(eps / std::pow(1 + bn / b, 0.7)), 1e-12);
    // Power law c B^alpha.
    const double power[] = {std::log(2e-5), 0.4};
    EXPECT_NEAR(EvalCurve(ModelKind::kPowerLaw, x, power), std::log(2e-5 * std::pow(b, 0.4)),
                1e-12);
    // Saturating surge: eps / ((beta_s/beta + beta/beta_s) / 2).
    const double beta_s = 0.3, bs = 2000.0;
    const double sat[] = {std::log(eps), std::log(bs), std::log(beta_s / (1 - beta_s))};
    const double beta = 1.0 / std::sqrt(1 + bs / b);
    EXPECT_NEAR(EvalCurve(ModelKind::kSaturatingSurge, x, sat),
                std::log(eps / ((beta_s / beta + beta / beta_s) / 2)), 1e-12);
  }
}

TEST(ModelCurveTest, SaturatingPeakLocation) {
  const double beta_s = 0.4, bs = 2000.0;
  const double sat[] = {0.0, std::log(bs), std::log(beta_s / (1 - beta_s))};
  const double peak = bs * beta_s * beta_s / (1 - beta_s * beta_s);
  const double at_peak = EvalCurve(ModelKind::kSaturatingSurge, std::log(peak), sat);
  EXPECT_NEAR(at_peak, 0.0, 1e-12);
  EXPECT_LT(EvalCurve(ModelKind::kSaturatingSurge, std::log(peak * 1.5), sat), at_peak);
  EXPECT_LT(EvalCurve(ModelKind::kSaturatingSurge, std::log(peak / 1.5), sat), at_peak);
}

TEST(ModelCurveTest, SurgeLimitsMatchFarFromPeak) {
  const double a = std::log(1e-3), b = std::log(1e5);
  const double surge[] = {a, b};
  const double rising[] = {a - b / 2};
  const double falling[] = {a + b / 2};
  EXPECT_NEAR(EvalCurve(ModelKind::kSurge, std::log(8.0), surge),
              EvalCurve(ModelKind::kSurgeRisingLimit, std::log(8.0), rising), 1e-3);
  EXPECT_NEAR(EvalCurve(ModelKind::kSurge, std::log(1e10), surge),
              EvalCurve(ModelKind::kSurgeFallingLimit, std::log(1e10), falling), 1e-3);
}

TEST(ModelCurveTest, GradientMatchesFiniteDifferences) {
  for (ModelKind kind : {ModelKind::kSurge, ModelKind::kSgd, ModelKind::kAlphaForm,
                         ModelKind::kPowerLaw, ModelKind::kSaturatingSurge}) {
    std::vector<double> p = {std::log(1e-3), std::log(500.0), 0.6};
    p.resize(NumParams(kind));
    double g[3];
    const double x = std::log(200.0);
    EvalCurveWithGradient(kind, x, p.data(), g);
    for (int i = 0; i < NumParams(kind); ++i) {
      std::vector<double> hi = p, lo = p;
      hi[i] += 1e-6;
      lo[i] -= 1e-6;
      const double fd = (EvalCurve(kind, x, hi.data()) - EvalCurve(kind, x, lo.data())) / 2e-6;
      EXPECT_NEAR(g[i], fd, 1e-6) << ModelName(kind) << " param " << i;
    }
  }
}

TEST(ModelCurveTest, PredictUsesDeltaMethod) {
  ModelCurve c;
  c.kind = ModelKind::kSurge;
  c.params = {std::log(1e-3), std::log(400.0)};
  c.cov = Eigen::Matrix2d{{0.01, 0.002}, {0.002, 0.04}};
  const double x = std::log(50.0);
  const double t = 0.5 * std::tanh(0.5 * (x - c.params[1]));  // d f / d b
  const CurvePrediction p = c.Predict(x);
  EXPECT_NEAR(p.var, 0.01 + 2 * t * 0.002 + t * t * 0.04, 1e-12);
}

}  // namespace
}  // namespace surge::fit
