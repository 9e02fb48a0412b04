// Implementation of RunWriteGroup (see write_group.h).
#include "server/store/write_group.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace surge::store {

GroupResult RunWriteGroup(absl::Span<const RecordBatch> batches, const GroupSteps& steps,
                          const BeforeCommit& before_commit) {
  GroupResult out;
  out.batches.reserve(batches.size());
  absl::Status txn = steps.begin();
  if (txn.ok()) {
    for (const RecordBatch& batch : batches) {
      if (absl::Status sp = steps.savepoint(); !sp.ok()) {
        txn = sp;
        break;
      }
      absl::StatusOr<BatchResult> r = steps.write_batch(batch);
      absl::Status end = r.ok() ? steps.release_savepoint() : steps.rollback_to_savepoint();
      if (!end.ok()) {
        // The whole transaction is gone (SQLite rolls it back on an I/O error
        // or a full disk inside a statement, "no such savepoint"; PostgreSQL
        // on a broken connection): the batch's own error, if it had one, is
        // what failed the group.
        txn = r.ok() ? end
                     : absl::Status(r.status().code(), absl::StrCat(r.status().message(),
                                                                    " (transaction rolled back)"));
        break;
      }
      out.batches.push_back(std::move(r));
    }
  }
  if (txn.ok() && before_commit) before_commit(out.batches);
  if (txn.ok()) {
    absl::Time start = absl::Now();
    txn = steps.commit();
    out.commit_latency = absl::Now() - start;
  }
  if (!txn.ok()) {
    steps.rollback().IgnoreError();
    out.batches.clear();
  }
  out.commit = txn;
  return out;
}

}  // namespace surge::store
