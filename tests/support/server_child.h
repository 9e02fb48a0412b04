// A surge-server child for tests that pass it their own flags: started and
// waited for (its port files in a TempDir), or expected to refuse to start
// with a message and a nonzero exit.
#ifndef SURGE_TESTS_SUPPORT_SERVER_CHILD_H_
#define SURGE_TESTS_SUPPORT_SERVER_CHILD_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace surge::testing {

// How long a server that should refuse to start may take to exit.
inline constexpr absl::Duration kExitTimeout = absl::Seconds(20);

// A surge-server child with its own port files and log.
struct Server {
  Subprocess process;
  int port = 0;
  int http_port = 0;
  std::string log;
  std::string address() const { return "127.0.0.1:" + std::to_string(port); }
};

// The port in a port file (0 when absent or not a number).
int ReadPort(const std::string& path);

// surge-server with `args` (after --shutdown_grace_s=2 and port files
// TAG.port / TAG.http_port in `dir`); `wrapper` goes before the binary (e.g.
// an unshare command line).
std::vector<std::string> ServerArgv(const TempDir& dir, const std::string& tag,
                                    const std::vector<std::string>& args,
                                    const std::vector<std::string>& wrapper = {});

// Starts a server that should serve: waits for its port file (its log is
// TAG.log in `dir`).
absl::StatusOr<Server> StartServer(const TempDir& dir, const std::string& tag,
                                   const std::vector<std::string>& args);

// What a server that should refuse to start did: its exit code (-1 when it
// was still running after kExitTimeout and had to be killed) and its output.
struct Refusal {
  int exit_code = -1;
  bool started = false;  // it wrote its port file: it served
  std::string output;
};
Refusal RunRefused(const TempDir& dir, const std::string& tag,
                   const std::vector<std::string>& args,
                   const std::vector<std::string>& wrapper = {});

// Expects a clean refusal: a nonzero exit before kExitTimeout, never serving,
// with `message` in the output (gtest expectations).
void ExpectRefused(const Refusal& refusal, const std::string& message);

}  // namespace surge::testing

#endif  // SURGE_TESTS_SUPPORT_SERVER_CHILD_H_
