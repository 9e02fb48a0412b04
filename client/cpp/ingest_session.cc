// Implementation of IngestSession (see ingest_session.h for the contract).
#include "client/cpp/ingest_session.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "client/cpp/surge_client.h"

namespace surge::client {
namespace {

// Errors that re-sending the same batch cannot fix.
bool IsPermanent(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::OUT_OF_RANGE:
    case grpc::StatusCode::UNIMPLEMENTED:
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::DATA_LOSS:
      return true;
    default:
      return false;
  }
}

std::chrono::microseconds ToChrono(absl::Duration d) {
  return std::chrono::microseconds(absl::ToInt64Microseconds(d));
}

}  // namespace

IngestSession::IngestSession(std::shared_ptr<grpc::Channel> channel, std::string job,
                             const IngestOptions& options)
    : job_(std::move(job)), options_(options), stub_(surge::v1::Surge::NewStub(channel)) {
  open_.set_job(job_);
  thread_ = std::thread([this] { Run(); });
}

IngestSession::~IngestSession() { Close(options_.close_timeout).IgnoreError(); }

absl::Status IngestSession::Append(surge::v1::Record record, absl::Duration max_wait) {
  std::unique_lock<std::mutex> lock(mu_);
  auto has_room = [&] {
    return !error_.ok() || stopping_ || unacked_records_ < options_.max_unacked_records;
  };
  if (max_wait == absl::InfiniteDuration()) {
    cv_.wait(lock, has_room);
  } else if (!cv_.wait_for(lock, ToChrono(max_wait), has_room)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("ingest buffer full: ", unacked_records_,
                     " records not yet acked (is the server reachable?)"));
  }
  if (!error_.ok()) return error_;
  if (stopping_) return absl::FailedPreconditionError("ingest session is closed");
  if (open_.records_size() == 0) open_since_ = absl::Now();
  *open_.add_records() = std::move(record);
  ++unacked_records_;
  ++stats_.appended_records;
  if (open_.records_size() >= options_.batch_records) {
    SealLocked();
    cv_.notify_all();
  } else if (open_.records_size() == 1) {
    cv_.notify_all();  // the writer starts the linger timer
  }
  return absl::OkStatus();
}

absl::Status IngestSession::Flush(absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  flush_requested_ = true;
  cv_.notify_all();
  auto done = [&] { return !error_.ok() || unacked_records_ == 0 || stopped_; };
  if (timeout == absl::InfiniteDuration()) {
    cv_.wait(lock, done);
  } else {
    cv_.wait_for(lock, ToChrono(timeout), done);
  }
  if (!error_.ok()) return error_;
  if (unacked_records_ > 0) {
    return absl::DeadlineExceededError(
        absl::StrCat(unacked_records_, " records not acked by the server in time"));
  }
  return absl::OkStatus();
}

absl::Status IngestSession::Close(absl::Duration timeout) {
  absl::Status status = Flush(timeout);
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    // A stream waiting for the server (or blocked in a write) ends now.
    if (current_context_ != nullptr && unacked_records_ > 0) current_context_->TryCancel();
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  return status;
}

IngestStats IngestSession::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

bool IngestSession::ShouldSealLocked(absl::Time now) const {
  if (open_.records_size() == 0) return false;
  return flush_requested_ || stopping_ || now - open_since_ >= options_.linger;
}

void IngestSession::SealLocked() {
  flush_requested_ = false;
  if (open_.records_size() == 0) return;
  auto request = std::make_shared<surge::v1::IngestRequest>();
  request->Swap(&open_);
  open_.set_job(job_);
  request->set_seq(next_seq_);
  unacked_.push_back(Batch{next_seq_, request->records_size(), std::move(request)});
  ++next_seq_;
}

void IngestSession::Run() {
  absl::Duration backoff = options_.initial_backoff;
  while (true) {
    int64_t acked_before = 0;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !unacked_.empty() || open_.records_size() > 0; });
      if (stopping_) break;
      acked_before = stats_.acked_records;
    }
    grpc::Status status = RunStream();
    std::unique_lock<std::mutex> lock(mu_);
    if (stopping_) break;
    // A stream that got acks reached a working server: the backoff starts
    // over, so a long stream with rare failures (an I/O error on the server)
    // does not wait max_backoff after each.
    if (status.ok() || stats_.acked_records > acked_before) backoff = options_.initial_backoff;
    if (status.ok()) continue;
    if (IsPermanent(status.error_code())) {
      // The server acked everything before the bad batch: it is the front.
      error_ = FromGrpcStatus(status);
      if (!unacked_.empty()) {
        unacked_records_ -= unacked_.front().records;
        unacked_.pop_front();
      }
      break;
    }
    ++stats_.reconnects;
    cv_.wait_for(lock, ToChrono(backoff), [&] { return stopping_; });
    if (stopping_) break;
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
  std::lock_guard<std::mutex> lock(mu_);
  stopped_ = true;
  cv_.notify_all();
}

grpc::Status IngestSession::RunStream() {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + ToChrono(options_.stream_deadline));
  // Wait for the channel to (re)connect instead of failing fast: the writes
  // below block until then, and Close() cancels through current_context_.
  context.set_wait_for_ready(true);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return grpc::Status::CANCELLED;
    current_context_ = &context;
  }
  auto stream = stub_->Ingest(&context);
  {
    std::lock_guard<std::mutex> lock(mu_);
    sent_on_stream_ = 0;  // everything unacked is (re-)sent on this stream
    stream_broken_ = false;
  }

  std::thread reader([&] {
    surge::v1::IngestResponse ack;
    int64_t last_stored = 0;
    int64_t last_duplicate = 0;
    while (stream->Read(&ack)) {
      std::lock_guard<std::mutex> lock(mu_);
      while (!unacked_.empty() && unacked_.front().seq <= ack.acked_seq()) {
        stats_.acked_records += unacked_.front().records;
        unacked_records_ -= unacked_.front().records;
        unacked_.pop_front();
        if (sent_on_stream_ > 0) --sent_on_stream_;
      }
      stats_.stored_records += ack.records_stored() - last_stored;
      stats_.duplicate_records += ack.records_duplicate() - last_duplicate;
      last_stored = ack.records_stored();
      last_duplicate = ack.records_duplicate();
      cv_.notify_all();
    }
    std::lock_guard<std::mutex> lock(mu_);
    stream_broken_ = true;
    cv_.notify_all();
  });

  bool clean = false;
  while (true) {
    std::shared_ptr<const surge::v1::IngestRequest> next;
    {
      std::unique_lock<std::mutex> lock(mu_);
      while (true) {
        if (stream_broken_ || stopping_) break;
        absl::Time now = absl::Now();
        if (ShouldSealLocked(now)) SealLocked();
        if (sent_on_stream_ < unacked_.size()) break;
        if (open_.records_size() > 0) {
          cv_.wait_for(lock, ToChrono(options_.linger - (now - open_since_)));
        } else {
          cv_.wait(lock);
        }
      }
      if (stream_broken_) break;
      if (stopping_) {
        clean = unacked_.empty();
        break;
      }
      const Batch& batch = unacked_[sent_on_stream_++];
      next = batch.request;
      ++stats_.batches_sent;
      if (batch.seq <= max_seq_sent_) {
        ++stats_.batches_resent;
      } else {
        max_seq_sent_ = batch.seq;
      }
    }
    if (!stream->Write(*next)) break;
  }
  if (clean) {
    stream->WritesDone();
  } else {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) context.TryCancel();
  }
  reader.join();
  grpc::Status status = stream->Finish();
  std::lock_guard<std::mutex> lock(mu_);
  current_context_ = nullptr;
  return status;
}

}  // namespace surge::client
