// Tests of server/fit/run_evidence: plain runs -> improvement and steps
// points at target losses, on sweeps generated from a known law
// (synthetic_runs.h), and FitJob's recovery of the law from plain runs alone.
#include "server/fit/run_evidence.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/fit/fit_job.h"
#include "server/fit/steps_optimum.h"
#include "tests/server/fit/synthetic_runs.h"

namespace surge::fit {
namespace {

using synth::LossReport;
using synth::LrSchedule;
using synth::RunLaw;
using synth::SweepSpec;

bool Contains(const std::vector<std::string>& notes, const std::string& part) {
  return std::any_of(notes.begin(), notes.end(),
                     [&](const std::string& n) { return n.find(part) != std::string::npos; });
}

std::string Join(const std::vector<std::string>& notes) {
  std::string out;
  for (const std::string& n : notes) out += n + "\n";
  return out;
}

// ---------------------------------------------------------------------------
// The generator.

TEST(SyntheticRunsTest, BisectionInvertsTheStepsLaw) {
  const RunLaw law;
  for (double slowdown : {1.0, 2.5, 17.0, 300.0}) {
    for (double t : {1.0, 7.0, 100.0, 1499.0, 1e5}) {
      const double l = synth::LossAtStepsBisection(law, slowdown, t);
      EXPECT_NEAR(law.SMin(l) * slowdown, t, 1e-9 * t) << "slowdown " << slowdown << " t " << t;
      EXPECT_NEAR(l, synth::LossAtStepsClosedForm(law, slowdown, t), 1e-10 * l);
    }
  }
}

// The first integer step at which a noise-free run's loss is <= target.
double FirstStepAtOrBelow(const RunLaw& law, double batch, double lr, double target) {
  const double slowdown = std::exp(law.LnSlowdown(batch, lr));
  double t = std::max(1.0, std::ceil(law.Steps(target, batch, lr)) - 2.0);
  while (synth::LossAtStepsClosedForm(law, slowdown, t) > target) t += 1.0;
  return t;
}

// Noise-free runs (sigma_run = 0, eval noise 0): every run crosses each
// target at the first integer step t >= t(L*) of the law, is censored when
// that is beyond its last step, and its improvement is L(S) - L(S + k).
TEST(SyntheticRunsTest, NoiseFreeSweepCrossesWhereTheLawSays) {
  SweepSpec spec;
  spec.law.sigma_run = 0.0;
  spec.eval_noise = 0.0;
  spec.train_noise = 0.0;
  const std::vector<RunSeries> runs = synth::PlainRunSweep(spec, 1);
  RunEvidenceOptions opt;
  opt.targets = {1.25, 1.1};
  const auto ev = BuildRunEvidence(runs, opt);
  ASSERT_TRUE(ev.ok()) << ev.status();
  EXPECT_EQ(ev->signal, LossSignal::kEval);
  ASSERT_EQ(ev->steps_points.size(), runs.size() * 2);
  int reached = 0, censored = 0, improvements = 0;
  size_t i = 0;
  for (const RunSeries& r : runs) {
    for (double target : {1.25, 1.1}) {
      const StepsPoint& p = ev->steps_points[i++];
      SCOPED_TRACE(::testing::Message() << r.name << " target " << target);
      ASSERT_EQ(p.batch_size, r.batch_size);
      ASSERT_EQ(p.stage_loss, target);
      const double want = FirstStepAtOrBelow(spec.law, r.batch_size, p.lr, target);
      if (want <= spec.steps) {
        ++reached;
        EXPECT_TRUE(p.reached);
        EXPECT_EQ(p.steps, want);
        EXPECT_EQ(p.examples, want * r.batch_size);
      } else {
        ++censored;
        EXPECT_FALSE(p.reached);
        EXPECT_EQ(p.steps, spec.steps);
        EXPECT_EQ(p.examples, spec.steps * r.batch_size);
      }
    }
  }
  for (const ProbePoint& p : ev->improvement_points) {
    if (!p.reached) continue;
    ++improvements;
    const double slowdown = std::exp(spec.law.LnSlowdown(p.batch_size, p.lr));
    const double s = FirstStepAtOrBelow(spec.law, p.batch_size, p.lr, p.stage_loss);
    const double want = synth::LossAtStepsClosedForm(spec.law, slowdown, s) -
                        synth::LossAtStepsClosedForm(spec.law, slowdown, s + 10);
    EXPECT_NEAR(p.improvement, want, 1e-12) << "B " << p.batch_size << " lr " << p.lr;
  }
  std::printf("noise-free sweep: %d (run, target) reached, %d censored, %d improvements\n",
              reached, censored, improvements);
  EXPECT_GT(reached, 50);
  EXPECT_GT(censored, 20);
  EXPECT_GT(improvements, 50);
}

// ---------------------------------------------------------------------------
// Coverage: FitJob on plain runs alone recovers the per-batch optima and
// B_noise with honest 95% intervals, for both criteria.

struct Count {
  int n = 0;
  int covered = 0;
  double sum_sq_err = 0.0;
  std::vector<double> se;
  void Add(double estimate, double se_value, double truth) {
    ++n;
    covered += std::fabs(estimate - truth) <= kZ95 * se_value;
    sum_sq_err += (estimate - truth) * (estimate - truth);
    se.push_back(se_value);
  }
  double Coverage() const { return n > 0 ? static_cast<double>(covered) / n : 0.0; }
  double RmsError() const { return n > 0 ? std::sqrt(sum_sq_err / n) : NAN; }
  double MedianSe() const {
    std::vector<double> v = se;
    if (v.empty()) return NAN;
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    return v[v.size() / 2];
  }
};

struct CriterionCoverage {
  Count b_noise_per_seed;  // one stage per seed: the highest target (all batch sizes)
  Count b_noise;           // every identified stage
  Count lr_opt;            // every uncensored per-batch optimum of every stage
  int stages = 0;
  int identified = 0;
  int seeds_with_stage = 0;
};

struct CoverageResult {
  CriterionCoverage improvement, fastest;
  int seeds = 0;
  double seconds = 0.0;
};

CoverageResult MeasureCoverage(const SweepSpec& spec, const std::vector<double>& targets,
                               int n_seeds) {
  CoverageResult res;
  const auto t0 = std::chrono::steady_clock::now();
  const double truth_b = std::log(spec.law.b_noise);
  for (int seed = 0; seed < n_seeds; ++seed) {
    JobInput in;
    in.runs = synth::PlainRunSweep(spec, 5000 + seed);
    in.run_options.targets = targets;
    const auto job = FitJob(in);
    EXPECT_TRUE(job.ok()) << "seed " << seed << ": " << job.status();
    if (!job.ok()) continue;
    ++res.seeds;
    for (int c = 0; c < 2; ++c) {
      CriterionCoverage& cc = c == 0 ? res.improvement : res.fastest;
      const std::vector<StageFit>& stages = c == 0 ? job->stages : job->fastest.stages;
      if (!stages.empty()) ++cc.seeds_with_stage;
      for (size_t s = 0; s < stages.size(); ++s) {
        const StageFit& st = stages[s];
        EXPECT_TRUE(HasRunEvidence(st.evidence)) << "seed " << seed;
        ++cc.stages;
        if (st.surge.identification == PeakIdentification::kIdentified) {
          ++cc.identified;
          const Estimate b = st.surge.LnBNoise();
          cc.b_noise.Add(b.value, b.se, truth_b);
          if (s + 1 == stages.size()) cc.b_noise_per_seed.Add(b.value, b.se, truth_b);
        }
        for (const BatchOptimum& o : st.optima) {
          if (o.censoring != Censoring::kNone) continue;
          cc.lr_opt.Add(o.ln_lr_opt, o.ln_lr_opt_se, spec.law.LnEpsOpt(o.batch_size));
        }
      }
    }
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

void Report(const char* config, const CoverageResult& r) {
  for (int c = 0; c < 2; ++c) {
    const CriterionCoverage& cc = c == 0 ? r.improvement : r.fastest;
    std::printf(
        "%-28s %-11s stages %3d (identified %3d, seeds with a stage %3d/%d) | ln B_noise: "
        "per seed %3d/%3d = %.3f, all stages %3d/%3d = %.3f, rms err %.3f, median se %.3f | "
        "per-batch ln eps_opt: %4d/%4d = %.3f, rms err %.3f, median se %.3f\n",
        config, c == 0 ? "improvement" : "fastest", cc.stages, cc.identified,
        cc.seeds_with_stage, r.seeds, cc.b_noise_per_seed.covered, cc.b_noise_per_seed.n,
        cc.b_noise_per_seed.Coverage(), cc.b_noise.covered, cc.b_noise.n, cc.b_noise.Coverage(),
        cc.b_noise.RmsError(), cc.b_noise.MedianSe(), cc.lr_opt.covered, cc.lr_opt.n,
        cc.lr_opt.Coverage(), cc.lr_opt.RmsError(), cc.lr_opt.MedianSe());
  }
  std::printf("%-28s %.2f s for %d seeds\n", config, r.seconds, r.seeds);
}

// Thresholds. Nominal coverage is 0.95. Measured, 100 seeds per
// configuration (the printed table): fastest per-batch 0.951-0.959 (0.892-
// 0.914 before the t factor in steps_optimum.cc), B_noise 0.993-1.000;
// improvement per-batch 0.983-0.991, B_noise 0.975-0.988 over all stages and
// 0.99-1.00 per seed (conservative: the lack-of-fit factor and the 0.05 SE
// floor of the surge fit; its per-batch optima are biased towards the grid
// LR nearest the peak, by up to ~0.6 SE, because the improvement peak is not
// quadratic over 5 grid LRs, and the wide intervals absorb it). The lowest
// targets chosen from the data leave the slow batch sizes out, so fewer of
// those improvement stages pin B_noise (84-86%; the others report a bound).
// The precision bounds keep "coverage" from being bought with uninformative
// intervals.
void ExpectCoverage(const char* config, const CoverageResult& r, int n_seeds) {
  Report(config, r);
  ASSERT_EQ(r.seeds, n_seeds);
  for (int c = 0; c < 2; ++c) {
    const CriterionCoverage& cc = c == 0 ? r.improvement : r.fastest;
    SCOPED_TRACE(::testing::Message() << config << ", criterion "
                                      << (c == 0 ? "improvement" : "fastest"));
    EXPECT_GE(cc.seeds_with_stage, n_seeds * 98 / 100);
    EXPECT_GE(cc.identified, cc.stages * (c == 0 ? 80 : 95) / 100);
    EXPECT_GE(cc.b_noise_per_seed.n, n_seeds * 90 / 100);
    EXPECT_GE(cc.b_noise_per_seed.Coverage(), 0.90);
    EXPECT_GE(cc.b_noise.Coverage(), 0.90);
    EXPECT_GE(cc.lr_opt.Coverage(), c == 0 ? 0.90 : 0.92);
    EXPECT_LE(cc.b_noise.RmsError(), c == 0 ? 0.35 : 0.12);
    EXPECT_LE(cc.b_noise.MedianSe(), c == 0 ? 0.30 : 0.12);
    EXPECT_LE(cc.lr_opt.RmsError(), c == 0 ? 0.25 : 0.05);
  }
}

constexpr int kCoverageSeeds = 100;

TEST(RunCoverageTest, EvalLossTargetsFromData) {
  SweepSpec spec;
  ExpectCoverage("eval, targets from data", MeasureCoverage(spec, {}, kCoverageSeeds),
                 kCoverageSeeds);
}

TEST(RunCoverageTest, EvalLossDeclaredTargets) {
  SweepSpec spec;
  ExpectCoverage("eval, declared targets", MeasureCoverage(spec, {1.5, 1.25}, kCoverageSeeds),
                 kCoverageSeeds);
}

TEST(RunCoverageTest, TrainingLossOnlyTargetsFromData) {
  SweepSpec spec;
  spec.report = LossReport::kTrainingOnly;
  ExpectCoverage("training only, from data", MeasureCoverage(spec, {}, kCoverageSeeds),
                 kCoverageSeeds);
}

TEST(RunCoverageTest, TrainingLossOnlyDeclaredTargets) {
  SweepSpec spec;
  spec.report = LossReport::kTrainingOnly;
  ExpectCoverage("training only, declared", MeasureCoverage(spec, {1.5, 1.25}, kCoverageSeeds),
                 kCoverageSeeds);
}

// ---------------------------------------------------------------------------
// Censored runs.

// Every (run, target) gives a steps point, the runs that never reach a
// target included (reached = false, S = the run's last step); the
// improvement points carry them too, and the optima count them.
TEST(BuildRunEvidenceTest, CensoredRunsAreKeptNotDropped) {
  SweepSpec spec;
  const std::vector<RunSeries> runs = synth::PlainRunSweep(spec, 7);
  RunEvidenceOptions opt;
  opt.targets = {1.1, 1.3};  // declared in any order: used descending
  const auto ev = BuildRunEvidence(runs, opt);
  ASSERT_TRUE(ev.ok()) << ev.status();
  EXPECT_EQ(ev->targets, (std::vector<double>{1.3, 1.1}));
  EXPECT_FALSE(ev->targets_from_data);
  ASSERT_EQ(ev->steps_points.size(), runs.size() * 2);
  std::map<std::pair<int64_t, double>, int> censored;  // (stage, B) -> runs never reaching
  int n_censored = 0;
  for (const StepsPoint& p : ev->steps_points) {
    EXPECT_EQ(p.stage_id, TargetStageId(p.stage_loss));
    EXPECT_EQ(p.kind, kPlainRuns);
    if (p.reached) continue;
    ++n_censored;
    ++censored[{p.stage_id, p.batch_size}];
    EXPECT_EQ(p.steps, spec.steps);
    EXPECT_EQ(p.examples, spec.steps * p.batch_size);
  }
  int n_censored_improvement = 0;
  for (const ProbePoint& p : ev->improvement_points) n_censored_improvement += !p.reached;
  EXPECT_EQ(n_censored_improvement, n_censored);
  EXPECT_GT(n_censored, 20);
  // The extreme LRs never reach 1.1 at the smallest batch size.
  for (const StepsPoint& p : ev->steps_points) {
    if (p.batch_size == 4 && p.stage_loss == 1.1 &&
        std::fabs(std::log(p.lr) - spec.law.LnEpsOpt(4)) > 2.0) {
      EXPECT_FALSE(p.reached) << "lr " << p.lr;
    }
  }
  // The optima count them, per batch size, and the fit's stages in total.
  for (int64_t stage : {TargetStageId(1.3), TargetStageId(1.1)}) {
    std::vector<StepsPoint> pts;
    for (const StepsPoint& p : ev->steps_points) {
      if (p.stage_id == stage) pts.push_back(p);
    }
    const auto st = ExtractFastestStageOptima(pts);
    ASSERT_TRUE(st.ok()) << st.status();
    for (const BatchOptimum& o : st->optima) {
      EXPECT_EQ(o.n_censored, (censored[{stage, o.batch_size}])) << "B " << o.batch_size;
      EXPECT_EQ(o.n_points + o.n_censored, 14) << "B " << o.batch_size;
    }
  }
  JobInput in;
  in.runs = runs;
  in.run_options = opt;
  const auto job = FitJob(in);
  ASSERT_TRUE(job.ok()) << job.status();
  int fit_censored = 0;
  for (const StageFit& st : job->fastest.stages) {
    EXPECT_EQ(st.n_runs, static_cast<int>(runs.size()));
    fit_censored += st.n_censored_runs;
  }
  EXPECT_EQ(fit_censored, n_censored);
}

// Runs at the LR above the fastest one that reached the target diverged
// (their losses go to NaN) and never reach it: the optimum is a point, not a
// lower bound, for both criteria. Without those runs it is a lower bound.
TEST(BuildRunEvidenceTest, DivergedRunAboveTheFastestMakesTheOptimumAPoint) {
  for (LossReport report : {LossReport::kEval, LossReport::kTrainingOnly}) {
    SCOPED_TRACE(report == LossReport::kEval ? "eval loss" : "training loss");
    SweepSpec spec;
    spec.report = report;
    spec.law.sigma_run = 0.02;
    spec.batches = {64};
    const double opt = spec.law.LnEpsOpt(64);
    spec.lrs = {std::exp(opt - 2.3), std::exp(opt - 1.15), std::exp(opt - 0.2),
                std::exp(opt + 0.95)};
    std::vector<RunSeries> runs = synth::PlainRunSweep(spec, 3);
    for (RunSeries& r : runs) {
      if (r.lr[0] < spec.lrs[3] * 0.999) continue;
      for (size_t i = 10; i < r.steps.size(); ++i) {
        r.loss[i] = NAN;
        r.eval_loss[i] = NAN;
      }
    }
    RunEvidenceOptions ro;
    ro.targets = {1.25};
    for (bool with_diverged : {true, false}) {
      SCOPED_TRACE(with_diverged ? "with the diverged runs" : "without them");
      std::vector<RunSeries> used = runs;
      if (!with_diverged) used.resize(6);
      const auto ev = BuildRunEvidence(used, ro);
      ASSERT_TRUE(ev.ok()) << ev.status();
      const auto fastest = ExtractFastestOptimum(ev->steps_points);
      ASSERT_TRUE(fastest.ok()) << fastest.status();
      const auto improvement = ExtractOptimum(ev->improvement_points);
      ASSERT_TRUE(improvement.ok()) << improvement.status();
      if (with_diverged) {
        EXPECT_EQ(fastest->n_censored, 2);
        EXPECT_EQ(improvement->n_censored, 2);
        EXPECT_EQ(fastest->censoring, Censoring::kNone);
        EXPECT_EQ(improvement->censoring, Censoring::kNone);
        EXPECT_LT(fastest->ln_lr_opt, std::log(spec.lrs[3]));
        EXPECT_GT(fastest->ln_lr_opt, std::log(spec.lrs[1]));
      } else {
        EXPECT_EQ(fastest->censoring, Censoring::kLowerBound);
        EXPECT_EQ(improvement->censoring, Censoring::kLowerBound);
      }
    }
  }
}

// A diverged training loss (NaN) counts as never reached: its knots past the
// divergence are +inf, never NaN (a NaN inside a bin's median would order
// arbitrarily).
TEST(SmoothLossTest, DivergedLossIsNeverReached) {
  std::vector<int64_t> steps;
  std::vector<double> examples, loss;
  for (int64_t t = 1; t <= 200; ++t) {
    steps.push_back(t);
    examples.push_back(t * 8.0);
    loss.push_back(t <= 50 ? 3.0 - 0.01 * t : NAN);
  }
  const LossTrace tr = SmoothLoss(steps, examples, loss);
  ASSERT_FALSE(tr.value.empty());
  for (size_t i = 0; i < tr.value.size(); ++i) {
    EXPECT_FALSE(std::isnan(tr.value[i])) << "knot " << i << " at step " << tr.step[i];
    if (tr.step[i] > 60) EXPECT_EQ(tr.value[i], HUGE_VAL) << "knot at step " << tr.step[i];
  }
  EXPECT_TRUE(FirstCrossing(tr, 2.6).reached);
  EXPECT_FALSE(FirstCrossing(tr, 2.0).reached);
}

// ---------------------------------------------------------------------------
// Schedules and LR coordinates.

TEST(BuildRunEvidenceTest, ScheduledRunsUseTheirPeakLr) {
  SweepSpec spec;
  spec.schedule = LrSchedule::kWarmupCosine;
  const std::vector<RunSeries> runs = synth::PlainRunSweep(spec, 11);
  const std::vector<double> grid = synth::DefaultLrs(spec);
  RunEvidenceOptions ro;
  ro.targets = {1.3};
  const auto ev = BuildRunEvidence(runs, ro);
  ASSERT_TRUE(ev.ok()) << ev.status();
  EXPECT_EQ(ev->runs_used, 98);
  EXPECT_EQ(ev->runs_scheduled, 98);
  EXPECT_EQ(ev->runs_left_out, 0);
  EXPECT_TRUE(Contains(ev->notes, "98 plain runs are scheduled")) << Join(ev->notes);
  for (const StepsPoint& p : ev->steps_points) {
    EXPECT_TRUE(std::any_of(grid.begin(), grid.end(),
                            [&](double lr) { return std::fabs(lr / p.lr - 1) < 1e-12; }))
        << "lr " << p.lr << " is not a peak LR of the grid";
  }
  // The fit sees the sweep as constant-LR runs at their peak LR.
  JobInput in;
  in.runs = runs;
  const auto job = FitJob(in);
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(job->runs.has_value());
  EXPECT_EQ(job->runs->runs_scheduled, 98);
  ASSERT_FALSE(job->fastest.stages.empty());
  for (const StageFit& st : job->fastest.stages) {
    EXPECT_EQ(st.surge.identification, PeakIdentification::kIdentified);
    EXPECT_NEAR(st.surge.ln_b_noise, std::log(spec.law.b_noise), 0.4);
  }
}

// Two schedule shapes: the minority is left out as not comparable.
TEST(BuildRunEvidenceTest, MixedScheduleShapesLeaveTheMinorityOut) {
  SweepSpec cosine;
  cosine.schedule = LrSchedule::kWarmupCosine;
  SweepSpec linear = cosine;  // warmup + constant: a second shape
  linear.schedule = LrSchedule::kWarmupConstant;
  linear.batches = {16, 64, 256};  // 42 runs
  struct Case {
    std::string name;
    std::vector<RunSeries> runs;
    int used, left_out;
  };
  std::vector<RunSeries> cos_runs = synth::PlainRunSweep(cosine, 1);
  std::vector<RunSeries> lin_runs = synth::PlainRunSweep(linear, 2);
  std::vector<RunSeries> mixed = cos_runs;
  mixed.insert(mixed.end(), lin_runs.begin(), lin_runs.end());
  std::vector<RunSeries> lin_major = synth::PlainRunSweep([&] {
    SweepSpec s = linear;
    s.batches = cosine.batches;
    return s;
  }(), 3);
  std::vector<RunSeries> cos_minor(cos_runs.begin(), cos_runs.begin() + 42);
  lin_major.insert(lin_major.begin(), cos_minor.begin(), cos_minor.end());
  const Case cases[] = {{"cosine majority", mixed, 98, 42},
                        {"linear majority", lin_major, 98, 42}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    RunEvidenceOptions ro;
    ro.targets = {1.3};
    const auto ev = BuildRunEvidence(c.runs, ro);
    ASSERT_TRUE(ev.ok()) << ev.status();
    EXPECT_EQ(ev->runs_used, c.used);
    EXPECT_EQ(ev->runs_scheduled, c.used);
    EXPECT_EQ(ev->runs_left_out, c.left_out);
    EXPECT_TRUE(Contains(ev->notes, "42 plain runs left out as not comparable: their LR "
                                    "schedule shape differs from the 98 runs used"))
        << Join(ev->notes);
    EXPECT_EQ(ev->steps_points.size(), static_cast<size_t>(c.used));
  }
}

// Constant runs use their declared base_lr (even when the records' LR says
// otherwise or is absent); without it, their records' LR; no positive LR at
// all: left out. Constant and scheduled groups of equal size: constant wins.
TEST(BuildRunEvidenceTest, LrCoordinates) {
  SweepSpec spec;
  spec.batches = {64};
  spec.seeds = 1;
  spec.declare_base_lr = true;
  const std::vector<double> grid = synth::DefaultLrs(spec);
  RunEvidenceOptions ro;
  ro.targets = {1.3};
  auto lrs_of = [](const RunEvidence& ev) {
    std::set<double> s;
    for (const StepsPoint& p : ev.steps_points) s.insert(p.lr);
    return s;
  };
  {
    SCOPED_TRACE("base_lr declared, records say 3x");
    std::vector<RunSeries> runs = synth::PlainRunSweep(spec, 1);
    for (RunSeries& r : runs) {
      for (double& v : r.lr) v *= 3.0;
    }
    const auto ev = BuildRunEvidence(runs, ro);
    ASSERT_TRUE(ev.ok()) << ev.status();
    EXPECT_EQ(lrs_of(*ev), std::set<double>(grid.begin(), grid.end()));
    EXPECT_EQ(ev->runs_scheduled, 0);
  }
  {
    SCOPED_TRACE("base_lr declared, records without LR (0)");
    std::vector<RunSeries> runs = synth::PlainRunSweep(spec, 1);
    for (RunSeries& r : runs) std::fill(r.lr.begin(), r.lr.end(), 0.0);
    const auto ev = BuildRunEvidence(runs, ro);
    ASSERT_TRUE(ev.ok()) << ev.status();
    EXPECT_EQ(lrs_of(*ev), std::set<double>(grid.begin(), grid.end()));
    EXPECT_EQ(ev->runs_used, 7);
  }
  {
    SCOPED_TRACE("no base_lr: the records' LR; no LR at all: left out");
    SweepSpec undeclared = spec;
    undeclared.declare_base_lr = false;
    std::vector<RunSeries> runs = synth::PlainRunSweep(undeclared, 1);
    std::fill(runs[0].lr.begin(), runs[0].lr.end(), 0.0);
    const auto ev = BuildRunEvidence(runs, ro);
    ASSERT_TRUE(ev.ok()) << ev.status();
    EXPECT_EQ(lrs_of(*ev), std::set<double>(grid.begin() + 1, grid.end()));
    EXPECT_EQ(ev->runs_used, 6);
    EXPECT_EQ(ev->runs_left_out, 1);
    EXPECT_TRUE(Contains(ev->notes, "1 plain runs without a positive LR left out"))
        << Join(ev->notes);
  }
  {
    SCOPED_TRACE("7 constant and 7 scheduled runs: the constant ones are used");
    SweepSpec cosine = spec;
    cosine.schedule = LrSchedule::kWarmupCosine;
    std::vector<RunSeries> runs = synth::PlainRunSweep(cosine, 1);
    const std::vector<RunSeries> constant = synth::PlainRunSweep(spec, 2);
    runs.insert(runs.end(), constant.begin(), constant.end());
    const auto ev = BuildRunEvidence(runs, ro);
    ASSERT_TRUE(ev.ok()) << ev.status();
    EXPECT_EQ(ev->runs_used, 7);
    EXPECT_EQ(ev->runs_scheduled, 0);
    EXPECT_EQ(ev->runs_left_out, 7);
    EXPECT_TRUE(Contains(ev->notes, "(constant LR)")) << Join(ev->notes);
  }
}

// ---------------------------------------------------------------------------
// The loss signal and SmoothLoss.

// 10 records at steps 1..10: every step is its own 0.05 cell of ln(1 + t),
// m = clamp(10 / 16, 3, 16) = 3, so bins of 3 records: [1..3], [4..6],
// [7..9], and the short tail [10] joins [7..9]. Knots: (median step, median
// examples, median loss): (2, 16, 2.8), (5, 40, 2.2), (8.5, 68, 1.55).
TEST(SmoothLossTest, HandComputedBinsMediansAndCrossing) {
  const std::vector<int64_t> steps = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  std::vector<double> examples;
  for (int64_t t : steps) examples.push_back(8.0 * t);
  const std::vector<double> loss = {3.0, 2.8, 9.0, 2.2, 2.1, 2.5, 1.6, 1.5, 1.9, 1.2};
  const LossTrace tr = SmoothLoss(steps, examples, loss);
  EXPECT_EQ(tr.step, (std::vector<double>{2, 5, 8.5}));
  EXPECT_EQ(tr.examples, (std::vector<double>{16, 40, 68}));
  ASSERT_EQ(tr.value.size(), 3u);
  EXPECT_DOUBLE_EQ(tr.value[0], 3.0);   // median of {3.0, 2.8, 9.0}: the spike does not count
  EXPECT_DOUBLE_EQ(tr.value[1], 2.2);   // median of {2.2, 2.1, 2.5}
  EXPECT_DOUBLE_EQ(tr.value[2], 1.55);  // median of {1.6, 1.5, 1.9, 1.2} = (1.5 + 1.6) / 2
  EXPECT_TRUE(tr.interpolate);
  // Crossing of 2.5: between knots 1 (3.0) and 2 (2.2): t = 0.5/0.8 = 0.625,
  // S = 2 + 0.625 * 3 = 3.875, E = 16 + 0.625 * 24 = 31.
  const Crossing c = FirstCrossing(tr, 2.5);
  ASSERT_TRUE(c.reached);
  EXPECT_DOUBLE_EQ(c.step, 3.875);
  EXPECT_DOUBLE_EQ(c.examples, 31.0);
  // At or below the first knot: that knot's step; below the last: never.
  EXPECT_DOUBLE_EQ(FirstCrossing(tr, 3.0).step, 2.0);
  EXPECT_FALSE(FirstCrossing(tr, 1.5).reached);
  // Linear between knots, the first knot's value before it, NaN past the end.
  EXPECT_DOUBLE_EQ(tr.ValueAt(6.75), 2.2 + 0.5 * (1.55 - 2.2));
  EXPECT_DOUBLE_EQ(tr.ValueAt(1.0), 3.0);
  EXPECT_TRUE(std::isnan(tr.ValueAt(9.0)));
}

// Later steps: a cell of ln(1 + t) holds several records, and bins follow
// the cells. Steps 100..114 (m = 3): cell floor(ln(1 + t) / 0.05) is 92 for
// t = 100..103, 93 for 104..108, 94 for 109..114.
TEST(SmoothLossTest, BinsFollowCells) {
  std::vector<int64_t> steps;
  std::vector<double> examples, loss;
  for (int64_t t = 100; t <= 114; ++t) {
    steps.push_back(t);
    examples.push_back(static_cast<double>(t));
    loss.push_back(1000.0 / static_cast<double>(t));
  }
  const LossTrace tr = SmoothLoss(steps, examples, loss);
  EXPECT_EQ(tr.step, (std::vector<double>{101.5, 106, 111.5}));
  ASSERT_EQ(tr.value.size(), 3u);
  EXPECT_DOUBLE_EQ(tr.value[0], 0.5 * (1000.0 / 101 + 1000.0 / 102));
  EXPECT_DOUBLE_EQ(tr.value[1], 1000.0 / 106);
  EXPECT_DOUBLE_EQ(tr.value[2], 0.5 * (1000.0 / 111 + 1000.0 / 112));
}

// A training curve with 2% noise and 2% spikes of +300%: the smoothed curve
// crosses each target within 4% of the law's step (measured: -0.3% to +2.6%;
// the median ignores the spikes, where a mean would cross ~15% late, and the
// first raw record at or below the target comes 9-12% early).
TEST(SmoothLossTest, SpikesDoNotMoveTheCrossing) {
  SweepSpec spec;
  spec.report = LossReport::kTrainingOnly;
  spec.train_noise = 0.02;
  spec.spike_prob = 0.02;
  spec.spike_factor = 4.0;
  spec.steps = 3000;
  const double batch = 16, lr = std::exp(spec.law.LnEpsOpt(16));
  std::mt19937_64 rng(99);
  const RunSeries r = synth::MakeRun(spec, batch, lr, 0, 1.0, rng);
  int spikes = 0;
  for (size_t i = 0; i < r.loss.size(); ++i) {
    const double l = synth::LossAtStepsClosedForm(
        spec.law, std::exp(spec.law.LnSlowdown(batch, lr)), static_cast<double>(r.steps[i]));
    spikes += r.loss[i] > 2.0 * l;
  }
  EXPECT_GT(spikes, 30);
  const LossTrace tr = SmoothLoss(r.steps, r.examples, r.loss);
  for (double true_step : {100.0, 300.0, 1000.0, 2500.0}) {
    const double target = synth::LossAtStepsClosedForm(
        spec.law, std::exp(spec.law.LnSlowdown(batch, lr)), true_step);
    const Crossing c = FirstCrossing(tr, target);
    ASSERT_TRUE(c.reached) << "target " << target;
    // The raw records: the first at or below the target (noise crosses early).
    double raw = NAN;
    for (size_t i = 0; i < r.loss.size() && std::isnan(raw); ++i) {
      if (r.loss[i] <= target) raw = static_cast<double>(r.steps[i]);
    }
    std::printf("true step %6.0f: smoothed crossing %7.1f (%+.1f%%), first raw record %6.0f\n",
                true_step, c.step, 100 * (c.step / true_step - 1), raw);
    EXPECT_NEAR(c.step / true_step, 1.0, 0.04)
        << "target " << target << " (step " << true_step << "): crossed at " << c.step;
  }
}

// The eval loss is the signal only when every run reports it.
TEST(BuildRunEvidenceTest, SignalIsEvalOnlyWhenEveryRunHasIt) {
  SweepSpec spec;
  spec.batches = {16, 64, 256};
  std::vector<RunSeries> runs = synth::PlainRunSweep(spec, 4);
  RunEvidenceOptions ro;
  ro.targets = {1.3};
  auto ev = BuildRunEvidence(runs, ro);
  ASSERT_TRUE(ev.ok());
  EXPECT_EQ(ev->signal, LossSignal::kEval);
  std::fill(runs[5].eval_loss.begin() + 2, runs[5].eval_loss.end(), NAN);  // 2 evals only
  ev = BuildRunEvidence(runs, ro);
  ASSERT_TRUE(ev.ok());
  EXPECT_EQ(ev->signal, LossSignal::kSmoothedTraining);
  EXPECT_TRUE(Contains(ev->notes, "signal smoothed_training_loss")) << Join(ev->notes);
}

// With sparse evaluations, S is the first evaluation at or below L* and the
// improvement runs to the first evaluation k or more steps later; a run that
// reaches L* less than k steps before its end gives S but no improvement.
TEST(BuildRunEvidenceTest, SparseEvalsAndLateCrossings) {
  SweepSpec spec;
  spec.law.sigma_run = 0.0;
  spec.eval_noise = 0.0;
  spec.eval_every = 25;
  spec.batches = {64};
  spec.lrs = {std::exp(spec.law.LnEpsOpt(64))};
  spec.seeds = 1;
  const std::vector<RunSeries> runs = synth::PlainRunSweep(spec, 1);
  const double slowdown = std::exp(spec.law.LnSlowdown(64, spec.lrs[0]));
  auto loss_at = [&](double t) { return synth::LossAtStepsClosedForm(spec.law, slowdown, t); };
  // A target crossed between evaluations 100 and 125, and one crossed at the
  // last evaluation (1500), within k of the end.
  const double early = loss_at(110), late = loss_at(1490);
  RunEvidenceOptions ro;
  ro.targets = {early, late};
  const auto ev = BuildRunEvidence(runs, ro);
  ASSERT_TRUE(ev.ok()) << ev.status();
  ASSERT_EQ(ev->steps_points.size(), 2u);
  EXPECT_TRUE(ev->steps_points[0].reached);
  EXPECT_EQ(ev->steps_points[0].steps, 125);
  EXPECT_TRUE(ev->steps_points[1].reached);
  EXPECT_EQ(ev->steps_points[1].steps, 1500);
  ASSERT_EQ(ev->improvement_points.size(), 1u);
  EXPECT_DOUBLE_EQ(ev->improvement_points[0].improvement, loss_at(125) - loss_at(150));
  EXPECT_TRUE(Contains(ev->notes, "1 (run, target) pairs reached the target less than k steps "
                                  "before the run's end"))
      << Join(ev->notes);
}

// ---------------------------------------------------------------------------
// Targets.

// The rule on a hand-made example (reach = the lowest loss a run reaches with
// k steps to spare, first = its first value):
//   per batch size with runs at >= 3 LRs, the third lowest per-LR best reach:
//     B 8: 1.50 (best of 1.50, 2.00), 1.40, 1.60 -> 1.60
//     B 16: 1.20, 1.30, 1.25 -> 1.30;  B 64: 1.05, 1.15, 1.10 -> 1.15
//     B 256: 1.00, 1.02, 1.08 -> 1.08;  B 1024: two LRs only -> ignored
//   L_low = the rank-th smallest of (1.08, 1.15, 1.30, 1.60) with rank =
//     max(3, half of 4) = 3: 1.30 (B 8 drops out of the lowest stage)
//   finite reach, sorted: 1.00 1.02 1.05 1.08 1.10 1.15 1.20 1.25 1.30 1.40
//     1.50 1.60 2.00 2.40 2.50 -> 90th percentile at position 12.6:
//     2.00 + 0.6 x 0.40 = 2.24 = L_high (0.9 x the median first value 3.0 =
//     2.7 does not bind)
//   n = clamp(1 + floor(ln(2.24 / 1.30) / 0.05), 2, 4) = clamp(11, 2, 4) = 4,
//   2.24 (1.30 / 2.24)^(i/3) = 2.24, 1.8684, 1.5585, 1.30 -> rounded up to 3
//   significant digits: 2.24, 1.87, 1.56, 1.30.
TEST(ChooseTargetsTest, HandComputedExample) {
  std::vector<double> reach, first, batch, lr;
  auto add = [&](double b, double l, double r) {
    batch.push_back(b);
    lr.push_back(l);
    reach.push_back(r);
    first.push_back(3.0);
  };
  add(8, 1e-3, 1.50), add(8, 1e-3, 2.00), add(8, 2e-3, 1.40), add(8, 4e-3, 1.60);
  add(16, 1e-3, 1.20), add(16, 2e-3, 1.30), add(16, 4e-3, 1.25);
  add(64, 1e-3, 1.05), add(64, 2e-3, 1.15), add(64, 4e-3, 1.10);
  add(256, 1e-3, 1.00), add(256, 2e-3, 1.02), add(256, 4e-3, 1.08), add(256, 4e-3, HUGE_VAL);
  add(1024, 1e-3, 2.50), add(1024, 2e-3, 2.40);
  struct Case {
    std::string name;
    int max_targets;
    double first_value;
    std::vector<double> want;
  } cases[] = {
      {"4 targets", 4, 3.0, {2.24, 1.87, 1.56, 1.30}},
      {"2 targets", 2, 3.0, {2.24, 1.30}},
      {"1 target: L_low", 1, 3.0, {1.30}},
      // 0.9 x median first value 2.0 = 1.8 caps L_high; n = clamp(7, 2, 4):
      // 1.8 (1.3 / 1.8)^(i/3) = 1.8, 1.6152, 1.4494, 1.3.
      {"L_high capped by the first values", 4, 2.0, {1.80, 1.62, 1.45, 1.30}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<double> f(first.size(), c.first_value);
    const std::vector<double> got = ChooseTargets(reach, f, batch, lr, c.max_targets);
    ASSERT_EQ(got.size(), c.want.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], c.want[i], 1e-12) << i;
  }
  // With fewer than 3 batch sizes at >= 3 LRs L_low is the largest third
  // lowest: without B 64 and 256, max(1.60, 1.30) = 1.60.
  {
    std::vector<double> r2, f2, b2, l2;
    for (size_t i = 0; i < reach.size(); ++i) {
      if (batch[i] == 64 || batch[i] == 256) continue;
      r2.push_back(reach[i]), f2.push_back(first[i]), b2.push_back(batch[i]), l2.push_back(lr[i]);
    }
    const std::vector<double> got = ChooseTargets(r2, f2, b2, l2, 4);
    ASSERT_FALSE(got.empty());
    EXPECT_NEAR(got.back(), 1.60, 1e-12);
  }
  // A narrow range (third lowest 1.12, L_high = 1.1225 <= 1.05 L_low): one
  // target, L_low rounded up.
  EXPECT_EQ(ChooseTargets({1.101, 1.11, 1.12, 1.13}, {3, 3, 3, 3}, {8, 8, 8, 8},
                          {1e-3, 2e-3, 4e-3, 8e-3}, 4),
            (std::vector<double>{1.12}));
  // No batch size with runs at >= 3 LRs: no target.
  EXPECT_TRUE(ChooseTargets({1.1, 1.2, 1.0, 1.3}, {3, 3, 3, 3}, {8, 8, 16, 16},
                            {1e-3, 2e-3, 1e-3, 2e-3}, 4)
                  .empty());
}

// Targets chosen from a generated sweep: at the highest target every batch
// size has an optimum; at the lowest, at least max(3, half) of them do (the
// slow ones drop out, with the reason), since those reach it at >= 3 LRs.
TEST(ChooseTargetsTest, TargetsFromASweepLeaveOptimaAtEnoughBatchSizes) {
  for (uint64_t seed : {1, 2, 3, 4, 5}) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    JobInput in;
    in.runs = synth::PlainRunSweep(SweepSpec(), seed);
    const auto job = FitJob(in);
    ASSERT_TRUE(job.ok()) << job.status();
    ASSERT_TRUE(job->runs.has_value());
    EXPECT_TRUE(job->runs->targets_from_data);
    EXPECT_GE(job->runs->targets.size(), 2u);
    ASSERT_EQ(job->fastest.stages.size(), job->runs->targets.size());
    EXPECT_EQ(job->fastest.stages.back().optima.size(), 7u);  // the highest target
    for (const StageFit& st : job->fastest.stages) {
      SCOPED_TRACE(::testing::Message() << "stage " << st.stage_loss);
      EXPECT_GE(st.optima.size(), 4u);
      for (const std::string& why : st.skipped) {
        EXPECT_NE(why.find("learning rates that reach the target"), std::string::npos) << why;
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Errors and unusable runs.

TEST(BuildRunEvidenceTest, BadInput) {
  SweepSpec spec;
  spec.batches = {64};
  spec.seeds = 1;
  struct Case {
    std::string name;
    std::function<void(std::vector<RunSeries>&, RunEvidenceOptions&)> mutate;
    std::string message_part;
  } cases[] = {
      {"zero batch", [](auto& r, auto&) { r[0].batch_size = 0; },
       "batch_size must be finite and > 0"},
      {"nan batch", [](auto& r, auto&) { r[0].batch_size = NAN; },
       "batch_size must be finite and > 0"},
      {"lengths differ", [](auto& r, auto&) { r[2].loss.pop_back(); }, "series lengths differ"},
      {"bad target", [](auto&, auto& o) { o.targets = {1.2, -1}; },
       "target losses must be finite and > 0"},
      {"k = 0", [](auto&, auto& o) { o.k_steps = 0; }, "k_steps must be >= 1"},
  };
  for (const Case& c : cases) {
    std::vector<RunSeries> runs = synth::PlainRunSweep(spec, 1);
    RunEvidenceOptions ro;
    c.mutate(runs, ro);
    const auto ev = BuildRunEvidence(runs, ro);
    ASSERT_FALSE(ev.ok()) << "case '" << c.name << "'";
    EXPECT_EQ(ev.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_NE(ev.status().message().find(c.message_part), std::string::npos)
        << "case '" << c.name << "': " << ev.status();
  }
  // Runs with fewer than 3 records are counted, not errors; no runs: empty.
  std::vector<RunSeries> runs = synth::PlainRunSweep(spec, 1);
  for (RunSeries* r : {&runs[0], &runs[1]}) {
    r->steps.resize(2), r->examples.resize(2), r->lr.resize(2), r->loss.resize(2),
        r->eval_loss.resize(2);
  }
  const auto ev = BuildRunEvidence(runs, {});
  ASSERT_TRUE(ev.ok()) << ev.status();
  EXPECT_EQ(ev->runs_used, 5);
  EXPECT_EQ(ev->runs_left_out, 2);
  EXPECT_TRUE(Contains(ev->notes, "2 plain runs with < 3 records left out")) << Join(ev->notes);
  const auto none = BuildRunEvidence({}, {});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->runs_used, 0);
  EXPECT_TRUE(none->steps_points.empty());
}

}  // namespace
}  // namespace surge::fit
