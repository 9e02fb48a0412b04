// Tests of server/fit/advise: extrapolation flags, bounds, drift, verdicts.
#include "server/fit/advise.h"

#include <cmath>
#include <optional>
#include <random>
#include <string>

#include "gtest/gtest.h"
#include "server/fit/fit_job.h"
#include "tests/server/fit/synthetic.h"
#include "tests/server/fit/synthetic_runs.h"

namespace surge::fit {
namespace {

using synth::MeasuredSurge;
using synth::GoodJob;
using synth::PowersOfTwo;

TEST(AdviseTest, FlagsExtrapolationInBatchAndStep) {
  std::mt19937_64 rng(3);
  const auto job = FitJob(GoodJob(rng));
  ASSERT_TRUE(job.ok()) << job.status();
  struct Case {
    double batch;
    std::optional<int64_t> step;
    bool in_batch, in_step;
  } cases[] = {
      {256, std::nullopt, false, false},   {256, 5000, false, false},
      {256, 100000, false, true},          {16384 * 9.0, 5000, false, false},
      {16384 * 11.0, 5000, true, false},   {0.5, 5000, true, false},
      {1e7, 1000000, true, true},
  };
  for (const Case& c : cases) {
    const auto adv = Advise(*job, c.batch, c.step);
    ASSERT_TRUE(adv.ok()) << adv.status();
    SCOPED_TRACE(::testing::Message() << "B=" << c.batch << " step="
                                      << (c.step ? std::to_string(*c.step) : "none"));
    EXPECT_EQ(adv->flags.extrapolated_in_batch, c.in_batch);
    EXPECT_EQ(adv->flags.extrapolated_in_step, c.in_step);
    EXPECT_FALSE(adv->flags.b_noise_bound_only);
    EXPECT_EQ(adv->b_noise_kind, BNoiseKind::kPoint);
    EXPECT_LE(adv->lr_ci95.lo, adv->lr);
    EXPECT_GE(adv->lr_ci95.hi, adv->lr);
    EXPECT_NEAR(adv->steps_ratio, 1 + adv->b_noise / c.batch, 1e-9);
    EXPECT_NEAR(adv->examples_ratio, 1 + c.batch / adv->b_noise, 1e-9);
  }
}

TEST(AdviseTest, AdviceMatchesTruthWhenSurgeSupported) {
  std::mt19937_64 rng(4);
  const auto job = FitJob(GoodJob(rng));
  ASSERT_TRUE(job.ok());
  for (double b : {16.0, 400.0, 4096.0}) {
    const auto adv = Advise(*job, b, std::nullopt);
    ASSERT_TRUE(adv.ok());
    const double truth = std::exp(synth::SurgeLnLr(1e-3, 400.0, b));
    EXPECT_LE(adv->lr_ci95.lo, truth) << "B " << b;
    EXPECT_GE(adv->lr_ci95.hi, truth) << "B " << b;
    EXPECT_EQ(adv->verdict, Verdict::kYes);
    EXPECT_FALSE(adv->flags.surge_not_supported);
    EXPECT_GT(adv->model_weights[0].weight, 0.9);
    EXPECT_EQ(adv->model_weights[0].model, "surge");
  }
  const auto adv = Advise(*job, 400, std::nullopt);
  EXPECT_LE(adv->b_noise_ci95.lo, 400.0);
  EXPECT_GE(adv->b_noise_ci95.hi, 400.0);
  EXPECT_EQ(adv->stages_used, std::vector<int64_t>{1});
  EXPECT_EQ(adv->optima_used, 12);
}

// Rising side only: B_noise is a bound, the surge is not supported, and the
// LR follows the monotone fits.
TEST(AdviseTest, RisingSideOnly) {
  std::mt19937_64 rng(5);
  JobInput in;
  in.measured_optima = MeasuredSurge(1, 2.0, 1e-3, 1e5, PowersOfTwo(3, 10), 0.06, rng);
  const auto job = FitJob(in);
  ASSERT_TRUE(job.ok()) << job.status();
  const auto adv = Advise(*job, 512, std::nullopt);
  ASSERT_TRUE(adv.ok());
  EXPECT_TRUE(adv->flags.b_noise_bound_only);
  EXPECT_TRUE(adv->flags.surge_not_supported);
  EXPECT_EQ(adv->b_noise_kind, BNoiseKind::kLowerBound);
  EXPECT_LT(adv->b_noise, 1e5);
  EXPECT_TRUE(std::isnan(adv->eps_max));
  const CurvePrediction pl =
      job->stages[0].models.Get(ModelKind::kPowerLaw).curve.Predict(std::log(512.0));
  EXPECT_NEAR(std::log(adv->lr), pl.mean, 0.05);
}

TEST(AdviseTest, DriftBetweenStages) {
  std::mt19937_64 rng(6);
  JobInput in;
  // B_noise = 200 L^-2: 50 at L = 2, 200 at L = 1.
  for (auto [id, loss] : {std::pair{1, 2.0}, std::pair{2, 1.41421356}, std::pair{3, 1.0}}) {
    auto m = MeasuredSurge(id, loss, 1e-3, 200.0 / (loss * loss), PowersOfTwo(2, 14), 0.05, rng);
    in.measured_optima.insert(in.measured_optima.end(), m.begin(), m.end());
  }
  for (int64_t t = 0; t <= 10000; t += 10) in.loss_curve.push_back({t, 1.0 + 100.0 / (100.0 + t)});
  const auto job = FitJob(in);
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_EQ(job->drift.mode, DriftMode::kLinear);
  EXPECT_NEAR(job->drift.alpha.value, 0.5, 3 * job->drift.alpha.se);
  // Step 100: L = 1.5 -> B_noise = 200 / 2.25 = 89.
  const auto adv = Advise(*job, 64, 100);
  ASSERT_TRUE(adv.ok());
  EXPECT_NEAR(adv->loss, 1.5, 0.01);
  EXPECT_FALSE(adv->flags.extrapolated_in_loss);
  EXPECT_LE(adv->b_noise_ci95.lo, 89.0);
  EXPECT_GE(adv->b_noise_ci95.hi, 89.0);
  EXPECT_EQ(adv->stages_used.size(), 3u);
  // Beyond the last record and below the lowest stage loss.
  const auto late = Advise(*job, 64, 1000000);
  ASSERT_TRUE(late.ok());
  EXPECT_TRUE(late->flags.extrapolated_in_step);
}

TEST(AdviseTest, BadRequests) {
  std::mt19937_64 rng(7);
  JobInput in = GoodJob(rng);
  in.loss_curve.clear();
  const auto job = FitJob(in);
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(Advise(*job, -1, std::nullopt).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Advise(*job, NAN, std::nullopt).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Advise(*job, 64, -5).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Advise(*job, 64, 100).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Advise(*job, 64, std::nullopt).ok());
}


// The loss at step t for batch B from the speed/data fits of two targets:
// L = 2 with S(B) = 100 + 6400 / B, L = 1 with S(B) = 400 + 25600 / B, i.e.
// S(64) = 200 and 800, S(16) = 500 and 2000. ln L is linear in ln S between
// the targets and on the end segments beyond them (flagged).
TEST(LossAtStepForBatchTest, InterpolatesBetweenTargetsAndFlagsBeyond) {
  std::vector<SpeedDataFit> speed(2);
  speed[0].target_loss = 1.0;
  speed[0].s_min.value = 400;
  speed[0].e_min.value = 25600;
  speed[1].target_loss = 2.0;
  speed[1].s_min.value = 100;
  speed[1].e_min.value = 6400;
  struct Case {
    double batch, step, loss;
    bool extrapolated;
  } cases[] = {
      {64, 200, 2.0, false},
      {64, 800, 1.0, false},
      {64, 400, std::sqrt(2.0), false},  // halfway in ln S
      {16, 1000, std::sqrt(2.0), false},
      {16, 500, 2.0, false},
      {64, 100, 2.0 * std::sqrt(2.0), true},  // beyond the highest target
      {64, 1600, 1.0 / std::sqrt(2.0), true},  // beyond the lowest
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << "B " << c.batch << " step " << c.step);
    const auto l = LossAtStepForBatch(speed, c.batch, c.step);
    ASSERT_TRUE(l.has_value());
    EXPECT_NEAR(l->loss, c.loss, 1e-12);
    EXPECT_EQ(l->extrapolated, c.extrapolated);
  }
  // One target: its loss, flagged beyond 10% of its S(B).
  const std::vector<SpeedDataFit> one = {speed[0]};
  EXPECT_FALSE(LossAtStepForBatch(one, 64, 850)->extrapolated);
  EXPECT_TRUE(LossAtStepForBatch(one, 64, 900)->extrapolated);
  EXPECT_EQ(LossAtStepForBatch(one, 64, 900)->loss, 1.0);
  // None usable: S(B) <= 0, or no fit at all.
  SpeedDataFit bad = speed[0];
  bad.s_min.value = -1000;
  bad.e_min.value = 0;
  EXPECT_FALSE(LossAtStepForBatch({bad}, 64, 100).has_value());
  EXPECT_FALSE(LossAtStepForBatch({}, 64, 100).has_value());
}

// Criterion "fastest" answers from JobFit::fastest exactly as "improvement"
// answers from JobFit::stages; the step maps to a loss through S(B).
TEST(AdviseTest, FastestCriterionAnswersFromJobFastest) {
  const synth::SweepSpec spec;
  JobInput in;
  in.runs = synth::PlainRunSweep(spec, 8);
  const auto job = FitJob(in);
  ASSERT_TRUE(job.ok()) << job.status();
  JobFit swapped = *job;
  swapped.stages = job->fastest.stages;
  swapped.drift = job->fastest.drift;
  swapped.skipped_stages = job->fastest.skipped;
  for (double b : {4.0, 64.0, 1024.0}) {
    for (std::optional<int64_t> step : {std::optional<int64_t>(), std::optional<int64_t>(100),
                                        std::optional<int64_t>(400)}) {
      SCOPED_TRACE(::testing::Message() << "B " << b << " step "
                                        << (step ? std::to_string(*step) : "none"));
      const auto fast = Advise(*job, b, step, Criterion::kFastest);
      ASSERT_TRUE(fast.ok()) << fast.status();
      const auto ref = Advise(swapped, b, step, Criterion::kImprovement);
      ASSERT_TRUE(ref.ok()) << ref.status();
      EXPECT_EQ(fast->criterion, Criterion::kFastest);
      EXPECT_EQ(fast->lr, ref->lr);
      EXPECT_EQ(fast->loss, ref->loss);
      EXPECT_EQ(fast->stages_used, ref->stages_used);
      EXPECT_EQ(fast->evidence, "plain_runs");
      EXPECT_EQ(fast->step_mapping, step ? "speed_data" : "");
      const double truth = std::exp(spec.law.LnEpsOpt(b));
      EXPECT_LE(fast->lr_ci95.lo, truth);
      EXPECT_GE(fast->lr_ci95.hi, truth);
      // The other criterion's answer is a different one.
      const auto improvement = Advise(*job, b, step, Criterion::kImprovement);
      ASSERT_TRUE(improvement.ok()) << improvement.status();
      EXPECT_NE(improvement->lr, fast->lr);
      if (step) {
        const auto l = LossAtStepForBatch(job->speed_data, b, static_cast<double>(*step));
        ASSERT_TRUE(l.has_value());
        EXPECT_EQ(fast->loss, l->loss);
        EXPECT_EQ(fast->flags.extrapolated_in_step, l->extrapolated);
      }
    }
  }
}

}  // namespace
}  // namespace surge::fit
