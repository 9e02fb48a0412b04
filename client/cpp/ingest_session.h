// IngestSession: streams records to surge over the bidirectional Ingest RPC.
//
// Append() adds a record to the open batch and returns at once (it waits only
// when `max_unacked_records` are already buffered). A background thread seals
// batches (by size or after `linger`), writes them, and drops them when the
// server's ack says they are durable. When the stream breaks (server killed,
// restarted, network), the thread reconnects with backoff and re-sends every
// unacked batch; the server ignores records it already stored, so a re-send
// never duplicates. A permanent error (INVALID_ARGUMENT, NOT_FOUND, ...) stops
// the session; Append/Flush then return it.
//
// Records are acked in the order they were appended: stats().acked_records is
// the length of the appended prefix that is durable on the server.
// Thread-safe.
#ifndef SURGE_CLIENT_CPP_INGEST_SESSION_H_
#define SURGE_CLIENT_CPP_INGEST_SESSION_H_

#include <grpcpp/channel.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "surge/v1/surge.grpc.pb.h"

namespace surge::client {

struct IngestOptions {
  // A batch is sealed at this many records, or `linger` after its first one.
  int batch_records = 4096;
  absl::Duration linger = absl::Milliseconds(20);
  // Append waits (up to its max_wait) while this many records are unacked.
  int64_t max_unacked_records = 1 << 20;
  // Deadline of one stream; the session reconnects transparently after it.
  absl::Duration stream_deadline = absl::Minutes(30);
  // Reconnect backoff: doubles from initial to max.
  absl::Duration initial_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(2);
  // How long the destructor waits for unacked records before giving up.
  absl::Duration close_timeout = absl::Seconds(30);
};

struct IngestStats {
  int64_t appended_records = 0;
  int64_t acked_records = 0;      // durable on the server (prefix of appended)
  int64_t stored_records = 0;     // acked and new on the server
  int64_t duplicate_records = 0;  // acked but already stored (re-sends)
  int64_t batches_sent = 0;       // including re-sends
  int64_t batches_resent = 0;
  int64_t reconnects = 0;
};

class IngestSession {
 public:
  IngestSession(std::shared_ptr<grpc::Channel> channel, std::string job,
                const IngestOptions& options = {});
  ~IngestSession();
  IngestSession(const IngestSession&) = delete;
  IngestSession& operator=(const IngestSession&) = delete;

  // Adds a record. ResourceExhausted if the buffer stays full for max_wait;
  // the session's permanent error if it has one.
  absl::Status Append(surge::v1::Record record,
                      absl::Duration max_wait = absl::InfiniteDuration());

  // Seals the open batch and waits until every appended record is acked.
  // DeadlineExceeded (with the count still unacked) on timeout.
  absl::Status Flush(absl::Duration timeout = absl::InfiniteDuration());

  // Flush, then stop the background thread. Idempotent.
  absl::Status Close(absl::Duration timeout = absl::InfiniteDuration());

  IngestStats stats() const;

 private:
  struct Batch {
    uint64_t seq;
    int64_t records;
    std::shared_ptr<const surge::v1::IngestRequest> request;
  };

  void Run();
  // One stream: returns its final status (OK only after a clean close).
  grpc::Status RunStream();
  void SealLocked();
  bool ShouldSealLocked(absl::Time now) const;

  const std::string job_;
  const IngestOptions options_;
  std::unique_ptr<surge::v1::Surge::Stub> stub_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  surge::v1::IngestRequest open_;
  absl::Time open_since_;
  bool flush_requested_ = false;
  std::deque<Batch> unacked_;    // sealed, in seq order
  size_t sent_on_stream_ = 0;    // prefix of unacked_ written on this stream
  int64_t unacked_records_ = 0;  // includes the open batch
  uint64_t next_seq_ = 1;
  uint64_t max_seq_sent_ = 0;    // for counting re-sends
  bool stream_broken_ = false;
  bool stopping_ = false;
  bool stopped_ = false;
  absl::Status error_;
  grpc::ClientContext* current_context_ = nullptr;  // the live stream's
  IngestStats stats_;
  std::thread thread_;
};

}  // namespace surge::client

#endif  // SURGE_CLIENT_CPP_INGEST_SESSION_H_
