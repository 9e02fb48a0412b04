// Implementation of GuardedServer (see guarded_server.h): a socket stream
// with a header deadline, and httplib's keep-alive loop over it.
#include "server/http/guarded_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include <openssl/err.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace surge::http {
namespace {

// Waits up to `timeout` for `events` on `sock`; true when ready.
bool PollFor(int sock, short events, absl::Duration timeout) {
  pollfd p{sock, events, 0};
  const int ms = static_cast<int>(std::max<int64_t>(0, absl::ToInt64Milliseconds(timeout)));
  int r;
  do {
    r = ::poll(&p, 1, ms);
  } while (r < 0 && errno == EINTR);
  return r > 0 && (p.revents & (events | POLLHUP | POLLERR)) != 0;
}

void AddressOf(int sock, bool peer, std::string& ip, int& port) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  const int r = peer ? ::getpeername(sock, reinterpret_cast<sockaddr*>(&addr), &len)
                     : ::getsockname(sock, reinterpret_cast<sockaddr*>(&addr), &len);
  if (r != 0) return;
  char buf[INET6_ADDRSTRLEN] = {0};
  if (addr.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&addr);
    ::inet_ntop(AF_INET, &a->sin_addr, buf, sizeof(buf));
    port = ntohs(a->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
    ::inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof(buf));
    port = ntohs(a->sin6_port);
  }
  ip = buf;
}

// OpenSSL's last error as text.
std::string SslError() {
  char buf[256] = {0};
  ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
  return buf;
}

// SO_RCVTIMEO and SO_SNDTIMEO of `sock` (bounds blocking TLS reads/writes).
void SetSocketTimeouts(int sock, absl::Duration timeout) {
  timeval tv = absl::ToTimeval(timeout);
  setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

// A socket stream with httplib's per-read timeouts and, while a request's
// headers are being read, a deadline for all of them. Reads are buffered (the
// header parser reads a byte at a time). With `ssl` the bytes go through TLS.
class GuardedStream final : public httplib::Stream {
 public:
  GuardedStream(int sock, SSL* ssl, absl::Duration read_timeout, absl::Duration write_timeout,
                absl::Duration header_timeout)
      : sock_(sock), ssl_(ssl), read_timeout_(read_timeout), write_timeout_(write_timeout),
        header_timeout_(header_timeout) {}

  // A new request begins: its headers are due within header_timeout.
  void BeginRequest() { deadline_ = absl::Now() + header_timeout_; }
  // All headers are in: no deadline until the next request.
  void HeadersDone() { deadline_ = absl::InfiniteFuture(); }
  bool cut() const { return cut_; }

  bool is_readable() const override {
    return buffered() > 0 || SslPending() || PollFor(sock_, POLLIN, ReadWait());
  }
  bool is_writable() const override { return PollFor(sock_, POLLOUT, write_timeout_); }

  ssize_t read(char* ptr, size_t size) override {
    if (buffered() == 0) {
      if (!SslPending() && !PollFor(sock_, POLLIN, ReadWait())) {
        if (absl::Now() >= deadline_) cut_ = true;
        return -1;
      }
      ssize_t n;
      if (ssl_ != nullptr) {
        n = SSL_read(ssl_, buf_, sizeof(buf_));
      } else {
        do {
          n = ::recv(sock_, buf_, sizeof(buf_), 0);
        } while (n < 0 && errno == EINTR);
      }
      if (n <= 0) return n;
      begin_ = 0;
      end_ = static_cast<size_t>(n);
    }
    const size_t n = std::min(size, buffered());
    std::copy(buf_ + begin_, buf_ + begin_ + n, ptr);
    begin_ += n;
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    if (!is_writable()) return -1;
    if (ssl_ != nullptr) {
      const int n = SSL_write(ssl_, ptr, static_cast<int>(std::min<size_t>(size, 1 << 30)));
      return n > 0 ? n : -1;
    }
    ssize_t n;
    do {
      n = ::send(sock_, ptr, size, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    AddressOf(sock_, true, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    AddressOf(sock_, false, ip, port);
  }
  socket_t socket() const override { return sock_; }

 private:
  size_t buffered() const { return end_ - begin_; }
  bool SslPending() const { return ssl_ != nullptr && SSL_pending(ssl_) > 0; }
  // The per-read timeout, cut short by the header deadline.
  absl::Duration ReadWait() const {
    return std::min(read_timeout_, std::max(absl::ZeroDuration(), deadline_ - absl::Now()));
  }

  const int sock_;
  SSL* const ssl_;
  const absl::Duration read_timeout_;
  const absl::Duration write_timeout_;
  const absl::Duration header_timeout_;
  absl::Time deadline_ = absl::InfiniteFuture();
  mutable bool cut_ = false;
  char buf_[4096];
  size_t begin_ = 0;
  size_t end_ = 0;
};

thread_local GuardedStream* current_stream = nullptr;

}  // namespace

GuardedServer::~GuardedServer() {
  if (ssl_ctx_ != nullptr) SSL_CTX_free(ssl_ctx_);
}

absl::Status GuardedServer::EnableTls(const TlsFiles& files) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) return absl::InternalError(absl::StrCat("TLS: ", SslError()));
  auto fail = [&](const std::string& what) {
    std::string error = SslError();
    SSL_CTX_free(ctx);
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", error));
  };
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (SSL_CTX_use_certificate_chain_file(ctx, files.cert_file.c_str()) != 1) {
    return fail(absl::StrCat("TLS certificate ", files.cert_file, " cannot be used"));
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, files.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return fail(absl::StrCat("TLS key ", files.key_file, " cannot be used"));
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return fail(absl::StrCat("TLS key ", files.key_file, " does not match certificate ",
                             files.cert_file));
  }
  if (!files.client_ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, files.client_ca_file.c_str(), nullptr) != 1) {
      return fail(absl::StrCat("TLS client CA ", files.client_ca_file, " cannot be used"));
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  if (ssl_ctx_ != nullptr) SSL_CTX_free(ssl_ctx_);
  ssl_ctx_ = ctx;
  return absl::OkStatus();
}

void GuardedServer::RequestStarted() {
  if (current_stream != nullptr) current_stream->HeadersDone();
}

// httplib's keep-alive loop (detail::process_server_socket), over a
// GuardedStream: at most keep_alive_max_count_ requests, each waited for up
// to keep_alive_timeout_sec_, the last one (or any once the server stops)
// answered with "Connection: close".
bool GuardedServer::process_and_close_socket(socket_t sock) {
  struct Open {
    std::atomic<int>& n;
    ~Open() { --n; }
  } open{open_};
  if (++open_ > limits_.max_connections) {
    ++refused_;
    static const std::string kBusy =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
        "Connection: close\r\nContent-Length: 38\r\n\r\n"
        "too many open connections; retry later";
    (void)!::send(sock, kBusy.data(), kBusy.size(), MSG_NOSIGNAL);
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
    return false;
  }
  const absl::Duration read_timeout =
      absl::Seconds(read_timeout_sec_) + absl::Microseconds(read_timeout_usec_);
  SSL* ssl = nullptr;
  if (ssl_ctx_ != nullptr) {
    // The handshake is due within the header deadline; afterwards a blocking
    // TLS read or write (a partial record) waits at most the read timeout.
    ssl = SSL_new(ssl_ctx_);
    SetSocketTimeouts(sock, limits_.header_timeout);
    if (ssl == nullptr || SSL_set_fd(ssl, sock) != 1 || SSL_accept(ssl) != 1) {
      ++tls_failed_;
      if (ssl != nullptr) SSL_free(ssl);
      ::shutdown(sock, SHUT_RDWR);
      ::close(sock);
      return false;
    }
    SetSocketTimeouts(sock, read_timeout);
  }
  GuardedStream strm(sock, ssl, read_timeout,
                     absl::Seconds(write_timeout_sec_) + absl::Microseconds(write_timeout_usec_),
                     limits_.header_timeout);
  current_stream = &strm;
  bool ret = false;
  size_t count = keep_alive_max_count_;
  while (count > 0 && svr_sock_ != INVALID_SOCKET) {
    if (!PollFor(sock, POLLIN, absl::Seconds(keep_alive_timeout_sec_))) break;
    strm.BeginRequest();
    const bool close_connection = count == 1 || svr_sock_ == INVALID_SOCKET;
    bool connection_closed = false;
    ret = process_request(strm, close_connection, connection_closed, nullptr);
    if (strm.cut()) ++cut_;
    if (!ret || connection_closed) break;
    --count;
  }
  current_stream = nullptr;
  if (ssl != nullptr) {
    SSL_shutdown(ssl);
    SSL_free(ssl);
  }
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
  return ret;
}

}  // namespace surge::http
