// Thin RAII wrappers over the SQLite C API: a connection (SqliteDb) and a
// prepared statement (Statement). Errors become absl::Status with SQLite's
// message. Neither class is thread-safe; one connection per thread.
#ifndef SURGE_SERVER_STORE_SQLITE_DB_H_
#define SURGE_SERVER_STORE_SQLITE_DB_H_

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace surge::store {

// A prepared statement. Bind indexes are 1-based, column indexes 0-based.
class Statement {
 public:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Resets the statement and clears its bindings before reuse.
  void Reset();

  void BindInt(int index, int64_t value) { sqlite3_bind_int64(stmt_, index, value); }
  void BindDouble(int index, double value) { sqlite3_bind_double(stmt_, index, value); }
  void BindText(int index, absl::string_view value) {
    sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()),
                      SQLITE_TRANSIENT);
  }
  void BindNull(int index) { sqlite3_bind_null(stmt_, index); }
  void BindBlob(int index, const std::string& value) {
    sqlite3_bind_blob(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
  }
  void BindOptionalDouble(int index, std::optional<double> value);
  void BindOptionalInt(int index, std::optional<int64_t> value);

  // Advances: true when a row is available, false when done.
  absl::StatusOr<bool> Step();
  // Runs a statement that returns no rows.
  absl::Status Execute();

  int64_t ColumnInt(int col) const { return sqlite3_column_int64(stmt_, col); }
  double ColumnDouble(int col) const { return sqlite3_column_double(stmt_, col); }
  std::string ColumnText(int col) const;
  std::string ColumnBlob(int col) const;
  bool ColumnIsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

// One SQLite connection.
class SqliteDb {
 public:
  // Opens (creating if needed) the database at `path` (":memory:" for tests).
  static absl::StatusOr<std::unique_ptr<SqliteDb>> Open(const std::string& path);
  ~SqliteDb();
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  // Runs one or more SQL statements without parameters (DDL, PRAGMA, BEGIN).
  absl::Status Exec(const char* sql);
  // Prepares a statement for repeated use.
  absl::StatusOr<std::unique_ptr<Statement>> Prepare(absl::string_view sql);

  int64_t Changes() const { return sqlite3_changes64(db_); }
  int64_t LastInsertRowId() const { return sqlite3_last_insert_rowid(db_); }
  sqlite3* raw() const { return db_; }

 private:
  explicit SqliteDb(sqlite3* db) : db_(db) {}
  sqlite3* db_;
};

// Converts a failed SQLite result code and its message into an absl::Status.
// Codes by meaning: BUSY/LOCKED (another connection holds the database),
// READONLY, FULL, IOERR and CANTOPEN (the file cannot be written now; the
// write was not stored, retry once an operator fixed it) -> UNAVAILABLE;
// CORRUPT and NOTADB (a damaged file) -> DATA_LOSS; CONSTRAINT ->
// ALREADY_EXISTS; anything else -> INTERNAL. The message names the cause.
absl::Status SqliteStatus(int rc, absl::string_view message);
// SqliteStatus with `what` and the connection's message (SQLite's text for
// `rc` when `db` is null).
absl::Status SqliteError(sqlite3* db, int rc, absl::string_view what);

}  // namespace surge::store

#endif  // SURGE_SERVER_STORE_SQLITE_DB_H_
