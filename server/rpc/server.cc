// Implementation of SurgeServer.
#include "server/rpc/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/server_builder.h>

#include <vector>

#include <chrono>
#include <iostream>

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/rpc/parse_error_interceptor.h"
#include "server/util/host.h"
#include "server/util/status_macros.h"

namespace surge::rpc {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  if (in) text << in.rdbuf();
  if (!in || text.str().find("-----BEGIN") == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS ", what, " ", path, ": cannot be read or is not PEM"));
  }
  return text.str();
}

// gRPC's TLS credentials from PEM files; client certificates required and
// verified against client_ca_file when it is given.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> TlsCredentials(
    const http::TlsFiles& tls) {
  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  SURGE_ASSIGN_OR_RETURN(pair.private_key, ReadPem(tls.key_file, "key"));
  SURGE_ASSIGN_OR_RETURN(pair.cert_chain, ReadPem(tls.cert_file, "certificate"));
  ssl.pem_key_cert_pairs.push_back(pair);
  if (!tls.client_ca_file.empty()) {
    SURGE_ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadPem(tls.client_ca_file, "client CA"));
    ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(ssl);
}

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

absl::StatusOr<std::unique_ptr<SurgeServer>> SurgeServer::Start(const ServerOptions& options) {
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
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (options.tls.enabled()) {
    SURGE_ASSIGN_OR_RETURN(credentials, TlsCredentials(options.tls));
  }
  std::unique_ptr<SurgeServer> s(new SurgeServer());
  s->options_ = options;
  // One server per database: the lock first, then the checks, then the open.
  SURGE_ASSIGN_OR_RETURN(store::DbTarget target, store::ParseDbTarget(options.core.db_path));
  if (target.sqlite()) {
    // SQLite: one server per file (a PostgreSQL database is shared by
    // replicas, which coordinate through it).
    SURGE_ASSIGN_OR_RETURN(s->db_lock_, store::DbLock::Acquire(target.path));
    SURGE_RETURN_IF_ERROR(store::CheckDatabaseAtStart(target.path, options.startup_checks));
  }
  s->metrics_ = std::make_unique<http::ServerMetrics>();
  http::ServerMetrics* metrics = s->metrics_.get();
  core::CoreOptions core_options = options.core;
  core_options.write.on_commit = [metrics](absl::Duration latency, int64_t stored,
                                           int64_t duplicate) {
    metrics->ObserveCommit(latency, stored, duplicate);
  };
  core_options.fits.on_fit = [metrics](absl::Duration fit_time, bool fitted) {
    metrics->ObserveFit(fit_time, fitted);
  };
  SURGE_ASSIGN_OR_RETURN(s->core_, core::SurgeCore::Open(core_options));
  s->service_ = std::make_unique<SurgeService>(s->core_.get(), metrics, options.service);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // gRPC sets SO_REUSEPORT by default: a second server on the same port would
  // start and take half of the new connections, and port 0 would be bound
  // twice (two different ports, one reported). The port is ours alone.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(options.listen, credentials, &s->port_);
  builder.RegisterService(s->service_.get());
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  InstallParseErrorCapture();
  interceptors.push_back(std::make_unique<ParseErrorInterceptorFactory>());
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  s->server_ = builder.BuildAndStart();
  if (!s->server_ || s->port_ == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", options.listen,
        " (the address is in use, e.g. by another surge-server, or invalid)"));
  }
  if (!options.http_listen.empty()) {
    http::HttpOptions http_options;
    http_options.listen = options.http_listen;
    http_options.static_dir = options.http_static_dir;
    http_options.tls = options.tls;
    http_options.allowed_hosts = AllowedHosts(options);
    absl::StatusOr<std::unique_ptr<http::HttpServer>> http =
        http::HttpServer::Start(http_options, s->core_.get(), metrics);
    if (http.ok()) {
      s->http_ = std::move(*http);
    } else if (options.http_listen_required || absl::IsInvalidArgument(http.status())) {
      return http.status();
    } else {
      std::cerr << "surge-server: dashboard disabled: " << http.status().message()
                << " (pass --http=HOST:PORT to choose another address)" << std::endl;
    }
  }
  s->server_->GetHealthCheckService()->SetServingStatus(true);
  return s;
}

SurgeServer::~SurgeServer() { Shutdown(); }

void SurgeServer::Shutdown() {
  if (stopped_) return;
  stopped_ = true;
  if (core_) core_->StopFits();  // ends WatchFits streams and HTTP event streams at once
  if (http_) http_->Stop();
  if (server_) {
    server_->GetHealthCheckService()->SetServingStatus(false);
    auto deadline = std::chrono::system_clock::now() +
                    std::chrono::microseconds(absl::ToInt64Microseconds(options_.shutdown_grace));
    server_->Shutdown(deadline);
    server_->Wait();
  }
  if (core_) core_->Shutdown();
  core_.reset();     // closes the database
  db_lock_.reset();  // then lets another server have it
}

}  // namespace surge::rpc
