// Synthetic data with known truth for the server/fit tests: optima drawn from
// a known curve with multiplicative noise, and raw probe grids whose
// improvement peaks at a known LR.
#ifndef SURGE_TESTS_SERVER_FIT_SYNTHETIC_H_
#define SURGE_TESTS_SERVER_FIT_SYNTHETIC_H_

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "server/fit/fit_job.h"
#include "server/fit/fit_types.h"
#include "server/fit/model_curve.h"
#include "server/fit/optimum.h"

namespace surge::fit::synth {

// Batch sizes 2^lo .. 2^hi (step 2^step_log2).
inline std::vector<double> PowersOfTwo(int lo, int hi, int step_log2 = 1) {
  std::vector<double> b;
  for (int e = lo; e <= hi; e += step_log2) b.push_back(std::ldexp(1.0, e));
  return b;
}

// ln eps_opt of the surge law.
inline double SurgeLnLr(double eps_max, double b_noise, double batch) {
  return std::log(eps_max) - LogCosh(0.5 * (std::log(batch) - std::log(b_noise)));
}

// Optima y_i = f(ln B_i) + N(0, noise_sd) (multiplicative noise on eps_opt),
// reported with SE `reported_se`.
inline std::vector<FitPoint> NoisyOptima(ModelKind kind, const std::vector<double>& params,
                                         const std::vector<double>& batches, double noise_sd,
                                         double reported_se, std::mt19937_64& rng) {
  std::normal_distribution<double> noise(0.0, noise_sd);
  std::vector<FitPoint> pts;
  for (double b : batches) {
    FitPoint p;
    p.x = std::log(b);
    p.y = EvalCurve(kind, p.x, params.data()) + noise(rng);
    p.s = reported_se;
    pts.push_back(p);
  }
  return pts;
}

// Measured optima of one stage from a known surge law.
inline std::vector<MeasuredOptimum> MeasuredSurge(int64_t stage, double loss, double eps_max,
                                                  double b_noise,
                                                  const std::vector<double>& batches,
                                                  double noise_sd, std::mt19937_64& rng) {
  std::normal_distribution<double> noise(0.0, noise_sd);
  std::vector<MeasuredOptimum> out;
  for (double b : batches) {
    MeasuredOptimum m;
    m.stage_id = stage;
    m.stage_loss = loss;
    m.batch_size = b;
    m.lr_opt = std::exp(SurgeLnLr(eps_max, b_noise, b) + noise(rng));
    m.lr_opt_se = noise_sd * m.lr_opt;
    out.push_back(m);
  }
  return out;
}

// Raw probe points at one batch size: for each LR of the grid and each seed,
//   dL = height * exp(-(ln lr - ln_lr_opt)^2 / (2 width^2)) + N(0, noise_sd).
inline std::vector<ProbePoint> ProbeGrid(int64_t stage, double loss, double batch,
                                         double ln_lr_opt, const std::vector<double>& lrs,
                                         int seeds, double height, double width,
                                         double noise_sd, std::mt19937_64& rng) {
  std::normal_distribution<double> noise(0.0, noise_sd);
  std::vector<ProbePoint> out;
  for (double lr : lrs) {
    const double d = std::log(lr) - ln_lr_opt;
    for (int s = 0; s < seeds; ++s) {
      ProbePoint p;
      p.stage_id = stage;
      p.stage_loss = loss;
      p.batch_size = batch;
      p.lr = lr;
      p.seed = s;
      p.improvement = height * std::exp(-d * d / (2.0 * width * width)) + noise(rng);
      out.push_back(p);
    }
  }
  return out;
}

// LR grid lr_j = lr0 * ratio^j, j = 0..n-1.
inline std::vector<double> LrGrid(double lr0, double ratio, int n) {
  std::vector<double> v;
  for (int j = 0; j < n; ++j) v.push_back(lr0 * std::pow(ratio, j));
  return v;
}

// A full stage of probes from a surge law: 12 batch sizes 2^3..2^14, 16 LRs
// 3e-5 * sqrt(2)^j, `seeds` seeds; improvement height dL_max / (1 + B_noise / B)
// and seed noise shrinking as 1 / sqrt(B).
inline std::vector<ProbePoint> SurgeStageProbes(int64_t stage, double loss, double eps_max,
                                                double b_noise, int seeds,
                                                std::mt19937_64& rng) {
  std::vector<ProbePoint> out;
  const std::vector<double> lrs = LrGrid(3e-5, std::sqrt(2.0), 16);
  for (double b : PowersOfTwo(3, 14)) {
    const double height = 0.5 / (1.0 + b_noise / b);
    const double sd = 0.02 * height * std::sqrt(64.0 / b) + 0.002 * height;
    std::vector<ProbePoint> g = ProbeGrid(stage, loss, b, SurgeLnLr(eps_max, b_noise, b), lrs,
                                          seeds, height, 1.0, sd, rng);
    out.insert(out.end(), g.begin(), g.end());
  }
  return out;
}

// A job of one stage of measured optima from a surge law (eps_max 1e-3,
// B_noise 400) and a plain-run loss curve over steps 0..10000.
inline JobInput GoodJob(std::mt19937_64& rng) {
  JobInput in;
  in.measured_optima = MeasuredSurge(1, 2.0, 1e-3, 400.0, PowersOfTwo(3, 14), 0.05, rng);
  for (int64_t t = 0; t <= 10000; t += 50) {
    in.loss_curve.push_back({t, 1.5 + 5.0 / std::sqrt(1.0 + t)});
  }
  return in;
}

}  // namespace surge::fit::synth

#endif  // SURGE_TESTS_SERVER_FIT_SYNTHETIC_H_
