// WriteQueue: the single writer of the database, with group commit.
//
// Every write in surge runs on one thread that owns the writer connection.
// Record batches from all ingest streams are queued; the writer takes every
// batch waiting (up to a limit) and commits them in ONE transaction, so the
// number of fsyncs per second stops bounding throughput. Each batch sits in
// its own savepoint: a batch that fails (its run was deleted meanwhile) is
// rolled back alone. A batch's `done` callback runs on the writer thread only
// after COMMIT has returned (durable: WAL + synchronous=FULL).
//
// Thread-safe. SubmitBatch blocks while too many records are queued, which
// pushes back on the clients through gRPC flow control.
#ifndef SURGE_SERVER_CORE_WRITE_QUEUE_H_
#define SURGE_SERVER_CORE_WRITE_QUEUE_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/store/store.h"
#include "server/core/options.h"

namespace surge::core {

using BatchResult = store::BatchResult;

// One validated batch with its records' resolved run ids.
struct PendingBatch {
  std::unique_ptr<surge::v1::IngestRequest> request;
  std::vector<int64_t> run_ids;  // parallel to request->records()
  size_t bytes = 0;              // request->ByteSizeLong(); SubmitBatch fills it when 0
  std::function<void(const absl::StatusOr<BatchResult>&)> done;
};

struct WriteQueueStats {
  int64_t commits = 0;
  int64_t records_stored = 0;
  int64_t records_duplicate = 0;
  int64_t last_commit_us = 0;  // latency of the latest COMMIT statement
};

class WriteQueue {
 public:
  WriteQueue(std::unique_ptr<store::Store> writer, const WriteQueueOptions& options);
  ~WriteQueue();
  WriteQueue(const WriteQueue&) = delete;
  WriteQueue& operator=(const WriteQueue&) = delete;

  // Queues a batch for group commit. Unavailable after Stop() began.
  absl::Status SubmitBatch(PendingBatch batch);

  // Runs `task` on the writer thread (between group commits) and returns its
  // result. The task manages its own transaction.
  template <typename T>
  absl::StatusOr<T> Run(std::function<absl::StatusOr<T>(store::Store&)> task) {
    auto promise = std::make_shared<std::promise<absl::StatusOr<T>>>();
    std::future<absl::StatusOr<T>> future = promise->get_future();
    absl::Status queued = Enqueue([promise, task](store::Store& s) {
      promise->set_value(task(s));
    });
    if (!queued.ok()) return queued;
    return future.get();
  }

  // Stops taking work, commits everything already queued, joins the thread.
  void Stop();

  WriteQueueStats stats() const;

 private:
  using Task = std::function<void(store::Store&)>;
  using Item = std::variant<PendingBatch, Task>;

  absl::Status Enqueue(Task task);
  void Loop();
  void CommitGroup(std::vector<PendingBatch>& group);

  const WriteQueueOptions options_;
  std::unique_ptr<store::Store> writer_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable space_cv_;
  std::deque<Item> queue_;
  size_t queued_records_ = 0;
  size_t queued_bytes_ = 0;
  bool stopping_ = false;
  WriteQueueStats stats_;
  std::once_flag join_once_;
  std::thread thread_;
};

}  // namespace surge::core

#endif  // SURGE_SERVER_CORE_WRITE_QUEUE_H_
