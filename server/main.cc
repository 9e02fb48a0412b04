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

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "gRPC address host:port (port 0 picks a free port)");
ABSL_FLAG(std::string, db, "./surge.db", "SQLite database file (created if missing)");
ABSL_FLAG(std::string, port_file, "",
          "if set, write the bound gRPC port to this file once serving (for scripts/tests)");
ABSL_FLAG(int, max_readers, 8, "maximum concurrent read connections to the database");
ABSL_FLAG(int64_t, max_queued_records, 1 << 20,
          "records waiting for commit before ingest streams are slowed down");
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

  auto server = surge::rpc::SurgeServer::Start(options);
  if (!server.ok()) {
    std::cerr << "surge-server: " << server.status() << "\n";
    return 1;
  }
  std::string host = options.listen.substr(0, options.listen.rfind(':'));
  std::cout << "surge-server listening on " << host << ":" << (*server)->port() << " (db "
            << options.core.db_path << ")" << std::endl;
  if (!absl::GetFlag(FLAGS_port_file).empty()) {
    std::string path = absl::GetFlag(FLAGS_port_file);
    std::string tmp = path + ".tmp";
    std::ofstream(tmp) << (*server)->port() << "\n";
    std::rename(tmp.c_str(), path.c_str());
  }

  int sig = 0;
  sigwait(&signals, &sig);
  std::cout << "surge-server: " << (sig == SIGTERM ? "SIGTERM" : "SIGINT")
            << ", shutting down" << std::endl;
  (*server)->Shutdown();
  std::cout << "surge-server: stopped" << std::endl;
  return 0;
}
