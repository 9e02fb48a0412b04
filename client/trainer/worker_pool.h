// WorkerPool: a fixed set of threads that run ParallelFor loops. The calling
// thread takes part, so WorkerPool(1) runs everything inline. Indices are
// handed out one at a time (dynamic scheduling), so uneven tasks balance.
// One ParallelFor at a time per pool (calls from several threads serialize).
// Waits spin for a bounded time before blocking (see worker_pool.cc).
#ifndef SURGE_CLIENT_TRAINER_WORKER_POOL_H_
#define SURGE_CLIENT_TRAINER_WORKER_POOL_H_

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace surge::trainer {

class WorkerPool {
 public:
  explicit WorkerPool(int threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs fn(i) for every i in [0, n); returns when all calls have returned.
  void ParallelFor(int n, const std::function<void(int)>& fn);

 private:
  void WorkerLoop();
  void Drain();

  std::mutex run_mu_;  // serializes ParallelFor calls
  std::mutex mu_;
  std::condition_variable start_cv_, done_cv_;
  const std::function<void(int)>* fn_ = nullptr;
  int n_ = 0;
  std::atomic<int> next_{0};
  std::atomic<int> active_{0};           // workers inside the current loop
  std::atomic<uint64_t> generation_{0};  // bumped for each loop (and at stop)
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace surge::trainer

#endif  // SURGE_CLIENT_TRAINER_WORKER_POOL_H_
