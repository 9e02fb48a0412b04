// RunProbeSweep: base run and checkpoints, warm states, the adaptive LR walk,
// probes in parallel on a worker pool, streaming and resume.
#include "client/trainer/probe_sweep.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/trainer/progress.h"
#include "client/trainer/worker_pool.h"

namespace surge::trainer {
namespace {

// splitmix64 of a combination: independent sampler seeds per (stage, B, seed).
uint64_t Mix(uint64_t a, uint64_t b) {
  uint64_t z = a * 0x9E3779B97F4A7C15ull + b + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The Adam state and data stream of one (stage, B, seed) after the warm-up.
struct WarmState {
  AdamState<float> adam;
  BatchSampler sampler{1, 0};
};

// Everything that decides the base run's checkpoints, one line of text.
std::string BaseMeta(const SweepConfig& c) {
  std::string targets;
  for (double t : c.base.target_losses) absl::StrAppend(&targets, absl::StrFormat("%.6g,", t));
  return absl::StrFormat(
      "run=%s batch=%d lr=%.6g beta1=%.6g beta2=%.6g eps=%.6g wd=%.6g seed=%d steps=%d "
      "eval_every=%d eval_size=%d targets=%s",
      c.base.run_name, c.base.batch_size, c.base.lr, c.base.adam.beta1, c.base.adam.beta2,
      c.base.adam.eps, c.base.adam.weight_decay, c.base.seed, c.base.steps, c.base.eval_every,
      c.base.eval_size, targets);
}

// The stage checkpoints: read back when work_dir has them for the same base
// config, else trained (the base run is streamed either way only once).
absl::StatusOr<std::vector<Checkpoint>> EnsureCheckpoints(const SweepConfig& c,
                                                          const Dataset& train,
                                                          const Dataset& eval, Reporter* reporter,
                                                          const std::atomic<bool>* stop) {
  ::mkdir(c.work_dir.c_str(), 0755);
  const std::string meta_path = c.work_dir + "/base.meta";
  const std::string meta = BaseMeta(c);
  std::ifstream in(meta_path);
  std::string stored_meta;
  if (in && std::getline(in, stored_meta) && stored_meta == meta) {
    std::vector<Checkpoint> out;
    for (size_t i = 0; i < c.base.target_losses.size(); ++i) {
      auto ck = LoadCheckpoint(absl::StrCat(c.work_dir, "/stage", i, ".ckpt"));
      if (!ck.ok()) break;
      out.push_back(*std::move(ck));
    }
    if (out.size() == c.base.target_losses.size()) {
      std::printf("probe: reusing %zu stage checkpoints from %s\n", out.size(), c.work_dir.c_str());
      return out;
    }
  }
  PlainRunOptions base = c.base;
  base.checkpoint_dir = c.work_dir;
  auto result = RunPlain(base, train, eval, reporter, stop);
  if (!result.ok()) return result.status();
  if (result->interrupted) return absl::CancelledError("interrupted during the base run");
  std::ofstream out(meta_path);
  out << meta << "\n";
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", meta_path));
  return result->checkpoints;
}

struct Context {
  const SweepConfig& c;
  const Dataset& train;
  const Dataset& eval;
  Reporter* reporter;
  const std::map<std::string, StoredRun>& stored;
  ProgressBar& progress;
};

std::unique_ptr<Trainer> MakeTrainer(const SweepConfig& c, int max_batch) {
  if (c.make_trainer) return c.make_trainer(c.adam, max_batch);
  return std::make_unique<CpuTrainer>(c.adam, 1);
}

double ProbeUnits(const SweepConfig& c, int b) {
  return static_cast<double>(c.probe_steps) * b + c.eval_size / 3.0;
}

// One probe from a warm state; returns the final evaluation-subset loss.
double RunOneProbe(const Context& ctx, int stage, const Checkpoint& ck, int b, double lr, int seed,
                   const WarmState& warm) {
  const std::string name = ProbeRunName(stage, b, lr, seed);
  if (ctx.reporter != nullptr) {
    surge::v1::Run run;
    run.set_name(name);
    run.set_batch_size(b);
    *run.mutable_optimizer() = ToOptimizer(ctx.c.adam);
    run.set_base_lr(lr);
    run.set_protocol(surge::v1::PROTOCOL_PROBE);
    run.mutable_parent()->set_checkpoint_step(ck.step);
    run.mutable_parent()->set_loss(ck.eval_loss);
    run.mutable_parent()->set_base_run(ctx.c.base.run_name);
    auto& labels = *run.mutable_labels();
    labels["seed"] = absl::StrCat(seed);
    labels["stage"] = absl::StrCat(stage);
    labels["k"] = absl::StrCat(ctx.c.probe_steps);
    labels["warm_steps"] = absl::StrCat(ctx.c.warm_steps);
    labels["eval_size"] = absl::StrCat(ctx.c.eval_size);
    if (absl::Status s = ctx.reporter->DeclareRun(run); !s.ok()) {
      std::fprintf(stderr, "\nprobe: %s\n", s.ToString().c_str());
    }
  }
  std::unique_ptr<Trainer> trainer = MakeTrainer(ctx.c, b);
  trainer->SetParams(ck.params);
  trainer->SetAdamState(warm.adam);
  BatchSampler sampler = warm.sampler;
  std::vector<int> idx;
  double final_loss = 0;
  for (int step = 1; step <= ctx.c.probe_steps; ++step) {
    sampler.Next(b, &idx);
    StepStats stats = trainer->Step(ctx.train, idx, lr);
    std::optional<double> eval_loss;
    if (step == ctx.c.probe_steps) {
      final_loss = trainer->Evaluate(ctx.eval, ctx.c.eval_size);
      eval_loss = final_loss;
    }
    if (ctx.reporter != nullptr) {
      ctx.reporter->Append(MakeRecord(name, step, static_cast<int64_t>(step) * b, lr, stats,
                                      eval_loss));
    }
  }
  return std::isfinite(final_loss) ? final_loss : 100.0;
}

}  // namespace

std::string ProbeRunName(int stage, int batch_size, double lr, int seed) {
  return absl::StrFormat("st%d-b%d-lr%.4g-seed%d", stage, batch_size, lr, seed);
}

absl::StatusOr<SweepResult> RunProbeSweep(const SweepConfig& c, const Dataset& train,
                                          const Dataset& eval, Reporter* reporter,
                                          const std::atomic<bool>* stop) {
  if (c.batch_sizes.empty() || c.seeds < 1 || c.probe_steps < 1 || c.warm_steps < 0 ||
      c.lrs_per_decade < 1 || c.initial_lrs < 3 || c.base.target_losses.empty()) {
    return absl::InvalidArgumentError(
        "need batch sizes, target losses, seeds >= 1, probe_steps >= 1, warm_steps >= 0, "
        "lrs_per_decade >= 1, initial_lrs >= 3");
  }
  SweepResult result;
  ProgressBar progress("probe", c.progress);
  auto checkpoints = EnsureCheckpoints(c, train, eval, reporter, stop);
  if (!checkpoints.ok()) {
    if (absl::IsCancelled(checkpoints.status())) {
      result.interrupted = true;
      return result;
    }
    return checkpoints.status();
  }
  std::map<std::string, StoredRun> stored;
  if (reporter != nullptr) {
    auto s = reporter->StoredRuns();
    if (!s.ok()) return s.status();
    stored = *std::move(s);
  }
  Context ctx{c, train, eval, reporter, stored, progress};
  WorkerPool pool(c.threads);

  // Lattice: eps_j = lr_start * 10^(j / lrs_per_decade), j in [j_min, j_max].
  const double per = c.lrs_per_decade;
  const int j_min = static_cast<int>(std::ceil(per * std::log10(c.lr_min / c.lr_start) - 1e-9));
  const int j_max = static_cast<int>(std::floor(per * std::log10(c.lr_max / c.lr_start) + 1e-9));
  auto lr_of = [&](int j) { return c.lr_start * std::pow(10.0, j / per); };

  // Up-front work estimate (grown when a walk goes past initial_lrs + 2).
  for (size_t s = 0; s < checkpoints->size(); ++s) {
    for (int b : c.batch_sizes) {
      progress.AddTotal(c.seeds * (static_cast<double>(c.warm_steps) * b +
                                   (c.initial_lrs + 2) * ProbeUnits(c, b)));
    }
  }

  for (size_t s = 0; s < checkpoints->size() && !result.interrupted; ++s) {
    const Checkpoint& ck = (*checkpoints)[s];
    const int stage = static_cast<int>(s);
    int center = 0;
    for (int b : c.batch_sizes) {
      if (stop != nullptr && stop->load()) {
        result.interrupted = true;
        break;
      }
      std::map<int, std::vector<double>> improvement;  // j -> per seed
      std::vector<WarmState> warm;
      int budgeted = c.initial_lrs + 2;
      const std::string note = absl::StrFormat("stage %d (step %lld) B=%d", stage,
                                               static_cast<long long>(ck.step), b);
      auto evaluate = [&](const std::vector<int>& js) {
        struct Task {
          int j, seed;
        };
        std::vector<Task> tasks;
        for (int j : js) {
          improvement[j].assign(c.seeds, 0.0);
          for (int r = 0; r < c.seeds; ++r) {
            auto it = stored.find(ProbeRunName(stage, b, lr_of(j), r));
            if (it != stored.end() && it->second.record_count >= c.probe_steps &&
                it->second.last && it->second.last->has_eval_loss()) {
              improvement[j][r] = ck.eval_loss - it->second.last->eval_loss();
              result.probes.push_back({stage, ck.step, ck.eval_loss, b, lr_of(j), r,
                                       improvement[j][r], true});
              ++result.probes_reused;
              progress.AddTotal(-ProbeUnits(c, b));
            } else {
              tasks.push_back({j, r});
            }
          }
        }
        if (static_cast<int>(improvement.size()) > budgeted) {
          progress.AddTotal(c.seeds * ProbeUnits(c, b) *
                            (static_cast<int>(improvement.size()) - budgeted));
          budgeted = static_cast<int>(improvement.size());
        }
        if (tasks.empty()) return;
        if (warm.empty()) {
          warm.resize(c.seeds);
          pool.ParallelFor(c.seeds, [&](int r) {
            std::unique_ptr<Trainer> trainer = MakeTrainer(c, b);
            trainer->SetParams(ck.params);
            AdamState<float> fresh;
            fresh.Reset(kNumParams);
            trainer->SetAdamState(fresh);
            BatchSampler sampler(train.size, Mix(Mix(stage + 1, b), r + 1));
            std::vector<int> idx;
            for (int i = 0; i < c.warm_steps; ++i) {
              sampler.Next(b, &idx);
              trainer->Step(train, idx, 0.0);
            }
            warm[r].adam = trainer->GetAdamState();
            warm[r].sampler = sampler;
            progress.Advance(static_cast<double>(c.warm_steps) * b, note);
          });
        }
        std::vector<double> finals(tasks.size());
        pool.ParallelFor(static_cast<int>(tasks.size()), [&](int i) {
          if (stop != nullptr && stop->load()) {
            finals[i] = NAN;
            return;
          }
          finals[i] = RunOneProbe(ctx, stage, ck, b, lr_of(tasks[i].j), tasks[i].seed,
                                  warm[tasks[i].seed]);
          progress.Advance(ProbeUnits(c, b), note);
        });
        for (size_t i = 0; i < tasks.size(); ++i) {
          if (std::isnan(finals[i])) {
            result.interrupted = true;
            continue;
          }
          const double d = ck.eval_loss - finals[i];
          improvement[tasks[i].j][tasks[i].seed] = d;
          result.probes.push_back(
              {stage, ck.step, ck.eval_loss, b, lr_of(tasks[i].j), tasks[i].seed, d, false});
          ++result.probes_run;
        }
      };

      int lo = std::max(j_min, center - c.initial_lrs / 2);
      int hi = std::min(j_max, lo + c.initial_lrs - 1);
      lo = std::max(j_min, hi - c.initial_lrs + 1);
      std::vector<int> first;
      for (int j = lo; j <= hi; ++j) first.push_back(j);
      evaluate(first);
      int best = lo;
      while (!result.interrupted) {
        if (stop != nullptr && stop->load()) {
          result.interrupted = true;
          break;
        }
        double best_mean = -INFINITY;
        for (const auto& [j, v] : improvement) {
          double mean = 0;
          for (double d : v) mean += d / v.size();
          if (mean > best_mean) {
            best_mean = mean;
            best = j;
          }
        }
        std::vector<int> more;
        const bool room = static_cast<int>(improvement.size()) < c.max_lrs;
        if (room && best - lo < c.edge_margin && lo > j_min) {
          for (int j = std::max(j_min, lo - 2); j < lo; ++j) more.push_back(j);
          lo = std::max(j_min, lo - 2);
        }
        if (room && hi - best < c.edge_margin && hi < j_max) {
          for (int j = hi + 1; j <= std::min(j_max, hi + 2); ++j) more.push_back(j);
          hi = std::min(j_max, hi + 2);
        }
        if (more.empty()) break;
        evaluate(more);
      }
      center = best;
    }
  }
  progress.Finish();
  result.seconds = progress.elapsed_seconds();
  return result;
}

}  // namespace surge::trainer
