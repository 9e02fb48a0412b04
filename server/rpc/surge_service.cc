// Thin gRPC handlers: call the core, convert the status once.
#include "server/rpc/surge_service.h"

#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/rpc/parse_error_interceptor.h"
#include "server/rpc/status_convert.h"

namespace surge::rpc {
namespace {

// Copies a StatusOr's value into the response and converts its status.
template <typename T>
grpc::Status Reply(absl::StatusOr<T> result, T* response) {
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = std::move(*result);
  return grpc::Status::OK;
}

}  // namespace

template <typename Call>
grpc::Status SurgeService::Measured(const char* method, Call&& call) {
  absl::Time start = absl::Now();
  grpc::Status status = call();
  if (metrics_ != nullptr) {
    metrics_->ObserveRpc(method, static_cast<absl::StatusCode>(status.error_code()),
                         absl::Now() - start);
  }
  return status;
}

grpc::Status SurgeService::CreateJob(grpc::ServerContext*,
                                     const surge::v1::CreateJobRequest* request,
                                     surge::v1::Job* response) {
  return Measured("CreateJob", [&] { return Reply(core_->CreateJob(*request), response); });
}

grpc::Status SurgeService::GetJob(grpc::ServerContext*, const surge::v1::GetJobRequest* request,
                                  surge::v1::Job* response) {
  return Measured("GetJob", [&] { return Reply(core_->GetJob(*request), response); });
}

grpc::Status SurgeService::ListJobs(grpc::ServerContext*,
                                    const surge::v1::ListJobsRequest* request,
                                    surge::v1::ListJobsResponse* response) {
  return Measured("ListJobs", [&] { return Reply(core_->ListJobs(*request), response); });
}

grpc::Status SurgeService::DeleteRun(grpc::ServerContext*,
                                     const surge::v1::DeleteRunRequest* request,
                                     surge::v1::DeleteRunResponse* response) {
  return Measured("DeleteRun", [&] { return Reply(core_->DeleteRun(*request), response); });
}

grpc::Status SurgeService::DeleteJob(grpc::ServerContext*,
                                     const surge::v1::DeleteJobRequest* request,
                                     surge::v1::DeleteJobResponse* response) {
  return Measured("DeleteJob", [&] { return Reply(core_->DeleteJob(*request), response); });
}

grpc::Status SurgeService::CreateRun(grpc::ServerContext*,
                                     const surge::v1::CreateRunRequest* request,
                                     surge::v1::Run* response) {
  return Measured("CreateRun", [&] { return Reply(core_->CreateRun(*request), response); });
}

grpc::Status SurgeService::ListRuns(grpc::ServerContext*,
                                    const surge::v1::ListRunsRequest* request,
                                    surge::v1::ListRunsResponse* response) {
  return Measured("ListRuns", [&] { return Reply(core_->ListRuns(*request), response); });
}

grpc::Status SurgeService::ListRecords(grpc::ServerContext*,
                                       const surge::v1::ListRecordsRequest* request,
                                       surge::v1::ListRecordsResponse* response) {
  return Measured("ListRecords", [&] { return Reply(core_->ListRecords(*request), response); });
}

grpc::Status SurgeService::AddOptima(grpc::ServerContext*,
                                     const surge::v1::AddOptimaRequest* request,
                                     surge::v1::AddOptimaResponse* response) {
  return Measured("AddOptima", [&] { return Reply(core_->AddOptima(*request), response); });
}

grpc::Status SurgeService::GetFit(grpc::ServerContext*, const surge::v1::GetFitRequest* request,
                                  surge::v1::Fit* response) {
  return Measured("GetFit", [&] { return Reply(core_->GetFit(*request), response); });
}

grpc::Status SurgeService::GetAdvice(grpc::ServerContext*,
                                     const surge::v1::GetAdviceRequest* request,
                                     surge::v1::Advice* response) {
  return Measured("GetAdvice", [&] { return Reply(core_->GetAdvice(*request), response); });
}

// Sends the latest fit, then each newer one; polls for cancellation once a
// second while no fit lands.
grpc::Status SurgeService::WatchFits(grpc::ServerContext* context,
                                     const surge::v1::WatchFitsRequest* request,
                                     grpc::ServerWriter<surge::v1::Fit>* writer) {
  return Measured("WatchFits", [&] { return WatchFitsUntilCancelled(context, request, writer); });
}

grpc::Status SurgeService::WatchFitsUntilCancelled(grpc::ServerContext* context,
                                                   const surge::v1::WatchFitsRequest* request,
                                                   grpc::ServerWriter<surge::v1::Fit>* writer) {
  absl::StatusOr<std::shared_ptr<const core::FitEntry>> latest = core_->LatestFit(request->job());
  if (!latest.ok()) return ToGrpcStatus(latest.status());
  if (!writer->Write((*latest)->proto)) return grpc::Status::CANCELLED;
  int64_t version = (*latest)->proto.version();
  while (!context->IsCancelled()) {
    std::shared_ptr<const core::FitEntry> next =
        core_->WaitNewerFit(request->job(), version, absl::Seconds(1));
    if (core_->stopping()) {
      return ToGrpcStatus(absl::UnavailableError("server is shutting down; watch again later"));
    }
    if (next == nullptr) continue;
    version = next->proto.version();
    if (!writer->Write(next->proto)) break;
  }
  return grpc::Status::CANCELLED;
}

// Reads batches on this thread and writes acks from a second one, so acks
// flow while the client keeps sending. On a bad batch, earlier batches are
// committed and acked before the error ends the stream.
grpc::Status SurgeService::Ingest(
    grpc::ServerContext*,
    grpc::ServerReaderWriter<surge::v1::IngestResponse, surge::v1::IngestRequest>* stream) {
  return Measured("Ingest", [&] { return IngestUntilClosed(stream); });
}

grpc::Status SurgeService::IngestUntilClosed(
    grpc::ServerReaderWriter<surge::v1::IngestResponse, surge::v1::IngestRequest>* stream) {
  // A slot per open stream; over the cap the stream ends at once.
  struct Slot {
    std::atomic<int>& n;
    ~Slot() { --n; }
  } slot{ingest_streams_};
  if (++ingest_streams_ > options_.max_ingest_streams) {
    return ToGrpcStatus(absl::ResourceExhaustedError(absl::StrCat(
        "too many concurrent Ingest streams (at most ", options_.max_ingest_streams,
        "); retry later, or send more records per stream")));
  }
  std::unique_ptr<core::IngestStream> ingest = core_->OpenIngestStream();
  std::thread acker([&] {
    bool writable = true;
    while (std::optional<surge::v1::IngestResponse> ack = ingest->NextAck()) {
      if (writable) writable = stream->Write(*ack);
    }
  });
  absl::Status status;
  uint64_t last_seq = 0;
  while (true) {
    auto request = std::make_unique<surge::v1::IngestRequest>();
    TakeParseError();
    if (!stream->Read(request.get())) {
      // The end of the stream, or a message that could not be parsed (which
      // gRPC reports the same way): protobuf logged the field on this thread.
      if (std::string field = TakeParseError(); !field.empty()) {
        status = absl::InvalidArgumentError(absl::StrCat(
            "the batch after seq ", last_seq, " could not be parsed: ", field,
            "; strings must be valid UTF-8 (batches up to seq ", last_seq, " are kept)"));
      }
      break;
    }
    last_seq = request->seq();
    status = ingest->Accept(std::move(request));
    if (!status.ok()) break;
  }
  ingest->Close();
  acker.join();
  if (status.ok()) status = ingest->commit_status();
  return ToGrpcStatus(status);
}

}  // namespace surge::rpc
