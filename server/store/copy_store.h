// Copying a database into another through the Store interface (issue 12,
// "moving up": a SQLite file into PostgreSQL; any backend to any other):
// every job (with its tenant, settings and times), run (with labels and
// every field), record, measured optimum and the latest fit of each job.
// The destination must not hold any of the jobs yet. VerifyCopy then compares
// both sides run by run: record counts and a checksum over every record's
// values, so a copy is known to be whole before the source is retired.
// Fit history is not copied (the latest fit is, as version 1: advice is
// served at once; older versions are recomputed history, not data). A job
// with measured optima gets the copy's time as its update time.
#ifndef SURGE_SERVER_STORE_COPY_STORE_H_
#define SURGE_SERVER_STORE_COPY_STORE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/store/store.h"

namespace surge::store {

// One run as compared by VerifyCopy.
struct RunDigest {
  std::string job;
  std::string run;
  int64_t records = 0;
  uint64_t checksum = 0;  // FNV-1a over (step, examples, lr, loss, eval_loss, grad stats)
};

struct CopyReport {
  int64_t jobs = 0;
  int64_t runs = 0;
  int64_t records = 0;
  int64_t optima = 0;
  int64_t fits = 0;
};

struct VerifyReport {
  std::vector<RunDigest> runs;        // of the source, in job then run order
  std::vector<std::string> problems;  // empty: the copy is whole
};

// Copies everything of `from` into `to`. FAILED_PRECONDITION when `to`
// already has a job of the same name (nothing of that job is written);
// `progress` (may be empty) is called after each job.
absl::StatusOr<CopyReport> CopyStore(Store& from, Store& to,
                                     const std::function<void(const std::string& job)>& progress);

// Compares every run of `from` with the run of the same job and name in
// `to`: present, same record count, same checksum; and the same jobs.
absl::StatusOr<VerifyReport> VerifyCopy(Store& from, Store& to);

}  // namespace surge::store

#endif  // SURGE_SERVER_STORE_COPY_STORE_H_
