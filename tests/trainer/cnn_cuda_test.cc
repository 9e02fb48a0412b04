// The CUDA path against the CPU reference (label gpu): on one batch of real
// Fashion-MNIST, every layer's forward output and every backward tensor and
// parameter-gradient slice must agree within atol + rtol * |ref|; then five
// Adam steps from the same start on the same batches must give the same
// losses and parameters; a NaN parameter must give a NaN loss, as on the CPU.
// Skipped, with the reason, when there is no GPU. The data directory is
// $SURGE_FASHION_MNIST_DIR when set (the GPU bundle, scripts/gpu_bundle.sh),
// else the Debian package's.
#include "client/trainer/cuda/cnn_cuda.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "client/trainer/cnn_cpu.h"
#include "client/trainer/cpu_trainer.h"
#include "client/trainer/fashion_mnist.h"
#include "tests/trainer/real_data.h"

namespace surge::trainer {
namespace {

// Counts entries with |gpu - ref| > atol + rtol * |ref|; prints the first 5
// and the largest difference (llm.c style).
void ExpectClose(const std::string& what, const std::vector<float>& gpu, const float* ref,
                 size_t count, double atol, double rtol) {
  ASSERT_EQ(gpu.size(), count) << what;
  size_t bad = 0;
  double max_diff = 0;
  for (size_t i = 0; i < count; ++i) {
    const double diff = std::abs(static_cast<double>(gpu[i]) - ref[i]);
    max_diff = std::max(max_diff, diff);
    if (!(diff <= atol + rtol * std::abs(ref[i]))) {
      if (++bad <= 5) {
        ADD_FAILURE() << what << "[" << i << "]: gpu " << gpu[i] << " cpu " << ref[i];
      }
    }
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << count << " outside tolerance; max |diff| "
                     << max_diff;
  std::printf("  %-12s %8zu values, max |gpu - cpu| = %.3g\n", what.c_str(), count, max_diff);
}

class CnnCudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!cuda::DeviceAvailable(&why)) {
      GTEST_SKIP() << "no GPU here (" << why << "): the CUDA path is not checked";
    }
    std::printf("device: %s\n", cuda::DeviceName().c_str());
    auto data = LoadFashionMnist(FashionMnistDir(), "t10k");
    ASSERT_TRUE(data.ok()) << data.status();
    data_ = *std::move(data);
  }
  Dataset data_;
};

TEST_F(CnnCudaTest, EveryLayerMatchesTheCpuForwardAndBackward) {
  const int n = 32;
  std::vector<float> params(kNumParams);
  InitParams<float>(5, params.data());
  const float* x = data_.images.data();
  const uint8_t* y = data_.labels.data();

  Activations<float> a;
  std::vector<float> grad(kNumParams);
  const double cpu_loss = ModelLossAndGradient(params.data(), x, y, n, &a, grad.data());

  cuda::CudaModel gpu(n);
  gpu.SetParams(params);
  const double gpu_loss = gpu.LossAndGradient(x, y, n, /*backward=*/true);
  EXPECT_NEAR(gpu_loss, cpu_loss, 1e-5 + 1e-5 * std::abs(cpu_loss));

  const double atol = 1e-5, rtol = 1e-3;
  using T = cuda::Tensor;
  struct Pair {
    const char* name;
    T tensor;
    const Mat<float>& ref;
  };
  const Pair pairs[] = {
      {"conv1+relu", T::kA1, a.a1}, {"pool1", T::kP1, a.p1},   {"conv2+relu", T::kA2, a.a2},
      {"pool2", T::kP2, a.p2},      {"fc1+relu", T::kH1, a.h1}, {"fc2+relu", T::kH2, a.h2},
      {"logits", T::kZ, a.z},       {"d logits", T::kDz, a.dz}, {"d fc2", T::kDh2, a.dh2},
      {"d fc1", T::kDh1, a.dh1},    {"d pool2", T::kDp2, a.dp2}, {"d conv2", T::kDa2, a.da2},
      {"d pool1", T::kDp1, a.dp1},  {"d conv1", T::kDa1, a.da1}};
  for (const Pair& p : pairs) {
    ExpectClose(p.name, gpu.Read(p.tensor), p.ref.data(), static_cast<size_t>(p.ref.size()),
                atol, rtol);
  }
  using L = ParamLayout;
  const std::vector<float> g = gpu.Grad();
  const std::pair<const char*, std::pair<int, int>> slices[] = {
      {"grad conv1.w", {L::kConv1W, L::kConv1B}}, {"grad conv1.b", {L::kConv1B, L::kConv2W}},
      {"grad conv2.w", {L::kConv2W, L::kConv2B}}, {"grad conv2.b", {L::kConv2B, L::kFc1W}},
      {"grad fc1.w", {L::kFc1W, L::kFc1B}},       {"grad fc1.b", {L::kFc1B, L::kFc2W}},
      {"grad fc2.w", {L::kFc2W, L::kFc2B}},       {"grad fc2.b", {L::kFc2B, L::kFc3W}},
      {"grad fc3.w", {L::kFc3W, L::kFc3B}},       {"grad fc3.b", {L::kFc3B, L::kTotal}}};
  for (const auto& [name, range] : slices) {
    ExpectClose(name, std::vector<float>(g.begin() + range.first, g.begin() + range.second),
                grad.data() + range.first, range.second - range.first, atol, rtol);
  }
}

TEST_F(CnnCudaTest, FiveAdamStepsMatchTheCpu) {
  const int n = 64;
  AdamConfig adam;
  // A larger epsilon than the default: coordinates whose gradient is ~1e-9
  // make Adam's step sign-sensitive to float rounding, which is not what
  // this test is about.
  adam.eps = 1e-4;
  adam.weight_decay = 0.01;
  cuda::AdamHyper hyper{adam.beta1, adam.beta2, adam.eps, adam.weight_decay};
  const double lr = 1e-3;

  std::vector<float> cpu_params(kNumParams);
  InitParams<float>(6, cpu_params.data());
  AdamState<float> cpu_state;
  cpu_state.Reset(kNumParams);
  cuda::CudaModel gpu(n);
  gpu.SetParams(cpu_params);

  BatchSampler sampler(data_.size, 3);
  std::vector<int> idx;
  std::vector<float> x(n * kImagePixels), grad(kNumParams);
  std::vector<uint8_t> y(n);
  Activations<float> a;
  for (int step = 1; step <= 5; ++step) {
    sampler.Next(n, &idx);
    GatherBatch(data_, idx.data(), n, x.data(), y.data());
    const double cpu_loss =
        ModelLossAndGradient(cpu_params.data(), x.data(), y.data(), n, &a, grad.data());
    AdamStep(adam, lr, grad.data(), kNumParams, cpu_params.data(), &cpu_state);
    const double gpu_loss = gpu.LossAndGradient(x.data(), y.data(), n, true);
    gpu.AdamStep(hyper, lr);
    EXPECT_NEAR(gpu_loss, cpu_loss, 1e-4 * std::abs(cpu_loss)) << "step " << step;
    std::printf("step %d: loss cpu %.6f gpu %.6f\n", step, cpu_loss, gpu_loss);
    ExpectClose("params", gpu.Params(), cpu_params.data(), kNumParams, 1e-5, 1e-3);
    ExpectClose("adam m", gpu.AdamM(), cpu_state.m.data(), kNumParams, 1e-7, 1e-3);
    ExpectClose("adam v", gpu.AdamV(), cpu_state.v.data(), kNumParams, 1e-10, 2e-3);
  }
  EXPECT_EQ(gpu.adam_t(), 5);
}

// A NaN parameter (a diverged run) must give a NaN loss, as on the CPU,
// where ReLU (std::max(x, 0)) keeps NaNs: the probe sweep scores non-finite
// losses as diverged. With fmaxf the GPU turned them into zeros and reported
// a finite loss.
TEST_F(CnnCudaTest, NanPropagatesLikeTheCpu) {
  const int n = 4;
  std::vector<float> params(kNumParams);
  InitParams<float>(7, params.data());
  params[ParamLayout::kConv1W] = NAN;
  Activations<float> a;
  const double cpu_loss = ModelLossAndGradient<float>(params.data(), data_.images.data(),
                                                      data_.labels.data(), n, &a, nullptr);
  cuda::CudaModel gpu(n);
  gpu.SetParams(params);
  const double gpu_loss = gpu.LossAndGradient(data_.images.data(), data_.labels.data(), n, false);
  EXPECT_TRUE(std::isnan(cpu_loss)) << cpu_loss;
  EXPECT_TRUE(std::isnan(gpu_loss)) << gpu_loss;
}

}  // namespace
}  // namespace surge::trainer
