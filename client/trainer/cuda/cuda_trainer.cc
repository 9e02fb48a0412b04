// CudaTrainer: micro-batches and noise statistics around CudaModel.
#include "client/trainer/cuda/cuda_trainer.h"

#include <algorithm>

namespace surge::trainer::cuda {
namespace {

// Eval chunk (examples per forward pass).
constexpr int kEvalChunk = 1000;

std::shared_ptr<CudaModel> ModelForThread(int max_batch) {
  thread_local std::shared_ptr<CudaModel> cached;
  if (cached == nullptr || cached->max_batch() < max_batch) {
    cached.reset();  // free the old buffers first
    cached = std::make_shared<CudaModel>(max_batch);
  }
  return cached;
}

}  // namespace

CudaTrainer::CudaTrainer(const AdamConfig& adam, int max_batch)
    : adam_(adam),
      max_batch_(std::max(max_batch, kEvalChunk)),
      model_(ModelForThread(max_batch_)) {
  model_->ResetAdam();
}

void CudaTrainer::Init(uint64_t seed) {
  std::vector<float> p(kNumParams);
  InitParams<float>(seed, p.data());
  model_->SetParams(p);
  model_->ResetAdam();
}

void CudaTrainer::SetParams(const std::vector<float>& params) { model_->SetParams(params); }
std::vector<float> CudaTrainer::GetParams() { return model_->Params(); }

void CudaTrainer::SetAdamState(const AdamState<float>& state) {
  model_->SetAdamState(state.m, state.v, state.t);
}

AdamState<float> CudaTrainer::GetAdamState() {
  AdamState<float> s;
  s.m = model_->AdamM();
  s.v = model_->AdamV();
  s.t = model_->adam_t();
  return s;
}

StepStats CudaTrainer::Step(const Dataset& data, const std::vector<int>& indices, double lr) {
  const int n = static_cast<int>(indices.size());
  const int m = n % 2 == 0 ? 2 : 1;
  const int micro = n / m;
  x_.resize(static_cast<size_t>(n) * kImagePixels);
  y_.resize(n);
  GatherBatch(data, indices.data(), n, x_.data(), y_.data());
  StepStats out;
  double small = 0;
  for (int i = 0; i < m; ++i) {
    out.loss += model_->LossAndGradient(x_.data() + static_cast<size_t>(i) * micro * kImagePixels,
                                        y_.data() + i * micro, micro, true) / m;
    if (m > 1) small += model_->GradSquaredNorm() / m;
    model_->AccumulateGrad(1.0f / m, /*first=*/i == 0);
  }
  model_->UseAccumulatedGrad();
  if (m > 1) {
    out.has_grad_stats = true;
    out.grad_sq_small = small;
    out.grad_sq_big = model_->GradSquaredNorm();
    out.b_small = micro;
    out.b_big = n;
  }
  model_->AdamStep(AdamHyper{adam_.beta1, adam_.beta2, adam_.eps, adam_.weight_decay}, lr);
  return out;
}

double CudaTrainer::Evaluate(const Dataset& data, int count) {
  count = std::min(count, data.size);
  double total = 0;
  for (int begin = 0; begin < count; begin += kEvalChunk) {
    const int n = std::min(kEvalChunk, count - begin);
    total += n * model_->LossAndGradient(
                     data.images.data() + static_cast<size_t>(begin) * kImagePixels,
                     data.labels.data() + begin, n, false);
  }
  return total / count;
}

}  // namespace surge::trainer::cuda
