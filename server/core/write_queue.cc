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
namespace {

// The fields in which `sent` differs from `stored`, e.g. "loss 0.5 stored,
// 0.7 sent"; empty when the record is the same.
std::string RecordDifference(const surge::v1::Record& stored, const surge::v1::Record& sent) {
  std::vector<std::string> diffs;
  auto num = [&](const char* name, double a, double b) {
    if (!(a == b)) diffs.push_back(absl::StrCat(name, " ", a, " stored, ", b, " sent"));
  };
  auto opt = [&](const char* name, bool has_a, double a, bool has_b, double b) {
    if (has_a != has_b) {
      diffs.push_back(absl::StrCat(name, has_a ? " stored, absent in the re-send"
                                               : " absent when stored, sent now"));
    } else if (has_a) {
      num(name, a, b);
    }
  };
  if (stored.examples() != sent.examples()) {
    diffs.push_back(absl::StrCat("examples ", stored.examples(), " stored, ", sent.examples(),
                                 " sent"));
  }
  num("lr", stored.lr(), sent.lr());
  num("loss", stored.loss(), sent.loss());
  opt("eval_loss", stored.has_eval_loss(), stored.eval_loss(), sent.has_eval_loss(),
      sent.eval_loss());
  opt("grad_stats.grad_sq_small", stored.has_grad_stats(), stored.grad_stats().grad_sq_small(),
      sent.has_grad_stats(), sent.grad_stats().grad_sq_small());
  if (stored.has_grad_stats() && sent.has_grad_stats()) {
    num("grad_stats.grad_sq_big", stored.grad_stats().grad_sq_big(), sent.grad_stats().grad_sq_big());
    num("grad_stats.b_small", static_cast<double>(stored.grad_stats().b_small()),
        static_cast<double>(sent.grad_stats().b_small()));
    num("grad_stats.b_big", static_cast<double>(stored.grad_stats().b_big()),
        static_cast<double>(sent.grad_stats().b_big()));
  }
  return absl::StrJoin(diffs, ", ");
}

}  // namespace

WriteQueue::WriteQueue(std::unique_ptr<store::SqliteStore> writer,
                       const WriteQueueOptions& options)
    : options_(options), writer_(std::move(writer)), thread_([this] { Loop(); }) {}

WriteQueue::~WriteQueue() { Stop(); }

absl::Status WriteQueue::SubmitBatch(PendingBatch batch) {
  size_t n = static_cast<size_t>(batch.request->records_size());
  batch.bytes = batch.request->ByteSizeLong();
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

absl::StatusOr<BatchResult> WriteQueue::WriteBatch(const PendingBatch& batch, int64_t now_us) {
  // Per run: records added and the highest step, to keep runs' counters.
  absl::flat_hash_map<int64_t, std::pair<int64_t, int64_t>> per_run;
  BatchResult result;
  const auto& records = batch.request->records();
  for (int i = 0; i < records.size(); ++i) {
    int64_t run_id = batch.run_ids[static_cast<size_t>(i)];
    SURGE_ASSIGN_OR_RETURN(bool inserted, writer_->InsertRecord(run_id, records[i]));
    if (!inserted) {
      // An identical re-send (after a reconnect) is a silent duplicate; other
      // values for a stored (run, step) are refused, not dropped unseen.
      SURGE_ASSIGN_OR_RETURN(std::optional<surge::v1::Record> stored,
                             writer_->GetRecord(run_id, records[i].step()));
      if (stored.has_value()) {
        if (std::string diff = RecordDifference(*stored, records[i]); !diff.empty()) {
          return absl::AlreadyExistsError(absl::StrCat(
              "records[", i, "] (run '", records[i].run(), "', step ", records[i].step(),
              "): already stored with other values (", diff,
              "); a step is stored once: re-send the same values or use another step"));
        }
      }
      ++result.duplicate;
      continue;
    }
    ++result.stored;
    auto& [added, max_step] = per_run.try_emplace(run_id, 0, -1).first->second;
    ++added;
    max_step = std::max(max_step, records[i].step());
  }
  for (const auto& [run_id, counts] : per_run) {
    SURGE_RETURN_IF_ERROR(writer_->BumpRun(run_id, counts.first, counts.second, now_us));
  }
  return result;
}

void WriteQueue::CommitGroup(std::vector<PendingBatch>& group) {
  std::vector<absl::StatusOr<BatchResult>> results;
  results.reserve(group.size());
  int64_t now_us = absl::ToUnixMicros(absl::Now());

  absl::Status txn = writer_->Begin();
  if (txn.ok()) {
    for (const PendingBatch& batch : group) {
      absl::Status sp = writer_->Savepoint();
      if (!sp.ok()) {
        txn = sp;
        break;
      }
      absl::StatusOr<BatchResult> r = WriteBatch(batch, now_us);
      absl::Status end = r.ok() ? writer_->ReleaseSavepoint() : writer_->RollbackToSavepoint();
      if (!end.ok()) {
        // An I/O error or a full disk inside a statement can make SQLite roll
        // back the whole transaction, savepoint included ("no such
        // savepoint"): the batch's own error is then what failed the group.
        txn = r.ok() ? end
                     : absl::Status(r.status().code(), absl::StrCat(r.status().message(),
                                                                    " (transaction rolled back)"));
        break;
      }
      results.push_back(std::move(r));
    }
  }
#ifdef SURGE_PLANT_ACK_BEFORE_COMMIT
  // A planted bug for the fault tests' self-check only (CMake
  // -DSURGE_PLANT_ACK_BEFORE_COMMIT=ON, never in a real build): acks before
  // the COMMIT, then pauses, so that a kill -9 can land between the two and
  // kill_loop_test must report acked records lost.
  const bool acked_early = txn.ok() && results.size() == group.size();
  if (acked_early) {
    for (size_t i = 0; i < group.size(); ++i) group[i].done(results[i]);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
#else
  const bool acked_early = false;
#endif
  absl::Duration commit_latency;
  if (txn.ok()) {
    absl::Time start = absl::Now();
    txn = writer_->Commit();
    commit_latency = absl::Now() - start;
    std::lock_guard<std::mutex> lock(mu_);
    stats_.last_commit_us = absl::ToInt64Microseconds(commit_latency);
  }
  if (!txn.ok()) {
    writer_->Rollback().IgnoreError();
    // The store maps SQLite's codes by meaning (a full disk or an I/O error:
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
