// The `surge` CLI's commands, each a function from parsed arguments to a
// status (printed by main as "CODE: message").
#ifndef SURGE_CLIENT_CLI_COMMANDS_H_
#define SURGE_CLIENT_CLI_COMMANDS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "client/cpp/surge_client.h"

namespace surge::cli {

struct ImportArgs {
  std::string job;
  std::string file;
  std::string unit = "examples";  // for a job that import creates
  int batch_records = 4096;
  double timeout_s = 120;  // give up when the server makes no progress this long
};

absl::Status ListJobs(client::SurgeClient& client, bool json);
// `surge token new`: prints a new token and its token-file line (no server).
absl::Status NewToken(const std::string& tenant, const std::string& role);
absl::Status ShowJob(client::SurgeClient& client, const std::string& job, bool json);
// `targets` (target losses for plain runs) and `k` (0: default) are the
// job's declared evidence settings.
absl::Status CreateJob(client::SurgeClient& client, const std::string& job,
                       const std::string& unit, const std::string& description,
                       const std::vector<double>& targets, int k, bool json);
absl::Status DeleteJob(client::SurgeClient& client, const std::string& job, bool json);
absl::Status ListRuns(client::SurgeClient& client, const std::string& job, bool json);
absl::Status DeleteRun(client::SurgeClient& client, const std::string& job,
                       const std::string& run, bool json);
absl::Status ListRecords(client::SurgeClient& client, const std::string& job,
                         const std::string& run, const std::string& format);
// Imports records, measured optima or raw probe results: the kind is told
// by the CSV header (see `surge import --help`).
absl::Status Import(client::SurgeClient& client, const ImportArgs& args);

// With `targets` or `k` set, the fit is computed ad hoc with those plain-run
// settings (not stored).
absl::Status ShowFit(client::SurgeClient& client, const std::string& job,
                     const std::vector<double>& targets, int k, bool json);
// `criterion`: "improvement" (default) or "fastest". `from`: empty, or
// "B0:LR0", the user's tuned LR at batch B0 to transfer to batch_size by the
// job's fitted curve (optionally tuned at from_step or at from_loss).
struct AdviseArgs {
  std::string job;
  double batch_size = 0;
  std::optional<int64_t> step;
  std::string criterion = "improvement";
  std::string from;
  std::optional<int64_t> from_step;
  std::optional<double> from_loss;
  bool json = false;
};
absl::Status Advise(client::SurgeClient& client, const AdviseArgs& args);

// `surge health`: grpc.health.v1.Health/Check of `service` ("": the whole
// server). Prints the answer (SERVING, NOT_SERVING, ...); OK only for
// SERVING, UNAVAILABLE for any other answer. For container and supervisor
// health checks (deploy/Dockerfile).
absl::Status Health(const client::ClientOptions& options, const std::string& service);

// "B0:LR0" (e.g. "256:3e-4") into reference->batch_size and ->lr.
// INVALID_ARGUMENT saying the expected form otherwise (the server checks the
// values).
absl::Status ParseFrom(const std::string& text, surge::v1::AdviceReference* reference);

}  // namespace surge::cli

#endif  // SURGE_CLIENT_CLI_COMMANDS_H_
