// app::Server: the surge-server process's object, above both transports. It
// is built from Options (main.cc only parses flags and the environment into
// them) and wires: the database's lock and start-up checks (SQLite: one
// server per file, store::DbLock and store::CheckDatabaseAtStart), the core
// (server/core), the process's metrics (server/metrics), the gRPC port
// (server/rpc) and the dashboard's HTTP port (server/http). Neither
// transport knows the other. Without a token file it serves loopback
// addresses only; with `tls` both ports speak TLS from the same certificate
// (docs/security.md).
#ifndef SURGE_SERVER_APP_SERVER_H_
#define SURGE_SERVER_APP_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/core/surge_core.h"
#include "server/http/http_server.h"
#include "server/metrics/metrics.h"
#include "server/rpc/grpc_server.h"
#include "server/store/db_lock.h"
#include "server/store/open_store.h"
#include "server/util/tls_files.h"

namespace surge::app {

struct ServerOptions {
  std::string listen = "127.0.0.1:50051";  // host:port; port 0 picks a free one
  core::CoreOptions core;
  rpc::SurgeServiceOptions service;
  // Checks of a SQLite database before serving (PRAGMA quick_check can be skipped).
  store::StartupCheckOptions startup_checks;
  int max_message_bytes = 64 << 20;
  absl::Duration shutdown_grace = absl::Seconds(10);
  // The dashboard's HTTP address (host:port; port 0 picks a free one); empty
  // disables HTTP. When it cannot be bound: Start fails if
  // `http_listen_required`, otherwise the server runs without HTTP and says so
  // on stderr (so that test servers and a second instance do not fail on the
  // default port; surge-server sets it when --http is given explicitly).
  std::string http_listen = "127.0.0.1:8080";
  bool http_listen_required = false;
  // Serve the dashboard files from this folder instead of the embedded copy.
  std::string http_static_dir;
  // Host names the dashboard may be reached by (beside the HTTP listen host
  // and the loopback names); see HttpOptions::allowed_hosts.
  std::vector<std::string> http_allowed_hosts;
  // TLS for gRPC and HTTP; with client_ca_file, clients need a certificate
  // signed by it (mutual TLS).
  util::TlsFiles tls;
};

class Server {
 public:
  // Locks and checks the database, opens it and starts serving.
  // FAILED_PRECONDITION when another server holds the database or it cannot
  // be written, DATA_LOSS when it is damaged, UNAVAILABLE when a port cannot
  // be bound (in use), INVALID_ARGUMENT for options out of range or a
  // non-loopback address without a token file.
  static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options);
  ~Server();

  // The bound port (useful with port 0).
  int port() const { return grpc_->port(); }
  // The bound HTTP port; 0 when HTTP is disabled or could not be bound.
  int http_port() const { return http_ ? http_->port() : 0; }
  // The core below the network (in-process callers, benchmarks, tests).
  core::SurgeCore& core() { return *core_; }
  // Re-reads the token file (SIGHUP): new tokens work and removed ones stop
  // at once; on error the old tokens stay and the error is returned.
  absl::Status ReloadTokens() { return core_->ReloadTokens(); }

  // Graceful stop: refuse new calls, let in-flight calls finish within the
  // grace period (then cancel them), commit what is queued, close the DB.
  void Shutdown();

 private:
  Server() = default;

  ServerOptions options_;
  std::unique_ptr<store::DbLock> db_lock_;           // held while the database is open
  std::unique_ptr<metrics::ServerMetrics> metrics_;  // outlives everything below
  std::unique_ptr<core::SurgeCore> core_;
  std::unique_ptr<rpc::GrpcServer> grpc_;
  std::unique_ptr<http::HttpServer> http_;
  bool stopped_ = false;
};

}  // namespace surge::app

#endif  // SURGE_SERVER_APP_SERVER_H_
