// PgStore: the PostgreSQL backend of store::Store (the shared store of
// several replicas), over libpq. Same schema versions, behaviour and error
// codes as SqliteStore; see store.h for the contract of every method.
//
// One PgStore owns one connection and is NOT thread-safe (like SqliteStore:
// the core keeps one writer and a pool of readers). Every connection runs
// with synchronous_commit=on (StoreOptions::Synchronous::kNormal: off), so a
// COMMIT that returned is on the server's disk (fsync is the server's
// setting; keep it on). Text columns compare bytewise (COLLATE "C"), so names
// sort and page as in SQLite whatever the database's locale.
//
// Errors by SQLSTATE (PgStatus): 23505 -> ALREADY_EXISTS; 23503 ->
// NOT_FOUND; 22021/22P05 (text PostgreSQL cannot hold) -> INVALID_ARGUMENT,
// as is text with a NUL character (refused before it is sent; SQLite
// stores it); a lost connection, class 08, 57P01-03 and 57014
// (shutdown, cancel), class 53 (disk full, out of memory, too many
// connections), 40001/40P01 (serialization failure, deadlock), 55P03
// (lock_timeout = StoreOptions::busy_timeout_ms), 25006 (a standby:
// read-only) and 58030 (I/O error) -> UNAVAILABLE; XX001/XX002 (corrupted
// data or index) -> DATA_LOSS; anything else -> INTERNAL with the server's
// message.
//
// Broken connections: a call that finds its connection broken (the server
// restarted, the network dropped it) outside a transaction re-opens it with
// PQreset first (and prepares its statements again). A call whose connection
// breaks while it runs fails with UNAVAILABLE (a transaction's outcome, a
// COMMIT's included, is then unknown: callers retry, and ingest re-sends are
// idempotent), except what is safe to send again: a read outside a
// transaction and a BEGIN are retried once on a fresh connection (every
// write runs in a transaction, so a write finds the break at its BEGIN). So
// after a server restart only the calls in flight fail. A reset starts a new
// session: session state (prepared statements, settings, session advisory
// locks) is gone; reconnects() counts resets. Named prepared statements need
// a session of their own: behind a pooler, use session pooling.
//
// Several replicas may open the same database at once: migrations run under
// pg_advisory_xact_lock, so exactly one applies each; InsertFit locks its
// job's row, so fit versions stay consecutive across replicas.
#ifndef SURGE_SERVER_STORE_PG_STORE_H_
#define SURGE_SERVER_STORE_PG_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/store/store.h"
#include "surge/v1/surge.pb.h"

typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;

namespace surge::store {

// The PostgreSQL migrations in order (pg_schema.cc): the same tables and
// versions as schema.cc's, in PostgreSQL's dialect.
const std::vector<const char*>& PgMigrations();

// A PostgreSQL error as an absl::Status, by SQLSTATE (see above); an empty
// SQLSTATE (libpq's own errors: the connection broke) is UNAVAILABLE.
absl::Status PgStatus(absl::string_view sqlstate, absl::string_view message);

// A statement prepared on first use on a connection (again after a reset).
struct PgPrepared {
  const char* name;
  const char* sql;
};

// The parameters of one statement: numbers as exact text, bytes (BYTEA,
// binary arrays) in binary format.
class PgParams {
 public:
  PgParams& Int(int64_t v);
  PgParams& Double(double v);
  PgParams& Text(std::string v);
  PgParams& Bytes(std::string v);  // binary format: BYTEA, or an array's binary form
  PgParams& Null();
  PgParams& OptDouble(std::optional<double> v) { return v ? Double(*v) : Null(); }
  int size() const { return static_cast<int>(values_.size()); }

 private:
  friend class PgStore;
  std::vector<std::string> values_;
  std::vector<char> null_;
  std::vector<int> formats_;
};

class PgStore final : public Store {
 public:
  // Connects with a libpq URL (postgresql://user:pw@host:port/db; libpq's
  // connect_timeout defaults to 10 s here), sets the session up and, when
  // options.migrate, runs pending migrations. UNAVAILABLE when the server
  // cannot be reached; FAILED_PRECONDITION for a database newer than this
  // binary.
  static absl::StatusOr<std::unique_ptr<PgStore>> Open(const std::string& url,
                                                       const StoreOptions& options = {});
  ~PgStore() override;
  PgStore(const PgStore&) = delete;
  PgStore& operator=(const PgStore&) = delete;

  absl::StatusOr<int> SchemaVersion() override;

  // --- jobs ---
  absl::StatusOr<surge::v1::Job> CreateJob(const surge::v1::Job& job, int64_t now_us) override;
  absl::StatusOr<surge::v1::Job> GetJob(const std::string& name) override;
  using Store::ListJobs;
  absl::StatusOr<std::vector<surge::v1::Job>> ListJobsPage(const std::string& after_name,
                                                          int limit,
                                                          const std::string& tenant = "") override;
  absl::StatusOr<int64_t> JobId(const std::string& name) override;
  absl::StatusOr<DeleteCounts> DeleteJob(const std::string& name) override;

  // --- runs ---
  // Idempotent also across replicas: a run inserted meanwhile by another
  // connection is compared like one found at first.
  absl::StatusOr<surge::v1::Run> CreateRun(const std::string& job, const surge::v1::Run& run,
                                           int64_t now_us) override;
  absl::StatusOr<std::vector<surge::v1::Run>> ListRuns(const std::string& job) override;
  absl::StatusOr<std::vector<surge::v1::Run>> ListRunsPage(
      const std::string& job, const std::optional<std::pair<int64_t, std::string>>& after,
      int limit) override;
  absl::StatusOr<RunKey> LookupRun(const std::string& job, const std::string& run) override;
  absl::StatusOr<int64_t> DeleteRun(const std::string& job, const std::string& run) override;

  // --- records ---
  // BEGIN; per batch a SAVEPOINT, one prepared INSERT of the whole batch
  // from column arrays (unnest), then one UPDATE of its runs' counters;
  // COMMIT. A batch with a stored key (a re-send) fails that INSERT with a
  // unique violation: it goes back to its savepoint and inserts with ON
  // CONFLICT (run_id, step) DO NOTHING RETURNING the new keys, and the other
  // records are compared with their stored values (a duplicate, or
  // ALREADY_EXISTS and the batch rolled back to its savepoint). A batch whose
  // run was deleted meanwhile is NOT_FOUND (its counter UPDATE misses it).
  GroupResult WriteGroup(absl::Span<const RecordBatch> batches, int64_t now_us,
                         const BeforeCommit& before_commit) override;

  // --- evidence for fits ---
  absl::StatusOr<std::vector<std::pair<int64_t, surge::v1::Run>>> ListRunsWithIds(
      const std::string& job) override;
  absl::StatusOr<std::optional<surge::v1::Record>> LastRecord(int64_t run_id) override;
  absl::StatusOr<std::optional<surge::v1::Record>> GetRecord(int64_t run_id, int64_t step) override;
  absl::StatusOr<std::vector<surge::v1::Record>> SampleRunRecords(int64_t run_id,
                                                                  int64_t every) override;
  absl::StatusOr<RunColumns> ReadRunColumns(int64_t run_id) override;
  absl::Status AddOptima(int64_t job_id,
                         const std::vector<surge::v1::MeasuredOptimum>& optima) override;
  absl::StatusOr<std::vector<surge::v1::MeasuredOptimum>> ListOptima(int64_t job_id) override;
  // Locks the job's row (FOR NO KEY UPDATE) before reading MAX(version), so
  // concurrent InsertFits of one job (several replicas) queue and take
  // consecutive versions; NOT_FOUND when the job is gone. A unique violation
  // on (job_id, version) cannot happen then; were it to (a writer that skips
  // the lock), it is ALREADY_EXISTS.
  absl::StatusOr<int64_t> InsertFit(int64_t job_id, surge::v1::Fit& fit) override;
  absl::StatusOr<std::optional<surge::v1::Fit>> LatestFit(int64_t job_id) override;

  // --- replicas ---
  // One query: the newest version of every job's fits.
  absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> LatestFitVersions() override;
  // A session advisory lock on (kFitLeaseSpace, job id): held by this
  // connection until released, or until the connection ends (a replica
  // that dies or loses its connection gives it up). The core takes and
  // releases it inside one write task, so a reset between the two loses
  // nothing: the version is still computed under the job row's lock.
  absl::StatusOr<bool> TryLeaseFit(int64_t job_id) override;
  absl::Status ReleaseFitLease(int64_t job_id) override;

  // --- reads ---
  // BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY ... COMMIT.
  absl::Status InReadSnapshot(const std::function<absl::Status()>& body) override;
  absl::StatusOr<RecordPage> ListRecords(int64_t job_id, std::optional<int64_t> run_id,
                                         const RecordCursor& after, int limit) override;

  // How many times this connection was re-opened after it broke (tests).
  int reconnects() const { return reconnects_; }
  // The server process of this connection (tests end it with
  // pg_terminate_backend to check reconnection).
  int backend_pid() const;

 private:
  struct ResultDeleter {
    void operator()(PGresult* r) const;
  };
  using Result = std::unique_ptr<PGresult, ResultDeleter>;
  // kOnce: safe to send again on a fresh connection when the connection
  // broke (a read outside a transaction, a BEGIN).
  enum class Retry { kNo, kOnce };

  PgStore(PGconn* conn, StoreOptions options) : conn_(conn), options_(std::move(options)) {}

  absl::Status ConfigureSession();
  absl::Status Migrate();
  // Re-opens a broken connection (outside transactions); UNAVAILABLE when
  // it stays broken or breaks inside a transaction.
  absl::Status EnsureConnected();
  // The status of a failed result (or of a null one).
  absl::Status ErrorOf(const PGresult* result, absl::string_view what);
  // A statement without parameters (BEGIN, SAVEPOINT, DDL; several allowed).
  absl::Status Command(const char* sql, Retry retry = Retry::kNo);
  absl::StatusOr<Result> Query(absl::string_view what, const std::string& sql,
                               const PgParams& params, Retry retry = Retry::kOnce,
                               int result_format = 0);
  absl::StatusOr<Result> Execute(const PgPrepared& stmt, const PgParams& params,
                             Retry retry = Retry::kOnce);
  absl::StatusOr<Result> Send(absl::string_view what, const PgPrepared* stmt,
                              const std::string* sql, const PgParams& params, int result_format);

  // Runs `body` (returning Status or StatusOr) between `begin` and COMMIT,
  // rolling back when it or the COMMIT fails.
  template <typename Body>
  auto InTransaction(const char* begin, Body body) -> decltype(body());
  template <typename Body>
  auto Transaction(Body body) -> decltype(body()) {
    return InTransaction("BEGIN", std::move(body));
  }
  absl::Status Commit();

  // One batch of a write group, inside its savepoint.
  absl::StatusOr<BatchResult> WriteBatch(const RecordBatch& batch, int64_t now_us);
  absl::StatusOr<std::vector<surge::v1::Run>> ReadRuns(int64_t job_id, const std::string& job,
                                                       const std::optional<std::string>& name,
                                                       std::vector<int64_t>* ids = nullptr);
  absl::StatusOr<std::vector<surge::v1::Run>> RunsFromResult(const PGresult* r,
                                                             const std::string& job,
                                                             std::vector<int64_t>* ids);
  absl::StatusOr<std::vector<surge::v1::Job>> JobsFromResult(const PGresult* r);

  PGconn* conn_;
  const StoreOptions options_;
  // Statements prepared on this connection (cleared by a reset).
  absl::flat_hash_set<std::string> prepared_;
  // Inside a transaction this store opened (or a read snapshot): no reset.
  int txn_depth_ = 0;
  int reconnects_ = 0;
};

template <typename Body>
auto PgStore::InTransaction(const char* begin, Body body) -> decltype(body()) {
  if (txn_depth_ > 0) return body();  // nested: part of the open transaction
  if (absl::Status s = Command(begin, Retry::kOnce); !s.ok()) return s;
  ++txn_depth_;
  auto result = body();
  absl::Status end = result.ok() ? Commit() : absl::OkStatus();
  --txn_depth_;
  if (!result.ok() || !end.ok()) {
    Command("ROLLBACK").IgnoreError();
    if (!end.ok()) return end;
  }
  return result;
}

}  // namespace surge::store

#endif  // SURGE_SERVER_STORE_PG_STORE_H_
