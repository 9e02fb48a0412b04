// SurgeClient: the C++ client library of surge. It owns the channel and the
// stub, sets a deadline on every call, and turns grpc::Status into
// absl::Status (same codes). Thread-safe: share one client per process.
// For streaming records use IngestSession (ingest_session.h).
#ifndef SURGE_CLIENT_CPP_SURGE_CLIENT_H_
#define SURGE_CLIENT_CPP_SURGE_CLIENT_H_

#include <grpcpp/channel.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "surge/v1/surge.grpc.pb.h"

namespace surge::client {

struct ClientOptions {
  std::string target = "127.0.0.1:50051";
  // Deadline of each unary call.
  absl::Duration call_timeout = absl::Seconds(30);
  int max_message_bytes = 64 << 20;
  // Bearer token sent with every call, streams included (servers with a
  // token file need one); empty: none.
  std::string token;
  // TLS: the CA that signed the server's certificate (PEM file); empty:
  // plaintext. With a client certificate and key, mutual TLS.
  std::string tls_ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;
};

// ClientOptions with token and TLS files from the environment: SURGE_SERVER,
// SURGE_TOKEN, SURGE_TLS_CA, SURGE_CLIENT_CERT, SURGE_CLIENT_KEY (unset: defaults).
ClientOptions ClientOptionsFromEnv();

// The channel of `options` (TLS when tls_ca_file is set; the token added to
// every call's metadata by an interceptor). IngestSession takes it too.
std::shared_ptr<grpc::Channel> MakeChannel(const ClientOptions& options);

// Converts a gRPC status into the equivalent absl::Status.
absl::Status FromGrpcStatus(const grpc::Status& status);

class SurgeClient {
 public:
  explicit SurgeClient(const ClientOptions& options);

  absl::StatusOr<surge::v1::Job> CreateJob(const surge::v1::Job& job);
  absl::StatusOr<surge::v1::Job> GetJob(const std::string& name);
  // Every job (all pages, merged) / one page.
  absl::StatusOr<surge::v1::ListJobsResponse> ListJobs();
  absl::StatusOr<surge::v1::ListJobsResponse> ListJobsPage(const surge::v1::ListJobsRequest& request);
  absl::StatusOr<surge::v1::DeleteJobResponse> DeleteJob(const std::string& name);
  absl::StatusOr<surge::v1::DeleteRunResponse> DeleteRun(const std::string& job,
                                                         const std::string& run);
  absl::StatusOr<surge::v1::Run> CreateRun(const std::string& job, const surge::v1::Run& run);
  // Every run of `job` (all pages, merged) / one page.
  absl::StatusOr<surge::v1::ListRunsResponse> ListRuns(const std::string& job);
  absl::StatusOr<surge::v1::ListRunsResponse> ListRunsPage(const surge::v1::ListRunsRequest& request);
  absl::StatusOr<surge::v1::ListRecordsResponse> ListRecords(
      const surge::v1::ListRecordsRequest& request);
  absl::StatusOr<surge::v1::AddOptimaResponse> AddOptima(
      const std::string& job, const std::vector<surge::v1::MeasuredOptimum>& optima);
  absl::StatusOr<surge::v1::Fit> GetFit(const std::string& job);
  // Ad hoc plain-run settings (target losses, k); the fit is computed now.
  absl::StatusOr<surge::v1::Fit> GetFit(const surge::v1::GetFitRequest& request);
  absl::StatusOr<surge::v1::Advice> GetAdvice(
      const std::string& job, double batch_size, std::optional<int64_t> step,
      surge::v1::Criterion criterion = surge::v1::CRITERION_IMPROVEMENT);
  // Any GetAdvice request, e.g. with a reference (B0, lr0) to transfer.
  absl::StatusOr<surge::v1::Advice> GetAdvice(const surge::v1::GetAdviceRequest& request);
  // Streams fits of `job` to `sink` until it returns false, `timeout` passes
  // (then OK), or the stream fails.
  absl::Status WatchFits(const std::string& job, absl::Duration timeout,
                         const std::function<bool(const surge::v1::Fit&)>& sink);

  // Pages through every record of a job (or one run when `run` is not empty),
  // calling `sink` for each page, in order.
  absl::Status ForEachRecordPage(
      const std::string& job, const std::string& run, int page_size,
      const std::function<absl::Status(const surge::v1::ListRecordsResponse&)>& sink);

  const ClientOptions& options() const { return options_; }
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }
  surge::v1::Surge::Stub& stub() { return *stub_; }

 private:
  void SetDeadline(grpc::ClientContext* context) const;

  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<surge::v1::Surge::Stub> stub_;
};

// Creates the channel the client uses (keepalive on, message size raised).
std::shared_ptr<grpc::Channel> MakeChannel(const ClientOptions& options);

}  // namespace surge::client

#endif  // SURGE_CLIENT_CPP_SURGE_CLIENT_H_
