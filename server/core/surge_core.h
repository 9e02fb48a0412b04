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
#include "server/core/fit_service.h"
#include "server/core/ingest_stream.h"
#include "server/core/reader_pool.h"
#include "server/core/write_queue.h"
#include "surge/v1/surge.pb.h"

namespace surge::core {

struct CoreOptions {
  std::string db_path = "surge.db";
  WriteQueueOptions write;
  FitServiceOptions fits;
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
  // Deletes one run with its records and schedules a refit of its job.
  absl::StatusOr<surge::v1::DeleteRunResponse> DeleteRun(
      const surge::v1::DeleteRunRequest& request);
  absl::StatusOr<surge::v1::Run> CreateRun(const surge::v1::CreateRunRequest& request);
  absl::StatusOr<surge::v1::ListRunsResponse> ListRuns(const surge::v1::ListRunsRequest& request);
  absl::StatusOr<surge::v1::ListRecordsResponse> ListRecords(
      const surge::v1::ListRecordsRequest& request);

  // --- fits and advice ---
  absl::StatusOr<surge::v1::AddOptimaResponse> AddOptima(
      const surge::v1::AddOptimaRequest& request);
  absl::StatusOr<surge::v1::Fit> GetFit(const surge::v1::GetFitRequest& request);
  absl::StatusOr<surge::v1::Advice> GetAdvice(const surge::v1::GetAdviceRequest& request);
  // For WatchFits: the latest fit (or a not-found error), then newer ones.
  absl::StatusOr<std::shared_ptr<const FitEntry>> LatestFit(const std::string& job);
  std::shared_ptr<const FitEntry> WaitNewerFit(const std::string& job, int64_t after_version,
                                               absl::Duration timeout) {
    return fits_->WaitNewer(job, after_version, timeout);
  }
  bool stopping() const { return fits_->stopping(); }
  FitService& fits() { return *fits_; }

  // Starts the server side of an Ingest stream.
  std::unique_ptr<IngestStream> OpenIngestStream() {
    return std::make_unique<IngestStream>(this);
  }

  // Ends fit watchers and the fit thread (first step of a shutdown).
  void StopFits() { fits_->Stop(); }
  // Stops fits, commits what is queued, then refuses writes with Unavailable.
  void Shutdown();

  // Called (on the writer thread) after records of `job` were committed.
  void OnRecordsStored(const std::string& job) { fits_->MarkDirty(job); }

  // Used by IngestStream.
  absl::StatusOr<store::RunKey> LookupRun(const std::string& job, const std::string& run);
  WriteQueue& write_queue() { return *write_queue_; }

 private:
  SurgeCore(std::unique_ptr<WriteQueue> write_queue, std::unique_ptr<ReaderPool> readers,
            const FitServiceOptions& fit_options)
      : write_queue_(std::move(write_queue)),
        readers_(std::move(readers)),
        fits_(std::make_unique<FitService>(readers_.get(), write_queue_.get(), fit_options)) {}

  std::unique_ptr<WriteQueue> write_queue_;
  std::unique_ptr<ReaderPool> readers_;
  std::unique_ptr<FitService> fits_;
};

// Page tokens of ListRecords: "<run_id>:<step>" behind a version tag.
std::string EncodePageToken(const store::RecordCursor& cursor);
absl::StatusOr<store::RecordCursor> DecodePageToken(const std::string& token);

}  // namespace surge::core

#endif  // SURGE_SERVER_CORE_SURGE_CORE_H_
