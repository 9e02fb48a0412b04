// cnn_cuda.cu: kernels and the CudaModel (see cnn_cuda.h). Every kernel
// mirrors the CPU function of cnn_cpu.h named in its comment; layouts are the
// CPU's (column-major [rows, cols]; conv activations [C, N*H*W] with channels
// contiguous; im2col rows (kh*K + kw)*C + c). cuBLAS is column-major too, so
// each Eigen product maps to one cublasSgemm with the same shapes.
#include "client/trainer/cuda/cnn_cuda.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "client/trainer/cnn_shapes.h"

namespace surge::trainer::cuda {
namespace {

void CudaCheck(cudaError_t e, const char* what, const char* file, int line) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "CUDA error %s at %s:%d: %s\n", what, file, line, cudaGetErrorString(e));
    std::exit(EXIT_FAILURE);
  }
}
void CublasCheck(cublasStatus_t s, const char* what, const char* file, int line) {
  if (s != CUBLAS_STATUS_SUCCESS) {
    std::fprintf(stderr, "cuBLAS error %d at %s (%s:%d)\n", static_cast<int>(s), what, file, line);
    std::exit(EXIT_FAILURE);
  }
}
#define CUDA_CHECK(x) CudaCheck((x), #x, __FILE__, __LINE__)
#define CUBLAS_CHECK(x) CublasCheck((x), #x, __FILE__, __LINE__)

constexpr int kThreads = 256;
int Blocks(int64_t n) { return static_cast<int>((n + kThreads - 1) / kThreads); }

// --- im2col / col2im (cnn_cpu.h Im2Col, Col2Im) ------------------------------

// col[r, j] = in[c, (b*H + y+kh)*W + x+kw], r = (kh*K + kw)*C + c,
// j = (b*OH + y)*OW + x.  One thread per col element.
__global__ void Im2ColKernel(ConvShape s, int n, const float* in, float* col) {
  const int64_t rows = s.rows();
  const int64_t total = rows * n * s.oh() * s.ow();
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= total) return;
  const int r = static_cast<int>(i % rows);
  const int64_t j = i / rows;
  const int c = r % s.c, kw = (r / s.c) % s.k, kh = r / (s.c * s.k);
  const int x = static_cast<int>(j % s.ow());
  const int y = static_cast<int>((j / s.ow()) % s.oh());
  const int64_t b = j / (static_cast<int64_t>(s.ow()) * s.oh());
  col[i] = in[((b * s.h + y + kh) * s.w + x + kw) * s.c + c];
}

// dx[c, (b*H + h)*W + w] = sum over (kh, kw) with y = h-kh, x = w-kw inside
// the output of dcol[(kh*K + kw)*C + c, (b*OH + y)*OW + x]: the gather form
// of Col2Im (no atomics). One thread per dx element.
__global__ void Col2ImKernel(ConvShape s, int n, const float* dcol, float* dx) {
  const int64_t total = static_cast<int64_t>(n) * s.h * s.w * s.c;
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= total) return;
  const int c = static_cast<int>(i % s.c);
  const int64_t pixel = i / s.c;
  const int w = static_cast<int>(pixel % s.w);
  const int h = static_cast<int>((pixel / s.w) % s.h);
  const int64_t b = pixel / (static_cast<int64_t>(s.w) * s.h);
  const int64_t rows = s.rows();
  float sum = 0.f;
  for (int kh = 0; kh < s.k; ++kh) {
    const int y = h - kh;
    if (y < 0 || y >= s.oh()) continue;
    for (int kw = 0; kw < s.k; ++kw) {
      const int x = w - kw;
      if (x < 0 || x >= s.ow()) continue;
      sum += dcol[((b * s.oh() + y) * s.ow() + x) * rows + (kh * s.k + kw) * s.c + c];
    }
  }
  dx[i] = sum;
}

// --- bias, row sums, ReLU, pooling ------------------------------------------

// y[o, j] += b[o] (the colwise() += of ConvForward / DenseForward).
__global__ void AddBiasKernel(int rows, int64_t cols, const float* b, float* y) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < rows * cols) y[i] += b[i % rows];
}

// db[o] = sum_j dy[o, j] (dy.rowwise().sum()): one block per row.
__global__ void RowSumKernel(int rows, int64_t cols, const float* dy, float* db) {
  __shared__ float partial[kThreads];
  const int o = blockIdx.x;
  float sum = 0.f;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) sum += dy[o + j * rows];
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) db[o] = partial[0];
}

// ReluForward: x = std::max(x, 0) = (x < 0 ? 0 : x), as on the CPU: a NaN
// stays NaN (fmaxf would turn it into 0 and hide a diverged run).
__global__ void ReluForwardKernel(int64_t n, float* x) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n && x[i] < 0.f) x[i] = 0.f;
}

// ReluBackward: dy = 0 where y <= 0.
__global__ void ReluBackwardKernel(int64_t n, const float* y, float* dy) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n && !(y[i] > 0.f)) dy[i] = 0.f;
}

// MaxPoolForward: 2x2 stride 2, first maximum on ties (same scan order as
// the CPU). One thread per output element.
__global__ void MaxPoolForwardKernel(int c, int n, int h, int w, const float* x, float* y,
                                     int32_t* argmax) {
  const int ph = h / 2, pw = w / 2;
  const int64_t total = static_cast<int64_t>(n) * ph * pw * c;
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= total) return;
  const int ch = static_cast<int>(i % c);
  const int64_t pixel = i / c;
  const int jj = static_cast<int>(pixel % pw);
  const int ii = static_cast<int>((pixel / pw) % ph);
  const int64_t b = pixel / (static_cast<int64_t>(pw) * ph);
  const int64_t p00 = ((b * h + 2 * ii) * w + 2 * jj) * c;
  const int64_t offsets[4] = {p00, p00 + c, p00 + static_cast<int64_t>(w) * c,
                              p00 + static_cast<int64_t>(w + 1) * c};
  int64_t best = offsets[0] + ch;
  for (int q = 1; q < 4; ++q) {
    if (x[offsets[q] + ch] > x[best]) best = offsets[q] + ch;
  }
  y[i] = x[best];
  argmax[i] = static_cast<int32_t>(best);
}

// MaxPoolBackward: dx[argmax[i]] = dy[i] (dx zeroed before; windows do not
// overlap, so no two outputs write one input).
__global__ void MaxPoolBackwardKernel(int64_t n, const float* dy, const int32_t* argmax,
                                      float* dx) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) dx[argmax[i]] = dy[i];
}

// --- softmax cross-entropy, Adam --------------------------------------------

// SoftmaxCrossEntropy: per example loss_b = logsumexp(z_b) - z_{y_b, b} and
// dz_kb = (softmax_kb - [k == y_b]) / n. One thread per example.
__global__ void SoftmaxCrossEntropyKernel(int n, const float* z, const uint8_t* labels,
                                          float* losses, float* dz) {
  const int b = blockIdx.x * blockDim.x + threadIdx.x;
  if (b >= n) return;
  const float* zc = z + static_cast<int64_t>(b) * kClasses;
  float zmax = zc[0];
  for (int k = 1; k < kClasses; ++k) zmax = fmaxf(zmax, zc[k]);
  double sum = 0;
  for (int k = 0; k < kClasses; ++k) sum += exp(static_cast<double>(zc[k] - zmax));
  const double log_sum = log(sum) + static_cast<double>(zmax);
  losses[b] = static_cast<float>(log_sum - zc[labels[b]]);
  if (dz != nullptr) {
    float* dc = dz + static_cast<int64_t>(b) * kClasses;
    for (int k = 0; k < kClasses; ++k) {
      const double p = exp(static_cast<double>(zc[k]) - log_sum);
      dc[k] = static_cast<float>((p - (k == labels[b] ? 1.0 : 0.0)) / n);
    }
  }
}

// AdamStep: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
// p -= lr (m/c1 / (sqrt(v)/sqrt(c2) + eps) + wd p).
__global__ void AdamKernel(int64_t n, const float* g, float* p, float* m, float* v, float b1,
                           float b2, float inv_c1, float inv_sqrt_c2, float eps, float step,
                           float decay) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const float gi = g[i];
  m[i] = b1 * m[i] + (1.f - b1) * gi;
  v[i] = b2 * v[i] + (1.f - b2) * gi * gi;
  const float update = (m[i] * inv_c1) / (sqrtf(v[i]) * inv_sqrt_c2 + eps);
  p[i] -= step * update + decay * p[i];
}

template <typename T>
T* DeviceAlloc(int64_t count) {
  T* p = nullptr;
  CUDA_CHECK(cudaMalloc(&p, sizeof(T) * static_cast<size_t>(count > 0 ? count : 1)));
  return p;
}

}  // namespace

bool DeviceAvailable(std::string* why) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    *why = std::string("no usable CUDA device: ") + cudaGetErrorString(e);
    return false;
  }
  if (count == 0) {
    *why = "no CUDA device found";
    return false;
  }
  return true;
}

std::string DeviceName() {
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) return "unknown";
  return std::string(prop.name) + " (sm_" + std::to_string(prop.major) +
         std::to_string(prop.minor) + ")";
}

struct CudaModel::Buffers {
  cublasHandle_t blas = nullptr;
  float *params, *grad, *grad_acc, *m, *v;
  float *x, *col1, *a1, *p1, *col2, *a2, *p2, *h1, *h2, *z, *losses;
  int32_t *idx1, *idx2;
  uint8_t* y;
  float *dz, *dh2, *dh1, *dp2, *da2, *dp1, *da1, *dcol;
  std::vector<void*> all;
  template <typename T>
  T* Alloc(int64_t count) {
    T* p = DeviceAlloc<T>(count);
    all.push_back(p);
    return p;
  }
};

CudaModel::CudaModel(int max_batch) : b_(new Buffers), max_batch_(max_batch) {
  const int64_t n = max_batch;
  Buffers& b = *b_;
  CUBLAS_CHECK(cublasCreate(&b.blas));
  // Full FP32 products (no TF32), so the CPU comparison is meaningful.
  CUBLAS_CHECK(cublasSetMathMode(b.blas, CUBLAS_PEDANTIC_MATH));
  b.params = b.Alloc<float>(kNumParams);
  b.grad = b.Alloc<float>(kNumParams);
  b.grad_acc = b.Alloc<float>(kNumParams);
  b.m = b.Alloc<float>(kNumParams);
  b.v = b.Alloc<float>(kNumParams);
  b.x = b.Alloc<float>(n * kImagePixels);
  b.y = b.Alloc<uint8_t>(n);
  b.col1 = b.Alloc<float>(kConv1.rows() * n * 576);
  b.a1 = b.Alloc<float>(kConv1.o * n * 576);
  b.p1 = b.Alloc<float>(kConv1.o * n * 144);
  b.idx1 = b.Alloc<int32_t>(kConv1.o * n * 144);
  b.col2 = b.Alloc<float>(kConv2.rows() * n * 64);
  b.a2 = b.Alloc<float>(kConv2.o * n * 64);
  b.p2 = b.Alloc<float>(kConv2.o * n * 16);
  b.idx2 = b.Alloc<int32_t>(kConv2.o * n * 16);
  b.h1 = b.Alloc<float>(kFc1Out * n);
  b.h2 = b.Alloc<float>(kFc2Out * n);
  b.z = b.Alloc<float>(kClasses * n);
  b.losses = b.Alloc<float>(n);
  b.dz = b.Alloc<float>(kClasses * n);
  b.dh2 = b.Alloc<float>(kFc2Out * n);
  b.dh1 = b.Alloc<float>(kFc1Out * n);
  b.dp2 = b.Alloc<float>(kFc1In * n);
  b.da2 = b.Alloc<float>(kConv2.o * n * 64);
  b.dp1 = b.Alloc<float>(kConv1.o * n * 144);
  b.da1 = b.Alloc<float>(kConv1.o * n * 576);
  b.dcol = b.Alloc<float>(kConv2.rows() * n * 64);
  ResetAdam();
}

CudaModel::~CudaModel() {
  for (void* p : b_->all) cudaFree(p);
  cublasDestroy(b_->blas);
}

namespace {

std::vector<float> Download(const float* d, int64_t count) {
  std::vector<float> out(count);
  CUDA_CHECK(cudaMemcpy(out.data(), d, sizeof(float) * count, cudaMemcpyDeviceToHost));
  return out;
}

// C[m, n] = op(A) op(B), column-major, no accumulation.
void Gemm(cublasHandle_t h, bool ta, bool tb, int m, int n, int k, const float* a, int lda,
          const float* b, int ldb, float* c, int ldc) {
  const float one = 1.f, zero = 0.f;
  CUBLAS_CHECK(cublasSgemm(h, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N, m,
                           n, k, &one, a, lda, b, ldb, &zero, c, ldc));
}

// ConvForward: col = im2col(in); y[O, NP] = W[O, R] col[R, NP] + b.
void ConvForward(cublasHandle_t h, const ConvShape& s, int n, const float* in, const float* w,
                 const float* bias, float* col, float* y) {
  const int64_t np = static_cast<int64_t>(n) * s.oh() * s.ow();
  Im2ColKernel<<<Blocks(np * s.rows()), kThreads>>>(s, n, in, col);
  Gemm(h, false, false, s.o, static_cast<int>(np), s.rows(), w, s.o, col, s.rows(), y, s.o);
  AddBiasKernel<<<Blocks(np * s.o), kThreads>>>(s.o, np, bias, y);
}

// ConvBackward: dW = dy col^T; db = rowsum(dy); dx = col2im(W^T dy).
void ConvBackward(cublasHandle_t h, const ConvShape& s, int n, const float* col, const float* w,
                  const float* dy, float* dw, float* db, float* dx, float* dcol) {
  const int64_t np = static_cast<int64_t>(n) * s.oh() * s.ow();
  Gemm(h, false, true, s.o, s.rows(), static_cast<int>(np), dy, s.o, col, s.rows(), dw, s.o);
  RowSumKernel<<<s.o, kThreads>>>(s.o, np, dy, db);
  if (dx == nullptr) return;
  Gemm(h, true, false, s.rows(), static_cast<int>(np), s.o, w, s.o, dy, s.o, dcol, s.rows());
  Col2ImKernel<<<Blocks(static_cast<int64_t>(n) * s.h * s.w * s.c), kThreads>>>(s, n, dcol, dx);
}

// DenseForward: y[Fo, N] = W[Fo, Fi] x[Fi, N] + b.
void DenseForward(cublasHandle_t h, int f_in, int f_out, int n, const float* x, const float* w,
                  const float* bias, float* y) {
  Gemm(h, false, false, f_out, n, f_in, w, f_out, x, f_in, y, f_out);
  AddBiasKernel<<<Blocks(static_cast<int64_t>(f_out) * n), kThreads>>>(f_out, n, bias, y);
}

// DenseBackward: dW = dy x^T; db = rowsum(dy); dx = W^T dy.
void DenseBackward(cublasHandle_t h, int f_in, int f_out, int n, const float* x, const float* w,
                   const float* dy, float* dw, float* db, float* dx) {
  Gemm(h, false, true, f_out, f_in, n, dy, f_out, x, f_in, dw, f_out);
  RowSumKernel<<<f_out, kThreads>>>(f_out, n, dy, db);
  if (dx != nullptr) Gemm(h, true, false, f_in, n, f_out, w, f_out, dy, f_out, dx, f_in);
}

}  // namespace

void CudaModel::SetParams(const std::vector<float>& params) {
  CUDA_CHECK(cudaMemcpy(b_->params, params.data(), sizeof(float) * kNumParams,
                        cudaMemcpyHostToDevice));
}
std::vector<float> CudaModel::Params() const { return Download(b_->params, kNumParams); }
std::vector<float> CudaModel::Grad() const { return Download(b_->grad, kNumParams); }
std::vector<float> CudaModel::AdamM() const { return Download(b_->m, kNumParams); }
std::vector<float> CudaModel::AdamV() const { return Download(b_->v, kNumParams); }

std::vector<float> CudaModel::Read(Tensor t) const {
  const int64_t n = n_;
  switch (t) {
    case Tensor::kA1: return Download(b_->a1, kConv1.o * n * 576);
    case Tensor::kP1: return Download(b_->p1, kConv1.o * n * 144);
    case Tensor::kA2: return Download(b_->a2, kConv2.o * n * 64);
    case Tensor::kP2: return Download(b_->p2, kConv2.o * n * 16);
    case Tensor::kH1: return Download(b_->h1, kFc1Out * n);
    case Tensor::kH2: return Download(b_->h2, kFc2Out * n);
    case Tensor::kZ: return Download(b_->z, kClasses * n);
    case Tensor::kDz: return Download(b_->dz, kClasses * n);
    case Tensor::kDh2: return Download(b_->dh2, kFc2Out * n);
    case Tensor::kDh1: return Download(b_->dh1, kFc1Out * n);
    case Tensor::kDp2: return Download(b_->dp2, kFc1In * n);
    case Tensor::kDa2: return Download(b_->da2, kConv2.o * n * 64);
    case Tensor::kDp1: return Download(b_->dp1, kConv1.o * n * 144);
    case Tensor::kDa1: return Download(b_->da1, kConv1.o * n * 576);
  }
  return {};
}

double CudaModel::LossAndGradient(const float* x, const uint8_t* y, int n, bool backward) {
  if (n < 1 || n > max_batch_) {
    std::fprintf(stderr, "CudaModel: batch %d outside [1, %d]\n", n, max_batch_);
    std::exit(EXIT_FAILURE);
  }
  n_ = n;
  Buffers& b = *b_;
  using L = ParamLayout;
  const float* p = b.params;
  float* g = b.grad;
  CUDA_CHECK(cudaMemcpy(b.x, x, sizeof(float) * n * kImagePixels, cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(b.y, y, n, cudaMemcpyHostToDevice));
  const int64_t n64 = n;

  // Forward (ModelForward).
  ConvForward(b.blas, kConv1, n, b.x, p + L::kConv1W, p + L::kConv1B, b.col1, b.a1);
  ReluForwardKernel<<<Blocks(kConv1.o * n64 * 576), kThreads>>>(kConv1.o * n64 * 576, b.a1);
  MaxPoolForwardKernel<<<Blocks(kConv1.o * n64 * 144), kThreads>>>(kConv1.o, n, 24, 24, b.a1,
                                                                    b.p1, b.idx1);
  ConvForward(b.blas, kConv2, n, b.p1, p + L::kConv2W, p + L::kConv2B, b.col2, b.a2);
  ReluForwardKernel<<<Blocks(kConv2.o * n64 * 64), kThreads>>>(kConv2.o * n64 * 64, b.a2);
  MaxPoolForwardKernel<<<Blocks(kConv2.o * n64 * 16), kThreads>>>(kConv2.o, n, 8, 8, b.a2, b.p2,
                                                                   b.idx2);
  DenseForward(b.blas, kFc1In, kFc1Out, n, b.p2, p + L::kFc1W, p + L::kFc1B, b.h1);
  ReluForwardKernel<<<Blocks(kFc1Out * n64), kThreads>>>(kFc1Out * n64, b.h1);
  DenseForward(b.blas, kFc1Out, kFc2Out, n, b.h1, p + L::kFc2W, p + L::kFc2B, b.h2);
  ReluForwardKernel<<<Blocks(kFc2Out * n64), kThreads>>>(kFc2Out * n64, b.h2);
  DenseForward(b.blas, kFc2Out, kClasses, n, b.h2, p + L::kFc3W, p + L::kFc3B, b.z);
  SoftmaxCrossEntropyKernel<<<Blocks(n), kThreads>>>(n, b.z, b.y, b.losses,
                                                      backward ? b.dz : nullptr);
  CUDA_CHECK(cudaGetLastError());
  std::vector<float> losses = Download(b.losses, n);
  double loss = 0;
  for (float l : losses) loss += l;
  loss /= n;
  if (!backward) return loss;

  // Backward (ModelBackward).
  DenseBackward(b.blas, kFc2Out, kClasses, n, b.h2, p + L::kFc3W, b.dz, g + L::kFc3W,
                g + L::kFc3B, b.dh2);
  ReluBackwardKernel<<<Blocks(kFc2Out * n64), kThreads>>>(kFc2Out * n64, b.h2, b.dh2);
  DenseBackward(b.blas, kFc1Out, kFc2Out, n, b.h1, p + L::kFc2W, b.dh2, g + L::kFc2W,
                g + L::kFc2B, b.dh1);
  ReluBackwardKernel<<<Blocks(kFc1Out * n64), kThreads>>>(kFc1Out * n64, b.h1, b.dh1);
  DenseBackward(b.blas, kFc1In, kFc1Out, n, b.p2, p + L::kFc1W, b.dh1, g + L::kFc1W,
                g + L::kFc1B, b.dp2);
  CUDA_CHECK(cudaMemset(b.da2, 0, sizeof(float) * kConv2.o * n64 * 64));
  MaxPoolBackwardKernel<<<Blocks(kConv2.o * n64 * 16), kThreads>>>(kConv2.o * n64 * 16, b.dp2,
                                                                    b.idx2, b.da2);
  ReluBackwardKernel<<<Blocks(kConv2.o * n64 * 64), kThreads>>>(kConv2.o * n64 * 64, b.a2, b.da2);
  ConvBackward(b.blas, kConv2, n, b.col2, p + L::kConv2W, b.da2, g + L::kConv2W, g + L::kConv2B,
               b.dp1, b.dcol);
  CUDA_CHECK(cudaMemset(b.da1, 0, sizeof(float) * kConv1.o * n64 * 576));
  MaxPoolBackwardKernel<<<Blocks(kConv1.o * n64 * 144), kThreads>>>(kConv1.o * n64 * 144, b.dp1,
                                                                     b.idx1, b.da1);
  ReluBackwardKernel<<<Blocks(kConv1.o * n64 * 576), kThreads>>>(kConv1.o * n64 * 576, b.a1,
                                                                  b.da1);
  ConvBackward(b.blas, kConv1, n, b.col1, p + L::kConv1W, b.da1, g + L::kConv1W, g + L::kConv1B,
               nullptr, b.dcol);
  CUDA_CHECK(cudaGetLastError());
  CUDA_CHECK(cudaDeviceSynchronize());
  return loss;
}

double CudaModel::GradSquaredNorm() const {
  float dot = 0.f;
  CUBLAS_CHECK(cublasSdot(b_->blas, kNumParams, b_->grad, 1, b_->grad, 1, &dot));
  return dot;
}

void CudaModel::AccumulateGrad(float scale, bool first) {
  if (first) CUDA_CHECK(cudaMemset(b_->grad_acc, 0, sizeof(float) * kNumParams));
  CUBLAS_CHECK(cublasSaxpy(b_->blas, kNumParams, &scale, b_->grad, 1, b_->grad_acc, 1));
}

void CudaModel::UseAccumulatedGrad() {
  CUDA_CHECK(cudaMemcpy(b_->grad, b_->grad_acc, sizeof(float) * kNumParams,
                        cudaMemcpyDeviceToDevice));
}

void CudaModel::SetAdamState(const std::vector<float>& m, const std::vector<float>& v,
                             int64_t t) {
  if (m.size() != static_cast<size_t>(kNumParams) || v.size() != static_cast<size_t>(kNumParams)) {
    std::fprintf(stderr, "CudaModel::SetAdamState: wrong sizes\n");
    std::exit(EXIT_FAILURE);
  }
  CUDA_CHECK(cudaMemcpy(b_->m, m.data(), sizeof(float) * kNumParams, cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(b_->v, v.data(), sizeof(float) * kNumParams, cudaMemcpyHostToDevice));
  adam_t_ = t;
}

void CudaModel::ResetAdam() {
  CUDA_CHECK(cudaMemset(b_->m, 0, sizeof(float) * kNumParams));
  CUDA_CHECK(cudaMemset(b_->v, 0, sizeof(float) * kNumParams));
  adam_t_ = 0;
}

void CudaModel::AdamStep(const AdamHyper& h, double lr) {
  adam_t_ += 1;
  const double c1 = 1.0 - std::pow(h.beta1, static_cast<double>(adam_t_));
  const double c2 = 1.0 - std::pow(h.beta2, static_cast<double>(adam_t_));
  AdamKernel<<<Blocks(kNumParams), kThreads>>>(
      kNumParams, b_->grad, b_->params, b_->m, b_->v, static_cast<float>(h.beta1),
      static_cast<float>(h.beta2), static_cast<float>(1.0 / c1),
      static_cast<float>(1.0 / std::sqrt(c2)), static_cast<float>(h.eps), static_cast<float>(lr),
      static_cast<float>(lr * h.weight_decay));
  CUDA_CHECK(cudaGetLastError());
  CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace surge::trainer::cuda
