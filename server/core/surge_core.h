// SurgeCore: the server's logic below the network, shared by the gRPC and
// HTTP handlers. It authenticates and authorizes callers, validates
// requests, routes writes through the single WriteQueue and reads through
// the ReaderPool. Every method is thread-safe and returns absl::Status codes
// that map 1:1 to gRPC codes. This header names no store type: the parts
// below (write queue, readers, fit service, ingest streams) are declared
// here only, in their own headers for the code that needs them.
#ifndef SURGE_SERVER_CORE_SURGE_CORE_H_
#define SURGE_SERVER_CORE_SURGE_CORE_H_

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/core/auth.h"
#include "server/core/fit_entry.h"
#include "server/core/options.h"
#include "server/core/tenant_limits.h"
#include "surge/v1/surge.pb.h"

namespace surge::core {

class FitService;
class IngestStream;
class ReaderPool;
class WriteQueue;

class SurgeCore {
 public:
  static absl::StatusOr<std::unique_ptr<SurgeCore>> Open(const CoreOptions& options);
  ~SurgeCore();

  // Every call names its Caller (auth.h): the role must allow the call, and
  // a job of another tenant answers NOT_FOUND like a missing one. The
  // default is the local admin (a server without tokens; in-process callers).
  absl::StatusOr<surge::v1::Job> CreateJob(const surge::v1::CreateJobRequest& request,
                                           const Caller& caller = Caller::Local());
  absl::StatusOr<surge::v1::Job> GetJob(const surge::v1::GetJobRequest& request,
                                        const Caller& caller = Caller::Local());
  // The caller's tenant's jobs only.
  absl::StatusOr<surge::v1::ListJobsResponse> ListJobs(const surge::v1::ListJobsRequest& request,
                                                       const Caller& caller = Caller::Local());
  absl::StatusOr<surge::v1::DeleteJobResponse> DeleteJob(
      const surge::v1::DeleteJobRequest& request, const Caller& caller = Caller::Local());
  // Deletes one run with its records and schedules a refit of its job.
  absl::StatusOr<surge::v1::DeleteRunResponse> DeleteRun(
      const surge::v1::DeleteRunRequest& request, const Caller& caller = Caller::Local());
  absl::StatusOr<surge::v1::Run> CreateRun(const surge::v1::CreateRunRequest& request,
                                           const Caller& caller = Caller::Local());
  absl::StatusOr<surge::v1::ListRunsResponse> ListRuns(const surge::v1::ListRunsRequest& request,
                                                       const Caller& caller = Caller::Local());
  absl::StatusOr<surge::v1::ListRecordsResponse> ListRecords(
      const surge::v1::ListRecordsRequest& request, const Caller& caller = Caller::Local());

  // --- fits and advice ---
  absl::StatusOr<surge::v1::AddOptimaResponse> AddOptima(
      const surge::v1::AddOptimaRequest& request, const Caller& caller = Caller::Local());
  absl::StatusOr<surge::v1::Fit> GetFit(const surge::v1::GetFitRequest& request,
                                        const Caller& caller = Caller::Local());
  absl::StatusOr<surge::v1::Advice> GetAdvice(const surge::v1::GetAdviceRequest& request,
                                              const Caller& caller = Caller::Local());
  // For WatchFits: the latest fit (or a not-found error), then newer ones.
  absl::StatusOr<std::shared_ptr<const FitEntry>> LatestFit(
      const std::string& job, const Caller& caller = Caller::Local());
  std::shared_ptr<const FitEntry> WaitNewerFit(const std::string& job, int64_t after_version,
                                               absl::Duration timeout);
  bool stopping() const;
  FitService& fits() { return *fits_; }

  // Starts the server side of an Ingest stream for `caller` (a writer):
  // PERMISSION_DENIED for a reader, RESOURCE_EXHAUSTED when the tenant has
  // its limit of streams open.
  absl::StatusOr<std::unique_ptr<IngestStream>> OpenIngestStream(const Caller& caller);
  // The local admin's stream (in-process callers and tests; no stream slot).
  std::unique_ptr<IngestStream> OpenIngestStream();

  // --- who is calling ---
  // The Caller of a request's "Bearer <token>" (empty: none given).
  absl::StatusOr<Caller> Authenticate(absl::string_view authorization) const {
    return auth_.Authenticate(authorization);
  }
  bool tokens_enabled() const { return auth_.enabled(); }
  // Re-reads the token file (token rotation); the old tokens stay on error.
  absl::Status ReloadTokens() { return auth_.Reload(); }
  // OK when `caller`'s role allows `needed` and, for a non-empty `job`, the
  // job exists and is the caller's tenant's (NOT_FOUND otherwise).
  absl::Status Authorize(const Caller& caller, Permission needed, const std::string& job);
  TenantLimits& tenant_limits() { return tenant_limits_; }

  // Ends fit watchers and the fit thread (first step of a shutdown).
  void StopFits();
  // Stops fits, commits what is queued, then refuses writes with Unavailable.
  void Shutdown();

  // Called (on the writer thread) after records of `job` were committed.
  void OnRecordsStored(const std::string& job);

  // Used by IngestStream: the id of `run` of `job`, which must be the
  // caller's tenant's (NOT_FOUND otherwise).
  absl::StatusOr<int64_t> LookupRunId(const std::string& job, const std::string& run,
                                      const Caller& caller = Caller::Local());
  WriteQueue& write_queue() { return *write_queue_; }

 private:
  SurgeCore(std::unique_ptr<WriteQueue> write_queue, std::unique_ptr<ReaderPool> readers,
            const CoreOptions& options);

  // The tenant of `job` (cached; jobs never change tenant), or NOT_FOUND.
  absl::StatusOr<std::string> TenantOf(const std::string& job);
  void ForgetTenant(const std::string& job);

  std::unique_ptr<WriteQueue> write_queue_;
  std::unique_ptr<ReaderPool> readers_;
  std::unique_ptr<FitService> fits_;
  Authenticator auth_;
  TenantLimits tenant_limits_;
  std::mutex tenant_mu_;
  absl::flat_hash_map<std::string, std::string> tenant_of_;  // job -> tenant
};

}  // namespace surge::core

#endif  // SURGE_SERVER_CORE_SURGE_CORE_H_
