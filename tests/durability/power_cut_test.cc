// Fault test at volume (issue 11): simulated power cuts of a SurgeCore while
// it ingests. CutVfs (cut_vfs.h) is SQLite's default VFS in this process, so
// every connection of the core (writer, readers) writes through it. Each
// cycle opens a core on the same database file, streams records of two runs
// through IngestStreams (the server's ingest path: validation, run lookup,
// group commit on the writer thread, acks after COMMIT), creates runs
// beside them and lets background fits store results, until the VFS cuts
// power just before a random write or sync (or at a random moment). Then:
//
//   1. every later read, write, sync and open fails with an I/O error, so
//      nothing can be acked after the cut that was not synced before it;
//      the streams end on their commit errors, the core shuts down (its
//      writer's COMMITs fail, its connections close: no thread is left);
//   2. each file loses what was written but not fsynced (alternately all of
//      it, and a random half of its 4 KiB blocks: a disk that reorders);
//   3. plain SQLite (the "unix" VFS, as after a reboot) opens the file:
//      PRAGMA integrity_check says ok, every record the streams saw acked
//      is there with its values, each run's record counter equals its
//      records, and every run whose CreateRun returned is there.
//
// The next cycle opens a new core on the file as the cut left it and resumes
// each stream at its first unacked step; the database keeps growing over
// the cycles. Cycles: $SURGE_POWER_CUTS (default 200); seed:
// $SURGE_POWER_CUT_SEED (default 11).
//
// The self-check runs the same harness with the writer at
// synchronous=NORMAL, whose WAL commits are not fsynced: it must report
// acked records lost, or the harness could not see a loss.
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/core/fit_service.h"
#include "server/core/ingest_stream.h"
#include "server/core/page_token.h"
#include "server/core/surge_core.h"
#include "server/core/write_queue.h"
#include "tests/durability/cut_vfs.h"
#include "tests/support/temp_dir.h"

namespace surge {
namespace {

using testing::CutMode;
using testing::CutReport;
using testing::CutVfs;

constexpr char kJob[] = "power";
constexpr int kStreams = 2;
constexpr int kBatch = 25;    // records per batch
constexpr int kWindow = 2;    // unacked batches a stream keeps in flight

int EnvInt(const char* name, int fallback) {
  const char* value = std::getenv(name);
  int parsed = 0;
  return value != nullptr && absl::SimpleAtoi(value, &parsed) ? parsed : fallback;
}

std::string RunName(int stream) { return absl::StrCat("s", stream); }

// Stream `stream`'s record at `step`: values fixed by (stream, step), so a
// re-send is an exact duplicate and the file's values can be checked.
surge::v1::Record StreamRecord(int stream, int64_t step) {
  surge::v1::Record r;
  r.set_run(RunName(stream));
  r.set_step(step);
  r.set_examples(step * 32);
  r.set_lr(1e-3 * static_cast<double>(1 + step % 3));
  r.set_loss(2.0 / (1.0 + 0.001 * static_cast<double>(step)) + 0.01 * stream);
  if (step % 10 == 0) r.set_eval_loss(r.loss() + 0.05);
  return r;
}

std::unique_ptr<surge::v1::IngestRequest> Batch(int stream, uint64_t seq, int64_t first) {
  auto request = std::make_unique<surge::v1::IngestRequest>();
  request->set_job(kJob);
  request->set_seq(seq);
  for (int i = 0; i < kBatch; ++i) *request->add_records() = StreamRecord(stream, first + i);
  return request;
}

// Aborts with a message when a cycle does not finish in time: a core that
// hangs after a cut fails loudly instead of waiting for ctest's timeout.
class Watchdog {
 public:
  explicit Watchdog(absl::Duration limit) : limit_(limit), thread_([this] { Watch(); }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void Kick(const std::string& what) {
    std::lock_guard<std::mutex> lock(mu_);
    what_ = what;
    ++kicks_;
    cv_.notify_all();
  }

 private:
  void Watch() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!done_) {
      const int64_t seen = kicks_;
      if (!cv_.wait_for(lock, absl::ToChronoNanoseconds(limit_),
                        [&] { return done_ || kicks_ != seen; })) {
        std::fprintf(stderr, "power_cut_test: no progress for %s during %s; aborting\n",
                     absl::FormatDuration(limit_).c_str(), what_.c_str());
        std::abort();
      }
    }
  }

  const absl::Duration limit_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  int64_t kicks_ = 0;
  std::string what_ = "start-up";
  std::thread thread_;
};

// A database opened with plain SQLite ("unix" VFS). No checkpoint on close:
// the next core finds the WAL as the cut left it.
class PlainDb {
 public:
  explicit PlainDb(const std::string& path) {
    rc_ = sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, "unix");
    if (rc_ == SQLITE_OK) sqlite3_db_config(db_, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
  }
  ~PlainDb() { sqlite3_close_v2(db_); }
  bool ok() const { return rc_ == SQLITE_OK; }
  std::string error() const { return db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc_); }

  // Every row's first column as text, joined by "; " (or the error).
  std::string Text(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
      return absl::StrCat("error: ", error());
    }
    std::string out;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      const unsigned char* text = sqlite3_column_text(stmt, 0);
      absl::StrAppend(&out, out.empty() ? "" : "; ",
                      text ? reinterpret_cast<const char*>(text) : "NULL");
    }
    if (rc != SQLITE_DONE) absl::StrAppend(&out, " (error: ", error(), ")");
    sqlite3_finalize(stmt);
    return out;
  }
  // The first row's columns as integers (empty when no row or an error).
  std::vector<int64_t> Ints(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    std::vector<int64_t> out;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) return out;
    if (sqlite3_step(stmt) == SQLITE_ROW) {
      for (int i = 0; i < sqlite3_column_count(stmt); ++i) {
        out.push_back(sqlite3_column_int64(stmt, i));
      }
    }
    sqlite3_finalize(stmt);
    return out;
  }
  std::optional<double> Double(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    std::optional<double> out;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) return out;
    if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_type(stmt, 0) != SQLITE_NULL) {
      out = sqlite3_column_double(stmt, 0);
    }
    sqlite3_finalize(stmt);
    return out;
  }

 private:
  sqlite3* db_ = nullptr;
  int rc_ = SQLITE_OK;
};

struct HarnessOptions {
  int cuts = 200;
  store::StoreOptions::Synchronous synchronous = store::StoreOptions::Synchronous::kFull;
  uint64_t seed = 11;
  // Stop at the first cut that loses an acked record (the FULL test).
  bool stop_at_first_loss = true;
};

struct HarnessResult {
  int cuts = 0;
  int armed_cuts = 0;          // cut just before a chosen write or sync
  int torn_cuts = 0;           // kTearUnsynced
  int cuts_wal_unsynced = 0;   // the WAL had writes not yet synced
  int cuts_db_unsynced = 0;    // the database file had (a checkpoint in progress)
  int files_removed = 0;       // created and never synced
  int64_t blocks_reverted = 0;
  int64_t records_acked = 0;   // newly acked records, summed over cycles
  int64_t records_lost = 0;    // acked records missing after a cut, summed over cuts
  int cuts_with_loss = 0;
  int64_t runs_acked = 0;      // CreateRun calls that returned OK
  int64_t runs_lost = 0;
  int64_t db_syncs = 0;
  std::vector<std::string> problems;  // damage, counter mismatches, holes, errors
  std::string first_loss;
  absl::Duration wall;
  absl::Duration checking;    // of which: opening and checking the file after cuts
};

// One ingest stream of a cycle: a producer that keeps kWindow batches in
// flight, and an ack reader (NextAck, as the RPC layer's second thread).
class StreamDriver {
 public:
  StreamDriver(core::SurgeCore& core, int stream, int64_t first_step)
      : stream_(stream), first_(first_step), ingest_(core.OpenIngestStream()) {
    acks_ = std::thread([this] { ReadAcks(); });
    producer_ = std::thread([this] { Produce(); });
  }
  // Ends the producer, closes the stream (every queued batch commits or
  // fails), joins both threads. Returns the first step not acked.
  int64_t Finish() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    producer_.join();
    acks_.join();
    std::lock_guard<std::mutex> lock(mu_);
    return first_ + static_cast<int64_t>(acked_seq_) * kBatch;
  }

 private:
  void Produce() {
    for (uint64_t seq = 1;; ++seq) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || seq - acked_seq_ <= kWindow; });
        if (stop_) break;
      }
      const int64_t first = first_ + static_cast<int64_t>(seq - 1) * kBatch;
      if (!ingest_->Accept(Batch(stream_, seq, first)).ok()) break;  // a failed commit
    }
    ingest_->Close();
  }
  void ReadAcks() {
    while (std::optional<surge::v1::IngestResponse> ack = ingest_->NextAck()) {
      std::lock_guard<std::mutex> lock(mu_);
      acked_seq_ = ack->acked_seq();
      cv_.notify_all();
    }
  }

  const int stream_;
  const int64_t first_;
  std::unique_ptr<core::IngestStream> ingest_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  uint64_t acked_seq_ = 0;
  std::thread acks_;
  std::thread producer_;
};

surge::v1::CreateRunRequest RunRequest(const std::string& name, int64_t batch_size) {
  surge::v1::CreateRunRequest request;
  request.set_job(kJob);
  request.mutable_run()->set_name(name);
  request.mutable_run()->set_batch_size(batch_size);
  request.mutable_run()->set_protocol(surge::v1::PROTOCOL_PLAIN);
  request.mutable_run()->set_base_lr(1e-3);
  return request;
}

core::CoreOptions CycleOptions(const std::string& db, const HarnessOptions& options, int cycle) {
  core::CoreOptions core;
  core.db_path = db;
  core.unsafe_synchronous_normal_for_testing =
      options.synchronous == store::StoreOptions::Synchronous::kNormal;
  // Every other pair of cycles checkpoints every 32 WAL pages, so cuts also
  // land inside checkpoints (database writes, syncs, WAL restarts); the
  // others keep the server's interval (10,000 pages).
  if ((cycle / 2) % 2 == 1) core.wal_autocheckpoint_pages = 32;
  core.fits.debounce = absl::Milliseconds(5);  // fits run (and store) within a cycle
  core.fits.threads = 1;
  core.max_readers = 4;
  return core;
}

// The checks after a cut, on the restored file. `acked_below[k]`: stream k's
// first unacked step; lowered to what the file holds when records were lost
// (so a later cut counts only new losses).
void CheckFile(const std::string& db, int cycle, std::vector<int64_t>& acked_below,
               const std::vector<std::string>& acked_runs, HarnessResult& result) {
  PlainDb file(db);
  if (!file.ok()) {
    result.problems.push_back(absl::StrCat("cut ", cycle, ": open: ", file.error()));
    return;
  }
  const std::string integrity = file.Text("PRAGMA integrity_check");
  if (integrity != "ok") {
    result.problems.push_back(absl::StrCat("cut ", cycle, ": integrity_check: ", integrity));
    return;
  }
  for (int k = 0; k < kStreams; ++k) {
    const std::vector<int64_t> run = file.Ints(absl::StrCat(
        "SELECT r.id, r.record_count FROM runs r JOIN jobs j ON r.job_id = j.id "
        "WHERE j.name = '", kJob, "' AND r.name = '", RunName(k), "'"));
    if (run.size() != 2) {
      result.problems.push_back(absl::StrCat("cut ", cycle, ": run ", RunName(k), " missing"));
      continue;
    }
    const int64_t run_id = run[0];
    // present: acked records in the file; prefix: their highest step + 1.
    const std::vector<int64_t> below = file.Ints(absl::StrCat(
        "SELECT COUNT(*), COALESCE(MAX(step) + 1, 0) FROM records WHERE run_id = ", run_id,
        " AND step < ", acked_below[k]));
    const std::vector<int64_t> all =
        file.Ints(absl::StrCat("SELECT COUNT(*) FROM records WHERE run_id = ", run_id));
    if (below.size() != 2 || all.size() != 1) {
      result.problems.push_back(absl::StrCat("cut ", cycle, ": cannot count ", RunName(k)));
      continue;
    }
    const int64_t present = below[0], prefix = below[1];
    if (all[0] != run[1]) {
      result.problems.push_back(absl::StrCat("cut ", cycle, ": run ", RunName(k),
                                             " record_count ", run[1], " but ", all[0],
                                             " records (a transaction half applied)"));
    }
    if (present != prefix) {
      result.problems.push_back(absl::StrCat("cut ", cycle, ": run ", RunName(k),
                                             " has holes: ", present, " records below step ",
                                             prefix));
    }
    if (present < acked_below[k]) {
      const int64_t lost = acked_below[k] - present;
      result.records_lost += lost;
      if (result.first_loss.empty()) {
        result.first_loss = absl::StrCat("cut ", cycle, ": run ", RunName(k), ": ",
                                         acked_below[k], " records acked, ", present,
                                         " in the file (", lost, " lost)");
      }
      acked_below[k] = present;
    } else if (acked_below[k] > 0) {
      // The newest acked record holds the values that were sent.
      const int64_t step = acked_below[k] - 1;
      const std::optional<double> loss = file.Double(absl::StrCat(
          "SELECT loss FROM records WHERE run_id = ", run_id, " AND step = ", step));
      if (!loss || *loss != StreamRecord(k, step).loss()) {
        result.problems.push_back(absl::StrCat("cut ", cycle, ": run ", RunName(k), " step ",
                                               step, ": stored loss differs from the sent"));
      }
    }
  }
  for (const std::string& name : acked_runs) {
    const std::vector<int64_t> found = file.Ints(absl::StrCat(
        "SELECT COUNT(*) FROM runs r JOIN jobs j ON r.job_id = j.id WHERE j.name = '", kJob,
        "' AND r.name = '", name, "'"));
    if (found.empty() || found[0] != 1) {
      ++result.runs_lost;
      if (result.first_loss.empty()) {
        result.first_loss = absl::StrCat("cut ", cycle, ": run ", name, " was created (acked) "
                                         "and is not in the file");
      }
    }
  }
}

// Sets up the job and its runs, then runs options.cuts cycles on `db`.
HarnessResult RunPowerCuts(const std::string& db, const HarnessOptions& options) {
  CutVfs& vfs = CutVfs::Install(/*make_default=*/true);
  const testing::CutVfsStats stats_before = vfs.stats();
  HarnessResult result;
  const absl::Time start = absl::Now();
  std::mt19937_64 rng(options.seed);
  Watchdog watchdog(absl::Seconds(60));
  {
    // Setup, closed cleanly; a new file's folder entry is taken as synced.
    absl::StatusOr<std::unique_ptr<core::SurgeCore>> setup =
        core::SurgeCore::Open(CycleOptions(db, options, 0));
    if (!setup.ok()) {
      result.problems.push_back(absl::StrCat("setup: ", setup.status().ToString()));
      return result;
    }
    surge::v1::CreateJobRequest job;
    job.mutable_job()->set_name(kJob);
    job.mutable_job()->set_batch_unit(surge::v1::BATCH_UNIT_EXAMPLES);
    absl::Status status = (*setup)->CreateJob(job).status();
    for (int k = 0; k < kStreams && status.ok(); ++k) {
      status = (*setup)->CreateRun(RunRequest(RunName(k), 32 << k)).status();
    }
    if (!status.ok()) {
      result.problems.push_back(absl::StrCat("setup: ", status.ToString()));
      return result;
    }
  }
  vfs.ForgetUnsynced();

  std::vector<int64_t> acked_below(kStreams, 0);
  std::vector<std::string> acked_runs;
  for (int cycle = 0; cycle < options.cuts; ++cycle) {
    watchdog.Kick(absl::StrCat("cycle ", cycle));
    absl::StatusOr<std::unique_ptr<core::SurgeCore>> opened =
        core::SurgeCore::Open(CycleOptions(db, options, cycle));
    if (!opened.ok()) {
      result.problems.push_back(absl::StrCat("cut ", cycle, ": open after the previous cut: ",
                                             opened.status().ToString()));
      break;
    }
    std::unique_ptr<core::SurgeCore> core = std::move(*opened);
    // The cut: just before a random write or sync (most land inside a
    // commit or a checkpoint), or at a random moment if that comes first.
    vfs.ArmCut(1 + static_cast<int64_t>(rng() % 800));
    const absl::Duration deadline = absl::Milliseconds(10 + static_cast<int64_t>(rng() % 90));

    std::vector<std::unique_ptr<StreamDriver>> streams;
    for (int k = 0; k < kStreams; ++k) {
      streams.push_back(std::make_unique<StreamDriver>(*core, k, acked_below[k]));
    }
    std::vector<std::string> created;  // written only by the run creator
    std::atomic<bool> stop{false};
    std::thread creator([&] {
      for (int i = 0; !stop.load(); ++i) {
        const std::string name = absl::StrCat("c", cycle, "-", i);
        if (!core->CreateRun(RunRequest(name, 64)).ok()) break;
        created.push_back(name);
        std::this_thread::sleep_for(std::chrono::milliseconds(3));
      }
    });

    if (vfs.WaitFrozen(deadline)) {
      ++result.armed_cuts;
    } else {
      vfs.Freeze();
    }
    // Everything after the cut fails; wind the core down.
    stop = true;
    for (int k = 0; k < kStreams; ++k) {
      const int64_t below = streams[k]->Finish();
      result.records_acked += below - acked_below[k];
      acked_below[k] = below;
    }
    creator.join();
    acked_runs.insert(acked_runs.end(), created.begin(), created.end());
    result.runs_acked += static_cast<int64_t>(created.size());
    watchdog.Kick(absl::StrCat("cycle ", cycle, ": shutting the core down after the cut"));
    core.reset();

    const CutMode mode = cycle % 2 == 0 ? CutMode::kDropUnsynced : CutMode::kTearUnsynced;
    absl::StatusOr<CutReport> report = vfs.RestoreAfterCut(mode, rng);
    if (!report.ok()) {
      result.problems.push_back(absl::StrCat("cut ", cycle, ": ", report.status().ToString()));
      break;
    }
    ++result.cuts;
    result.torn_cuts += mode == CutMode::kTearUnsynced ? 1 : 0;
    result.cuts_wal_unsynced += report->wal_unsynced ? 1 : 0;
    result.cuts_db_unsynced += report->db_unsynced ? 1 : 0;
    result.files_removed += report->files_removed;
    result.blocks_reverted += report->blocks_reverted;

    const int64_t lost_before = result.records_lost + result.runs_lost;
    watchdog.Kick(absl::StrCat("cycle ", cycle, ": checking the file"));
    const absl::Time check_start = absl::Now();
    CheckFile(db, cycle, acked_below, acked_runs, result);
    result.checking += absl::Now() - check_start;
    if (result.records_lost + result.runs_lost > lost_before) {
      ++result.cuts_with_loss;
      // Lost runs are counted once.
      acked_runs.clear();
      if (options.stop_at_first_loss) break;
    }
    if (!result.problems.empty()) break;
  }
  result.db_syncs = vfs.stats().db_syncs - stats_before.db_syncs;
  result.wall = absl::Now() - start;
  return result;
}

std::string Summary(const HarnessResult& r) {
  return absl::StrFormat(
      "%d cuts (%d before a chosen write or sync, %d torn) in %.1f s (%.1f s checking): "
      "%d records acked, %d acked records lost (%d cuts with losses), %d runs created, %d "
      "lost; cuts with unsynced WAL writes %d, with unsynced database writes %d; %d new files "
      "removed, %d blocks reverted; %d database-file syncs",
      r.cuts, r.armed_cuts, r.torn_cuts, absl::ToDoubleSeconds(r.wall),
      absl::ToDoubleSeconds(r.checking), r.records_acked, r.records_lost, r.cuts_with_loss,
      r.runs_acked, r.runs_lost, r.cuts_wal_unsynced, r.cuts_db_unsynced, r.files_removed,
      r.blocks_reverted, r.db_syncs);
}

TEST(PowerCutTest, AckedRecordsSurviveEveryCut) {
  testing::TempDir dir;
  HarnessOptions options;
  options.cuts = EnvInt("SURGE_POWER_CUTS", 200);
  options.seed = static_cast<uint64_t>(EnvInt("SURGE_POWER_CUT_SEED", 11));
  HarnessResult r = RunPowerCuts(dir.File("power.db"), options);
  std::cout << "synchronous=FULL (seed " << options.seed << "): " << Summary(r) << "\n";
  for (const std::string& problem : r.problems) ADD_FAILURE() << problem;
  EXPECT_EQ(r.records_lost, 0) << r.first_loss;
  EXPECT_EQ(r.runs_lost, 0) << r.first_loss;
  EXPECT_EQ(r.cuts, options.cuts);
  EXPECT_GT(r.records_acked, 0);
  EXPECT_GT(r.cuts_wal_unsynced, 0) << "no cut found the WAL mid-commit";
}

// The self-check: synchronous=NORMAL does not fsync WAL commits, so records
// acked since the last checkpoint die with the power. The harness must see it.
TEST(PowerCutTest, SelfCheckSynchronousNormalLosesAckedRecords) {
  testing::TempDir dir;
  HarnessOptions options;
  options.cuts = EnvInt("SURGE_POWER_CUTS_NORMAL", 20);
  options.seed = static_cast<uint64_t>(EnvInt("SURGE_POWER_CUT_SEED", 11)) + 1;
  options.synchronous = store::StoreOptions::Synchronous::kNormal;
  options.stop_at_first_loss = false;
  HarnessResult r = RunPowerCuts(dir.File("normal.db"), options);
  std::cout << "synchronous=NORMAL (seed " << options.seed << "): " << Summary(r) << "\n";
  if (!r.first_loss.empty()) std::cout << "first loss: " << r.first_loss << "\n";
  for (const std::string& problem : r.problems) ADD_FAILURE() << problem;
  EXPECT_GT(r.records_lost, 0)
      << "the harness saw no acked record lost with synchronous=NORMAL: it cannot detect losses";
}

}  // namespace
}  // namespace surge
