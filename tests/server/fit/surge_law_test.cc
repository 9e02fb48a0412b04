// Tests of server/fit/surge_law: recovery, interval coverage over many seeds,
// identifiability (one-sided data give bounds), censored optima.
#include "server/fit/surge_law.h"

#include <cmath>
#include <cstdio>
#include <random>

#include "gtest/gtest.h"
#include "tests/server/fit/synthetic.h"

namespace surge::fit {
namespace {

using synth::NoisyOptima;
using synth::PowersOfTwo;

const double kEpsMax = 1e-3;
const double kBNoise = 400.0;

std::vector<double> SurgeParams(double eps_max, double b_noise) {
  return {std::log(eps_max), std::log(b_noise)};
}

TEST(SurgeLawTest, RecoversParametersOnStraddlingData) {
  struct Case {
    double noise;
    double b_noise;
  } cases[] = {{0.05, 400.0}, {0.10, 400.0}, {0.05, 60.0}, {0.08, 3000.0}};
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << "noise=" << c.noise << " B_noise=" << c.b_noise);
    std::mt19937_64 rng(42);
    const auto pts = NoisyOptima(ModelKind::kSurge, SurgeParams(kEpsMax, c.b_noise),
                                 PowersOfTwo(3, 14), c.noise, c.noise, rng);
    const auto fit = FitSurgeLaw(pts);
    ASSERT_TRUE(fit.ok()) << fit.status();
    EXPECT_EQ(fit->identification, PeakIdentification::kIdentified);
    EXPECT_NEAR(fit->ln_b_noise, std::log(c.b_noise), 4 * fit->LnBNoise().se);
    EXPECT_NEAR(fit->ln_b_noise, std::log(c.b_noise), 0.5);
    EXPECT_NEAR(fit->ln_eps_max, std::log(kEpsMax), 0.15);
    EXPECT_GT(fit->LnBNoise().se, 0.0);
  }
}

// Over many seeds, the 95% intervals of ln B_noise and of ln eps_opt(B) cover
// the truth 90-98% of the time.
TEST(SurgeLawTest, IntervalsCoverTruth) {
  struct Case {
    double noise;         // true sd of ln eps_opt
    double reported_se;   // s_i given to the fit (0.05: understated for 0.10)
    std::vector<double> batches;
  } cases[] = {{0.07, 0.07, PowersOfTwo(3, 14)},
               {0.05, 0.05, PowersOfTwo(2, 16, 2)},
               {0.10, 0.10, PowersOfTwo(3, 14)},
               {0.10, 0.05, PowersOfTwo(3, 14)}};
  const int kSeeds = 300;
  int case_index = 0;
  for (const Case& c : cases) {
    const std::vector<double>& batches = c.batches;
    ++case_index;
    int cover_b = 0, cover_y = 0, cover_y_far = 0, identified = 0;
    const double x_q = std::log(64.0), x_far = std::log(8192.0);
    for (int seed = 0; seed < kSeeds; ++seed) {
      std::mt19937_64 rng(1000 * case_index + seed);
      const auto pts = NoisyOptima(ModelKind::kSurge, SurgeParams(kEpsMax, kBNoise), batches,
                                   c.noise, c.reported_se, rng);
      const auto fit = FitSurgeLaw(pts);
      ASSERT_TRUE(fit.ok()) << fit.status() << " seed " << seed;
      if (fit->identification != PeakIdentification::kIdentified) continue;
      ++identified;
      const Interval b = fit->LnBNoise().Ci95();
      cover_b += b.lo <= std::log(kBNoise) && std::log(kBNoise) <= b.hi;
      for (auto [x, counter] : {std::pair{x_q, &cover_y}, std::pair{x_far, &cover_y_far}}) {
        const CurvePrediction p = fit->PredictLnEpsOpt(x);
        const double truth = synth::SurgeLnLr(kEpsMax, kBNoise, std::exp(x));
        *counter += std::fabs(p.mean - truth) <= kZ95 * std::sqrt(p.var);
      }
    }
    const double rb = cover_b / double(identified), ry = cover_y / double(identified),
                 ry_far = cover_y_far / double(identified);
    std::printf("noise %.2f se %.2f: identified %d/%d, coverage ln B_noise %.3f, "
                "ln eps_opt(64) %.3f, ln eps_opt(8192) %.3f\n",
                c.noise, c.reported_se, identified, kSeeds, rb, ry, ry_far);
    SCOPED_TRACE(::testing::Message() << "noise=" << c.noise << " se=" << c.reported_se);
    EXPECT_GE(identified, kSeeds * 0.98);
    EXPECT_GE(rb, 0.90);
    EXPECT_LE(rb, 0.98);
    EXPECT_GE(ry, 0.90);
    EXPECT_LE(ry, 0.98);
    EXPECT_GE(ry_far, 0.90);
    EXPECT_LE(ry_far, 0.98);
  }
}

// All batch sizes far below the peak: only a - b/2 is identified; the fit
// reports a lower bound on B_noise, below the truth in most seeds.
TEST(SurgeLawTest, AllBelowPeakGivesLowerBound) {
  const double b_noise = 1e5;
  int below = 0, truth_above_bound = 0;
  double comb_err = 0.0;
  const int kSeeds = 200;
  for (int seed = 0; seed < kSeeds; ++seed) {
    std::mt19937_64 rng(seed);
    const auto pts = NoisyOptima(ModelKind::kSurge, SurgeParams(kEpsMax, b_noise),
                                 PowersOfTwo(3, 10), 0.08, 0.08, rng);
    const auto fit = FitSurgeLaw(pts);
    ASSERT_TRUE(fit.ok()) << fit.status();
    if (fit->identification != PeakIdentification::kBelowPeak) continue;
    ++below;
    EXPECT_TRUE(std::isnan(fit->ln_b_noise)) << "no invented point, seed " << seed;
    truth_above_bound += std::log(b_noise) >= fit->ln_b_noise_bound;
    comb_err = std::max(comb_err, std::fabs(fit->combination.value -
                                            (std::log(kEpsMax) - 0.5 * std::log(b_noise))));
    EXPECT_EQ(fit->curve.kind, ModelKind::kSurgeRisingLimit);
  }
  std::printf("below-peak: %d/%d flagged, truth >= bound in %d\n", below, kSeeds,
              truth_above_bound);
  EXPECT_GE(below, kSeeds * 0.85);
  EXPECT_GE(truth_above_bound, below * 0.9);
  EXPECT_LT(comb_err, 0.2);
}

TEST(SurgeLawTest, AllAbovePeakGivesUpperBound) {
  const double b_noise = 4.0;
  int above = 0, truth_below_bound = 0;
  const int kSeeds = 200;
  for (int seed = 0; seed < kSeeds; ++seed) {
    std::mt19937_64 rng(500 + seed);
    const auto pts = NoisyOptima(ModelKind::kSurge, SurgeParams(kEpsMax, b_noise),
                                 PowersOfTwo(8, 16), 0.08, 0.08, rng);
    const auto fit = FitSurgeLaw(pts);
    ASSERT_TRUE(fit.ok()) << fit.status();
    if (fit->identification != PeakIdentification::kAbovePeak) continue;
    ++above;
    truth_below_bound += std::log(b_noise) <= fit->ln_b_noise_bound;
    EXPECT_NEAR(fit->combination.value, std::log(kEpsMax) + 0.5 * std::log(b_noise), 0.2);
  }
  std::printf("above-peak: %d/%d flagged, truth <= bound in %d\n", above, kSeeds,
              truth_below_bound);
  EXPECT_GE(above, kSeeds * 0.85);
  EXPECT_GE(truth_below_bound, above * 0.9);
}

// Censored optima are one-sided: a satisfied bound leaves the fit unchanged;
// a violated one pulls it.
TEST(SurgeLawTest, CensoredOptimaAreOneSided) {
  std::mt19937_64 rng(9);
  auto pts = NoisyOptima(ModelKind::kSurge, SurgeParams(kEpsMax, kBNoise), PowersOfTwo(3, 14),
                         0.05, 0.05, rng);
  const auto base = FitSurgeLaw(pts);
  ASSERT_TRUE(base.ok());
  auto with_bound = pts;
  // Satisfied: the optimum at B = 2^15 is below 10 * eps_max.
  with_bound.push_back({std::log(32768.0), std::log(10 * kEpsMax), 0.2, Censoring::kUpperBound});
  const auto fit1 = FitSurgeLaw(with_bound);
  ASSERT_TRUE(fit1.ok());
  EXPECT_NEAR(fit1->ln_b_noise, base->ln_b_noise, 1e-6);
  EXPECT_EQ(fit1->n_bounds, 1);
  // Violated: a lower bound far above the curve at B = 2^15 pulls the curve up there.
  auto violated = pts;
  violated.push_back({std::log(32768.0), std::log(2 * kEpsMax), 0.05, Censoring::kLowerBound});
  const auto fit2 = FitSurgeLaw(violated);
  ASSERT_TRUE(fit2.ok());
  // (Huber caps the pull of one violated bound, so the shift is modest.)
  EXPECT_GT(fit2->PredictLnEpsOpt(std::log(32768.0)).mean,
            base->PredictLnEpsOpt(std::log(32768.0)).mean + 0.01);
  EXPECT_GT(fit2->cost, base->cost);
}

TEST(SurgeLawTest, BadInput) {
  std::vector<FitPoint> two = {{1.0, -7.0, 0.1}, {2.0, -6.8, 0.1}};
  auto r = FitSurgeLaw(two);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("need optima at >= 3 batch sizes, have 2"),
            std::string::npos);
  std::vector<FitPoint> nan = {{1.0, NAN, 0.1}, {2.0, -6.8, 0.1}, {3.0, -6.9, 0.1}};
  EXPECT_EQ(FitSurgeLaw(nan).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace surge::fit
