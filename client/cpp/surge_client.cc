// Implementation of SurgeClient: one unary call per method, each with a deadline.
#include "client/cpp/surge_client.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/client_interceptor.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace surge::client {

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

namespace {

// Adds "authorization: Bearer <token>" to the initial metadata of every call.
class TokenInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit TokenInterceptor(const std::string* value) : value_(value) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->insert({"authorization", *value_});
    }
    methods->Proceed();
  }

 private:
  const std::string* const value_;
};

class TokenInterceptorFactory final
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit TokenInterceptorFactory(const std::string& token) : value_("Bearer " + token) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) override {
    return new TokenInterceptor(&value_);
  }

 private:
  const std::string value_;  // lives as long as the channel, which owns the factory
};

std::string ReadFileOrEmpty(const std::string& path) {
  if (path.empty()) return "";
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

ClientOptions ClientOptionsFromEnv() {
  ClientOptions options;
  auto env = [](const char* name, std::string& field) {
    if (const char* value = std::getenv(name); value != nullptr && *value != '\0') field = value;
  };
  env("SURGE_SERVER", options.target);
  env("SURGE_TOKEN", options.token);
  env("SURGE_TLS_CA", options.tls_ca_file);
  env("SURGE_CLIENT_CERT", options.tls_cert_file);
  env("SURGE_CLIENT_KEY", options.tls_key_file);
  return options;
}

std::shared_ptr<grpc::Channel> MakeChannel(const ClientOptions& options) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_message_bytes);
  args.SetMaxSendMessageSize(options.max_message_bytes);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
  // Reconnect quickly after a server restart.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // Unary calls are retried on UNAVAILABLE (server restarting) with backoff.
  args.SetServiceConfigJSON(R"json({
    "methodConfig": [{
      "name": [{"service": "surge.v1.Surge", "method": "CreateJob"},
               {"service": "surge.v1.Surge", "method": "GetJob"},
               {"service": "surge.v1.Surge", "method": "ListJobs"},
               {"service": "surge.v1.Surge", "method": "DeleteJob"},
               {"service": "surge.v1.Surge", "method": "CreateRun"},
               {"service": "surge.v1.Surge", "method": "ListRuns"},
               {"service": "surge.v1.Surge", "method": "ListRecords"},
               {"service": "surge.v1.Surge", "method": "AddOptima"},
               {"service": "surge.v1.Surge", "method": "GetFit"},
               {"service": "surge.v1.Surge", "method": "GetAdvice"}],
      "retryPolicy": {
        "maxAttempts": 4, "initialBackoff": "0.1s", "maxBackoff": "0.5s",
        "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]})json");
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (!options.tls_ca_file.empty()) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = ReadFileOrEmpty(options.tls_ca_file);
    ssl.pem_cert_chain = ReadFileOrEmpty(options.tls_cert_file);
    ssl.pem_private_key = ReadFileOrEmpty(options.tls_key_file);
    credentials = grpc::SslCredentials(ssl);
  }
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> interceptors;
  if (!options.token.empty()) {
    interceptors.push_back(std::make_unique<TokenInterceptorFactory>(options.token));
  }
  return grpc::experimental::CreateCustomChannelWithInterceptors(
      options.target, credentials, args, std::move(interceptors));
}

SurgeClient::SurgeClient(const ClientOptions& options)
    : options_(options), channel_(MakeChannel(options)), stub_(surge::v1::Surge::NewStub(channel_)) {}

void SurgeClient::SetDeadline(grpc::ClientContext* context) const {
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::microseconds(absl::ToInt64Microseconds(options_.call_timeout)));
}

// Every unary method has the same shape: context with deadline, call, convert.
#define SURGE_UNARY_CALL(Method, request, Response)                        \
  grpc::ClientContext context;                                            \
  SetDeadline(&context);                                                  \
  Response response;                                                      \
  grpc::Status status = stub_->Method(&context, request, &response);      \
  if (!status.ok()) return FromGrpcStatus(status);                        \
  return response

absl::StatusOr<surge::v1::Job> SurgeClient::CreateJob(const surge::v1::Job& job) {
  surge::v1::CreateJobRequest request;
  *request.mutable_job() = job;
  SURGE_UNARY_CALL(CreateJob, request, surge::v1::Job);
}

absl::StatusOr<surge::v1::Job> SurgeClient::GetJob(const std::string& name) {
  surge::v1::GetJobRequest request;
  request.set_name(name);
  SURGE_UNARY_CALL(GetJob, request, surge::v1::Job);
}

absl::StatusOr<surge::v1::ListJobsResponse> SurgeClient::ListJobsPage(
    const surge::v1::ListJobsRequest& request) {
  SURGE_UNARY_CALL(ListJobs, request, surge::v1::ListJobsResponse);
}

absl::StatusOr<surge::v1::ListJobsResponse> SurgeClient::ListJobs() {
  surge::v1::ListJobsRequest request;
  surge::v1::ListJobsResponse all;
  do {
    absl::StatusOr<surge::v1::ListJobsResponse> page = ListJobsPage(request);
    if (!page.ok()) return page.status();
    for (auto& job : *page->mutable_jobs()) *all.add_jobs() = std::move(job);
    request.set_page_token(page->next_page_token());
  } while (!request.page_token().empty());
  return all;
}

absl::StatusOr<surge::v1::DeleteJobResponse> SurgeClient::DeleteJob(const std::string& name) {
  surge::v1::DeleteJobRequest request;
  request.set_name(name);
  SURGE_UNARY_CALL(DeleteJob, request, surge::v1::DeleteJobResponse);
}

absl::StatusOr<surge::v1::DeleteRunResponse> SurgeClient::DeleteRun(const std::string& job,
                                                                    const std::string& run) {
  surge::v1::DeleteRunRequest request;
  request.set_job(job);
  request.set_run(run);
  SURGE_UNARY_CALL(DeleteRun, request, surge::v1::DeleteRunResponse);
}

absl::StatusOr<surge::v1::Run> SurgeClient::CreateRun(const std::string& job,
                                                      const surge::v1::Run& run) {
  surge::v1::CreateRunRequest request;
  request.set_job(job);
  *request.mutable_run() = run;
  SURGE_UNARY_CALL(CreateRun, request, surge::v1::Run);
}

absl::StatusOr<surge::v1::ListRunsResponse> SurgeClient::ListRunsPage(
    const surge::v1::ListRunsRequest& request) {
  SURGE_UNARY_CALL(ListRuns, request, surge::v1::ListRunsResponse);
}

absl::StatusOr<surge::v1::ListRunsResponse> SurgeClient::ListRuns(const std::string& job) {
  surge::v1::ListRunsRequest request;
  request.set_job(job);
  surge::v1::ListRunsResponse all;
  do {
    absl::StatusOr<surge::v1::ListRunsResponse> page = ListRunsPage(request);
    if (!page.ok()) return page.status();
    for (auto& run : *page->mutable_runs()) *all.add_runs() = std::move(run);
    request.set_page_token(page->next_page_token());
  } while (!request.page_token().empty());
  return all;
}

absl::StatusOr<surge::v1::ListRecordsResponse> SurgeClient::ListRecords(
    const surge::v1::ListRecordsRequest& request) {
  SURGE_UNARY_CALL(ListRecords, request, surge::v1::ListRecordsResponse);
}

absl::StatusOr<surge::v1::AddOptimaResponse> SurgeClient::AddOptima(
    const std::string& job, const std::vector<surge::v1::MeasuredOptimum>& optima) {
  surge::v1::AddOptimaRequest request;
  request.set_job(job);
  for (const auto& o : optima) *request.add_optima() = o;
  SURGE_UNARY_CALL(AddOptima, request, surge::v1::AddOptimaResponse);
}

absl::StatusOr<surge::v1::Fit> SurgeClient::GetFit(const std::string& job) {
  surge::v1::GetFitRequest request;
  request.set_job(job);
  SURGE_UNARY_CALL(GetFit, request, surge::v1::Fit);
}

absl::StatusOr<surge::v1::Fit> SurgeClient::GetFit(const surge::v1::GetFitRequest& request) {
  SURGE_UNARY_CALL(GetFit, request, surge::v1::Fit);
}

absl::StatusOr<surge::v1::Advice> SurgeClient::GetAdvice(const std::string& job,
                                                         double batch_size,
                                                         std::optional<int64_t> step,
                                                         surge::v1::Criterion criterion) {
  surge::v1::GetAdviceRequest request;
  request.set_job(job);
  request.set_batch_size(batch_size);
  if (step) request.set_step(*step);
  request.set_criterion(criterion);
  SURGE_UNARY_CALL(GetAdvice, request, surge::v1::Advice);
}

absl::StatusOr<surge::v1::Advice> SurgeClient::GetAdvice(
    const surge::v1::GetAdviceRequest& request) {
  SURGE_UNARY_CALL(GetAdvice, request, surge::v1::Advice);
}

#undef SURGE_UNARY_CALL

absl::Status SurgeClient::WatchFits(const std::string& job, absl::Duration timeout,
                                    const std::function<bool(const surge::v1::Fit&)>& sink) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::microseconds(absl::ToInt64Microseconds(timeout)));
  surge::v1::WatchFitsRequest request;
  request.set_job(job);
  auto reader = stub_->WatchFits(&context, request);
  surge::v1::Fit fit;
  while (reader->Read(&fit)) {
    if (!sink(fit)) {
      context.TryCancel();
      break;
    }
  }
  grpc::Status status = reader->Finish();
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
      status.error_code() == grpc::StatusCode::CANCELLED) {
    return absl::OkStatus();
  }
  return FromGrpcStatus(status);
}

absl::Status SurgeClient::ForEachRecordPage(
    const std::string& job, const std::string& run, int page_size,
    const std::function<absl::Status(const surge::v1::ListRecordsResponse&)>& sink) {
  surge::v1::ListRecordsRequest request;
  request.set_job(job);
  request.set_run(run);
  request.set_page_size(page_size);
  while (true) {
    absl::StatusOr<surge::v1::ListRecordsResponse> page = ListRecords(request);
    if (!page.ok()) return page.status();
    absl::Status status = sink(*page);
    if (!status.ok()) return status;
    if (page->next_page_token().empty()) return absl::OkStatus();
    request.set_page_token(page->next_page_token());
  }
}

}  // namespace surge::client
