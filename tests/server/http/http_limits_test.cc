// Fault 6 of issue 11: 33 slow HTTP connections (one header byte every 2 s)
// took /healthz, the dashboard and /metrics down (a 32-thread pool, no
// deadline for the whole header). An in-process HttpServer on 127.0.0.1:0
// with a small pool: slow clients are cut at the header deadline and
// /healthz answers meanwhile; over the connection cap a client gets 503 at
// once.
// Before httplib.h: it pulls in <resolv.h>, whose `_res` macro breaks Eigen's headers.
#include "server/http/http_server.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/core/surge_core.h"
#include "tests/support/temp_dir.h"

namespace surge::http {
namespace {

// A TCP connection to 127.0.0.1:port; -1 on failure.
int Connect(int port) {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(s);
    return -1;
  }
  return s;
}

// True when the server closed `s` (recv gives 0 or an error) within `wait`.
bool ClosedWithin(int s, absl::Duration wait) {
  const absl::Time deadline = absl::Now() + wait;
  char buf[256];
  while (absl::Now() < deadline) {
    pollfd p{s, POLLIN, 0};
    if (::poll(&p, 1, 100) > 0) {
      ssize_t n = ::recv(s, buf, sizeof(buf), MSG_DONTWAIT);
      if (n <= 0) return true;
    }
  }
  return false;
}

class HttpLimitsTest : public ::testing::Test {
 protected:
  void Start(const HttpOptions& options) {
    core::CoreOptions core_options;
    core_options.db_path = dir_.File("limits.db");
    auto core = core::SurgeCore::Open(core_options);
    ASSERT_TRUE(core.ok()) << core.status();
    core_ = std::move(*core);
    auto server = HttpServer::Start(options, core_.get(), &metrics_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }
  void TearDown() override {
    StopDrip();
    for (int s : slow_) ::close(s);
    server_.reset();
    core_.reset();
  }

  // Opens n connections that send a request line and then one header byte
  // every `every` (from a background thread) without ever finishing.
  void OpenSlow(int n, absl::Duration every) {
    for (int i = 0; i < n; ++i) {
      int s = Connect(server_->port());
      ASSERT_GE(s, 0);
      const char line[] = "GET /healthz HTTP/1.1\r\nX-Slow: ";
      ASSERT_GT(::send(s, line, sizeof(line) - 1, MSG_NOSIGNAL), 0);
      slow_.push_back(s);
    }
    dripper_ = std::thread([this, every] {
      while (!stop_drip_) {
        for (int s : slow_) (void)!::send(s, "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        std::this_thread::sleep_for(std::chrono::milliseconds(absl::ToInt64Milliseconds(every)));
      }
    });
  }
  void StopDrip() {
    stop_drip_ = true;
    if (dripper_.joinable()) dripper_.join();
  }

  testing::TempDir dir_;
  std::unique_ptr<core::SurgeCore> core_;
  metrics::ServerMetrics metrics_;
  std::unique_ptr<HttpServer> server_;
  std::vector<int> slow_;
  std::thread dripper_;
  std::atomic<bool> stop_drip_{false};
};

TEST_F(HttpLimitsTest, SlowClientsAreCutAndHealthzAnswers) {
  HttpOptions options;
  options.listen = "127.0.0.1:0";
  options.threads = 4;
  options.limits.header_timeout = absl::Seconds(1);
  ASSERT_NO_FATAL_FAILURE(Start(options));
  // More slow clients than request threads, each sending a byte every 0.3 s
  // (well inside httplib's 5 s per-read timeout).
  ASSERT_NO_FATAL_FAILURE(OpenSlow(8, absl::Milliseconds(300)));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  httplib::Client client("127.0.0.1", server_->port());
  client.set_read_timeout(10, 0);
  client.set_connection_timeout(10, 0);
  const absl::Time start = absl::Now();
  auto res = client.Get("/healthz");
  const absl::Duration took = absl::Now() - start;
  ASSERT_TRUE(res) << "no answer from /healthz: " << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  // The slow ones were cut at their header deadline (plus the drip period).
  for (int s : slow_) EXPECT_TRUE(ClosedWithin(s, absl::Seconds(5)));
  StopDrip();
  // /healthz waited at most for the slow clients' deadline, not forever.
  EXPECT_LT(took, absl::Seconds(8));
}

TEST_F(HttpLimitsTest, OverTheConnectionCapA503AtOnce) {
  HttpOptions options;
  options.listen = "127.0.0.1:0";
  options.threads = 16;
  options.limits.header_timeout = absl::Seconds(30);
  options.limits.max_connections = 3;
  ASSERT_NO_FATAL_FAILURE(Start(options));
  ASSERT_NO_FATAL_FAILURE(OpenSlow(3, absl::Milliseconds(300)));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  httplib::Client client("127.0.0.1", server_->port());
  client.set_read_timeout(10, 0);
  auto res = client.Get("/healthz");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 503);
  EXPECT_EQ(res->body, "too many open connections; retry later");
  // Once the slow ones are gone, requests are served again.
  StopDrip();
  for (int s : slow_) ::close(s);
  slow_.clear();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  res = client.Get("/healthz");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
}

}  // namespace
}  // namespace surge::http
