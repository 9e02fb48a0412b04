// Implementation of the subprocess helpers. posix_spawn, not fork: the test
// process runs gRPC, whose fork handlers would disturb its live channels.
#include "tests/support/subprocess.h"

#include <fcntl.h>
#include <spawn.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace surge::testing {
namespace {

std::vector<char*> Argv(const std::vector<std::string>& args) {
  std::vector<char*> out;
  for (const auto& a : args) out.push_back(const_cast<char*>(a.c_str()));
  out.push_back(nullptr);
  return out;
}

// Spawns argv with stdin/stdout/stderr redirected to files.
int Spawn(const std::vector<std::string>& argv, const std::string& in, const std::string& out,
          const std::string& err, bool append, pid_t* pid) {
  std::vector<char*> args = Argv(argv);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  int flags = O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC);
  posix_spawn_file_actions_addopen(&actions, 0, in.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), flags, 0644);
  if (err == out) {
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
  } else {
    posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), flags, 0644);
  }
  int rc = posix_spawn(pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  return rc;
}

}  // namespace

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::StatusOr<Subprocess> Subprocess::Start(const std::vector<std::string>& argv,
                                             const std::string& log_path) {
  pid_t pid = 0;
  int rc = Spawn(argv, "/dev/null", log_path, log_path, /*append=*/true, &pid);
  if (rc != 0) return absl::InternalError(absl::StrCat("posix_spawn failed: ", strerror(rc)));
  return Subprocess(pid);
}

Subprocess& Subprocess::operator=(Subprocess&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0) {
      Kill(SIGKILL);
      Wait();
    }
    pid_ = other.pid_;
    other.pid_ = -1;
  }
  return *this;
}

Subprocess::~Subprocess() {
  if (pid_ > 0) {
    Kill(SIGKILL);
    Wait();
  }
}

void Subprocess::Kill(int signal) {
  if (pid_ > 0) kill(pid_, signal);
}

int Subprocess::Wait(absl::Duration timeout) {
  if (pid_ <= 0) return -1;
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return status;
    }
    if (absl::Now() > deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& stdin_path) {
  CommandResult result;
  char out_tpl[] = "/tmp/surge-cmd-out-XXXXXX";
  char err_tpl[] = "/tmp/surge-cmd-err-XXXXXX";
  close(mkstemp(out_tpl));
  close(mkstemp(err_tpl));
  pid_t pid = 0;
  if (Spawn(argv, stdin_path.empty() ? "/dev/null" : stdin_path, out_tpl, err_tpl,
            /*append=*/false, &pid) == 0) {
    int status = 0;
    waitpid(pid, &status, 0);
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  result.out = ReadFile(out_tpl);
  result.err = ReadFile(err_tpl);
  unlink(out_tpl);
  unlink(err_tpl);
  return result;
}

absl::StatusOr<ServerProcess> ServerProcess::Start(const std::string& db_path,
                                                   const std::string& work_dir, int port) {
  static int counter = 0;
  std::string tag = absl::StrCat(getpid(), "-", counter++);
  std::string port_file = absl::StrCat(work_dir, "/port-", tag);
  std::string log = absl::StrCat(work_dir, "/server-", tag, ".log");
  unlink(port_file.c_str());
  auto process = Subprocess::Start(
      {SURGE_SERVER_BIN, "--db=" + db_path, absl::StrCat("--listen=127.0.0.1:", port),
       "--port_file=" + port_file, "--shutdown_grace_s=2", "--http=127.0.0.1:0"},
      log);
  if (!process.ok()) return process.status();
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    std::string text = ReadFile(port_file);
    if (!text.empty()) {
      return ServerProcess(std::move(*process), std::stoi(text), log);
    }
    int status = 0;
    if (waitpid(process->pid(), &status, WNOHANG) == process->pid()) {
      return absl::InternalError(absl::StrCat("surge-server exited at start: ", ReadFile(log)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return absl::DeadlineExceededError(absl::StrCat("surge-server did not start: ", ReadFile(log)));
}

}  // namespace surge::testing
