// End-to-end on PostgreSQL: a real surge-server with
// --db=postgresql://surge@127.0.0.1:PORT/DB on a throwaway PostgreSQL 15
// (tests/support/pg_server.h; skipped, saying why, where none can run).
//   1. Every kind of call: jobs and runs, 10k records streamed through the
//      C++ IngestSession, counts and pages read back, an identical re-send
//      (duplicates) and a conflicting one (ALREADY_EXISTS); a synthetic probe
//      sweep written by a second core (another "replica" on the same
//      database), then GetFit/GetAdvice from the server; a restart keeps it
//      all, and fit versions stay consecutive although both wrote fits.
//   2. kill -9 of the server mid-stream: every acked record is in
//      PostgreSQL before the restart, and in the end every record is stored
//      exactly once.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/cpp/ingest_session.h"
#include "client/cpp/surge_client.h"
#include "gtest/gtest.h"
#include "server/core/surge_core.h"
#include "tests/support/pg_server.h"
#include "tests/support/server_child.h"
#include "tests/support/streaming_job.h"
#include "tests/support/synthetic_probes.h"
#include "tests/support/temp_dir.h"

namespace surge {
namespace {

using testing::PgServer;
using testing::Server;

// A fresh database on the shared server, or a skip reason.
struct Database {
  PgServer* pg = nullptr;
  std::string name;
  std::string url;
};

absl::StatusOr<Database> NewDatabase(const std::string& tag) {
  absl::StatusOr<PgServer*> pg = testing::SharedPgServer();
  if (!pg.ok()) return pg.status();
  Database db{*pg, absl::StrCat(tag, "_", getpid()), ""};
  absl::StatusOr<std::string> url = (*pg)->CreateDatabase(db.name);
  if (!url.ok()) return url.status();
  db.url = *url;
  return db;
}

int64_t SqlInt(const Database& db, const std::string& sql) {
  absl::StatusOr<std::string> cell = db.pg->Sql(db.name, sql);
  EXPECT_TRUE(cell.ok()) << cell.status();
  return cell.ok() && !cell->empty() ? std::stoll(*cell) : -1;
}

client::SurgeClient Client(const Server& server) {
  client::ClientOptions options;
  options.target = server.address();
  options.call_timeout = absl::Seconds(30);
  return client::SurgeClient(options);
}

void Stop(Server& server) {
  server.process.Kill(SIGTERM);
  ASSERT_NE(server.process.Wait(), -1);
}

// Streams steps [from, to) of run r1 through one session; its final stats.
client::IngestStats Stream(client::SurgeClient& client, const std::string& job, int64_t from,
                           int64_t to, absl::Status* flushed) {
  client::IngestSession session(client.channel(), job);
  for (int64_t step = from; step < to; ++step) {
    absl::Status s = session.Append(testing::StepRecord(step), absl::Seconds(30));
    if (!s.ok()) {
      *flushed = s;
      return session.stats();
    }
  }
  *flushed = session.Flush(absl::Seconds(60));
  return session.stats();
}

TEST(PgE2eTest, EveryKindOfCallWorksOnPostgresql) {
  absl::StatusOr<Database> db = NewDatabase("e2e_calls");
  if (!db.ok()) GTEST_SKIP() << "no PostgreSQL for this test: " << db.status();
  testing::TempDir dir;
  const std::vector<std::string> args = {"--db=" + db->url, "--listen=127.0.0.1:0",
                                         "--http=127.0.0.1:0"};
  absl::StatusOr<Server> server = testing::StartServer(dir, "pg", args);
  ASSERT_TRUE(server.ok()) << server.status();
  client::SurgeClient client = Client(*server);

  ASSERT_TRUE(testing::CreateJobWithRun(client, "stream").ok());
  absl::Time t0 = absl::Now();
  absl::Status flushed;
  client::IngestStats stats = Stream(client, "stream", 0, 10000, &flushed);
  ASSERT_TRUE(flushed.ok()) << flushed;
  std::cout << "10,000 records streamed and acked in "
            << absl::ToDoubleMilliseconds(absl::Now() - t0) << " ms\n";
  EXPECT_EQ(stats.acked_records, 10000);
  EXPECT_EQ(stats.stored_records, 10000);
  absl::StatusOr<surge::v1::Job> job = client.GetJob("stream");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->run_count(), 1);
  EXPECT_EQ(job->record_count(), 10000);
  EXPECT_EQ(SqlInt(*db, "SELECT COUNT(*) FROM records"), 10000);
  surge::v1::ListRecordsRequest page_request;
  page_request.set_job("stream");
  page_request.set_page_size(100);
  absl::StatusOr<surge::v1::ListRecordsResponse> page = client.ListRecords(page_request);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->records_size(), 100);
  EXPECT_EQ(page->records(99).step(), 99);
  EXPECT_EQ(page->records(99).loss(), testing::StepRecord(99).loss());
  EXPECT_FALSE(page->next_page_token().empty());

  // The same records again: duplicates; other values for a stored step: refused.
  client::IngestStats again = Stream(client, "stream", 5000, 10000, &flushed);
  ASSERT_TRUE(flushed.ok()) << flushed;
  EXPECT_EQ(again.duplicate_records, 5000);
  EXPECT_EQ(again.stored_records, 0);
  {
    client::IngestSession session(client.channel(), "stream");
    surge::v1::Record changed = testing::StepRecord(7);
    changed.set_loss(0.125);
    ASSERT_TRUE(session.Append(changed).ok());
    absl::Status conflict = session.Flush(absl::Seconds(30));
    EXPECT_EQ(conflict.code(), absl::StatusCode::kAlreadyExists) << conflict;
    EXPECT_NE(conflict.message().find("step 7"), absl::string_view::npos) << conflict;
  }
  EXPECT_EQ(client.GetJob("stream")->record_count(), 10000);

  // A probe sweep written by a second core on the same database (another
  // replica); its fits and the server's share the job's version sequence.
  testing::SweepSpec spec;
  spec.batch_sizes = {4, 16, 64, 256, 1024};
  spec.seeds = 2;
  spec.base_steps = 1600;
  {
    core::CoreOptions options;
    options.db_path = db->url;
    absl::StatusOr<std::unique_ptr<core::SurgeCore>> other = core::SurgeCore::Open(options);
    ASSERT_TRUE(other.ok()) << other.status();
    absl::Time t1 = absl::Now();
    absl::StatusOr<int> probes = testing::LoadSyntheticSweep(**other, "sweep", spec);
    ASSERT_TRUE(probes.ok()) << probes.status();
    std::cout << *probes << " probe runs loaded by a second core in "
              << absl::ToDoubleMilliseconds(absl::Now() - t1) << " ms\n";
  }
  absl::StatusOr<surge::v1::Fit> fit = client.GetFit("sweep");
  ASSERT_TRUE(fit.ok()) << fit.status();
  EXPECT_TRUE(fit->error().empty()) << fit->error();
  EXPECT_EQ(fit->stages_size(), 2);
  absl::StatusOr<surge::v1::Advice> advice = client.GetAdvice("sweep", 64, 1500);
  ASSERT_TRUE(advice.ok()) << advice.status();
  EXPECT_GT(advice->lr(), 0);
  std::cout << "fit version " << fit->version() << ", advice at batch 64, step 1500: lr "
            << advice->lr() << "\n";

  // A restart on the same database keeps everything; the stored fit is reused.
  Stop(*server);
  server = testing::StartServer(dir, "pg2", args);
  ASSERT_TRUE(server.ok()) << server.status();
  client::SurgeClient client2 = Client(*server);
  absl::StatusOr<surge::v1::Job> kept = client2.GetJob("stream");
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(kept->record_count(), 10000);
  absl::StatusOr<surge::v1::Fit> refit = client2.GetFit("sweep");
  ASSERT_TRUE(refit.ok()) << refit.status();
  EXPECT_EQ(refit->version(), fit->version());
  absl::StatusOr<surge::v1::ListJobsResponse> jobs = client2.ListJobs();
  ASSERT_TRUE(jobs.ok());
  EXPECT_EQ(jobs->jobs_size(), 2);
  const int64_t versions = SqlInt(*db, "SELECT COUNT(*) FROM fits f JOIN jobs j ON j.id = "
                                       "f.job_id WHERE j.name = 'sweep'");
  EXPECT_GE(versions, 1);
  EXPECT_EQ(SqlInt(*db, "SELECT COUNT(DISTINCT version) FROM fits f JOIN jobs j ON j.id = "
                        "f.job_id WHERE j.name = 'sweep'"),
            versions);
  EXPECT_EQ(SqlInt(*db, "SELECT MAX(version) FROM fits f JOIN jobs j ON j.id = f.job_id "
                        "WHERE j.name = 'sweep'"),
            versions);
  absl::StatusOr<surge::v1::DeleteJobResponse> deleted = client2.DeleteJob("stream");
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(SqlInt(*db, "SELECT COUNT(*) FROM records r JOIN runs u ON u.id = r.run_id "
                        "JOIN jobs j ON j.id = u.job_id WHERE j.name = 'stream'"),
            0);
  Stop(*server);
}

TEST(PgE2eTest, AckedRecordsSurviveKill9AndEachIsStoredOnce) {
  absl::StatusOr<Database> db = NewDatabase("e2e_kill");
  if (!db.ok()) GTEST_SKIP() << "no PostgreSQL for this test: " << db.status();
  testing::TempDir dir;
  absl::StatusOr<Server> server =
      testing::StartServer(dir, "a", {"--db=" + db->url, "--listen=127.0.0.1:0"});
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = server->port;
  client::SurgeClient client = Client(*server);
  ASSERT_TRUE(testing::CreateJobWithRun(client, "crash").ok());

  constexpr int64_t kTotal = 60000;
  client::IngestOptions ingest;
  ingest.batch_records = 500;
  ingest.linger = absl::Milliseconds(5);
  ingest.max_backoff = absl::Milliseconds(200);
  client::IngestSession session(client.channel(), "crash", ingest);
  int64_t acked_at_kill = -1;
  for (int64_t step = 0; step < kTotal; ++step) {
    ASSERT_TRUE(session.Append(testing::StepRecord(step), absl::Seconds(60)).ok());
    if (step == 20000) {
      while (session.stats().acked_records < 10000) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
    if (step == 30000) {  // after a burst of appends: some still in flight
      server->process.Kill(SIGKILL);
      ASSERT_NE(server->process.Wait(), -1);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      acked_at_kill = session.stats().acked_records;
      // Acked means committed: all of them are in PostgreSQL now.
      EXPECT_EQ(SqlInt(*db, absl::StrCat("SELECT COUNT(*) FROM records WHERE step < ",
                                         acked_at_kill)),
                acked_at_kill);
      server = testing::StartServer(
          dir, "b", {"--db=" + db->url, absl::StrCat("--listen=127.0.0.1:", port)});
      ASSERT_TRUE(server.ok()) << server.status();
    }
  }
  ASSERT_TRUE(session.Flush(absl::Seconds(120)).ok());
  client::IngestStats stats = session.stats();
  EXPECT_EQ(stats.acked_records, kTotal);
  EXPECT_GE(stats.reconnects, 1);
  EXPECT_EQ(stats.stored_records + stats.duplicate_records, kTotal);
  EXPECT_EQ(SqlInt(*db, "SELECT COUNT(*) FROM records"), kTotal);
  EXPECT_EQ(SqlInt(*db, "SELECT COUNT(DISTINCT step) FROM records"), kTotal);
  EXPECT_EQ(SqlInt(*db, "SELECT record_count FROM runs"), kTotal);
  EXPECT_EQ(SqlInt(*db, "SELECT last_step FROM runs"), kTotal - 1);
  std::cout << "acked at kill " << acked_at_kill << " of 30001 appended; reconnects "
            << stats.reconnects << ", batches re-sent " << stats.batches_resent
            << ", duplicates " << stats.duplicate_records << "\n";
  Stop(*server);
}

}  // namespace
}  // namespace surge
