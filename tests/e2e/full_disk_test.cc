// Fault test (issue 11): a full disk. The test moves itself into a private
// mount namespace (root only; skipped otherwise) and mounts a 4 MiB tmpfs
// for the database, so the server's child process runs out of space while an
// IngestSession streams. While the disk is full nothing acked is lost and the
// server answers UNAVAILABLE (the session retries); when space returns (the
// tmpfs is remounted larger) the server recovers without a restart and every
// record ends up stored exactly once.
#include <sched.h>
#include <sys/mount.h>

#include <iostream>
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

int64_t StoredBelow(const std::string& db, int64_t below) {
  store::StoreOptions options;
  options.migrate = false;
  auto s = store::SqliteStore::Open(db, options);
  if (!s.ok()) return -1;
  auto key = (*s)->LookupRun("full", "r1");
  if (!key.ok()) return -1;
  int64_t n = 0;
  store::RecordCursor after{key->run_id, -1};
  while (true) {
    auto page = (*s)->ListRecords(key->job_id, key->run_id, after, 100000);
    if (!page.ok()) return -1;
    for (const auto& r : page->records) n += r.step() < below ? 1 : 0;
    if (!page->next) break;
    after = *page->next;
  }
  return n;
}

TEST(FullDiskTest, NothingAckedIsLostAndTheServerRecovers) {
  if (unshare(CLONE_NEWNS) != 0 || mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    GTEST_SKIP() << "needs root for a private mount namespace";
  }
  testing::TempDir dir;
  const std::string disk = dir.File("disk");
  ASSERT_EQ(system(("mkdir -p " + disk).c_str()), 0);
  ASSERT_EQ(mount("tmpfs", disk.c_str(), "tmpfs", 0, "size=4m"), 0) << "mount tmpfs";
  const std::string db = disk + "/full.db";
  auto server = testing::ServerProcess::Start(db, dir.path());
  ASSERT_TRUE(server.ok()) << server.status();

  client::ClientOptions options;
  options.target = server->address();
  options.call_timeout = absl::Seconds(10);
  client::SurgeClient client(options);
  ASSERT_TRUE(testing::CreateJobWithRun(client, "full").ok());

  client::IngestOptions ingest;
  ingest.batch_records = 500;
  ingest.linger = absl::Milliseconds(2);
  ingest.max_backoff = absl::Milliseconds(100);
  client::IngestSession session(client.channel(), "full", ingest);

  // Stream until the acks stop growing for a second: the disk is full.
  int64_t step = 0;
  int64_t last_acked = -1;
  absl::Time stalled_since = absl::Now();
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  while (absl::Now() < give_up) {
    for (int i = 0; i < 500; ++i) ASSERT_TRUE(session.Append(testing::StepRecord(step++), absl::Seconds(60)).ok());
    const int64_t acked = session.stats().acked_records;
    if (acked != last_acked) {
      last_acked = acked;
      stalled_since = absl::Now();
    } else if (absl::Now() - stalled_since > absl::Seconds(1) && acked > 0) {
      break;
    }
    if (step - acked > 200000) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const int64_t acked_when_full = session.stats().acked_records;
  ASSERT_GT(acked_when_full, 0);
  ASSERT_LT(acked_when_full, step) << "the disk never filled";
  // Everything acked is in the file; the server is alive and says why it
  // cannot write.
  EXPECT_EQ(StoredBelow(db, acked_when_full), acked_when_full) << "acked records lost (-1: unreadable)";
  auto health = client.GetJob("full");
  EXPECT_TRUE(health.ok()) << health.status();
  surge::v1::Job other;
  other.set_name("other");
  other.set_batch_unit(surge::v1::BATCH_UNIT_EXAMPLES);
  auto refused = client.CreateJob(other);
  if (!refused.ok()) {
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable) << refused.status();
  }
  std::cout << "a write while full: " << (refused.ok() ? "OK" : refused.status().ToString()) << "\n";

  // Space returns: the same server stores the rest.
  ASSERT_EQ(mount("tmpfs", disk.c_str(), "tmpfs", MS_REMOUNT, "size=256m"), 0) << "remount";
  ASSERT_TRUE(session.Flush(absl::Seconds(120)).ok());
  const client::IngestStats stats = session.stats();
  EXPECT_EQ(stats.acked_records, step);
  auto fetched = client.GetJob("full");
  ASSERT_TRUE(fetched.ok()) << fetched.status();
  EXPECT_EQ(fetched->record_count(), step) << "every record exactly once";
  std::cout << "disk full after " << acked_when_full << " acked records; " << step
            << " in all after space returned; reconnects " << stats.reconnects
            << ", batches re-sent " << stats.batches_resent << "\n";
  if (HasFailure()) {
    std::cout << "server log (" << server->log_path() << "):\n"
              << testing::ReadFile(server->log_path()) << "\n";
  }
  server->process().Kill(SIGTERM);
  server->process().Wait();
  umount2(disk.c_str(), MNT_DETACH);
}

}  // namespace
}  // namespace surge
