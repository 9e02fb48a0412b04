// The shared database helpers of the command-line tools (read_only_db.h).
#include "server/tools/read_only_db.h"

#include <sys/stat.h>

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace surge::tools {

std::string ReadOnlyUri(const std::string& path) {
  std::string uri = "file:";
  for (char c : path) {
    if (c == '%' || c == '?' || c == '#') {
      absl::StrAppendFormat(&uri, "%%%02X", static_cast<unsigned char>(c));
    } else {
      uri.push_back(c);
    }
  }
  return uri + "?mode=ro";
}

absl::StatusOr<std::unique_ptr<store::SqliteStore>> OpenReadOnlyStore(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::NotFoundError(absl::StrCat("no database file '", path, "'"));
  }
  store::StoreOptions options;
  options.migrate = false;
  auto opened = store::SqliteStore::Open(ReadOnlyUri(path), options);
  if (!opened.ok()) {
    return absl::Status(opened.status().code(),
                        absl::StrCat("opening ", path, ": ", opened.status().message()));
  }
  return opened;
}

absl::StatusOr<core::Evidence> LoadJobEvidence(store::Store& store, const std::string& job) {
  auto evidence = core::LoadEvidence(store, job);
  if (evidence.ok() || !absl::IsNotFound(evidence.status())) return evidence;
  std::string msg(evidence.status().message());
  if (auto jobs = store.ListJobs(); jobs.ok()) {
    std::vector<std::string> names;
    for (const auto& j : *jobs) names.push_back(j.name());
    absl::StrAppend(&msg, " (jobs in the database: ",
                    names.empty() ? "none" : absl::StrJoin(names, ", "), ")");
  }
  return absl::NotFoundError(msg);
}

}  // namespace surge::tools
