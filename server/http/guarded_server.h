// GuardedServer: httplib::Server with the two limits that keep slow or
// numerous clients from shutting out /healthz, the dashboard and /metrics.
//
//   - A header deadline: a request whose headers are not all in
//     `header_timeout` after the connection was picked up (or after the
//     previous response on it) ends the connection. httplib's own read
//     timeout is per read(), so a client dripping one byte every 2 s never
//     hits it; this deadline is for the whole header. A request being
//     answered (an SSE stream included) is never cut.
//   - A connection cap: a connection picked up while `max_connections` are
//     open gets "503 Service Unavailable" and is closed at once.
//
// How: process_and_close_socket (one worker thread per connection) runs
// httplib's keep-alive loop itself over a GuardedStream, a socket stream
// whose reads fail once the header deadline has passed; the pre-routing hook
// (all headers read) calls RequestStarted() on the worker's thread, which
// lifts the deadline until the next request.
//
// TLS (EnableTls): the same loop over OpenSSL. The handshake must finish
// within the header deadline; with a client CA, a client without a
// certificate signed by it fails the handshake (mutual TLS).
#ifndef SURGE_SERVER_HTTP_GUARDED_SERVER_H_
#define SURGE_SERVER_HTTP_GUARDED_SERVER_H_

#include <httplib.h>

#include <openssl/ssl.h>

#include <atomic>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/util/tls_files.h"

namespace surge::http {

using TlsFiles = util::TlsFiles;

struct ConnectionLimits {
  absl::Duration header_timeout = absl::Seconds(10);
  int max_connections = 128;
};

class GuardedServer : public httplib::Server {
 public:
  explicit GuardedServer(const ConnectionLimits& limits) : limits_(limits) {}
  ~GuardedServer() override;

  // Serves HTTPS (TLS 1.2 or newer) from now on. INVALID_ARGUMENT naming the
  // file that cannot be read or does not match.
  absl::Status EnableTls(const TlsFiles& files);
  bool tls() const { return ssl_ctx_ != nullptr; }

  // On the worker thread of the current connection: the request's headers
  // are all in; no deadline until the next request begins.
  static void RequestStarted();

  int64_t connections_cut() const { return cut_.load(); }
  int64_t connections_refused() const { return refused_.load(); }
  int64_t tls_handshakes_failed() const { return tls_failed_.load(); }

 private:
  bool process_and_close_socket(socket_t sock) override;

  const ConnectionLimits limits_;
  SSL_CTX* ssl_ctx_ = nullptr;
  std::atomic<int> open_{0};
  std::atomic<int64_t> cut_{0};
  std::atomic<int64_t> refused_{0};
  std::atomic<int64_t> tls_failed_{0};
};

}  // namespace surge::http

#endif  // SURGE_SERVER_HTTP_GUARDED_SERVER_H_
