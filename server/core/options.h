// The options of SurgeCore and of the parts it is made of (write queue, fit
// service, tenant limits), apart from those parts' headers so that the
// core's public header needs none of them (nor any store type).
#ifndef SURGE_SERVER_CORE_OPTIONS_H_
#define SURGE_SERVER_CORE_OPTIONS_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/time/time.h"
#include "server/fit/fit_job.h"

namespace surge::core {

struct WriteQueueOptions {
  // SubmitBatch blocks while more records than this, or more bytes (the
  // batches' serialized size), are waiting; a batch larger than a whole
  // budget is admitted alone once the queue is empty.
  size_t max_queued_records = 1 << 20;
  size_t max_queued_bytes = size_t{256} << 20;
  // Upper bound on the records in one transaction.
  size_t max_records_per_commit = 1 << 18;
  // Optional observer (metrics): called on the writer thread after each
  // successful group COMMIT with the COMMIT statement's latency and the
  // records it made durable. Must be cheap and must not call back in.
  std::function<void(absl::Duration commit_latency, int64_t records_stored,
                     int64_t records_duplicate)>
      on_commit;
};

struct FitServiceOptions {
  absl::Duration debounce = absl::Milliseconds(300);
  absl::Duration max_delay = absl::Seconds(5);
  fit::FitOptions fit;
  int threads = 2;  // background fit threads, >= 1
  // Tests only: called on the fit thread before each background fit.
  std::function<void(const std::string& job)> before_fit_for_testing;
  // Tests only: called inside every fit computation, under the job's lock.
  std::function<void(const std::string& job)> inside_fit_for_testing;
  // Optional observer (metrics): called after each fit computation with its
  // duration (evidence loading + fitting) and whether the evidence could be
  // fitted. Must be cheap and must not call back in.
  std::function<void(absl::Duration fit_time, bool fitted)> on_fit;
  // Replicas sharing one database (PostgreSQL; SurgeCore sets it to 1 s
  // there, 0 = off for SQLite): every `shared_poll` the service reads the
  // newest stored fit version of every job and refits locally each job of
  // which another replica stored a newer version (the same evidence gives
  // the same fit, whose stored version is adopted), so WatchFits and advice
  // on every replica follow fits computed on any.
  absl::Duration shared_poll = absl::ZeroDuration();
};

struct TenantLimitOptions {
  int max_streams = 0;              // open Ingest streams per tenant
  double max_records_per_s = 0;     // records accepted per second per tenant
  int64_t max_queued_bytes = 0;     // bytes of batches waiting for commit per tenant
};

struct CoreOptions {
  std::string db_path = "surge.db";
  WriteQueueOptions write;
  FitServiceOptions fits;
  int max_readers = 8;
  // The writer connection's WAL pages before an automatic checkpoint
  // (SQLite; the power-cut test lowers it to cut inside checkpoints).
  int wal_autocheckpoint_pages = 10000;
  // Tests only: SQLite's synchronous=NORMAL instead of FULL (commits not
  // fsynced), for the power-cut test's self-check (tests/durability/).
  bool unsafe_synchronous_normal_for_testing = false;
  // Bearer tokens (auth.h); empty: no tokens, every call is the local admin.
  std::string tokens_file;
  TenantLimitOptions tenant_limits;
};

}  // namespace surge::core

#endif  // SURGE_SERVER_CORE_OPTIONS_H_
