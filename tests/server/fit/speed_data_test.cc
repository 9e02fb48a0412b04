// Tests of server/fit/speed_data: S(B) = S_min + E_min / B.
#include "server/fit/speed_data.h"

#include <cmath>
#include <random>

#include "gtest/gtest.h"

namespace surge::fit {
namespace {

TEST(SpeedDataTest, RecoversSminEminAndBcrit) {
  std::mt19937_64 rng(2);
  std::normal_distribution<double> noise(0.0, 0.02);
  const double s_min = 1000, e_min = 256000;  // B_crit = 256
  int covered = 0;
  const int kSeeds = 200;
  for (int seed = 0; seed < kSeeds; ++seed) {
    std::vector<SpeedPoint> pts;
    for (double b : {16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0}) {
      pts.push_back({2.5, b, (s_min + e_min / b) * (1.0 + noise(rng))});
    }
    const auto fit = FitSpeedData(pts);
    ASSERT_TRUE(fit.ok()) << fit.status();
    EXPECT_NEAR(fit->b_crit, 256.0, 0.35 * 256.0);
    covered += std::fabs(fit->ln_b_crit.value - std::log(256.0)) <= kZ95 * fit->ln_b_crit.se;
  }
  // OLS with t-less normal intervals on 6 dof: slightly under nominal.
  EXPECT_GE(covered, kSeeds * 0.85);
}

TEST(SpeedDataTest, CostRatios) {
  EXPECT_DOUBLE_EQ(StepsRatio(256, 256), 2.0);
  EXPECT_DOUBLE_EQ(ExamplesRatio(256, 256), 2.0);
  EXPECT_DOUBLE_EQ(StepsRatio(64, 256), 5.0);
  EXPECT_DOUBLE_EQ(ExamplesRatio(1024, 256), 5.0);
  // (S/S_min - 1)(E/E_min - 1) = 1.
  EXPECT_NEAR((StepsRatio(100, 300) - 1) * (ExamplesRatio(100, 300) - 1), 1.0, 1e-12);
}

TEST(SpeedDataTest, BadInput) {
  auto r = FitSpeedData({{2.0, 16, 100}, {2.0, 32, 80}});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("have 2"), std::string::npos);
  EXPECT_EQ(FitSpeedData({{2.0, 0, 100}}).status().code(), absl::StatusCode::kInvalidArgument);
  std::vector<std::string> skipped;
  auto grouped = FitSpeedDataByLoss({{2.0, 16, 100}, {3.0, 16, 50}, {3.0, 32, 40}, {3.0, 64, 35}},
                                    &skipped);
  ASSERT_TRUE(grouped.ok());
  EXPECT_EQ(grouped->size(), 1u);
  EXPECT_EQ(skipped.size(), 1u);
}

}  // namespace
}  // namespace surge::fit
