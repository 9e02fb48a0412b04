// Implementation of the SQLite RAII wrappers.
#include "server/store/sqlite_db.h"

#include "absl/strings/str_cat.h"

namespace surge::store {

absl::Status SqliteStatus(int rc, absl::string_view message) {
  std::string msg(message);
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      // Transient: another connection or process holds the database.
      return absl::UnavailableError(msg);
    case SQLITE_CONSTRAINT:
      return absl::AlreadyExistsError(msg);
    case SQLITE_READONLY:
      return absl::UnavailableError(absl::StrCat(
          msg, " (the database cannot be written: check the permissions, immutable attribute "
               "and mount of the file, its -wal and -shm files and its folder; the write was "
               "not stored)"));
    case SQLITE_FULL:
      return absl::UnavailableError(
          absl::StrCat(msg, " (no space left for the database; the write was not stored; "
                            "retry once space is freed)"));
    case SQLITE_IOERR:
      return absl::UnavailableError(
          absl::StrCat(msg, " (an I/O error on the database file or its -wal/-shm files)"));
    case SQLITE_CANTOPEN:
      return absl::UnavailableError(absl::StrCat(
          msg, " (the database file, its -wal/-shm files or its folder cannot be opened)"));
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(absl::StrCat(
          msg, " (the database file is damaged: restore it from a backup or recover it with "
               "sqlite3's .recover)"));
    default:
      return absl::InternalError(msg);
  }
}

absl::Status SqliteError(sqlite3* db, int rc, absl::string_view what) {
  return SqliteStatus(rc,
                      absl::StrCat(what, ": ", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
}

void Statement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

void Statement::BindOptionalDouble(int index, std::optional<double> value) {
  if (value) {
    BindDouble(index, *value);
  } else {
    BindNull(index);
  }
}

void Statement::BindOptionalInt(int index, std::optional<int64_t> value) {
  if (value) {
    BindInt(index, *value);
  } else {
    BindNull(index);
  }
}

absl::StatusOr<bool> Statement::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  absl::Status status = SqliteError(db_, rc, "sqlite3_step");
  sqlite3_reset(stmt_);
  return status;
}

absl::Status Statement::Execute() {
  absl::StatusOr<bool> row = Step();
  if (!row.ok()) return row.status();
  return absl::OkStatus();
}

std::string Statement::ColumnText(int col) const {
  const unsigned char* text = sqlite3_column_text(stmt_, col);
  if (text == nullptr) return std::string();
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
}

std::string Statement::ColumnBlob(int col) const {
  const void* data = sqlite3_column_blob(stmt_, col);
  if (data == nullptr) return std::string();
  return std::string(static_cast<const char*>(data),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
}

absl::StatusOr<std::unique_ptr<SqliteDb>> SqliteDb::Open(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    absl::Status status = SqliteError(db, rc, absl::StrCat("opening database ", path));
    sqlite3_close(db);
    return status;
  }
  sqlite3_extended_result_codes(db, 0);
  return std::unique_ptr<SqliteDb>(new SqliteDb(db));
}

SqliteDb::~SqliteDb() { sqlite3_close_v2(db_); }

absl::Status SqliteDb::Exec(const char* sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    return SqliteStatus(rc, absl::StrCat("sqlite: ", msg));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Statement>> SqliteDb::Prepare(absl::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) return SqliteError(db_, rc, absl::StrCat("preparing: ", sql));
  return std::make_unique<Statement>(db_, stmt);
}

}  // namespace surge::store
