// Tests of server/fit/pooled_surface (experimental): the joint fit of the
// improvement surface recovers a known peak location from synthetic probe
// grids, its intervals cover, the held-out comparison works, the efficiency
// share is computed as documented, and too little data fails loudly.
#include "server/fit/pooled_surface.h"

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
using synth::PowersOfTwo;
using synth::ProbeGrid;
using synth::SurgeLnLr;
using synth::SurgeStageProbes;

constexpr double kEpsMax = 1e-3;
constexpr double kBNoise = 400.0;

// Raw probes at the given batch sizes whose optimum is ln_opt(B), the heights
// and noise of synth::SurgeStageProbes, 16 LRs 3e-5 * sqrt(2)^j.
template <typename F>
std::vector<ProbePoint> Probes(const std::vector<double>& batches, F ln_opt, int seeds,
                               std::mt19937_64& rng, int64_t stage = 1) {
  std::vector<ProbePoint> out;
  const std::vector<double> lrs = LrGrid(3e-5, std::sqrt(2.0), 16);
  for (double b : batches) {
    const double height = 0.5 / (1.0 + kBNoise / b);
    const double sd = 0.02 * height * std::sqrt(64.0 / b) + 0.002 * height;
    std::vector<ProbePoint> g = ProbeGrid(stage, 2.0, b, ln_opt(b), lrs, seeds, height, 1.0, sd, rng);
    out.insert(out.end(), g.begin(), g.end());
  }
  return out;
}

// A surge-law stage (B_noise 400, eps_max 1e-3, 12 batch sizes 8..16384, 4
// seeds): the pooled fit recovers a and b, m(x) follows the law, and the 95%
// interval of ln B_noise covers the truth in most of 20 replicates.
TEST(PooledSurfaceTest, RecoversSurgePeak) {
  int covered_b = 0, covered_m = 0, n_m = 0;
  double worst_m = 0.0;
  for (int seed = 0; seed < 20; ++seed) {
    std::mt19937_64 rng(seed);
    const std::vector<ProbePoint> pts = SurgeStageProbes(1, 2.0, kEpsMax, kBNoise, 4, rng);
    const auto fit = FitPooledSurface(pts);
    ASSERT_TRUE(fit.ok()) << fit.status();
    ASSERT_EQ(fit->batches.size(), 12u) << "seed " << seed;
    ASSERT_TRUE(fit->covariance_ok);
    EXPECT_FALSE(fit->location_at_bound);
    EXPECT_NEAR(fit->law_params[0], std::log(kEpsMax), 0.1) << "seed " << seed;
    const Estimate b = fit->LnBNoise();
    EXPECT_NEAR(b.value, std::log(kBNoise), 0.3) << "seed " << seed;
    ASSERT_TRUE(std::isfinite(b.se) && b.se > 0.0);
    if (std::fabs(b.value - std::log(kBNoise)) <= kZ95 * b.se) ++covered_b;
    for (double bs : PowersOfTwo(3, 14)) {
      const CurvePrediction m = fit->PredictLnLrPeak(std::log(bs));
      const double truth = SurgeLnLr(kEpsMax, kBNoise, bs);
      worst_m = std::max(worst_m, std::fabs(m.mean - truth));
      ++n_m;
      if (std::fabs(m.mean - truth) <= kZ95 * std::sqrt(m.var)) ++covered_m;
    }
    EXPECT_GT(fit->dof, 0);
    EXPECT_GE(fit->scale, 1.0);
  }
  std::printf("ln B_noise covered %d of 20; m(x) covered %d of %d; worst |m - truth| %.3f\n",
              covered_b, covered_m, n_m, worst_m);
  EXPECT_GE(covered_b, 16);
  EXPECT_GE(covered_m, 0.8 * n_m);
  EXPECT_LT(worst_m, 0.2);
}

// The other shape terms and laws: per-B curvature, the saturating surge (its peak near B_noise) all recover the surge peak; the
// power law recovers a power-law peak location.
TEST(PooledSurfaceTest, VariantsRecoverTheirPeak) {
  std::mt19937_64 rng(3);
  const std::vector<ProbePoint> pts = SurgeStageProbes(1, 2.0, kEpsMax, kBNoise, 4, rng);
  PooledOptions per_b;
  per_b.curvature = ShapeTerm::kPerBatch;
  for (const PooledOptions& o : {per_b}) {
    const auto fit = FitPooledSurface(pts, o);
    ASSERT_TRUE(fit.ok()) << fit.status();
    EXPECT_NEAR(fit->LnBNoise().value, std::log(kBNoise), 0.35)
        << ShapeTermName(o.heights) << "/" << ShapeTermName(o.curvature);
  }
  PooledOptions sat;
  sat.law = PeakLaw::kSaturatingSurge;
  const auto fs = FitPooledSurface(pts, sat);
  ASSERT_TRUE(fs.ok()) << fs.status();
  for (double bs : {16.0, 400.0, 4096.0}) {
    EXPECT_NEAR(fs->PredictLnLrPeak(std::log(bs)).mean, SurgeLnLr(kEpsMax, kBNoise, bs), 0.15)
        << "B=" << bs;
  }

  std::mt19937_64 rng2(4);
  auto power = [](double b) { return std::log(2e-5) + 0.4 * std::log(b); };
  const std::vector<ProbePoint> pp = Probes(PowersOfTwo(3, 14), power, 4, rng2);
  PooledOptions pl;
  pl.law = PeakLaw::kPowerLaw;
  const auto fp = FitPooledSurface(pp, pl);
  ASSERT_TRUE(fp.ok()) << fp.status();
  EXPECT_NEAR(fp->law_params[1], 0.4, 0.03);
  EXPECT_NEAR(fp->law_params[0], std::log(2e-5), 0.2);
  EXPECT_TRUE(std::isnan(fp->LnBNoise().value));
}

// Leave one batch size out: interior predictions land near the measured
// optimum and achieve nearly all of the best improvement; the held-out
// batch size's own probes do not enter its prediction.
TEST(PooledHoldOutTest, SyntheticStageIsPredicted) {
  std::mt19937_64 rng(7);
  JobInput in;
  in.probe_points = SurgeStageProbes(1, 2.0, kEpsMax, kBNoise, 4, rng);
  std::vector<PooledSurfaceFit> full;
  const auto rows = PooledHoldOut(in, {}, &full);
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 12u);
  ASSERT_EQ(full.size(), 1u);
  for (const PooledHoldOutRow& r : *rows) {
    EXPECT_TRUE(r.pooled_note.empty()) << r.pooled_note;
    if (r.two_step.kind != HoldOutKind::kInterior) continue;
    EXPECT_NEAR(r.pooled_ln, SurgeLnLr(kEpsMax, kBNoise, r.two_step.batch_size), 0.25)
        << "B=" << r.two_step.batch_size;
    EXPECT_GT(r.share_pooled, 0.95) << "B=" << r.two_step.batch_size;
  }
  const MethodStats pooled = SummarizeMethod(*rows, HoldOutMethod::kPooled, 1);
  const MethodStats avg = SummarizeMethod(*rows, HoldOutMethod::kAveraged, 1);
  const MethodStats surge = SummarizeMethod(*rows, HoldOutMethod::kSurge, 1);
  std::printf("pooled |err| %.3f rms %.3f share %.4f worst %.4f; avg |err| %.3f share %.4f; "
              "surge |err| %.3f share %.4f\n",
              pooled.mean_abs_err, pooled.rms_err, pooled.mean_share, pooled.worst_share,
              avg.mean_abs_err, avg.mean_share, surge.mean_abs_err, surge.mean_share);
  EXPECT_EQ(pooled.n, 10);
  EXPECT_EQ(avg.n, 10);
  EXPECT_EQ(surge.n, 10);
  EXPECT_LT(pooled.rms_err, 0.2);

  // Moving B = 256's probes 10x to the right changes nothing in its prediction.
  JobInput moved = in;
  for (ProbePoint& p : moved.probe_points) {
    if (p.batch_size == 256) p.lr *= 10.0;
  }
  const auto rows2 = PooledHoldOut(moved);
  ASSERT_TRUE(rows2.ok()) << rows2.status();
  bool found = false;
  for (size_t i = 0; i < rows->size(); ++i) {
    if ((*rows)[i].two_step.batch_size != 256) continue;
    for (const PooledHoldOutRow& r2 : *rows2) {
      if (r2.two_step.batch_size != 256) continue;
      found = true;
      EXPECT_DOUBLE_EQ((*rows)[i].pooled_ln, r2.pooled_ln);
    }
  }
  EXPECT_TRUE(found);
}

// share = interpolated seed mean / best seed mean, clamped at the grid edges.
TEST(ShareOfBestTest, InterpolatesAndClamps) {
  std::vector<ProbePoint> pts;
  const double lrs[] = {1e-3, 2e-3, 4e-3};
  const double means[] = {0.5, 1.0, 0.25};
  for (int j = 0; j < 3; ++j) {
    for (int s = 0; s < 2; ++s) {
      ProbePoint p;
      p.batch_size = 8;
      p.lr = lrs[j];
      p.seed = s;
      p.improvement = means[j] + (s == 0 ? 0.1 : -0.1);
      pts.push_back(p);
    }
  }
  EXPECT_DOUBLE_EQ(ShareOfBest(pts, std::log(2e-3)), 1.0);
  EXPECT_NEAR(ShareOfBest(pts, 0.5 * (std::log(1e-3) + std::log(2e-3))), 0.75, 1e-12);
  EXPECT_NEAR(ShareOfBest(pts, std::log(1e-5)), 0.5, 1e-12);
  EXPECT_NEAR(ShareOfBest(pts, std::log(1.0)), 0.25, 1e-12);
  EXPECT_TRUE(std::isnan(ShareOfBest(pts, NAN)));
  EXPECT_TRUE(std::isnan(ShareOfBest({}, 0.0)));
}

// Too little data fails with kFailedPrecondition naming the problem; bad
// input with kInvalidArgument.
TEST(PooledSurfaceTest, TooLittleDataFailsLoudly) {
  EXPECT_EQ(FitPooledSurface({}).status().code(), absl::StatusCode::kFailedPrecondition);

  std::mt19937_64 rng(1);
  auto law = [](double b) { return SurgeLnLr(kEpsMax, kBNoise, b); };
  const auto two = FitPooledSurface(Probes({64, 512}, law, 4, rng));
  ASSERT_EQ(two.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(two.status().message().find("need >= 3 usable batch sizes, have 2"), std::string::npos)
      << two.status();

  // Optima far above the grid: every argmax on the high edge (censored).
  auto high = [](double) { return std::log(1e-2); };
  const auto edge = FitPooledSurface(Probes({16, 64, 256, 1024}, high, 4, rng));
  ASSERT_EQ(edge.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(edge.status().message().find("censored"), std::string::npos) << edge.status();

  // Two LRs per batch size.
  std::vector<ProbePoint> few;
  for (const ProbePoint& p : Probes({16, 64, 256, 1024}, law, 2, rng)) {
    if (p.lr < 5e-5) few.push_back(p);
  }
  const auto f = FitPooledSurface(few);
  ASSERT_EQ(f.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(f.status().message().find("need >= 3 distinct learning rates"), std::string::npos)
      << f.status();

  std::vector<ProbePoint> bad = Probes({16, 64, 256, 1024}, law, 2, rng);
  bad[3].lr = -1.0;
  EXPECT_EQ(FitPooledSurface(bad).status().code(), absl::StatusCode::kInvalidArgument);
  std::vector<ProbePoint> mixed = Probes({16, 64, 256, 1024}, law, 2, rng);
  mixed.back().stage_id = 2;
  EXPECT_EQ(FitPooledSurface(mixed).status().code(), absl::StatusCode::kInvalidArgument);
  PooledOptions narrow;
  narrow.window = 2;
  EXPECT_EQ(FitPooledSurface(Probes({16, 64, 256, 1024}, law, 2, rng), narrow).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace surge::fit
