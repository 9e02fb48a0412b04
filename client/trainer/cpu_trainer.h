// CpuTrainer: one model being trained on the CPU (float), with its Adam
// state. A step splits the batch into M equal micro-batches (M = 2, or the
// thread count when that divides the batch), computes each micro-batch's
// gradient on its own thread, averages them, and takes one Adam step. The
// micro-batch gradients give the two-batch noise statistics for free
// (surge-math.md section 2, McCandlish et al. App. A):
//
//   |G_small|^2 = (1/M) sum_i |g_i|^2       at b_small = B / M
//   |G_big|^2   = |(1/M) sum_i g_i|^2        at b_big   = B
//
// Also here: BatchSampler (seeded epoch shuffles) and checkpoint files.
// Not thread-safe: one thread drives a trainer (it may own a WorkerPool).
#ifndef SURGE_CLIENT_TRAINER_CPU_TRAINER_H_
#define SURGE_CLIENT_TRAINER_CPU_TRAINER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/trainer/cnn_cpu.h"
#include "client/trainer/fashion_mnist.h"
#include "client/trainer/worker_pool.h"

namespace surge::trainer {

struct StepStats {
  double loss = 0;  // mean training loss of the batch (before the update)
  bool has_grad_stats = false;
  double grad_sq_small = 0, grad_sq_big = 0;
  int b_small = 0, b_big = 0;
};

// Draws batches: a seeded permutation of the data, reshuffled each epoch.
// Copyable, so a probe can snapshot the stream and replay it.
class BatchSampler {
 public:
  BatchSampler(int data_size, uint64_t seed);
  void Next(int n, std::vector<int>* indices);

 private:
  std::mt19937_64 rng_;
  std::vector<int> perm_;
  size_t pos_ = 0;
};

// What the probe sweep needs from a backend: load a state, take steps,
// evaluate, read the state back. CpuTrainer here; CudaTrainer in cuda/.
class Trainer {
 public:
  virtual ~Trainer() = default;
  virtual void SetParams(const std::vector<float>& params) = 0;
  virtual std::vector<float> GetParams() = 0;
  virtual void SetAdamState(const AdamState<float>& state) = 0;
  virtual AdamState<float> GetAdamState() = 0;
  // One step on the given examples at learning rate lr (see CpuTrainer).
  virtual StepStats Step(const Dataset& data, const std::vector<int>& indices, double lr) = 0;
  // Mean loss over the first `count` examples of `data` (forward only).
  virtual double Evaluate(const Dataset& data, int count) = 0;
};

class CpuTrainer : public Trainer {
 public:
  // `threads` <= 1: everything on the calling thread.
  CpuTrainer(const AdamConfig& adam, int threads);

  // Fresh parameters (seeded, PyTorch-style init) and a fresh Adam state.
  void Init(uint64_t seed);
  void ResetOptimizer() { adam_state_.Reset(kNumParams); }

  // One step on the given examples at learning rate lr (lr = 0: the moments
  // move, the parameters do not).
  StepStats Step(const Dataset& data, const std::vector<int>& indices, double lr) override;

  // Mean loss over the first `count` examples of `data` (forward only).
  double Evaluate(const Dataset& data, int count) override;

  void SetParams(const std::vector<float>& params) override {
    params_.assign(params.begin(), params.end());
  }
  std::vector<float> GetParams() override { return {params_.begin(), params_.end()}; }
  void SetAdamState(const AdamState<float>& state) override { adam_state_ = state; }
  AdamState<float> GetAdamState() override { return adam_state_; }

  const AdamState<float>& adam_state() const { return adam_state_; }
  const AdamConfig& adam() const { return adam_; }
  int threads() const { return pool_ ? pool_->threads() : 1; }

 private:
  // Buffers that Eigen reads are 64-byte aligned: Eigen's vectorized loops
  // peel differently at different alignments, so with malloc's varying
  // alignment the same run would not be bitwise reproducible.
  using AlignedFloats = std::vector<float, Eigen::aligned_allocator<float>>;
  struct Shard {
    Activations<float> act;
    AlignedFloats x, grad, chunk_grad;
    std::vector<uint8_t> y;
    double loss = 0;
  };
  void RunShards(int count, const std::function<void(int)>& fn);

  AdamConfig adam_;
  std::unique_ptr<WorkerPool> pool_;
  AlignedFloats params_, grad_;
  AdamState<float> adam_state_;
  std::vector<Shard> shards_;
};

// A checkpoint: the parameters at `step` of a base run, with the evaluation
// loss measured there. Binary: "SURGECK1", int64 step, double loss, int64
// count, count floats.
struct Checkpoint {
  int64_t step = 0;
  double eval_loss = 0;
  std::vector<float> params;
};
absl::Status SaveCheckpoint(const std::string& path, const Checkpoint& ckpt);
absl::StatusOr<Checkpoint> LoadCheckpoint(const std::string& path);

}  // namespace surge::trainer

#endif  // SURGE_CLIENT_TRAINER_CPU_TRAINER_H_
