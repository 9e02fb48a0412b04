// The group commit that every backend's Store::WriteGroup runs, over its own
// statements: BEGIN; per batch a SAVEPOINT, the batch's records, then RELEASE
// (or ROLLBACK TO, leaving that batch out); the before_commit hook; COMMIT,
// timed; ROLLBACK of everything when any step of the group fails. Store-
// internal (sqlite_store.cc, pg_store.cc).
#ifndef SURGE_SERVER_STORE_WRITE_GROUP_H_
#define SURGE_SERVER_STORE_WRITE_GROUP_H_

#include <functional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "server/store/store.h"

namespace surge::store {

// One backend's statements for a write group.
struct GroupSteps {
  std::function<absl::Status()> begin;
  std::function<absl::Status()> savepoint;
  std::function<absl::StatusOr<BatchResult>(const RecordBatch&)> write_batch;
  std::function<absl::Status()> release_savepoint;
  std::function<absl::Status()> rollback_to_savepoint;
  std::function<absl::Status()> commit;
  std::function<absl::Status()> rollback;
};

GroupResult RunWriteGroup(absl::Span<const RecordBatch> batches, const GroupSteps& steps,
                          const BeforeCommit& before_commit);

}  // namespace surge::store

#endif  // SURGE_SERVER_STORE_WRITE_GROUP_H_
