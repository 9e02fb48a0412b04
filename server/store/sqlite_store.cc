// Implementation of SqliteStore: schema setup, migrations and every query.
#include "server/store/sqlite_store.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "server/store/schema.h"
#include "server/store/write_group.h"
#include "server/util/status_macros.h"

namespace surge::store {
namespace {

constexpr char kRunColumns[] =
    "id, name, batch_size, protocol, optimizer_name, beta1, beta2, adam_eps, weight_decay, "
    "base_lr, parent_step, parent_loss, parent_base_run, target_loss, create_time_us, "
    "record_count, last_step";

constexpr char kJobSelect[] =
    "SELECT j.id, j.name, j.batch_unit, j.description, j.create_time_us, "
    "  MAX(j.update_time_us, COALESCE((SELECT MAX(update_time_us) FROM runs WHERE job_id = j.id), 0)), "
    "  (SELECT COUNT(*) FROM runs WHERE job_id = j.id), "
    "  COALESCE((SELECT SUM(record_count) FROM runs WHERE job_id = j.id), 0), "
    "  j.target_losses, j.k_steps, j.tenant "
    "FROM jobs j ";

std::optional<double> OptDouble(const Statement& s, int col) {
  if (s.ColumnIsNull(col)) return std::nullopt;
  return s.ColumnDouble(col);
}

// PRAGMA journal_mode=WAL. Switching a new file to WAL takes an exclusive
// lock, and while other connections open the same file at that moment
// SQLite can answer SQLITE_BUSY without calling the busy handler (measured:
// 3 of 60 runs of four simultaneous opens of a new file failed with
// "database is locked"). So it is retried, with a growing pause of up to
// 50 ms, until the connection's busy timeout has passed.
absl::Status EnableWal(SqliteDb& db, int busy_timeout_ms) {
  const absl::Time deadline = absl::Now() + absl::Milliseconds(busy_timeout_ms);
  absl::Duration pause = absl::Milliseconds(1);
  while (true) {
    absl::Status s = db.Exec("PRAGMA journal_mode=WAL;");
    if (!absl::IsUnavailable(s) || absl::Now() + pause > deadline) return s;
    absl::SleepFor(pause);
    pause = std::min(2 * pause, absl::Milliseconds(50));
  }
}

// Busy timeout, WAL, synchronous (FULL unless a test asks for NORMAL),
// foreign keys, checkpoint interval.
absl::Status ConfigureConnection(SqliteDb& db, const StoreOptions& options) {
  sqlite3_busy_timeout(db.raw(), options.busy_timeout_ms);
  SURGE_RETURN_IF_ERROR(EnableWal(db, options.busy_timeout_ms));
  SURGE_RETURN_IF_ERROR(db.Exec(options.synchronous == StoreOptions::Synchronous::kNormal
                                    ? "PRAGMA synchronous=NORMAL;"
                                    : "PRAGMA synchronous=FULL;"));
  SURGE_RETURN_IF_ERROR(db.Exec("PRAGMA foreign_keys=ON;"));
  std::string checkpoint =
      absl::StrCat("PRAGMA wal_autocheckpoint=", options.wal_autocheckpoint_pages, ";");
  return db.Exec(checkpoint.c_str());
}

// PRAGMA quick_check: DATA_LOSS listing the first problems it found (or the
// error that stopped it, e.g. "database disk image is malformed").
absl::Status QuickCheck(SqliteDb& db) {
  SURGE_ASSIGN_OR_RETURN(auto check, db.Prepare("PRAGMA quick_check(5)"));
  std::vector<std::string> problems;
  while (true) {
    absl::StatusOr<bool> row = check->Step();
    if (!row.ok()) {
      return absl::Status(row.status().code(),
                          absl::StrCat("PRAGMA quick_check: ", row.status().message()));
    }
    if (!*row) break;
    std::string line = check->ColumnText(0);
    if (line != "ok") problems.push_back(std::move(line));
  }
  if (problems.empty()) return absl::OkStatus();
  return SqliteStatus(SQLITE_CORRUPT, absl::StrCat("PRAGMA quick_check: ",
                                                   absl::StrJoin(problems, "; ")));
}

// A committed write that changes nothing: user_version set to its own value.
absl::Status ProbeWrite(SqliteDb& db) {
  SURGE_ASSIGN_OR_RETURN(auto select, db.Prepare("PRAGMA user_version"));
  SURGE_ASSIGN_OR_RETURN(bool row, select->Step());
  int64_t user_version = row ? select->ColumnInt(0) : 0;
  select.reset();
  std::string probe =
      absl::StrCat("BEGIN IMMEDIATE; PRAGMA user_version = ", user_version, "; COMMIT;");
  absl::Status status = db.Exec(probe.c_str());
  if (!status.ok() && !sqlite3_get_autocommit(db.raw())) db.Exec("ROLLBACK;").IgnoreError();
  return status;
}

}  // namespace

absl::Status CheckDatabaseAtStart(const std::string& path, const StartupCheckOptions& options) {
  absl::StatusOr<std::unique_ptr<SqliteDb>> db = SqliteDb::Open(path);
  absl::Status opened = db.ok() ? ConfigureConnection(**db, StoreOptions()) : db.status();
  if (!opened.ok()) {
    return absl::Status(opened.code(), absl::StrCat("database ", path, " cannot be opened: ",
                                                    opened.message()));
  }
  if (options.quick_check) {
    absl::Status check = QuickCheck(**db);
    if (absl::IsDataLoss(check)) {
      return absl::DataLossError(
          absl::StrCat("database ", path, " is damaged, refusing to serve it: ", check.message()));
    }
    if (!check.ok()) {
      return absl::Status(check.code(), absl::StrCat("database ", path,
                                                     " cannot be checked: ", check.message()));
    }
  }
  absl::Status probe = ProbeWrite(**db);
  if (!probe.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "database ", path, " cannot be written, refusing to serve it: ", probe.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path,
                                                               const StoreOptions& options) {
  SURGE_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db, SqliteDb::Open(path));
  std::unique_ptr<SqliteStore> store(new SqliteStore(std::move(db)));
  SURGE_RETURN_IF_ERROR(store->Configure(options));
  if (options.migrate) SURGE_RETURN_IF_ERROR(store->Migrate());
  SURGE_RETURN_IF_ERROR(store->PrepareStatements());
  return store;
}

SqliteStore::~SqliteStore() {
  // Statements must be finalized before the connection closes.
  insert_record_.reset();
  bump_run_.reset();
  lookup_run_.reset();
  list_records_.reset();
  job_runs_after_.reset();
  last_record_.reset();
}

absl::Status SqliteStore::Configure(const StoreOptions& options) {
  return ConfigureConnection(*db_, options);
}

absl::Status SqliteStore::Migrate() {
  return Transaction([&]() -> absl::Status {
    SURGE_RETURN_IF_ERROR(
        db_->Exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);"));
    SURGE_ASSIGN_OR_RETURN(auto select, db_->Prepare("SELECT MAX(version) FROM schema_version"));
    SURGE_ASSIGN_OR_RETURN(bool row, select->Step());
    int64_t version = (row && !select->ColumnIsNull(0)) ? select->ColumnInt(0) : 0;
    const auto& migrations = Migrations();
    if (version > static_cast<int64_t>(migrations.size())) {
      return absl::FailedPreconditionError(
          absl::StrCat("database schema version ", version, " is newer than this server (",
                       migrations.size(), "); upgrade surge-server"));
    }
    SURGE_ASSIGN_OR_RETURN(auto insert,
                           db_->Prepare("INSERT INTO schema_version (version) VALUES (?)"));
    for (size_t v = static_cast<size_t>(version); v < migrations.size(); ++v) {
      SURGE_RETURN_IF_ERROR(db_->Exec(migrations[v]));
      insert->Reset();
      insert->BindInt(1, static_cast<int64_t>(v + 1));
      SURGE_RETURN_IF_ERROR(insert->Execute());
    }
    return absl::OkStatus();
  });
}

absl::Status SqliteStore::PrepareStatements() {
  SURGE_ASSIGN_OR_RETURN(insert_record_,
                         db_->Prepare("INSERT INTO records (run_id, step, examples, lr, loss, "
                                      "eval_loss, grad_sq_small, grad_sq_big, b_small, b_big) "
                                      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"));
  SURGE_ASSIGN_OR_RETURN(bump_run_, db_->Prepare("UPDATE runs SET record_count = record_count + ?, "
                                                 "last_step = MAX(last_step, ?), "
                                                 "update_time_us = ? WHERE id = ?"));
  SURGE_ASSIGN_OR_RETURN(lookup_run_,
                         db_->Prepare("SELECT r.job_id, r.id, r.batch_size FROM runs r "
                                      "JOIN jobs j ON j.id = r.job_id "
                                      "WHERE j.name = ? AND r.name = ?"));
  SURGE_ASSIGN_OR_RETURN(
      list_records_,
      db_->Prepare("SELECT step, examples, lr, loss, eval_loss, grad_sq_small, grad_sq_big, "
                   "b_small, b_big FROM records WHERE run_id = ? AND step > ? "
                   "ORDER BY step LIMIT ?"));
  SURGE_ASSIGN_OR_RETURN(job_runs_after_,
                         db_->Prepare("SELECT id, name FROM runs WHERE job_id = ? AND id >= ? "
                                      "ORDER BY id"));
  return absl::OkStatus();
}

absl::StatusOr<int> SqliteStore::SchemaVersion() {
  SURGE_ASSIGN_OR_RETURN(auto select, db_->Prepare("SELECT MAX(version) FROM schema_version"));
  SURGE_ASSIGN_OR_RETURN(bool row, select->Step());
  return row ? static_cast<int>(select->ColumnInt(0)) : 0;
}

// ---------------------------------------------------------------- jobs

absl::StatusOr<surge::v1::Job> SqliteStore::ReadJob(Statement& s) {
  surge::v1::Job job;
  job.set_name(s.ColumnText(1));
  job.set_batch_unit(static_cast<surge::v1::BatchUnit>(s.ColumnInt(2)));
  job.set_description(s.ColumnText(3));
  job.set_create_time_us(s.ColumnInt(4));
  job.set_update_time_us(s.ColumnInt(5));
  job.set_run_count(s.ColumnInt(6));
  job.set_record_count(s.ColumnInt(7));
  for (absl::string_view t : absl::StrSplit(s.ColumnText(8), ',', absl::SkipEmpty())) {
    double v = 0;
    if (absl::SimpleAtod(t, &v)) job.add_target_losses(v);
  }
  job.set_k_steps(static_cast<int32_t>(s.ColumnInt(9)));
  job.set_tenant(s.ColumnText(10));
  return job;
}

absl::StatusOr<surge::v1::Job> SqliteStore::CreateJob(const surge::v1::Job& job,
                                                      int64_t now_us) {
  SURGE_ASSIGN_OR_RETURN(auto insert,
                         db_->Prepare("INSERT INTO jobs (name, batch_unit, description, "
                                      "create_time_us, update_time_us, target_losses, k_steps, "
                                      "tenant) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"));
  insert->BindText(1, job.name());
  insert->BindInt(2, job.batch_unit());
  insert->BindText(3, job.description());
  insert->BindInt(4, now_us);
  insert->BindInt(5, now_us);
  std::vector<std::string> targets;
  for (double t : job.target_losses()) targets.push_back(absl::StrFormat("%.17g", t));
  insert->BindText(6, absl::StrJoin(targets, ","));
  insert->BindInt(7, job.k_steps());
  insert->BindText(8, job.tenant().empty() ? std::string("default") : job.tenant());
  absl::Status status = insert->Execute();
  if (absl::IsAlreadyExists(status)) {
    return absl::AlreadyExistsError(absl::StrCat("job '", job.name(), "' already exists"));
  }
  SURGE_RETURN_IF_ERROR(status);
  return GetJob(job.name());
}

absl::StatusOr<surge::v1::Job> SqliteStore::GetJob(const std::string& name) {
  SURGE_ASSIGN_OR_RETURN(auto select, db_->Prepare(absl::StrCat(kJobSelect, "WHERE j.name = ?")));
  select->BindText(1, name);
  SURGE_ASSIGN_OR_RETURN(bool row, select->Step());
  if (!row) return absl::NotFoundError(absl::StrCat("job '", name, "' not found"));
  return ReadJob(*select);
}

absl::StatusOr<std::vector<surge::v1::Job>> SqliteStore::ListJobsPage(
    const std::string& after_name, int limit, const std::string& tenant) {
  SURGE_ASSIGN_OR_RETURN(
      auto select,
      db_->Prepare(absl::StrCat(kJobSelect, "WHERE j.name > ? AND (?3 = '' OR j.tenant = ?3) "
                                            "ORDER BY j.name LIMIT ?2")));
  select->BindText(1, after_name);
  select->BindInt(2, limit);
  select->BindText(3, tenant);
  std::vector<surge::v1::Job> jobs;
  while (true) {
    SURGE_ASSIGN_OR_RETURN(bool row, select->Step());
    if (!row) break;
    SURGE_ASSIGN_OR_RETURN(surge::v1::Job job, ReadJob(*select));
    jobs.push_back(std::move(job));
  }
  return jobs;
}

absl::StatusOr<std::vector<surge::v1::Run>> SqliteStore::ListRunsPage(
    const std::string& job, const std::optional<std::pair<int64_t, std::string>>& after,
    int limit) {
  SURGE_ASSIGN_OR_RETURN(int64_t job_id, JobId(job));
  SURGE_ASSIGN_OR_RETURN(
      auto select,
      db_->Prepare(absl::StrCat("SELECT ", kRunColumns, " FROM runs WHERE job_id = ?",
                                after ? " AND (batch_size, name) > (?, ?)" : "",
                                " ORDER BY batch_size, name LIMIT ?")));
  int i = 1;
  select->BindInt(i++, job_id);
  if (after) {
    select->BindInt(i++, after->first);
    select->BindText(i++, after->second);
  }
  select->BindInt(i++, limit);
  std::vector<surge::v1::Run> runs;
  while (true) {
    SURGE_ASSIGN_OR_RETURN(bool row, select->Step());
    if (!row) break;
    SURGE_ASSIGN_OR_RETURN(surge::v1::Run run, ReadRun(*select, job));
    runs.push_back(std::move(run));
  }
  return runs;
}

absl::StatusOr<int64_t> SqliteStore::JobId(const std::string& name) {
  SURGE_ASSIGN_OR_RETURN(auto select, db_->Prepare("SELECT id FROM jobs WHERE name = ?"));
  select->BindText(1, name);
  SURGE_ASSIGN_OR_RETURN(bool row, select->Step());
  if (!row) return absl::NotFoundError(absl::StrCat("job '", name, "' not found"));
  return select->ColumnInt(0);
}

absl::StatusOr<DeleteCounts> SqliteStore::DeleteJob(const std::string& name) {
  return Transaction([&]() -> absl::StatusOr<DeleteCounts> {
    SURGE_ASSIGN_OR_RETURN(int64_t job_id, JobId(name));
    SURGE_ASSIGN_OR_RETURN(auto count, db_->Prepare("SELECT COUNT(*), COALESCE(SUM(record_count), 0) "
                                                    "FROM runs WHERE job_id = ?"));
    count->BindInt(1, job_id);
    SURGE_RETURN_IF_ERROR(count->Step().status());
    DeleteCounts counts{count->ColumnInt(0), count->ColumnInt(1)};
    SURGE_ASSIGN_OR_RETURN(auto del, db_->Prepare("DELETE FROM jobs WHERE id = ?"));
    del->BindInt(1, job_id);
    SURGE_RETURN_IF_ERROR(del->Execute());
    return counts;
  });
}

// ---------------------------------------------------------------- runs

absl::StatusOr<int64_t> SqliteStore::DeleteRun(const std::string& job, const std::string& run) {
  return Transaction([&]() -> absl::StatusOr<int64_t> {
    SURGE_ASSIGN_OR_RETURN(RunKey key, LookupRun(job, run));
    SURGE_ASSIGN_OR_RETURN(auto count, db_->Prepare("SELECT record_count FROM runs WHERE id = ?"));
    count->BindInt(1, key.run_id);
    SURGE_RETURN_IF_ERROR(count->Step().status());
    const int64_t records = count->ColumnInt(0);
    SURGE_ASSIGN_OR_RETURN(auto del, db_->Prepare("DELETE FROM runs WHERE id = ?"));
    del->BindInt(1, key.run_id);
    SURGE_RETURN_IF_ERROR(del->Execute());
    return records;
  });
}

absl::StatusOr<surge::v1::Run> SqliteStore::ReadRun(Statement& s, const std::string& job) {
  surge::v1::Run run;
  run.set_job(job);
  run.set_name(s.ColumnText(1));
  run.set_batch_size(s.ColumnInt(2));
  run.set_protocol(static_cast<surge::v1::Protocol>(s.ColumnInt(3)));
  if (!s.ColumnIsNull(4)) {
    auto* opt = run.mutable_optimizer();
    opt->set_name(s.ColumnText(4));
    opt->set_beta1(s.ColumnDouble(5));
    opt->set_beta2(s.ColumnDouble(6));
    opt->set_eps(s.ColumnDouble(7));
    opt->set_weight_decay(s.ColumnDouble(8));
  }
  run.set_base_lr(s.ColumnDouble(9));
  if (!s.ColumnIsNull(10)) {
    auto* parent = run.mutable_parent();
    parent->set_checkpoint_step(s.ColumnInt(10));
    parent->set_loss(s.ColumnDouble(11));
    parent->set_base_run(s.ColumnText(12));
  }
  if (auto target = OptDouble(s, 13)) run.set_target_loss(*target);
  run.set_create_time_us(s.ColumnInt(14));
  run.set_record_count(s.ColumnInt(15));
  run.set_last_step(s.ColumnInt(16));

  SURGE_ASSIGN_OR_RETURN(auto labels,
                         db_->Prepare("SELECT key, value FROM run_labels WHERE run_id = ?"));
  labels->BindInt(1, s.ColumnInt(0));
  while (true) {
    SURGE_ASSIGN_OR_RETURN(bool row, labels->Step());
    if (!row) break;
    (*run.mutable_labels())[labels->ColumnText(0)] = labels->ColumnText(1);
  }
  return run;
}

absl::StatusOr<std::vector<surge::v1::Run>> SqliteStore::ReadRuns(
    int64_t job_id, const std::string& job, std::optional<std::string> name,
    std::vector<int64_t>* ids) {
  std::string sql = absl::StrCat("SELECT ", kRunColumns, " FROM runs WHERE job_id = ?",
                                 name ? " AND name = ?" : "", " ORDER BY batch_size, name");
  SURGE_ASSIGN_OR_RETURN(auto select, db_->Prepare(sql));
  select->BindInt(1, job_id);
  if (name) select->BindText(2, *name);
  std::vector<surge::v1::Run> runs;
  while (true) {
    SURGE_ASSIGN_OR_RETURN(bool row, select->Step());
    if (!row) break;
    SURGE_ASSIGN_OR_RETURN(surge::v1::Run run, ReadRun(*select, job));
    if (ids != nullptr) ids->push_back(select->ColumnInt(0));
    runs.push_back(std::move(run));
  }
  return runs;
}

absl::StatusOr<surge::v1::Run> SqliteStore::CreateRun(const std::string& job,
                                                      const surge::v1::Run& run,
                                                      int64_t now_us) {
  return Transaction([&]() -> absl::StatusOr<surge::v1::Run> {
    SURGE_ASSIGN_OR_RETURN(int64_t job_id, JobId(job));
    SURGE_ASSIGN_OR_RETURN(auto existing, ReadRuns(job_id, job, run.name()));
    if (!existing.empty()) {
      const surge::v1::Run& old = existing.front();
      if (old.batch_size() != run.batch_size() || old.protocol() != run.protocol()) {
        return absl::AlreadyExistsError(absl::StrCat(
            "run '", run.name(), "' of job '", job, "' exists with batch_size ",
            old.batch_size(), " and protocol ", surge::v1::Protocol_Name(old.protocol()),
            "; asked for batch_size ", run.batch_size(), " and protocol ",
            surge::v1::Protocol_Name(run.protocol()), "; use another run name"));
      }
      return old;
    }
    SURGE_ASSIGN_OR_RETURN(
        auto insert,
        db_->Prepare("INSERT INTO runs (job_id, name, batch_size, protocol, optimizer_name, beta1, "
                     "beta2, adam_eps, weight_decay, base_lr, parent_step, parent_loss, "
                     "parent_base_run, target_loss, create_time_us, update_time_us) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
    insert->BindInt(1, job_id);
    insert->BindText(2, run.name());
    insert->BindInt(3, run.batch_size());
    insert->BindInt(4, run.protocol());
    if (run.has_optimizer()) {
      insert->BindText(5, run.optimizer().name());
      insert->BindDouble(6, run.optimizer().beta1());
      insert->BindDouble(7, run.optimizer().beta2());
      insert->BindDouble(8, run.optimizer().eps());
      insert->BindDouble(9, run.optimizer().weight_decay());
    }
    insert->BindDouble(10, run.base_lr());
    if (run.has_parent()) {
      insert->BindInt(11, run.parent().checkpoint_step());
      insert->BindDouble(12, run.parent().loss());
      insert->BindText(13, run.parent().base_run());
    }
    if (run.has_target_loss()) insert->BindDouble(14, run.target_loss());
    insert->BindInt(15, now_us);
    insert->BindInt(16, now_us);
    SURGE_RETURN_IF_ERROR(insert->Execute());
    int64_t run_id = db_->LastInsertRowId();
    SURGE_ASSIGN_OR_RETURN(
        auto label, db_->Prepare("INSERT INTO run_labels (run_id, key, value) VALUES (?, ?, ?)"));
    for (const auto& [key, value] : run.labels()) {
      label->Reset();
      label->BindInt(1, run_id);
      label->BindText(2, key);
      label->BindText(3, value);
      SURGE_RETURN_IF_ERROR(label->Execute());
    }
    SURGE_ASSIGN_OR_RETURN(auto created, ReadRuns(job_id, job, run.name()));
    return created.front();
  });
}

absl::StatusOr<std::vector<surge::v1::Run>> SqliteStore::ListRuns(const std::string& job) {
  SURGE_ASSIGN_OR_RETURN(int64_t job_id, JobId(job));
  return ReadRuns(job_id, job, std::nullopt);
}

absl::StatusOr<RunKey> SqliteStore::LookupRun(const std::string& job, const std::string& run) {
  lookup_run_->Reset();
  lookup_run_->BindText(1, job);
  lookup_run_->BindText(2, run);
  SURGE_ASSIGN_OR_RETURN(bool row, lookup_run_->Step());
  if (!row) {
    SURGE_RETURN_IF_ERROR(JobId(job).status());
    return absl::NotFoundError(
        absl::StrCat("run '", run, "' not found in job '", job, "'; create it with CreateRun"));
  }
  RunKey key{lookup_run_->ColumnInt(0), lookup_run_->ColumnInt(1), lookup_run_->ColumnInt(2)};
  lookup_run_->Reset();
  return key;
}

// ---------------------------------------------------------------- evidence

absl::StatusOr<std::vector<std::pair<int64_t, surge::v1::Run>>> SqliteStore::ListRunsWithIds(
    const std::string& job) {
  SURGE_ASSIGN_OR_RETURN(int64_t job_id, JobId(job));
  std::vector<int64_t> ids;
  SURGE_ASSIGN_OR_RETURN(std::vector<surge::v1::Run> runs,
                         ReadRuns(job_id, job, std::nullopt, &ids));
  std::vector<std::pair<int64_t, surge::v1::Run>> out;
  out.reserve(runs.size());
  for (size_t i = 0; i < runs.size(); ++i) out.emplace_back(ids[i], std::move(runs[i]));
  return out;
}

absl::StatusOr<std::optional<surge::v1::Record>> SqliteStore::LastRecord(int64_t run_id) {
  if (!last_record_) {
    SURGE_ASSIGN_OR_RETURN(
        last_record_,
        db_->Prepare("SELECT step, examples, lr, loss, eval_loss FROM records "
                     "WHERE run_id = ? ORDER BY step DESC LIMIT 1"));
  }
  Statement& s = *last_record_;
  s.Reset();
  s.BindInt(1, run_id);
  SURGE_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return std::optional<surge::v1::Record>();
  surge::v1::Record r;
  r.set_step(s.ColumnInt(0));
  r.set_examples(s.ColumnInt(1));
  r.set_lr(s.ColumnDouble(2));
  r.set_loss(s.ColumnDouble(3));
  if (auto eval = OptDouble(s, 4)) r.set_eval_loss(*eval);
  s.Reset();
  return std::optional<surge::v1::Record>(std::move(r));
}

absl::StatusOr<std::optional<surge::v1::Record>> SqliteStore::GetRecord(int64_t run_id,
                                                                      int64_t step) {
  if (!get_record_) {
    SURGE_ASSIGN_OR_RETURN(
        get_record_,
        db_->Prepare("SELECT examples, lr, loss, eval_loss, grad_sq_small, grad_sq_big, b_small, "
                     "b_big FROM records WHERE run_id = ? AND step = ?"));
  }
  Statement& s = *get_record_;
  s.Reset();
  s.BindInt(1, run_id);
  s.BindInt(2, step);
  SURGE_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return std::optional<surge::v1::Record>();
  surge::v1::Record r;
  r.set_step(step);
  r.set_examples(s.ColumnInt(0));
  r.set_lr(s.ColumnDouble(1));
  r.set_loss(s.ColumnDouble(2));
  if (auto eval = OptDouble(s, 3)) r.set_eval_loss(*eval);
  if (auto small = OptDouble(s, 4)) {
    surge::v1::GradStats* g = r.mutable_grad_stats();
    g->set_grad_sq_small(*small);
    if (auto big = OptDouble(s, 5)) g->set_grad_sq_big(*big);
    g->set_b_small(s.ColumnInt(6));
    g->set_b_big(s.ColumnInt(7));
  }
  s.Reset();
  return std::optional<surge::v1::Record>(std::move(r));
}

absl::StatusOr<std::vector<surge::v1::Record>> SqliteStore::SampleRunRecords(int64_t run_id,
                                                                            int64_t every) {
  SURGE_ASSIGN_OR_RETURN(
      auto select,
      db_->Prepare("SELECT step, loss, grad_sq_small, grad_sq_big, b_small, b_big FROM records "
                   "WHERE run_id = ? AND step % ? = 0 ORDER BY step"));
  select->BindInt(1, run_id);
  select->BindInt(2, std::max<int64_t>(1, every));
  std::vector<surge::v1::Record> out;
  while (true) {
    SURGE_ASSIGN_OR_RETURN(bool row, select->Step());
    if (!row) break;
    surge::v1::Record& r = out.emplace_back();
    r.set_step(select->ColumnInt(0));
    r.set_loss(select->ColumnDouble(1));
    if (!select->ColumnIsNull(2)) {
      auto* g = r.mutable_grad_stats();
      g->set_grad_sq_small(select->ColumnDouble(2));
      g->set_grad_sq_big(select->ColumnDouble(3));
      g->set_b_small(select->ColumnInt(4));
      g->set_b_big(select->ColumnInt(5));
    }
  }
  return out;
}

absl::StatusOr<RunColumns> SqliteStore::ReadRunColumns(int64_t run_id) {
  if (run_columns_ == nullptr) {
    SURGE_ASSIGN_OR_RETURN(
        run_columns_,
        db_->Prepare("SELECT step, examples, lr, loss, eval_loss FROM records WHERE run_id = ? "
                     "ORDER BY step"));
  }
  Statement& select = *run_columns_;
  select.Reset();
  select.BindInt(1, run_id);
  RunColumns out;
  while (true) {
    SURGE_ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) break;
    out.steps.push_back(select.ColumnInt(0));
    out.examples.push_back(static_cast<double>(select.ColumnInt(1)));
    out.lr.push_back(select.ColumnDouble(2));
    out.loss.push_back(select.ColumnDouble(3));
    out.eval_loss.push_back(select.ColumnIsNull(4) ? NAN : select.ColumnDouble(4));
  }
  select.Reset();
  return out;
}

absl::Status SqliteStore::AddOptima(int64_t job_id,
                                    const std::vector<surge::v1::MeasuredOptimum>& optima) {
  return Transaction([&]() -> absl::Status {
    SURGE_ASSIGN_OR_RETURN(
        auto insert,
        db_->Prepare("INSERT OR REPLACE INTO measured_optima (job_id, stage_id, batch_size, "
                     "stage_loss, lr_opt, lr_opt_se) VALUES (?, ?, ?, ?, ?, ?)"));
    for (const auto& o : optima) {
      insert->Reset();
      insert->BindInt(1, job_id);
      insert->BindInt(2, o.stage());
      insert->BindDouble(3, o.batch_size());
      insert->BindDouble(4, o.stage_loss());
      insert->BindDouble(5, o.lr_opt());
      insert->BindDouble(6, o.lr_opt_se());
      SURGE_RETURN_IF_ERROR(insert->Execute());
    }
    SURGE_ASSIGN_OR_RETURN(auto touch,
                           db_->Prepare("UPDATE jobs SET update_time_us = ? WHERE id = ?"));
    touch->BindInt(1, absl::ToUnixMicros(absl::Now()));
    touch->BindInt(2, job_id);
    return touch->Execute();
  });
}

absl::StatusOr<std::vector<surge::v1::MeasuredOptimum>> SqliteStore::ListOptima(int64_t job_id) {
  SURGE_ASSIGN_OR_RETURN(auto select,
                         db_->Prepare("SELECT stage_id, batch_size, stage_loss, lr_opt, lr_opt_se "
                                      "FROM measured_optima WHERE job_id = ? "
                                      "ORDER BY stage_id, batch_size"));
  select->BindInt(1, job_id);
  std::vector<surge::v1::MeasuredOptimum> out;
  while (true) {
    SURGE_ASSIGN_OR_RETURN(bool row, select->Step());
    if (!row) break;
    surge::v1::MeasuredOptimum& o = out.emplace_back();
    o.set_stage(select->ColumnInt(0));
    o.set_batch_size(select->ColumnDouble(1));
    o.set_stage_loss(select->ColumnDouble(2));
    o.set_lr_opt(select->ColumnDouble(3));
    o.set_lr_opt_se(select->ColumnDouble(4));
  }
  return out;
}

absl::StatusOr<int64_t> SqliteStore::InsertFit(int64_t job_id, surge::v1::Fit& fit) {
  return Transaction([&]() -> absl::StatusOr<int64_t> {
    SURGE_ASSIGN_OR_RETURN(
        auto next, db_->Prepare("SELECT COALESCE(MAX(version), 0) + 1 FROM fits WHERE job_id = ?"));
    next->BindInt(1, job_id);
    SURGE_RETURN_IF_ERROR(next->Step().status());
    int64_t version = next->ColumnInt(0);
    fit.set_version(version);
    std::string blob;
    fit.SerializeToString(&blob);
    SURGE_ASSIGN_OR_RETURN(
        auto insert,
        db_->Prepare("INSERT INTO fits (job_id, version, create_time_us, ok, probe_points, "
                     "measured_optima, loss_points, stages, records_seen, fit_us, fit) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
    insert->BindInt(1, job_id);
    insert->BindInt(2, version);
    insert->BindInt(3, fit.create_time_us());
    insert->BindInt(4, fit.error().empty() ? 1 : 0);
    insert->BindInt(5, fit.inputs().probe_points());
    insert->BindInt(6, fit.inputs().measured_optima());
    insert->BindInt(7, fit.inputs().loss_points());
    insert->BindInt(8, fit.inputs().stages());
    insert->BindInt(9, fit.inputs().records_seen());
    insert->BindInt(10, static_cast<int64_t>(fit.fit_ms() * 1000));
    insert->BindBlob(11, blob);
    SURGE_RETURN_IF_ERROR(insert->Execute());
    return version;
  });
}

absl::StatusOr<std::optional<surge::v1::Fit>> SqliteStore::LatestFit(int64_t job_id) {
  SURGE_ASSIGN_OR_RETURN(auto select, db_->Prepare("SELECT fit FROM fits WHERE job_id = ? "
                                                   "ORDER BY version DESC LIMIT 1"));
  select->BindInt(1, job_id);
  SURGE_ASSIGN_OR_RETURN(bool row, select->Step());
  if (!row) return std::optional<surge::v1::Fit>();
  surge::v1::Fit fit;
  std::string blob = select->ColumnBlob(0);
  if (!fit.ParseFromString(blob)) {
    return absl::DataLossError(absl::StrCat("stored fit of job id ", job_id, " does not parse"));
  }
  return std::optional<surge::v1::Fit>(std::move(fit));
}

// ---------------------------------------------------------------- records

absl::Status SqliteStore::Begin() { return db_->Exec("BEGIN IMMEDIATE;"); }
absl::Status SqliteStore::Commit() { return db_->Exec("COMMIT;"); }
absl::Status SqliteStore::Rollback() { return db_->Exec("ROLLBACK;"); }
absl::Status SqliteStore::Savepoint() { return db_->Exec("SAVEPOINT batch;"); }
absl::Status SqliteStore::ReleaseSavepoint() { return db_->Exec("RELEASE batch;"); }
absl::Status SqliteStore::RollbackToSavepoint() {
  return db_->Exec("ROLLBACK TO batch; RELEASE batch;");
}

absl::StatusOr<bool> SqliteStore::InsertRecord(int64_t run_id, const surge::v1::Record& r) {
  Statement& s = *insert_record_;
  s.Reset();
  s.BindInt(1, run_id);
  s.BindInt(2, r.step());
  s.BindInt(3, r.examples());
  s.BindDouble(4, r.lr());
  s.BindDouble(5, r.loss());
  if (r.has_eval_loss()) s.BindDouble(6, r.eval_loss());
  if (r.has_grad_stats()) {
    s.BindDouble(7, r.grad_stats().grad_sq_small());
    s.BindDouble(8, r.grad_stats().grad_sq_big());
    s.BindInt(9, r.grad_stats().b_small());
    s.BindInt(10, r.grad_stats().b_big());
  }
  absl::Status status = s.Execute();
  if (absl::IsAlreadyExists(status)) {
    // ON CONFLICT DO NOTHING covers the primary key; this is a foreign key.
    return absl::NotFoundError(absl::StrCat("run id ", run_id, " no longer exists (job deleted)"));
  }
  SURGE_RETURN_IF_ERROR(status);
  return db_->Changes() == 1;
}

absl::Status SqliteStore::BumpRun(int64_t run_id, int64_t added, int64_t max_step,
                                  int64_t now_us) {
  Statement& s = *bump_run_;
  s.Reset();
  s.BindInt(1, added);
  s.BindInt(2, max_step);
  s.BindInt(3, now_us);
  s.BindInt(4, run_id);
  return s.Execute();
}

absl::StatusOr<RecordPage> SqliteStore::ListRecords(int64_t job_id, std::optional<int64_t> run_id,
                                                    const RecordCursor& after, int limit) {
  // The runs to visit, in id (creation) order, starting at the cursor's run.
  std::vector<std::pair<int64_t, std::string>> runs;
  job_runs_after_->Reset();
  job_runs_after_->BindInt(1, job_id);
  job_runs_after_->BindInt(2, run_id ? *run_id : after.run_id);
  while (true) {
    SURGE_ASSIGN_OR_RETURN(bool row, job_runs_after_->Step());
    if (!row) break;
    int64_t id = job_runs_after_->ColumnInt(0);
    if (run_id && id != *run_id) break;
    runs.emplace_back(id, job_runs_after_->ColumnText(1));
  }
  job_runs_after_->Reset();

  // Reads up to limit + 1 records: the extra one only tells whether another
  // page exists (so a job with exactly k * limit records ends without an
  // empty last page); it is dropped.
  const int want = limit + 1;
  int64_t limit_run_id = 0;  // run of the limit-th record
  RecordPage page;
  page.records.reserve(static_cast<size_t>(want));
  for (const auto& [id, name] : runs) {
    int remaining = want - static_cast<int>(page.records.size());
    if (remaining <= 0) break;
    Statement& s = *list_records_;
    s.Reset();
    s.BindInt(1, id);
    s.BindInt(2, id == after.run_id ? after.step : -1);
    s.BindInt(3, remaining);
    while (true) {
      SURGE_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      surge::v1::Record& r = page.records.emplace_back();
      r.set_run(name);
      r.set_step(s.ColumnInt(0));
      r.set_examples(s.ColumnInt(1));
      r.set_lr(s.ColumnDouble(2));
      r.set_loss(s.ColumnDouble(3));
      if (auto eval = OptDouble(s, 4)) r.set_eval_loss(*eval);
      if (!s.ColumnIsNull(5)) {
        auto* g = r.mutable_grad_stats();
        g->set_grad_sq_small(s.ColumnDouble(5));
        g->set_grad_sq_big(s.ColumnDouble(6));
        g->set_b_small(s.ColumnInt(7));
        g->set_b_big(s.ColumnInt(8));
      }
      if (static_cast<int>(page.records.size()) == limit) limit_run_id = id;
    }
    s.Reset();
  }
  if (static_cast<int>(page.records.size()) > limit) {
    page.records.pop_back();
    page.next = RecordCursor{limit_run_id, page.records.back().step()};
  }
  return page;
}

// ---------------------------------------------------------------- write groups

namespace {

// Per run: records added and the highest step, to keep runs' counters.
using RunCounts = absl::flat_hash_map<int64_t, std::pair<int64_t, int64_t>>;

}  // namespace

GroupResult SqliteStore::WriteGroup(absl::Span<const RecordBatch> batches, int64_t now_us,
                                    const BeforeCommit& before_commit) {
  // One batch inside its savepoint: inserts, duplicates checked against the
  // stored values, then the runs' counters.
  auto write_batch = [&](const RecordBatch& batch) -> absl::StatusOr<BatchResult> {
    RunCounts per_run;
    BatchResult result;
    const auto& records = batch.request->records();
    for (int i = 0; i < records.size(); ++i) {
      const int64_t run_id = (*batch.run_ids)[static_cast<size_t>(i)];
      SURGE_ASSIGN_OR_RETURN(bool inserted, InsertRecord(run_id, records[i]));
      if (!inserted) {
        // An identical re-send (after a reconnect) is a silent duplicate;
        // other values for a stored (run, step) are refused, not dropped.
        SURGE_ASSIGN_OR_RETURN(std::optional<surge::v1::Record> stored,
                               GetRecord(run_id, records[i].step()));
        if (stored.has_value()) {
          if (std::string diff = RecordDifference(*stored, records[i]); !diff.empty()) {
            return ConflictingResend(i, records[i], diff);
          }
        }
        ++result.duplicate;
        continue;
      }
      ++result.stored;
      auto& [added, max_step] = per_run.try_emplace(run_id, 0, -1).first->second;
      ++added;
      max_step = std::max(max_step, records[i].step());
    }
    for (const auto& [run_id, counts] : per_run) {
      SURGE_RETURN_IF_ERROR(BumpRun(run_id, counts.first, counts.second, now_us));
    }
    return result;
  };

  GroupSteps steps;
  steps.begin = [this] { return Begin(); };
  steps.savepoint = [this] { return Savepoint(); };
  steps.write_batch = write_batch;
  steps.release_savepoint = [this] { return ReleaseSavepoint(); };
  steps.rollback_to_savepoint = [this] { return RollbackToSavepoint(); };
  steps.commit = [this] { return Commit(); };
  steps.rollback = [this] { return Rollback(); };
  return RunWriteGroup(batches, steps, before_commit);
}

}  // namespace surge::store
