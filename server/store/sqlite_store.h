// SqliteStore: surge's persistence. The only code that knows SQL.
//
// One SqliteStore owns one connection and is NOT thread-safe: the server
// keeps one writer store (used only by the writer thread) and a pool of
// reader stores. The database runs in WAL mode with synchronous=FULL, so a
// COMMIT that returned is durable across kill -9 and power loss.
//
// Inputs are assumed validated (server/core/validation.h); the store checks
// only what the database decides (existence, uniqueness).
#ifndef SURGE_SERVER_STORE_SQLITE_STORE_H_
#define SURGE_SERVER_STORE_SQLITE_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/store/sqlite_db.h"
#include "server/store/store.h"
#include "surge/v1/surge.pb.h"

namespace surge::store {

struct StartupCheckOptions {
  // PRAGMA quick_check reads every page: ~0.18 s per million records
  // (docs/operations.md, "Start-up checks").
  bool quick_check = true;
};

// What a server checks on its database before serving (surge-server calls it
// before it opens the database for good), on a connection of its own: the
// file opens in WAL mode, passes PRAGMA quick_check (unless switched off) and
// takes a committed write that changes nothing (PRAGMA user_version set to
// its own value), which shows a read-only file, -wal, -shm, folder or mount
// that reads alone do not. Migrations are not run (a damaged file gets no
// writes). DATA_LOSS for a damaged file, FAILED_PRECONDITION for one that
// cannot be written; both messages name the file and the cause.
absl::Status CheckDatabaseAtStart(const std::string& path,
                                  const StartupCheckOptions& options = {});

class SqliteStore final : public Store {
 public:
  // Opens the database, sets WAL + synchronous=FULL + foreign keys, and runs
  // any pending migrations. `path` may be ":memory:" for tests.
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(const std::string& path,
                                                           const StoreOptions& options = {});
  ~SqliteStore() override;

  // Schema version after migrations.
  absl::StatusOr<int> SchemaVersion() override;

  // --- jobs ---
  // ALREADY_EXISTS when the name is taken.
  absl::StatusOr<surge::v1::Job> CreateJob(const surge::v1::Job& job, int64_t now_us) override;
  // NOT_FOUND when absent. Fills run_count, record_count, update_time_us.
  absl::StatusOr<surge::v1::Job> GetJob(const std::string& name) override;
  using Store::ListJobs;
  // At most `limit` jobs with names after `after_name`, by name; only
  // `tenant`'s when it is not empty.
  absl::StatusOr<std::vector<surge::v1::Job>> ListJobsPage(const std::string& after_name,
                                                          int limit,
                                                          const std::string& tenant = "") override;
  absl::StatusOr<int64_t> JobId(const std::string& name) override;
  absl::StatusOr<DeleteCounts> DeleteJob(const std::string& name) override;

  // --- runs ---
  // Idempotent for the same batch size and protocol; ALREADY_EXISTS when the
  // name exists with another batch size or protocol; NOT_FOUND (job).
  absl::StatusOr<surge::v1::Run> CreateRun(const std::string& job, const surge::v1::Run& run,
                                           int64_t now_us) override;
  absl::StatusOr<std::vector<surge::v1::Run>> ListRuns(const std::string& job) override;
  // At most `limit` runs after (batch_size, name) = `after` (nullopt: from the
  // first), ordered by batch size, then name. NOT_FOUND (job).
  absl::StatusOr<std::vector<surge::v1::Run>> ListRunsPage(
      const std::string& job, const std::optional<std::pair<int64_t, std::string>>& after,
      int limit) override;
  // NOT_FOUND when the job or the run does not exist.
  absl::StatusOr<RunKey> LookupRun(const std::string& job, const std::string& run) override;
  // Deletes a run and its records (one transaction); the records it had.
  // NOT_FOUND when the job or the run does not exist.
  absl::StatusOr<int64_t> DeleteRun(const std::string& job, const std::string& run) override;

  // --- records (writer connection only) ---
  // BEGIN IMMEDIATE, then per batch a SAVEPOINT with its inserts, released
  // (or rolled back alone when a record fails), then COMMIT.
  GroupResult WriteGroup(absl::Span<const RecordBatch> batches, int64_t now_us,
                         const BeforeCommit& before_commit) override;
  // The primitives WriteGroup is made of (also used by tests).
  absl::Status Begin();
  absl::Status Commit();
  absl::Status Rollback();
  // Savepoints isolate one batch inside a group-commit transaction.
  absl::Status Savepoint();
  absl::Status ReleaseSavepoint();
  absl::Status RollbackToSavepoint();
  // Inserts one record; returns false when (run, step) was already stored.
  absl::StatusOr<bool> InsertRecord(int64_t run_id, const surge::v1::Record& record);
  // Adds `added` to the run's record count and raises its last step.
  absl::Status BumpRun(int64_t run_id, int64_t added, int64_t max_step, int64_t now_us);

  // --- evidence for fits ---
  // The job's runs with their ids, ordered by batch size then name.
  absl::StatusOr<std::vector<std::pair<int64_t, surge::v1::Run>>> ListRunsWithIds(
      const std::string& job) override;
  // The record with the highest step of a run, if any.
  absl::StatusOr<std::optional<surge::v1::Record>> LastRecord(int64_t run_id) override;
  // The stored record of `run_id` at `step` (run name left empty), or nullopt.
  absl::StatusOr<std::optional<surge::v1::Record>> GetRecord(int64_t run_id, int64_t step) override;
  // Every record of a run whose step is a multiple of `every` (>= 1), in
  // step order: a bounded sample of a long run for the loss curve.
  absl::StatusOr<std::vector<surge::v1::Record>> SampleRunRecords(int64_t run_id, int64_t every) override;
  // Every record of a run as columns (step, examples, lr, loss, eval_loss):
  // one index range scan, no per-record message.
  absl::StatusOr<RunColumns> ReadRunColumns(int64_t run_id) override;
  // Inserts or replaces measured optima of a job (one transaction).
  absl::Status AddOptima(int64_t job_id, const std::vector<surge::v1::MeasuredOptimum>& optima) override;
  absl::StatusOr<std::vector<surge::v1::MeasuredOptimum>> ListOptima(int64_t job_id) override;
  // Stores a fit as the job's next version (fit.version is set); returns it.
  absl::StatusOr<int64_t> InsertFit(int64_t job_id, surge::v1::Fit& fit) override;
  // The newest stored fit of a job, if any.
  absl::StatusOr<std::optional<surge::v1::Fit>> LatestFit(int64_t job_id) override;

  // --- reads ---
  // Runs `body` (returning Status or StatusOr) inside one read transaction
  // (BEGIN ... COMMIT, deferred): in WAL mode every query in it sees the same
  // snapshot of the database, so a read made of several queries (a fit's
  // evidence) is consistent while the writer commits. `body` must not write.
  template <typename Body>
  auto ReadSnapshot(Body body) -> decltype(body());
  absl::Status InReadSnapshot(const std::function<absl::Status()>& body) override {
    return ReadSnapshot([&] { return body(); });
  }
  // Records of a job (or of one run when run_id is set), ordered by run id and
  // step, starting after `after`, at most `limit`.
  absl::StatusOr<RecordPage> ListRecords(int64_t job_id, std::optional<int64_t> run_id,
                                         const RecordCursor& after, int limit) override;

 private:
  explicit SqliteStore(std::unique_ptr<SqliteDb> db) : db_(std::move(db)) {}
  // Runs `body` (returning Status or StatusOr) inside BEGIN IMMEDIATE ...
  // COMMIT; rolls back when the body or the commit fails.
  template <typename Body>
  auto Transaction(Body body) -> decltype(body()) {
    return InTransaction("BEGIN IMMEDIATE;", body);
  }
  // `begin` ... COMMIT around `body`; ROLLBACK when the body or the commit
  // fails (the commit's error is returned then). Transaction and ReadSnapshot.
  template <typename Body>
  auto InTransaction(const char* begin, Body& body) -> decltype(body());
  absl::Status Configure(const StoreOptions& options);
  absl::Status Migrate();
  absl::Status PrepareStatements();
  absl::StatusOr<surge::v1::Run> ReadRun(Statement& stmt, const std::string& job);
  absl::StatusOr<std::vector<surge::v1::Run>> ReadRuns(int64_t job_id, const std::string& job,
                                                       std::optional<std::string> name,
                                                       std::vector<int64_t>* ids = nullptr);
  absl::StatusOr<surge::v1::Job> ReadJob(Statement& stmt);

  std::unique_ptr<SqliteDb> db_;
  std::unique_ptr<Statement> insert_record_;
  std::unique_ptr<Statement> bump_run_;
  std::unique_ptr<Statement> lookup_run_;
  std::unique_ptr<Statement> list_records_;
  std::unique_ptr<Statement> job_runs_after_;
  std::unique_ptr<Statement> last_record_;
  std::unique_ptr<Statement> get_record_;
  std::unique_ptr<Statement> run_columns_;
};

template <typename Body>
auto SqliteStore::ReadSnapshot(Body body) -> decltype(body()) {
  // A deferred BEGIN: the snapshot starts at the first read; COMMIT (or
  // ROLLBACK after an error) only ends it.
  return InTransaction("BEGIN;", body);
}

template <typename Body>
auto SqliteStore::InTransaction(const char* begin, Body& body) -> decltype(body()) {
  if (absl::Status s = db_->Exec(begin); !s.ok()) return s;
  auto result = body();
  absl::Status end = result.ok() ? db_->Exec("COMMIT;") : absl::OkStatus();
  if (!result.ok() || !end.ok()) {
    db_->Exec("ROLLBACK;").IgnoreError();
    if (!end.ok()) return end;
  }
  return result;
}

}  // namespace surge::store

#endif  // SURGE_SERVER_STORE_SQLITE_STORE_H_
