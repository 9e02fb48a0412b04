// Tests of server/fit/fit_job: FitStage and FitJob, including bad input.
#include "server/fit/fit_job.h"

#include <cmath>
#include <functional>
#include <random>
#include <string>

#include "gtest/gtest.h"
#include "tests/server/fit/synthetic.h"

namespace surge::fit {
namespace {

using synth::MeasuredSurge;
using synth::GoodJob;
using synth::PowersOfTwo;
using synth::SurgeStageProbes;

// A stage of raw probes (12 B x 16 LRs x 8 seeds) from a known surge law is
// reduced to optima and fitted; the peak is recovered.
TEST(FitStageTest, RawProbesRecoverSurge) {
  for (int seed = 0; seed < 5; ++seed) {
    std::mt19937_64 rng(seed);
    const auto probes = SurgeStageProbes(1, 2.0, 1e-3, 400.0, 8, rng);
    const auto st = FitStage(1, 2.0, probes, {});
    ASSERT_TRUE(st.ok()) << st.status();
    EXPECT_EQ(st->optima.size(), 12u);
    EXPECT_EQ(st->n_probe_points, 12 * 16 * 8);
    ASSERT_EQ(st->surge.identification, PeakIdentification::kIdentified);
    EXPECT_NEAR(st->surge.ln_b_noise, std::log(400.0), 0.3) << "seed " << seed;
    EXPECT_NEAR(st->surge.ln_eps_max, std::log(1e-3), 0.1) << "seed " << seed;
    EXPECT_EQ(st->models.verdict, Verdict::kYes) << st->models.verdict_reason;
  }
}

// Each bad input gives its code and a message that says what is wrong.
TEST(FitJobTest, BadInputTable) {
  struct Case {
    std::string name;
    std::function<void(JobInput&)> mutate;
    absl::StatusCode code;
    std::string message_part;
  } cases[] = {
      {"nan improvement",
       [](JobInput& in) { in.probe_points.push_back({1, 2.0, 64, 1e-3, 0, NAN}); },
       absl::StatusCode::kInvalidArgument, "improvement must be finite"},
      {"inf lr",
       [](JobInput& in) { in.probe_points.push_back({1, 2.0, 64, INFINITY, 0, 0.1}); },
       absl::StatusCode::kInvalidArgument, "lr must be finite"},
      {"zero batch",
       [](JobInput& in) { in.measured_optima[0].batch_size = 0; },
       absl::StatusCode::kInvalidArgument, "batch_size"},
      {"nan stage loss",
       [](JobInput& in) { for (auto& m : in.measured_optima) m.stage_loss = NAN; },
       absl::StatusCode::kInvalidArgument, "stage_loss must be finite"},
      {"inconsistent stage loss",
       [](JobInput& in) { in.measured_optima[3].stage_loss = 2.5; },
       absl::StatusCode::kInvalidArgument, "inconsistent stage_loss"},
      {"negative se",
       [](JobInput& in) { in.measured_optima[0].lr_opt_se = -1; },
       absl::StatusCode::kInvalidArgument, "lr_opt_se"},
      {"two batch sizes",
       [](JobInput& in) { in.measured_optima.resize(2); },
       absl::StatusCode::kFailedPrecondition, "stage 1: need optima at >= 3 batch sizes, have 2"},
      {"all censored",
       [](JobInput& in) {
         for (auto& m : in.measured_optima) m.censoring = Censoring::kLowerBound;
       },
       absl::StatusCode::kFailedPrecondition, "censored"},
      {"single LR per batch size",
       [](JobInput& in) {
         in.measured_optima.clear();
         for (double b : {16.0, 64.0, 256.0, 1024.0}) {
           in.probe_points.push_back({1, 2.0, b, 1e-3, 0, 0.1});
           in.probe_points.push_back({1, 2.0, b, 1e-3, 1, 0.12});
         }
       },
       absl::StatusCode::kFailedPrecondition, "need >= 3 distinct learning rates, have 1"},
      {"no evidence",
       [](JobInput& in) { in.measured_optima.clear(); },
       absl::StatusCode::kFailedPrecondition, "no probe points, measured optima or training runs"},
      {"nan loss record",
       [](JobInput& in) { in.loss_curve[5].loss = NAN; },
       absl::StatusCode::kInvalidArgument, "loss curve"},
      {"bad grad stats",
       [](JobInput& in) { in.grad_stats.push_back({"r", 0, 1.0, 1.0, 64, 32}); },
       absl::StatusCode::kInvalidArgument, "b_big > b_small"},
      {"bad speed point",
       [](JobInput& in) { in.speed_points.push_back({2.0, 64, -3}); },
       absl::StatusCode::kInvalidArgument, "steps"},
  };
  for (const Case& c : cases) {
    std::mt19937_64 rng(1);
    JobInput in = GoodJob(rng);
    c.mutate(in);
    const auto job = FitJob(in);
    ASSERT_FALSE(job.ok()) << "case '" << c.name << "' unexpectedly succeeded";
    EXPECT_EQ(job.status().code(), c.code) << "case '" << c.name << "': " << job.status();
    EXPECT_NE(job.status().message().find(c.message_part), std::string::npos)
        << "case '" << c.name << "': " << job.status();
  }
  // The unmutated job fits.
  std::mt19937_64 rng(1);
  EXPECT_TRUE(FitJob(GoodJob(rng)).ok());
}

TEST(FitJobTest, ThinStageIsSkippedNotFatal) {
  std::mt19937_64 rng(2);
  JobInput in = GoodJob(rng);
  auto thin = MeasuredSurge(2, 1.5, 1e-3, 600.0, {64.0, 256.0}, 0.05, rng);
  in.measured_optima.insert(in.measured_optima.end(), thin.begin(), thin.end());
  const auto job = FitJob(in);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->stages.size(), 1u);
  ASSERT_EQ(job->skipped_stages.size(), 1u);
  EXPECT_EQ(job->skipped_stages[0].stage_id, 2);
  EXPECT_NE(job->skipped_stages[0].status.message().find("have 2"), std::string::npos);
}

}  // namespace
}  // namespace surge::fit
