// SurgeCore: the server's logic below the network, shared by gRPC (and later
// HTTP) handlers. It validates requests, routes writes through the single
// WriteQueue and reads through the ReaderPool. Every method is thread-safe
// and returns absl::Status codes that map 1:1 to gRPC codes.
#ifndef SURGE_SERVER_CORE_SURGE_CORE_H_
#define SURGE_SERVER_CORE_SURGE_CORE_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/core/ingest_stream.h"
#include "server/core/reader_pool.h"
#include "server/core/write_queue.h"
#include "surge/v1/surge.pb.h"

namespace surge::core {

struct CoreOptions {
  std::string db_path = "surge.db";
  WriteQueueOptions write;
  int max_readers = 8;
};

class SurgeCore {
 public:
  static absl::StatusOr<std::unique_ptr<SurgeCore>> Open(const CoreOptions& options);
  ~SurgeCore();

  absl::StatusOr<surge::v1::Job> CreateJob(const surge::v1::CreateJobRequest& request);
  absl::StatusOr<surge::v1::Job> GetJob(const surge::v1::GetJobRequest& request);
  absl::StatusOr<surge::v1::ListJobsResponse> ListJobs(const surge::v1::ListJobsRequest& request);
  absl::StatusOr<surge::v1::DeleteJobResponse> DeleteJob(
      const surge::v1::DeleteJobRequest& request);
  absl::StatusOr<surge::v1::Run> CreateRun(const surge::v1::CreateRunRequest& request);
  absl::StatusOr<surge::v1::ListRunsResponse> ListRuns(const surge::v1::ListRunsRequest& request);
  absl::StatusOr<surge::v1::ListRecordsResponse> ListRecords(
      const surge::v1::ListRecordsRequest& request);

  // Starts the server side of an Ingest stream.
  std::unique_ptr<IngestStream> OpenIngestStream() {
    return std::make_unique<IngestStream>(this);
  }

  // Commits what is queued, then refuses writes with Unavailable.
  void Shutdown();

  // Used by IngestStream.
  absl::StatusOr<store::RunKey> LookupRun(const std::string& job, const std::string& run);
  WriteQueue& write_queue() { return *write_queue_; }

 private:
  SurgeCore(std::unique_ptr<WriteQueue> write_queue, std::unique_ptr<ReaderPool> readers)
      : write_queue_(std::move(write_queue)), readers_(std::move(readers)) {}

  std::unique_ptr<WriteQueue> write_queue_;
  std::unique_ptr<ReaderPool> readers_;
};

// Page tokens of ListRecords: "<run_id>:<step>" behind a version tag.
std::string EncodePageToken(const store::RecordCursor& cursor);
absl::StatusOr<store::RecordCursor> DecodePageToken(const std::string& token);

}  // namespace surge::core

#endif  // SURGE_SERVER_CORE_SURGE_CORE_H_
