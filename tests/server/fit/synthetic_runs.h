// Synthetic plain-run sweeps from a known law, for the run-evidence tests
// (run_evidence_test.cc, steps_optimum_test.cc).
//
// The law (per run at batch size B, LR lr, with a per-run factor n_run):
//
//   t(L) = S_min(L) (1 + B_noise / B) exp(kappa (ln lr - ln eps_opt(B))^2) n_run,
//   S_min(L) = c L^-p                      (monotone: steps to L at B -> inf),
//   eps_opt(B) = eps_max / cosh(ln(B / B_noise) / 2)   (the surge law),
//   ln n_run ~ N(0, sigma_run)             (one draw per run, all losses).
//
// eps_opt(B) does not depend on L, so both criteria share the optimum: the
// fewest steps to any L* is at eps_opt(B), and the k-step improvement after
// L*, L(S) - L(S + k), is a decreasing function of S, so it peaks there too.
// A run records every step t = 1..T; its loss L(t) inverts t(L): with
// A = t(L) / S_min(L) the run's slowdown, L(t) = S_min^-1(t / A), found by
// bisection in ln L (LossAtStepsBisection; the tests check it against the
// closed form (c A / t)^(1/p), which the generator uses for speed, with
// t^(-1/p) tabulated once per sweep).
//
// Reports: kEval: eval_loss = L(t) exp(N(0, eval_noise)) at every
// `eval_every`-th step (NaN elsewhere), training loss L(t) exp(N(0,
// train_noise)); kTrainingOnly: eval_loss NaN everywhere, training loss
// L(t) exp(N(0, train_noise)), times spike_factor on a fraction spike_prob
// of the records (heavy-tailed: loss spikes only go up).
// Schedules (LrSchedule) change only the recorded LR: the loss follows the
// law at the run's peak LR (runs of one shared shape are ordered by it).
//
// Each run has its own engine (sweep seed, grid position), so the same seed
// gives the same runs whatever the reporting options.
#ifndef SURGE_TESTS_SERVER_FIT_SYNTHETIC_RUNS_H_
#define SURGE_TESTS_SERVER_FIT_SYNTHETIC_RUNS_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/fit/run_evidence.h"
#include "tests/server/fit/synthetic.h"

namespace surge::fit::synth {

struct RunLaw {
  double eps_max = 3e-3;
  double b_noise = 64.0;
  double kappa = 0.3;       // curvature of ln S in ln lr
  double c = 60.0;          // S_min(L) = c L^-p
  double p = 2.5;
  double sigma_run = 0.05;  // SD of ln S between runs (seeds)

  double LnEpsOpt(double batch) const { return SurgeLnLr(eps_max, b_noise, batch); }
  double SMin(double loss) const { return c * std::pow(loss, -p); }
  // ln A: the noise-free slowdown of a run against S_min.
  double LnSlowdown(double batch, double lr) const {
    const double u = std::log(lr) - LnEpsOpt(batch);
    return std::log1p(b_noise / batch) + kappa * u * u;
  }
  // Noise-free steps to reach `loss`.
  double Steps(double loss, double batch, double lr) const {
    return SMin(loss) * std::exp(LnSlowdown(batch, lr));
  }
};

// The loss L with S_min(L) * slowdown = t, by bisection in ln L (S_min is
// decreasing in L).
inline double LossAtStepsBisection(const RunLaw& law, double slowdown, double t) {
  double lo = -30.0, hi = 30.0;  // ln L
  for (int i = 0; i < 200 && hi - lo > 1e-13; ++i) {
    const double mid = 0.5 * (lo + hi);
    if (law.SMin(std::exp(mid)) * slowdown > t) {
      lo = mid;  // mid is not reached by step t: L(t) > mid
    } else {
      hi = mid;
    }
  }
  return std::exp(0.5 * (lo + hi));
}
// The same in closed form for S_min = c L^-p.
inline double LossAtStepsClosedForm(const RunLaw& law, double slowdown, double t) {
  return std::pow(law.c * slowdown / t, 1.0 / law.p);
}

enum class LossReport { kEval, kTrainingOnly };
// kWarmupCosine: linear warmup over 5% of the run to the peak, then a cosine
// to 0.1 x peak; kWarmupConstant: the same warmup, then the peak. (A linear
// decay is not a second shape: it stays within 0.1 of the cosine.)
enum class LrSchedule { kConstant, kWarmupCosine, kWarmupConstant };

// The LR multiplier of a schedule at step t of T (peak 1, reached exactly).
inline double ScheduleFactor(LrSchedule s, int64_t t, int64_t total) {
  if (s == LrSchedule::kConstant) return 1.0;
  const double warm = 0.05 * static_cast<double>(total);
  const double x = static_cast<double>(t);
  if (x < warm) return x / warm;
  if (s == LrSchedule::kWarmupConstant) return 1.0;
  const double f = (x - warm) / (static_cast<double>(total) - warm);
  return 0.1 + 0.9 * 0.5 * (1.0 + std::cos(M_PI * f));
}

// N(0, sd), or 0 when sd is 0 (std::normal_distribution needs sd > 0).
inline double Gauss(double sd, std::mt19937_64& rng) {
  if (!(sd > 0.0)) return 0.0;
  return std::normal_distribution<double>(0.0, sd)(rng);
}

struct SweepSpec {
  RunLaw law;
  std::vector<double> batches = {4, 10, 25, 64, 160, 400, 1024};
  // LR grid; empty: 7 LRs half a decade apart, centred (in ln) on the middle
  // of eps_opt's range over the batch sizes.
  std::vector<double> lrs;
  int seeds = 2;
  int64_t steps = 1500;  // T: every run records steps 1..T
  LossReport report = LossReport::kEval;
  double eval_noise = 0.001;  // SD of ln eval loss
  int eval_every = 1;
  double train_noise = 0.02;  // SD of ln training loss
  double spike_prob = 0.02;   // kTrainingOnly: fraction of spiked records
  double spike_factor = 4.0;  // +300%
  LrSchedule schedule = LrSchedule::kConstant;
  bool declare_base_lr = false;  // base_lr = the run's (peak) LR
};

inline std::vector<double> DefaultLrs(const SweepSpec& spec) {
  if (!spec.lrs.empty()) return spec.lrs;
  double lo = HUGE_VAL, hi = -HUGE_VAL;
  for (double b : spec.batches) {
    lo = std::min(lo, spec.law.LnEpsOpt(b));
    hi = std::max(hi, spec.law.LnEpsOpt(b));
  }
  const double centre = 0.5 * (lo + hi), step = 0.5 * std::log(10.0);
  std::vector<double> lrs;
  for (int j = -3; j <= 3; ++j) lrs.push_back(std::exp(centre + j * step));
  return lrs;
}

// t^(-1/p) for t = 0..T (the closed form's step factor, shared by the runs
// of a sweep: L(t) = (c A)^(1/p) t^(-1/p)).
inline std::vector<double> StepFactors(const RunLaw& law, int64_t steps) {
  std::vector<double> f(static_cast<size_t>(steps) + 1, HUGE_VAL);
  for (int64_t t = 1; t <= steps; ++t) f[t] = std::pow(static_cast<double>(t), -1.0 / law.p);
  return f;
}

// One run of the sweep. `n_run` is the run's factor (exp(N(0, sigma_run))).
// `step_factors`: StepFactors(spec.law, spec.steps), or null to compute them.
inline RunSeries MakeRun(const SweepSpec& spec, double batch, double lr, int64_t seed,
                         double n_run, std::mt19937_64& rng,
                         const std::vector<double>* step_factors = nullptr) {
  std::vector<double> own;
  if (step_factors == nullptr) {
    own = StepFactors(spec.law, spec.steps);
    step_factors = &own;
  }
  RunSeries r;
  r.name = absl::StrCat("b", batch, "-lr", lr, "-s", seed);
  r.batch_size = batch;
  r.base_lr = spec.declare_base_lr ? lr : 0.0;
  r.seed = seed;
  const double slowdown = std::exp(spec.law.LnSlowdown(batch, lr)) * n_run;
  const double scale = std::pow(spec.law.c * slowdown, 1.0 / spec.law.p);
  std::normal_distribution<double> unit(0.0, 1.0);
  std::uniform_real_distribution<double> unif(0.0, 1.0);
  const size_t n = static_cast<size_t>(spec.steps);
  r.steps.reserve(n);
  r.examples.reserve(n);
  r.lr.reserve(n);
  r.loss.reserve(n);
  r.eval_loss.reserve(n);
  for (int64_t t = 1; t <= spec.steps; ++t) {
    const double l = scale * (*step_factors)[t];  // = LossAtStepsClosedForm(law, slowdown, t)
    r.steps.push_back(t);
    r.examples.push_back(static_cast<double>(t) * batch);
    r.lr.push_back(lr * ScheduleFactor(spec.schedule, t, spec.steps));
    double train = spec.train_noise > 0.0 ? l * std::exp(spec.train_noise * unit(rng)) : l;
    if (spec.report == LossReport::kTrainingOnly && unif(rng) < spec.spike_prob) {
      train *= spec.spike_factor;
    }
    r.loss.push_back(train);
    const bool eval = spec.report == LossReport::kEval && t % spec.eval_every == 0;
    double ev = NAN;
    if (eval) ev = spec.eval_noise > 0.0 ? l * std::exp(spec.eval_noise * unit(rng)) : l;
    r.eval_loss.push_back(ev);
  }
  return r;
}

// The whole sweep: batches x LRs x seeds runs, deterministic in `seed`.
// Each run has its own engine (seeded by the sweep seed and the run's grid
// position), so a run's factor n_run and its noise do not depend on the
// other runs or on the reporting options: the same `seed` gives the same
// runs with eval or training-only losses.
inline std::vector<RunSeries> PlainRunSweep(const SweepSpec& spec, uint64_t seed) {
  std::vector<RunSeries> runs;
  const std::vector<double> lrs = DefaultLrs(spec);
  const std::vector<double> factors = StepFactors(spec.law, spec.steps);
  for (size_t i = 0; i < spec.batches.size(); ++i) {
    for (size_t j = 0; j < lrs.size(); ++j) {
      for (int s = 0; s < spec.seeds; ++s) {
        std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
                          static_cast<uint32_t>(i), static_cast<uint32_t>(j),
                          static_cast<uint32_t>(s)};
        std::mt19937_64 rng(seq);
        const double n_run = std::exp(Gauss(spec.law.sigma_run, rng));
        runs.push_back(MakeRun(spec, spec.batches[i], lrs[j], s, n_run, rng, &factors));
      }
    }
  }
  return runs;
}

}  // namespace surge::fit::synth

#endif  // SURGE_TESTS_SERVER_FIT_SYNTHETIC_RUNS_H_
