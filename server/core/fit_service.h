// FitService: keeps every job's fit current, off the ingest path.
//
// Ingest only calls MarkDirty(job) (a map insert under a mutex). A small pool
// of fit threads (`threads`) recomputes a job once no new evidence has arrived
// for `debounce` (or at the latest `max_delay` after the first change): it loads the
// evidence through a reader connection, runs fit::FitJob, stores the result
// as the job's next fit version (through the WriteQueue, like every write)
// and publishes it to waiters (WatchFits). A fit whose inputs equal the
// newest stored fit's is not stored again, so a restart does not inflate
// history. Fits of different jobs run in parallel; each job's fits run under
// that job's own lock (never two at once for one job), so a big job's fit
// delays neither another job's background fit nor its first fit on demand,
// and advice from a fit in memory never waits for any fit. Replicas on one
// database: a fit is stored only under the job's fit lease (Store::
// TryLeaseFit), one replica at a time; a replica that cannot take it serves
// its fit with the newest stored version and tries again later; a poller
// (options.shared_poll) picks up versions other replicas stored. Thread-safe.
#ifndef SURGE_SERVER_CORE_FIT_SERVICE_H_
#define SURGE_SERVER_CORE_FIT_SERVICE_H_

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/core/evidence.h"
#include "server/core/options.h"
#include "server/core/fit_entry.h"
#include "server/core/reader_pool.h"
#include "server/core/write_queue.h"
#include "server/fit/fit_job.h"
#include "surge/v1/surge.pb.h"

namespace surge::core {

struct FitServiceStats {
  int64_t fits_computed = 0;
  int64_t fits_stored = 0;
  double last_fit_ms = 0;
};

class FitService {
 public:
  FitService(ReaderPool* readers, WriteQueue* writes, const FitServiceOptions& options);
  ~FitService();
  FitService(const FitService&) = delete;
  FitService& operator=(const FitService&) = delete;

  // New evidence for `job`: schedules a debounced refit. Never blocks on fits.
  void MarkDirty(const std::string& job);

  // The job's latest fit; computed now when none is in memory (first request
  // after a start). NOT_FOUND when the job does not exist.
  absl::StatusOr<std::shared_ptr<const FitEntry>> Latest(const std::string& job);

  // Waits up to `timeout` for a fit of `job` with version > `after_version`;
  // nullptr on timeout or once stopping.
  std::shared_ptr<const FitEntry> WaitNewer(const std::string& job, int64_t after_version,
                                            absl::Duration timeout);

  // A fit with ad hoc plain-run settings (GetFit with target_losses/k_steps):
  // computed now on a reader, neither stored nor published (version 0). A
  // job whose evidence cannot be fitted gives a Fit with `error` set.
  // NOT_FOUND when the job does not exist.
  absl::StatusOr<surge::v1::Fit> ComputeAdHoc(const std::string& job,
                                              const EvidenceOverrides& overrides);

  // Drops a deleted job's state.
  void Forget(const std::string& job);

  // Wakes every waiter and stops the fit threads (pending refits are dropped:
  // they are recomputed on demand after a restart).
  void Stop();
  bool stopping() const;

  FitServiceStats stats() const;

 private:
  // Computes and publishes the job's fit under the job's lock. On demand
  // (`reuse_published`), a fit another thread published meanwhile is returned
  // instead of computing again.
  absl::StatusOr<std::shared_ptr<const FitEntry>> Compute(const std::string& job,
                                                         bool reuse_published);
  std::shared_ptr<std::mutex> JobMutex(const std::string& job);
  void Loop();
  // With shared_poll: marks dirty every job of which a newer version is
  // stored than the one in memory (another replica stored it).
  void PollSharedVersions();

  ReaderPool* const readers_;
  WriteQueue* const writes_;
  const FitServiceOptions options_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  struct Dirty {
    absl::Time first;
    absl::Time last;
  };
  absl::flat_hash_map<std::string, Dirty> dirty_;
  absl::flat_hash_map<std::string, std::shared_ptr<const FitEntry>> latest_;
  absl::flat_hash_map<std::string, std::shared_ptr<std::mutex>> job_mu_;  // per-job fit locks
  absl::flat_hash_set<std::string> running_;  // jobs a background thread is fitting
  bool stopping_ = false;
  FitServiceStats stats_;
  std::vector<std::thread> threads_;
};

}  // namespace surge::core

#endif  // SURGE_SERVER_CORE_FIT_SERVICE_H_
