// Which database a --db value names, and opening a Store on it:
//   PATH or sqlite:///PATH            SQLite (the embedded default)
//   postgresql://... / postgres://... PostgreSQL (the shared store of
//                                     replicas; the URL form Optuna and
//                                     MLflow users know)
#ifndef SURGE_SERVER_STORE_OPEN_STORE_H_
#define SURGE_SERVER_STORE_OPEN_STORE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/store/sqlite_store.h"
#include "server/store/store.h"

namespace surge::store {

struct DbTarget {
  enum class Kind { kSqlite, kPostgres };
  Kind kind = Kind::kSqlite;
  std::string path;  // SQLite: the file (":memory:" in tests)
  std::string url;   // PostgreSQL: the libpq connection URL
  bool sqlite() const { return kind == Kind::kSqlite; }
  // For messages: the file, or the URL without its password.
  std::string Describe() const;
};

// INVALID_ARGUMENT for an empty value, another URL scheme, or sqlite:// with
// a relative or missing path.
absl::StatusOr<DbTarget> ParseDbTarget(const std::string& value);

// One connection. `options.migrate`: run pending migrations (the writer
// does; readers need not).
absl::StatusOr<std::unique_ptr<Store>> OpenStore(const DbTarget& target,
                                                 const StoreOptions& options = {});

}  // namespace surge::store

#endif  // SURGE_SERVER_STORE_OPEN_STORE_H_
