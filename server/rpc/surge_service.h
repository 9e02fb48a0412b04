// SurgeService: the gRPC handlers of surge.v1.Surge. Each handler turns the
// call's `authorization` metadata into a Caller (core), calls the core,
// converts the status once, records the call in the metrics (when given) and
// returns; no logic lives here.
#ifndef SURGE_SERVER_RPC_SURGE_SERVICE_H_
#define SURGE_SERVER_RPC_SURGE_SERVICE_H_

#include <atomic>

#include "server/core/surge_core.h"
#include "server/metrics/metrics.h"
#include "surge/v1/surge.grpc.pb.h"

namespace surge::rpc {

struct SurgeServiceOptions {
  // Concurrent Ingest streams; one more is answered RESOURCE_EXHAUSTED at
  // once (each stream holds two threads while open).
  int max_ingest_streams = 256;
};

class SurgeService final : public surge::v1::Surge::Service {
 public:
  // `metrics` may be null (no metrics recorded); it must outlive the service.
  explicit SurgeService(core::SurgeCore* core, metrics::ServerMetrics* metrics = nullptr,
                        const SurgeServiceOptions& options = {})
      : core_(core), metrics_(metrics), options_(options) {}

  grpc::Status CreateJob(grpc::ServerContext*, const surge::v1::CreateJobRequest* request,
                         surge::v1::Job* response) override;
  grpc::Status GetJob(grpc::ServerContext*, const surge::v1::GetJobRequest* request,
                      surge::v1::Job* response) override;
  grpc::Status ListJobs(grpc::ServerContext*, const surge::v1::ListJobsRequest* request,
                        surge::v1::ListJobsResponse* response) override;
  grpc::Status DeleteJob(grpc::ServerContext*, const surge::v1::DeleteJobRequest* request,
                         surge::v1::DeleteJobResponse* response) override;
  grpc::Status CreateRun(grpc::ServerContext*, const surge::v1::CreateRunRequest* request,
                         surge::v1::Run* response) override;
  grpc::Status ListRuns(grpc::ServerContext*, const surge::v1::ListRunsRequest* request,
                        surge::v1::ListRunsResponse* response) override;
  grpc::Status DeleteRun(grpc::ServerContext*, const surge::v1::DeleteRunRequest* request,
                         surge::v1::DeleteRunResponse* response) override;
  grpc::Status ListRecords(grpc::ServerContext*, const surge::v1::ListRecordsRequest* request,
                           surge::v1::ListRecordsResponse* response) override;
  grpc::Status AddOptima(grpc::ServerContext*, const surge::v1::AddOptimaRequest* request,
                         surge::v1::AddOptimaResponse* response) override;
  grpc::Status GetFit(grpc::ServerContext*, const surge::v1::GetFitRequest* request,
                      surge::v1::Fit* response) override;
  grpc::Status GetAdvice(grpc::ServerContext*, const surge::v1::GetAdviceRequest* request,
                         surge::v1::Advice* response) override;
  grpc::Status WatchFits(grpc::ServerContext* context, const surge::v1::WatchFitsRequest* request,
                         grpc::ServerWriter<surge::v1::Fit>* writer) override;
  grpc::Status Ingest(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<surge::v1::IngestResponse, surge::v1::IngestRequest>* stream)
      override;

 private:
  grpc::Status WatchFitsUntilCancelled(grpc::ServerContext* context, const core::Caller& caller,
                                       const surge::v1::WatchFitsRequest* request,
                                       grpc::ServerWriter<surge::v1::Fit>* writer);
  grpc::Status IngestUntilClosed(
      grpc::ServerContext* context, const core::Caller& caller,
      grpc::ServerReaderWriter<surge::v1::IngestResponse, surge::v1::IngestRequest>* stream);
  // The caller named by the call's `authorization` metadata (core::Authenticate).
  absl::StatusOr<core::Caller> CallerOf(const grpc::ServerContext* context) const;
  // Measured(), after authenticating the call; `call` gets the Caller.
  template <typename Call>
  grpc::Status Authenticated(const char* method, const grpc::ServerContext* context, Call&& call);
  // Runs `call` and records its status code and latency under `method`.
  template <typename Call>
  grpc::Status Measured(const char* method, Call&& call);

  core::SurgeCore* const core_;
  metrics::ServerMetrics* const metrics_;
  const SurgeServiceOptions options_;
  std::atomic<int> ingest_streams_{0};
};

}  // namespace surge::rpc

#endif  // SURGE_SERVER_RPC_SURGE_SERVICE_H_
