// RunPlain: the training loop of train / base / follow.
#include "client/trainer/plain_run.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace surge::trainer {

absl::StatusOr<PlainRunResult> RunPlain(const PlainRunOptions& o, const Dataset& train,
                                        const Dataset& eval, Reporter* reporter,
                                        const std::atomic<bool>* stop) {
  if (o.batch_size < 1 || o.lr < 0 || o.steps < 1 || o.eval_every < 1) {
    return absl::InvalidArgumentError("batch_size, steps, eval_every must be >= 1 and lr >= 0");
  }
  if (o.follow_batch && (o.min_batch < 1 || o.max_batch < o.min_batch)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "follow_batch needs 1 <= min_batch <= max_batch, got [%d, %d]", o.min_batch,
        o.max_batch));
  }
  if (!std::is_sorted(o.target_losses.rbegin(), o.target_losses.rend())) {
    return absl::InvalidArgumentError("target losses must be decreasing");
  }
  if (reporter != nullptr) {
    surge::v1::Run run;
    run.set_name(o.run_name);
    run.set_batch_size(o.batch_size);
    *run.mutable_optimizer() = ToOptimizer(o.adam);
    run.set_base_lr(o.lr);
    run.set_protocol(surge::v1::PROTOCOL_PLAIN);
    (*run.mutable_labels())["seed"] = absl::StrCat(o.seed);
    (*run.mutable_labels())["trainer"] = "surge-train cpu";
    if (absl::Status s = reporter->DeclareRun(run); !s.ok()) return s;
  }
  CpuTrainer trainer(o.adam, o.threads);
  trainer.Init(o.seed);
  BatchSampler sampler(train.size, o.seed * 7919 + 1);
  std::vector<int> idx;
  PlainRunResult result;
  double lr = o.lr;
  int batch = o.batch_size;
  size_t next_target = 0;
  bool advice_warned = false, latest_stage_noted = false;
  for (int64_t step = 1; step <= o.steps; ++step) {
    if (stop != nullptr && stop->load()) {
      result.interrupted = true;
      break;
    }
    if (o.advise_every > 0 && reporter != nullptr && (step - 1) % o.advise_every == 0 &&
        step > 1) {
      FollowChange change{step, lr, lr, batch, batch, 0};
      // Advice at this step; an advice job without plain-run records has no
      // loss curve to place the step on: then the latest stage's advice.
      auto ask = [&](int b) {
        auto a = reporter->client().GetAdvice(o.advice_job, b, step);
        if (a.status().code() == absl::StatusCode::kFailedPrecondition) {
          if (!latest_stage_noted) {
            latest_stage_noted = true;
            std::printf("follow: job %s has no loss curve yet; following its latest stage\n",
                        o.advice_job.c_str());
          }
          a = reporter->client().GetAdvice(o.advice_job, b, std::nullopt);
        }
        return a;
      };
      auto advice = ask(batch);
      if (o.follow_batch && advice.ok() && std::isfinite(advice->recommended_batch_size()) &&
          advice->recommended_batch_size() > 0) {
        const double rec = std::clamp(advice->recommended_batch_size(),
                                      static_cast<double>(o.min_batch),
                                      static_cast<double>(o.max_batch));
        change.batch_after = static_cast<int>(std::lround(rec));
        if (change.batch_after != batch) {
          advice = ask(change.batch_after);
        }
      }
      if (advice.ok() && std::isfinite(advice->lr()) && advice->lr() > 0) {
        change.lr_after = std::clamp(advice->lr(), o.lr / 100, o.lr * 100);
        change.fit_version = advice->fit_version();
        const bool lr_moved = std::abs(std::log(change.lr_after / lr)) > 1e-3;
        if (lr_moved || change.batch_after != batch) {
          std::printf("follow: step %lld: lr %.4g -> %.4g, batch %d -> %d (advice of job %s, fit "
                      "v%lld, loss %.3f, %s, recommended batch %.4g)\n",
                      static_cast<long long>(step), lr, change.lr_after, batch, change.batch_after,
                      o.advice_job.c_str(), static_cast<long long>(advice->fit_version()),
                      advice->loss(), advice->model().c_str(), advice->recommended_batch_size());
          std::fflush(stdout);
          lr = change.lr_after;
          batch = change.batch_after;
          result.changes.push_back(change);
        }
      } else if (!advice_warned) {
        advice_warned = true;
        std::printf("follow: step %lld: no advice yet (%s); keeping lr %.4g, batch %d\n",
                    static_cast<long long>(step),
                    advice.ok() ? "non-positive lr" : advice.status().ToString().c_str(), lr,
                    batch);
      }
    }
    sampler.Next(batch, &idx);
    StepStats stats = trainer.Step(train, idx, lr);
    result.examples += batch;
    std::optional<double> eval_loss;
    if (step % o.eval_every == 0 || step == o.steps) {
      eval_loss = trainer.Evaluate(eval, o.eval_size);
      result.final_eval_loss = *eval_loss;
    }
    if (reporter != nullptr) {
      reporter->Append(MakeRecord(o.run_name, step, result.examples, lr, stats, eval_loss));
    }
    if (o.log_every > 0 && step % o.log_every == 0) {
      std::printf("%s: step %lld  loss %.4f%s\n", o.run_name.c_str(),
                  static_cast<long long>(step), stats.loss,
                  eval_loss ? absl::StrFormat("  eval %.4f", *eval_loss).c_str() : "");
      std::fflush(stdout);
    }
    result.steps = step;
    if (eval_loss && next_target < o.target_losses.size() &&
        *eval_loss <= o.target_losses[next_target]) {
      Checkpoint c{step, *eval_loss, trainer.GetParams()};
      if (!o.checkpoint_dir.empty()) {
        const std::string path = absl::StrCat(o.checkpoint_dir, "/stage", next_target, ".ckpt");
        if (absl::Status s = SaveCheckpoint(path, c); !s.ok()) return s;
      }
      std::printf("%s: stage %zu reached at step %lld (eval loss %.4f <= %.4f)\n",
                  o.run_name.c_str(), next_target, static_cast<long long>(step), *eval_loss,
                  o.target_losses[next_target]);
      result.checkpoints.push_back(std::move(c));
      // Several targets can be passed at one evaluation; each gets this step.
      while (++next_target < o.target_losses.size() &&
             *eval_loss <= o.target_losses[next_target]) {
        result.checkpoints.push_back(result.checkpoints.back());
        if (!o.checkpoint_dir.empty()) {
          const std::string path = absl::StrCat(o.checkpoint_dir, "/stage", next_target, ".ckpt");
          if (absl::Status s = SaveCheckpoint(path, result.checkpoints.back()); !s.ok()) return s;
        }
      }
      if (next_target == o.target_losses.size()) break;
    }
  }
  if (!o.target_losses.empty() && next_target < o.target_losses.size() && !result.interrupted) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: target loss %.4f not reached in %lld steps (last eval loss %.4f); raise --base_steps "
        "or the target",
        o.run_name, o.target_losses[next_target], static_cast<long long>(o.steps),
        result.final_eval_loss));
  }
  return result;
}

}  // namespace surge::trainer
