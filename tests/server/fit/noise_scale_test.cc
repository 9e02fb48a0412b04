// Tests of server/fit/noise_scale: the two-batch B_simple estimator.
#include "server/fit/noise_scale.h"

#include <cmath>
#include <random>

#include "gtest/gtest.h"

namespace surge::fit {
namespace {

// E|G_B|^2 = |G|^2 + tr(S) / B; each measured norm carries relative noise.
std::vector<GradStatRecord> Synthetic(double g2, double trace, int steps, double rel_noise,
                                      std::mt19937_64& rng) {
  std::normal_distribution<double> n(0.0, 1.0);
  std::vector<GradStatRecord> out;
  const double bs = 32, bb = 256;
  for (int t = 0; t < steps; ++t) {
    const double es = g2 + trace / bs, eb = g2 + trace / bb;
    out.push_back({"run-a", t, es * (1.0 + rel_noise * n(rng)), eb * (1.0 + rel_noise * n(rng)),
                   bs, bb});
  }
  return out;
}

TEST(NoiseScaleTest, RecoversKnownNoiseScale) {
  struct Case {
    double g2, trace, rel_noise;
  } cases[] = {{2.0, 400.0, 0.1}, {0.5, 1000.0, 0.2}, {1.0, 50.0, 0.05}};
  for (const Case& c : cases) {
    std::mt19937_64 rng(17);
    const auto series = EstimateNoiseScale(Synthetic(c.g2, c.trace, 3000, c.rel_noise, rng), 0.99);
    ASSERT_TRUE(series.ok()) << series.status();
    ASSERT_EQ(series->size(), 1u);
    const double truth = c.trace / c.g2;
    EXPECT_NEAR((*series)[0].last_b_simple, truth, 0.15 * truth) << "B_simple " << truth;
    EXPECT_EQ((*series)[0].points.size(), 3000u);
  }
}

TEST(NoiseScaleTest, BiasCorrectionAndInvalidSteps) {
  // Noise-free: the bias-corrected EMA is exact from the first step.
  std::mt19937_64 rng(1);
  auto recs = Synthetic(2.0, 400.0, 5, 0.0, rng);
  auto s = EstimateNoiseScale(recs, 0.95);
  ASSERT_TRUE(s.ok());
  EXPECT_NEAR((*s)[0].points[0].b_simple, 200.0, 1e-9);
  EXPECT_NEAR((*s)[0].points[0].grad_sq, 2.0, 1e-9);
  // Big-batch norm above what the small batch implies: |G|^2 estimate <= 0 is flagged.
  std::vector<GradStatRecord> bad = {{"r", 0, 1.0, 0.0, 32, 256}};
  s = EstimateNoiseScale(bad);
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE((*s)[0].points[0].valid);
  EXPECT_TRUE(std::isnan((*s)[0].points[0].b_simple));
}

TEST(NoiseScaleTest, BadInput) {
  EXPECT_EQ(EstimateNoiseScale({{"r", 0, 1.0, 1.0, 32, 32}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EstimateNoiseScale({{"r", 0, NAN, 1.0, 32, 64}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EstimateNoiseScale({}, 1.0).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace surge::fit
