// Implementation of SurgeServer.
#include "server/rpc/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/server_builder.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "server/util/status_macros.h"

namespace surge::rpc {

absl::StatusOr<std::unique_ptr<SurgeServer>> SurgeServer::Start(const ServerOptions& options) {
  std::unique_ptr<SurgeServer> s(new SurgeServer());
  s->options_ = options;
  SURGE_ASSIGN_OR_RETURN(s->core_, core::SurgeCore::Open(options.core));
  s->service_ = std::make_unique<SurgeService>(s->core_.get());

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(), &s->port_);
  builder.RegisterService(s->service_.get());
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  s->server_ = builder.BuildAndStart();
  if (!s->server_ || s->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen, " (address in use or invalid)"));
  }
  s->server_->GetHealthCheckService()->SetServingStatus(true);
  return s;
}

SurgeServer::~SurgeServer() { Shutdown(); }

void SurgeServer::Shutdown() {
  if (stopped_) return;
  stopped_ = true;
  if (core_) core_->StopFits();  // ends WatchFits streams at once
  if (server_) {
    server_->GetHealthCheckService()->SetServingStatus(false);
    auto deadline = std::chrono::system_clock::now() +
                    std::chrono::microseconds(absl::ToInt64Microseconds(options_.shutdown_grace));
    server_->Shutdown(deadline);
    server_->Wait();
  }
  if (core_) core_->Shutdown();
  core_.reset();  // closes the database
}

}  // namespace surge::rpc
