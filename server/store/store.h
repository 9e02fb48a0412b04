// Store: the one narrow interface between the server's core and a database
// (SQLite, the embedded default: sqlite_store.h; PostgreSQL, the shared store
// of several replicas). One Store object is one connection: the core keeps
// one writer and a pool of readers. Every method owns its transaction; the
// core never issues BEGIN, SAVEPOINT or COMMIT.
//
// Error codes (the same for every backend): NOT_FOUND for a missing job or
// run, ALREADY_EXISTS for a taken name or a conflicting re-send, UNAVAILABLE
// for a write that failed for a cause that can pass (full disk, I/O error,
// lost connection), DATA_LOSS for a damaged database, INTERNAL otherwise.
#ifndef SURGE_SERVER_STORE_STORE_H_
#define SURGE_SERVER_STORE_STORE_H_

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "surge/v1/surge.pb.h"

namespace surge::store {

// Options of a connection (the writer's; readers open with migrate=false).
// The SQLite fields are ignored by other backends.
struct StoreOptions {
  // Milliseconds a connection waits on a lock held by another connection.
  int busy_timeout_ms = 5000;
  // WAL pages before an automatic checkpoint (SQLite's default is 1000).
  int wal_autocheckpoint_pages = 10000;
  // Run pending migrations on open (the writer does; readers need not).
  bool migrate = true;
  // PRAGMA synchronous. kFull, the default and what the server runs, fsyncs
  // the WAL at every COMMIT, so a write acked after its COMMIT survives a
  // power cut. kNormal does not (a commit is durable only once a checkpoint
  // syncs it): only the power-cut test's self-check uses it, to show that
  // the test sees the acked records it loses (tests/durability/).
  enum class Synchronous { kFull, kNormal };
  Synchronous synchronous = Synchronous::kFull;
};

// Identifies a run for ingest: ids and the batch size.
struct RunKey {
  int64_t job_id = 0;
  int64_t run_id = 0;
  int64_t batch_size = 0;
};

struct DeleteCounts {
  int64_t runs = 0;
  int64_t records = 0;
};

// Position in a job's record listing: after (run_id, step).
struct RecordCursor {
  int64_t run_id = 0;
  int64_t step = -1;
};

// A run's records as columns (the evidence a fit reads from plain runs),
// ascending step; eval_loss is NaN where absent.
struct RunColumns {
  std::vector<int64_t> steps;
  std::vector<double> examples;
  std::vector<double> lr;
  std::vector<double> loss;
  std::vector<double> eval_loss;
};

struct RecordPage {
  std::vector<surge::v1::Record> records;
  std::optional<RecordCursor> next;  // absent on the last page
};

// One ingest batch of a write group: its records and their runs' ids.
struct RecordBatch {
  const surge::v1::IngestRequest* request = nullptr;
  const std::vector<int64_t>* run_ids = nullptr;  // parallel to request->records()
};

struct BatchResult {
  int64_t stored = 0;     // records newly inserted
  int64_t duplicate = 0;  // records whose (run, step) was stored with the same values
};

// What WriteGroup did: per batch, its result or why it was left out (the
// group committed without it); or, when `commit` is not OK, nothing of the
// group was stored.
struct GroupResult {
  absl::Status commit;
  std::vector<absl::StatusOr<BatchResult>> batches;
  absl::Duration commit_latency;  // of the COMMIT alone
};

// Called by WriteGroup after every batch was applied, before the COMMIT, with
// the batches' results (the fault tests' planted-bug build acks here).
using BeforeCommit = std::function<void(const std::vector<absl::StatusOr<BatchResult>>&)>;

class Store {
 public:
  virtual ~Store() = default;

  // Schema version after migrations.
  virtual absl::StatusOr<int> SchemaVersion() = 0;

  // --- jobs ---
  // ALREADY_EXISTS when the name is taken. The job's tenant is job.tenant()
  // ("default" when empty).
  virtual absl::StatusOr<surge::v1::Job> CreateJob(const surge::v1::Job& job, int64_t now_us) = 0;
  // NOT_FOUND when absent. Fills run_count, record_count, update_time_us.
  virtual absl::StatusOr<surge::v1::Job> GetJob(const std::string& name) = 0;
  // At most `limit` jobs with names after `after_name`, by name; only
  // `tenant`'s when it is not empty.
  virtual absl::StatusOr<std::vector<surge::v1::Job>> ListJobsPage(
      const std::string& after_name, int limit, const std::string& tenant = "") = 0;
  absl::StatusOr<std::vector<surge::v1::Job>> ListJobs() {
    return ListJobsPage("", std::numeric_limits<int>::max());  // "" sorts first
  }
  virtual absl::StatusOr<int64_t> JobId(const std::string& name) = 0;
  // Deletes a job with its runs, records, optima and fits (one transaction).
  virtual absl::StatusOr<DeleteCounts> DeleteJob(const std::string& name) = 0;

  // --- runs ---
  // Idempotent for the same batch size and protocol; ALREADY_EXISTS when the
  // name exists with another batch size or protocol; NOT_FOUND (job).
  virtual absl::StatusOr<surge::v1::Run> CreateRun(const std::string& job,
                                                   const surge::v1::Run& run, int64_t now_us) = 0;
  virtual absl::StatusOr<std::vector<surge::v1::Run>> ListRuns(const std::string& job) = 0;
  // At most `limit` runs after (batch_size, name) = `after` (nullopt: from the
  // first), ordered by batch size, then name. NOT_FOUND (job).
  virtual absl::StatusOr<std::vector<surge::v1::Run>> ListRunsPage(
      const std::string& job, const std::optional<std::pair<int64_t, std::string>>& after,
      int limit) = 0;
  // NOT_FOUND when the job or the run does not exist.
  virtual absl::StatusOr<RunKey> LookupRun(const std::string& job, const std::string& run) = 0;
  // Deletes a run and its records (one transaction); the records it had.
  virtual absl::StatusOr<int64_t> DeleteRun(const std::string& job, const std::string& run) = 0;

  // --- records ---
  // Stores a group of ingest batches in one transaction (group commit), each
  // batch all or nothing: a batch with a record that fails (a conflicting
  // re-send: ALREADY_EXISTS naming the record) is left out and the others
  // commit. A record whose (run, step) is stored with the same values is a
  // duplicate; runs' record counts and last steps follow. `before_commit`
  // may be empty.
  virtual GroupResult WriteGroup(absl::Span<const RecordBatch> batches, int64_t now_us,
                                 const BeforeCommit& before_commit) = 0;

  // --- evidence for fits ---
  // The job's runs with their ids, ordered by batch size then name.
  virtual absl::StatusOr<std::vector<std::pair<int64_t, surge::v1::Run>>> ListRunsWithIds(
      const std::string& job) = 0;
  // The record with the highest step of a run, if any.
  virtual absl::StatusOr<std::optional<surge::v1::Record>> LastRecord(int64_t run_id) = 0;
  // The stored record of `run_id` at `step` (run name left empty), or nullopt.
  virtual absl::StatusOr<std::optional<surge::v1::Record>> GetRecord(int64_t run_id,
                                                                     int64_t step) = 0;
  // Every record of a run whose step is a multiple of `every` (>= 1), in step
  // order: a bounded sample of a long run for the loss curve.
  virtual absl::StatusOr<std::vector<surge::v1::Record>> SampleRunRecords(int64_t run_id,
                                                                          int64_t every) = 0;
  // Every record of a run as columns, in step order.
  virtual absl::StatusOr<RunColumns> ReadRunColumns(int64_t run_id) = 0;
  // Inserts or replaces measured optima of a job (one transaction).
  virtual absl::Status AddOptima(int64_t job_id,
                                 const std::vector<surge::v1::MeasuredOptimum>& optima) = 0;
  virtual absl::StatusOr<std::vector<surge::v1::MeasuredOptimum>> ListOptima(int64_t job_id) = 0;
  // Stores a fit as the job's next version (fit.version is set); returns it.
  virtual absl::StatusOr<int64_t> InsertFit(int64_t job_id, surge::v1::Fit& fit) = 0;
  // The newest stored fit of a job, if any.
  virtual absl::StatusOr<std::optional<surge::v1::Fit>> LatestFit(int64_t job_id) = 0;

  // --- replicas sharing one database (PostgreSQL) ---
  // The newest stored fit version of every job that has a fit, by job name.
  virtual absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> LatestFitVersions();
  // The right to store the job's next fit version, for replicas that share
  // the database: true when this connection holds it now, false when another
  // holds it. It ends with ReleaseFitLease, or when this connection closes
  // (a replica that dies gives it up with its connection). A backend that
  // only one server uses at a time (SQLite: the file is locked) grants it
  // always.
  virtual absl::StatusOr<bool> TryLeaseFit(int64_t job_id) { return true; }
  virtual absl::Status ReleaseFitLease(int64_t job_id) { return absl::OkStatus(); }

  // --- reads ---
  // Runs `body` inside one read transaction: every query in it sees the same
  // snapshot, so a read made of several queries (a fit's evidence) is
  // consistent while the writer commits. `body` must not write.
  virtual absl::Status InReadSnapshot(const std::function<absl::Status()>& body) = 0;
  template <typename T>
  absl::StatusOr<T> ReadSnapshot(const std::function<absl::StatusOr<T>()>& body) {
    std::optional<absl::StatusOr<T>> result;
    absl::Status s = InReadSnapshot([&]() -> absl::Status {
      result.emplace(body());
      return result->status();
    });
    if (!s.ok()) return s;
    return std::move(*result);
  }
  // Records of a job (or of one run when run_id is set), ordered by run id and
  // step, starting after `after`, at most `limit`.
  virtual absl::StatusOr<RecordPage> ListRecords(int64_t job_id, std::optional<int64_t> run_id,
                                                 const RecordCursor& after, int limit) = 0;
};

// The fields in which `sent` differs from `stored`, e.g. "loss 0.5 stored,
// 0.7 sent"; empty when the record is the same (a duplicate, not a conflict).
std::string RecordDifference(const surge::v1::Record& stored, const surge::v1::Record& sent);

// ALREADY_EXISTS for records[index] of a batch, stored with other values.
absl::Status ConflictingResend(int index, const surge::v1::Record& sent, const std::string& diff);

}  // namespace surge::store

#endif  // SURGE_SERVER_STORE_STORE_H_
