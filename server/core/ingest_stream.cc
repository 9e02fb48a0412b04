// Implementation of IngestStream (see ingest_stream.h).
#include "server/core/ingest_stream.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/core/surge_core.h"
#include "server/core/write_queue.h"
#include "server/core/validation.h"

namespace surge::core {
namespace {

absl::Status WithContext(const absl::Status& status, absl::string_view prefix) {
  return absl::Status(status.code(), absl::StrCat(prefix, status.message()));
}

}  // namespace

IngestStream::~IngestStream() {
  Close();
  if (holds_slot_) core_->tenant_limits().CloseStream(caller_.tenant);
}

absl::StatusOr<int64_t> IngestStream::ResolveRun(const std::string& job,
                                                       const std::string& run) {
  std::string key = absl::StrCat(job, std::string(1, '\0'), run);
  auto it = run_cache_.find(key);
  if (it != run_cache_.end()) return it->second;
  absl::StatusOr<int64_t> found = core_->LookupRunId(job, run, caller_);
  if (found.ok()) run_cache_.emplace(std::move(key), *found);
  return found;
}

absl::Status IngestStream::Accept(std::unique_ptr<surge::v1::IngestRequest> request) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!commit_status_.ok()) return commit_status_;
  }
  std::string prefix = absl::StrCat("batch seq ", request->seq(), ": ");
  // Fields this server does not know (a newer client, or padding) are not
  // stored; they are dropped here so they take no queue memory.
  request->DiscardUnknownFields();
  absl::Status valid = ValidateIngestBatch(*request, last_seq_);
  if (!valid.ok()) return WithContext(valid, prefix);

  PendingBatch batch;
  batch.run_ids.reserve(static_cast<size_t>(request->records_size()));
  const std::string* last_run = nullptr;
  int64_t last_run_id = 0;
  for (int i = 0; i < request->records_size(); ++i) {
    const std::string& run = request->records(i).run();
    if (last_run == nullptr || *last_run != run) {
      absl::StatusOr<int64_t> key = ResolveRun(request->job(), run);
      if (!key.ok()) {
        return WithContext(key.status(), absl::StrCat(prefix, "records[", i, "].run: "));
      }
      last_run = &run;
      last_run_id = *key;
    }
    batch.run_ids.push_back(last_run_id);
  }

  // The tenant's share of the server: records per second, bytes queued.
  const int64_t bytes = static_cast<int64_t>(request->ByteSizeLong());
  absl::Status admitted = core_->tenant_limits().AdmitBatch(
      caller_.tenant, request->records_size(), bytes, absl::Now());
  if (!admitted.ok()) return WithContext(admitted, prefix);

  uint64_t seq = request->seq();
  last_seq_ = seq;
  batch.request = std::move(request);
  batch.bytes = static_cast<size_t>(bytes);
  batch.done = [this, seq, bytes, job = batch.request->job()](
                   const absl::StatusOr<BatchResult>& r) {
    core_->tenant_limits().ReleaseBytes(caller_.tenant, bytes);
    // New evidence for the job's fit (debounced; never waits on the fit).
    if (r.ok() && r->stored > 0) core_->OnRecordsStored(job);
    OnCommitted(seq, r);
  };
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++pending_;
  }
  absl::Status queued = core_->write_queue().SubmitBatch(std::move(batch));
  if (!queued.ok()) {
    core_->tenant_limits().ReleaseBytes(caller_.tenant, bytes);
    std::lock_guard<std::mutex> lock(mu_);
    --pending_;
    cv_.notify_all();
    return WithContext(queued, prefix);
  }
  return absl::OkStatus();
}

void IngestStream::OnCommitted(uint64_t seq, const absl::StatusOr<BatchResult>& result) {
  std::lock_guard<std::mutex> lock(mu_);
  --pending_;
  if (commit_status_.ok()) {
    if (result.ok()) {
      // Batches of one stream commit in order, so this extends the prefix.
      committed_seq_ = seq;
      stored_ += result->stored;
      duplicate_ += result->duplicate;
    } else {
      commit_status_ = WithContext(result.status(), absl::StrCat("batch seq ", seq, ": "));
    }
  }
  cv_.notify_all();
}

std::optional<surge::v1::IngestResponse> IngestStream::NextAck() {
  std::unique_lock<std::mutex> lock(mu_);
  // A failed batch ends the acks at once: nothing after it will be acked on
  // this stream, and the client may be waiting for an ack with nothing more
  // to send (the RPC layer then ends the call with the failure).
  cv_.wait(lock, [&] {
    return committed_seq_ > acked_seq_ || !commit_status_.ok() || (closed_ && pending_ == 0);
  });
  if (committed_seq_ <= acked_seq_) return std::nullopt;
  acked_seq_ = committed_seq_;
  surge::v1::IngestResponse ack;
  ack.set_acked_seq(committed_seq_);
  ack.set_records_stored(stored_);
  ack.set_records_duplicate(duplicate_);
  return ack;
}

void IngestStream::Close() {
  std::unique_lock<std::mutex> lock(mu_);
  closed_ = true;
  cv_.notify_all();
  cv_.wait(lock, [&] { return pending_ == 0; });
}

absl::Status IngestStream::commit_status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return commit_status_;
}

}  // namespace surge::core
