// HttpServer: the dashboard's HTTP port (cpp-httplib), in the same process as
// the gRPC server and on the same SurgeCore. Read-only: it serves
//   /api/v1/...   the JSON API (json_api.h; errors as api_error.h), and
//                 /api/v1/jobs/{job}/fit/events, the job's fits as
//                 server-sent events (the latest at once, then each new one);
//   /metrics      Prometheus text format (metrics::ServerMetrics);
//   /healthz      "ok" while serving, 503 once shutting down;
//   /, /jobs/{job}, /static/*   the dashboard (embedded static files).
// Any method other than GET/HEAD is answered 405. Binds to loopback by default.
// On a server with tokens, /api/ and /metrics need "Authorization: Bearer
// <token>" (401 without, 403 for a role that may not); the pages and
// /healthz do not (they hold no data). A Host header not in `allowed_hosts`
// gets 421 (DNS rebinding: a page on another site whose name resolves to
// 127.0.0.1 must not read the API), except on /healthz.
// Start() returns once the port is bound; requests run on a thread pool.
#ifndef SURGE_SERVER_HTTP_HTTP_SERVER_H_
#define SURGE_SERVER_HTTP_HTTP_SERVER_H_

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/core/surge_core.h"
#include "server/http/guarded_server.h"
#include "server/http/json_api.h"
#include "server/metrics/metrics.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace surge::http {

struct HttpOptions {
  std::string listen = "127.0.0.1:8080";  // host:port; port 0 picks a free one
  // Serve the dashboard files from this folder instead of the embedded copy
  // (for editing the pages without a rebuild). Empty: embedded.
  std::string static_dir;
  int threads = 32;          // request threads (each open SSE stream holds one)
  int max_fit_streams = 16;  // more concurrent /fit/events streams get 503
  // An idle SSE stream sends a comment this often (detects closed clients).
  absl::Duration stream_keepalive = absl::Seconds(5);
  // Slow or numerous clients: a header deadline and a connection cap
  // (guarded_server.h).
  ConnectionLimits limits;
  // Host names (no port) that requests may name in their Host header,
  // lower-case; empty: any.
  std::vector<std::string> allowed_hosts;
  // HTTPS from these files when cert_file is set.
  TlsFiles tls;
};

class HttpServer {
 public:
  // Binds `options.listen` and starts serving. `core` and `metrics` must
  // outlive the server. UNAVAILABLE when the address cannot be bound,
  // INVALID_ARGUMENT when it is not host:port.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const HttpOptions& options,
                                                           core::SurgeCore* core,
                                                           metrics::ServerMetrics* metrics);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }

  // Stops accepting, ends open event streams (within ~1 s), joins. Idempotent.
  void Stop();

 private:
  using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;

  HttpServer(const HttpOptions& options, core::SurgeCore* core, metrics::ServerMetrics* metrics);
  void AddRoutes();
  // Wraps a handler so that its latency and status are recorded under `route`.
  Handler Timed(const std::string& route, Handler handler);
  // A JSON API route: the request is authenticated, then `call` answers.
  void ApiGet(const std::string& route, const std::string& pattern,
              std::function<absl::StatusOr<std::string>(const httplib::Request&,
                                                        const core::Caller&)> call);
  // The Caller of a request's Authorization header; on failure the 401 is sent.
  std::optional<core::Caller> Authenticate(const httplib::Request& req, httplib::Response& res);
  bool HostAllowed(const std::string& host_header) const;
  void StreamFits(const std::string& job, const core::Caller& caller, httplib::Response& res);
  void ServeAsset(const std::string& name, httplib::Response& res);

  const HttpOptions options_;
  core::SurgeCore* const core_;
  metrics::ServerMetrics* const metrics_;
  JsonApi api_;
  absl::flat_hash_map<std::string, std::string> assets_;  // embedded files by name
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> open_streams_{0};
  bool stopped_ = false;
};

// Splits "host:port" ("[::1]:8080" for IPv6); INVALID_ARGUMENT otherwise.
absl::Status ParseHostPort(const std::string& listen, std::string* host, int* port);

// The host name of a Host header value, lower-case, without the port or the
// brackets of an IPv6 address ("[::1]:8080" -> "::1").
std::string HostName(const std::string& host_header);

// An Accept-Encoding value without "br" (e.g. "gzip, deflate, br" ->
// "gzip, deflate"): responses are then gzip-compressed, not brotli-compressed
// at cpp-httplib's quality 11, which costs ~20x the CPU (see Start()).
std::string AcceptEncodingWithoutBrotli(const std::string& accept_encoding);

}  // namespace surge::http

#endif  // SURGE_SERVER_HTTP_HTTP_SERVER_H_
