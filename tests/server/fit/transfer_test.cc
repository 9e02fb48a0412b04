// Tests of server/fit/transfer (through Advise with a reference): the
// transferred LR follows the law's ratio, its interval covers the truth at
// the nominal rate, is narrower than the absolute interval, and bad
// references are named.
#include "server/fit/transfer.h"

#include <cmath>
#include <cstdio>
#include <optional>
#include <random>
#include <string>

#include "gtest/gtest.h"
#include "server/fit/advise.h"
#include "server/fit/fit_job.h"
#include "tests/server/fit/synthetic.h"

namespace surge::fit {
namespace {

using synth::MeasuredSurge;
using synth::PowersOfTwo;
using synth::SurgeLnLr;

constexpr double kEpsMax = 1e-3;
constexpr double kBNoise = 400.0;

JobInput OneStageJob(double noise_sd, std::mt19937_64& rng) {
  JobInput in;
  in.measured_optima = MeasuredSurge(1, 2.0, kEpsMax, kBNoise, PowersOfTwo(3, 14), noise_sd, rng);
  return in;
}

LrReference Ref(double b0, double lr0) {
  LrReference r;
  r.batch_size = b0;
  r.lr = lr0;
  return r;
}

TEST(TransferTest, EqualsLawRatioTimesTunedLr) {
  std::mt19937_64 rng(11);
  const auto job = FitJob(OneStageJob(1e-4, rng));
  ASSERT_TRUE(job.ok()) << job.status();
  // The user's tuned LR is deliberately off the job's level (x3): the
  // transfer keeps the user's level and takes the shape from the fit.
  const double lr0 = 3.0 * std::exp(SurgeLnLr(kEpsMax, kBNoise, 256));
  for (double b : {64.0, 1024.0, 4096.0}) {
    const auto adv = Advise(*job, b, std::nullopt, Criterion::kImprovement, Ref(256, lr0));
    ASSERT_TRUE(adv.ok()) << adv.status();
    ASSERT_TRUE(adv->transfer.has_value());
    const LrTransfer& t = *adv->transfer;
    const double truth =
        lr0 * std::exp(SurgeLnLr(kEpsMax, kBNoise, b) - SurgeLnLr(kEpsMax, kBNoise, 256));
    EXPECT_NEAR(std::log(t.lr), std::log(truth), 2e-3) << "B " << b;
    EXPECT_NEAR(t.linear_rule_lr, lr0 * b / 256, 1e-12);
    EXPECT_NEAR(t.sqrt_rule_lr, lr0 * std::sqrt(b / 256), 1e-12);
    EXPECT_NEAR(t.fitted_lr_at_reference, lr0 / 3.0, lr0 / 3.0 * 2e-3);
    EXPECT_FALSE(t.reference_outside_data);
    EXPECT_FALSE(t.reference_other_stage);
    EXPECT_LE(t.lr_ci95.lo, t.lr);
    EXPECT_GE(t.lr_ci95.hi, t.lr);
  }
  // B = B0: ratio 1 with zero width.
  const auto same = Advise(*job, 256, std::nullopt, Criterion::kImprovement, Ref(256, lr0));
  ASSERT_TRUE(same.ok());
  EXPECT_DOUBLE_EQ(same->transfer->lr, lr0);
  EXPECT_NEAR(same->transfer->ln_ratio_se, 0.0, 1e-12);
}

TEST(TransferTest, RatioIntervalNarrowerThanAbsoluteAndCoversAtNominalRate) {
  // Near pairs (B1 / B0 = 4) share most of their error; far ones less so.
  const double pairs[][2] = {{64, 256}, {256, 1024}, {1024, 4096}, {128, 2048}, {32, 8192}};
  int covered = 0, trials = 0;
  int narrower[5] = {0, 0, 0, 0, 0};
  double ratio_se_sum[5] = {0, 0, 0, 0, 0}, abs_se_sum[5] = {0, 0, 0, 0, 0};
  for (uint64_t seed = 0; seed < 200; ++seed) {
    std::mt19937_64 rng(1000 + seed);
    const auto job = FitJob(OneStageJob(0.1, rng));
    ASSERT_TRUE(job.ok()) << job.status();
    for (int k = 0; k < 5; ++k) {
      const double b0 = pairs[k][0], b1 = pairs[k][1];
      const double lr0 = std::exp(SurgeLnLr(kEpsMax, kBNoise, b0));  // tuned exactly
      const auto adv = Advise(*job, b1, std::nullopt, Criterion::kImprovement, Ref(b0, lr0));
      ASSERT_TRUE(adv.ok()) << adv.status();
      const LrTransfer& t = *adv->transfer;
      const double truth = std::exp(SurgeLnLr(kEpsMax, kBNoise, b1));
      ++trials;
      // The truth here is the law's curve (the optima scatter only by their
      // SEs): the curve-only intervals are the ones to check.
      covered += t.lr_curve_ci95.lo <= truth && truth <= t.lr_curve_ci95.hi;
      // The absolute advice at B1 carries the level's error; the ratio does not.
      narrower[k] += t.ln_ratio_curve_se < adv->ln_lr_curve_se;
      ratio_se_sum[k] += t.ln_ratio_curve_se;
      abs_se_sum[k] += adv->ln_lr_curve_se;
    }
  }
  for (int k = 0; k < 5; ++k) {
    std::printf("B0 %g -> B1 %g: ratio SE / absolute SE %.3f, narrower in %d of 200\n",
                pairs[k][0], pairs[k][1], ratio_se_sum[k] / abs_se_sum[k], narrower[k]);
  }
  const double coverage = static_cast<double>(covered) / trials;
  std::printf("95%% transfer interval covered the truth in %d of %d\n", covered, trials);
  EXPECT_GE(coverage, 0.90) << covered << " of " << trials;
  EXPECT_LE(coverage, 0.995) << "intervals far too wide: " << covered << " of " << trials;
  // Near pairs: narrower in (nearly) every seed. Measured 200, 199, 200 of
  // 200 (the odd seed: the smooth curve, whose knot values share less error
  // than a two-parameter law's, took weight).
  for (int k = 0; k < 3; ++k) EXPECT_GE(narrower[k], 196) << "pair " << k;
}

TEST(TransferTest, ReferenceOutsideDataIsFlagged) {
  std::mt19937_64 rng(12);
  JobInput in;
  in.measured_optima = MeasuredSurge(1, 2.0, kEpsMax, kBNoise, PowersOfTwo(5, 12), 0.05, rng);
  const auto job = FitJob(in);
  ASSERT_TRUE(job.ok()) << job.status();
  const auto inside = Advise(*job, 1024, std::nullopt, Criterion::kImprovement, Ref(64, 1e-4));
  ASSERT_TRUE(inside.ok());
  EXPECT_FALSE(inside->transfer->reference_outside_data);
  for (double b0 : {8.0, 16384.0}) {
    const auto outside = Advise(*job, 1024, std::nullopt, Criterion::kImprovement, Ref(b0, 1e-4));
    ASSERT_TRUE(outside.ok());
    EXPECT_TRUE(outside->transfer->reference_outside_data) << "B0 " << b0;
  }
}

// Two stages whose peak moves (B_noise 200 at loss 2, 800 at loss 1): a
// reference tuned at the loss-2 stage transfers with that stage's curve; a
// reference at another stage than the request's is flagged and its interval
// is wider.
TEST(TransferTest, ReferenceStageByLossOrStep) {
  std::mt19937_64 rng(13);
  JobInput in;
  in.measured_optima = MeasuredSurge(1, 2.0, kEpsMax, 200.0, PowersOfTwo(3, 14), 0.05, rng);
  const auto late = MeasuredSurge(2, 1.0, kEpsMax, 800.0, PowersOfTwo(3, 14), 0.05, rng);
  in.measured_optima.insert(in.measured_optima.end(), late.begin(), late.end());
  // Loss curve: loss 2 at step ~100, loss 1 at step ~10000.
  for (int64_t t = 0; t <= 20000; t += 50) {
    in.loss_curve.push_back({t, 0.5 + 15.0 / std::sqrt(1.0 + t)});
  }
  const auto job = FitJob(in);
  ASSERT_TRUE(job.ok()) << job.status();
  LrReference ref = Ref(64, 1e-4);
  ref.loss = 2.0;
  const auto early = Advise(*job, 1024, std::nullopt, Criterion::kImprovement, ref);
  ASSERT_TRUE(early.ok()) << early.status();
  EXPECT_DOUBLE_EQ(early->loss, 2.0);  // the reference's stage
  EXPECT_FALSE(early->transfer->reference_other_stage);
  const double truth_early = 1e-4 * std::exp(SurgeLnLr(kEpsMax, 200.0, 1024) -
                                             SurgeLnLr(kEpsMax, 200.0, 64));
  EXPECT_NEAR(std::log(early->transfer->lr), std::log(truth_early), 0.15);

  // The same reference given as the step where the loss curve reaches 2.
  LrReference by_step = Ref(64, 1e-4);
  // The first step of the loss curve at or below 2.
  for (int64_t t = 0; t <= 20000; t += 50) {
    if (0.5 + 15.0 / std::sqrt(1.0 + t) <= 2.0) {
      by_step.step = t;
      break;
    }
  }
  const auto early_step = Advise(*job, 1024, std::nullopt, Criterion::kImprovement, by_step);
  ASSERT_TRUE(early_step.ok()) << early_step.status();
  EXPECT_NEAR(early_step->transfer->reference_loss, 2.0, 0.02);
  EXPECT_NEAR(std::log(early_step->transfer->lr), std::log(early->transfer->lr), 0.05);

  // Asked at the late stage with the reference at the early one.
  const auto cross = Advise(*job, 1024, 19950, Criterion::kImprovement, ref);
  ASSERT_TRUE(cross.ok()) << cross.status();
  EXPECT_TRUE(cross->transfer->reference_other_stage);
  EXPECT_LT(cross->loss, 1.2);
  EXPECT_GT(cross->transfer->ln_ratio_curve_se, early->transfer->ln_ratio_curve_se);
}

// Data below the peak only (B_noise 2048, four batch sizes 32..256: too few
// to compare models, so the surge law alone answers, as its rising limit of
// slope 1/2 with no error of its own). A transfer past the B_noise bound must
// not claim that limit's zero-width ratio: the interval reaches the curve
// whose peak sits at the bound, and covers the truth.
TEST(TransferTest, BelowPeakTransferPastTheBoundIsNotOverconfident) {
  int covered = 0, trials = 0;
  for (uint64_t seed = 0; seed < 100; ++seed) {
    std::mt19937_64 rng(5000 + seed);
    JobInput in;
    in.measured_optima = MeasuredSurge(1, 2.0, kEpsMax, 2048.0, PowersOfTwo(5, 8), 0.05, rng);
    const auto job = FitJob(in);
    ASSERT_TRUE(job.ok()) << job.status();
    const SurgeLawFit& surge = job->stages[0].surge;
    if (surge.identification != PeakIdentification::kBelowPeak) continue;
    const double lr0 = std::exp(SurgeLnLr(kEpsMax, 2048.0, 64));
    const auto adv = Advise(*job, 1024, std::nullopt, Criterion::kImprovement, Ref(64, lr0));
    ASSERT_TRUE(adv.ok()) << adv.status();
    ASSERT_EQ(adv->model_weights[0].model, "surge");
    ASSERT_DOUBLE_EQ(adv->model_weights[0].weight, 1.0);
    const LrTransfer& t = *adv->transfer;
    // The limit's ratio is exactly the square-root rule ...
    EXPECT_NEAR(t.lr, t.sqrt_rule_lr, 1e-9 * t.lr);
    // ... and the interval's lower end is the ratio with the peak at the bound.
    const double b = surge.ln_b_noise_bound;
    const double at_bound = lr0 * std::exp(LogCosh(0.5 * (std::log(64.0) - b)) -
                                           LogCosh(0.5 * (std::log(1024.0) - b)));
    EXPECT_NEAR(std::log(t.lr_curve_ci95.lo), std::log(at_bound), 1e-9) << "seed " << seed;
    EXPECT_GT(t.ln_ratio_curve_se, 0.0);
    EXPECT_GE(t.ln_ratio_se, t.ln_ratio_curve_se);  // the prediction adds the scatter
    const double truth = std::exp(SurgeLnLr(kEpsMax, 2048.0, 1024));
    ++trials;
    covered += t.lr_curve_ci95.lo <= truth && truth <= t.lr_curve_ci95.hi;
  }
  EXPECT_GE(trials, 50);
  std::printf("below the peak, transfer past the bound: covered %d of %d\n", covered, trials);
  // Measured: 47 of 53 (without the bound term: 0, the interval has zero
  // width). Misses are seeds whose bound lies above the true B_noise.
  EXPECT_GE(static_cast<double>(covered) / trials, 0.8) << covered << " of " << trials;
}

TEST(TransferTest, BadReferencesNameTheField) {
  std::mt19937_64 rng(14);
  const auto job = FitJob(OneStageJob(0.05, rng));
  ASSERT_TRUE(job.ok());
  struct Case {
    LrReference ref;
    std::string field;
  };
  std::vector<Case> cases;
  for (double b0 : {0.0, -4.0, double(NAN), double(INFINITY)}) cases.push_back({Ref(b0, 1e-3), "reference.batch_size"});
  for (double lr0 : {0.0, -1e-3, double(NAN), double(INFINITY)}) cases.push_back({Ref(256, lr0), "reference.lr"});
  LrReference neg_step = Ref(256, 1e-3);
  neg_step.step = -1;
  cases.push_back({neg_step, "reference.step"});
  for (double l : {0.0, -1.0, double(NAN)}) {
    LrReference r = Ref(256, 1e-3);
    r.loss = l;
    cases.push_back({r, "reference.loss"});
  }
  LrReference both = Ref(256, 1e-3);
  both.step = 10;
  both.loss = 1.0;
  cases.push_back({both, "reference.step and reference.loss"});
  for (const Case& c : cases) {
    const auto adv = Advise(*job, 1024, std::nullopt, Criterion::kImprovement, c.ref);
    ASSERT_FALSE(adv.ok()) << c.field;
    EXPECT_EQ(adv.status().code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_NE(std::string(adv.status().message()).find(c.field), std::string::npos)
        << adv.status();
  }
}

}  // namespace
}  // namespace surge::fit
