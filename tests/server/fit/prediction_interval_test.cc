// Tests of the prediction interval (models.h, "Scatter"; holdout.h): when
// the true optima scatter around the law by more than their measurement
// errors, the held-out measured optima fall inside the advice's 95%
// prediction interval (allowing for their own error) at about the nominal
// rate, where the curve-only interval misses many; when they do not scatter,
// the prediction interval is no wider than the curve's.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "server/fit/advise.h"
#include "server/fit/fit_job.h"
#include "server/fit/holdout.h"
#include "server/fit/models.h"
#include "tests/server/fit/synthetic.h"

namespace surge::fit {
namespace {

using synth::PowersOfTwo;
using synth::SurgeLnLr;

constexpr double kEpsMax = 1e-3;
constexpr double kBNoise = 256.0;

// One stage of measured optima: true optimum = law + N(0, scatter_sd),
// measured = true + N(0, se), reported with SE se. `truth` gets the true
// optima (ln) by batch size order.
JobInput ScatteredJob(double scatter_sd, double se, std::mt19937_64& rng,
                      std::vector<double>* truth) {
  std::normal_distribution<double> u(0.0, scatter_sd), e(0.0, se);
  JobInput in;
  for (double b : PowersOfTwo(1, 12)) {
    const double t = SurgeLnLr(kEpsMax, kBNoise, b) + (scatter_sd > 0 ? u(rng) : 0.0);
    truth->push_back(t);
    MeasuredOptimum m;
    m.stage_id = 1;
    m.stage_loss = 1.0;
    m.batch_size = b;
    m.lr_opt = std::exp(t + e(rng));
    m.lr_opt_se = se * m.lr_opt;
    in.measured_optima.push_back(m);
  }
  return in;
}

struct Coverage {
  int n = 0;
  int consistent = 0;        // |y - mu| <= 1.96 sqrt(se_pred^2 + s^2)
  int curve_consistent = 0;  // the same with the curve-only SE
  int true_inside = 0;       // the true optimum inside the prediction interval
  int true_curve_inside = 0;
  std::vector<double> width, curve_width;  // ln hi/lo
};

Coverage RunCoverage(double scatter_sd, double se, int seeds, uint64_t seed0) {
  Coverage c;
  for (int seed = 0; seed < seeds; ++seed) {
    std::mt19937_64 rng(seed0 + seed);
    std::vector<double> truth;
    const JobInput in = ScatteredJob(scatter_sd, se, rng, &truth);
    const auto results = HoldOutCheck(in);
    EXPECT_TRUE(results.ok()) << results.status();
    if (!results.ok()) continue;
    for (const HoldOutResult& r : *results) {
      if (r.kind != HoldOutKind::kInterior) continue;
      const HoldOutPrediction& a = r.averaged;
      const int i = static_cast<int>(std::lround(std::log2(r.batch_size))) - 1;
      const double t = truth[i], y = r.ln_measured, s = r.ln_measured_se;
      ++c.n;
      c.consistent += a.consistent;
      c.curve_consistent +=
          std::fabs(y - a.ln_mean) <= kZ95 * std::sqrt(a.ln_curve_se * a.ln_curve_se + s * s);
      c.true_inside += std::fabs(t - a.ln_mean) <= kZ95 * a.ln_se;
      c.true_curve_inside += std::fabs(t - a.ln_mean) <= kZ95 * a.ln_curve_se;
      c.width.push_back(2 * kZ95 * a.ln_se);
      c.curve_width.push_back(2 * kZ95 * a.ln_curve_se);
    }
  }
  return c;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? NAN : v[v.size() / 2];
}

TEST(PredictionIntervalTest, CoversOptimaThatScatterAroundTheLaw) {
  // Real optima scatter by 0.25 in ln (a factor 1.28) around the law; each
  // is measured with an SE of 0.08.
  const Coverage c = RunCoverage(0.25, 0.08, 150, 7000);
  std::printf(
      "scatter 0.25, se 0.08: %d interior; measured within the prediction interval (error "
      "allowed) %d, curve-only %d; true optimum inside the prediction interval %d, curve-only "
      "%d; median width (hi/lo) %.2f prediction, %.2f curve\n",
      c.n, c.consistent, c.curve_consistent, c.true_inside, c.true_curve_inside,
      std::exp(Median(c.width)), std::exp(Median(c.curve_width)));
  ASSERT_GT(c.n, 1000);
  EXPECT_GE(c.consistent, 0.90 * c.n);
  EXPECT_LE(c.consistent, 0.995 * c.n) << "intervals far too wide";
  EXPECT_GE(c.true_inside, 0.90 * c.n);
  EXPECT_LT(c.curve_consistent, 0.80 * c.n) << "the curve-only interval should miss here";
}

// The whole pipeline from raw probes: each batch size's true optimum
// scatters by 0.2 in ln around the surge law, and is measured from a grid of
// 16 LRs x 4 seeds (per-B quadratic vertex, its seed-spread SE), so the
// prediction interval must allow for both the scatter and the per-B SEs.
TEST(PredictionIntervalTest, CoversScatteredOptimaMeasuredFromProbes) {
  int n = 0, consistent = 0, curve_consistent = 0;
  for (int seed = 0; seed < 40; ++seed) {
    std::mt19937_64 rng(9000 + seed);
    std::normal_distribution<double> u(0.0, 0.2);
    JobInput in;
    const std::vector<double> lrs = synth::LrGrid(2e-5, std::sqrt(2.0), 18);
    for (double b : PowersOfTwo(3, 14)) {
      const double height = 0.5 / (1.0 + kBNoise / b);
      const double sd = 0.02 * height * std::sqrt(64.0 / b) + 0.002 * height;
      const double ln_opt = SurgeLnLr(kEpsMax, kBNoise, b) + u(rng);
      const auto g = synth::ProbeGrid(1, 1.0, b, ln_opt, lrs, 4, height, 1.0, sd, rng);
      in.probe_points.insert(in.probe_points.end(), g.begin(), g.end());
    }
    const auto results = HoldOutCheck(in);
    ASSERT_TRUE(results.ok()) << results.status();
    for (const HoldOutResult& r : *results) {
      if (r.kind != HoldOutKind::kInterior) continue;
      const HoldOutPrediction& a = r.averaged;
      const double s = r.ln_measured_se;
      ++n;
      consistent += a.consistent;
      curve_consistent += std::fabs(r.ln_measured - a.ln_mean) <=
                          kZ95 * std::sqrt(a.ln_curve_se * a.ln_curve_se + s * s);
    }
  }
  std::printf("probes, scatter 0.2: %d interior; within the prediction interval (error allowed) "
              "%d, curve-only %d\n",
              n, consistent, curve_consistent);
  ASSERT_GT(n, 300);
  EXPECT_GE(consistent, 0.90 * n);
  EXPECT_LT(curve_consistent, consistent);
}

TEST(PredictionIntervalTest, NoWiderThanTheCurveWithoutScatter) {
  const Coverage c = RunCoverage(0.0, 0.08, 100, 8000);
  const double w = std::exp(Median(c.width)), cw = std::exp(Median(c.curve_width));
  std::printf("no scatter, se 0.08: %d interior; within %d; median width %.3f prediction, %.3f "
              "curve\n",
              c.n, c.consistent, w, cw);
  EXPECT_GE(c.consistent, 0.90 * c.n);
  EXPECT_LT(Median(c.width), 1.15 * Median(c.curve_width));
}

TEST(PredictionIntervalTest, ScatterIsEstimatedNotAssumed) {
  std::mt19937_64 rng(11);
  std::vector<double> truth;
  const auto fit = FitJob(ScatteredJob(0.3, 0.05, rng, &truth));
  ASSERT_TRUE(fit.ok()) << fit.status();
  const ModelFit& surge = fit->stages[0].models.Get(ModelKind::kSurge);
  EXPECT_GT(std::sqrt(surge.tau2), 0.15);
  EXPECT_LT(std::sqrt(surge.tau2), 0.5);
  // Advice carries it: the prediction interval is wider than the curve's.
  const auto adv = Advise(*fit, 100.0, std::nullopt);
  ASSERT_TRUE(adv.ok()) << adv.status();
  EXPECT_GT(adv->ln_lr_se, 1.5 * adv->ln_lr_curve_se);
  EXPECT_LE(adv->lr_ci95.lo, adv->lr_curve_ci95.lo);
  EXPECT_GE(adv->lr_ci95.hi, adv->lr_curve_ci95.hi);

  std::mt19937_64 rng2(12);
  truth.clear();
  const auto clean = FitJob(ScatteredJob(0.0, 0.05, rng2, &truth));
  ASSERT_TRUE(clean.ok());
  EXPECT_LT(std::sqrt(clean->stages[0].models.Get(ModelKind::kSurge).tau2), 0.05);
}

TEST(PredictionIntervalTest, PauleMandelSolvesItsEquation) {
  // Residuals 0.3, -0.3, 0.3, -0.3, 0.3 with s = 0.1 and p = 1:
  // 5 * 0.09 / (0.01 + tau2) = 4  ->  tau2 = 0.1025.
  std::vector<FitPoint> pts(5);
  std::vector<double> f(5);
  for (int i = 0; i < 5; ++i) {
    pts[i].x = i;
    pts[i].y = (i % 2 ? -0.3 : 0.3);
    pts[i].s = 0.1;
    f[i] = 0.0;
  }
  EXPECT_NEAR(ScatterVariance(pts, f.data(), 1.0), 0.1025, 1e-9);
  // Within their errors: no scatter.
  for (auto& p : pts) p.y *= 0.1;
  EXPECT_EQ(ScatterVariance(pts, f.data(), 1.0), 0.0);
  // The t factor for few degrees of freedom.
  EXPECT_NEAR(ScatterForPrediction(0.1, 5, 2.0), 0.1 * std::pow(3.182 / kZ95, 2), 1e-9);
  EXPECT_EQ(ScatterForPrediction(0.0, 5, 2.0), 0.0);
}

}  // namespace
}  // namespace surge::fit
