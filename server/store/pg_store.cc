// Implementation of PgStore: the connection (session settings, error
// mapping, reconnection, prepared statements) and every query; the
// migrations are in pg_schema.cc.
#include "server/store/pg_store.h"

#include <libpq-fe.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
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
    "  GREATEST(j.update_time_us, COALESCE((SELECT MAX(update_time_us) FROM runs "
    "    WHERE job_id = j.id), 0)), "
    "  (SELECT COUNT(*) FROM runs WHERE job_id = j.id), "
    "  COALESCE((SELECT SUM(record_count) FROM runs WHERE job_id = j.id), 0), "
    "  j.target_losses, j.k_steps, j.tenant "
    "FROM jobs j ";

// One batch's records from column arrays ($1..$10): first as new records (a
// unique violation sends the batch to kInsertResent) ...
#define SURGE_INSERT_RECORDS_FROM_ARRAYS                                                   \
  "INSERT INTO records (run_id, step, examples, lr, loss, eval_loss, grad_sq_small, "      \
  "  grad_sq_big, b_small, b_big) "                                                        \
  "SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::float8[], "          \
  "  $5::float8[], $6::float8[], $7::float8[], $8::float8[], $9::bigint[], $10::bigint[]) "
constexpr PgPrepared kInsertNew = {"insert_new", SURGE_INSERT_RECORDS_FROM_ARRAYS};

// ... then, for a batch with re-sent records, skipping the stored keys and
// returning the new ones.
constexpr PgPrepared kInsertResent = {
    "insert_resent", SURGE_INSERT_RECORDS_FROM_ARRAYS
    "ON CONFLICT (run_id, step) DO NOTHING RETURNING run_id, step"};
#undef SURGE_INSERT_RECORDS_FROM_ARRAYS

// The runs' counters of one batch: ids, records added, highest step; $4:
// now. Returns the ids it found (a run deleted meanwhile is missing).
constexpr PgPrepared kBumpRuns = {
    "bump_runs",
    "UPDATE runs SET record_count = runs.record_count + c.added, "
    "  last_step = GREATEST(runs.last_step, c.max_step), update_time_us = $4 "
    "FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS c(id, added, max_step) "
    "WHERE runs.id = c.id RETURNING runs.id"};

// The stored values of (run_id, step) keys given as two arrays.
constexpr PgPrepared kStoredRecords = {
    "stored_records",
    "SELECT r.run_id, r.step, r.examples, r.lr, r.loss, r.eval_loss, r.grad_sq_small, "
    "  r.grad_sq_big, r.b_small, r.b_big "
    "FROM records r JOIN unnest($1::bigint[], $2::bigint[]) AS k(run_id, step) "
    "  ON r.run_id = k.run_id AND r.step = k.step"};

constexpr PgPrepared kLookupRun = {
    "lookup_run",
    "SELECT r.job_id, r.id, r.batch_size FROM runs r JOIN jobs j ON j.id = r.job_id "
    "WHERE j.name = $1 AND r.name = $2"};

constexpr PgPrepared kJobId = {"job_id", "SELECT id FROM jobs WHERE name = $1"};

constexpr PgPrepared kGetRecord = {
    "get_record",
    "SELECT examples, lr, loss, eval_loss, grad_sq_small, grad_sq_big, b_small, b_big "
    "FROM records WHERE run_id = $1 AND step = $2"};

constexpr PgPrepared kLastRecord = {
    "last_record",
    "SELECT step, examples, lr, loss, eval_loss FROM records WHERE run_id = $1 "
    "ORDER BY step DESC LIMIT 1"};

constexpr PgPrepared kRunColumnsStmt = {
    "run_columns",
    "SELECT step, examples, lr, loss, eval_loss FROM records WHERE run_id = $1 ORDER BY step"};

constexpr PgPrepared kJobRunsAfter = {
    "job_runs_after", "SELECT id, name FROM runs WHERE job_id = $1 AND id >= $2 ORDER BY id"};

constexpr PgPrepared kListRecords = {
    "list_records",
    "SELECT step, examples, lr, loss, eval_loss, grad_sq_small, grad_sq_big, b_small, b_big "
    "FROM records WHERE run_id = $1 AND step > $2 ORDER BY step LIMIT $3"};

// --- numbers: text parameters exact both ways; arrays and the results of
// prepared statements in binary (no float parsing on either side)

void AppendInt(std::string* out, int64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, end);
}

// The shortest text that reads back as `v` (PostgreSQL's spelling of the
// special values).
void AppendDouble(std::string* out, double v) {
  if (std::isnan(v)) {
    out->append("NaN");
  } else if (std::isinf(v)) {
    out->append(v > 0 ? "Infinity" : "-Infinity");
  } else {
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
    out->append(buf, end);
  }
}

void AppendBig32(std::string* out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<char>(v >> shift));
}
void AppendBig64(std::string* out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out->push_back(static_cast<char>(v >> shift));
}
uint64_t ReadBig(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

constexpr Oid kInt8Oid = 20;
constexpr Oid kFloat4Oid = 700;
constexpr Oid kFloat8Oid = 701;

// Cells of text or binary results (binary: big-endian, by the column's size
// and type).
int64_t CellInt(const PGresult* r, int row, int col) {
  const char* v = PQgetvalue(r, row, col);
  if (PQfformat(r, col) == 0) return std::strtoll(v, nullptr, 10);
  const int len = PQgetlength(r, row, col);
  const uint64_t raw = ReadBig(v, len);
  switch (len) {
    case 2: return static_cast<int16_t>(raw);
    case 4: return static_cast<int32_t>(raw);
    default: return static_cast<int64_t>(raw);
  }
}
double CellDouble(const PGresult* r, int row, int col) {
  const char* v = PQgetvalue(r, row, col);
  if (PQfformat(r, col) == 0) return std::strtod(v, nullptr);
  const Oid type = PQftype(r, col);
  if (type == kFloat8Oid) {
    uint64_t bits = ReadBig(v, 8);
    double d;
    std::memcpy(&d, &bits, sizeof(d));
    return d;
  }
  if (type == kFloat4Oid) {
    uint32_t bits = static_cast<uint32_t>(ReadBig(v, 4));
    float f;
    std::memcpy(&f, &bits, sizeof(f));
    return f;
  }
  return static_cast<double>(CellInt(r, row, col));
}
std::string CellText(const PGresult* r, int row, int col) {
  return std::string(PQgetvalue(r, row, col), static_cast<size_t>(PQgetlength(r, row, col)));
}
bool CellNull(const PGresult* r, int row, int col) { return PQgetisnull(r, row, col) != 0; }
std::optional<double> CellOptDouble(const PGresult* r, int row, int col) {
  if (CellNull(r, row, col)) return std::nullopt;
  return CellDouble(r, row, col);
}

// A one-dimensional bigint[] or float8[] parameter in PostgreSQL's binary
// array format (array_recv): ndim, has-nulls flag, element type, size,
// lower bound, then per element its length (-1: NULL) and big-endian value.
class NumberArray {
 public:
  NumberArray(Oid element, size_t n) {
    data_.reserve(20 + n * 12);
    AppendBig32(&data_, 1);  // ndim
    AppendBig32(&data_, 0);  // has nulls (set by Null)
    AppendBig32(&data_, element);
    AppendBig32(&data_, 0);  // size (set by Finish)
    AppendBig32(&data_, 1);  // lower bound
  }
  void Int(int64_t v) {
    AppendBig32(&data_, 8);
    AppendBig64(&data_, static_cast<uint64_t>(v));
    ++size_;
  }
  void Double(double v) {
    uint64_t bits;
    std::memcpy(&bits, &v, sizeof(bits));
    AppendBig32(&data_, 8);
    AppendBig64(&data_, bits);
    ++size_;
  }
  void Null() {
    AppendBig32(&data_, 0xffffffffu);
    data_[7] = 1;
    ++size_;
  }
  std::string Finish() && {
    for (int i = 0; i < 4; ++i) data_[12 + i] = static_cast<char>(size_ >> (24 - 8 * i));
    return std::move(data_);
  }

 private:
  std::string data_;
  uint32_t size_ = 0;
};

// A record from columns examples, lr, loss, eval_loss, grad_sq_small,
// grad_sq_big, b_small, b_big starting at `col` (as SqliteStore::GetRecord).
void ReadRecordValues(const PGresult* r, int row, int col, surge::v1::Record* out) {
  out->set_examples(CellInt(r, row, col));
  out->set_lr(CellDouble(r, row, col + 1));
  out->set_loss(CellDouble(r, row, col + 2));
  if (auto eval = CellOptDouble(r, row, col + 3)) out->set_eval_loss(*eval);
  if (!CellNull(r, row, col + 4)) {
    surge::v1::GradStats* g = out->mutable_grad_stats();
    g->set_grad_sq_small(CellDouble(r, row, col + 4));
    if (auto big = CellOptDouble(r, row, col + 5)) g->set_grad_sq_big(*big);
    g->set_b_small(CellInt(r, row, col + 6));
    g->set_b_big(CellInt(r, row, col + 7));
  }
}

std::string TrimMessage(const char* message) {
  return std::string(absl::StripTrailingAsciiWhitespace(message ? message : ""));
}

}  // namespace

// ---------------------------------------------------------------- errors

absl::Status PgStatus(absl::string_view sqlstate, absl::string_view message) {
  std::string msg(message);
  if (sqlstate.size() != 5) {
    return absl::UnavailableError(
        absl::StrCat(msg, " (the connection to PostgreSQL failed; retry)"));
  }
  absl::string_view cls = sqlstate.substr(0, 2);
  if (sqlstate == "23505") return absl::AlreadyExistsError(msg);
  if (sqlstate == "23503") return absl::NotFoundError(msg);
  if (sqlstate == "22021" || sqlstate == "22P05") {
    // Text the database cannot hold (not valid in its encoding).
    return absl::InvalidArgumentError(msg);
  }
  if (sqlstate == "XX001" || sqlstate == "XX002") {
    return absl::DataLossError(absl::StrCat(
        msg, " (PostgreSQL found damaged data: restore the database from a backup)"));
  }
  if (sqlstate == "53100") {
    return absl::UnavailableError(absl::StrCat(
        msg, " (PostgreSQL's disk is full; the write was not stored; retry once space is freed)"));
  }
  if (cls == "08" || cls == "53" || sqlstate == "57P01" || sqlstate == "57P02" ||
      sqlstate == "57P03" || sqlstate == "57014" || sqlstate == "40001" ||
      sqlstate == "40P01" || sqlstate == "55P03" || sqlstate == "25006" ||
      sqlstate == "58030") {
    return absl::UnavailableError(absl::StrCat(msg, " (retry)"));
  }
  return absl::InternalError(msg);
}

absl::Status PgStore::ErrorOf(const PGresult* result, absl::string_view what) {
  if (result == nullptr || PQstatus(conn_) == CONNECTION_BAD) {
    std::string why = result ? TrimMessage(PQresultErrorMessage(result)) : "";
    if (why.empty()) why = TrimMessage(PQerrorMessage(conn_));
    return absl::UnavailableError(absl::StrCat(
        what, ": the connection to PostgreSQL broke: ", why,
        txn_depth_ > 0 ? " (the transaction was not committed; retry)" : " (retry)"));
  }
  const char* sqlstate = PQresultErrorField(result, PG_DIAG_SQLSTATE);
  const char* primary = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
  const char* detail = PQresultErrorField(result, PG_DIAG_MESSAGE_DETAIL);
  std::string message =
      absl::StrCat(what, ": ", primary ? primary : TrimMessage(PQresultErrorMessage(result)));
  if (detail) absl::StrAppend(&message, " (", detail, ")");
  if (sqlstate) absl::StrAppend(&message, " [SQLSTATE ", sqlstate, "]");
  return PgStatus(sqlstate ? sqlstate : "", message);
}

void PgStore::ResultDeleter::operator()(PGresult* r) const { PQclear(r); }

// ---------------------------------------------------------------- params

PgParams& PgParams::Int(int64_t v) {
  std::string& s = values_.emplace_back();
  AppendInt(&s, v);
  null_.push_back(0);
  formats_.push_back(0);
  return *this;
}

PgParams& PgParams::Double(double v) {
  std::string& s = values_.emplace_back();
  AppendDouble(&s, v);
  null_.push_back(0);
  formats_.push_back(0);
  return *this;
}

PgParams& PgParams::Text(std::string v) {
  values_.push_back(std::move(v));
  null_.push_back(0);
  formats_.push_back(0);
  return *this;
}

PgParams& PgParams::Bytes(std::string v) {
  values_.push_back(std::move(v));
  null_.push_back(0);
  formats_.push_back(1);
  return *this;
}

PgParams& PgParams::Null() {
  values_.emplace_back();
  null_.push_back(1);
  formats_.push_back(0);
  return *this;
}

// ---------------------------------------------------------------- connection

absl::StatusOr<std::unique_ptr<PgStore>> PgStore::Open(const std::string& url,
                                                       const StoreOptions& options) {
  // Keywords before dbname are defaults: the URL's own values win.
  const char* keys[] = {"connect_timeout", "application_name", "dbname", nullptr};
  const char* values[] = {"10", "surge", url.c_str(), nullptr};
  PGconn* conn = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (conn == nullptr) return absl::ResourceExhaustedError("libpq: out of memory");
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string why = TrimMessage(PQerrorMessage(conn));
    PQfinish(conn);
    return absl::UnavailableError(absl::StrCat("cannot connect to PostgreSQL: ", why));
  }
  std::unique_ptr<PgStore> store(new PgStore(conn, options));
  PQsetNoticeProcessor(conn, [](void*, const char*) {}, nullptr);
  SURGE_RETURN_IF_ERROR(store->ConfigureSession());
  if (options.migrate) SURGE_RETURN_IF_ERROR(store->Migrate());
  return store;
}

PgStore::~PgStore() { PQfinish(conn_); }

int PgStore::backend_pid() const { return PQbackendPID(conn_); }

absl::Status PgStore::ConfigureSession() {
  // extra_float_digits > 0: doubles come back exactly (shortest form).
  std::string settings = absl::StrCat(
      "SET synchronous_commit = ",
      options_.synchronous == StoreOptions::Synchronous::kNormal ? "off" : "on",
      "; SET lock_timeout = ", std::max(0, options_.busy_timeout_ms),
      "; SET extra_float_digits = 3; SET client_min_messages = warning");
  return Command(settings.c_str());
}

absl::Status PgStore::EnsureConnected() {
  if (PQstatus(conn_) == CONNECTION_OK) return absl::OkStatus();
  if (txn_depth_ > 0) {
    return absl::UnavailableError(
        "the connection to PostgreSQL broke inside a transaction (not committed; retry)");
  }
  PQreset(conn_);
  if (PQstatus(conn_) != CONNECTION_OK) {
    return absl::UnavailableError(absl::StrCat("cannot reconnect to PostgreSQL: ",
                                               TrimMessage(PQerrorMessage(conn_)), " (retry)"));
  }
  ++reconnects_;
  prepared_.clear();
  return ConfigureSession();
}

absl::Status PgStore::Command(const char* sql, Retry retry) {
  for (int attempt = 0;; ++attempt) {
    SURGE_RETURN_IF_ERROR(EnsureConnected());
    Result r(PQexec(conn_, sql));
    ExecStatusType status = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return absl::OkStatus();
    if (retry == Retry::kOnce && attempt == 0 && txn_depth_ == 0 &&
        PQstatus(conn_) == CONNECTION_BAD) {
      continue;
    }
    absl::string_view what(sql);
    return ErrorOf(r.get(), what.substr(0, std::min<size_t>(what.size(), 40)));
  }
}

absl::Status PgStore::Commit() {
  if (PQstatus(conn_) != CONNECTION_OK) return EnsureConnected();
  Result r(PQexec(conn_, "COMMIT"));
  if (!r || PQresultStatus(r.get()) != PGRES_COMMAND_OK) return ErrorOf(r.get(), "COMMIT");
  // COMMIT of a transaction that had failed answers ROLLBACK.
  if (std::strcmp(PQcmdStatus(r.get()), "COMMIT") != 0) {
    return absl::InternalError(absl::StrCat("COMMIT: the transaction had failed and was ",
                                            "rolled back (", PQcmdStatus(r.get()), ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<PgStore::Result> PgStore::Send(absl::string_view what, const PgPrepared* stmt,
                                              const std::string* sql, const PgParams& params,
                                              int result_format) {
  SURGE_RETURN_IF_ERROR(EnsureConnected());
  const int n = params.size();
  std::vector<const char*> values(static_cast<size_t>(n));
  std::vector<int> lengths(static_cast<size_t>(n));
  for (size_t i = 0; i < values.size(); ++i) {
    const std::string& value = params.values_[i];
    values[i] = params.null_[i] ? nullptr : value.data();
    lengths[i] = static_cast<int>(value.size());
    // A text parameter ends at its first NUL (libpq reads a C string), and
    // PostgreSQL's text cannot hold one: refuse rather than cut it.
    if (params.formats_[i] == 0 && value.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": parameter $", i + 1,
                       " has a NUL character, which PostgreSQL text cannot hold"));
    }
  }
  Result r;
  if (stmt != nullptr) {
    if (!prepared_.contains(stmt->name)) {
      Result prepared(PQprepare(conn_, stmt->name, stmt->sql, n, nullptr));
      if (!prepared || PQresultStatus(prepared.get()) != PGRES_COMMAND_OK) {
        return ErrorOf(prepared.get(), absl::StrCat("prepare ", stmt->name));
      }
      prepared_.insert(stmt->name);
    }
    r.reset(PQexecPrepared(conn_, stmt->name, n, values.data(), lengths.data(),
                           params.formats_.data(), result_format));
  } else {
    r.reset(PQexecParams(conn_, sql->c_str(), n, nullptr, values.data(), lengths.data(),
                         params.formats_.data(), result_format));
  }
  ExecStatusType status = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) return ErrorOf(r.get(), what);
  return r;
}

absl::StatusOr<PgStore::Result> PgStore::Query(absl::string_view what, const std::string& sql,
                                               const PgParams& params, Retry retry,
                                               int result_format) {
  absl::StatusOr<Result> r = Send(what, nullptr, &sql, params, result_format);
  if (!r.ok() && retry == Retry::kOnce && txn_depth_ == 0 &&
      PQstatus(conn_) == CONNECTION_BAD) {
    r = Send(what, nullptr, &sql, params, result_format);
  }
  return r;
}

absl::StatusOr<PgStore::Result> PgStore::Execute(const PgPrepared& stmt, const PgParams& params,
                                             Retry retry) {
  // Prepared statements return binary results (read by the Cell helpers).
  absl::StatusOr<Result> r = Send(stmt.name, &stmt, nullptr, params, 1);
  if (!r.ok() && retry == Retry::kOnce && txn_depth_ == 0 &&
      PQstatus(conn_) == CONNECTION_BAD) {
    r = Send(stmt.name, &stmt, nullptr, params, 1);
  }
  return r;
}

absl::StatusOr<int> PgStore::SchemaVersion() {
  SURGE_ASSIGN_OR_RETURN(Result r, Query("schema version",
                                         "SELECT COALESCE(MAX(version), 0) FROM schema_version",
                                         PgParams()));
  return static_cast<int>(CellInt(r.get(), 0, 0));
}

// ---------------------------------------------------------------- jobs

absl::StatusOr<std::vector<surge::v1::Job>> PgStore::JobsFromResult(const PGresult* r) {
  std::vector<surge::v1::Job> jobs;
  for (int row = 0; row < PQntuples(r); ++row) {
    surge::v1::Job& job = jobs.emplace_back();
    job.set_name(CellText(r, row, 1));
    job.set_batch_unit(static_cast<surge::v1::BatchUnit>(CellInt(r, row, 2)));
    job.set_description(CellText(r, row, 3));
    job.set_create_time_us(CellInt(r, row, 4));
    job.set_update_time_us(CellInt(r, row, 5));
    job.set_run_count(CellInt(r, row, 6));
    job.set_record_count(CellInt(r, row, 7));
    for (absl::string_view t : absl::StrSplit(CellText(r, row, 8), ',', absl::SkipEmpty())) {
      double v = 0;
      if (absl::SimpleAtod(t, &v)) job.add_target_losses(v);
    }
    job.set_k_steps(static_cast<int32_t>(CellInt(r, row, 9)));
    job.set_tenant(CellText(r, row, 10));
  }
  return jobs;
}

absl::StatusOr<surge::v1::Job> PgStore::CreateJob(const surge::v1::Job& job, int64_t now_us) {
  std::vector<std::string> targets;
  for (double t : job.target_losses()) targets.push_back(absl::StrFormat("%.17g", t));
  PgParams params;
  params.Text(job.name())
      .Int(job.batch_unit())
      .Text(job.description())
      .Int(now_us)
      .Int(now_us)
      .Text(absl::StrJoin(targets, ","))
      .Int(job.k_steps())
      .Text(job.tenant().empty() ? std::string("default") : job.tenant());
  // In a transaction of its own: a broken connection is found by the BEGIN,
  // which is safe to send again.
  absl::Status inserted = Transaction([&]() -> absl::Status {
    return Query("create job",
                 "INSERT INTO jobs (name, batch_unit, description, create_time_us, "
                 "update_time_us, target_losses, k_steps, tenant) "
                 "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                 params, Retry::kNo)
        .status();
  });
  if (absl::IsAlreadyExists(inserted)) {
    return absl::AlreadyExistsError(absl::StrCat("job '", job.name(), "' already exists"));
  }
  SURGE_RETURN_IF_ERROR(inserted);
  return GetJob(job.name());
}

absl::StatusOr<surge::v1::Job> PgStore::GetJob(const std::string& name) {
  SURGE_ASSIGN_OR_RETURN(
      Result r, Query("get job", absl::StrCat(kJobSelect, "WHERE j.name = $1"),
                      PgParams().Text(name)));
  SURGE_ASSIGN_OR_RETURN(std::vector<surge::v1::Job> jobs, JobsFromResult(r.get()));
  if (jobs.empty()) return absl::NotFoundError(absl::StrCat("job '", name, "' not found"));
  return std::move(jobs.front());
}

absl::StatusOr<std::vector<surge::v1::Job>> PgStore::ListJobsPage(const std::string& after_name,
                                                                 int limit,
                                                                 const std::string& tenant) {
  SURGE_ASSIGN_OR_RETURN(
      Result r, Query("list jobs",
                      absl::StrCat(kJobSelect,
                                   "WHERE j.name > $1 AND ($3 = '' OR j.tenant = $3) "
                                   "ORDER BY j.name LIMIT $2"),
                      PgParams().Text(after_name).Int(std::max(0, limit)).Text(tenant)));
  return JobsFromResult(r.get());
}

absl::StatusOr<int64_t> PgStore::JobId(const std::string& name) {
  SURGE_ASSIGN_OR_RETURN(Result r, Execute(kJobId, PgParams().Text(name)));
  if (PQntuples(r.get()) == 0) return absl::NotFoundError(absl::StrCat("job '", name, "' not found"));
  return CellInt(r.get(), 0, 0);
}

absl::StatusOr<DeleteCounts> PgStore::DeleteJob(const std::string& name) {
  return Transaction([&]() -> absl::StatusOr<DeleteCounts> {
    SURGE_ASSIGN_OR_RETURN(int64_t job_id, JobId(name));
    // The job's row locked: no run can be added to it meanwhile (an insert
    // into runs checks its foreign key with a key-share lock on it).
    SURGE_ASSIGN_OR_RETURN(Result locked, Query("lock job",
                                                "SELECT id FROM jobs WHERE id = $1 FOR UPDATE",
                                                PgParams().Int(job_id), Retry::kNo));
    if (PQntuples(locked.get()) == 0) {
      return absl::NotFoundError(absl::StrCat("job '", name, "' not found"));
    }
    // The runs' rows, then their records (as DeleteRun), then the job with
    // its optima and fits (ON DELETE CASCADE).
    SURGE_ASSIGN_OR_RETURN(
        Result runs, Query("delete runs", "DELETE FROM runs WHERE job_id = $1 RETURNING id, "
                                          "record_count",
                           PgParams().Int(job_id), Retry::kNo));
    DeleteCounts counts;
    NumberArray ids(kInt8Oid, static_cast<size_t>(PQntuples(runs.get())));
    for (int row = 0; row < PQntuples(runs.get()); ++row) {
      ids.Int(CellInt(runs.get(), row, 0));
      ++counts.runs;
      counts.records += CellInt(runs.get(), row, 1);
    }
    SURGE_RETURN_IF_ERROR(Query("delete job records",
                                "DELETE FROM records WHERE run_id = ANY($1::bigint[])",
                                PgParams().Bytes(std::move(ids).Finish()), Retry::kNo)
                              .status());
    SURGE_RETURN_IF_ERROR(
        Query("delete job", "DELETE FROM jobs WHERE id = $1", PgParams().Int(job_id), Retry::kNo)
            .status());
    return counts;
  });
}

// ---------------------------------------------------------------- runs

absl::StatusOr<std::vector<surge::v1::Run>> PgStore::RunsFromResult(const PGresult* r,
                                                                   const std::string& job,
                                                                   std::vector<int64_t>* ids) {
  std::vector<surge::v1::Run> runs;
  NumberArray id_array(kInt8Oid, static_cast<size_t>(PQntuples(r)));
  absl::flat_hash_map<int64_t, size_t> index;
  for (int row = 0; row < PQntuples(r); ++row) {
    surge::v1::Run& run = runs.emplace_back();
    const int64_t id = CellInt(r, row, 0);
    index[id] = runs.size() - 1;
    id_array.Int(id);
    if (ids != nullptr) ids->push_back(id);
    run.set_job(job);
    run.set_name(CellText(r, row, 1));
    run.set_batch_size(CellInt(r, row, 2));
    run.set_protocol(static_cast<surge::v1::Protocol>(CellInt(r, row, 3)));
    if (!CellNull(r, row, 4)) {
      auto* opt = run.mutable_optimizer();
      opt->set_name(CellText(r, row, 4));
      opt->set_beta1(CellDouble(r, row, 5));
      opt->set_beta2(CellDouble(r, row, 6));
      opt->set_eps(CellDouble(r, row, 7));
      opt->set_weight_decay(CellDouble(r, row, 8));
    }
    run.set_base_lr(CellDouble(r, row, 9));
    if (!CellNull(r, row, 10)) {
      auto* parent = run.mutable_parent();
      parent->set_checkpoint_step(CellInt(r, row, 10));
      parent->set_loss(CellDouble(r, row, 11));
      parent->set_base_run(CellText(r, row, 12));
    }
    if (auto target = CellOptDouble(r, row, 13)) run.set_target_loss(*target);
    run.set_create_time_us(CellInt(r, row, 14));
    run.set_record_count(CellInt(r, row, 15));
    run.set_last_step(CellInt(r, row, 16));
  }
  if (runs.empty()) return runs;
  // The labels of all these runs in one query.
  SURGE_ASSIGN_OR_RETURN(
      Result labels, Query("run labels",
                           "SELECT run_id, key, value FROM run_labels WHERE run_id = ANY($1::bigint[])",
                           PgParams().Bytes(std::move(id_array).Finish())));
  for (int row = 0; row < PQntuples(labels.get()); ++row) {
    auto it = index.find(CellInt(labels.get(), row, 0));
    if (it == index.end()) continue;
    (*runs[it->second].mutable_labels())[CellText(labels.get(), row, 1)] =
        CellText(labels.get(), row, 2);
  }
  return runs;
}

absl::StatusOr<std::vector<surge::v1::Run>> PgStore::ReadRuns(
    int64_t job_id, const std::string& job, const std::optional<std::string>& name,
    std::vector<int64_t>* ids) {
  PgParams params;
  params.Int(job_id);
  if (name) params.Text(*name);
  SURGE_ASSIGN_OR_RETURN(
      Result r, Query("list runs",
                      absl::StrCat("SELECT ", kRunColumns, " FROM runs WHERE job_id = $1",
                                   name ? " AND name = $2" : "", " ORDER BY batch_size, name"),
                      params));
  return RunsFromResult(r.get(), job, ids);
}

absl::StatusOr<std::vector<surge::v1::Run>> PgStore::ListRunsPage(
    const std::string& job, const std::optional<std::pair<int64_t, std::string>>& after,
    int limit) {
  SURGE_ASSIGN_OR_RETURN(int64_t job_id, JobId(job));
  PgParams params;
  params.Int(job_id).Int(std::max(0, limit));
  if (after) params.Int(after->first).Text(after->second);
  SURGE_ASSIGN_OR_RETURN(
      Result r, Query("list runs",
                      absl::StrCat("SELECT ", kRunColumns, " FROM runs WHERE job_id = $1",
                                   after ? " AND (batch_size, name) > ($3, $4)" : "",
                                   " ORDER BY batch_size, name LIMIT $2"),
                      params));
  return RunsFromResult(r.get(), job, nullptr);
}

absl::StatusOr<surge::v1::Run> PgStore::CreateRun(const std::string& job,
                                                  const surge::v1::Run& run, int64_t now_us) {
  // The same name again: the stored run when batch size and protocol agree.
  auto same_or_conflict = [&](const surge::v1::Run& old) -> absl::StatusOr<surge::v1::Run> {
    if (old.batch_size() != run.batch_size() || old.protocol() != run.protocol()) {
      return absl::AlreadyExistsError(absl::StrCat(
          "run '", run.name(), "' of job '", job, "' exists with batch_size ", old.batch_size(),
          " and protocol ", surge::v1::Protocol_Name(old.protocol()), "; asked for batch_size ",
          run.batch_size(), " and protocol ", surge::v1::Protocol_Name(run.protocol()),
          "; use another run name"));
    }
    return old;
  };
  return Transaction([&]() -> absl::StatusOr<surge::v1::Run> {
    SURGE_ASSIGN_OR_RETURN(int64_t job_id, JobId(job));
    SURGE_ASSIGN_OR_RETURN(auto existing, ReadRuns(job_id, job, run.name()));
    if (!existing.empty()) return same_or_conflict(existing.front());
    PgParams params;
    params.Int(job_id).Text(run.name()).Int(run.batch_size()).Int(run.protocol());
    if (run.has_optimizer()) {
      params.Text(run.optimizer().name())
          .Double(run.optimizer().beta1())
          .Double(run.optimizer().beta2())
          .Double(run.optimizer().eps())
          .Double(run.optimizer().weight_decay());
    } else {
      params.Null().Null().Null().Null().Null();
    }
    params.Double(run.base_lr());
    if (run.has_parent()) {
      params.Int(run.parent().checkpoint_step())
          .Double(run.parent().loss())
          .Text(run.parent().base_run());
    } else {
      params.Null().Null().Null();
    }
    params.OptDouble(run.has_target_loss() ? std::optional<double>(run.target_loss())
                                           : std::nullopt);
    params.Int(now_us).Int(now_us);
    absl::StatusOr<Result> inserted =
        Query("create run",
              "INSERT INTO runs (job_id, name, batch_size, protocol, optimizer_name, beta1, "
              "beta2, adam_eps, weight_decay, base_lr, parent_step, parent_loss, "
              "parent_base_run, target_loss, create_time_us, update_time_us) "
              "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) "
              "ON CONFLICT (job_id, name) DO NOTHING RETURNING id",
              params, Retry::kNo);
    if (absl::IsNotFound(inserted.status())) {
      // Its foreign key: another replica deleted the job meanwhile.
      return absl::NotFoundError(absl::StrCat("job '", job, "' not found"));
    }
    SURGE_RETURN_IF_ERROR(inserted.status());
    if (PQntuples(inserted->get()) == 0) {
      // Another connection (replica) created it since the read above.
      SURGE_ASSIGN_OR_RETURN(auto raced, ReadRuns(job_id, job, run.name()));
      if (raced.empty()) return absl::InternalError("run vanished while being created");
      return same_or_conflict(raced.front());
    }
    const int64_t run_id = CellInt(inserted->get(), 0, 0);
    for (const auto& [key, value] : run.labels()) {
      SURGE_RETURN_IF_ERROR(
          Query("create run label", "INSERT INTO run_labels (run_id, key, value) VALUES ($1, $2, $3)",
                PgParams().Int(run_id).Text(key).Text(value), Retry::kNo)
              .status());
    }
    SURGE_ASSIGN_OR_RETURN(auto created, ReadRuns(job_id, job, run.name()));
    if (created.empty()) return absl::InternalError("created run not found");
    return std::move(created.front());
  });
}

absl::StatusOr<std::vector<surge::v1::Run>> PgStore::ListRuns(const std::string& job) {
  SURGE_ASSIGN_OR_RETURN(int64_t job_id, JobId(job));
  return ReadRuns(job_id, job, std::nullopt);
}

absl::StatusOr<RunKey> PgStore::LookupRun(const std::string& job, const std::string& run) {
  SURGE_ASSIGN_OR_RETURN(Result r, Execute(kLookupRun, PgParams().Text(job).Text(run)));
  if (PQntuples(r.get()) == 0) {
    SURGE_RETURN_IF_ERROR(JobId(job).status());
    return absl::NotFoundError(
        absl::StrCat("run '", run, "' not found in job '", job, "'; create it with CreateRun"));
  }
  return RunKey{CellInt(r.get(), 0, 0), CellInt(r.get(), 0, 1), CellInt(r.get(), 0, 2)};
}

absl::StatusOr<int64_t> PgStore::DeleteRun(const std::string& job, const std::string& run) {
  return Transaction([&]() -> absl::StatusOr<int64_t> {
    SURGE_ASSIGN_OR_RETURN(RunKey key, LookupRun(job, run));
    // The run's row first: it waits for a writer that holds it (bumping its
    // counters), so the records deleted next include that writer's.
    SURGE_ASSIGN_OR_RETURN(Result r, Query("delete run",
                                           "DELETE FROM runs WHERE id = $1 RETURNING record_count",
                                           PgParams().Int(key.run_id), Retry::kNo));
    if (PQntuples(r.get()) == 0) {
      return absl::NotFoundError(absl::StrCat("run '", run, "' not found in job '", job, "'"));
    }
    SURGE_RETURN_IF_ERROR(Query("delete run records", "DELETE FROM records WHERE run_id = $1",
                                PgParams().Int(key.run_id), Retry::kNo)
                              .status());
    return CellInt(r.get(), 0, 0);
  });
}

// ---------------------------------------------------------------- evidence

absl::StatusOr<std::vector<std::pair<int64_t, surge::v1::Run>>> PgStore::ListRunsWithIds(
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

absl::StatusOr<std::optional<surge::v1::Record>> PgStore::LastRecord(int64_t run_id) {
  SURGE_ASSIGN_OR_RETURN(Result r, Execute(kLastRecord, PgParams().Int(run_id)));
  if (PQntuples(r.get()) == 0) return std::optional<surge::v1::Record>();
  surge::v1::Record rec;
  rec.set_step(CellInt(r.get(), 0, 0));
  rec.set_examples(CellInt(r.get(), 0, 1));
  rec.set_lr(CellDouble(r.get(), 0, 2));
  rec.set_loss(CellDouble(r.get(), 0, 3));
  if (auto eval = CellOptDouble(r.get(), 0, 4)) rec.set_eval_loss(*eval);
  return std::optional<surge::v1::Record>(std::move(rec));
}

absl::StatusOr<std::optional<surge::v1::Record>> PgStore::GetRecord(int64_t run_id,
                                                                  int64_t step) {
  SURGE_ASSIGN_OR_RETURN(Result r, Execute(kGetRecord, PgParams().Int(run_id).Int(step)));
  if (PQntuples(r.get()) == 0) return std::optional<surge::v1::Record>();
  surge::v1::Record rec;
  rec.set_step(step);
  ReadRecordValues(r.get(), 0, 0, &rec);
  return std::optional<surge::v1::Record>(std::move(rec));
}

absl::StatusOr<std::vector<surge::v1::Record>> PgStore::SampleRunRecords(int64_t run_id,
                                                                        int64_t every) {
  SURGE_ASSIGN_OR_RETURN(
      Result r,
      Query("sample run records",
            "SELECT step, loss, grad_sq_small, grad_sq_big, b_small, b_big FROM records "
            "WHERE run_id = $1 AND step % $2 = 0 ORDER BY step",
            PgParams().Int(run_id).Int(std::max<int64_t>(1, every))));
  std::vector<surge::v1::Record> out;
  out.reserve(static_cast<size_t>(PQntuples(r.get())));
  for (int row = 0; row < PQntuples(r.get()); ++row) {
    surge::v1::Record& rec = out.emplace_back();
    rec.set_step(CellInt(r.get(), row, 0));
    rec.set_loss(CellDouble(r.get(), row, 1));
    if (!CellNull(r.get(), row, 2)) {
      auto* g = rec.mutable_grad_stats();
      g->set_grad_sq_small(CellDouble(r.get(), row, 2));
      g->set_grad_sq_big(CellDouble(r.get(), row, 3));
      g->set_b_small(CellInt(r.get(), row, 4));
      g->set_b_big(CellInt(r.get(), row, 5));
    }
  }
  return out;
}

absl::StatusOr<RunColumns> PgStore::ReadRunColumns(int64_t run_id) {
  SURGE_ASSIGN_OR_RETURN(Result r, Execute(kRunColumnsStmt, PgParams().Int(run_id)));
  RunColumns out;
  const int rows = PQntuples(r.get());
  out.steps.reserve(static_cast<size_t>(rows));
  out.examples.reserve(static_cast<size_t>(rows));
  out.lr.reserve(static_cast<size_t>(rows));
  out.loss.reserve(static_cast<size_t>(rows));
  out.eval_loss.reserve(static_cast<size_t>(rows));
  for (int row = 0; row < rows; ++row) {
    out.steps.push_back(CellInt(r.get(), row, 0));
    out.examples.push_back(static_cast<double>(CellInt(r.get(), row, 1)));
    out.lr.push_back(CellDouble(r.get(), row, 2));
    out.loss.push_back(CellDouble(r.get(), row, 3));
    out.eval_loss.push_back(CellNull(r.get(), row, 4) ? NAN : CellDouble(r.get(), row, 4));
  }
  return out;
}

absl::Status PgStore::AddOptima(int64_t job_id,
                                const std::vector<surge::v1::MeasuredOptimum>& optima) {
  return Transaction([&]() -> absl::Status {
    for (const auto& o : optima) {
      SURGE_RETURN_IF_ERROR(
          Query("add optimum",
                "INSERT INTO measured_optima (job_id, stage_id, batch_size, stage_loss, lr_opt, "
                "lr_opt_se) VALUES ($1, $2, $3, $4, $5, $6) "
                "ON CONFLICT (job_id, stage_id, batch_size) DO UPDATE SET "
                "stage_loss = EXCLUDED.stage_loss, lr_opt = EXCLUDED.lr_opt, "
                "lr_opt_se = EXCLUDED.lr_opt_se",
                PgParams()
                    .Int(job_id)
                    .Int(o.stage())
                    .Double(o.batch_size())
                    .Double(o.stage_loss())
                    .Double(o.lr_opt())
                    .Double(o.lr_opt_se()),
                Retry::kNo)
              .status());
    }
    return Query("touch job", "UPDATE jobs SET update_time_us = $1 WHERE id = $2",
                 PgParams().Int(absl::ToUnixMicros(absl::Now())).Int(job_id), Retry::kNo)
        .status();
  });
}

absl::StatusOr<std::vector<surge::v1::MeasuredOptimum>> PgStore::ListOptima(int64_t job_id) {
  SURGE_ASSIGN_OR_RETURN(
      Result r, Query("list optima",
                      "SELECT stage_id, batch_size, stage_loss, lr_opt, lr_opt_se "
                      "FROM measured_optima WHERE job_id = $1 ORDER BY stage_id, batch_size",
                      PgParams().Int(job_id)));
  std::vector<surge::v1::MeasuredOptimum> out;
  for (int row = 0; row < PQntuples(r.get()); ++row) {
    surge::v1::MeasuredOptimum& o = out.emplace_back();
    o.set_stage(static_cast<int32_t>(CellInt(r.get(), row, 0)));
    o.set_batch_size(CellDouble(r.get(), row, 1));
    o.set_stage_loss(CellDouble(r.get(), row, 2));
    o.set_lr_opt(CellDouble(r.get(), row, 3));
    o.set_lr_opt_se(CellDouble(r.get(), row, 4));
  }
  return out;
}

absl::StatusOr<int64_t> PgStore::InsertFit(int64_t job_id, surge::v1::Fit& fit) {
  return Transaction([&]() -> absl::StatusOr<int64_t> {
    // The job's row lock queues concurrent InsertFits of this job (other
    // replicas); MAX(version) is read after it, on a fresh snapshot.
    SURGE_ASSIGN_OR_RETURN(Result job, Query("lock job",
                                             "SELECT id FROM jobs WHERE id = $1 FOR NO KEY UPDATE",
                                             PgParams().Int(job_id), Retry::kNo));
    if (PQntuples(job.get()) == 0) {
      return absl::NotFoundError(absl::StrCat("job id ", job_id, " not found"));
    }
    SURGE_ASSIGN_OR_RETURN(
        Result next, Query("next fit version",
                           "SELECT COALESCE(MAX(version), 0) + 1 FROM fits WHERE job_id = $1",
                           PgParams().Int(job_id), Retry::kNo));
    const int64_t version = CellInt(next.get(), 0, 0);
    fit.set_version(version);
    std::string blob;
    fit.SerializeToString(&blob);
    PgParams params;
    params.Int(job_id)
        .Int(version)
        .Int(fit.create_time_us())
        .Int(fit.error().empty() ? 1 : 0)
        .Int(fit.inputs().probe_points())
        .Int(fit.inputs().measured_optima())
        .Int(fit.inputs().loss_points())
        .Int(fit.inputs().stages())
        .Int(fit.inputs().records_seen())
        .Int(static_cast<int64_t>(fit.fit_ms() * 1000))
        .Bytes(std::move(blob));
    absl::StatusOr<Result> inserted =
        Query("insert fit",
              "INSERT INTO fits (job_id, version, create_time_us, ok, probe_points, "
              "measured_optima, loss_points, stages, records_seen, fit_us, fit) "
              "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
              params, Retry::kNo);
    if (absl::IsAlreadyExists(inserted.status())) {
      return absl::AlreadyExistsError(
          absl::StrCat("fit version ", version, " of job id ", job_id, " already exists"));
    }
    SURGE_RETURN_IF_ERROR(inserted.status());
    return version;
  });
}

absl::StatusOr<std::optional<surge::v1::Fit>> PgStore::LatestFit(int64_t job_id) {
  SURGE_ASSIGN_OR_RETURN(
      Result r, Query("latest fit",
                      "SELECT fit FROM fits WHERE job_id = $1 ORDER BY version DESC LIMIT 1",
                      PgParams().Int(job_id), Retry::kOnce, /*result_format=*/1));
  if (PQntuples(r.get()) == 0) return std::optional<surge::v1::Fit>();
  surge::v1::Fit fit;
  if (!fit.ParseFromArray(PQgetvalue(r.get(), 0, 0), PQgetlength(r.get(), 0, 0))) {
    return absl::DataLossError(absl::StrCat("stored fit of job id ", job_id, " does not parse"));
  }
  return std::optional<surge::v1::Fit>(std::move(fit));
}

// ---------------------------------------------------------------- replicas

// The first key of the fit leases' advisory locks (the second is the job id):
// "surg" in ASCII, so that other users of advisory locks do not collide.
constexpr int32_t kFitLeaseSpace = 0x73757267;

absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> PgStore::LatestFitVersions() {
  SURGE_ASSIGN_OR_RETURN(
      Result r, Query("latest fit versions",
                      "SELECT j.name, MAX(f.version) FROM fits f JOIN jobs j ON j.id = f.job_id "
                      "GROUP BY j.name",
                      PgParams(), Retry::kOnce));
  std::vector<std::pair<std::string, int64_t>> out;
  out.reserve(static_cast<size_t>(PQntuples(r.get())));
  for (int row = 0; row < PQntuples(r.get()); ++row) {
    out.emplace_back(CellText(r.get(), row, 0), CellInt(r.get(), row, 1));
  }
  return out;
}

absl::StatusOr<bool> PgStore::TryLeaseFit(int64_t job_id) {
  SURGE_ASSIGN_OR_RETURN(
      Result r, Query("take fit lease", "SELECT pg_try_advisory_lock($1::int, ($2::bigint % 2147483647)::int)",
                      PgParams().Int(kFitLeaseSpace).Int(job_id), Retry::kOnce));
  return CellText(r.get(), 0, 0) == "t";
}

absl::Status PgStore::ReleaseFitLease(int64_t job_id) {
  return Query("release fit lease", "SELECT pg_advisory_unlock($1::int, ($2::bigint % 2147483647)::int)",
               PgParams().Int(kFitLeaseSpace).Int(job_id), Retry::kNo)
      .status();
}

// ---------------------------------------------------------------- reads

absl::Status PgStore::InReadSnapshot(const std::function<absl::Status()>& body) {
  return InTransaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", [&] { return body(); });
}

absl::StatusOr<RecordPage> PgStore::ListRecords(int64_t job_id, std::optional<int64_t> run_id,
                                                const RecordCursor& after, int limit) {
  // The runs to visit, in id (creation) order, starting at the cursor's run.
  SURGE_ASSIGN_OR_RETURN(Result runs_result,
                         Execute(kJobRunsAfter, PgParams().Int(job_id).Int(run_id ? *run_id
                                                                              : after.run_id)));
  std::vector<std::pair<int64_t, std::string>> runs;
  for (int row = 0; row < PQntuples(runs_result.get()); ++row) {
    int64_t id = CellInt(runs_result.get(), row, 0);
    if (run_id && id != *run_id) break;
    runs.emplace_back(id, CellText(runs_result.get(), row, 1));
  }
  // Up to limit + 1 records: the extra one only tells whether another page
  // exists; it is dropped (as SqliteStore::ListRecords).
  const int want = limit + 1;
  int64_t limit_run_id = 0;
  RecordPage page;
  page.records.reserve(static_cast<size_t>(std::max(0, want)));
  for (const auto& [id, name] : runs) {
    int remaining = want - static_cast<int>(page.records.size());
    if (remaining <= 0) break;
    SURGE_ASSIGN_OR_RETURN(
        Result r, Execute(kListRecords, PgParams()
                                        .Int(id)
                                        .Int(id == after.run_id ? after.step : -1)
                                        .Int(remaining)));
    for (int row = 0; row < PQntuples(r.get()); ++row) {
      surge::v1::Record& rec = page.records.emplace_back();
      rec.set_run(name);
      rec.set_step(CellInt(r.get(), row, 0));
      ReadRecordValues(r.get(), row, 1, &rec);
      if (static_cast<int>(page.records.size()) == limit) limit_run_id = id;
    }
  }
  if (static_cast<int>(page.records.size()) > limit) {
    page.records.pop_back();
    page.next = RecordCursor{limit_run_id, page.records.back().step()};
  }
  return page;
}

// ---------------------------------------------------------------- write groups

absl::StatusOr<BatchResult> PgStore::WriteBatch(const RecordBatch& batch, int64_t now_us) {
  const auto& records = batch.request->records();
  const size_t n = static_cast<size_t>(records.size());
  BatchResult result;
  if (n == 0) return result;
  NumberArray run_ids(kInt8Oid, n), steps(kInt8Oid, n), examples(kInt8Oid, n), lr(kFloat8Oid, n),
      loss(kFloat8Oid, n), eval_loss(kFloat8Oid, n), small(kFloat8Oid, n), big(kFloat8Oid, n),
      b_small(kInt8Oid, n), b_big(kInt8Oid, n);
  for (size_t i = 0; i < n; ++i) {
    const surge::v1::Record& r = records[static_cast<int>(i)];
    run_ids.Int((*batch.run_ids)[i]);
    steps.Int(r.step());
    examples.Int(r.examples());
    lr.Double(r.lr());
    loss.Double(r.loss());
    if (r.has_eval_loss()) {
      eval_loss.Double(r.eval_loss());
    } else {
      eval_loss.Null();
    }
    if (r.has_grad_stats()) {
      small.Double(r.grad_stats().grad_sq_small());
      big.Double(r.grad_stats().grad_sq_big());
      b_small.Int(r.grad_stats().b_small());
      b_big.Int(r.grad_stats().b_big());
    } else {
      small.Null();
      big.Null();
      b_small.Null();
      b_big.Null();
    }
  }
  std::string key_runs = std::move(run_ids).Finish();  // reused to look up stored values
  std::string key_steps = std::move(steps).Finish();
  PgParams params;
  params.Bytes(key_runs).Bytes(key_steps);
  for (NumberArray* column : {&examples, &lr, &loss, &eval_loss, &small, &big, &b_small, &b_big}) {
    params.Bytes(std::move(*column).Finish());
  }

  // Per run: records added and the highest step, for the runs' counters.
  absl::flat_hash_map<int64_t, std::pair<int64_t, int64_t>> per_run;
  auto count_new = [&](size_t i) {
    ++result.stored;
    auto& [added, max_step] =
        per_run.try_emplace((*batch.run_ids)[i], 0, int64_t{-1}).first->second;
    ++added;
    max_step = std::max(max_step, records[static_cast<int>(i)].step());
  };
  absl::StatusOr<Result> fresh_batch = Execute(kInsertNew, params, Retry::kNo);
  if (fresh_batch.ok()) {
    for (size_t i = 0; i < n; ++i) count_new(i);
  } else if (absl::IsAlreadyExists(fresh_batch.status())) {
    // A re-send (or a step twice in the batch): back to the batch's
    // savepoint (WriteGroup's), and insert what is new.
    SURGE_RETURN_IF_ERROR(Command("ROLLBACK TO SAVEPOINT batch"));
    SURGE_ASSIGN_OR_RETURN(Result keys, Execute(kInsertResent, params, Retry::kNo));
    // The first record of each new key is new; every other one was stored
    // already (before, or earlier in this batch) and is compared with it.
    absl::flat_hash_set<std::pair<int64_t, int64_t>> fresh;
    fresh.reserve(static_cast<size_t>(PQntuples(keys.get())));
    for (int row = 0; row < PQntuples(keys.get()); ++row) {
      fresh.emplace(CellInt(keys.get(), row, 0), CellInt(keys.get(), row, 1));
    }
    std::vector<int> not_new;
    for (size_t i = 0; i < n; ++i) {
      if (fresh.erase({(*batch.run_ids)[i], records[static_cast<int>(i)].step()}) > 0) {
        count_new(i);
      } else {
        not_new.push_back(static_cast<int>(i));
      }
    }
    SURGE_ASSIGN_OR_RETURN(
        Result stored_result,
        Execute(kStoredRecords, PgParams().Bytes(key_runs).Bytes(key_steps), Retry::kNo));
    absl::flat_hash_map<std::pair<int64_t, int64_t>, surge::v1::Record> stored;
    const PGresult* s = stored_result.get();
    for (int row = 0; row < PQntuples(s); ++row) {
      std::pair<int64_t, int64_t> key(CellInt(s, row, 0), CellInt(s, row, 1));
      surge::v1::Record& rec = stored[key];
      rec.set_step(key.second);
      ReadRecordValues(s, row, 2, &rec);
    }
    for (int i : not_new) {
      // An identical re-send (after a reconnect) is a silent duplicate;
      // other values for a stored (run, step) are refused, not dropped.
      auto it = stored.find(
          std::make_pair((*batch.run_ids)[static_cast<size_t>(i)], records[i].step()));
      if (it != stored.end()) {
        if (std::string diff = RecordDifference(it->second, records[i]); !diff.empty()) {
          return ConflictingResend(i, records[i], diff);
        }
      }
      ++result.duplicate;
    }
  } else {
    return fresh_batch.status();
  }
  if (per_run.empty()) return result;

  // The counters, in run id order (concurrent writers lock runs alike). A
  // run missing here was deleted since the stream looked it up: the batch
  // fails and its records are rolled back with it.
  std::vector<int64_t> ids;
  for (const auto& [id, counts] : per_run) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  NumberArray bump_ids(kInt8Oid, ids.size()), added(kInt8Oid, ids.size()),
      max_steps(kInt8Oid, ids.size());
  for (int64_t id : ids) {
    bump_ids.Int(id);
    added.Int(per_run[id].first);
    max_steps.Int(per_run[id].second);
  }
  SURGE_ASSIGN_OR_RETURN(Result bumped,
                         Execute(kBumpRuns,
                                 PgParams()
                                     .Bytes(std::move(bump_ids).Finish())
                                     .Bytes(std::move(added).Finish())
                                     .Bytes(std::move(max_steps).Finish())
                                     .Int(now_us),
                                 Retry::kNo));
  absl::flat_hash_set<int64_t> found;
  for (int row = 0; row < PQntuples(bumped.get()); ++row) found.insert(CellInt(bumped.get(), row, 0));
  for (int64_t id : ids) {
    if (!found.contains(id)) {
      return absl::NotFoundError(absl::StrCat("run id ", id, " no longer exists (job deleted)"));
    }
  }
  return result;
}

GroupResult PgStore::WriteGroup(absl::Span<const RecordBatch> batches, int64_t now_us,
                                const BeforeCommit& before_commit) {
  // txn_depth_ counts the open transaction from BEGIN until its COMMIT
  // returned or its ROLLBACK is sent (no resend inside a transaction).
  bool open = false;
  GroupSteps steps;
  steps.begin = [&] {
    absl::Status s = Command("BEGIN", Retry::kOnce);
    if (s.ok()) {
      open = true;
      ++txn_depth_;
    }
    return s;
  };
  steps.savepoint = [this] { return Command("SAVEPOINT batch"); };
  steps.write_batch = [&](const RecordBatch& batch) { return WriteBatch(batch, now_us); };
  steps.release_savepoint = [this] { return Command("RELEASE SAVEPOINT batch"); };
  steps.rollback_to_savepoint = [this] {
    return Command("ROLLBACK TO SAVEPOINT batch; RELEASE SAVEPOINT batch");
  };
  auto close = [&] {
    if (open) --txn_depth_;
    open = false;
  };
  steps.commit = [&] {
    absl::Status s = Commit();
    close();
    return s;
  };
  steps.rollback = [&] {
    close();
    return Command("ROLLBACK");
  };
  return RunWriteGroup(batches, steps, before_commit);
}

}  // namespace surge::store
