// SurgeServer: owns the core and the gRPC server (surge.v1.Surge, the
// grpc.health.v1 health service and server reflection). Built from Options;
// main.cc only parses flags into them.
#ifndef SURGE_SERVER_RPC_SERVER_H_
#define SURGE_SERVER_RPC_SERVER_H_

#include <grpcpp/server.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/core/surge_core.h"
#include "server/rpc/surge_service.h"

namespace surge::rpc {

struct ServerOptions {
  std::string listen = "127.0.0.1:50051";  // host:port; port 0 picks a free one
  core::CoreOptions core;
  int max_message_bytes = 64 << 20;
  absl::Duration shutdown_grace = absl::Seconds(10);
};

class SurgeServer {
 public:
  // Opens the database and starts serving.
  static absl::StatusOr<std::unique_ptr<SurgeServer>> Start(const ServerOptions& options);
  ~SurgeServer();

  // The bound port (useful with port 0).
  int port() const { return port_; }
  // The core below the network (in-process callers, benchmarks, tests).
  core::SurgeCore& core() { return *core_; }

  // Graceful stop: refuse new calls, let in-flight calls finish within the
  // grace period (then cancel them), commit what is queued, close the DB.
  void Shutdown();

 private:
  SurgeServer() = default;

  ServerOptions options_;
  std::unique_ptr<core::SurgeCore> core_;
  std::unique_ptr<SurgeService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool stopped_ = false;
};

}  // namespace surge::rpc

#endif  // SURGE_SERVER_RPC_SERVER_H_
