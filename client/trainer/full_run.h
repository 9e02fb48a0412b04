// The full-run protocol (surge-math.md section 2, the paper's original one):
// for each grid point (batch size B, learning rate lr, seed r) train from
// scratch until the evaluation-subset loss first reaches a target L*, then
// k more steps, and stream that as one PROTOCOL_FULL_RUN run per target.
//
// One trajectory per (B, lr, seed) serves every target: training is
// deterministic per seed and does not depend on the target, so the run for
// L2 < L1 is the same trajectory continued past L1 (the k extra steps of L1
// are ordinary training steps of it). Each target still gets its own run:
//   - Run: name FullRunName(L*, B, lr, r), protocol PROTOCOL_FULL_RUN,
//     target_loss = L*, batch_size = B, base_lr = lr, the optimizer, labels
//     seed = r, k, eval_every, eval_size, max_steps.
//   - Records: one per evaluated step (every eval_every steps: step,
//     examples = step * B, lr, loss = the batch's training loss, eval_loss =
//     the evaluation-subset loss after the step, grad stats when the step has
//     them) up to and including the first step S with eval_loss <= L*, then
//     ONE final record at step S + k with eval_loss after the k extra steps.
//     The server reads S, E = examples(S) and improvement = eval_loss(S) -
//     eval_loss(last record).
//   - A target not reached within max_steps: its run streams the evaluated
//     records without the final one (the server ignores it).
// Initialization and data: the model is initialized from seed r and batches
// come from BatchSampler(train.size, r * 7919 + 1): the same init and batch
// stream as `surge-train train --seed r` (so every (B, lr) of one seed starts
// from the same parameters).
//
// Streaming and resume: a run's records are appended only once the run is
// complete (target reached + k steps, or max_steps hit), all at once, so a
// run the server holds with record_count > 0 is complete; a rerun skips those
// runs and a grid point whose runs are all stored is not trained again.
// Interrupting loses the unfinished grid points' training (they restart from
// scratch on the rerun), never leaves a partial run on the server.
#ifndef SURGE_CLIENT_TRAINER_FULL_RUN_H_
#define SURGE_CLIENT_TRAINER_FULL_RUN_H_

#include <atomic>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/trainer/cpu_trainer.h"
#include "client/trainer/probe_sweep.h"
#include "client/trainer/reporter.h"

namespace surge::trainer {

struct FullRunConfig {
  std::vector<double> targets;   // any order; each gets its own run
  std::vector<int> batch_sizes;
  std::vector<double> lrs;
  int seeds = 1;                 // seeds 1..seeds
  int probe_steps = 10;          // k
  int eval_every = 5;
  int64_t max_steps = 20000;
  int eval_size = 1000;
  AdamConfig adam;
  int threads = 2;               // grid points in parallel
  bool progress = true;
  TrainerFactory make_trainer;   // empty: CpuTrainer(adam, 1)
};

// One (target, B, lr, seed) run.
struct FullRunResult {
  double target = 0;
  int batch_size = 0;
  double lr = 0;
  int seed = 0;
  bool reached = false;
  int64_t steps_to_target = 0;   // S (0 when not reached)
  double eval_at_target = 0;     // eval loss at S
  double eval_final = 0;         // eval loss at S + k
  bool from_server = false;      // skipped: the server had it (S etc. unknown)
};

struct FullRunSweepResult {
  std::vector<FullRunResult> runs;
  int points_trained = 0;        // grid points (B, lr, seed) trained
  int points_skipped = 0;        // grid points whose runs were all on the server
  double seconds = 0;
  bool interrupted = false;
};

absl::StatusOr<FullRunSweepResult> RunFullRuns(const FullRunConfig& config, const Dataset& train,
                                               const Dataset& eval, Reporter* reporter,
                                               const std::atomic<bool>* stop);

// The name of a full run, e.g. "fr-L0.5-b64-lr0.001-seed1".
std::string FullRunName(double target, int batch_size, double lr, int seed);

}  // namespace surge::trainer

#endif  // SURGE_CLIENT_TRAINER_FULL_RUN_H_
