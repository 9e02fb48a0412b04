// IngestStream: the server side of one Ingest RPC, below the network.
//
// The RPC layer feeds it batches (Accept) from its reading thread and pulls
// acks (NextAck) from a second thread, so acks flow while the client keeps
// sending. A batch is validated whole and its runs resolved before it is
// queued; acks advance only over a contiguous prefix of committed batches.
// A stream acts for one Caller: it may write only to its tenant's jobs, and
// its batches count against the tenant's limits (tenant_limits.h).
#ifndef SURGE_SERVER_CORE_INGEST_STREAM_H_
#define SURGE_SERVER_CORE_INGEST_STREAM_H_

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "server/core/auth.h"
#include "server/core/write_queue.h"
#include "surge/v1/surge.pb.h"

namespace surge::core {

class SurgeCore;

class IngestStream {
 public:
  // Made by SurgeCore::OpenIngestStream; when `holds_slot`, it took one of
  // the tenant's stream slots, which the destructor gives back.
  IngestStream(SurgeCore* core, Caller caller, bool holds_slot)
      : core_(core), caller_(std::move(caller)), holds_slot_(holds_slot) {}
  ~IngestStream();
  IngestStream(const IngestStream&) = delete;
  IngestStream& operator=(const IngestStream&) = delete;

  // Validates and queues one batch. Returns the error that ends the stream
  // (the batch is then not stored), including a failed earlier commit.
  absl::Status Accept(std::unique_ptr<surge::v1::IngestRequest> request);

  // Blocks until an ack newer than the last one returned exists; returns
  // nullopt once the stream is closed and every ack has been handed out, or
  // once a batch has failed (commit_status(); its last ack first).
  std::optional<surge::v1::IngestResponse> NextAck();

  // Ends input and waits until every queued batch has been committed or failed.
  void Close();

  // The first commit failure of this stream (ok if none).
  absl::Status commit_status() const;

 private:
  absl::StatusOr<int64_t> ResolveRun(const std::string& job, const std::string& run);
  void OnCommitted(uint64_t seq, const absl::StatusOr<BatchResult>& result);

  SurgeCore* const core_;
  const Caller caller_;
  const bool holds_slot_;
  uint64_t last_seq_ = 0;  // only the reading thread touches these two
  absl::flat_hash_map<std::string, int64_t> run_cache_;  // run ids; key: job + '\0' + run

  mutable std::mutex mu_;
  std::condition_variable cv_;
  int pending_ = 0;
  bool closed_ = false;
  uint64_t committed_seq_ = 0;
  uint64_t acked_seq_ = 0;
  int64_t stored_ = 0;
  int64_t duplicate_ = 0;
  absl::Status commit_status_;
};

}  // namespace surge::core

#endif  // SURGE_SERVER_CORE_INGEST_STREAM_H_
