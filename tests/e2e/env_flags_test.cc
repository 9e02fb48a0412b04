// Flags from the environment (issue 12): the real surge-server takes every
// flag of server/main.cc from SURGE_<FLAG> when the command line does not
// give it, a flag on the command line wins, and a bad value in a variable
// stops the server at start with exit 2 and a message naming the variable,
// as a bad flag does. Also `surge health`, the check of deploy/Dockerfile:
// SERVING and exit 0 from a serving server, exit 1 when none answers.
//
// The variables reach only the child: it is started through /usr/bin/env.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "client/cpp/surge_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/server_child.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace surge {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

using testing::ExpectRefused;
using testing::ReadPort;
using testing::Refusal;
using testing::RunRefused;
using testing::Server;
using testing::ServerArgv;

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

// `env` (NAME=VALUE each) as a command line that runs the rest with them.
std::vector<std::string> EnvWrapper(const std::vector<std::string>& env) {
  std::vector<std::string> wrapper = {"/usr/bin/env"};
  wrapper.insert(wrapper.end(), env.begin(), env.end());
  return wrapper;
}

// Starts surge-server with `env` and `args` and waits until it serves (its
// port file, TAG.port in `dir`, appears).
absl::StatusOr<Server> StartWithEnv(const testing::TempDir& dir, const std::string& tag,
                                    const std::vector<std::string>& env,
                                    const std::vector<std::string>& args) {
  std::string log = dir.File(tag + ".log");
  auto process = testing::Subprocess::Start(ServerArgv(dir, tag, args, EnvWrapper(env)), log);
  if (!process.ok()) return process.status();
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    if (int port = ReadPort(dir.File(tag + ".port")); port > 0) {
      return Server{std::move(*process), port, ReadPort(dir.File(tag + ".http_port")), log};
    }
    int status = 0;
    if (waitpid(process->pid(), &status, WNOHANG) == process->pid()) {
      return absl::InternalError("surge-server exited at start: " + testing::ReadFile(log));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return absl::DeadlineExceededError("surge-server did not start: " + testing::ReadFile(log));
}

void Stop(Server& server) {
  server.process.Kill(SIGTERM);
  ASSERT_NE(server.process.Wait(), -1);
}

// `surge health` against `address`.
testing::CommandResult Health(const std::string& address) {
  return testing::RunCommand({SURGE_CLI_BIN, "--server", address, "--timeout", "5", "health"});
}

TEST(EnvFlagsTest, ListenDbAndHttpComeFromTheEnvironment) {
  testing::TempDir dir;
  std::string db = dir.File("env.db");
  // Port 0 in both: only the variables can move the server off the defaults
  // (127.0.0.1:50051 and :8080), and ./surge.db is never created.
  auto server = StartWithEnv(dir, "env",
                             {"SURGE_LISTEN=127.0.0.1:0", "SURGE_DB=" + db,
                              "SURGE_HTTP=127.0.0.1:0", "SURGE_STARTUP_QUICK_CHECK=false"},
                             {});
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_NE(server->port, 50051);
  EXPECT_GT(server->http_port, 0);
  EXPECT_NE(server->http_port, 8080);
  EXPECT_TRUE(Exists(db)) << db;

  client::ClientOptions options;
  options.target = server->address();
  options.call_timeout = absl::Seconds(10);
  client::SurgeClient client(options);
  surge::v1::Job job;
  job.set_name("from-env");
  job.set_batch_unit(surge::v1::BATCH_UNIT_EXAMPLES);
  ASSERT_TRUE(client.CreateJob(job).ok());

  testing::CommandResult health = Health(server->address());
  EXPECT_EQ(health.exit_code, 0) << health.err;
  EXPECT_EQ(health.out, "SERVING\n");

  Stop(*server);
  std::string log = testing::ReadFile(server->log);
  EXPECT_THAT(log, HasSubstr("(db " + db + ")"));
  // The variables taken are named (not their values: one may be a secret).
  EXPECT_THAT(log, HasSubstr("from the environment: SURGE_DB SURGE_HTTP SURGE_LISTEN "
                             "SURGE_STARTUP_QUICK_CHECK"));
}

TEST(EnvFlagsTest, FlagOnTheCommandLineWins) {
  testing::TempDir dir;
  std::string env_db = dir.File("env.db"), flag_db = dir.File("flag.db");
  // Each variable is overridden by its flag, so even the values that would
  // not be accepted are never looked at.
  auto server = StartWithEnv(
      dir, "wins",
      {"SURGE_DB=" + env_db, "SURGE_MAX_READERS=0", "SURGE_STARTUP_QUICK_CHECK=maybe",
       "SURGE_HTTP=127.0.0.1:1"},
      {"--listen=127.0.0.1:0", "--db=" + flag_db, "--max_readers=4", "--nostartup_quick_check",
       "--http="});
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ(server->http_port, 0);  // --http= (no dashboard) beat SURGE_HTTP
  EXPECT_TRUE(Exists(flag_db));
  EXPECT_FALSE(Exists(env_db));
  Stop(*server);
  std::string log = testing::ReadFile(server->log);
  EXPECT_THAT(log, HasSubstr("(db " + flag_db + ")"));
  EXPECT_THAT(log, Not(HasSubstr("from the environment")));
}

TEST(EnvFlagsTest, BadValueInTheEnvironmentStopsTheServerNamingTheVariable) {
  testing::TempDir dir;
  struct Case {
    std::string env;      // NAME=VALUE
    std::string message;  // expected in the output
  };
  const std::vector<Case> cases = {
      // Out of range: the check of --max_readers, naming the variable.
      {"SURGE_MAX_READERS=0", "SURGE_MAX_READERS=0 (--max_readers): must be in [1, 256]"},
      // Not a number / not a bool: absl's parse error, naming the variable.
      {"SURGE_MAX_READERS=many", "SURGE_MAX_READERS=many (--max_readers): "},
      {"SURGE_STARTUP_QUICK_CHECK=maybe",
       "SURGE_STARTUP_QUICK_CHECK=maybe (--startup_quick_check): "},
      {"SURGE_LISTEN=nowhere", "SURGE_LISTEN=nowhere (--listen): must be HOST:PORT"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.env);
    std::vector<std::string> args = {"--http=", "--db=" + dir.File("bad.db")};
    if (!absl::StartsWith(c.env, "SURGE_LISTEN=")) args.push_back("--listen=127.0.0.1:0");
    Refusal refusal = RunRefused(dir, "bad", args, EnvWrapper({c.env}));
    ExpectRefused(refusal, c.message);
    EXPECT_EQ(refusal.exit_code, 2) << refusal.output;
    EXPECT_FALSE(Exists(dir.File("bad.db")));
  }
}

TEST(EnvFlagsTest, HealthCommandFailsWithoutAServer) {
  testing::TempDir dir;
  auto server = StartWithEnv(dir, "gone", {},
                             {"--listen=127.0.0.1:0", "--http=", "--db=" + dir.File("g.db")});
  ASSERT_TRUE(server.ok()) << server.status();
  std::string address = server->address();
  ASSERT_EQ(Health(address).exit_code, 0);
  Stop(*server);
  testing::CommandResult health = Health(address);
  EXPECT_EQ(health.exit_code, 1);
  EXPECT_THAT(health.err, HasSubstr("UNAVAILABLE"));
  EXPECT_THAT(health.out, Not(HasSubstr("SERVING")));
}

}  // namespace
}  // namespace surge
