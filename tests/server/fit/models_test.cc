// Tests of server/fit/models: AICc, model selection on data from each
// comparison model, verdicts, and model averaging.
#include "server/fit/models.h"

#include <cmath>
#include <cstdio>
#include <random>

#include "gtest/gtest.h"
#include "server/fit/surge_law.h"
#include "tests/server/fit/synthetic.h"

namespace surge::fit {
namespace {

using synth::NoisyOptima;
using synth::PowersOfTwo;

absl::StatusOr<ModelComparison> Compare(const std::vector<FitPoint>& pts) {
  absl::StatusOr<SurgeLawFit> surge = FitSurgeLaw(pts);
  if (!surge.ok()) return surge.status();
  return CompareModels(pts, *surge);
}

TEST(ModelsTest, AiccFormula) {
  // n = 10, k = 3, RSS = 5: 10 ln 0.5 + 6 + 24 / 6.
  EXPECT_NEAR(Aicc(5.0, 10, 3), 10 * std::log(0.5) + 6 + 4, 1e-12);
  EXPECT_TRUE(std::isnan(Aicc(5.0, 4, 3)));  // n <= k + 1
  const std::vector<double> w = AkaikeWeights({10.0, 12.0, NAN});
  EXPECT_NEAR(w[0], 1.0 / (1.0 + std::exp(-1.0)), 1e-12);
  EXPECT_EQ(w[2], 0.0);
}

TEST(ModelsTest, BucklandAverageIncludesBetweenModelSpread) {
  const CurvePrediction p = ModelAverage({0.5, 0.5, 0.0}, {{1.0, 0.01}, {3.0, 0.04}, {NAN, NAN}});
  EXPECT_NEAR(p.mean, 2.0, 1e-12);
  EXPECT_NEAR(p.var, 0.5 * (0.01 + 1.0) + 0.5 * (0.04 + 1.0), 1e-12);
}

// Data generated from each model select that model (or at least its family)
// most of the time. Twelve batch sizes 2^3..2^14, 5% noise.
TEST(ModelsTest, SelectsTheGeneratingModel) {
  struct Case {
    ModelKind kind;
    std::vector<double> params;
    double min_family_rate;  // generating family holds the most weight
    double min_model_rate;   // generating model has the highest weight
  } cases[] = {
      {ModelKind::kSurge, {std::log(1e-3), std::log(400.0)}, 0.95, 0.85},
      {ModelKind::kSgd, {std::log(1e-2), std::log(300.0)}, 0.95, 0.85},
      {ModelKind::kAlphaForm, {std::log(1e-2), std::log(300.0), 0.7}, 0.95, 0.85},
      {ModelKind::kPowerLaw, {std::log(1e-5), 0.35}, 0.95, 0.85},
      {ModelKind::kSaturatingSurge, {std::log(1e-3), std::log(2000.0), std::log(0.4 / 0.6)},
       0.95, 0.85},
  };
  const int kSeeds = 60;
  for (const Case& c : cases) {
    int family = 0, exact = 0;
    for (int seed = 0; seed < kSeeds; ++seed) {
      std::mt19937_64 rng(77 + seed);
      const auto pts = NoisyOptima(c.kind, c.params, PowersOfTwo(3, 14), 0.05, 0.05, rng);
      const auto cmp = Compare(pts);
      ASSERT_TRUE(cmp.ok()) << cmp.status();
      const bool surge_truth = IsSurgeFamily(c.kind);
      family += surge_truth ? cmp->surge_family_weight > cmp->monotone_weight
                            : cmp->monotone_weight > cmp->surge_family_weight;
      const ModelFit* best = &cmp->models[0];
      for (const ModelFit& m : cmp->models) {
        if (m.weight > best->weight) best = &m;
      }
      exact += best->kind == c.kind;
    }
    const double fr = family / double(kSeeds), er = exact / double(kSeeds);
    std::printf("%-16s family %.2f exact %.2f\n", ModelName(c.kind), fr, er);
    SCOPED_TRACE(::testing::Message() << "generating model " << ModelName(c.kind));
    EXPECT_GE(fr, c.min_family_rate);
    EXPECT_GE(er, c.min_model_rate);
  }
}

TEST(ModelsTest, VerdictYesWhenPeakStraddled) {
  int yes = 0;
  for (int seed = 0; seed < 40; ++seed) {
    std::mt19937_64 rng(seed);
    const auto cmp = Compare(NoisyOptima(ModelKind::kSurge, {std::log(1e-3), std::log(400.0)},
                                         PowersOfTwo(3, 14), 0.05, 0.05, rng));
    ASSERT_TRUE(cmp.ok());
    yes += cmp->verdict == Verdict::kYes;
  }
  EXPECT_GE(yes, 36);
}

// Only the rising side of a surge (B_noise far above the data): the verdict is
// not "yes", and the averaged prediction follows the monotone fits.
TEST(ModelsTest, RisingSideOnlyFollowsMonotoneFit) {
  int not_yes = 0;
  const int kSeeds = 60;
  for (int seed = 0; seed < kSeeds; ++seed) {
    std::mt19937_64 rng(300 + seed);
    const auto pts = NoisyOptima(ModelKind::kSurge, {std::log(1e-3), std::log(1e5)},
                                 PowersOfTwo(3, 10), 0.07, 0.07, rng);
    const auto cmp = Compare(pts);
    ASSERT_TRUE(cmp.ok()) << cmp.status();
    not_yes += cmp->verdict != Verdict::kYes;
    // Where the monotone models carry the weight, the average is theirs.
    for (double b : {64.0, 1024.0, 8192.0}) {
      const AveragedPrediction avg = PredictAveraged(*cmp, std::log(b));
      const CurvePrediction pl = cmp->Get(ModelKind::kPowerLaw).curve.Predict(std::log(b));
      EXPECT_NEAR(avg.mean, pl.mean, std::max(0.05, 2 * avg.se)) << "seed " << seed << " B " << b;
      EXPECT_LE(avg.ci95.lo, pl.mean) << "seed " << seed << " B " << b;
      EXPECT_GE(avg.ci95.hi, pl.mean) << "seed " << seed << " B " << b;
    }
  }
  EXPECT_GE(not_yes, kSeeds * 0.95);
}

TEST(ModelsTest, TooFewPointsForAiccFallsBackToSurge) {
  std::mt19937_64 rng(4);
  const auto cmp = Compare(NoisyOptima(ModelKind::kSurge, {std::log(1e-3), std::log(100.0)},
                                       {16.0, 128.0, 1024.0, 8192.0}, 0.05, 0.05, rng));
  ASSERT_TRUE(cmp.ok()) << cmp.status();
  EXPECT_EQ(cmp->verdict, Verdict::kUndecided);
  EXPECT_EQ(cmp->models[0].weight, 1.0);
  EXPECT_NE(cmp->verdict_reason.find("too few optima"), std::string::npos);
}

}  // namespace
}  // namespace surge::fit
