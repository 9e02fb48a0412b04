// Backup test: a real surge-server ingests continuously (a client thread
// streaming through IngestSession) while surge-backup copies its live file in
// small steps; then a second server serves the backup. Checked on the backup:
// integrity_check ok; every run holds steps 0..n-1 with none missing and its
// counter equal to n (one consistent snapshot, not a mix of moments), n no
// more than the live run holds in the end and no fewer than were acked
// before the backup started; surge-backup --verify agrees with the live
// database; the restored server serves the same counts and takes new
// records. Also the tool's refusals: an existing --out, a held database
// under --force, usage errors.
#include <sqlite3.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/cpp/ingest_session.h"
#include "client/cpp/surge_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace surge {
namespace {

using ::testing::HasSubstr;

constexpr int kRuns = 4;
constexpr char kJob[] = "bak";

// Record i of the stream goes to run r(i % kRuns) as step i / kRuns, so an
// acked prefix of A records holds steps 0..AckedSteps(A, k)-1 of run k.
surge::v1::Record MakeRecord(int64_t i) {
  surge::v1::Record r;
  r.set_run(absl::StrCat("r", i % kRuns));
  r.set_step(i / kRuns);
  r.set_examples((i / kRuns + 1) * 32);
  r.set_lr(1e-3);
  r.set_loss(2.0 / (1.0 + 0.001 * static_cast<double>(i / kRuns)));
  return r;
}
int64_t AckedSteps(int64_t acked, int run) {
  return acked > run ? (acked - run + kRuns - 1) / kRuns : 0;
}

// One run as stored in a database file.
struct StoredRun {
  int64_t counter = 0;  // runs.record_count
  int64_t count = 0;
  int64_t min_step = -1;
  int64_t max_step = -1;
};

// Reads the runs of job kJob and PRAGMA integrity_check from a database file.
std::map<std::string, StoredRun> ReadRuns(const std::string& path, std::string* integrity) {
  std::map<std::string, StoredRun> runs;
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(("file:" + path + "?mode=ro").c_str(), &db,
                            SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, nullptr),
            SQLITE_OK);
  auto query = [&](const char* sql, auto row) {
    sqlite3_stmt* stmt = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) row(stmt);
    EXPECT_EQ(rc, SQLITE_DONE) << sql << ": " << sqlite3_errmsg(db);
    sqlite3_finalize(stmt);
  };
  query("PRAGMA integrity_check", [&](sqlite3_stmt* s) {
    integrity->append(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)));
  });
  query(
      "SELECT r.name, r.record_count, COUNT(x.step), MIN(x.step), MAX(x.step) FROM runs r "
      "JOIN jobs j ON j.id = r.job_id LEFT JOIN records x ON x.run_id = r.id "
      "WHERE j.name = 'bak' GROUP BY r.id",
      [&](sqlite3_stmt* s) {
        StoredRun& run = runs[reinterpret_cast<const char*>(sqlite3_column_text(s, 0))];
        run.counter = sqlite3_column_int64(s, 1);
        run.count = sqlite3_column_int64(s, 2);
        if (run.count > 0) {
          run.min_step = sqlite3_column_int64(s, 3);
          run.max_step = sqlite3_column_int64(s, 4);
        }
      });
  sqlite3_close_v2(db);
  return runs;
}

// The value of a "key value" line of surge-backup's summary.
int64_t SummaryValue(const std::string& out, const std::string& key) {
  size_t at = out.find("\n" + key + " ");
  if (at == std::string::npos) return -1;
  at += key.size() + 2;
  int64_t value = -1;
  EXPECT_TRUE(absl::SimpleAtoi(out.substr(at, out.find('\n', at) - at), &value)) << out;
  return value;
}

TEST(BackupTest, OnlineBackupOfALiveDatabaseIsOneSnapshotAndServes) {
  testing::TempDir dir;
  const std::string live = dir.File("live.db");
  const std::string backup = dir.File("backup.db");
  auto server = testing::ServerProcess::Start(live, dir.path());
  ASSERT_TRUE(server.ok()) << server.status();

  client::ClientOptions options;
  options.target = server->address();
  options.call_timeout = absl::Seconds(10);
  client::SurgeClient client(options);
  surge::v1::Job job;
  job.set_name(kJob);
  job.set_batch_unit(surge::v1::BATCH_UNIT_EXAMPLES);
  ASSERT_TRUE(client.CreateJob(job).ok());
  for (int k = 0; k < kRuns; ++k) {
    surge::v1::Run run;
    run.set_name(absl::StrCat("r", k));
    run.set_batch_size(32);
    run.set_protocol(surge::v1::PROTOCOL_PLAIN);
    ASSERT_TRUE(client.CreateRun(kJob, run).ok());
  }

  // The feeder: up to ~100,000 records/s in small batches (a commit every few ms).
  client::IngestOptions ingest;
  ingest.batch_records = 500;
  ingest.linger = absl::Milliseconds(5);
  client::IngestSession session(client.channel(), kJob, ingest);
  std::atomic<bool> stop{false};
  absl::Status feed_status;  // the feeder's; read after join
  std::thread feeder;
  struct StopFeeder {  // also when an ASSERT returns early
    std::atomic<bool>& stop;
    std::thread& feeder;
    ~StopFeeder() {
      stop = true;
      if (feeder.joinable()) feeder.join();
    }
  } stop_feeder{stop, feeder};
  feeder = std::thread([&] {
    for (int64_t i = 0; !stop; ++i) {
      absl::Status s = session.Append(MakeRecord(i), absl::Seconds(30));
      if (!s.ok()) {
        feed_status = s;
        return;
      }
      if (i % 500 == 499) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  auto wait_acked = [&](int64_t n) {
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (session.stats().acked_records < n && absl::Now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return session.stats().acked_records >= n;
  };
  ASSERT_TRUE(wait_acked(150000)) << "ingest too slow: " << session.stats().acked_records;

  // The backup, in small steps with sleeps, so that it spans many commits.
  const int64_t acked_before = session.stats().acked_records;
  const absl::Time started = absl::Now();
  auto made = testing::RunCommand(
      {SURGE_BACKUP_BIN, "--db=" + live, "--out=" + backup, "--step_pages=8", "--sleep_ms=5"});
  const double backup_s = absl::ToDoubleSeconds(absl::Now() - started);
  const int64_t acked_after = session.stats().acked_records;
  ASSERT_EQ(made.exit_code, 0) << made.err;
  EXPECT_THAT(made.out, HasSubstr("integrity_check ok"));
  EXPECT_EQ(SummaryValue(made.out, "jobs"), 1) << made.out;
  EXPECT_EQ(SummaryValue(made.out, "runs"), kRuns) << made.out;
  ASSERT_TRUE(wait_acked(acked_after + 20000));  // the backup did not stop ingest
  stop = true;
  feeder.join();
  ASSERT_TRUE(feed_status.ok()) << feed_status;
  ASSERT_TRUE(session.Flush(absl::Seconds(30)).ok());
  std::cout << "backup took " << backup_s << " s while " << acked_after - acked_before
            << " records were acked\n"
            << made.out;
  EXPECT_GT(acked_after - acked_before, 10000) << "ingest did not run during the backup";

  // The backup is one snapshot between "acked before" and the final live state.
  std::string live_integrity, backup_integrity;
  const auto live_runs = ReadRuns(live, &live_integrity);
  const auto backup_runs = ReadRuns(backup, &backup_integrity);
  EXPECT_EQ(backup_integrity, "ok");
  ASSERT_EQ(backup_runs.size(), kRuns);
  int64_t backup_total = 0;
  for (int k = 0; k < kRuns; ++k) {
    const std::string name = absl::StrCat("r", k);
    const StoredRun& b = backup_runs.at(name);
    SCOPED_TRACE(absl::StrCat("run ", name, ": ", b.count, " records, steps ", b.min_step, "..",
                              b.max_step, ", counter ", b.counter));
    backup_total += b.count;
    EXPECT_EQ(b.min_step, 0);
    EXPECT_EQ(b.max_step, b.count - 1) << "steps missing: not one snapshot";
    EXPECT_EQ(b.counter, b.count) << "counter and records from different moments";
    EXPECT_GE(b.count, AckedSteps(acked_before, k)) << "a record acked before the backup is lost";
    EXPECT_LE(b.count, live_runs.at(name).count);
  }
  EXPECT_EQ(SummaryValue(made.out, "records"), backup_total) << made.out;

  // --verify: no differences against the live source under --live; without
  // --live, the records ingested since are differences.
  auto verified = testing::RunCommand(
      {SURGE_BACKUP_BIN, "--verify", "--db=" + backup, "--against=" + live, "--live"});
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
  EXPECT_THAT(verified.out, HasSubstr("0 differences"));
  auto strict =
      testing::RunCommand({SURGE_BACKUP_BIN, "--verify", "--db=" + backup, "--against=" + live});
  EXPECT_EQ(strict.exit_code, 3) << strict.out << strict.err;
  EXPECT_THAT(strict.out, HasSubstr("job bak: " + std::to_string(backup_total) + " records in"));

  // An existing --out is refused, and nothing is left beside it.
  auto again = testing::RunCommand({SURGE_BACKUP_BIN, "--db=" + live, "--out=" + backup});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.err, HasSubstr(backup + " exists; give --force"));

  // Restore: a second server serves the backup as it is.
  auto restored = testing::ServerProcess::Start(backup, dir.path());
  ASSERT_TRUE(restored.ok()) << restored.status();
  client::ClientOptions restored_options = options;
  restored_options.target = restored->address();
  client::SurgeClient restored_client(restored_options);
  auto fetched = restored_client.GetJob(kJob);
  ASSERT_TRUE(fetched.ok()) << fetched.status();
  EXPECT_EQ(fetched->record_count(), backup_total);
  {
    client::IngestSession more(restored_client.channel(), kJob, ingest);
    surge::v1::Record next = MakeRecord(0);
    next.set_step(backup_runs.at("r0").count);
    ASSERT_TRUE(more.Append(next).ok());
    ASSERT_TRUE(more.Flush(absl::Seconds(10)).ok());
    EXPECT_EQ(more.stats().stored_records, 1);
  }

  // --force does not replace a database a server holds.
  auto held = testing::RunCommand({SURGE_BACKUP_BIN, "--db=" + live, "--out=" + backup, "--force"});
  EXPECT_EQ(held.exit_code, 1);
  EXPECT_THAT(held.err, HasSubstr("in use by another server"));
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    EXPECT_THAT(entry.path().filename().string(), ::testing::Not(HasSubstr(".tmp-")));
  }
}

TEST(BackupTest, UsageAndMissingFiles) {
  testing::TempDir dir;
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), SURGE_BACKUP_BIN);
    return testing::RunCommand(args);
  };
  EXPECT_EQ(run({"--db=" + dir.File("a.db")}).exit_code, 2);      // no --out
  EXPECT_EQ(run({"--bogus", "--db=x", "--out=y"}).exit_code, 2);  // unknown flag
  EXPECT_EQ(run({"--db=x", "--out=y", "--step_pages=0"}).exit_code, 2);
  EXPECT_EQ(run({"--db=x", "--out=y", "--step_pages=lots"}).exit_code, 2);
  EXPECT_EQ(run({"--verify", "--db=x", "--live"}).exit_code, 2);  // --live needs --against
  auto missing = run({"--db=" + dir.File("none.db"), "--out=" + dir.File("b.db")});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, HasSubstr("no database file '" + dir.File("none.db") + "'"));
  // Not a database: the message names the file; no backup, no temporary file.
  const std::string junk = dir.File("junk.db");
  { std::ofstream(junk) << std::string(8192, 'x'); }
  auto refused = run({"--db=" + junk, "--out=" + dir.File("b.db")});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.err, HasSubstr(junk));
  EXPECT_THAT(refused.err, HasSubstr("not a database"));
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    ++files;
    EXPECT_EQ(entry.path().filename(), "junk.db");
  }
  EXPECT_EQ(files, 1);
}

}  // namespace
}  // namespace surge
