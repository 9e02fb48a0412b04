// Plain training runs (PROTOCOL_PLAIN): `surge-train train`, the base run of a
// probe sweep (which also saves a checkpoint at each target loss, the
// stages), and `surge-train follow` (which asks the server for the optimal LR
// every few steps and uses it).
//
// Each step streams a record: step, examples seen, lr, training loss of the
// batch, gradient statistics; every `eval_every` steps also the loss on the
// fixed evaluation subset (the first `eval_size` test images).
#ifndef SURGE_CLIENT_TRAINER_PLAIN_RUN_H_
#define SURGE_CLIENT_TRAINER_PLAIN_RUN_H_

#include <atomic>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/trainer/cpu_trainer.h"
#include "client/trainer/reporter.h"

namespace surge::trainer {

struct PlainRunOptions {
  std::string run_name = "train";
  int batch_size = 64;
  double lr = 1e-3;
  AdamConfig adam;
  uint64_t seed = 1;
  int64_t steps = 1000;      // maximum steps
  int eval_every = 50;
  int eval_size = 1000;
  int threads = 2;
  int log_every = 100;       // a progress line on stdout every this many steps
  // Checkpoints: at the first evaluation with loss <= each target (in
  // decreasing order), saved to checkpoint_dir/stage<i>.ckpt; the run stops
  // after the last one. Empty: no checkpoints, run `steps` steps.
  std::vector<double> target_losses;
  std::string checkpoint_dir;
  // Follow mode: every advise_every steps (> 0) ask GetAdvice(advice_job, B,
  // step) and set the LR to the advised one (clamped to [lr/100, lr*100] of
  // the starting LR); log each change. With follow_batch, first set B to the
  // advice's recommended batch size (the speed/data balance point B_noise,
  // rounded, clamped to [min_batch, max_batch]) and then ask for the LR at
  // that B. The run keeps its declared (starting) batch size; each record's
  // `examples` counts the examples actually seen.
  int advise_every = 0;
  std::string advice_job;
  bool follow_batch = false;
  int min_batch = 1;
  int max_batch = 4096;
};

// One change made in follow mode, before the given step.
struct FollowChange {
  int64_t step = 0;
  double lr_before = 0, lr_after = 0;
  int batch_before = 0, batch_after = 0;
  int64_t fit_version = 0;
};

struct PlainRunResult {
  int64_t steps = 0;
  double final_eval_loss = 0;
  std::vector<Checkpoint> checkpoints;  // one per target reached
  std::vector<FollowChange> changes;    // follow mode
  int64_t examples = 0;                 // examples seen
  bool interrupted = false;
};

// Trains from a fresh init. `reporter` may be null (nothing streamed).
absl::StatusOr<PlainRunResult> RunPlain(const PlainRunOptions& options, const Dataset& train,
                                        const Dataset& eval, Reporter* reporter,
                                        const std::atomic<bool>* stop);

}  // namespace surge::trainer

#endif  // SURGE_CLIENT_TRAINER_PLAIN_RUN_H_
