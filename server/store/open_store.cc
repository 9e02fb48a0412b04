// Implementation of ParseDbTarget and OpenStore (see open_store.h).
#include "server/store/open_store.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/store/pg_store.h"

namespace surge::store {

std::string DbTarget::Describe() const {
  if (sqlite()) return path;
  // postgresql://user:secret@host/db -> postgresql://user:***@host/db
  std::string shown = url;
  size_t scheme = shown.find("://");
  size_t at = shown.find('@');
  if (scheme != std::string::npos && at != std::string::npos && at > scheme) {
    size_t colon = shown.find(':', scheme + 3);
    if (colon != std::string::npos && colon < at) shown.replace(colon + 1, at - colon - 1, "***");
  }
  return shown;
}

absl::StatusOr<DbTarget> ParseDbTarget(const std::string& value) {
  DbTarget target;
  if (value.empty()) return absl::InvalidArgumentError("must not be empty");
  if (absl::StartsWith(value, "postgresql://") || absl::StartsWith(value, "postgres://")) {
    target.kind = DbTarget::Kind::kPostgres;
    target.url = value;
    return target;
  }
  if (absl::StartsWith(value, "sqlite://")) {
    // sqlite:///abs/path (three slashes: an empty host, then the path).
    std::string path = value.substr(9);
    if (path.empty() || path[0] != '/') {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", value, "': a SQLite URL is sqlite:///ABSOLUTE/PATH (or give the path alone)"));
    }
    target.path = path;
    return target;
  }
  if (size_t scheme = value.find("://"); scheme != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", value, "': unknown database scheme '", value.substr(0, scheme),
        "' (a file path, sqlite:///PATH or postgresql://...)"));
  }
  target.path = value;
  return target;
}

absl::StatusOr<std::unique_ptr<Store>> OpenStore(const DbTarget& target,
                                                 const StoreOptions& options) {
  if (!target.sqlite()) {
    absl::StatusOr<std::unique_ptr<PgStore>> store = PgStore::Open(target.url, options);
    if (!store.ok()) {
      // The URL without its password names the database.
      return absl::Status(store.status().code(), absl::StrCat("database ", target.Describe(), ": ",
                                                              store.status().message()));
    }
    return std::unique_ptr<Store>(std::move(*store));
  }
  absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(target.path, options);
  if (!store.ok()) return store.status();
  return std::unique_ptr<Store>(std::move(*store));
}

}  // namespace surge::store
