// PgServer: a throwaway PostgreSQL 15 server for tests (Debian's
// postgresql-15). initdb in a fresh temporary folder (as the postgres user
// when the tests run as root, since PostgreSQL refuses root; as the current
// user otherwise), started on a free 127.0.0.1 port with its socket in that
// folder and fsync on (initdb alone runs with --no-sync: a throwaway cluster
// needs no durable bootstrap), trust authentication for user "surge". The
// destructor stops it (pg_ctl stop -m immediate: its data is thrown away)
// and removes the folder; a watchdog process does the same if the test
// process dies first (killed by a ctest timeout, a crash), so no server is
// left behind.
//
// Tests that need one and cannot have one skip with Start()'s message:
//   auto* pg = SharedPgServer();  if (!pg->ok()) GTEST_SKIP() << pg->status();
#ifndef SURGE_TESTS_SUPPORT_PG_SERVER_H_
#define SURGE_TESTS_SUPPORT_PG_SERVER_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace surge::testing {

class PgServer {
 public:
  // Starts a server. FAILED_PRECONDITION, with the reason, where this
  // machine cannot run one (no PostgreSQL 15 binaries, or root without a
  // postgres user or runuser): tests skip then. Other codes: it failed.
  static absl::StatusOr<std::unique_ptr<PgServer>> Start();
  ~PgServer();
  PgServer(const PgServer&) = delete;
  PgServer& operator=(const PgServer&) = delete;

  int port() const { return port_; }
  // postgresql://surge@127.0.0.1:PORT/DB
  std::string Url(const std::string& db) const;
  // A new empty database (UTF8); returns its URL.
  absl::StatusOr<std::string> CreateDatabase(const std::string& db);
  // Drops a database, ending its open connections first.
  absl::Status DropDatabase(const std::string& db);
  // Runs SQL on `db` as the superuser; the first cell of the last result
  // ("" when it returned no rows).
  absl::StatusOr<std::string> Sql(const std::string& db, const std::string& sql);

  // How long initdb and pg_ctl start took.
  absl::Duration initdb_time() const { return initdb_time_; }
  absl::Duration start_time() const { return start_time_; }
  // The server's log.
  std::string log() const;

 private:
  PgServer() = default;

  std::string dir_;        // owned by the server's user; socket and log here
  std::string data_;       // dir_/data
  std::vector<std::string> as_owner_;  // runuser -u postgres -- (root), or empty
  std::string bin_;        // the PostgreSQL binaries' folder
  int port_ = 0;
  bool running_ = false;
  int watchdog_fd_ = -1;   // closing it tells the watchdog to clean up
  pid_t watchdog_pid_ = -1;
  absl::Duration initdb_time_;
  absl::Duration start_time_;
};

// One server for the whole test binary, started on first use and stopped at
// exit; its start-up status when it could not start.
absl::StatusOr<PgServer*> SharedPgServer();

}  // namespace surge::testing

#endif  // SURGE_TESTS_SUPPORT_PG_SERVER_H_
