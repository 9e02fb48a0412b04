// Tests of server/fit/holdout: leave-one-batch-size-out predictions on
// synthetic stages from a known surge law, a deliberately wrong batch size,
// unfittable refits, and the summary counts.
#include "server/fit/holdout.h"

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/server/fit/synthetic.h"

namespace surge::fit {
namespace {

using synth::LrGrid;
using synth::MeasuredSurge;
using synth::PowersOfTwo;
using synth::ProbeGrid;
using synth::SurgeLnLr;

constexpr double kEpsMax = 1e-3;
constexpr double kBNoise = 400.0;

// A stage of raw probes from the surge law (eps_max 1e-3, B_noise 400):
// B = 2^3..2^14, 24 LRs 1e-5 * sqrt(2)^j (1e-5 .. 2.9e-2, so that an optimum
// 10x off the law stays inside the grid), 4 seeds, the improvement height
// and seed noise of synth::SurgeStageProbes. The optimum at `wrong_b` (if
// any) is moved by the factor `wrong_factor`.
std::vector<ProbePoint> Stage(int64_t stage, double loss, std::mt19937_64& rng,
                              double wrong_b = 0.0, double wrong_factor = 1.0) {
  std::vector<ProbePoint> out;
  const std::vector<double> lrs = LrGrid(1e-5, std::sqrt(2.0), 24);
  for (double b : PowersOfTwo(3, 14)) {
    const double height = 0.5 / (1.0 + kBNoise / b);
    const double sd = 0.02 * height * std::sqrt(64.0 / b) + 0.002 * height;
    double ln_opt = SurgeLnLr(kEpsMax, kBNoise, b);
    if (b == wrong_b) ln_opt += std::log(wrong_factor);
    std::vector<ProbePoint> g = ProbeGrid(stage, loss, b, ln_opt, lrs, 4, height, 1.0, sd, rng);
    out.insert(out.end(), g.begin(), g.end());
  }
  return out;
}

std::string Describe(const HoldOutResult& r) {
  char buf[256];
  std::snprintf(
      buf, sizeof(buf), "stage %lld B=%g %s: meas %.3f (se %.3f) pred %.3f (se %.3f) z %.2f",
      static_cast<long long>(r.stage_id), r.batch_size, HoldOutKindName(r.kind), r.ln_measured,
      r.ln_measured_se, r.averaged.ln_mean, r.averaged.ln_se, r.averaged.z);
  return buf;
}

// Raw probes from a known surge law, 10 data seeds: each stage has 12 batch
// sizes; the two ends are extrapolations, the 10 interior held-out
// predictions are consistent with the measured optimum >= 80% of the time.
TEST(HoldOutCheckTest, SurgeProbesInteriorMostlyConsistent) {
  HoldOutSummary total;
  for (int seed = 0; seed < 10; ++seed) {
    std::mt19937_64 rng(seed);
    JobInput in;
    in.probe_points = Stage(1, 2.0, rng);
    const auto results = HoldOutCheck(in);
    ASSERT_TRUE(results.ok()) << results.status();
    ASSERT_EQ(results->size(), 12u) << "seed " << seed;
    EXPECT_EQ(results->front().kind, HoldOutKind::kExtrapolated) << Describe(results->front());
    EXPECT_EQ(results->back().kind, HoldOutKind::kExtrapolated) << Describe(results->back());
    for (const HoldOutResult& r : *results) {
      EXPECT_TRUE(std::isfinite(r.averaged.z)) << Describe(r);
      if (r.kind == HoldOutKind::kInterior && !r.averaged.consistent) {
        std::printf("seed %d inconsistent: %s\n", seed, Describe(r).c_str());
      }
    }
    const HoldOutSummary s = SummarizeHoldOut(*results);
    EXPECT_EQ(s.interior, 10) << "seed " << seed;
    EXPECT_EQ(s.extrapolated, 2) << "seed " << seed;
    total.interior += s.interior;
    total.consistent += s.consistent;
    total.inside += s.inside;
    total.surge_consistent += s.surge_consistent;
  }
  std::printf("interior: %d of %d consistent, %d inside; surge law alone %d consistent\n",
              total.consistent, total.interior, total.inside, total.surge_consistent);
  EXPECT_GE(total.consistent, 0.8 * total.interior);
  EXPECT_GE(total.surge_consistent, 0.8 * total.interior);
}

// Measured optima (5% noise, reported SE 5%) from the same law: the same
// check on the measured-optimum path.
TEST(HoldOutCheckTest, MeasuredOptimaInteriorMostlyConsistent) {
  int interior = 0, consistent = 0;
  for (int seed = 0; seed < 10; ++seed) {
    std::mt19937_64 rng(100 + seed);
    JobInput in;
    in.measured_optima = MeasuredSurge(1, 2.0, kEpsMax, kBNoise, PowersOfTwo(3, 14), 0.05, rng);
    const auto results = HoldOutCheck(in);
    ASSERT_TRUE(results.ok()) << results.status();
    const HoldOutSummary s = SummarizeHoldOut(*results);
    interior += s.interior;
    consistent += s.consistent;
  }
  EXPECT_EQ(interior, 100);
  EXPECT_GE(consistent, 80);
}

// One batch size whose optimum is 10x (or 1/10) off the law: its held-out
// prediction (from the other, correct batch sizes) must be inconsistent with
// it and must not cover it, with z of the right sign.
TEST(HoldOutCheckTest, WrongBatchSizeIsInconsistent) {
  struct Case {
    double b;
    double factor;
  } cases[] = {{64, 10.0}, {256, 0.1}, {1024, 10.0}, {2048, 0.1}};
  for (const Case& c : cases) {
    for (int seed = 0; seed < 3; ++seed) {
      std::mt19937_64 rng(seed);
      JobInput in;
      in.probe_points = Stage(1, 2.0, rng, c.b, c.factor);
      const auto results = HoldOutCheck(in);
      ASSERT_TRUE(results.ok()) << results.status();
      bool found = false;
      for (const HoldOutResult& r : *results) {
        if (r.batch_size != c.b) continue;
        found = true;
        EXPECT_EQ(r.kind, HoldOutKind::kInterior) << Describe(r);
        EXPECT_FALSE(r.averaged.consistent) << Describe(r);
        EXPECT_FALSE(r.averaged.inside) << Describe(r);
        EXPECT_GT(r.averaged.z * std::log(c.factor), 0.0) << Describe(r);
        EXPECT_NEAR(r.ln_measured - r.averaged.ln_mean, std::log(c.factor), 0.5) << Describe(r);
      }
      EXPECT_TRUE(found) << "B=" << c.b << " factor " << c.factor << " seed " << seed;
    }
  }
}

// The prediction at B comes from the other batch sizes only: moving B's own
// optimum 10x changes its measured value and z, not its prediction.
TEST(HoldOutCheckTest, PredictionIgnoresHeldOutData) {
  std::mt19937_64 rng(11);
  JobInput in;
  in.measured_optima = MeasuredSurge(1, 2.0, kEpsMax, kBNoise, PowersOfTwo(3, 14), 0.05, rng);
  JobInput moved = in;
  for (MeasuredOptimum& m : moved.measured_optima) {
    if (m.batch_size == 128) m.lr_opt *= 10.0;
  }
  const auto a = HoldOutCheck(in);
  const auto b = HoldOutCheck(moved);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_EQ(a->size(), b->size());
  for (size_t i = 0; i < a->size(); ++i) {
    if ((*a)[i].batch_size != 128) continue;
    EXPECT_DOUBLE_EQ((*a)[i].averaged.ln_mean, (*b)[i].averaged.ln_mean);
    EXPECT_DOUBLE_EQ((*a)[i].averaged.ln_se, (*b)[i].averaged.ln_se);
    EXPECT_NEAR((*b)[i].ln_measured - (*a)[i].ln_measured, std::log(10.0), 1e-9);
    EXPECT_TRUE((*a)[i].averaged.consistent) << Describe((*a)[i]);
    EXPECT_FALSE((*b)[i].averaged.consistent) << Describe((*b)[i]);
  }
}

// A stage with optima at only 3 batch sizes cannot be refitted without one of
// them: every result is skipped with the reason; a second, fittable stage in
// the same job is checked as usual. Results come by stage loss, then B.
TEST(HoldOutCheckTest, UnfittableRefitIsSkipped) {
  std::mt19937_64 rng(5);
  JobInput in;
  in.measured_optima = MeasuredSurge(7, 3.0, kEpsMax, kBNoise, {16, 256, 4096}, 0.05, rng);
  in.probe_points = Stage(2, 1.0, rng);
  const auto results = HoldOutCheck(in);
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 15u);
  for (size_t i = 0; i < 12; ++i) EXPECT_EQ((*results)[i].stage_id, 2);
  for (size_t i = 12; i < 15; ++i) {
    const HoldOutResult& r = (*results)[i];
    EXPECT_EQ(r.stage_id, 7);
    EXPECT_EQ(r.kind, HoldOutKind::kSkipped);
    EXPECT_NE(r.note.find("need optima at >= 3 batch sizes, have 2"), std::string::npos) << r.note;
    EXPECT_TRUE(std::isnan(r.averaged.z));
  }
  const HoldOutSummary s7 = SummarizeHoldOut(*results, 7);
  EXPECT_EQ(s7.skipped, 3);
  EXPECT_EQ(s7.interior, 0);
  const HoldOutSummary s2 = SummarizeHoldOut(*results, 2);
  EXPECT_EQ(s2.interior, 10);
  EXPECT_EQ(s2.skipped, 0);
}

// Efficiency on probes from a known law: the predicted LR at a held-out
// batch size gets most of the best seed-mean improvement there, and B's own
// optimum (the ceiling) about all of it.
TEST(HoldOutCheckTest, ProbeEfficiencyAndCeiling) {
  std::mt19937_64 rng(21);
  JobInput in;
  in.probe_points = Stage(1, 1.0, rng);
  const auto results = HoldOutCheck(in);
  ASSERT_TRUE(results.ok()) << results.status();
  const HoldOutSummary s = SummarizeHoldOut(*results);
  ASSERT_EQ(s.efficiency_n, 10);
  std::printf("probes: efficiency %.3f (worst %.3f), ceiling %.3f\n", s.mean_share, s.min_share,
              s.mean_ceiling);
  EXPECT_GT(s.mean_share, 0.95);
  EXPECT_GT(s.mean_ceiling, 0.95);
  for (const HoldOutResult& r : *results) {
    EXPECT_LE(r.efficiency.share, 1.0 + 1e-12) << Describe(r);
    EXPECT_LE(r.efficiency.ceiling, 1.0 + 1e-12) << Describe(r);
    EXPECT_GT(r.efficiency.best_lr, 0.0);
  }
}

// Efficiency in steps on the fastest criterion (full runs: steps to the
// target at each grid LR): S(B, lr) = 100 (1 + 256 / B) exp(0.3 u^2),
// u = ln lr - ln lr_opt(B) with lr_opt on the surge law; seeds add 3%
// noise; the highest LR at B = 16 never reaches the target (censored).
TEST(HoldOutCheckTest, FastestEfficiencyInSteps) {
  std::mt19937_64 rng(22);
  std::normal_distribution<double> noise(0.0, 0.03);
  JobInput in;
  const std::vector<double> lrs = LrGrid(1e-4, std::sqrt(2.0), 14);
  for (double b : PowersOfTwo(2, 11)) {
    const double ln_opt = SurgeLnLr(kEpsMax, kBNoise, b);
    for (size_t j = 0; j < lrs.size(); ++j) {
      for (int seed = 0; seed < 2; ++seed) {
        const double u = std::log(lrs[j]) - ln_opt;
        StepsPoint p;
        p.stage_id = 500000;
        p.stage_loss = 0.5;
        p.batch_size = b;
        p.lr = lrs[j];
        p.seed = seed;
        p.steps = 100.0 * (1.0 + 256.0 / b) * std::exp(0.3 * u * u + noise(rng));
        p.examples = p.steps * b;
        p.kind = kFullRuns;
        if (b == 16 && j + 1 == lrs.size()) {
          p.reached = false;
          p.steps = 50.0;
        }
        in.steps_points.push_back(p);
      }
    }
  }
  JobFit full;
  const auto results = HoldOutCheck(in, {}, &full);
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(full.fastest.stages.size(), 1u);
  const HoldOutSummary s = SummarizeHoldOut(*results, std::nullopt, Criterion::kFastest);
  std::printf("fastest: %d interior, efficiency %.3f (worst %.3f), ceiling %.3f\n", s.interior,
              s.mean_share, s.min_share, s.mean_ceiling);
  ASSERT_EQ(s.interior, 8);
  EXPECT_EQ(s.efficiency_n, 8);
  EXPECT_GT(s.mean_share, 0.93);
  EXPECT_GT(s.mean_ceiling, 0.95);
  for (const HoldOutResult& r : *results) {
    EXPECT_EQ(r.criterion, Criterion::kFastest);
    EXPECT_LE(r.efficiency.share, 1.0 + 1e-12);
  }
  // No improvement evidence: no improvement results.
  EXPECT_EQ(SummarizeHoldOut(*results, std::nullopt, Criterion::kImprovement).interior, 0);
}

// Errors of the full-data fit come through.
TEST(HoldOutCheckTest, NoEvidenceIsFailedPrecondition) {
  const auto results = HoldOutCheck(JobInput{});
  EXPECT_EQ(results.status().code(), absl::StatusCode::kFailedPrecondition);
}

// The summary counts only interior results in N, K, M and the z moments.
TEST(SummarizeHoldOutTest, CountsTable) {
  auto make = [](int64_t stage, HoldOutKind kind, double z, bool inside) {
    HoldOutResult r;
    r.stage_id = stage;
    r.kind = kind;
    r.averaged.z = z;
    r.averaged.consistent = std::isfinite(z) && std::fabs(z) <= kZ95;
    r.averaged.inside = inside;
    r.surge = r.averaged;
    return r;
  };
  const std::vector<HoldOutResult> rs = {
      make(1, HoldOutKind::kInterior, 0.5, true),
      make(1, HoldOutKind::kInterior, -3.0, false),
      make(1, HoldOutKind::kInterior, 1.5, false),
      make(1, HoldOutKind::kExtrapolated, 0.1, true),
      make(2, HoldOutKind::kInterior, 1.0, true),
      make(2, HoldOutKind::kSkipped, NAN, false),
  };
  const HoldOutSummary all = SummarizeHoldOut(rs);
  EXPECT_EQ(all.interior, 4);
  EXPECT_EQ(all.consistent, 3);
  EXPECT_EQ(all.inside, 2);
  EXPECT_EQ(all.surge_evaluated, 4);
  EXPECT_EQ(all.surge_consistent, 3);
  EXPECT_EQ(all.extrapolated, 1);
  EXPECT_EQ(all.extrapolated_consistent, 1);
  EXPECT_EQ(all.skipped, 1);
  EXPECT_DOUBLE_EQ(all.mean_z, 0.0);
  EXPECT_DOUBLE_EQ(all.rms_z, std::sqrt((0.25 + 9.0 + 2.25 + 1.0) / 4.0));
  const HoldOutSummary one = SummarizeHoldOut(rs, 1);
  EXPECT_EQ(one.interior, 3);
  EXPECT_EQ(one.consistent, 2);
  EXPECT_EQ(one.extrapolated, 1);
  EXPECT_EQ(one.skipped, 0);
}

}  // namespace
}  // namespace surge::fit
