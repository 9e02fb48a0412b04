// RunFullRuns: the full-run grid (B, lr, seed) trained from scratch in
// parallel, one trajectory per grid point serving every target, each target
// streamed as its own PROTOCOL_FULL_RUN run once complete.
#include "client/trainer/full_run.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/trainer/progress.h"
#include "client/trainer/worker_pool.h"

namespace surge::trainer {
namespace {

struct Point {
  int b;
  double lr;
  int seed;
};

// An evaluated step of a trajectory (or the final one of a target).
struct Evaluated {
  int64_t step;
  StepStats stats;
  double eval_loss;
};

// Per target: what the trajectory has done for it.
struct TargetState {
  double target;
  bool wanted;             // not yet on the server
  bool reached = false;
  bool done = false;       // streamed (or not wanted)
  int64_t s = 0;           // first step with eval_loss <= target
  size_t prefix = 0;       // evaluated records up to and including s
  double eval_at_s = 0;
};

void DeclareFullRun(const FullRunConfig& c, Reporter* reporter, const std::string& name,
                    double target, const Point& p) {
  surge::v1::Run run;
  run.set_name(name);
  run.set_batch_size(p.b);
  *run.mutable_optimizer() = ToOptimizer(c.adam);
  run.set_base_lr(p.lr);
  run.set_protocol(surge::v1::PROTOCOL_FULL_RUN);
  run.set_target_loss(target);
  auto& labels = *run.mutable_labels();
  labels["seed"] = absl::StrCat(p.seed);
  labels["k"] = absl::StrCat(c.probe_steps);
  labels["eval_every"] = absl::StrCat(c.eval_every);
  labels["eval_size"] = absl::StrCat(c.eval_size);
  labels["max_steps"] = absl::StrCat(c.max_steps);
  labels["trainer"] = "surge-train full-run";
  if (absl::Status s = reporter->DeclareRun(run); !s.ok()) {
    std::fprintf(stderr, "\nfull-run: %s\n", s.ToString().c_str());
  }
}

}  // namespace

std::string FullRunName(double target, int batch_size, double lr, int seed) {
  return absl::StrFormat("fr-L%.4g-b%d-lr%.4g-seed%d", target, batch_size, lr, seed);
}

absl::StatusOr<FullRunSweepResult> RunFullRuns(const FullRunConfig& c, const Dataset& train,
                                               const Dataset& eval, Reporter* reporter,
                                               const std::atomic<bool>* stop) {
  if (c.targets.empty() || c.batch_sizes.empty() || c.lrs.empty() || c.seeds < 1 ||
      c.probe_steps < 1 || c.eval_every < 1 || c.max_steps < c.eval_every || c.eval_size < 1) {
    return absl::InvalidArgumentError(
        "full-run needs targets, batch sizes, LRs, seeds >= 1, probe_steps >= 1, eval_every >= 1, "
        "max_steps >= eval_every, eval_size >= 1");
  }
  for (int b : c.batch_sizes) {
    if (b < 1) return absl::InvalidArgumentError("batch sizes must be >= 1");
  }
  for (double lr : c.lrs) {
    if (!(lr > 0)) return absl::InvalidArgumentError("LRs must be > 0");
  }
  FullRunSweepResult result;
  std::map<std::string, StoredRun> stored;
  if (reporter != nullptr) {
    auto s = reporter->StoredRuns();
    if (!s.ok()) return s.status();
    stored = *std::move(s);
  }
  auto on_server = [&](const std::string& name) {
    auto it = stored.find(name);
    return it != stored.end() && it->second.record_count > 0;
  };

  std::vector<Point> points;
  for (int b : c.batch_sizes) {
    for (double lr : c.lrs) {
      for (int r = 1; r <= c.seeds; ++r) {
        bool all_stored = true;
        for (double t : c.targets) all_stored = all_stored && on_server(FullRunName(t, b, lr, r));
        if (all_stored) {
          ++result.points_skipped;
          for (double t : c.targets) {
            FullRunResult fr;
            fr.target = t;
            fr.batch_size = b;
            fr.lr = lr;
            fr.seed = r;
            fr.from_server = true;
            result.runs.push_back(fr);
          }
        } else {
          points.push_back({b, lr, r});
        }
      }
    }
  }
  // Larger batches first: they take longest per step, so the pool ends evenly.
  std::stable_sort(points.begin(), points.end(),
                   [](const Point& x, const Point& y) { return x.b > y.b; });

  ProgressBar progress("full-run", c.progress);
  progress.AddTotal(static_cast<double>(points.size()));
  std::mutex mu;  // result
  WorkerPool pool(std::max(1, c.threads));
  pool.ParallelFor(static_cast<int>(points.size()), [&](int i) {
    const Point& p = points[i];
    if (stop != nullptr && stop->load()) {
      std::lock_guard<std::mutex> lock(mu);
      result.interrupted = true;
      return;
    }
    // Fresh init from the seed, fresh Adam.
    std::unique_ptr<Trainer> trainer;
    {
      auto cpu = std::make_unique<CpuTrainer>(c.adam, 1);
      cpu->Init(static_cast<uint64_t>(p.seed));
      if (c.make_trainer) {
        trainer = c.make_trainer(c.adam, p.b);
        trainer->SetParams(cpu->GetParams());
        AdamState<float> fresh;
        fresh.Reset(kNumParams);
        trainer->SetAdamState(fresh);
      } else {
        trainer = std::move(cpu);
      }
    }
    BatchSampler sampler(train.size, static_cast<uint64_t>(p.seed) * 7919 + 1);

    std::vector<TargetState> targets;
    for (double t : c.targets) {
      TargetState ts{t, !on_server(FullRunName(t, p.b, p.lr, p.seed))};
      ts.done = !ts.wanted;
      targets.push_back(ts);
    }
    std::vector<Evaluated> evaluated;
    std::vector<FullRunResult> finished;
    auto emit = [&](TargetState& ts, const std::optional<Evaluated>& final_record) {
      ts.done = true;
      FullRunResult fr;
      fr.target = ts.target;
      fr.batch_size = p.b;
      fr.lr = p.lr;
      fr.seed = p.seed;
      fr.reached = ts.reached;
      fr.steps_to_target = ts.s;
      fr.eval_at_target = ts.eval_at_s;
      fr.eval_final = final_record ? final_record->eval_loss : 0;
      finished.push_back(fr);
      if (reporter == nullptr) return;
      const std::string name = FullRunName(ts.target, p.b, p.lr, p.seed);
      DeclareFullRun(c, reporter, name, ts.target, p);
      const size_t n = ts.reached ? ts.prefix : evaluated.size();
      for (size_t j = 0; j < n; ++j) {
        const Evaluated& e = evaluated[j];
        reporter->Append(MakeRecord(name, e.step, e.step * p.b, p.lr, e.stats, e.eval_loss));
      }
      if (final_record) {
        const Evaluated& e = *final_record;
        reporter->Append(MakeRecord(name, e.step, e.step * p.b, p.lr, e.stats, e.eval_loss));
      }
    };
    auto all_done = [&] {
      return std::all_of(targets.begin(), targets.end(),
                         [](const TargetState& t) { return t.done; });
    };

    std::vector<int> idx;
    bool searching = true;  // false once max_steps is hit or the loss diverged
    bool interrupted = false;
    for (int64_t step = 1; !all_done(); ++step) {
      if (stop != nullptr && stop->load()) {
        interrupted = true;
        break;
      }
      sampler.Next(p.b, &idx);
      const StepStats stats = trainer->Step(train, idx, p.lr);
      const bool eval_step = searching && step % c.eval_every == 0;
      bool final_step = false;
      for (const auto& ts : targets) {
        final_step = final_step || (!ts.done && ts.reached && step == ts.s + c.probe_steps);
      }
      if (!eval_step && !final_step) continue;
      const double loss = trainer->Evaluate(eval, c.eval_size);
      const Evaluated e{step, stats, loss};
      if (final_step) {
        for (auto& ts : targets) {
          if (!ts.done && ts.reached && step == ts.s + c.probe_steps) emit(ts, e);
        }
      }
      if (!eval_step) continue;
      evaluated.push_back(e);
      for (auto& ts : targets) {
        if (!ts.done && !ts.reached && loss <= ts.target) {
          ts.reached = true;
          ts.s = step;
          ts.prefix = evaluated.size();
          ts.eval_at_s = loss;
        }
      }
      if (step >= c.max_steps || !std::isfinite(loss)) {
        // The search ends here: targets not reached are streamed without a
        // final record; reached ones still get their k steps.
        searching = false;
        for (auto& ts : targets) {
          if (!ts.done && !ts.reached) emit(ts, std::nullopt);
        }
      }
    }
    std::lock_guard<std::mutex> lock(mu);
    if (interrupted) result.interrupted = true;
    for (auto& fr : finished) result.runs.push_back(fr);
    if (!interrupted) {
      ++result.points_trained;
      progress.Advance(1, absl::StrFormat("B=%d lr=%.3g seed %d", p.b, p.lr, p.seed));
    }
  });
  progress.Finish();
  result.seconds = progress.elapsed_seconds();
  return result;
}

}  // namespace surge::trainer
