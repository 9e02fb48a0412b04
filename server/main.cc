// surge-server: checks its flags, parses them into ServerOptions, starts the
// server, and stops it gracefully on SIGTERM or SIGINT. Any flag out of range
// stops it at start with a message naming the flag and what it accepts.
// Every flag can also come from the environment as SURGE_<FLAG> (SURGE_DB for
// --db); a flag on the command line wins over its variable.
#include <signal.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/core/auth.h"
#include "server/app/server.h"
#include "server/store/copy_store.h"
#include "server/store/db_lock.h"
#include "server/store/open_store.h"
#include "server/util/host.h"

namespace {

// Whether --NAME (or -NAME) appears on the command line, as --NAME=V or --NAME V.
bool FlagGiven(int argc, char** argv, const std::string& name) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") break;
    for (const std::string& prefix : {"--" + name, "-" + name}) {
      if (arg == prefix || absl::StartsWith(arg, prefix + "=")) return true;
    }
  }
  return false;
}

// Whether a flag was declared in this file (the flags --help lists).
bool IsServerFlag(absl::string_view file) { return absl::EndsWith(file, "server/main.cc"); }

// The environment variable of flag NAME: SURGE_NAME in upper case.
std::string EnvName(absl::string_view flag) {
  return absl::StrCat("SURGE_", absl::AsciiStrToUpper(flag));
}

// Sets every flag of this file that is not on the command line (as --NAME or,
// for a bool, --noNAME) from its SURGE_NAME variable, if set. Returns the
// flags so set (flag -> variable); a value that does not parse adds a line
// naming the variable to `problems`. ParseCommandLine runs afterwards, so
// anything on the command line still wins.
std::map<std::string, std::string> FlagsFromEnvironment(int argc, char** argv,
                                                        std::vector<std::string>* problems) {
  std::map<std::string, std::string> from_env;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (!IsServerFlag(flag->Filename())) continue;
    std::string flag_name(name);
    if (FlagGiven(argc, argv, flag_name) || FlagGiven(argc, argv, "no" + flag_name)) continue;
    std::string env_name = EnvName(flag_name);
    const char* value = std::getenv(env_name.c_str());
    if (value == nullptr) continue;
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      problems->push_back(absl::StrCat(env_name, "=", value, " (--", flag_name, "): ", error));
      continue;
    }
    from_env[flag_name] = env_name;
  }
  return from_env;
}

// Accepted ranges of the numeric flags.
constexpr int kMaxReaders = 256;
constexpr int64_t kMaxQueuedRecords = 100'000'000;
constexpr int kMaxShutdownGraceS = 3600;
constexpr int64_t kMaxQueuedMib = 64 * 1024;
constexpr int kMaxIngestStreams = 100000;
constexpr int kMaxFitThreads = 64;

bool IsDirectory(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// The folder a file path lives in ("." for a bare name).
std::string FolderOf(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// "" when `value` is HOST:PORT ("[v6]:PORT" for IPv6) with PORT in
// [0, 65535]; otherwise what is wrong with it.
std::string HostPortProblem(const std::string& value) {
  size_t colon = value.rfind(':');
  int port = -1;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(value.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return "must be HOST:PORT with PORT in [0, 65535] (0 picks a free port)";
  }
  return "";
}

// "" when `path` can name a file to write: a non-empty path, not a folder,
// in a folder that exists.
std::string WritableFileProblem(const std::string& path) {
  if (path.empty()) return "must not be empty";
  if (IsDirectory(path)) return "is a folder, must name a file";
  if (!IsDirectory(FolderOf(path))) {
    return absl::StrCat("its folder ", FolderOf(path), " does not exist");
  }
  return "";
}

// Writes `port` to `path` atomically (write a temporary file, then rename).
void WritePortFile(const std::string& path, int port) {
  std::string tmp = path + ".tmp";
  std::ofstream(tmp) << port << "\n";
  std::rename(tmp.c_str(), path.c_str());
}

}  // namespace

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "gRPC address host:port (port 0 picks a free port)");
ABSL_FLAG(std::string, db, "./surge.db",
          "the database: a SQLite file (created if missing), sqlite:///PATH, or "
          "postgresql://USER:PASSWORD@HOST:PORT/DB (shared by replicas)");
ABSL_FLAG(std::string, port_file, "",
          "if set, write the bound gRPC port to this file once serving (for scripts/tests)");
ABSL_FLAG(int, max_readers, 8, "maximum concurrent read connections to the database");
ABSL_FLAG(int64_t, max_queued_records, 1 << 20,
          "records waiting for commit before ingest streams are slowed down");
ABSL_FLAG(int64_t, max_queued_mib, 256,
          "MiB of ingest batches (serialized) waiting for commit before ingest streams are "
          "slowed down");
ABSL_FLAG(int, max_ingest_streams, 256,
          "concurrent Ingest streams; one more is refused with RESOURCE_EXHAUSTED");
ABSL_FLAG(int, fit_threads, 2,
          "background fit threads (fits of different jobs run in parallel; one job's never)");
ABSL_FLAG(std::string, http, "127.0.0.1:8080",
          "dashboard HTTP address host:port (read-only JSON API, /metrics, /healthz, pages); "
          "port 0 picks a free port; empty disables. If the default is busy the server runs "
          "without HTTP; an explicit --http that cannot be bound is an error");
ABSL_FLAG(std::string, http_port_file, "",
          "if set, write the bound HTTP port to this file once serving (0: no HTTP)");
ABSL_FLAG(std::string, http_static_dir, "",
          "serve the dashboard files from this folder instead of the embedded copy "
          "(for editing server/http/static without a rebuild)");
ABSL_FLAG(bool, startup_quick_check, true,
          "run PRAGMA quick_check on the database before serving and refuse a damaged one "
          "(~0.2 s per million records on a 2-core VM; false skips it for very large files)");
ABSL_FLAG(int, shutdown_grace_s, 10,
          "seconds in-flight calls get to finish after SIGTERM before they are cancelled");
ABSL_FLAG(std::string, copy_to, "",
          "copy the --db database into this one (e.g. postgresql://...; it must hold none of "
          "the jobs), verify every run's record count and checksum, print the figures and exit "
          "(0: the copy is whole); no server is started");
ABSL_FLAG(std::string, tokens_file, "",
          "bearer tokens (lines 'TENANT ROLE sha256:HEX', made by `surge token new`); every "
          "gRPC and HTTP API call then needs one. Default: $SURGE_TOKENS_FILE. Without it the "
          "server listens on loopback only. SIGHUP re-reads it (docs/security.md)");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate chain: serve gRPC and HTTP over TLS");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA certificate(s): require client certificates signed by it (mutual TLS)");
ABSL_FLAG(std::string, http_allowed_hosts, "",
          "comma-separated host names the dashboard may be reached by besides the --http host "
          "and localhost (e.g. a proxy's name); other Host headers get 421");
ABSL_FLAG(int, tenant_max_streams, 0,
          "open Ingest streams per tenant (0: only --max_ingest_streams applies)");
ABSL_FLAG(double, tenant_max_records_per_s, 0,
          "records per second one tenant may send (0: unlimited); over it RESOURCE_EXHAUSTED");
ABSL_FLAG(int64_t, tenant_max_queued_mib, 0,
          "MiB of one tenant's batches waiting for commit (0: only --max_queued_mib applies)");

namespace {

// Checks every flag (and that no positional argument was given); returns one
// line per problem, naming the flag (or its variable, for the flags in
// `from_env`) and what it accepts (empty: all good).
std::vector<std::string> FlagProblems(const std::vector<char*>& positional,
                                      const std::map<std::string, std::string>& from_env) {
  std::vector<std::string> problems;
  auto add = [&](const std::string& flag, const std::string& value, const std::string& what) {
    auto env = from_env.find(flag);
    if (env == from_env.end()) {
      problems.push_back(absl::StrCat("--", flag, "=", value, ": ", what));
    } else {
      problems.push_back(absl::StrCat(env->second, "=", value, " (--", flag, "): ", what));
    }
  };
  if (positional.size() > 1) {
    problems.push_back(absl::StrCat("unexpected argument '", positional[1],
                                    "': surge-server takes only --flags (see --help)"));
  }
  std::string listen = absl::GetFlag(FLAGS_listen);
  if (std::string p = HostPortProblem(listen); !p.empty()) add("listen", listen, p);
  std::string db = absl::GetFlag(FLAGS_db);
  absl::StatusOr<surge::store::DbTarget> target = surge::store::ParseDbTarget(db);
  if (!target.ok()) {
    add("db", db, std::string(target.status().message()));
  } else if (target->sqlite()) {
    if (target->path == ":memory:" || absl::StartsWith(target->path, "file:")) {
      add("db", db, "must be a file path (not :memory: or a file: URI)");
    } else if (std::string p = WritableFileProblem(target->path); !p.empty()) {
      add("db", db, p);
    }
  }
  for (const auto& [flag, value] :
       {std::pair<std::string, std::string>{"port_file", absl::GetFlag(FLAGS_port_file)},
        {"http_port_file", absl::GetFlag(FLAGS_http_port_file)}}) {
    if (value.empty()) continue;
    if (std::string p = WritableFileProblem(value); !p.empty()) add(flag, value, p);
  }
  int max_readers = absl::GetFlag(FLAGS_max_readers);
  if (max_readers < 1 || max_readers > kMaxReaders) {
    add("max_readers", absl::StrCat(max_readers),
        absl::StrCat("must be in [1, ", kMaxReaders, "] (concurrent read connections)"));
  }
  int64_t max_queued = absl::GetFlag(FLAGS_max_queued_records);
  if (max_queued < 1 || max_queued > kMaxQueuedRecords) {
    add("max_queued_records", absl::StrCat(max_queued),
        absl::StrCat("must be in [1, ", kMaxQueuedRecords, "] (records waiting for commit)"));
  }
  int64_t max_mib = absl::GetFlag(FLAGS_max_queued_mib);
  if (max_mib < 1 || max_mib > kMaxQueuedMib) {
    add("max_queued_mib", absl::StrCat(max_mib),
        absl::StrCat("must be in [1, ", kMaxQueuedMib, "] (MiB waiting for commit)"));
  }
  int streams = absl::GetFlag(FLAGS_max_ingest_streams);
  if (streams < 1 || streams > kMaxIngestStreams) {
    add("max_ingest_streams", absl::StrCat(streams),
        absl::StrCat("must be in [1, ", kMaxIngestStreams, "] (concurrent Ingest streams)"));
  }
  int fit_threads = absl::GetFlag(FLAGS_fit_threads);
  if (fit_threads < 1 || fit_threads > kMaxFitThreads) {
    add("fit_threads", absl::StrCat(fit_threads),
        absl::StrCat("must be in [1, ", kMaxFitThreads, "] (background fit threads)"));
  }
  std::string http = absl::GetFlag(FLAGS_http);
  if (!http.empty()) {
    if (std::string p = HostPortProblem(http); !p.empty()) {
      add("http", http, absl::StrCat(p, ", or empty to disable HTTP"));
    }
  }
  std::string static_dir = absl::GetFlag(FLAGS_http_static_dir);
  if (!static_dir.empty() && !IsDirectory(static_dir)) {
    add("http_static_dir", static_dir, "must be an existing folder (or empty: embedded files)");
  }
  std::string tokens = absl::GetFlag(FLAGS_tokens_file);
  if (!tokens.empty()) {
    if (absl::StatusOr<surge::core::TokenTable> table = surge::core::TokenTable::Load(tokens);
        !table.ok()) {
      add("tokens_file", tokens, std::string(table.status().message()));
    } else if (table->size() == 0) {
      add("tokens_file", tokens, "holds no tokens (add one with `surge token new`)");
    }
  } else {
    for (const auto& [flag, value] : {std::pair<std::string, std::string>{"listen", listen},
                                      {"http", http}}) {
      if (value.empty() || surge::util::IsLoopbackHost(surge::util::HostOf(value))) continue;
      add(flag, value,
          "is not a loopback address: without --tokens_file anyone who can reach it could read "
          "and delete every job (give --tokens_file, or listen on 127.0.0.1)");
    }
  }
  std::string cert = absl::GetFlag(FLAGS_tls_cert), key = absl::GetFlag(FLAGS_tls_key),
              client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  if (cert.empty() != key.empty()) {
    add(cert.empty() ? "tls_key" : "tls_cert", cert.empty() ? key : cert,
        "needs --tls_cert and --tls_key together");
  }
  if (!client_ca.empty() && cert.empty()) {
    add("tls_client_ca", client_ca, "needs --tls_cert and --tls_key (mutual TLS is TLS)");
  }
  for (const auto& [flag, value] : {std::pair<std::string, std::string>{"tls_cert", cert},
                                    {"tls_key", key},
                                    {"tls_client_ca", client_ca}}) {
    if (!value.empty() && !std::ifstream(value)) add(flag, value, "cannot be read");
  }
  if (absl::GetFlag(FLAGS_tenant_max_streams) < 0) {
    add("tenant_max_streams", absl::StrCat(absl::GetFlag(FLAGS_tenant_max_streams)),
        "must be >= 0 (0: no per-tenant limit)");
  }
  double rate = absl::GetFlag(FLAGS_tenant_max_records_per_s);
  if (!(rate >= 0) || rate > 1e12) {
    add("tenant_max_records_per_s", absl::StrCat(rate),
        "must be in [0, 1e12] (0: unlimited)");
  }
  int64_t tenant_mib = absl::GetFlag(FLAGS_tenant_max_queued_mib);
  if (tenant_mib < 0 || tenant_mib > kMaxQueuedMib) {
    add("tenant_max_queued_mib", absl::StrCat(tenant_mib),
        absl::StrCat("must be in [0, ", kMaxQueuedMib, "] (0: no per-tenant limit)"));
  }
  int grace = absl::GetFlag(FLAGS_shutdown_grace_s);
  if (grace < 0 || grace > kMaxShutdownGraceS) {
    add("shutdown_grace_s", absl::StrCat(grace),
        absl::StrCat("must be in [0, ", kMaxShutdownGraceS, "] seconds"));
  }
  return problems;
}

}  // namespace

namespace {

// --copy_to: copies --db into another database and verifies it (docs/scaling.md,
// "Moving to PostgreSQL"). 0 when the copy is whole, 1 otherwise.
int CopyDatabase(const std::string& from_value, const std::string& to_value) {
  auto fail = [](const absl::Status& status) {
    std::cerr << "surge-server: copy failed: " << status << std::endl;
    return 1;
  };
  absl::StatusOr<surge::store::DbTarget> from = surge::store::ParseDbTarget(from_value);
  absl::StatusOr<surge::store::DbTarget> to = surge::store::ParseDbTarget(to_value);
  if (!from.ok()) return fail(from.status());
  if (!to.ok()) return fail(to.status());
  // A SQLite source must not change under the copy: no server may hold it.
  std::unique_ptr<surge::store::DbLock> lock;
  if (from->sqlite()) {
    absl::StatusOr<std::unique_ptr<surge::store::DbLock>> locked =
        surge::store::DbLock::Acquire(from->path);
    if (!locked.ok()) return fail(locked.status());
    lock = std::move(*locked);
  }
  absl::StatusOr<std::unique_ptr<surge::store::Store>> source = surge::store::OpenStore(*from);
  if (!source.ok()) return fail(source.status());
  absl::StatusOr<std::unique_ptr<surge::store::Store>> dest = surge::store::OpenStore(*to);
  if (!dest.ok()) return fail(dest.status());
  absl::Time start = absl::Now();
  int64_t jobs_done = 0;
  absl::StatusOr<surge::store::CopyReport> copied =
      surge::store::CopyStore(**source, **dest, [&](const std::string& job) {
        ++jobs_done;
        std::cout << "copied job " << job << " (" << jobs_done << ")" << std::endl;
      });
  if (!copied.ok()) return fail(copied.status());
  absl::Duration copy_time = absl::Now() - start;
  absl::StatusOr<surge::store::VerifyReport> verified = surge::store::VerifyCopy(**source, **dest);
  if (!verified.ok()) return fail(verified.status());
  std::cout << "copied " << from->Describe() << " -> " << to->Describe() << ": " << copied->jobs
            << " jobs, " << copied->runs << " runs, " << copied->records << " records, "
            << copied->optima << " optima, " << copied->fits << " latest fits in "
            << absl::FormatDuration(copy_time) << std::endl;
  std::cout << "verified " << verified->runs.size()
            << " runs (record counts and checksums): " << verified->problems.size()
            << " problems" << std::endl;
  for (const std::string& problem : verified->problems) std::cerr << "  " << problem << "\n";
  return verified->problems.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "stores training telemetry and answers learning-rate questions.\n"
      "Usage: surge-server [--listen=127.0.0.1:50051] [--db=./surge.db] ...\n"
      "Every flag can also be set by the environment variable SURGE_<FLAG> (e.g. SURGE_DB);\n"
      "a flag on the command line wins.");
  absl::FlagsUsageConfig usage_config;
  usage_config.contains_help_flags = IsServerFlag;
  absl::SetFlagsUsageConfig(usage_config);
  std::vector<std::string> problems;
  std::map<std::string, std::string> from_env = FlagsFromEnvironment(argc, argv, &problems);
  bool http_given = FlagGiven(argc, argv, "http") || from_env.count("http") > 0;
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  for (std::string& problem : FlagProblems(positional, from_env)) problems.push_back(problem);
  if (!problems.empty()) {
    for (const std::string& problem : problems) std::cerr << "surge-server: " << problem << "\n";
    std::cerr << "surge-server: not started (see --help)" << std::endl;
    return 2;
  }
  if (!from_env.empty()) {  // names only: a value may be a secret
    std::cout << "surge-server: from the environment:";
    for (const auto& [flag, env_name] : from_env) std::cout << " " << env_name;
    std::cout << std::endl;
  }

  if (!absl::GetFlag(FLAGS_copy_to).empty()) {
    return CopyDatabase(absl::GetFlag(FLAGS_db), absl::GetFlag(FLAGS_copy_to));
  }

  // A client that closes a TLS connection while its answer is being written
  // must not kill the server: OpenSSL writes with write(2), which raises
  // SIGPIPE on a closed socket (plain sockets use MSG_NOSIGNAL). gRPC's own
  // start-up ignores SIGPIPE as well; this does not rely on it.
  signal(SIGPIPE, SIG_IGN);

  // Block the stop signals in every thread; a sigwait below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  surge::app::ServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.core.db_path = absl::GetFlag(FLAGS_db);
  options.core.max_readers = absl::GetFlag(FLAGS_max_readers);
  options.core.write.max_queued_records =
      static_cast<size_t>(absl::GetFlag(FLAGS_max_queued_records));
  options.core.write.max_queued_bytes =
      static_cast<size_t>(absl::GetFlag(FLAGS_max_queued_mib)) << 20;
  options.core.fits.threads = absl::GetFlag(FLAGS_fit_threads);
  options.service.max_ingest_streams = absl::GetFlag(FLAGS_max_ingest_streams);
  options.shutdown_grace = absl::Seconds(absl::GetFlag(FLAGS_shutdown_grace_s));
  options.http_listen = absl::GetFlag(FLAGS_http);
  options.http_listen_required = http_given;
  options.http_static_dir = absl::GetFlag(FLAGS_http_static_dir);
  options.startup_checks.quick_check = absl::GetFlag(FLAGS_startup_quick_check);
  options.core.tokens_file = absl::GetFlag(FLAGS_tokens_file);
  options.core.tenant_limits.max_streams = absl::GetFlag(FLAGS_tenant_max_streams);
  options.core.tenant_limits.max_records_per_s = absl::GetFlag(FLAGS_tenant_max_records_per_s);
  options.core.tenant_limits.max_queued_bytes = absl::GetFlag(FLAGS_tenant_max_queued_mib) << 20;
  options.tls.cert_file = absl::GetFlag(FLAGS_tls_cert);
  options.tls.key_file = absl::GetFlag(FLAGS_tls_key);
  options.tls.client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  for (absl::string_view h : absl::StrSplit(absl::GetFlag(FLAGS_http_allowed_hosts), ',',
                                            absl::SkipWhitespace())) {
    options.http_allowed_hosts.emplace_back(absl::StripAsciiWhitespace(h));
  }

  auto server = surge::app::Server::Start(options);
  if (!server.ok()) {
    std::cerr << "surge-server: " << server.status() << "\n";
    return 1;
  }
  std::string host = options.listen.substr(0, options.listen.rfind(':'));
  std::cout << "surge-server listening on " << host << ":" << (*server)->port() << " (db "
            << options.core.db_path << ")" << std::endl;
  if ((*server)->http_port() > 0) {
    std::string http_host = options.http_listen.substr(0, options.http_listen.rfind(':'));
    std::cout << "surge-server dashboard on http://" << http_host << ":"
              << (*server)->http_port() << "/" << std::endl;
  }
  // The HTTP port file first: tests wait for the gRPC one, then read both.
  if (!absl::GetFlag(FLAGS_http_port_file).empty()) {
    WritePortFile(absl::GetFlag(FLAGS_http_port_file), (*server)->http_port());
  }
  if (!absl::GetFlag(FLAGS_port_file).empty()) {
    WritePortFile(absl::GetFlag(FLAGS_port_file), (*server)->port());
  }

  if (!options.core.tokens_file.empty()) {
    std::cout << "surge-server: tokens from " << options.core.tokens_file
              << " (SIGHUP re-reads it)" << std::endl;
  }
  int sig = 0;
  while (sigwait(&signals, &sig) == 0 && sig == SIGHUP) {
    absl::Status reloaded = (*server)->ReloadTokens();
    if (reloaded.ok()) {
      std::cout << "surge-server: SIGHUP, tokens re-read" << std::endl;
    } else {
      std::cerr << "surge-server: SIGHUP, tokens NOT re-read (the old ones stay): "
                << reloaded.message() << std::endl;
    }
  }
  std::cout << "surge-server: " << (sig == SIGTERM ? "SIGTERM" : "SIGINT")
            << ", shutting down" << std::endl;
  (*server)->Shutdown();
  std::cout << "surge-server: stopped" << std::endl;
  return 0;
}
