// CpuTrainer: micro-batch gradients on a worker pool, their average, the
// noise statistics, one Adam step; batched evaluation; checkpoint files.
#include "client/trainer/cpu_trainer.h"

#include <algorithm>
#include <cstdio>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace surge::trainer {
namespace {

// Examples per forward/backward call. A micro-batch larger than this is run
// in chunks whose gradients are summed with weights len/micro: the
// activations of 16 images (~1 MB) stay in a core's L2 cache, which makes
// large batches ~1.5x faster per example than one call over all of them.
constexpr int kChunk = 16;
constexpr int kEvalChunk = kChunk;

// |v|^2 = sum_i v_i^2, summed in float over blocks of 1024 values (Eigen's
// vectorized reduction) and in double across blocks: as accurate as a double
// sum for these sizes, without a serial chain of 44k dependent additions.
double SquaredNorm(const float* v, int64_t count) {
  constexpr int64_t kBlock = 1024;
  double total = 0;
  for (int64_t i = 0; i < count; i += kBlock) {
    const int64_t len = std::min(kBlock, count - i);
    total += Eigen::Map<const Eigen::VectorXf>(v + i, len).squaredNorm();
  }
  return total;
}

}  // namespace

BatchSampler::BatchSampler(int data_size, uint64_t seed) : rng_(seed), perm_(data_size) {
  std::iota(perm_.begin(), perm_.end(), 0);
  std::shuffle(perm_.begin(), perm_.end(), rng_);
}

void BatchSampler::Next(int n, std::vector<int>* indices) {
  indices->resize(n);
  for (int i = 0; i < n; ++i) {
    if (pos_ == perm_.size()) {
      std::shuffle(perm_.begin(), perm_.end(), rng_);
      pos_ = 0;
    }
    (*indices)[i] = perm_[pos_++];
  }
}

CpuTrainer::CpuTrainer(const AdamConfig& adam, int threads) : adam_(adam) {
  if (threads > 1) pool_ = std::make_unique<WorkerPool>(threads);
  params_.assign(kNumParams, 0.0f);
  grad_.assign(kNumParams, 0.0f);
  adam_state_.Reset(kNumParams);
  shards_.resize(std::max(2, threads));
}

void CpuTrainer::Init(uint64_t seed) {
  InitParams(seed, params_.data());
  adam_state_.Reset(kNumParams);
}

void CpuTrainer::RunShards(int count, const std::function<void(int)>& fn) {
  if (pool_) {
    pool_->ParallelFor(count, fn);
  } else {
    for (int i = 0; i < count; ++i) fn(i);
  }
}

StepStats CpuTrainer::Step(const Dataset& data, const std::vector<int>& indices, double lr) {
  const int n = static_cast<int>(indices.size());
  // M micro-batches of equal size: as many as threads when that divides n,
  // else 2 when n is even, else 1 (no noise statistics for odd batches).
  int m = 1;
  if (threads() > 1 && n % threads() == 0 && n >= threads()) {
    m = threads();
  } else if (n % 2 == 0) {
    m = 2;
  }
  const int micro = n / m;
  RunShards(m, [&](int i) {
    Shard& s = shards_[i];
    s.x.resize(static_cast<size_t>(micro) * kImagePixels);
    s.y.resize(micro);
    s.grad.resize(kNumParams);
    GatherBatch(data, indices.data() + i * micro, micro, s.x.data(), s.y.data());
    // g_i = sum_chunks (len/micro) g_chunk (each g_chunk is its chunk's mean).
    using Vec = Eigen::Matrix<float, Eigen::Dynamic, 1>;
    Eigen::Map<Vec> gi(s.grad.data(), kNumParams);
    s.loss = 0;
    if (micro > kChunk) s.chunk_grad.resize(kNumParams);
    for (int c0 = 0; c0 < micro; c0 += kChunk) {
      const int len = std::min(kChunk, micro - c0);
      const float weight = static_cast<float>(len) / micro;
      float* chunk_grad = c0 == 0 ? s.grad.data() : s.chunk_grad.data();
      s.loss += weight * ModelLossAndGradient(params_.data(),
                                              s.x.data() + static_cast<int64_t>(c0) * kImagePixels,
                                              s.y.data() + c0, len, &s.act, chunk_grad);
      if (c0 == 0) {
        if (len < micro) gi *= weight;
      } else {
        gi += weight * Eigen::Map<const Vec>(s.chunk_grad.data(), kNumParams);
      }
    }
  });
  StepStats out;
  // g = (1/M) sum_i g_i (loss likewise), and sum_i |g_i|^2, with Eigen's
  // vectorized loops (squared norms: see SquaredNorm).
  using Vec = Eigen::Matrix<float, Eigen::Dynamic, 1>;
  Eigen::Map<Vec> g(grad_.data(), kNumParams);
  double small = 0;
  for (int i = 0; i < m; ++i) {
    Eigen::Map<const Vec> gi(shards_[i].grad.data(), kNumParams);
    if (i == 0) {
      g = gi;
    } else {
      g += gi;
    }
    out.loss += shards_[i].loss / m;
    if (m >= 2) small += SquaredNorm(gi.data(), kNumParams);
  }
  if (m > 1) g *= 1.0f / m;
  if (m >= 2) {
    out.has_grad_stats = true;
    out.grad_sq_small = small / m;
    out.grad_sq_big = SquaredNorm(grad_.data(), kNumParams);
    out.b_small = micro;
    out.b_big = n;
  }
  AdamStep(adam_, lr, grad_.data(), kNumParams, params_.data(), &adam_state_);
  return out;
}

double CpuTrainer::Evaluate(const Dataset& data, int count) {
  count = std::min(count, data.size);
  const int chunks = (count + kEvalChunk - 1) / kEvalChunk;
  std::vector<double> losses(chunks);
  // Shards are reused as scratch: chunk c runs on shard (c mod threads).
  const int lanes = std::min<int>(threads(), static_cast<int>(shards_.size()));
  RunShards(lanes, [&](int lane) {
    Shard& s = shards_[lane];
    for (int c = lane; c < chunks; c += lanes) {
      const int begin = c * kEvalChunk, n = std::min(kEvalChunk, count - begin);
      const float* x = data.images.data() + static_cast<int64_t>(begin) * kImagePixels;
      losses[c] = n * ModelLossAndGradient<float>(params_.data(), x, data.labels.data() + begin,
                                                  n, &s.act, nullptr);
    }
  });
  return std::accumulate(losses.begin(), losses.end(), 0.0) / count;
}

absl::Status SaveCheckpoint(const std::string& path, const Checkpoint& ckpt) {
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) return absl::InternalError(absl::StrCat("cannot write ", tmp));
  const int64_t count = static_cast<int64_t>(ckpt.params.size());
  bool ok = std::fwrite("SURGECK1", 1, 8, f) == 8 &&
            std::fwrite(&ckpt.step, sizeof(ckpt.step), 1, f) == 1 &&
            std::fwrite(&ckpt.eval_loss, sizeof(ckpt.eval_loss), 1, f) == 1 &&
            std::fwrite(&count, sizeof(count), 1, f) == 1 &&
            std::fwrite(ckpt.params.data(), sizeof(float), count, f) ==
                static_cast<size_t>(count);
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot write checkpoint ", path));
  }
  return absl::OkStatus();
}

absl::StatusOr<Checkpoint> LoadCheckpoint(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return absl::NotFoundError(absl::StrCat("no checkpoint at ", path));
  Checkpoint c;
  char magic[8];
  int64_t count = 0;
  bool ok = std::fread(magic, 1, 8, f) == 8 && std::equal(magic, magic + 8, "SURGECK1") &&
            std::fread(&c.step, sizeof(c.step), 1, f) == 1 &&
            std::fread(&c.eval_loss, sizeof(c.eval_loss), 1, f) == 1 &&
            std::fread(&count, sizeof(count), 1, f) == 1 && count == kNumParams;
  if (ok) {
    c.params.resize(count);
    ok = std::fread(c.params.data(), sizeof(float), count, f) == static_cast<size_t>(count);
  }
  std::fclose(f);
  if (!ok) return absl::InvalidArgumentError(absl::StrCat(path, ": not a valid checkpoint"));
  return c;
}

}  // namespace surge::trainer
