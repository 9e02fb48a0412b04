// Implementation of the group-commit writer (see write_queue.h).
#include "server/core/write_queue.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "server/util/status_macros.h"

namespace surge::core {
WriteQueue::WriteQueue(std::unique_ptr<store::Store> writer,
                       const WriteQueueOptions& options)
    : options_(options), writer_(std::move(writer)), thread_([this] { Loop(); }) {}

WriteQueue::~WriteQueue() { Stop(); }

absl::Status WriteQueue::SubmitBatch(PendingBatch batch) {
  size_t n = static_cast<size_t>(batch.request->records_size());
  // The caller may have sized the batch already (IngestStream does, for the
  // tenant's byte limit): a serialized size is a walk over every record.
  if (batch.bytes == 0) batch.bytes = batch.request->ByteSizeLong();
  const size_t bytes = batch.bytes;
  std::unique_lock<std::mutex> lock(mu_);
  // A batch larger than a whole budget is admitted once the queue is empty.
  space_cv_.wait(lock, [&] {
    return stopping_ || (queued_records_ == 0 && queued_bytes_ == 0) ||
           (queued_records_ + n <= options_.max_queued_records &&
            queued_bytes_ + bytes <= options_.max_queued_bytes);
  });
  if (stopping_) return absl::UnavailableError("server is shutting down; re-send after reconnect");
  queued_records_ += n;
  queued_bytes_ += bytes;
  queue_.emplace_back(std::move(batch));
  work_cv_.notify_one();
  return absl::OkStatus();
}

absl::Status WriteQueue::Enqueue(Task task) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return absl::UnavailableError("server is shutting down");
  queue_.emplace_back(std::move(task));
  work_cv_.notify_one();
  return absl::OkStatus();
}

void WriteQueue::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  space_cv_.notify_all();
  // Concurrent Stop() calls: exactly one joins, the others wait for it.
  std::call_once(join_once_, [this] { thread_.join(); });
}

WriteQueueStats WriteQueue::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void WriteQueue::Loop() {
  std::vector<PendingBatch> group;
  while (true) {
    Task task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      if (std::holds_alternative<Task>(queue_.front())) {
        task = std::move(std::get<Task>(queue_.front()));
        queue_.pop_front();
      } else {
        // Gather consecutive batches, up to the per-commit record budget.
        size_t records = 0, bytes = 0;
        while (!queue_.empty() && std::holds_alternative<PendingBatch>(queue_.front())) {
          auto& next = std::get<PendingBatch>(queue_.front());
          size_t n = static_cast<size_t>(next.request->records_size());
          if (!group.empty() && records + n > options_.max_records_per_commit) break;
          records += n;
          bytes += next.bytes;
          group.push_back(std::move(next));
          queue_.pop_front();
        }
        queued_records_ -= records;
        queued_bytes_ -= bytes;
        space_cv_.notify_all();
      }
    }
    if (task) {
      task(*writer_);
    } else {
      CommitGroup(group);
      group.clear();
    }
  }
}

void WriteQueue::CommitGroup(std::vector<PendingBatch>& group) {
  std::vector<store::RecordBatch> batches;
  batches.reserve(group.size());
  for (const PendingBatch& b : group) batches.push_back({b.request.get(), &b.run_ids});
  const int64_t now_us = absl::ToUnixMicros(absl::Now());
  // The store owns the transaction; the hook runs between the last batch and
  // the COMMIT.
  bool acked_early = false;
  store::BeforeCommit before_commit;
#ifdef SURGE_PLANT_ACK_BEFORE_COMMIT
  // A planted bug for the fault tests' self-check only (CMake
  // -DSURGE_PLANT_ACK_BEFORE_COMMIT=ON, never in a real build): acks before
  // the COMMIT, then pauses, so that a kill -9 can land between the two and
  // kill_loop_test must report acked records lost.
  before_commit = [&](const std::vector<absl::StatusOr<BatchResult>>& applied) {
    acked_early = true;
    for (size_t i = 0; i < group.size(); ++i) group[i].done(applied[i]);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  };
#endif
  store::GroupResult written = writer_->WriteGroup(batches, now_us, before_commit);
  absl::Status txn = written.commit;
  std::vector<absl::StatusOr<BatchResult>> results = std::move(written.batches);
  const absl::Duration commit_latency = written.commit_latency;
  if (txn.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.last_commit_us = absl::ToInt64Microseconds(commit_latency);
  } else {
    // The store maps its codes by meaning (a full disk or an I/O error:
    // UNAVAILABLE, retry later; a damaged file: DATA_LOSS); only what it
    // could not classify stays INTERNAL.
    const absl::StatusCode code = txn.code() == absl::StatusCode::kUnavailable ||
                                          txn.code() == absl::StatusCode::kDataLoss
                                      ? txn.code()
                                      : absl::StatusCode::kInternal;
    absl::Status failed =
        absl::Status(code, absl::StrCat("commit failed, batch not stored: ", txn.message()));
    results.assign(group.size(), failed);
  }
  BatchResult committed;
  for (const auto& r : results) {
    if (!r.ok()) continue;
    committed.stored += r->stored;
    committed.duplicate += r->duplicate;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (txn.ok()) ++stats_.commits;
    stats_.records_stored += committed.stored;
    stats_.records_duplicate += committed.duplicate;
  }
  if (txn.ok() && options_.on_commit) {
    options_.on_commit(commit_latency, committed.stored, committed.duplicate);
  }
  if (!acked_early) {
    for (size_t i = 0; i < group.size(); ++i) group[i].done(results[i]);
  }
}

}  // namespace surge::core
