// Crash test: stream records with acks, kill -9 the server mid-stream, check
// on the database file that every acked record is there, restart the server
// on the same file and port, and check that the client resumed: in the end
// every record is stored exactly once.
#include <signal.h>
#include <sys/wait.h>

#include <thread>

#include "client/cpp/ingest_session.h"
#include "client/cpp/surge_client.h"
#include "gtest/gtest.h"
#include "server/store/sqlite_store.h"
#include "tests/support/streaming_job.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace surge {
namespace {

// Counts stored records of run r1 with step < `below`, reading the file directly.
int64_t CountStored(const std::string& db, int64_t below) {
  store::StoreOptions options;
  options.migrate = false;
  auto s = store::SqliteStore::Open(db, options);
  EXPECT_TRUE(s.ok()) << s.status();
  auto key = (*s)->LookupRun("crash", "r1");
  EXPECT_TRUE(key.ok()) << key.status();
  int64_t count = 0;
  store::RecordCursor after{key->run_id, -1};
  while (true) {
    auto page = (*s)->ListRecords(key->job_id, key->run_id, after, 50000);
    EXPECT_TRUE(page.ok()) << page.status();
    for (const auto& r : page->records) count += r.step() < below ? 1 : 0;
    if (!page->next) break;
    after = *page->next;
  }
  return count;
}

TEST(CrashTest, AckedRecordsSurviveKill9AndClientResumes) {
  testing::TempDir dir;
  const std::string db = dir.File("crash.db");
  auto server = testing::ServerProcess::Start(db, dir.path());
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = server->port();

  client::ClientOptions options;
  options.target = server->address();
  options.call_timeout = absl::Seconds(10);
  client::SurgeClient client(options);
  ASSERT_TRUE(testing::CreateJobWithRun(client, "crash").ok());

  constexpr int64_t kTotal = 300000;
  client::IngestOptions ingest;
  ingest.batch_records = 1000;
  ingest.linger = absl::Milliseconds(5);
  ingest.max_backoff = absl::Milliseconds(200);
  client::IngestSession session(client.channel(), "crash", ingest);

  int64_t acked_at_kill = -1;
  int64_t appended_at_kill = 0;
  bool restarted = false;
  for (int64_t step = 0; step < kTotal; ++step) {
    ASSERT_TRUE(session.Append(testing::StepRecord(step), absl::Seconds(60)).ok());
    if (acked_at_kill < 0 && step == 100000) {
      // Some batches acked, then a burst of appends, then the kill: the burst's
      // last batches are still buffered or in flight when the server dies.
      while (session.stats().acked_records < 20000) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
    if (acked_at_kill < 0 && step == 120000) {
      server->process().Kill(SIGKILL);
      ASSERT_NE(server->process().Wait(), -1);
      // Acks that were already on the wire may still be read: take the count
      // after the process is gone.
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      acked_at_kill = session.stats().acked_records;
      appended_at_kill = step + 1;
      ASSERT_LT(acked_at_kill, appended_at_kill) << "kill came after everything was acked";
      // Every acked record is in the file, before any re-send can happen.
      EXPECT_EQ(CountStored(db, acked_at_kill), acked_at_kill);
    }
    if (acked_at_kill >= 0 && !restarted && step >= appended_at_kill + 30000) {
      auto again = testing::ServerProcess::Start(db, dir.path(), port);
      ASSERT_TRUE(again.ok()) << again.status();
      *server = std::move(*again);
      restarted = true;
    }
  }
  ASSERT_TRUE(restarted);
  ASSERT_TRUE(session.Flush(absl::Seconds(120)).ok());
  client::IngestStats stats = session.stats();
  EXPECT_EQ(stats.acked_records, kTotal);
  EXPECT_GE(stats.reconnects, 1);
  // Unacked batches at the kill were re-sent; those the dead server had
  // committed without acking come back as duplicates. Each record counts once.
  EXPECT_EQ(stats.stored_records + stats.duplicate_records, kTotal);
  EXPECT_GT(stats.batches_resent, 0);

  int64_t seen = 0;
  int64_t next_step = 0;
  ASSERT_TRUE(client
                  .ForEachRecordPage("crash", "", 50000,
                                     [&](const surge::v1::ListRecordsResponse& page) {
                                       for (const auto& r : page.records()) {
                                         EXPECT_EQ(r.step(), next_step);
                                         ++next_step;
                                         ++seen;
                                       }
                                       return absl::OkStatus();
                                     })
                  .ok());
  EXPECT_EQ(seen, kTotal);
  auto fetched = client.GetJob("crash");
  ASSERT_TRUE(fetched.ok());
  EXPECT_EQ(fetched->record_count(), kTotal);
  std::cout << "acked at kill " << acked_at_kill << " of " << appended_at_kill
            << " appended; reconnects " << stats.reconnects << ", batches re-sent "
            << stats.batches_resent << ", duplicates " << stats.duplicate_records << "\n";
}

}  // namespace
}  // namespace surge
