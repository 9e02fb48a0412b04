// Implementation of the surge-server child helpers (see server_child.h).
#include "tests/support/server_child.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace surge::testing {

using ::testing::HasSubstr;

int ReadPort(const std::string& path) {
  int port = 0;
  std::string text = ReadFile(path);
  return absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &port) ? port : 0;
}

// surge-server with `args` (after --shutdown_grace_s=2 and port files in
// `dir`); `wrapper` goes before the binary (e.g. an unshare command line).
std::vector<std::string> ServerArgv(const TempDir& dir, const std::string& tag,
                                    const std::vector<std::string>& args,
                                    const std::vector<std::string>& wrapper) {
  std::vector<std::string> argv = wrapper;
  argv.push_back(SURGE_SERVER_BIN);
  argv.push_back("--shutdown_grace_s=2");
  argv.push_back("--port_file=" + dir.File(tag + ".port"));
  argv.push_back("--http_port_file=" + dir.File(tag + ".http_port"));
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

// Starts a server that should serve: waits for its port file.
absl::StatusOr<Server> StartServer(const TempDir& dir, const std::string& tag,
                                   const std::vector<std::string>& args) {
  std::string log = dir.File(tag + ".log");
  unlink(dir.File(tag + ".port").c_str());
  auto process = Subprocess::Start(ServerArgv(dir, tag, args), log);
  if (!process.ok()) return process.status();
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    int port = ReadPort(dir.File(tag + ".port"));
    if (port > 0) {
      Server server{std::move(*process), port, ReadPort(dir.File(tag + ".http_port")), log};
      return server;
    }
    int status = 0;
    if (waitpid(process->pid(), &status, WNOHANG) == process->pid()) {
      return absl::InternalError(absl::StrCat("surge-server exited at start: ",
                                              ReadFile(log)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return absl::DeadlineExceededError("surge-server did not start: " + ReadFile(log));
}

Refusal RunRefused(const TempDir& dir, const std::string& tag,
                   const std::vector<std::string>& args,
                   const std::vector<std::string>& wrapper) {
  Refusal refusal;
  std::string log = dir.File(tag + ".log");
  unlink(dir.File(tag + ".port").c_str());
  auto process = Subprocess::Start(ServerArgv(dir, tag, args, wrapper), log);
  EXPECT_TRUE(process.ok()) << process.status();
  if (!process.ok()) return refusal;
  int status = process->Wait(kExitTimeout);
  if (status == -1) {
    process->Kill(SIGKILL);
    process->Wait();
  } else if (WIFEXITED(status)) {
    refusal.exit_code = WEXITSTATUS(status);
  }
  refusal.started = ReadPort(dir.File(tag + ".port")) > 0;
  refusal.output = ReadFile(log);
  return refusal;
}

// Expects a clean refusal: a nonzero exit before kExitTimeout, never serving,
// with `message` in the output.
void ExpectRefused(const Refusal& refusal, const std::string& message) {
  EXPECT_FALSE(refusal.started) << "the server started and served:\n" << refusal.output;
  EXPECT_GT(refusal.exit_code, 0) << "the server did not exit with an error:\n"
                                  << refusal.output;
  EXPECT_THAT(refusal.output, HasSubstr(message));
}

}  // namespace surge::testing
