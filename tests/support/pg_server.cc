// Implementation of PgServer (see pg_server.h). Commands run through
// posix_spawn (RunCommand), not fork: test processes run gRPC.
#include "tests/support/pg_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "tests/support/subprocess.h"

extern char** environ;

namespace surge::testing {
namespace {

constexpr char kDefaultBinDir[] = "/usr/lib/postgresql/15/bin";

bool IsExecutable(const std::string& path) { return access(path.c_str(), X_OK) == 0; }

// A port on 127.0.0.1 that was free a moment ago (0 on failure).
int FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

std::string Quote(const std::string& s) { return "'" + s + "'"; }

// The result of one statement as a status.
absl::Status ResultStatus(PGconn* conn, PGresult* r, const std::string& what) {
  ExecStatusType status = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return absl::OkStatus();
  std::string message(absl::StripTrailingAsciiWhitespace(r ? PQresultErrorMessage(r)
                                                            : PQerrorMessage(conn)));
  return absl::InternalError(absl::StrCat(what, ": ", message));
}

}  // namespace

absl::StatusOr<std::unique_ptr<PgServer>> PgServer::Start() {
  std::unique_ptr<PgServer> server(new PgServer());
  const char* bin_env = std::getenv("SURGE_PG_BINDIR");
  server->bin_ = bin_env ? bin_env : kDefaultBinDir;
  if (!IsExecutable(server->bin_ + "/initdb") || !IsExecutable(server->bin_ + "/pg_ctl")) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no PostgreSQL 15 server binaries in ", server->bin_,
        " (apt-get install postgresql-15, as scripts/setup.sh does; or set SURGE_PG_BINDIR)"));
  }
  uid_t uid = 0;
  gid_t gid = 0;
  if (geteuid() == 0) {
    // PostgreSQL refuses to run as root: run it as the postgres user.
    const passwd* pw = getpwnam("postgres");
    const char* runuser = IsExecutable("/usr/sbin/runuser") ? "/usr/sbin/runuser"
                          : IsExecutable("/sbin/runuser")   ? "/sbin/runuser"
                                                            : nullptr;
    if (pw == nullptr || runuser == nullptr) {
      return absl::FailedPreconditionError(
          "running as root, and PostgreSQL refuses root: needs a 'postgres' user and runuser "
          "(the postgresql-15 package creates the user)");
    }
    uid = pw->pw_uid;
    gid = pw->pw_gid;
    server->as_owner_ = {runuser, "-u", "postgres", "--"};
  }

  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base ? base : "/tmp") + "/surge-pg-XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) return absl::InternalError("mkdtemp failed");
  server->dir_ = buf.data();
  server->data_ = server->dir_ + "/data";
  if (!server->as_owner_.empty() && chown(server->dir_.c_str(), uid, gid) != 0) {
    rmdir(server->dir_.c_str());
    return absl::InternalError(absl::StrCat("chown ", server->dir_, " failed"));
  }

  // The watchdog: blocks on a pipe whose only writer is this process; at EOF
  // (closed by the destructor, or this process died) it stops the server
  // and removes the folder. Its own session: a Ctrl-C of the tests does not
  // stop it before it cleaned up. Stop mode immediate: the data is thrown
  // away, and fast's shutdown checkpoint fsyncs every database first
  // (measured 24 s with 22 test databases on this 2-core VM).
  {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return absl::InternalError("pipe2 failed");
    std::string stop = absl::StrJoin(server->as_owner_, " ");
    std::string script = absl::StrCat(
        "cat >/dev/null; if [ -f ", Quote(server->data_ + "/postmaster.pid"), " ]; then ", stop,
        " ", Quote(server->bin_ + "/pg_ctl"), " -D ", Quote(server->data_),
        " -m immediate -w -t 30 stop >/dev/null 2>&1; fi; rm -rf ", Quote(server->dir_));
    std::vector<std::string> argv = {"/bin/sh", "-c", script};
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[0], 0);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
    int rc = posix_spawn(&server->watchdog_pid_, "/bin/sh", &actions, &attr, args.data(),
                         environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    close(fds[0]);
    if (rc != 0) {
      close(fds[1]);
      server->watchdog_pid_ = -1;
      std::error_code ec;
      std::filesystem::remove_all(server->dir_, ec);
      return absl::InternalError("cannot start the PostgreSQL watchdog");
    }
    server->watchdog_fd_ = fds[1];
  }

  auto as_owner = [&](std::vector<std::string> argv) {
    std::vector<std::string> full = server->as_owner_;
    full.insert(full.end(), argv.begin(), argv.end());
    return full;
  };
  absl::Time t0 = absl::Now();
  CommandResult init = RunCommand(as_owner({server->bin_ + "/initdb", "-D", server->data_, "-A",
                                            "trust", "-U", "surge", "-E", "UTF8", "--locale=C",
                                            "--no-sync", "--no-instructions"}));
  server->initdb_time_ = absl::Now() - t0;
  if (init.exit_code != 0) {
    return absl::InternalError(absl::StrCat("initdb failed (exit ", init.exit_code, "): ",
                                            init.out, init.err));
  }
  // A free port can be taken between the probe and the bind: try a few.
  std::string last_error;
  for (int attempt = 0; attempt < 5 && !server->running_; ++attempt) {
    server->port_ = FreeLoopbackPort();
    if (server->port_ == 0) return absl::InternalError("no free loopback port");
    std::string options =
        absl::StrCat("-p ", server->port_, " -k ", server->dir_,
                     " -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on");
    absl::Time t1 = absl::Now();
    CommandResult started =
        RunCommand(as_owner({server->bin_ + "/pg_ctl", "-D", server->data_, "-l",
                             server->dir_ + "/log", "-o", options, "-w", "-t", "60", "start"}));
    server->start_time_ = absl::Now() - t1;
    if (started.exit_code == 0) {
      server->running_ = true;
    } else {
      last_error = absl::StrCat("pg_ctl start failed (exit ", started.exit_code, "): ",
                                started.out, started.err, server->log());
    }
  }
  if (!server->running_) return absl::InternalError(last_error);
  return server;
}

PgServer::~PgServer() {
  if (watchdog_fd_ >= 0) close(watchdog_fd_);  // the watchdog stops the server, removes dir_
  if (watchdog_pid_ > 0) {
    absl::Time deadline = absl::Now() + absl::Seconds(60);
    int status = 0;
    while (waitpid(watchdog_pid_, &status, WNOHANG) == 0 && absl::Now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
}

std::string PgServer::Url(const std::string& db) const {
  return absl::StrCat("postgresql://surge@127.0.0.1:", port_, "/", db);
}

std::string PgServer::log() const { return ReadFile(dir_ + "/log"); }

absl::StatusOr<std::string> PgServer::Sql(const std::string& db, const std::string& sql) {
  PGconn* conn = PQconnectdb(Url(db).c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string why = PQerrorMessage(conn);
    PQfinish(conn);
    return absl::UnavailableError(absl::StrCat("connect to ", db, ": ", why));
  }
  PQsetNoticeProcessor(conn, [](void*, const char*) {}, nullptr);
  PGresult* r = PQexec(conn, sql.c_str());
  absl::Status status = ResultStatus(conn, r, sql);
  std::string cell;
  if (status.ok() && PQntuples(r) > 0 && PQnfields(r) > 0) cell = PQgetvalue(r, 0, 0);
  PQclear(r);
  PQfinish(conn);
  if (!status.ok()) return status;
  return cell;
}

absl::StatusOr<std::string> PgServer::CreateDatabase(const std::string& db) {
  absl::StatusOr<std::string> r =
      Sql("postgres", absl::StrCat("CREATE DATABASE \"", db, "\" TEMPLATE template0 ENCODING 'UTF8'"));
  if (!r.ok()) return r.status();
  return Url(db);
}

absl::Status PgServer::DropDatabase(const std::string& db) {
  return Sql("postgres", absl::StrCat("DROP DATABASE IF EXISTS \"", db, "\" WITH (FORCE)"))
      .status();
}

absl::StatusOr<PgServer*> SharedPgServer() {
  static std::mutex mu;
  static absl::StatusOr<std::unique_ptr<PgServer>>* shared = nullptr;
  static std::unique_ptr<PgServer> keeper;  // destroyed at exit: stops the server
  std::lock_guard<std::mutex> lock(mu);
  if (shared == nullptr) {
    shared = new absl::StatusOr<std::unique_ptr<PgServer>>(PgServer::Start());
    if (shared->ok()) {
      keeper = std::move(**shared);
      fprintf(stderr, "[pg_server] PostgreSQL on 127.0.0.1:%d: initdb %.2f s, start %.2f s\n",
              keeper->port(), absl::ToDoubleSeconds(keeper->initdb_time()),
              absl::ToDoubleSeconds(keeper->start_time()));
    }
  }
  if (!shared->ok()) return shared->status();
  return keeper.get();
}

}  // namespace surge::testing
