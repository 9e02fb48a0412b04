// cnn_cuda.h: the CUDA path of surge-train: the same network, layouts and
// parameter vector as the CPU reference (cnn_cpu.h), with cuBLAS for the
// matrix products (column-major, like Eigen) and own kernels for im2col /
// col2im, bias, ReLU, max pooling, softmax cross-entropy and Adam. Each
// kernel mirrors the CPU function of the same name; tests/trainer/
// cnn_cuda_test.cc (label gpu) checks every layer's forward and backward
// and a few training steps against the CPU with atol + rtol * |ref|.
//
// Built only where nvcc exists (SURGE_HAVE_CUDA). CUDA errors are fatal (the
// message names the call, file and line), as in llm.c. One CudaModel per
// thread; calls are synchronous from the caller's point of view.
#ifndef SURGE_CLIENT_TRAINER_CUDA_CNN_CUDA_H_
#define SURGE_CLIENT_TRAINER_CUDA_CNN_CUDA_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace surge::trainer::cuda {

// True when a CUDA device can be used; otherwise `why` says why not.
bool DeviceAvailable(std::string* why);
// "NVIDIA H100 80GB HBM3 (sm_90)" or the like.
std::string DeviceName();

// The intermediate tensors, by the CPU reference's names (Activations<T>),
// each [rows, cols] column-major exactly as on the CPU.
enum class Tensor { kA1, kP1, kA2, kP2, kH1, kH2, kZ, kDz, kDh2, kDh1, kDp2, kDa2, kDp1, kDa1 };

struct AdamHyper {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
};

class CudaModel {
 public:
  // Buffers for batches of up to max_batch examples.
  explicit CudaModel(int max_batch);
  ~CudaModel();
  CudaModel(const CudaModel&) = delete;
  CudaModel& operator=(const CudaModel&) = delete;

  void SetParams(const std::vector<float>& params);  // kNumParams values
  std::vector<float> Params() const;
  std::vector<float> Grad() const;
  std::vector<float> AdamM() const;
  std::vector<float> AdamV() const;
  // A copy of an intermediate tensor of the last pass (n examples).
  std::vector<float> Read(Tensor t) const;

  // Mean cross-entropy of x [784, n] (host, normalized) with labels y [n];
  // with backward, dL/dparams is left in the device gradient (Grad()).
  double LossAndGradient(const float* x, const uint8_t* y, int n, bool backward);

  // Micro-batch support: |grad|^2 (cuBLAS dot, returned to the host);
  // acc = (first ? 0 : acc) + scale * grad; grad <- acc.
  double GradSquaredNorm() const;
  void AccumulateGrad(float scale, bool first);
  void UseAccumulatedGrad();

  // Adam with decoupled weight decay on the device gradient (cnn_cpu.h AdamStep).
  void ResetAdam();
  void SetAdamState(const std::vector<float>& m, const std::vector<float>& v, int64_t t);
  void AdamStep(const AdamHyper& h, double lr);
  int64_t adam_t() const { return adam_t_; }
  int max_batch() const { return max_batch_; }

 private:
  struct Buffers;
  std::unique_ptr<Buffers> b_;
  int max_batch_;
  int n_ = 0;
  int64_t adam_t_ = 0;
};

}  // namespace surge::trainer::cuda

#endif  // SURGE_CLIENT_TRAINER_CUDA_CNN_CUDA_H_
