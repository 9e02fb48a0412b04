// Tests of server/fit/steps_optimum: the "fastest" optimum at one batch size
// (a censored-aware quadratic of ln S against ln lr), on hand-made points.
#include "server/fit/steps_optimum.h"

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "Eigen/Dense"
#include "gtest/gtest.h"

namespace surge::fit {
namespace {

constexpr double kBatch = 64.0;

StepsPoint Reached(double lr, double steps, int64_t seed = 0, double batch = kBatch) {
  StepsPoint p;
  p.stage_id = 1;
  p.stage_loss = 2.0;
  p.batch_size = batch;
  p.lr = lr;
  p.seed = seed;
  p.steps = steps;
  p.examples = steps * batch;
  p.reached = true;
  return p;
}

StepsPoint Censored(double lr, double last_step, int64_t seed = 0, double batch = kBatch) {
  StepsPoint p = Reached(lr, last_step, seed, batch);
  p.reached = false;
  return p;
}

// LRs lr0 * 2^j, j = 0..n-1 (ln step 0.693).
std::vector<double> Grid(int n, double lr0 = 1e-4) {
  std::vector<double> v;
  for (int j = 0; j < n; ++j) v.push_back(lr0 * std::ldexp(1.0, j));
  return v;
}

// ln S = c0 + c2 (ln lr - x0)^2 for every LR, seeds at +-delta (the seed
// means lie exactly on the parabola).
std::vector<StepsPoint> ExactParabola(const std::vector<double>& lrs, double x0, double c0,
                                      double c2, double delta) {
  std::vector<StepsPoint> pts;
  for (double lr : lrs) {
    const double d = std::log(lr) - x0;
    pts.push_back(Reached(lr, std::exp(c0 + c2 * d * d + delta), 0));
    pts.push_back(Reached(lr, std::exp(c0 + c2 * d * d - delta), 1));
  }
  return pts;
}

// The vertex of an exact parabola, on a grid point and between grid points;
// counts and the fitted steps at the optimum.
TEST(StepsOptimumTest, ExactParabolaRecovered) {
  const std::vector<double> lrs = Grid(8);
  for (double x0 : {std::log(1e-3), std::log(1.3e-3), std::log(8e-4), std::log(3.1e-3)}) {
    SCOPED_TRACE(::testing::Message() << "x0=" << x0);
    const auto opt = ExtractFastestOptimum(ExactParabola(lrs, x0, 5.0, 0.3, 0.01));
    ASSERT_TRUE(opt.ok()) << opt.status();
    EXPECT_EQ(opt->censoring, Censoring::kNone);
    EXPECT_NEAR(opt->ln_lr_opt, x0, 1e-9);
    EXPECT_EQ(opt->se_source, SeSource::kQuadraticResidual);
    EXPECT_GT(opt->ln_lr_opt_se, 0.0);
    EXPECT_NEAR(opt->steps_at_opt, std::exp(5.0), 1e-6 * std::exp(5.0));
    EXPECT_EQ(opt->n_lrs, 8);
    EXPECT_EQ(opt->n_points, 16);
    EXPECT_EQ(opt->n_censored, 0);
    EXPECT_EQ(opt->n_seeds, 2);
    EXPECT_EQ(opt->batch_size, kBatch);
  }
}

// The SE is the documented formula: the quadratic over the 5 grid LRs around
// the fastest one, sigma^2 = RSS / (n - 3), the delta method for the vertex,
// times t_0.975(n - 3) / z_0.975. Recomputed here independently.
TEST(StepsOptimumTest, SeIsDeltaMethodTimesStudentT) {
  std::mt19937_64 rng(17);
  std::normal_distribution<double> noise(0.0, 0.05);
  const std::vector<double> lrs = Grid(9);
  const double x0 = std::log(1.7e-3);
  std::vector<StepsPoint> pts;
  for (double lr : lrs) {
    for (int s = 0; s < 2; ++s) {
      const double d = std::log(lr) - x0;
      pts.push_back(Reached(lr, std::exp(6.0 + 0.3 * d * d + noise(rng)), s));
    }
  }
  const auto opt = ExtractFastestOptimum(pts);
  ASSERT_TRUE(opt.ok()) << opt.status();
  // Fastest mean ln S: the grid LR nearest x0 (1.6e-3 = 1e-4 * 2^4, index 4).
  const double xk = std::log(lrs[4]);
  Eigen::Matrix3d a = Eigen::Matrix3d::Zero();
  Eigen::Vector3d rhs = Eigen::Vector3d::Zero();
  for (const StepsPoint& p : pts) {
    const double u = std::log(p.lr) - xk;
    if (std::fabs(u) > 2 * std::log(2.0) + 1e-9) continue;  // window of 5
    const Eigen::Vector3d f(1.0, u, u * u);
    a += f * f.transpose();
    rhs += std::log(p.steps) * f;
  }
  const Eigen::Vector3d c = a.inverse() * rhs;
  double rss = 0.0;
  int n = 0;
  for (const StepsPoint& p : pts) {
    const double u = std::log(p.lr) - xk;
    if (std::fabs(u) > 2 * std::log(2.0) + 1e-9) continue;
    const double r = std::log(p.steps) - (c(0) + c(1) * u + c(2) * u * u);
    rss += r * r;
    ++n;
  }
  ASSERT_EQ(n, 10);
  const Eigen::Vector3d g(0.0, -1.0 / (2 * c(2)), c(1) / (2 * c(2) * c(2)));
  const double se = std::sqrt(rss / (n - 3) * g.dot(a.inverse() * g));
  EXPECT_NEAR(opt->ln_lr_opt, xk - c(1) / (2 * c(2)), 1e-12);
  EXPECT_NEAR(opt->ln_lr_opt_se, se * 2.365 / kZ95, 1e-12);  // t_0.975(7) = 2.365
}

// Over 2000 replicate sweeps (2 seeds x 7 LRs, ln S noise 0.05) the 95%
// interval covers the true optimum at about the nominal rate (0.940).
// Without the t factor (sigma^2 has 7 degrees of freedom) it covered 0.897.
TEST(StepsOptimumTest, IntervalCoversTruth) {
  std::mt19937_64 rng(2024);
  std::normal_distribution<double> noise(0.0, 0.05);
  std::uniform_real_distribution<double> where(-0.35, 0.35);
  const std::vector<double> lrs = Grid(7);
  int covered = 0, n = 0;
  for (int rep = 0; rep < 2000; ++rep) {
    const double x0 = std::log(lrs[3]) + where(rng);
    std::vector<StepsPoint> pts;
    for (double lr : lrs) {
      for (int s = 0; s < 2; ++s) {
        const double d = std::log(lr) - x0;
        pts.push_back(Reached(lr, std::exp(6.0 + 0.3 * d * d + noise(rng)), s));
      }
    }
    const auto opt = ExtractFastestOptimum(pts);
    ASSERT_TRUE(opt.ok()) << opt.status();
    if (opt->censoring != Censoring::kNone) continue;
    ++n;
    covered += std::fabs(opt->ln_lr_opt - x0) <= kZ95 * opt->ln_lr_opt_se;
  }
  const double coverage = static_cast<double>(covered) / n;
  std::printf("fastest optimum: coverage %.3f over %d sweeps\n", coverage, n);
  EXPECT_GE(n, 1990);
  EXPECT_GE(coverage, 0.93);
  EXPECT_LE(coverage, 0.975);
}

// The fastest reached LR on the edge of the whole grid: a bound half a grid
// step inside; nothing was tried beyond it.
TEST(StepsOptimumTest, EdgeOfGridIsABound) {
  const std::vector<double> lrs = Grid(6);
  struct Case {
    double x0;
    Censoring want;
    double bound;
  } cases[] = {
      {std::log(lrs[0]) - 1.0, Censoring::kUpperBound, std::log(lrs[0]) + 0.5 * std::log(2.0)},
      {std::log(lrs[5]) + 1.0, Censoring::kLowerBound, std::log(lrs[5]) - 0.5 * std::log(2.0)},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << "x0=" << c.x0);
    const auto opt = ExtractFastestOptimum(ExactParabola(lrs, c.x0, 5.0, 0.3, 0.01));
    ASSERT_TRUE(opt.ok()) << opt.status();
    EXPECT_EQ(opt->censoring, c.want);
    EXPECT_NEAR(opt->ln_lr_opt, c.bound, 1e-12);
    EXPECT_NEAR(opt->ln_lr_opt_se, 0.5 * std::log(2.0), 1e-12);
    EXPECT_EQ(opt->se_source, SeSource::kGridStep);
  }
}

// Runs that never reached the target are counted (n_censored), not dropped,
// and an LR beyond the fastest reached LR that never got there (a diverged
// run) makes the optimum a point, not a bound: the optimum cannot lie beyond
// an LR too large to reach the target at all.
TEST(StepsOptimumTest, CensoredLrBeyondTheFastestMakesAPoint) {
  const std::vector<double> lrs = Grid(6);
  const double last = 3000.0;
  // Reached at LRs 0..2 (fastest at 2, the highest that reached), LRs 3..5
  // never reached (2 seeds each).
  const double ln_s[] = {7.0, 6.6, 6.4};
  struct Case {
    std::string name;
    bool censored_above, censored_below;
    Censoring want;
  } cases[] = {
      {"censored LRs above the fastest", true, false, Censoring::kNone},
      {"nothing tried above the fastest", false, false, Censoring::kLowerBound},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<StepsPoint> pts;
    for (int j = 0; j < 3; ++j) {
      pts.push_back(Reached(lrs[j], std::exp(ln_s[j] + 0.01), 0));
      pts.push_back(Reached(lrs[j], std::exp(ln_s[j] - 0.01), 1));
    }
    if (c.censored_above) {
      for (int j = 3; j < 6; ++j) {
        pts.push_back(Censored(lrs[j], last, 0));
        pts.push_back(Censored(lrs[j], last, 1));
      }
    }
    const auto opt = ExtractFastestOptimum(pts);
    ASSERT_TRUE(opt.ok()) << opt.status();
    EXPECT_EQ(opt->censoring, c.want);
    EXPECT_EQ(opt->n_lrs, 3);
    EXPECT_EQ(opt->n_points, 6);
    EXPECT_EQ(opt->n_censored, c.censored_above ? 6 : 0);
    if (c.want == Censoring::kNone) {
      // Between the fastest reached LR and the first LR that never reached.
      EXPECT_GE(opt->ln_lr_opt, std::log(lrs[1]));
      EXPECT_LE(opt->ln_lr_opt, std::log(lrs[3]));
      EXPECT_GT(opt->ln_lr_opt_se, 0.0);
    }
  }
}

// A censored run whose bound the parabola through the reached runs violates
// (it predicts ln S below the run's last step) enters the fit at ln T and
// moves the vertex; one whose bound is satisfied changes nothing.
TEST(StepsOptimumTest, ViolatedBoundsEnterTheFit) {
  const std::vector<double> lrs = Grid(5);  // u = -2..2 grid steps around index 2
  const double h = std::log(2.0);
  auto base = [&]() {
    std::vector<StepsPoint> pts;
    for (int j = 0; j < 4; ++j) {  // a flat symmetric parabola around index 2
      const double u = (j - 2) * h;
      pts.push_back(Reached(lrs[j], std::exp(5.0 + 0.1 * u * u + 0.01), 0));
      pts.push_back(Reached(lrs[j], std::exp(5.0 + 0.1 * u * u - 0.01), 1));
    }
    return pts;
  };
  // Reached only: vertex at index 2.
  const auto free_fit = ExtractFastestOptimum(base());
  ASSERT_TRUE(free_fit.ok()) << free_fit.status();
  EXPECT_NEAR(free_fit->ln_lr_opt, std::log(lrs[2]), 1e-9);
  // At index 4 the parabola predicts ln S = 5 + 0.1 (2h)^2 = 5.19.
  struct Case {
    double last_step;
    bool moves;
  } cases[] = {{std::exp(6.0), true}, {std::exp(5.1), false}};
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << "ln T=" << std::log(c.last_step));
    std::vector<StepsPoint> pts = base();
    pts.push_back(Censored(lrs[4], c.last_step, 0));
    pts.push_back(Censored(lrs[4], c.last_step, 1));
    const auto opt = ExtractFastestOptimum(pts);
    ASSERT_TRUE(opt.ok()) << opt.status();
    EXPECT_EQ(opt->censoring, Censoring::kNone);
    EXPECT_EQ(opt->n_censored, 2);
    if (c.moves) {
      // Steeper on the right: the vertex moves to lower LRs.
      EXPECT_LT(opt->ln_lr_opt, std::log(lrs[2]) - 0.05);
    } else {
      EXPECT_NEAR(opt->ln_lr_opt, std::log(lrs[2]), 1e-9);
    }
  }
}

// Without a usable vertex (too few runs for a residual variance, or a
// parabola that opens downwards) the grid argmin with an SE of one grid step.
TEST(StepsOptimumTest, GridFallback) {
  const std::vector<double> lrs = Grid(5);
  struct Case {
    std::string name;
    std::vector<StepsPoint> pts;
    double want;
  } cases[] = {
      {"one seed at 3 LRs (dof 0)",
       {Reached(lrs[0], 900), Reached(lrs[1], 400), Reached(lrs[2], 800)},
       std::log(lrs[1])},
      {"concave fit around an interior minimum",
       {Reached(lrs[0], std::exp(1.0)), Reached(lrs[1], std::exp(2.0)),
        Reached(lrs[2], std::exp(0.9)), Reached(lrs[3], std::exp(2.0)),
        Reached(lrs[4], std::exp(1.0))},
       std::log(lrs[2])},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const auto opt = ExtractFastestOptimum(c.pts);
    ASSERT_TRUE(opt.ok()) << opt.status();
    EXPECT_EQ(opt->censoring, Censoring::kNone);
    EXPECT_EQ(opt->se_source, SeSource::kGridStep);
    EXPECT_NEAR(opt->ln_lr_opt, c.want, 1e-12);
    EXPECT_NEAR(opt->ln_lr_opt_se, std::log(2.0), 1e-12);
  }
}

TEST(StepsOptimumTest, TooFewLrsReachTheTarget) {
  const std::vector<double> lrs = Grid(5);
  const std::vector<StepsPoint> pts = {
      Reached(lrs[1], 500, 0), Reached(lrs[1], 520, 1), Reached(lrs[2], 450, 0),
      Censored(lrs[0], 3000, 0), Censored(lrs[3], 3000, 0), Censored(lrs[3], 3000, 1),
      Censored(lrs[4], 3000, 0)};
  const auto opt = ExtractFastestOptimum(pts);
  ASSERT_FALSE(opt.ok());
  EXPECT_EQ(opt.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(opt.status().message().find(
                "batch size 64: need >= 3 learning rates that reach the target, have 2 "
                "(4 runs never reached it)"),
            std::string::npos)
      << opt.status();
}

TEST(StepsOptimumTest, BadPoints) {
  struct Case {
    std::string name;
    StepsPoint p;
    std::string message_part;
  } cases[] = {
      {"zero lr", Reached(0.0, 100), "lr must be finite and > 0"},
      {"nan lr", Reached(NAN, 100), "lr must be finite and > 0"},
      {"zero batch", Reached(1e-3, 100, 0, 0.0), "batch_size must be finite and > 0"},
      {"reached at step 0", Reached(1e-3, 0), "steps must be finite and > 0"},
      {"inf steps", Reached(1e-3, INFINITY), "steps must be finite and > 0"},
  };
  for (const Case& c : cases) {
    const auto opt = ExtractFastestOptimum({c.p, Reached(2e-3, 100), Reached(4e-3, 100)});
    ASSERT_FALSE(opt.ok()) << "case '" << c.name << "'";
    EXPECT_EQ(opt.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_NE(opt.status().message().find(c.message_part), std::string::npos)
        << "case '" << c.name << "': " << opt.status();
  }
  // A censored run at step 0 (no records past the start) is fine.
  EXPECT_TRUE(ValidateStepsPoint(Censored(1e-3, 0)).ok());
  const auto mixed = ExtractFastestOptimum({Reached(1e-3, 100), Reached(2e-3, 90, 0, 128.0)});
  EXPECT_EQ(mixed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ExtractFastestOptimum({}).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(StepsOptimumTest, StageGroupsBatchSizesAndSkipsThinOnes) {
  const std::vector<double> lrs = Grid(6);
  std::vector<StepsPoint> pts;
  for (double b : {256.0, 32.0}) {
    for (StepsPoint p : ExactParabola(lrs, std::log(8e-4), 5.0, 0.3, 0.01)) {
      p.batch_size = b;
      pts.push_back(p);
    }
  }
  pts.push_back(Reached(1e-3, 100, 0, 1024.0));
  pts.push_back(Censored(2e-3, 900, 0, 1024.0));
  const auto st = ExtractFastestStageOptima(pts);
  ASSERT_TRUE(st.ok()) << st.status();
  ASSERT_EQ(st->optima.size(), 2u);
  EXPECT_EQ(st->optima[0].batch_size, 32.0);
  EXPECT_EQ(st->optima[1].batch_size, 256.0);
  ASSERT_EQ(st->skipped.size(), 1u);
  EXPECT_NE(st->skipped[0].find("batch size 1024: need >= 3 learning rates that reach the "
                                "target, have 1 (1 runs never reached it)"),
            std::string::npos)
      << st->skipped[0];
}

}  // namespace
}  // namespace surge::fit
