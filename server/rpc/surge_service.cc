// Thin gRPC handlers: call the core, convert the status once.
#include "server/rpc/surge_service.h"

#include <grpc/grpc.h>

#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/core/ingest_stream.h"
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

absl::StatusOr<core::Caller> SurgeService::CallerOf(const grpc::ServerContext* context) const {
  const auto& metadata = context->client_metadata();
  auto it = metadata.find("authorization");
  std::string authorization;
  if (it != metadata.end()) authorization.assign(it->second.data(), it->second.size());
  return core_->Authenticate(authorization);
}

template <typename Call>
grpc::Status SurgeService::Authenticated(const char* method, const grpc::ServerContext* context,
                                         Call&& call) {
  return Measured(method, [&] {
    absl::StatusOr<core::Caller> caller = CallerOf(context);
    if (!caller.ok()) return ToGrpcStatus(caller.status());
    return call(*caller);
  });
}

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

grpc::Status SurgeService::CreateJob(grpc::ServerContext* context,
                                     const surge::v1::CreateJobRequest* request,
                                     surge::v1::Job* response) {
  return Authenticated("CreateJob", context, [&](const core::Caller& caller) {
    return Reply(core_->CreateJob(*request, caller), response);
  });
}

grpc::Status SurgeService::GetJob(grpc::ServerContext* context, const surge::v1::GetJobRequest* request,
                                  surge::v1::Job* response) {
  return Authenticated("GetJob", context, [&](const core::Caller& caller) {
    return Reply(core_->GetJob(*request, caller), response);
  });
}

grpc::Status SurgeService::ListJobs(grpc::ServerContext* context,
                                    const surge::v1::ListJobsRequest* request,
                                    surge::v1::ListJobsResponse* response) {
  return Authenticated("ListJobs", context, [&](const core::Caller& caller) {
    return Reply(core_->ListJobs(*request, caller), response);
  });
}

grpc::Status SurgeService::DeleteRun(grpc::ServerContext* context,
                                     const surge::v1::DeleteRunRequest* request,
                                     surge::v1::DeleteRunResponse* response) {
  return Authenticated("DeleteRun", context, [&](const core::Caller& caller) {
    return Reply(core_->DeleteRun(*request, caller), response);
  });
}

grpc::Status SurgeService::DeleteJob(grpc::ServerContext* context,
                                     const surge::v1::DeleteJobRequest* request,
                                     surge::v1::DeleteJobResponse* response) {
  return Authenticated("DeleteJob", context, [&](const core::Caller& caller) {
    return Reply(core_->DeleteJob(*request, caller), response);
  });
}

grpc::Status SurgeService::CreateRun(grpc::ServerContext* context,
                                     const surge::v1::CreateRunRequest* request,
                                     surge::v1::Run* response) {
  return Authenticated("CreateRun", context, [&](const core::Caller& caller) {
    return Reply(core_->CreateRun(*request, caller), response);
  });
}

grpc::Status SurgeService::ListRuns(grpc::ServerContext* context,
                                    const surge::v1::ListRunsRequest* request,
                                    surge::v1::ListRunsResponse* response) {
  return Authenticated("ListRuns", context, [&](const core::Caller& caller) {
    return Reply(core_->ListRuns(*request, caller), response);
  });
}

grpc::Status SurgeService::ListRecords(grpc::ServerContext* context,
                                       const surge::v1::ListRecordsRequest* request,
                                       surge::v1::ListRecordsResponse* response) {
  return Authenticated("ListRecords", context, [&](const core::Caller& caller) {
    return Reply(core_->ListRecords(*request, caller), response);
  });
}

grpc::Status SurgeService::AddOptima(grpc::ServerContext* context,
                                     const surge::v1::AddOptimaRequest* request,
                                     surge::v1::AddOptimaResponse* response) {
  return Authenticated("AddOptima", context, [&](const core::Caller& caller) {
    return Reply(core_->AddOptima(*request, caller), response);
  });
}

grpc::Status SurgeService::GetFit(grpc::ServerContext* context, const surge::v1::GetFitRequest* request,
                                  surge::v1::Fit* response) {
  return Authenticated("GetFit", context, [&](const core::Caller& caller) {
    return Reply(core_->GetFit(*request, caller), response);
  });
}

grpc::Status SurgeService::GetAdvice(grpc::ServerContext* context,
                                     const surge::v1::GetAdviceRequest* request,
                                     surge::v1::Advice* response) {
  return Authenticated("GetAdvice", context, [&](const core::Caller& caller) {
    return Reply(core_->GetAdvice(*request, caller), response);
  });
}

// Sends the latest fit, then each newer one; polls for cancellation once a
// second while no fit lands.
grpc::Status SurgeService::WatchFits(grpc::ServerContext* context,
                                     const surge::v1::WatchFitsRequest* request,
                                     grpc::ServerWriter<surge::v1::Fit>* writer) {
  return Authenticated("WatchFits", context, [&](const core::Caller& caller) {
    return WatchFitsUntilCancelled(context, caller, request, writer);
  });
}

grpc::Status SurgeService::WatchFitsUntilCancelled(grpc::ServerContext* context,
                                                   const core::Caller& caller,
                                                   const surge::v1::WatchFitsRequest* request,
                                                   grpc::ServerWriter<surge::v1::Fit>* writer) {
  absl::StatusOr<std::shared_ptr<const core::FitEntry>> latest =
      core_->LatestFit(request->job(), caller);
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
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<surge::v1::IngestResponse, surge::v1::IngestRequest>* stream) {
  return Authenticated("Ingest", context, [&](const core::Caller& caller) {
    return IngestUntilClosed(context, caller, stream);
  });
}

grpc::Status SurgeService::IngestUntilClosed(
    grpc::ServerContext* context, const core::Caller& caller,
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
  absl::StatusOr<std::unique_ptr<core::IngestStream>> opened = core_->OpenIngestStream(caller);
  if (!opened.ok()) return ToGrpcStatus(opened.status());
  std::unique_ptr<core::IngestStream> ingest = std::move(*opened);
  std::thread acker([&] {
    bool writable = true;
    while (std::optional<surge::v1::IngestResponse> ack = ingest->NextAck()) {
      if (writable) writable = stream->Write(*ack);
    }
    // A failed commit (an I/O error, a full disk) ends the call now with its
    // status: the client may be waiting for acks with nothing more to send,
    // while this call's Read below waits for its next batch.
    if (absl::Status failed = ingest->commit_status(); !failed.ok()) {
      const grpc::Status end = ToGrpcStatus(failed);
      grpc_call_cancel_with_status(context->c_call(),
                                   static_cast<grpc_status_code>(end.error_code()),
                                   end.error_message().c_str(), nullptr);
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
