// What the command-line tools over a surge database file share: the
// read-only SQLite URI (a running server and its WAL are left alone, a
// missing file is not created), opening the file as a store without
// migrating it, and loading one job's evidence as the server does.
#ifndef SURGE_SERVER_TOOLS_READ_ONLY_DB_H_
#define SURGE_SERVER_TOOLS_READ_ONLY_DB_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/core/evidence.h"
#include "server/store/sqlite_store.h"

namespace surge::tools {

// "file:PATH?mode=ro", percent-encoding what a URI path cannot hold (% ? #).
std::string ReadOnlyUri(const std::string& path);

// Opens the database file `path` read-only. Errors: kNotFound (no regular
// file there), or the store's own error on opening.
absl::StatusOr<std::unique_ptr<store::SqliteStore>> OpenReadOnlyStore(const std::string& path);

// core::LoadEvidence of `job`; kNotFound lists the jobs the database holds.
absl::StatusOr<core::Evidence> LoadJobEvidence(store::Store& store, const std::string& job);

}  // namespace surge::tools

#endif  // SURGE_SERVER_TOOLS_READ_ONLY_DB_H_
