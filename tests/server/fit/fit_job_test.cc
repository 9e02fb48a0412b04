// Tests of server/fit/fit_job: FitStage and FitJob, including bad input.
#include "server/fit/fit_job.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <string>

#include "gtest/gtest.h"
#include "server/fit/advise.h"
#include "tests/server/fit/synthetic.h"
#include "tests/server/fit/synthetic_runs.h"

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


// ---------------------------------------------------------------------------
// Jobs with plain runs (synthetic_runs.h).

bool HasNote(const JobFit& job, const std::string& part) {
  return std::any_of(job.notes.begin(), job.notes.end(),
                     [&](const std::string& n) { return n.find(part) != std::string::npos; });
}

// Too narrow a sweep: FAILED_PRECONDITION naming what is missing (batch
// sizes, learning rates) and what the job has.
TEST(RunJobTest, TooFewBatchSizesOrLearningRates) {
  synth::SweepSpec one_batch;
  one_batch.batches = {64};
  synth::SweepSpec two_lrs;
  const std::vector<double> lrs = synth::DefaultLrs(two_lrs);
  two_lrs.lrs = {lrs[2], lrs[3]};
  const std::string need =
      "plain runs need >= 3 batch sizes with runs at >= 3 learning rates each; have ";
  struct Case {
    std::string name;
    synth::SweepSpec spec;
    std::vector<double> targets;
    std::vector<std::string> parts;
  } cases[] = {
      {"one batch size", one_batch, {}, {need + "14 usable runs at batch sizes 64 (7 LRs)"}},
      {"one batch size, declared target", one_batch, {1.3},
       {need + "14 usable runs at batch sizes 64 (7 LRs)", "need optima at >= 3 batch sizes"}},
      {"two LRs per batch size", two_lrs, {},
       {need + "28 usable runs at batch sizes 4 (2 LRs), 10 (2 LRs), 25 (2 LRs), 64 (2 LRs), "
               "160 (2 LRs), 400 (2 LRs), 1024 (2 LRs)"}},
      {"two LRs per batch size, declared target", two_lrs, {1.3},
       {need + "28 usable runs at batch sizes 4 (2 LRs)", "need >= 3 distinct learning rates"}},
  };
  for (const Case& c : cases) {
    JobInput in;
    in.runs = synth::PlainRunSweep(c.spec, 1);
    in.run_options.targets = c.targets;
    const auto job = FitJob(in);
    ASSERT_FALSE(job.ok()) << "case '" << c.name << "' unexpectedly succeeded";
    EXPECT_EQ(job.status().code(), absl::StatusCode::kFailedPrecondition)
        << "case '" << c.name << "': " << job.status();
    for (const std::string& part : c.parts) {
      EXPECT_NE(job.status().message().find(part), std::string::npos)
          << "case '" << c.name << "': no '" << part << "' in: " << job.status();
    }
  }
}

// Probe points and plain runs in one job: both are fitted; the run-based
// stages are the job's stages (advice stands on them), the probe stage is set
// aside; advice says which evidence it used and whether it is short-horizon.
TEST(RunJobTest, ProbesAndRunsMixed) {
  std::mt19937_64 rng(3);
  JobInput probes_only;
  probes_only.probe_points = SurgeStageProbes(1500, 2.0, 1e-3, 400.0, 4, rng);
  JobInput in = probes_only;
  in.runs = synth::PlainRunSweep(synth::SweepSpec(), 21);
  const auto job = FitJob(in);
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_FALSE(job->stages.empty());
  for (const StageFit& st : job->stages) {
    EXPECT_EQ(st.evidence, kPlainRuns) << "stage " << st.stage_id;
    EXPECT_EQ(st.n_probe_points, 0);
    // Runs behind the improvement optima: all but those that reached the
    // target less than k steps before their end.
    EXPECT_GE(st.n_runs, 90);
    EXPECT_LE(st.n_runs, 98);
    EXPECT_EQ(st.stage_id, TargetStageId(st.stage_loss));
  }
  ASSERT_EQ(job->set_aside.size(), 1u);
  EXPECT_EQ(job->set_aside[0].stage_id, 1500);
  EXPECT_EQ(job->set_aside[0].evidence, kProbes);
  EXPECT_EQ(job->set_aside[0].n_probe_points, 12 * 16 * 4);
  EXPECT_EQ(job->set_aside[0].surge.identification, PeakIdentification::kIdentified);
  EXPECT_TRUE(HasNote(*job, "1 short-horizon stage(s) (probes / imported optima) set aside"));
  ASSERT_FALSE(job->fastest.stages.empty());
  for (const StageFit& st : job->fastest.stages) {
    EXPECT_EQ(st.evidence, kPlainRuns);
    EXPECT_EQ(st.criterion, Criterion::kFastest);
  }
  for (Criterion crit : {Criterion::kImprovement, Criterion::kFastest}) {
    SCOPED_TRACE(CriterionName(crit));
    const auto adv = Advise(*job, 64, std::nullopt, crit);
    ASSERT_TRUE(adv.ok()) << adv.status();
    EXPECT_EQ(adv->evidence, "plain_runs");
    EXPECT_FALSE(adv->flags.short_horizon);
    EXPECT_EQ(adv->criterion, crit);
    EXPECT_EQ(adv->probe_points_used, 0);
    EXPECT_GT(adv->runs_used, 0);
    // Stages share runs: never more than the job has (it was their sum).
    EXPECT_LE(adv->runs_used, job->runs->runs_used);
    for (int64_t id : adv->stages_used) EXPECT_NE(id, 1500);
  }

  // The same probes alone: a probe stage, short-horizon advice; no fastest.
  const auto probe_job = FitJob(probes_only);
  ASSERT_TRUE(probe_job.ok()) << probe_job.status();
  EXPECT_TRUE(probe_job->set_aside.empty());
  EXPECT_FALSE(probe_job->runs.has_value());
  ASSERT_EQ(probe_job->stages.size(), 1u);
  const auto adv = Advise(*probe_job, 64, std::nullopt);
  ASSERT_TRUE(adv.ok()) << adv.status();
  EXPECT_EQ(adv->evidence, "probes");
  EXPECT_TRUE(adv->flags.short_horizon);
  EXPECT_EQ(adv->runs_used, 0);
  EXPECT_EQ(adv->probe_points_used, 12 * 16 * 4);
  const auto fastest = Advise(*probe_job, 64, std::nullopt, Criterion::kFastest);
  ASSERT_FALSE(fastest.ok());
  EXPECT_EQ(fastest.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(fastest.status().message().find("criterion fastest needs training runs"),
            std::string::npos)
      << fastest.status();
}

// What the runs gave is summarized; the speed/data fits come from the
// fastest optima: S(B) = S_min + E_min / B with S_min = c L^-p and
// B_crit = B_noise in the generating law.
TEST(RunJobTest, RunsSummaryAndSpeedData) {
  const synth::SweepSpec spec;
  JobInput in;
  in.runs = synth::PlainRunSweep(spec, 5);
  const auto job = FitJob(in);
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(job->runs.has_value());
  EXPECT_EQ(job->runs->signal, LossSignal::kEval);
  EXPECT_TRUE(job->runs->targets_from_data);
  EXPECT_EQ(job->runs->k_steps, 10);
  EXPECT_EQ(job->runs->runs_used, 98);
  EXPECT_EQ(job->runs->runs_scheduled, 0);
  EXPECT_EQ(job->runs->runs_left_out, 0);
  ASSERT_EQ(job->fastest.stages.size(), job->runs->targets.size());
  for (size_t i = 0; i < job->fastest.stages.size(); ++i) {
    // Stages ascend in loss, targets descend.
    EXPECT_EQ(job->fastest.stages[i].stage_loss,
              job->runs->targets[job->runs->targets.size() - 1 - i]);
  }
  ASSERT_EQ(job->speed_data.size(), job->fastest.stages.size());
  for (const SpeedDataFit& f : job->speed_data) {
    SCOPED_TRACE(::testing::Message() << "target " << f.target_loss);
    EXPECT_NEAR(f.s_min.value / spec.law.SMin(f.target_loss), 1.0, 0.1);
    EXPECT_NEAR(f.ln_b_crit.value, std::log(spec.law.b_noise), 0.3);
  }
  for (const StageFit& st : job->fastest.stages) {
    for (const BatchOptimum& o : st.optima) {
      const double truth =
          spec.law.Steps(st.stage_loss, o.batch_size, std::exp(spec.law.LnEpsOpt(o.batch_size)));
      EXPECT_NEAR(o.steps_at_opt / truth, 1.0, 0.1)
          << "stage " << st.stage_loss << " B " << o.batch_size;
    }
  }
  // Declared targets.
  in.run_options.targets = {1.4, 1.2};
  const auto declared = FitJob(in);
  ASSERT_TRUE(declared.ok()) << declared.status();
  EXPECT_FALSE(declared->runs->targets_from_data);
  EXPECT_EQ(declared->runs->targets, (std::vector<double>{1.4, 1.2}));
}

// A probe stage whose id (a checkpoint step) equals a target's stage id
// (round(L* x 10^6)) is a different stage, not an inconsistent one.
TEST(RunJobTest, ProbeStageIdEqualToATargetStageId) {
  std::mt19937_64 rng(4);
  JobInput in;
  in.runs = synth::PlainRunSweep(synth::SweepSpec(), 22);
  in.run_options.targets = {1.25};
  in.probe_points = SurgeStageProbes(TargetStageId(1.25), 2.0, 1e-3, 400.0, 2, rng);
  const auto job = FitJob(in);
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_EQ(job->stages.size(), 1u);
  EXPECT_EQ(job->stages[0].stage_id, 1250000);
  EXPECT_EQ(job->stages[0].stage_loss, 1.25);
  EXPECT_EQ(job->stages[0].evidence, kPlainRuns);
  ASSERT_EQ(job->set_aside.size(), 1u);
  EXPECT_EQ(job->set_aside[0].stage_id, 1250000);
  EXPECT_EQ(job->set_aside[0].stage_loss, 2.0);
  EXPECT_EQ(job->set_aside[0].evidence, kProbes);
}

// Fault 4 of issue 11: a job with probes from thousands of checkpoints gave
// a 9,500-stage fit that outgrew the message limit. At most max_stages are
// fitted, evenly spaced in loss (the lowest and the highest kept), and a note
// says how many were left out.
TEST(FitJobTest, StagesAreCappedEvenlyInLoss) {
  std::mt19937_64 rng(21);
  JobInput in;
  for (int s = 0; s < 300; ++s) {
    const double loss = 3.0 - 0.008 * s;  // 3.0 down to 0.608
    auto optima = synth::MeasuredSurge(1000 + s, loss, 1e-3, 400.0, synth::PowersOfTwo(3, 12),
                                       0.05, rng);
    in.measured_optima.insert(in.measured_optima.end(), optima.begin(), optima.end());
  }
  FitOptions options;
  options.max_stages = 16;
  const auto job = FitJob(in, options);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->stages.size() + job->skipped_stages.size(), 16u);
  EXPECT_NEAR(job->stages.front().stage_loss, 0.608, 1e-9);  // ascending loss
  EXPECT_NEAR(job->stages.back().stage_loss, 3.0, 1e-9);
  EXPECT_TRUE(HasNote(*job, "284 of 300 stages left out: a fit covers at most 16 stages"));
  // The default keeps 64.
  const auto capped = FitJob(in);
  ASSERT_TRUE(capped.ok());
  EXPECT_EQ(capped->stages.size() + capped->skipped_stages.size(), 64u);
}

}  // namespace
}  // namespace surge::fit
