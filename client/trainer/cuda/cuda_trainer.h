// CudaTrainer: the Trainer interface (cpu_trainer.h) on the CUDA path
// (cnn_cuda.h), so a probe sweep or the benchmark can run on a GPU with the
// same protocol as on the CPU. A step mirrors CpuTrainer::Step: two
// micro-batches when B is even (their gradients averaged on the device, the
// squared norms |g_i|^2 and |g|^2 taken by cuBLAS), one Adam step. The
// device buffers (CudaModel) are cached per thread and reused by later
// CudaTrainers of that thread (cuBLAS handle creation is slow).
// Unverified on hardware in the session that wrote it; see docs/trainer.md.
#ifndef SURGE_CLIENT_TRAINER_CUDA_CUDA_TRAINER_H_
#define SURGE_CLIENT_TRAINER_CUDA_CUDA_TRAINER_H_

#include <memory>
#include <vector>

#include "client/trainer/cpu_trainer.h"
#include "client/trainer/cuda/cnn_cuda.h"

namespace surge::trainer::cuda {

class CudaTrainer : public Trainer {
 public:
  CudaTrainer(const AdamConfig& adam, int max_batch);

  void Init(uint64_t seed);
  void SetParams(const std::vector<float>& params) override;
  std::vector<float> GetParams() override;
  void SetAdamState(const AdamState<float>& state) override;
  AdamState<float> GetAdamState() override;
  StepStats Step(const Dataset& data, const std::vector<int>& indices, double lr) override;
  double Evaluate(const Dataset& data, int count) override;

 private:
  AdamConfig adam_;
  int max_batch_;
  std::shared_ptr<CudaModel> model_;
  std::vector<float> x_;
  std::vector<uint8_t> y_;
};

}  // namespace surge::trainer::cuda

#endif  // SURGE_CLIENT_TRAINER_CUDA_CUDA_TRAINER_H_
