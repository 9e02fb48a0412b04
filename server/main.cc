// surge-server: parses flags into ServerOptions, starts the server, and stops
// it gracefully on SIGTERM or SIGINT.
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "server/rpc/server.h"

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

// Writes `port` to `path` atomically (write a temporary file, then rename).
void WritePortFile(const std::string& path, int port) {
  std::string tmp = path + ".tmp";
  std::ofstream(tmp) << port << "\n";
  std::rename(tmp.c_str(), path.c_str());
}

}  // namespace

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "gRPC address host:port (port 0 picks a free port)");
ABSL_FLAG(std::string, db, "./surge.db", "SQLite database file (created if missing)");
ABSL_FLAG(std::string, port_file, "",
          "if set, write the bound gRPC port to this file once serving (for scripts/tests)");
ABSL_FLAG(int, max_readers, 8, "maximum concurrent read connections to the database");
ABSL_FLAG(int64_t, max_queued_records, 1 << 20,
          "records waiting for commit before ingest streams are slowed down");
ABSL_FLAG(std::string, http, "127.0.0.1:8080",
          "dashboard HTTP address host:port (read-only JSON API, /metrics, /healthz, pages); "
          "port 0 picks a free port; empty disables. If the default is busy the server runs "
          "without HTTP; an explicit --http that cannot be bound is an error");
ABSL_FLAG(std::string, http_port_file, "",
          "if set, write the bound HTTP port to this file once serving (0: no HTTP)");
ABSL_FLAG(std::string, http_static_dir, "",
          "serve the dashboard files from this folder instead of the embedded copy "
          "(for editing server/http/static without a rebuild)");
ABSL_FLAG(int, shutdown_grace_s, 10,
          "seconds in-flight calls get to finish after SIGTERM before they are cancelled");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "stores training telemetry and answers learning-rate questions.\n"
      "Usage: surge-server [--listen=127.0.0.1:50051] [--db=./surge.db] ...");
  absl::FlagsUsageConfig usage_config;
  usage_config.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "server/main.cc");
  };
  absl::SetFlagsUsageConfig(usage_config);
  bool http_given = FlagGiven(argc, argv, "http");
  absl::ParseCommandLine(argc, argv);

  // Block the stop signals in every thread; a sigwait below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  surge::rpc::ServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.core.db_path = absl::GetFlag(FLAGS_db);
  options.core.max_readers = absl::GetFlag(FLAGS_max_readers);
  options.core.write.max_queued_records =
      static_cast<size_t>(absl::GetFlag(FLAGS_max_queued_records));
  options.shutdown_grace = absl::Seconds(absl::GetFlag(FLAGS_shutdown_grace_s));
  options.http_listen = absl::GetFlag(FLAGS_http);
  options.http_listen_required = http_given;
  options.http_static_dir = absl::GetFlag(FLAGS_http_static_dir);

  auto server = surge::rpc::SurgeServer::Start(options);
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

  int sig = 0;
  sigwait(&signals, &sig);
  std::cout << "surge-server: " << (sig == SIGTERM ? "SIGTERM" : "SIGINT")
            << ", shutting down" << std::endl;
  (*server)->Shutdown();
  std::cout << "surge-server: stopped" << std::endl;
  return 0;
}
