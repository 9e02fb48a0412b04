#include "server/fit/run_evidence.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "gtest/gtest.h"
#include "server/fit/fit_job.h"
#include "tests/server/fit/synthetic_runs.h"

namespace surge::fit {
namespace {

void PrintSet(const char* name, const std::vector<StageFit>& stages, const synth::RunLaw& law) {
  for (const StageFit& st : stages) {
    std::printf("%s stage %lld L=%.4g runs=%d cens=%d ident=%s b=%.3f se=%.3f (true %.3f)\n", name,
                (long long)st.stage_id, st.stage_loss, st.n_runs, st.n_censored_runs,
                PeakIdentificationName(st.surge.identification), st.surge.ln_b_noise,
                st.surge.LnBNoise().se, std::log(law.b_noise));
    for (const auto& o : st.optima) {
      std::printf("   B=%6g y=%.3f se=%.3f true=%.3f z=%.2f cens=%d lrs=%d ncens=%d src=%d S=%.1f\n",
                  o.batch_size, o.ln_lr_opt, o.ln_lr_opt_se, law.LnEpsOpt(o.batch_size),
                  (o.ln_lr_opt - law.LnEpsOpt(o.batch_size)) / o.ln_lr_opt_se, (int)o.censoring,
                  o.n_lrs, o.n_censored, (int)o.se_source, o.steps_at_opt);
    }
    for (const auto& s : st.skipped) std::printf("   skipped: %s\n", s.c_str());
  }
}

TEST(Explore, One) {
  synth::SweepSpec spec;
  if (getenv("TRAIN") && *getenv("TRAIN")) spec.report = synth::LossReport::kTrainingOnly;
  const int seed = getenv("SEED") ? atoi(getenv("SEED")) : 1;
  JobInput in;
  in.runs = synth::PlainRunSweep(spec, seed);
  auto job = FitJob(in);
  ASSERT_TRUE(job.ok()) << job.status();
  for (auto& n : job->notes) std::printf("note: %s\n", n.c_str());
  PrintSet("impr", job->stages, spec.law);
  PrintSet("fast", job->fastest.stages, spec.law);
  for (auto& s : job->skipped_stages) std::printf("skipped impr %s\n", std::string(s.status.message()).c_str());
  for (auto& s : job->fastest.skipped) std::printf("skipped fast %s\n", std::string(s.status.message()).c_str());
}

TEST(Explore, Coverage) {
  const int nseeds = getenv("NSEEDS") ? atoi(getenv("NSEEDS")) : 0;
  if (!nseeds) return;
  synth::SweepSpec spec;
  if (getenv("TRAIN") && *getenv("TRAIN")) spec.report = synth::LossReport::kTrainingOnly;
  struct Acc { int n = 0, cov = 0; double sumz2 = 0; };
  Acc b[2], y[2];
  int not_ident[2] = {0, 0};
  auto t0 = std::chrono::steady_clock::now();
  for (int seed = 0; seed < nseeds; ++seed) {
    JobInput in;
    in.runs = synth::PlainRunSweep(spec, 1000 + seed);
    if (getenv("DECL")) in.run_options.targets = {1.5, 1.25};
    auto job = FitJob(in);
    ASSERT_TRUE(job.ok()) << job.status();
    for (int c = 0; c < 2; ++c) {
      const auto& stages = c == 0 ? job->stages : job->fastest.stages;
      for (const StageFit& st : stages) {
        if (st.surge.identification == PeakIdentification::kIdentified) {
          const auto e = st.surge.LnBNoise();
          const double z = (e.value - std::log(spec.law.b_noise)) / e.se;
          b[c].n++; b[c].cov += std::fabs(z) <= kZ95; b[c].sumz2 += z * z;
        } else {
          not_ident[c]++;
        }
        for (const auto& o : st.optima) {
          if (o.censoring != Censoring::kNone) continue;
          const double z = (o.ln_lr_opt - spec.law.LnEpsOpt(o.batch_size)) / o.ln_lr_opt_se;
          if (getenv("DUMP") && c == 1 && std::fabs(z) > 8) {
            std::vector<StepsPoint> pts;
            RunEvidenceOptions ro; ro.targets = {st.stage_loss};
            auto ev = BuildRunEvidence(in.runs, ro);
            for (auto& p : ev->steps_points) if (p.batch_size == o.batch_size) {
              std::printf("   seed %d lnlr %.3f u %.3f lnS %.4f reached %d\n", seed, std::log(p.lr), std::log(p.lr) - spec.law.LnEpsOpt(p.batch_size), std::log(p.steps), p.reached);
            }
            std::printf("   -> y %.4f se %.4f true %.4f\n", o.ln_lr_opt, o.ln_lr_opt_se, spec.law.LnEpsOpt(o.batch_size));
          }
          if (getenv("DUMP")) std::printf("DUMP %d %g %g %d %d %d %g %g\n", c, o.batch_size, st.stage_loss, o.n_lrs, o.n_censored, (int)o.se_source, z, o.ln_lr_opt_se);
          y[c].n++; y[c].cov += std::fabs(z) <= kZ95; y[c].sumz2 += z * z;
        }
      }
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (int c = 0; c < 2; ++c) {
    std::printf("%s: B_noise cov %d/%d=%.3f rmsz %.2f notident %d | y cov %d/%d=%.3f rmsz %.2f\n",
                c ? "fastest" : "improvement", b[c].cov, b[c].n, (double)b[c].cov / b[c].n,
                std::sqrt(b[c].sumz2 / b[c].n), not_ident[c], y[c].cov, y[c].n,
                (double)y[c].cov / y[c].n, std::sqrt(y[c].sumz2 / y[c].n));
  }
  std::printf("%.2f s\n", secs);
}

}  // namespace
}  // namespace surge::fit
namespace surge::fit {
TEST(Explore, Gen) {
  synth::SweepSpec spec;
  auto runs = synth::PlainRunSweep(spec, 1000);
  for (auto& r : runs) {
    if (r.batch_size != 4 && r.batch_size != 64) continue;
    int64_t s = -1;
    for (size_t i = 0; i < r.steps.size(); ++i) if (r.eval_loss[i] <= 1.23) { s = r.steps[i]; break; }
    std::printf("%s first=%g last=%g S(1.23)=%lld law=%g\n", r.name.c_str(), r.eval_loss[0], r.eval_loss.back(), (long long)s,
                spec.law.Steps(1.23, r.batch_size, std::exp(std::log(r.lr[0]))));
  }
}
}
namespace surge::fit {
TEST(Explore, Gen2) {
  std::mt19937_64 rng(1000);
  std::normal_distribution<double> run_noise(0.0, 0.05);
  for (int i = 0; i < 16; ++i) {
    double z = run_noise(rng);
    std::normal_distribution<double> e(0.0, 0.001);
    double acc = 0; if (getenv("INNER")) for (int t = 0; t < atoi(getenv("INNER")); ++t) acc += e(rng);
    std::printf("%d %.5f\n", i, z);
  }
}
}
namespace surge::fit {
TEST(Explore, Gen3) {
  std::mt19937_64 rng(1000);
  std::normal_distribution<double> run_noise(0.0, 1);
  std::uniform_real_distribution<double> U(0.0, 1.0);
  double s2 = 0; int n = 0, close = 0;
  for (int i = 0; i < 200; ++i) {
    double a = run_noise(rng), b = run_noise(rng);
    s2 += (a - b) * (a - b); ++n; close += std::fabs(a - b) < 0.05;
    std::normal_distribution<double> e(0.0, 0.001);
    for (int t = 0; t < 3000; ++t) e(rng);
  }
  std::printf("normal pairs: sd diff %.3f (expect 1.414), close %d/%d (expect %.1f)\n", std::sqrt(s2 / n), close, n, n * 0.028);
  s2 = 0; n = 0; close = 0;
  for (int i = 0; i < 200; ++i) {
    double a = U(rng), b = U(rng);
    ++n; close += std::fabs(a - b) < 0.01;
    for (int t = 0; t < 3820; ++t) U(rng);
  }
  std::printf("uniform pairs close %d/%d (expect %.1f)\n", close, n, n * 0.02);
}
}
namespace surge::fit {
TEST(Explore, Gen4) {
  for (int inner : {0, 1000, 2999, 3000, 3001}) {
  std::mt19937_64 rng(1000);
  std::normal_distribution<double> run_noise(0.0, 1);
  double prev = 0; int close = 0, n = 0; double s2 = 0;
  for (int i = 0; i < 400; ++i) {
    double z = run_noise(rng);
    if (i % 2 == 1) { ++n; close += std::fabs(z - prev) < 0.05; s2 += (z-prev)*(z-prev); }
    prev = z;
    std::normal_distribution<double> e(0.0, 0.001);
    for (int t = 0; t < inner; ++t) e(rng);
  }
  std::printf("inner %d: close %d/%d sd %.3f\n", inner, close, n, std::sqrt(s2/n));
  }
}
}
namespace surge::fit {
TEST(Explore, Gen5) {
  synth::SweepSpec spec;
  double s2 = 0; int n = 0, close = 0;
  for (int seed = 1000; seed < 1010; ++seed) {
    auto runs = synth::PlainRunSweep(spec, seed);
    std::vector<double> ln_n;
    for (auto& r : runs) {
      const double sd = std::exp(spec.law.LnSlowdown(r.batch_size, r.lr[0]));
      ln_n.push_back(spec.law.p * std::log(synth::LossAtStepsClosedForm(spec.law, 1.0, 1.0)) );
      // ln n_run from the median of the first 50 evals
      double acc = 0; for (int t = 0; t < 50; ++t) acc += std::log(r.eval_loss[t] * std::pow(r.steps[t], 1.0 / spec.law.p));
      acc /= 50;
      ln_n.back() = spec.law.p * acc - std::log(spec.law.c * sd);
    }
    for (size_t i = 0; i + 1 < ln_n.size(); i += 2) {
      double d = ln_n[i] - ln_n[i + 1];
      s2 += d * d; ++n; close += std::fabs(d) < 0.005;
      if (seed == 1000 && i < 14) std::printf("%g %g\n", ln_n[i], ln_n[i + 1]);
    }
  }
  std::printf("pairs: sd %.4f (expect %.4f) close %d/%d\n", std::sqrt(s2 / n), 0.05 * std::sqrt(2.0), close, n);
}
}
