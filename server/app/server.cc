// Implementation of app::Server (see server.h).
#include "server/app/server.h"

#include <iostream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/util/host.h"
#include "server/util/status_macros.h"

namespace surge::app {
namespace {

// The Host names the dashboard answers to: the loopback names, the HTTP
// listen host unless it is a wildcard, and http_allowed_hosts. None (any
// host) for a wildcard listen host without http_allowed_hosts: such a server
// has tokens, which a rebinding page does not hold.
std::vector<std::string> AllowedHosts(const ServerOptions& options) {
  const std::string host = absl::AsciiStrToLower(util::HostOf(options.http_listen));
  if (util::IsWildcardHost(host) && options.http_allowed_hosts.empty()) return {};
  std::vector<std::string> hosts = {"localhost", "127.0.0.1", "::1"};
  if (!util::IsWildcardHost(host)) hosts.push_back(host);
  for (const std::string& h : options.http_allowed_hosts) hosts.push_back(absl::AsciiStrToLower(h));
  return hosts;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options) {
  // A server without readers would hang every read (main.cc checks every
  // flag with its name; this guards in-process callers).
  if (options.core.max_readers < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_readers must be >= 1, got ", options.core.max_readers));
  }
  // Without tokens anyone who reaches the port may read and delete every
  // job: only this machine may reach it.
  if (options.core.tokens_file.empty()) {
    for (const std::string& listen : {options.listen, options.http_listen}) {
      if (listen.empty() || util::IsLoopbackHost(util::HostOf(listen))) continue;
      return absl::InvalidArgumentError(absl::StrCat(
          "refusing to listen on ", listen,
          " without tokens: give a token file (--tokens_file) or listen on 127.0.0.1"));
    }
  }
  std::unique_ptr<Server> s(new Server());
  s->options_ = options;
  // One server per database: the lock first, then the checks, then the open.
  SURGE_ASSIGN_OR_RETURN(store::DbTarget target, store::ParseDbTarget(options.core.db_path));
  if (target.sqlite()) {
    // SQLite: one server per file (a PostgreSQL database is shared by
    // replicas, which coordinate through it).
    SURGE_ASSIGN_OR_RETURN(s->db_lock_, store::DbLock::Acquire(target.path));
    SURGE_RETURN_IF_ERROR(store::CheckDatabaseAtStart(target.path, options.startup_checks));
  }
  s->metrics_ = std::make_unique<metrics::ServerMetrics>();
  metrics::ServerMetrics* observer = s->metrics_.get();
  core::CoreOptions core_options = options.core;
  core_options.write.on_commit = [observer](absl::Duration latency, int64_t stored,
                                            int64_t duplicate) {
    observer->ObserveCommit(latency, stored, duplicate);
  };
  core_options.fits.on_fit = [observer](absl::Duration fit_time, bool fitted) {
    observer->ObserveFit(fit_time, fitted);
  };
  SURGE_ASSIGN_OR_RETURN(s->core_, core::SurgeCore::Open(core_options));
  rpc::GrpcOptions grpc_options;
  grpc_options.listen = options.listen;
  grpc_options.tls = options.tls;
  grpc_options.max_message_bytes = options.max_message_bytes;
  grpc_options.service = options.service;
  SURGE_ASSIGN_OR_RETURN(s->grpc_, rpc::GrpcServer::Start(grpc_options, s->core_.get(), observer));
  if (!options.http_listen.empty()) {
    http::HttpOptions http_options;
    http_options.listen = options.http_listen;
    http_options.static_dir = options.http_static_dir;
    http_options.tls = options.tls;
    http_options.allowed_hosts = AllowedHosts(options);
    absl::StatusOr<std::unique_ptr<http::HttpServer>> http =
        http::HttpServer::Start(http_options, s->core_.get(), observer);
    if (http.ok()) {
      s->http_ = std::move(*http);
    } else if (options.http_listen_required || absl::IsInvalidArgument(http.status())) {
      return http.status();
    } else {
      std::cerr << "surge-server: dashboard disabled: " << http.status().message()
                << " (pass --http=HOST:PORT to choose another address)" << std::endl;
    }
  }
  s->grpc_->SetServing(true);
  return s;
}

Server::~Server() { Shutdown(); }

void Server::Shutdown() {
  if (stopped_) return;
  stopped_ = true;
  if (core_) core_->StopFits();  // ends WatchFits streams and HTTP event streams at once
  if (http_) http_->Stop();
  if (grpc_) grpc_->Shutdown(absl::Now() + options_.shutdown_grace);
  if (core_) core_->Shutdown();
  core_.reset();     // closes the database
  db_lock_.reset();  // then lets another server have it
}

}  // namespace surge::app
