// The probe sweep (surge-math.md section 2, "probe protocol"): measure the
// optimal LR per batch size at a few stages of training, cheaply.
//
// 1. Base run: a plain run (streamed, so the server can map steps to losses)
//    trains until the evaluation-subset loss falls below each target loss,
//    saving a checkpoint at each: the stages.
// 2. From each checkpoint, for each batch size B (ascending), seed r and LR
//    eps of the grid:
//      - params <- checkpoint; a fresh Adam state;
//      - warm-up: `warm_steps` steps at B with lr = 0 (the moments m, v and
//        the step count move, the parameters do not). At lr = 0 the warm
//        state does not depend on eps, so it is computed once per (stage, B,
//        seed) and copied into every LR's probe;
//      - k = `probe_steps` measured steps at (B, eps); batches come from a
//        sampler seeded by (stage, B, seed) and continue the warm-up's stream,
//        so every LR of one seed sees the same examples (common random
//        numbers: LR differences are not sampling noise);
//      - improvement dL = L_eval(checkpoint) - L_eval(after k steps), both on
//        the fixed evaluation subset (the first `eval_size` test images).
//    Each probe is streamed as a PROTOCOL_PROBE run: parent {checkpoint_step,
//    loss = L_eval(checkpoint), base_run}, base_lr = eps, label seed = r; its
//    records are steps 1..k (examples = step * B) and the last one carries
//    eval_loss = L_eval(after k steps).
// 3. The LR grid is the lattice eps_j = lr_start * 10^(j / lrs_per_decade),
//    walked per (stage, B): `initial_lrs` points centred on the previous
//    batch size's best LR (lr_start for the first), then extended two points
//    at a time on a side until the best mean improvement has `edge_margin`
//    evaluated points on both sides (or lr_min / lr_max / max_lrs is hit).
//    This brackets each optimum without assuming where it is.
// Resume: probes whose run already holds k records on the server are read
// back instead of re-run; checkpoints on disk are reused (same base config).
#ifndef SURGE_CLIENT_TRAINER_PROBE_SWEEP_H_
#define SURGE_CLIENT_TRAINER_PROBE_SWEEP_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/trainer/cpu_trainer.h"
#include "client/trainer/plain_run.h"
#include "client/trainer/reporter.h"

namespace surge::trainer {

// Makes the trainer one probe (or warm-up) runs on, for batches of up to
// max_batch; the sweep sets its parameters and Adam state. The default is a
// single-threaded CpuTrainer (the sweep runs probes in parallel instead).
using TrainerFactory =
    std::function<std::unique_ptr<Trainer>(const AdamConfig& adam, int max_batch)>;

struct SweepConfig {
  PlainRunOptions base;             // run_name, batch, lr, adam, targets, eval_size...
  std::string work_dir;             // checkpoints live here
  std::vector<int> batch_sizes;     // ascending
  int seeds = 3;
  int warm_steps = 20;
  int probe_steps = 10;             // k
  AdamConfig adam;                  // the probes' optimizer
  double lr_start = 1e-3;
  int lrs_per_decade = 8;
  int initial_lrs = 8;
  int edge_margin = 2;
  int max_lrs = 24;
  double lr_min = 1e-6;
  double lr_max = 1.0;
  int eval_size = 1000;
  int threads = 2;
  bool progress = true;
  TrainerFactory make_trainer;      // empty: CpuTrainer(adam, 1)
};

struct ProbeResult {
  int stage = 0;
  int64_t checkpoint_step = 0;
  double stage_loss = 0;
  int batch_size = 0;
  double lr = 0;
  int seed = 0;
  double improvement = 0;
  bool from_server = false;
};

struct SweepResult {
  std::vector<ProbeResult> probes;
  int probes_run = 0;
  int probes_reused = 0;
  double seconds = 0;
  bool interrupted = false;
};

absl::StatusOr<SweepResult> RunProbeSweep(const SweepConfig& config, const Dataset& train,
                                          const Dataset& eval, Reporter* reporter,
                                          const std::atomic<bool>* stop);

// The name of a probe run, e.g. "st1-b64-lr0.001334-seed2".
std::string ProbeRunName(int stage, int batch_size, double lr, int seed);

}  // namespace surge::trainer

#endif  // SURGE_CLIENT_TRAINER_PROBE_SWEEP_H_
