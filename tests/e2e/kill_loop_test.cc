// Fault test at volume (issue 11): >= 100 kill -9 cycles of a real
// surge-server while an IngestSession streams (and background fits run).
// After each kill, before any re-send can happen, the database file is
// opened directly: every record the session saw acked is there and
// PRAGMA integrity_check is clean. Then the server restarts on the same file
// and port, the session resumes, and at the end every record is stored
// exactly once. Cycles: $SURGE_KILL_CYCLES (default 100).
//
// Its self-check: scripts/fault_canary.sh builds with
// -DSURGE_PLANT_ACK_BEFORE_COMMIT=ON (the write queue acks before it
// commits) and expects this test to fail.
#include <signal.h>

#include <cstdlib>
#include <iostream>
#include <random>
#include <thread>

#include "client/cpp/ingest_session.h"
#include "client/cpp/surge_client.h"
#include "gtest/gtest.h"
#include "server/store/sqlite_db.h"
#include "server/store/sqlite_store.h"
#include "tests/support/streaming_job.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace surge {
namespace {

// StepRecord with an LR that varies and an eval loss every 10th step.
surge::v1::Record MakeRecord(int64_t step) {
  surge::v1::Record r = testing::StepRecord(step);
  r.set_lr(1e-3 * (1 + step % 3));
  if (step % 10 == 0) r.set_eval_loss(r.loss() + 0.05);
  return r;
}

// Records of run r1 with step < `below` in the file, and its integrity check.
struct FileState {
  int64_t below = 0;
  std::string integrity;
};
FileState ReadFile(const std::string& db, int64_t below) {
  FileState out;
  store::StoreOptions options;
  options.migrate = false;
  auto s = store::SqliteStore::Open(db, options);
  EXPECT_TRUE(s.ok()) << s.status();
  if (!s.ok()) return out;
  auto key = (*s)->LookupRun("kill", "r1");
  EXPECT_TRUE(key.ok()) << key.status();
  if (!key.ok()) return out;
  store::RecordCursor after{key->run_id, -1};
  while (true) {
    auto page = (*s)->ListRecords(key->job_id, key->run_id, after, 100000);
    EXPECT_TRUE(page.ok()) << page.status();
    if (!page.ok()) break;
    for (const auto& r : page->records) out.below += r.step() < below ? 1 : 0;
    if (!page->next) break;
    after = *page->next;
  }
  auto db_handle = store::SqliteDb::Open(db);
  if (db_handle.ok()) {
    auto check = (*db_handle)->Prepare("PRAGMA integrity_check");
    if (check.ok() && (*check)->Step().value_or(false)) out.integrity = (*check)->ColumnText(0);
  }
  return out;
}

TEST(KillLoopTest, EveryAckedRecordSurvivesEveryKill) {
  int cycles = 100;
  if (const char* env = std::getenv("SURGE_KILL_CYCLES")) cycles = std::max(1, std::atoi(env));
  testing::TempDir dir;
  const std::string db = dir.File("kill.db");
  auto server = testing::ServerProcess::Start(db, dir.path());
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = server->port();

  client::ClientOptions options;
  options.target = server->address();
  options.call_timeout = absl::Seconds(10);
  client::SurgeClient client(options);
  ASSERT_TRUE(testing::CreateJobWithRun(client, "kill").ok());

  client::IngestOptions ingest;
  ingest.batch_records = 200;
  ingest.linger = absl::Milliseconds(2);
  ingest.max_backoff = absl::Milliseconds(50);
  client::IngestSession session(client.channel(), "kill", ingest);

  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int> pause_ms(30, 250);
  int64_t step = 0;
  int64_t lost_total = 0, kills_with_unacked = 0;
  for (int cycle = 0; cycle < cycles; ++cycle) {
    // Stream for a random while (the server fits the job in the background
    // as records land), then kill -9 mid-stream.
    const absl::Time until = absl::Now() + absl::Milliseconds(pause_ms(rng));
    while (absl::Now() < until) {
      for (int i = 0; i < 100; ++i) ASSERT_TRUE(session.Append(MakeRecord(step++), absl::Seconds(60)).ok());
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    server->process().Kill(SIGKILL);
    ASSERT_NE(server->process().Wait(), -1);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // acks already on the wire
    const int64_t acked = session.stats().acked_records;
    kills_with_unacked += acked < step;
    const FileState file = ReadFile(db, acked);
    EXPECT_EQ(file.below, acked) << "cycle " << cycle << ": acked records lost";
    EXPECT_EQ(file.integrity, "ok") << "cycle " << cycle;
    lost_total += acked - file.below;
    if (::testing::Test::HasFailure()) {
      std::cout << "cycle " << cycle << ": " << acked << " records acked, " << file.below
                << " of them in the file\n";
      return;  // the server is down: no flush
    }
    auto again = testing::ServerProcess::Start(db, dir.path(), port);
    ASSERT_TRUE(again.ok()) << again.status();
    *server = std::move(*again);
  }
  ASSERT_TRUE(session.Flush(absl::Seconds(120)).ok());
  const client::IngestStats stats = session.stats();
  EXPECT_EQ(stats.acked_records, step);
  EXPECT_EQ(stats.stored_records + stats.duplicate_records, step);
  auto fetched = client.GetJob("kill");
  ASSERT_TRUE(fetched.ok());
  EXPECT_EQ(fetched->record_count(), step) << "every record exactly once";
  EXPECT_GT(kills_with_unacked, cycles / 2) << "kills should land mid-stream";
  std::cout << cycles << " kill -9 cycles, " << step << " records, kills with unacked records "
            << kills_with_unacked << ", acked records lost " << lost_total << ", reconnects "
            << stats.reconnects << ", batches re-sent " << stats.batches_resent << "\n";
}

}  // namespace
}  // namespace surge
