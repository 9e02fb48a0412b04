// Test helpers that run real binaries: Subprocess (fork/exec with output to
// a file, kill, wait), RunCommand (run to completion, capture output), and
// ServerProcess (a surge-server on 127.0.0.1 with an ephemeral port).
#ifndef SURGE_TESTS_SUPPORT_SUBPROCESS_H_
#define SURGE_TESTS_SUPPORT_SUBPROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace surge::testing {

class Subprocess {
 public:
  // Starts argv[0] with argv; stdout and stderr go to `log_path`.
  static absl::StatusOr<Subprocess> Start(const std::vector<std::string>& argv,
                                          const std::string& log_path);
  Subprocess(Subprocess&& other) noexcept : pid_(other.pid_) { other.pid_ = -1; }
  Subprocess& operator=(Subprocess&& other) noexcept;
  ~Subprocess();

  pid_t pid() const { return pid_; }
  // Sends `signal`; then Wait() reaps.
  void Kill(int signal);
  // Waits for exit; returns the raw wait status (or -1 on timeout).
  int Wait(absl::Duration timeout = absl::Seconds(30));

 private:
  explicit Subprocess(pid_t pid) : pid_(pid) {}
  pid_t pid_ = -1;
};

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs a command to completion (stdin from `stdin_path` or /dev/null).
CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& stdin_path = "");

// A surge-server child process on 127.0.0.1.
class ServerProcess {
 public:
  // Starts surge-server on `db_path`; `port` 0 picks a free one. Waits until
  // the port file appears (the server is serving).
  static absl::StatusOr<ServerProcess> Start(const std::string& db_path,
                                             const std::string& work_dir, int port = 0);
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  Subprocess& process() { return process_; }
  std::string log_path() const { return log_path_; }

 private:
  ServerProcess(Subprocess p, int port, std::string log)
      : process_(std::move(p)), port_(port), log_path_(std::move(log)) {}
  Subprocess process_;
  int port_;
  std::string log_path_;
};

std::string ReadFile(const std::string& path);

}  // namespace surge::testing

#endif  // SURGE_TESTS_SUPPORT_SUBPROCESS_H_
