// Tests of server/fit/fit_core: censored residuals, the offset minimizer
// (variable projection) and the generic Ceres curve fit.
#include "server/fit/fit_core.h"

#include <cmath>
#include <random>

#include "gtest/gtest.h"

namespace surge::fit {
namespace {

TEST(FitCoreTest, CensoredResidualIsOneSided) {
  struct Case {
    double y, f;
    Censoring c;
    double want;
  } cases[] = {
      {1.0, 0.5, Censoring::kNone, 5.0},        {1.0, 1.5, Censoring::kNone, -5.0},
      {1.0, 0.5, Censoring::kUpperBound, 0.0},  {1.0, 1.5, Censoring::kUpperBound, -5.0},
      {1.0, 1.5, Censoring::kLowerBound, 0.0},  {1.0, 0.5, Censoring::kLowerBound, 5.0},
  };
  for (const Case& c : cases) {
    EXPECT_DOUBLE_EQ(CensoredResidual(c.y, c.f, 0.1, c.c), c.want)
        << "y=" << c.y << " f=" << c.f << " censoring=" << CensoringName(c.c);
  }
}

TEST(FitCoreTest, OffsetIsWeightedMeanWithoutOutliers) {
  std::vector<FitPoint> pts = {{0, 1.0, 0.1}, {1, 1.2, 0.2}, {2, 0.9, 0.1}, {3, 1.1, 0.3}};
  std::vector<double> g = {0.0, 0.1, -0.1, 0.05};
  double sw = 0, swz = 0;
  for (size_t i = 0; i < pts.size(); ++i) {
    const double w = 1 / (pts[i].s * pts[i].s);
    sw += w;
    swz += w * (pts[i].y - g[i]);
  }
  const OffsetFit off = MinimizeOffset(pts, g.data(), 100.0);
  EXPECT_NEAR(off.a, swz / sw, 1e-12);
  // An outlier is down-weighted by the Huber loss (k = 2).
  pts.push_back({4, 10.0, 0.1});
  g.push_back(0.0);
  const OffsetFit robust = MinimizeOffset(pts, g.data(), 2.0);
  const OffsetFit plain = MinimizeOffset(pts, g.data(), 1e9);
  EXPECT_LT(std::fabs(robust.a - swz / sw), 0.5 * std::fabs(plain.a - swz / sw));
}

TEST(FitCoreTest, OffsetRespectsBounds) {
  // Points at 1.0; an upper bound at 0.5 forces the offset down, a satisfied
  // lower bound at 0 changes nothing.
  std::vector<FitPoint> pts = {{0, 1.0, 0.1}, {1, 1.0, 0.1}, {2, 0.0, 0.1, Censoring::kLowerBound}};
  std::vector<double> g(3, 0.0);
  EXPECT_NEAR(MinimizeOffset(pts, g.data(), 2.0).a, 1.0, 1e-12);
  pts[2] = {2, 0.5, 0.1, Censoring::kUpperBound};
  const double a = MinimizeOffset(pts, g.data(), 1e9).a;
  EXPECT_NEAR(a, (1.0 + 1.0 + 0.5) / 3.0, 1e-12);
}

TEST(FitCoreTest, FitCurveRecoversPowerLawAndScalesCovariance) {
  std::mt19937_64 rng(8);
  std::normal_distribution<double> noise(0.0, 0.2);
  std::vector<FitPoint> pts;
  for (int i = 0; i < 20; ++i) {
    const double x = 0.5 * i;
    pts.push_back({x, -5.0 + 0.4 * x + noise(rng), 0.05});  // s understates the noise
  }
  const auto fit = FitCurve(ModelKind::kPowerLaw, pts, {0.0, 0.0}, {}, 1e9);
  ASSERT_TRUE(fit.ok()) << fit.status();
  EXPECT_NEAR(fit->curve.params[1], 0.4, 0.05);
  EXPECT_EQ(fit->dof, 18);
  EXPECT_GT(fit->scale, 5.0);  // ~ (0.2 / 0.05)^2 = 16
  EXPECT_TRUE(fit->covariance_ok);
  // The slope's SE reflects the true scatter: sd 0.2 over x in [0, 9.5].
  double sxx = 0, mx = 4.75;
  for (const FitPoint& p : pts) sxx += (p.x - mx) * (p.x - mx);
  EXPECT_NEAR(std::sqrt(fit->curve.cov(1, 1)), 0.2 / std::sqrt(sxx), 0.4 * 0.2 / std::sqrt(sxx));
  EXPECT_EQ(VarianceScale(3.0, 6), 1.0);
  EXPECT_EQ(VarianceScale(30.0, 0), 1.0);
}

}  // namespace
}  // namespace surge::fit
