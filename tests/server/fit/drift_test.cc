// Tests of server/fit/drift: B_noise and eps_max across stages.
#include "server/fit/drift.h"

#include <cmath>
#include <cstdio>
#include <random>

#include "gtest/gtest.h"
#include "server/fit/fit_job.h"
#include "tests/server/fit/synthetic.h"

namespace surge::fit {
namespace {

using synth::MeasuredSurge;
using synth::PowersOfTwo;

// B_noise(L) = B_star L^(-1/alpha), eps_max(L) = e0 L^0.5.
struct DriftTruth {
  double alpha = 0.5;
  double b_star = 200.0;
  double e0 = 1e-3;
  double BNoise(double loss) const { return b_star * std::pow(loss, -1.0 / alpha); }
  double EpsMax(double loss) const { return e0 * std::sqrt(loss); }
};

JobInput DriftJob(const DriftTruth& t, const std::vector<double>& losses, double noise,
                  std::mt19937_64& rng) {
  JobInput in;
  int64_t id = 1;
  for (double l : losses) {
    auto m = MeasuredSurge(id++, l, t.EpsMax(l), t.BNoise(l), PowersOfTwo(2, 15), noise, rng);
    in.measured_optima.insert(in.measured_optima.end(), m.begin(), m.end());
  }
  return in;
}

TEST(DriftTest, RecoversAlpha) {
  struct Case {
    double alpha;
    double noise;
  } cases[] = {{0.5, 0.05}, {0.21, 0.05}, {0.8, 0.08}};
  for (const Case& c : cases) {
    DriftTruth t;
    t.alpha = c.alpha;
    t.b_star = c.alpha < 0.3 ? 18600.0 : 200.0;  // keep B_noise inside the batch range
    int covered = 0;
    const int kSeeds = 50;
    for (int seed = 0; seed < kSeeds; ++seed) {
      std::mt19937_64 rng(seed);
      const auto job = FitJob(DriftJob(t, {3.0, 2.4, 2.0, 1.6}, c.noise, rng));
      ASSERT_TRUE(job.ok()) << job.status();
      ASSERT_EQ(job->drift.mode, DriftMode::kLinear);
      ASSERT_EQ(job->drift.stage_ids.size(), 4u);
      const Estimate a = job->drift.alpha;
      EXPECT_NEAR(a.value, c.alpha, 0.35 * c.alpha) << "alpha " << c.alpha << " seed " << seed;
      covered += std::fabs(a.value - c.alpha) <= kZ95 * a.se;
      // B_noise at an intermediate loss.
      const DriftPoint p = job->drift.Evaluate(std::log(1.8));
      EXPECT_NEAR(p.b, std::log(t.BNoise(1.8)), 5 * std::sqrt(p.cov(1, 1)));
    }
    std::printf("alpha %.2f: alpha CI coverage %d/%d\n", c.alpha, covered, kSeeds);
    EXPECT_GE(covered, kSeeds * 0.85) << "alpha " << c.alpha;
  }
}

TEST(DriftTest, SingleStageIsConstant) {
  DriftStage s{7, std::log(2.0), std::log(1e-3), std::log(300.0), Eigen::Matrix2d::Identity() * 0.01};
  const DriftFit d = FitDrift({s});
  EXPECT_EQ(d.mode, DriftMode::kConstant);
  const DriftPoint p = d.Evaluate(std::log(1.0));
  EXPECT_NEAR(p.b, std::log(300.0), 1e-12);
  EXPECT_NEAR(p.cov(1, 1), 0.01, 1e-12);
  EXPECT_TRUE(std::isnan(d.alpha.value));
  EXPECT_EQ(FitDrift({}).mode, DriftMode::kNone);
}

}  // namespace
}  // namespace surge::fit
