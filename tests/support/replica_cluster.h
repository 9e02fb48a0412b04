// ReplicaCluster: three real surge-server replicas on one throwaway
// PostgreSQL (pg_server.h) behind nginx from Debian configured with
// deploy/nginx/surge-grpc.conf (its ports rewritten to free ones). Used by
// tests/e2e/replicas_test.cc and bench/replica_bench.cc. Start() answers
// FAILED_PRECONDITION, with the reason, where PostgreSQL or nginx cannot run.
#ifndef SURGE_TESTS_SUPPORT_REPLICA_CLUSTER_H_
#define SURGE_TESTS_SUPPORT_REPLICA_CLUSTER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "tests/support/pg_server.h"
#include "tests/support/server_child.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace surge::testing {

class ReplicaCluster {
 public:
  static constexpr int kReplicas = 3;

  static absl::StatusOr<std::unique_ptr<ReplicaCluster>> Start();
  ~ReplicaCluster();

  // nginx's gRPC address (round robin over the replicas).
  std::string front() const { return "127.0.0.1:" + std::to_string(nginx_grpc_); }
  Server& replica(int i) { return *replicas_[i]; }
  // Starts replica `i` again on its ports (after a kill).
  absl::Status Restart(int i);
  // The database's URL (libpq).
  const std::string& url() const { return url_; }
  const TempDir& dir() const { return dir_; }

 private:
  ReplicaCluster() = default;
  absl::Status StartReplica(int i);
  absl::Status StartNginx();

  TempDir dir_;
  std::unique_ptr<PgServer> pg_;
  std::string url_;
  int grpc_ports_[kReplicas] = {0, 0, 0};
  int http_ports_[kReplicas] = {0, 0, 0};
  int nginx_grpc_ = 0, nginx_http_ = 0;
  std::unique_ptr<Server> replicas_[kReplicas];
  std::unique_ptr<Subprocess> nginx_;
};

}  // namespace surge::testing

#endif  // SURGE_TESTS_SUPPORT_REPLICA_CLUSTER_H_
