// WorkerPool: generation-counted start signal, atomic index counter. Waits
// spin briefly (kSpin, ~tens of microseconds) before blocking on a condition
// variable: a training step at small batch sizes is a few hundred
// microseconds, and a futex wake-up costs a good part of that; a bounded
// spin keeps that latency without burning a core when the pool is idle (or
// when the machine is shared).
#include "client/trainer/worker_pool.h"

namespace surge::trainer {
namespace {

constexpr int kSpin = 20000;  // polls before blocking

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace

WorkerPool::WorkerPool(int threads) {
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    generation_.fetch_add(1);
  }
  start_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void WorkerPool::Drain() {
  for (int i = next_.fetch_add(1); i < n_; i = next_.fetch_add(1)) (*fn_)(i);
}

void WorkerPool::ParallelFor(int n, const std::function<void(int)>& fn) {
  if (n <= 0) return;
  if (workers_.empty() || n == 1) {
    for (int i = 0; i < n; ++i) fn(i);
    return;
  }
  std::lock_guard<std::mutex> run_lock(run_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    fn_ = &fn;
    n_ = n;
    next_.store(0);
    active_.store(static_cast<int>(workers_.size()));
    generation_.fetch_add(1);
  }
  start_cv_.notify_all();
  Drain();
  for (int i = 0; i < kSpin && active_.load() != 0; ++i) CpuRelax();
  if (active_.load() != 0) {
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [this] { return active_.load() == 0; });
  }
  fn_ = nullptr;
}

void WorkerPool::WorkerLoop() {
  uint64_t seen = 0;
  while (true) {
    for (int i = 0; i < kSpin && generation_.load() == seen; ++i) CpuRelax();
    {
      std::unique_lock<std::mutex> lock(mu_);
      start_cv_.wait(lock, [&] { return generation_.load() != seen; });
      if (stop_) return;
      seen = generation_.load();
    }
    Drain();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (active_.fetch_sub(1) == 1) done_cv_.notify_one();
    }
  }
}

}  // namespace surge::trainer
