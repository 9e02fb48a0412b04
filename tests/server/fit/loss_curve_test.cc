// Tests of server/fit/loss_curve: step -> loss, monotone, with a flagged
// power-law extrapolation.
#include "server/fit/loss_curve.h"

#include <cmath>
#include <random>

#include "gtest/gtest.h"

namespace surge::fit {
namespace {

// L(t) = 2 + 10 (1 + t)^-0.5 with noise, several runs.
std::vector<LossPoint> NoisyLossCurve(int64_t last_step, std::mt19937_64& rng) {
  std::normal_distribution<double> noise(0.0, 0.05);
  std::vector<LossPoint> pts;
  for (int run = 0; run < 3; ++run) {
    for (int64_t t = 0; t <= last_step; t += 10) {
      pts.push_back({t, 2.0 + 10.0 / std::sqrt(1.0 + t) + noise(rng)});
    }
  }
  return pts;
}

TEST(LossCurveTest, MonotoneAndCloseToTruth) {
  std::mt19937_64 rng(3);
  const auto curve = LossCurve::Fit(NoisyLossCurve(20000, rng));
  ASSERT_TRUE(curve.ok()) << curve.status();
  double prev = HUGE_VAL;
  for (int64_t t = 0; t <= 20000; t += 37) {
    const LossAtStep l = curve->At(t);
    EXPECT_FALSE(l.extrapolated) << "step " << t;
    EXPECT_LE(l.loss, prev + 1e-12) << "not monotone at step " << t;
    prev = l.loss;
    if (t >= 200) {
      EXPECT_NEAR(l.loss, 2.0 + 10.0 / std::sqrt(1.0 + t), 0.05 * l.loss) << "step " << t;
    }
  }
}

TEST(LossCurveTest, ExtrapolationFlaggedAndDecreasing) {
  std::mt19937_64 rng(5);
  const auto curve = LossCurve::Fit(NoisyLossCurve(5000, rng));
  ASSERT_TRUE(curve.ok());
  const LossAtStep last = curve->At(5000);
  const LossAtStep beyond = curve->At(50000);
  EXPECT_FALSE(last.extrapolated);
  EXPECT_TRUE(beyond.extrapolated);
  EXPECT_LT(beyond.loss, last.loss);
  EXPECT_GT(curve->tail_exponent(), 0.0);
  // A plain power law fitted on the tail stays within 20% of the truth at 10x.
  EXPECT_NEAR(beyond.loss, 2.0 + 10.0 / std::sqrt(50001.0), 0.2 * beyond.loss);
}

TEST(LossCurveTest, BadInput) {
  EXPECT_EQ(LossCurve::Fit({}).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(LossCurve::Fit({{10, NAN}}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LossCurve::Fit({{-1, 2.0}}).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace surge::fit
