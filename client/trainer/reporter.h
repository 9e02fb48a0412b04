// Reporter: surge-train's link to the surge server, through the C++ client
// library (SurgeClient for runs and reads, IngestSession for records).
// Training never waits on the server: Append() hands the record to the
// session, which batches, acks, reconnects and re-sends behind it; when the
// server is down the records wait in the session's buffer (and a warning is
// printed once). Thread-safe (the session and client are).
#ifndef SURGE_CLIENT_TRAINER_REPORTER_H_
#define SURGE_CLIENT_TRAINER_REPORTER_H_

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/cpp/ingest_session.h"
#include "client/cpp/surge_client.h"
#include "client/trainer/cnn_cpu.h"
#include "client/trainer/cpu_trainer.h"

namespace surge::trainer {

// A run as the server has it: how many records, and the last one.
struct StoredRun {
  int64_t record_count = 0;
  std::optional<surge::v1::Record> last;
};

class Reporter {
 public:
  // Connects to `server` and creates `job` (unit: examples) unless it exists.
  static absl::StatusOr<std::unique_ptr<Reporter>> Connect(const std::string& server,
                                                           const std::string& job,
                                                           const std::string& description);
  ~Reporter();

  // Declares a run (idempotent for the same name, batch size and protocol).
  absl::Status DeclareRun(const surge::v1::Run& run);

  // Queues a record; never fails the caller (a permanent session error is
  // printed once and later records are dropped).
  void Append(surge::v1::Record record);

  // Waits until every appended record is acked (or `timeout`).
  absl::Status Flush(absl::Duration timeout);

  // The job's runs with their record counts and last records (one pass over
  // the job's records): what a resumed sweep can skip.
  absl::StatusOr<std::map<std::string, StoredRun>> StoredRuns();

  surge::client::SurgeClient& client() { return *client_; }
  const std::string& job() const { return job_; }
  surge::client::IngestStats stats() const { return session_->stats(); }

 private:
  Reporter(std::unique_ptr<surge::client::SurgeClient> client, std::string job);

  std::unique_ptr<surge::client::SurgeClient> client_;
  std::unique_ptr<surge::client::IngestSession> session_;
  const std::string job_;
  std::atomic<bool> warned_{false};
};

// Optimizer message for an AdamConfig ("adam", or "adamw" with weight decay).
surge::v1::Optimizer ToOptimizer(const AdamConfig& adam);

// A record of one step (grad stats when the step has them).
surge::v1::Record MakeRecord(const std::string& run, int64_t step, int64_t examples, double lr,
                             const StepStats& stats, std::optional<double> eval_loss);

}  // namespace surge::trainer

#endif  // SURGE_CLIENT_TRAINER_REPORTER_H_
