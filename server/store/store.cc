// The Store methods with a default: LatestFitVersions through the narrow
// calls (backends that share a database override it with one query).
#include "server/store/store.h"

#include "server/util/status_macros.h"

namespace surge::store {

absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> Store::LatestFitVersions() {
  std::vector<std::pair<std::string, int64_t>> out;
  SURGE_ASSIGN_OR_RETURN(std::vector<surge::v1::Job> jobs, ListJobs());
  for (const surge::v1::Job& job : jobs) {
    SURGE_ASSIGN_OR_RETURN(int64_t id, JobId(job.name()));
    SURGE_ASSIGN_OR_RETURN(std::optional<surge::v1::Fit> fit, LatestFit(id));
    if (fit.has_value()) out.emplace_back(job.name(), fit->version());
  }
  return out;
}

}  // namespace surge::store
