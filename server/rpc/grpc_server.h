// GrpcServer: the gRPC port of surge-server: surge.v1.Surge (SurgeService),
// the grpc.health.v1 health service and server reflection, over TLS when
// asked, with the parse-error interceptor. Thin: it knows the core and the
// metrics, nothing of HTTP; app::Server (server/app) owns it.
#ifndef SURGE_SERVER_RPC_GRPC_SERVER_H_
#define SURGE_SERVER_RPC_GRPC_SERVER_H_

#include <grpcpp/server.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/core/surge_core.h"
#include "server/metrics/metrics.h"
#include "server/rpc/surge_service.h"
#include "server/util/tls_files.h"

namespace surge::rpc {

struct GrpcOptions {
  std::string listen = "127.0.0.1:50051";  // host:port; port 0 picks a free one
  util::TlsFiles tls;
  int max_message_bytes = 64 << 20;
  SurgeServiceOptions service;
};

class GrpcServer {
 public:
  // Binds and serves (health NOT_SERVING until SetServing(true)).
  // UNAVAILABLE when the port cannot be bound (no SO_REUSEPORT: a port in
  // use fails), INVALID_ARGUMENT for TLS files that cannot be read.
  static absl::StatusOr<std::unique_ptr<GrpcServer>> Start(const GrpcOptions& options,
                                                           core::SurgeCore* core,
                                                           metrics::ServerMetrics* metrics);
  ~GrpcServer();

  int port() const { return port_; }
  // What grpc.health.v1 answers.
  void SetServing(bool serving);
  // Refuses new calls, lets calls in flight finish until `deadline` (then
  // cancels them) and waits for them. Idempotent.
  void Shutdown(absl::Time deadline);

 private:
  GrpcServer() = default;

  std::unique_ptr<SurgeService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool stopped_ = false;
};

}  // namespace surge::rpc

#endif  // SURGE_SERVER_RPC_GRPC_SERVER_H_
