// Implementation of ReplicaCluster (see replica_cluster.h).
#include "tests/support/replica_cluster.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "client/cpp/surge_client.h"

namespace surge::testing {
namespace {

constexpr char kNginx[] = "/usr/sbin/nginx";

// A free loopback port (bound, read, released).
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ReplicaCluster>> ReplicaCluster::Start() {
  if (access(kNginx, X_OK) != 0) {
    return absl::FailedPreconditionError("nginx is not installed (scripts/setup.sh)");
  }
  std::unique_ptr<ReplicaCluster> c(new ReplicaCluster());
  absl::StatusOr<std::unique_ptr<PgServer>> pg = PgServer::Start();
  if (!pg.ok()) return pg.status();
  c->pg_ = std::move(*pg);
  absl::StatusOr<std::string> url = c->pg_->CreateDatabase("replicas");
  if (!url.ok()) return url.status();
  c->url_ = *url;
  for (int i = 0; i < kReplicas; ++i) {
    c->grpc_ports_[i] = FreePort();
    c->http_ports_[i] = FreePort();
    if (absl::Status s = c->StartReplica(i); !s.ok()) return s;
  }
  if (absl::Status s = c->StartNginx(); !s.ok()) return s;
  return c;
}

ReplicaCluster::~ReplicaCluster() {
  for (auto& r : replicas_) {
    if (r) {
      r->process.Kill(SIGTERM);
      r->process.Wait();
    }
  }
  if (nginx_) {
    nginx_->Kill(SIGTERM);
    nginx_->Wait();
  }
}

absl::Status ReplicaCluster::StartReplica(int i) {
  absl::StatusOr<Server> server = StartServer(
      dir_, absl::StrCat("replica", i),
      {absl::StrCat("--listen=127.0.0.1:", grpc_ports_[i]),
       absl::StrCat("--http=127.0.0.1:", http_ports_[i]), "--db=" + url_});
  if (!server.ok()) return server.status();
  replicas_[i] = std::make_unique<Server>(std::move(*server));
  return absl::OkStatus();
}

absl::Status ReplicaCluster::Restart(int i) { return StartReplica(i); }

// deploy/nginx/surge-grpc.conf with its ports rewritten, inside a wrapper
// nginx.conf whose paths are all in the cluster's folder.
absl::Status ReplicaCluster::StartNginx() {
  std::string conf = ReadFile(std::string(SURGE_SOURCE_DIR) + "/deploy/nginx/surge-grpc.conf");
  if (conf.empty()) return absl::NotFoundError("deploy/nginx/surge-grpc.conf is missing");
  nginx_grpc_ = FreePort();
  nginx_http_ = FreePort();
  auto port = [](int p) { return absl::StrCat("127.0.0.1:", p); };
  conf = absl::StrReplaceAll(
      conf, {{"127.0.0.1:50060", port(nginx_grpc_)},
             {"127.0.0.1:50061", port(grpc_ports_[0])},
             {"127.0.0.1:50062", port(grpc_ports_[1])},
             {"127.0.0.1:50063", port(grpc_ports_[2])},
             {"127.0.0.1:8060", port(nginx_http_)},
             {"127.0.0.1:8061", port(http_ports_[0])},
             {"127.0.0.1:8062", port(http_ports_[1])},
             {"127.0.0.1:8063", port(http_ports_[2])}});
  std::ofstream(dir_.File("surge-grpc.conf")) << conf;
  const std::string t = dir_.File("nginx-temp");
  std::ofstream(dir_.File("nginx.conf"))
      << "worker_processes 1;\ndaemon off;\npid " << dir_.File("nginx.pid") << ";\n"
      << "error_log " << dir_.File("nginx-error.log") << ";\nevents {}\nhttp {\n"
      << "  access_log off;\n  client_body_temp_path " << t << "/body;\n"
      << "  proxy_temp_path " << t << "/proxy;\n  fastcgi_temp_path " << t << "/fcgi;\n"
      << "  uwsgi_temp_path " << t << "/uwsgi;\n  scgi_temp_path " << t << "/scgi;\n"
      << "  include " << dir_.File("surge-grpc.conf") << ";\n}\n";
  mkdir(t.c_str(), 0777);
  chmod(t.c_str(), 01777);
  absl::StatusOr<Subprocess> nginx =
      Subprocess::Start({kNginx, "-p", dir_.path(), "-c", dir_.File("nginx.conf")},
                        dir_.File("nginx.log"));
  if (!nginx.ok()) return nginx.status();
  nginx_ = std::make_unique<Subprocess>(std::move(*nginx));
  // Up when a call through it answers.
  client::ClientOptions options;
  options.target = front();
  client::SurgeClient c(options);
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline) {
    if (c.ListJobs().ok()) return absl::OkStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return absl::DeadlineExceededError("nginx did not answer: " +
                                     ReadFile(dir_.File("nginx-error.log")));
}

}  // namespace surge::testing
