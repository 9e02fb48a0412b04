// The store contract (server/store/store.h), one suite run against every
// backend: SQLite on a temporary file and PostgreSQL on a throwaway server
// (tests/support/pg_server.h: one server per test binary, a fresh database
// per test; the PostgreSQL cases skip, saying why, where no server can run).
// Every Store method and its error codes: jobs (tenant filter, bytewise name
// order, paging), runs (every optional field, labels, idempotent creation,
// paging), WriteGroup (new, duplicate and conflicting batches in one group,
// counters, before_commit), record reads, ListRecords paging, optima, fit
// versions (also from concurrent connections), read snapshots while another
// connection writes, migrations (once, even when connections open at the
// same moment; a newer database refused). PostgreSQL's SQLSTATE mapping and
// reconnection are checked at the end. SQLite-only behaviour stays in
// sqlite_store_test.cc.
#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <unistd.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "server/store/open_store.h"
#include "server/store/pg_store.h"
#include "server/store/schema.h"
#include "server/store/store.h"
#include "tests/support/pg_server.h"
#include "tests/server/store/store_test_records.h"
#include "tests/support/temp_dir.h"

namespace surge::store {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

constexpr int64_t kNow = 1700000000000000;

enum class Backend { kSqlite, kPostgres };

surge::v1::Job MakeJob(const std::string& name, const std::string& tenant = "") {
  surge::v1::Job job;
  job.set_name(name);
  job.set_batch_unit(surge::v1::BATCH_UNIT_EXAMPLES);
  job.set_tenant(tenant);
  return job;
}

std::vector<surge::v1::Record> Steps(const std::string& run, int64_t from, int64_t to) {
  std::vector<surge::v1::Record> out;
  for (int64_t s = from; s < to; ++s) out.push_back(MakeRecord(run, s));
  return out;
}

// One ingest batch with its run ids (what IngestStream hands the writer).
struct TestBatch {
  surge::v1::IngestRequest request;
  std::vector<int64_t> run_ids;
};

TestBatch Batch(int64_t run_id, const std::vector<surge::v1::Record>& records) {
  TestBatch b;
  for (const auto& r : records) {
    *b.request.add_records() = r;
    b.run_ids.push_back(run_id);
  }
  return b;
}

GroupResult Write(Store& store, std::vector<TestBatch>& batches,
                  const BeforeCommit& before_commit = {}) {
  std::vector<RecordBatch> refs;
  for (auto& b : batches) refs.push_back(RecordBatch{&b.request, &b.run_ids});
  return store.WriteGroup(refs, kNow + 5, before_commit);
}

// Runs `sql` on a SQLite file; the first cell of its last row ("" if none).
std::string SqliteExec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  std::string cell;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_exec(
      db, sql.c_str(),
      [](void* out, int n, char** values, char**) {
        if (n > 0 && values[0] != nullptr) *static_cast<std::string*>(out) = values[0];
        return 0;
      },
      &cell, &err);
  EXPECT_EQ(rc, SQLITE_OK) << (err ? err : "");
  sqlite3_free(err);
  sqlite3_close(db);
  return cell;
}

class StoreContractTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::kPostgres) {
      absl::StatusOr<surge::testing::PgServer*> pg = surge::testing::SharedPgServer();
      if (!pg.ok()) GTEST_SKIP() << "no PostgreSQL for this test: " << pg.status();
      pg_ = *pg;
    }
    absl::StatusOr<DbTarget> target = NewTarget();
    ASSERT_TRUE(target.ok()) << target.status();
    target_ = *target;
    store_ = Open(target_);
    ASSERT_NE(store_, nullptr);
  }

  // PostgreSQL databases are left to the server's removal at exit: DROP
  // DATABASE forces a checkpoint (about 0.5-1 s each here).
  void TearDown() override { store_.reset(); }

  // A fresh, empty database: a file in dir_, or a database on the server.
  absl::StatusOr<DbTarget> NewTarget() {
    static int counter = 0;
    DbTarget target;
    if (GetParam() == Backend::kSqlite) {
      target.path = dir_.File(absl::StrCat("surge-", counter++, ".db"));
      return target;
    }
    std::string db = absl::StrCat("contract_", getpid(), "_", counter++);
    absl::StatusOr<std::string> url = pg_->CreateDatabase(db);
    if (!url.ok()) return url.status();
    target.kind = DbTarget::Kind::kPostgres;
    target.url = *url;
    return target;
  }

  std::unique_ptr<Store> Open(const DbTarget& target, bool migrate = true) {
    StoreOptions options;
    options.migrate = migrate;
    absl::StatusOr<std::unique_ptr<Store>> store = OpenStore(target, options);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  // SQL that the Store API cannot issue (test set-up only); the first cell.
  std::string RawSql(const DbTarget& target, const std::string& sql) {
    if (target.sqlite()) return SqliteExec(target.path, sql);
    std::string db = target.url.substr(target.url.rfind('/') + 1);
    absl::StatusOr<std::string> cell = pg_->Sql(db, sql);
    EXPECT_TRUE(cell.ok()) << cell.status();
    return cell.ok() ? *cell : "";
  }

  int64_t CreateJob(const std::string& name) {
    return CreateTestJob(*store_, name, kNow);
  }

  int64_t CreateRun(const std::string& job, const std::string& run, int64_t batch_size = 32) {
    return CreateTestRun(*store_, job, run, batch_size, kNow);
  }

  // Writes `records` of one run as one group of one batch, all new.
  void Insert(int64_t run_id, const std::vector<surge::v1::Record>& records) {
    std::vector<TestBatch> batches = {Batch(run_id, records)};
    GroupResult result = Write(*store_, batches);
    ASSERT_TRUE(result.commit.ok()) << result.commit;
    ASSERT_EQ(result.batches.size(), 1u);
    ASSERT_TRUE(result.batches[0].ok()) << result.batches[0].status();
    ASSERT_EQ(result.batches[0]->stored, static_cast<int64_t>(records.size()));
  }

  std::optional<surge::v1::Record> Get(int64_t run_id, int64_t step) {
    absl::StatusOr<std::optional<surge::v1::Record>> r = store_->GetRecord(run_id, step);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : std::nullopt;
  }

  surge::v1::Job Job(const std::string& name) {
    absl::StatusOr<surge::v1::Job> job = store_->GetJob(name);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? *job : surge::v1::Job();
  }

  // Every record through ListRecords pages of `page_size`: exactly
  // ceil(total / page_size) pages (at least one), all but the last full.
  std::vector<std::pair<std::string, int64_t>> ListAll(int64_t job_id,
                                                       std::optional<int64_t> run_id,
                                                       int page_size, int64_t total) {
    std::vector<std::pair<std::string, int64_t>> keys;
    RecordCursor cursor;
    const int64_t max_pages = std::max<int64_t>(1, (total + page_size - 1) / page_size);
    for (int64_t pages = 1;; ++pages) {
      if (pages > max_pages) {
        ADD_FAILURE() << "more than " << max_pages << " pages for " << total << " records";
        break;
      }
      absl::StatusOr<RecordPage> page = store_->ListRecords(job_id, run_id, cursor, page_size);
      if (!page.ok()) {
        ADD_FAILURE() << page.status();
        break;
      }
      for (const auto& r : page->records) keys.emplace_back(r.run(), r.step());
      if (!page->next) break;
      EXPECT_EQ(static_cast<int>(page->records.size()), page_size);
      cursor = *page->next;
    }
    return keys;
  }

  surge::testing::TempDir dir_;
  surge::testing::PgServer* pg_ = nullptr;
  DbTarget target_;
  std::unique_ptr<Store> store_;
};

// ------------------------------------------------------------------ schema

TEST_P(StoreContractTest, SchemaVersionIsTheMigrationCountAndReopeningKeepsData) {
  ASSERT_EQ(PgMigrations().size(), Migrations().size()) << "the dialects' versions must agree";
  absl::StatusOr<int> version = store_->SchemaVersion();
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(*version, static_cast<int>(Migrations().size()));
  CreateJob("kept");
  for (int reopen = 0; reopen < 2; ++reopen) {
    store_ = Open(target_);
    ASSERT_NE(store_, nullptr);
    EXPECT_EQ(*store_->SchemaVersion(), static_cast<int>(Migrations().size()));
    EXPECT_EQ(Job("kept").name(), "kept");
  }
  EXPECT_EQ(RawSql(target_, "SELECT COUNT(*) FROM schema_version"),
            absl::StrCat(Migrations().size()));
}

TEST_P(StoreContractTest, SimultaneousOpensMigrateOnce) {
  absl::StatusOr<DbTarget> fresh = NewTarget();
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  constexpr int kOpeners = 4;
  std::vector<absl::Status> results(kOpeners);
  std::vector<std::thread> threads;
  for (int i = 0; i < kOpeners; ++i) {
    threads.emplace_back([&, i] {
      absl::StatusOr<std::unique_ptr<Store>> s = OpenStore(*fresh, StoreOptions());
      results[static_cast<size_t>(i)] = s.status();
    });
  }
  for (auto& t : threads) t.join();
  for (const absl::Status& s : results) EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(RawSql(*fresh, "SELECT COUNT(*) FROM schema_version"),
            absl::StrCat(Migrations().size()));
}

TEST_P(StoreContractTest, NewerDatabaseIsRefused) {
  RawSql(target_, absl::StrCat("INSERT INTO schema_version (version) VALUES (",
                               Migrations().size() + 1, ")"));
  absl::StatusOr<std::unique_ptr<Store>> store = OpenStore(target_, StoreOptions());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
  EXPECT_THAT(Msg(store.status()), HasSubstr("newer than this server"));
}

TEST_P(StoreContractTest, UnreachableDatabaseIsUnavailable) {
  DbTarget target;
  if (GetParam() == Backend::kSqlite) {
    target.path = dir_.File("no-such-folder/surge.db");
  } else {
    target.kind = DbTarget::Kind::kPostgres;
    target.url = "postgresql://surge@127.0.0.1:1/none?connect_timeout=2";
  }
  absl::StatusOr<std::unique_ptr<Store>> store = OpenStore(target, StoreOptions());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable) << store.status();
}

// ------------------------------------------------------------------ jobs

TEST_P(StoreContractTest, JobsRoundTripAndErrors) {
  surge::v1::Job job = MakeJob("job-a", "team-1");
  job.set_batch_unit(surge::v1::BATCH_UNIT_TOKENS);
  job.set_description("about a, with 'quotes' and \"more\"; ünïcode");
  job.add_target_losses(0.8);
  job.add_target_losses(0.1 + 0.2);
  job.set_k_steps(25);
  absl::StatusOr<surge::v1::Job> created = store_->CreateJob(job, kNow);
  ASSERT_TRUE(created.ok()) << created.status();
  for (const surge::v1::Job& got : {*created, Job("job-a")}) {
    EXPECT_EQ(got.name(), "job-a");
    EXPECT_EQ(got.batch_unit(), surge::v1::BATCH_UNIT_TOKENS);
    EXPECT_EQ(got.description(), job.description());
    EXPECT_THAT(got.target_losses(), ElementsAre(0.8, 0.1 + 0.2));
    EXPECT_EQ(got.k_steps(), 25);
    EXPECT_EQ(got.tenant(), "team-1");
    EXPECT_EQ(got.create_time_us(), kNow);
    EXPECT_EQ(got.update_time_us(), kNow);
    EXPECT_EQ(got.run_count(), 0);
    EXPECT_EQ(got.record_count(), 0);
  }
  ASSERT_TRUE(store_->CreateJob(MakeJob("job-b"), kNow).ok());
  EXPECT_EQ(Job("job-b").tenant(), "default");

  absl::StatusOr<surge::v1::Job> again = store_->CreateJob(MakeJob("job-a"), kNow);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists) << again.status();
  EXPECT_EQ(Msg(again.status()), "job 'job-a' already exists");

  for (absl::Status s : {store_->GetJob("nope").status(), store_->JobId("nope").status(),
                         store_->DeleteJob("nope").status(), store_->ListRuns("nope").status(),
                         store_->ListRunsPage("nope", std::nullopt, 10).status(),
                         store_->ListRunsWithIds("nope").status(),
                         store_->LookupRun("nope", "r").status(),
                         store_->DeleteRun("nope", "r").status(),
                         store_->CreateRun("nope", MakeRun("r", 8), kNow).status()}) {
    EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
    EXPECT_EQ(Msg(s), "job 'nope' not found");
  }
}

TEST_P(StoreContractTest, ListJobsPagesByBytewiseNameAndFiltersByTenant) {
  // Bytewise: "B" (0x42) < "_c" (0x5f) < "a" < "a-1" < "b" < "é" (0xc3 0xa9).
  for (const char* name : {"b", "é", "a-1", "B", "_c", "a"}) {
    std::string tenant = (std::string(name) == "a" || std::string(name) == "é") ? "t1" : "";
    ASSERT_TRUE(store_->CreateJob(MakeJob(name, tenant), kNow).ok()) << name;
  }
  auto names = [](const std::vector<surge::v1::Job>& jobs) {
    std::vector<std::string> out;
    for (const auto& j : jobs) out.push_back(j.name());
    return out;
  };
  absl::StatusOr<std::vector<surge::v1::Job>> all = store_->ListJobs();
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_THAT(names(*all), ElementsAre("B", "_c", "a", "a-1", "b", "é"));
  std::vector<std::string> paged;
  std::string after;
  for (int pages = 0; pages < 10; ++pages) {
    absl::StatusOr<std::vector<surge::v1::Job>> page = store_->ListJobsPage(after, 4);
    ASSERT_TRUE(page.ok()) << page.status();
    if (page->empty()) break;
    for (const auto& j : *page) paged.push_back(j.name());
    after = page->back().name();
  }
  EXPECT_EQ(paged, names(*all));
  absl::StatusOr<std::vector<surge::v1::Job>> t1 = store_->ListJobsPage("", 100, "t1");
  ASSERT_TRUE(t1.ok()) << t1.status();
  EXPECT_THAT(names(*t1), ElementsAre("a", "é"));
  absl::StatusOr<std::vector<surge::v1::Job>> t1_after = store_->ListJobsPage("a", 100, "t1");
  ASSERT_TRUE(t1_after.ok());
  EXPECT_THAT(names(*t1_after), ElementsAre("é"));
  absl::StatusOr<std::vector<surge::v1::Job>> other = store_->ListJobsPage("", 100, "nobody");
  ASSERT_TRUE(other.ok());
  EXPECT_THAT(*other, IsEmpty());
}

TEST_P(StoreContractTest, JobCountsFollowRunsAndRecords) {
  CreateJob("job");
  int64_t r1 = CreateRun("job", "r1");
  int64_t r2 = CreateRun("job", "r2", 64);
  Insert(r1, Steps("r1", 0, 7));
  Insert(r2, Steps("r2", 0, 3));
  surge::v1::Job job = Job("job");
  EXPECT_EQ(job.run_count(), 2);
  EXPECT_EQ(job.record_count(), 10);
  EXPECT_EQ(job.update_time_us(), kNow + 5);  // the runs' latest write
}

// ------------------------------------------------------------------ runs

TEST_P(StoreContractTest, CreateRunIsIdempotentAndConflictsByMeaning) {
  CreateJob("job");
  absl::StatusOr<surge::v1::Run> first = store_->CreateRun("job", MakeRun("r", 32), kNow);
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<surge::v1::Run> same = store_->CreateRun("job", MakeRun("r", 32), kNow + 9);
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_TRUE(MessageDifferencer::Equals(*first, *same)) << same->DebugString();
  absl::StatusOr<surge::v1::Run> other_size = store_->CreateRun("job", MakeRun("r", 64), kNow);
  EXPECT_EQ(other_size.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(Msg(other_size.status()),
              HasSubstr("run 'r' of job 'job' exists with batch_size 32 and protocol "
                        "PROTOCOL_PLAIN; asked for batch_size 64"));
  absl::StatusOr<surge::v1::Run> other_protocol =
      store_->CreateRun("job", MakeRun("r", 32, surge::v1::PROTOCOL_FULL_RUN), kNow);
  EXPECT_EQ(other_protocol.status().code(), absl::StatusCode::kAlreadyExists);
  absl::StatusOr<std::vector<surge::v1::Run>> runs = store_->ListRuns("job");
  ASSERT_TRUE(runs.ok());
  EXPECT_EQ(runs->size(), 1u);
}

TEST_P(StoreContractTest, RunFieldsAndLabelsRoundTrip) {
  CreateJob("job");
  surge::v1::Run probe = MakeProbeRunWithEverything();
  surge::v1::Run full = MakeRun("full-1", 64, surge::v1::PROTOCOL_FULL_RUN);
  full.set_target_loss(1.0 / 3.0);
  surge::v1::Run plain = MakeRun("plain-1", 32);
  for (const surge::v1::Run* run : {&probe, &full, &plain}) {
    absl::StatusOr<surge::v1::Run> created = store_->CreateRun("job", *run, kNow);
    ASSERT_TRUE(created.ok()) << run->name() << ": " << created.status();
    surge::v1::Run expected = *run;
    expected.set_job("job");
    expected.set_create_time_us(kNow);
    expected.set_last_step(-1);
    EXPECT_TRUE(MessageDifferencer::Equals(expected, *created))
        << "expected " << expected.DebugString() << "got " << created->DebugString();
  }
  absl::StatusOr<std::vector<std::pair<int64_t, surge::v1::Run>>> with_ids =
      store_->ListRunsWithIds("job");
  ASSERT_TRUE(with_ids.ok()) << with_ids.status();
  ASSERT_EQ(with_ids->size(), 3u);
  for (const auto& [id, run] : *with_ids) {
    absl::StatusOr<RunKey> key = store_->LookupRun("job", run.name());
    ASSERT_TRUE(key.ok());
    EXPECT_EQ(key->run_id, id);
    EXPECT_EQ(key->batch_size, run.batch_size());
    EXPECT_EQ(key->job_id, *store_->JobId("job"));
  }
  const surge::v1::Run& got_probe = (*with_ids)[2].second;  // batch 512 sorts last
  EXPECT_EQ(got_probe.name(), "probe-1");
  EXPECT_EQ(got_probe.optimizer().eps(), 1e-8);
  EXPECT_THAT(got_probe.labels(), UnorderedElementsAre(Pair("model", "gpt-small"),
                                                       Pair("seed", "7"), Pair("empty", "")));
  EXPECT_EQ((*with_ids)[1].second.target_loss(), 1.0 / 3.0);
  EXPECT_FALSE((*with_ids)[0].second.has_optimizer());
  EXPECT_FALSE((*with_ids)[0].second.has_target_loss());

  absl::StatusOr<RunKey> missing = store_->LookupRun("job", "nope");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Msg(missing.status()), "run 'nope' not found in job 'job'; create it with CreateRun");
}

TEST_P(StoreContractTest, RunsListByBatchSizeThenNameAndPage) {
  CreateJob("job");
  for (auto [name, bs] : std::vector<std::pair<std::string, int64_t>>{
           {"b", 64}, {"a", 64}, {"z", 8}, {"B", 64}, {"m", 1024}, {"c", 8}}) {
    CreateRun("job", name, bs);
  }
  auto names = [](const std::vector<surge::v1::Run>& runs) {
    std::vector<std::string> out;
    for (const auto& r : runs) out.push_back(r.name());
    return out;
  };
  absl::StatusOr<std::vector<surge::v1::Run>> runs = store_->ListRuns("job");
  ASSERT_TRUE(runs.ok());
  EXPECT_THAT(names(*runs), ElementsAre("c", "z", "B", "a", "b", "m"));
  std::vector<std::string> paged;
  std::optional<std::pair<int64_t, std::string>> after;
  for (int pages = 0; pages < 10; ++pages) {
    absl::StatusOr<std::vector<surge::v1::Run>> page = store_->ListRunsPage("job", after, 4);
    ASSERT_TRUE(page.ok()) << page.status();
    if (page->empty()) break;
    for (const auto& r : *page) paged.push_back(r.name());
    after = std::make_pair(page->back().batch_size(), page->back().name());
  }
  EXPECT_EQ(paged, names(*runs));
}

TEST_P(StoreContractTest, DeletesCountAndCascade) {
  int64_t job_id = CreateJob("job");
  int64_t r1 = CreateRun("job", "r1");
  int64_t r2 = CreateRun("job", "r2");
  Insert(r1, Steps("r1", 0, 5));
  Insert(r2, Steps("r2", 0, 3));
  surge::v1::Run labelled = MakeRun("r3", 16);
  (*labelled.mutable_labels())["k"] = "v";
  ASSERT_TRUE(store_->CreateRun("job", labelled, kNow).ok());
  surge::v1::MeasuredOptimum o;
  o.set_stage(0);
  o.set_batch_size(32);
  o.set_lr_opt(1e-3);
  ASSERT_TRUE(store_->AddOptima(job_id, {o}).ok());
  surge::v1::Fit fit;
  ASSERT_TRUE(store_->InsertFit(job_id, fit).ok());

  absl::StatusOr<int64_t> deleted = store_->DeleteRun("job", "r1");
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(*deleted, 5);
  EXPECT_EQ(Get(r1, 0), std::nullopt);
  EXPECT_NE(Get(r2, 0), std::nullopt);
  EXPECT_EQ(store_->DeleteRun("job", "r1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Job("job").run_count(), 2);
  EXPECT_EQ(Job("job").record_count(), 3);

  absl::StatusOr<DeleteCounts> counts = store_->DeleteJob("job");
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_EQ(counts->runs, 2);
  EXPECT_EQ(counts->records, 3);
  EXPECT_EQ(store_->GetJob("job").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Get(r2, 0), std::nullopt);
  EXPECT_THAT(*store_->ListOptima(job_id), IsEmpty());
  EXPECT_EQ(*store_->LatestFit(job_id), std::nullopt);
  for (const char* table : {"runs", "run_labels", "records", "measured_optima", "fits"}) {
    EXPECT_EQ(RawSql(target_, absl::StrCat("SELECT COUNT(*) FROM ", table)), "0") << table;
  }
  // A job of the same name again gets a new id: ids are never reused.
  EXPECT_GT(CreateJob("job"), job_id);
  EXPECT_GT(CreateRun("job", "r1"), r2);
}

// ------------------------------------------------------------------ ingest

TEST_P(StoreContractTest, WriteGroupKeepsEachBatchAllOrNothing) {
  CreateJob("job");
  int64_t r1 = CreateRun("job", "r1");
  int64_t r2 = CreateRun("job", "r2", 64);
  std::vector<TestBatch> batches;
  batches.push_back(Batch(r1, Steps("r1", 0, 10)));  // new
  batches.push_back(Batch(r1, Steps("r1", 8, 13)));  // 8, 9 re-sent the same: duplicates
  std::vector<surge::v1::Record> conflicting = Steps("r1", 13, 15);
  surge::v1::Record changed = MakeRecord("r1", 5);
  changed.set_loss(0.5);
  conflicting.push_back(changed);  // records[2]: step 5 with another loss
  batches.push_back(Batch(r1, conflicting));
  std::vector<surge::v1::Record> with_repeat = Steps("r2", 0, 5);
  with_repeat.push_back(MakeRecord("r2", 2));  // the same step twice, same values
  batches.push_back(Batch(r2, with_repeat));
  std::vector<surge::v1::Record> repeat_conflict = {MakeRecord("r2", 100), MakeRecord("r2", 100)};
  repeat_conflict[1].set_examples(7);
  batches.push_back(Batch(r2, repeat_conflict));

  GroupResult result = Write(*store_, batches);
  ASSERT_TRUE(result.commit.ok()) << result.commit;
  ASSERT_EQ(result.batches.size(), 5u);
  ASSERT_TRUE(result.batches[0].ok()) << result.batches[0].status();
  EXPECT_EQ(result.batches[0]->stored, 10);
  EXPECT_EQ(result.batches[0]->duplicate, 0);
  ASSERT_TRUE(result.batches[1].ok());
  EXPECT_EQ(result.batches[1]->stored, 3);
  EXPECT_EQ(result.batches[1]->duplicate, 2);
  EXPECT_EQ(result.batches[2].status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(Msg(result.batches[2].status()),
            absl::StrCat("records[2] (run 'r1', step 5): already stored with other values (loss ",
                         MakeRecord("r1", 5).loss(), " stored, 0.5 sent); a step is stored once: "
                         "re-send the same values or use another step"));
  ASSERT_TRUE(result.batches[3].ok());
  EXPECT_EQ(result.batches[3]->stored, 5);
  EXPECT_EQ(result.batches[3]->duplicate, 1);
  EXPECT_EQ(result.batches[4].status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(Msg(result.batches[4].status()),
              HasSubstr("records[1] (run 'r2', step 100): already stored with other values "
                        "(examples 3200 stored, 7 sent)"));
  EXPECT_EQ(Get(r1, 13), std::nullopt);  // the conflicting batch left nothing
  EXPECT_EQ(Get(r2, 100), std::nullopt);
  EXPECT_EQ(Get(r1, 5)->loss(), MakeRecord("r1", 5).loss());

  absl::StatusOr<std::vector<surge::v1::Run>> runs = store_->ListRuns("job");
  ASSERT_TRUE(runs.ok());
  EXPECT_EQ((*runs)[0].record_count(), 13);
  EXPECT_EQ((*runs)[0].last_step(), 12);
  EXPECT_EQ((*runs)[1].record_count(), 5);
  EXPECT_EQ((*runs)[1].last_step(), 4);
  EXPECT_EQ(Job("job").record_count(), 18);

  // The whole group re-sent (a reconnect): duplicates, counters unchanged.
  std::vector<TestBatch> again;
  again.push_back(Batch(r1, Steps("r1", 0, 13)));
  again.push_back(Batch(r2, Steps("r2", 0, 5)));
  GroupResult resent = Write(*store_, again);
  ASSERT_TRUE(resent.commit.ok()) << resent.commit;
  EXPECT_EQ(resent.batches[0]->stored, 0);
  EXPECT_EQ(resent.batches[0]->duplicate, 13);
  EXPECT_EQ(resent.batches[1]->duplicate, 5);
  EXPECT_EQ(Job("job").record_count(), 18);
  EXPECT_EQ(RawSql(target_, "SELECT COUNT(*) FROM records"), "18");
}

TEST_P(StoreContractTest, WriteGroupForADeletedRunIsNotFoundAndKeepsTheOthers) {
  CreateJob("job");
  int64_t gone = CreateRun("job", "gone");
  int64_t kept = CreateRun("job", "kept");
  ASSERT_TRUE(store_->DeleteRun("job", "gone").ok());
  std::vector<TestBatch> batches;
  batches.push_back(Batch(gone, Steps("gone", 0, 3)));
  batches.push_back(Batch(kept, Steps("kept", 0, 3)));
  GroupResult result = Write(*store_, batches);
  ASSERT_TRUE(result.commit.ok()) << result.commit;
  EXPECT_EQ(result.batches[0].status().code(), absl::StatusCode::kNotFound)
      << result.batches[0].status();
  EXPECT_EQ(Msg(result.batches[0].status()),
            absl::StrCat("run id ", gone, " no longer exists (job deleted)"));
  ASSERT_TRUE(result.batches[1].ok());
  EXPECT_EQ(result.batches[1]->stored, 3);
}

TEST_P(StoreContractTest, DeleteRunWaitsForAnOpenWriteGroupAndCountsItsRecords) {
  CreateJob("job");
  int64_t run = CreateRun("job", "r");
  Insert(run, Steps("r", 0, 5));
  std::unique_ptr<Store> other = Open(target_, /*migrate=*/false);
  ASSERT_NE(other, nullptr);
  absl::StatusOr<int64_t> deleted = absl::UnknownError("not run");
  std::thread deleter;
  std::vector<TestBatch> batches = {Batch(run, Steps("r", 5, 12))};
  // Inside the group's transaction (records written, not committed) another
  // connection deletes the run: it must wait, then delete all 12.
  GroupResult result = Write(*store_, batches, [&](const auto&) {
    deleter = std::thread([&] { deleted = other->DeleteRun("job", "r"); });
    absl::SleepFor(absl::Milliseconds(300));
  });
  deleter.join();
  ASSERT_TRUE(result.commit.ok()) << result.commit;
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(*deleted, 12);
  EXPECT_EQ(RawSql(target_, "SELECT COUNT(*) FROM records"), "0");
  EXPECT_EQ(store_->LookupRun("job", "r").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(StoreContractTest, BeforeCommitSeesTheResultsBeforeOthersSeeTheRecords) {
  CreateJob("job");
  int64_t r1 = CreateRun("job", "r1");
  std::unique_ptr<Store> other = Open(target_, /*migrate=*/false);
  ASSERT_NE(other, nullptr);
  std::vector<TestBatch> batches;
  batches.push_back(Batch(r1, Steps("r1", 0, 4)));
  batches.push_back(Batch(r1, Steps("r1", 2, 6)));
  int calls = 0;
  GroupResult result = Write(*store_, batches, [&](const auto& applied) {
    ++calls;
    ASSERT_EQ(applied.size(), 2u);
    EXPECT_EQ(applied[0]->stored, 4);
    EXPECT_EQ(applied[1]->stored, 2);
    EXPECT_EQ(applied[1]->duplicate, 2);
    absl::StatusOr<std::optional<surge::v1::Record>> seen = other->GetRecord(r1, 0);
    ASSERT_TRUE(seen.ok()) << seen.status();
    EXPECT_EQ(*seen, std::nullopt) << "visible before the COMMIT";
  });
  ASSERT_TRUE(result.commit.ok()) << result.commit;
  EXPECT_EQ(calls, 1);
  EXPECT_GT(result.commit_latency, absl::ZeroDuration());
  EXPECT_NE(*other->GetRecord(r1, 5), std::nullopt);
}

// ------------------------------------------------------------------ record reads

TEST_P(StoreContractTest, RecordValuesRoundTripExactly) {
  CreateJob("job");
  int64_t run = CreateRun("job", "r");
  std::vector<surge::v1::Record> records;
  const double values[] = {0.1,     1.0 / 3.0, 1e-300, 5e-324, std::numeric_limits<double>::max(),
                           123.456, 2.5e-7,    1e300,  0.75,   6.02214076e23};  // not 0: SQLite drops the sign of -0.0
  for (int i = 0; i < 10; ++i) {
    surge::v1::Record r = MakeRecord("r", i);
    r.set_examples((int64_t{1} << 53) + i);
    r.set_lr(values[i]);
    r.set_loss(-values[(i + 3) % 10]);
    if (i % 2 == 0) r.set_eval_loss(values[(i + 5) % 10]);
    if (i % 3 == 0) {
      auto* g = r.mutable_grad_stats();
      g->set_grad_sq_small(values[(i + 1) % 10]);
      g->set_grad_sq_big(values[(i + 2) % 10]);
      g->set_b_small(16);
      g->set_b_big(std::numeric_limits<int64_t>::max());
    }
    records.push_back(r);
  }
  Insert(run, records);
  for (surge::v1::Record sent : records) {
    std::optional<surge::v1::Record> got = Get(run, sent.step());
    ASSERT_TRUE(got.has_value());
    sent.clear_run();
    EXPECT_TRUE(MessageDifferencer::Equals(sent, *got))
        << "sent " << sent.DebugString() << "got " << got->DebugString();
  }
  EXPECT_EQ(Get(run, 99), std::nullopt);
  absl::StatusOr<std::optional<surge::v1::Record>> last = store_->LastRecord(run);
  ASSERT_TRUE(last.ok() && last->has_value());
  EXPECT_EQ((*last)->step(), 9);
  EXPECT_EQ((*last)->examples(), (int64_t{1} << 53) + 9);
  EXPECT_EQ((*last)->lr(), values[9]);
  EXPECT_FALSE((*last)->has_eval_loss());
  absl::StatusOr<std::optional<surge::v1::Record>> none = store_->LastRecord(run + 1000);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, std::nullopt);

  // A re-send that differs in the last bit is a conflict, not a duplicate.
  surge::v1::Record nudged = records[1];
  nudged.set_lr(std::nextafter(nudged.lr(), 1.0));
  std::vector<TestBatch> batches = {Batch(run, {nudged})};
  GroupResult result = Write(*store_, batches);
  ASSERT_TRUE(result.commit.ok());
  EXPECT_EQ(result.batches[0].status().code(), absl::StatusCode::kAlreadyExists);
}

TEST_P(StoreContractTest, SampleRunRecordsAndReadRunColumns) {
  CreateJob("job");
  int64_t run = CreateRun("job", "r");
  std::vector<surge::v1::Record> records = Steps("r", 0, 20);
  for (auto& r : records) {
    if (r.step() % 2 == 0) r.set_eval_loss(static_cast<double>(r.step()) / 7);
    if (r.step() % 5 == 0) {
      auto* g = r.mutable_grad_stats();
      g->set_grad_sq_small(1.5 * static_cast<double>(r.step()));
      g->set_grad_sq_big(0.5);
      g->set_b_small(8);
      g->set_b_big(64);
    }
  }
  Insert(run, records);
  absl::StatusOr<std::vector<surge::v1::Record>> sample = store_->SampleRunRecords(run, 5);
  ASSERT_TRUE(sample.ok()) << sample.status();
  ASSERT_EQ(sample->size(), 4u);
  for (size_t i = 0; i < sample->size(); ++i) {
    const surge::v1::Record& s = (*sample)[i];
    EXPECT_EQ(s.step(), static_cast<int64_t>(i) * 5);
    EXPECT_EQ(s.loss(), records[i * 5].loss());
    ASSERT_TRUE(s.has_grad_stats());
    EXPECT_EQ(s.grad_stats().grad_sq_small(), records[i * 5].grad_stats().grad_sq_small());
    EXPECT_EQ(s.grad_stats().b_big(), 64);
  }
  absl::StatusOr<std::vector<surge::v1::Record>> every = store_->SampleRunRecords(run, 0);
  ASSERT_TRUE(every.ok());
  EXPECT_EQ(every->size(), 20u);  // every < 1 counts as 1

  absl::StatusOr<RunColumns> columns = store_->ReadRunColumns(run);
  ASSERT_TRUE(columns.ok()) << columns.status();
  ASSERT_EQ(columns->steps.size(), 20u);
  for (size_t i = 0; i < 20; ++i) {
    EXPECT_EQ(columns->steps[i], static_cast<int64_t>(i));
    EXPECT_EQ(columns->examples[i], static_cast<double>(records[i].examples()));
    EXPECT_EQ(columns->lr[i], records[i].lr());
    EXPECT_EQ(columns->loss[i], records[i].loss());
    if (i % 2 == 0) {
      EXPECT_EQ(columns->eval_loss[i], records[i].eval_loss());
    } else {
      EXPECT_TRUE(std::isnan(columns->eval_loss[i]));
    }
  }
  absl::StatusOr<RunColumns> empty = store_->ReadRunColumns(run + 1000);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->steps.empty());
}

TEST_P(StoreContractTest, ListRecordsPagesEveryRecordOnceInOrder) {
  int64_t job_id = CreateJob("job");
  CreateJob("other");
  int64_t rb = CreateRun("job", "rb");
  int64_t ra = CreateRun("job", "ra");  // created second: listed second
  CreateRun("job", "empty");
  int64_t rc = CreateRun("job", "rc");
  int64_t foreign = CreateRun("other", "rb");
  Insert(rb, Steps("rb", 0, 7));
  Insert(ra, Steps("ra", 3, 8));
  Insert(rc, Steps("rc", 0, 4));
  Insert(foreign, Steps("rb", 0, 50));
  std::vector<std::pair<std::string, int64_t>> expected;
  for (int64_t s = 0; s < 7; ++s) expected.emplace_back("rb", s);
  for (int64_t s = 3; s < 8; ++s) expected.emplace_back("ra", s);
  for (int64_t s = 0; s < 4; ++s) expected.emplace_back("rc", s);
  for (int page : {1, 3, 4, 16, 17, 100}) {
    SCOPED_TRACE(absl::StrCat("page size ", page));
    EXPECT_EQ(ListAll(job_id, std::nullopt, page, 16), expected);
  }
  std::vector<std::pair<std::string, int64_t>> only_ra(expected.begin() + 7, expected.begin() + 12);
  EXPECT_EQ(ListAll(job_id, ra, 2, 5), only_ra);
  // From a cursor in the middle of a run.
  absl::StatusOr<RecordPage> page = store_->ListRecords(job_id, std::nullopt, {ra, 5}, 3);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->records.size(), 3u);
  EXPECT_EQ(page->records[0].run(), "ra");
  EXPECT_EQ(page->records[0].step(), 6);
  EXPECT_EQ(page->records[2].run(), "rc");
  EXPECT_EQ(page->records[2].step(), 0);
  ASSERT_TRUE(page->next.has_value());
  EXPECT_EQ(page->next->run_id, rc);
  EXPECT_EQ(page->next->step, 0);
  // Full values come back.
  absl::StatusOr<RecordPage> first = store_->ListRecords(job_id, rb, {}, 1);
  ASSERT_TRUE(first.ok());
  surge::v1::Record want = MakeRecord("rb", 0);
  EXPECT_TRUE(MessageDifferencer::Equals(first->records[0], want)) << first->records[0].DebugString();
}

// ------------------------------------------------------------------ optima and fits

TEST_P(StoreContractTest, OptimaAreReplacedByStageAndBatchSize) {
  int64_t job_id = CreateJob("job");
  auto optimum = [](int stage, double batch, double lr) {
    surge::v1::MeasuredOptimum o;
    o.set_stage(stage);
    o.set_batch_size(batch);
    o.set_stage_loss(2.0 - stage);
    o.set_lr_opt(lr);
    o.set_lr_opt_se(lr / 10);
    return o;
  };
  ASSERT_TRUE(store_->AddOptima(job_id, {optimum(1, 64, 1e-3), optimum(0, 256, 2e-3),
                                         optimum(0, 32, 3e-3)})
                  .ok());
  absl::Status replaced = store_->AddOptima(job_id, {optimum(0, 256, 1.0 / 3.0)});
  ASSERT_TRUE(replaced.ok()) << replaced;
  absl::StatusOr<std::vector<surge::v1::MeasuredOptimum>> optima = store_->ListOptima(job_id);
  ASSERT_TRUE(optima.ok()) << optima.status();
  ASSERT_EQ(optima->size(), 3u);
  EXPECT_TRUE(MessageDifferencer::Equals((*optima)[0], optimum(0, 32, 3e-3)));
  EXPECT_TRUE(MessageDifferencer::Equals((*optima)[1], optimum(0, 256, 1.0 / 3.0)))
      << (*optima)[1].DebugString();
  EXPECT_TRUE(MessageDifferencer::Equals((*optima)[2], optimum(1, 64, 1e-3)));
  EXPECT_GT(Job("job").update_time_us(), kNow);
}

surge::v1::Fit MakeFit(const std::string& note) {
  surge::v1::Fit fit;
  fit.set_job("job");
  fit.set_create_time_us(kNow + 1);
  fit.set_fit_ms(12.5);
  fit.mutable_inputs()->set_probe_points(40);
  fit.mutable_inputs()->set_records_seen(1234);
  fit.add_notes(note);
  fit.add_notes(std::string("bytes \0\x01\xff", 8));  // a BYTEA blob, not text
  return fit;
}

TEST_P(StoreContractTest, FitVersionsAreConsecutivePerJob) {
  int64_t job_id = CreateJob("job");
  int64_t other_id = CreateJob("other");
  EXPECT_EQ(*store_->LatestFit(job_id), std::nullopt);
  for (int64_t v = 1; v <= 3; ++v) {
    surge::v1::Fit fit = MakeFit(absl::StrCat("fit ", v));
    absl::StatusOr<int64_t> version = store_->InsertFit(job_id, fit);
    ASSERT_TRUE(version.ok()) << version.status();
    EXPECT_EQ(*version, v);
    EXPECT_EQ(fit.version(), v);
  }
  surge::v1::Fit first_of_other = MakeFit("other");
  EXPECT_EQ(*store_->InsertFit(other_id, first_of_other), 1);
  absl::StatusOr<std::optional<surge::v1::Fit>> latest = store_->LatestFit(job_id);
  ASSERT_TRUE(latest.ok() && latest->has_value()) << latest.status();
  surge::v1::Fit expected = MakeFit("fit 3");
  expected.set_version(3);
  EXPECT_TRUE(MessageDifferencer::Equals(**latest, expected)) << (*latest)->DebugString();
}

TEST_P(StoreContractTest, ConcurrentFitInsertsTakeConsecutiveVersions) {
  int64_t job_id = CreateJob("job");
  constexpr int kWriters = 4;
  constexpr int kEach = 5;
  std::vector<std::unique_ptr<Store>> writers;
  for (int i = 0; i < kWriters; ++i) writers.push_back(Open(target_, /*migrate=*/false));
  std::vector<std::vector<int64_t>> versions(kWriters);
  std::vector<std::thread> threads;
  for (int i = 0; i < kWriters; ++i) {
    threads.emplace_back([&, i] {
      for (int k = 0; k < kEach; ++k) {
        surge::v1::Fit fit = MakeFit("concurrent");
        absl::StatusOr<int64_t> v = writers[static_cast<size_t>(i)]->InsertFit(job_id, fit);
        if (v.ok()) {
          versions[static_cast<size_t>(i)].push_back(*v);
        } else {
          ADD_FAILURE() << v.status();
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  std::vector<int64_t> all;
  for (const auto& v : versions) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  std::vector<int64_t> expected(kWriters * kEach);
  for (size_t i = 0; i < expected.size(); ++i) expected[i] = static_cast<int64_t>(i) + 1;
  EXPECT_EQ(all, expected);
  EXPECT_EQ((*store_->LatestFit(job_id))->version(), kWriters * kEach);
}

// ------------------------------------------------------------------ snapshots

TEST_P(StoreContractTest, ReadSnapshotSeesOneStateWhileAnotherConnectionWrites) {
  CreateJob("job");
  int64_t run = CreateRun("job", "r");
  Insert(run, Steps("r", 0, 1));
  std::unique_ptr<Store> reader = Open(target_, /*migrate=*/false);
  ASSERT_NE(reader, nullptr);
  auto commit_step = [&](int64_t step) { Insert(run, Steps("r", step, step + 1)); };
  auto last_step = [&]() -> int64_t {
    absl::StatusOr<std::optional<surge::v1::Record>> last = reader->LastRecord(run);
    EXPECT_TRUE(last.ok()) << last.status();
    return last.ok() && last->has_value() ? (*last)->step() : -1;
  };
  absl::StatusOr<int64_t> in_snapshot = reader->ReadSnapshot<int64_t>([&]() -> absl::StatusOr<int64_t> {
    EXPECT_EQ(last_step(), 0);
    commit_step(1);  // committed by the writer mid-snapshot
    EXPECT_EQ(last_step(), 0);
    absl::StatusOr<surge::v1::Job> job = reader->GetJob("job");
    if (!job.ok()) return job.status();
    return job->record_count();
  });
  ASSERT_TRUE(in_snapshot.ok()) << in_snapshot.status();
  EXPECT_EQ(*in_snapshot, 1);  // the same snapshot
  EXPECT_EQ(last_step(), 1);
  // An error from the body is returned, and the snapshot still ends.
  absl::Status failed = reader->InReadSnapshot([] { return absl::InternalError("body failed"); });
  EXPECT_EQ(failed.code(), absl::StatusCode::kInternal);
  commit_step(2);
  EXPECT_EQ(last_step(), 2);
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreContractTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return info.param == Backend::kSqlite ? "SQLite" : "PostgreSQL";
                         });

// ------------------------------------------------------------------ PostgreSQL only

TEST(PgStoreTest, SqlstatesMapByMeaning) {
  struct Case {
    const char* sqlstate;
    absl::StatusCode code;
  };
  const Case cases[] = {
      {"23505", absl::StatusCode::kAlreadyExists},  // unique_violation
      {"23503", absl::StatusCode::kNotFound},       // foreign_key_violation
      {"22021", absl::StatusCode::kInvalidArgument},  // character_not_in_repertoire (NUL)
      {"08006", absl::StatusCode::kUnavailable},    // connection_failure
      {"08001", absl::StatusCode::kUnavailable},
      {"57P01", absl::StatusCode::kUnavailable},    // admin_shutdown
      {"57P03", absl::StatusCode::kUnavailable},    // cannot_connect_now
      {"53100", absl::StatusCode::kUnavailable},    // disk_full
      {"53200", absl::StatusCode::kUnavailable},    // out_of_memory
      {"53300", absl::StatusCode::kUnavailable},    // too_many_connections
      {"40001", absl::StatusCode::kUnavailable},    // serialization_failure
      {"40P01", absl::StatusCode::kUnavailable},    // deadlock_detected
      {"55P03", absl::StatusCode::kUnavailable},    // lock_not_available
      {"25006", absl::StatusCode::kUnavailable},    // read_only_sql_transaction (a standby)
      {"58030", absl::StatusCode::kUnavailable},    // io_error
      {"XX001", absl::StatusCode::kDataLoss},       // data_corrupted
      {"XX002", absl::StatusCode::kDataLoss},       // index_corrupted
      {"", absl::StatusCode::kUnavailable},         // libpq: the connection broke
      {"42P01", absl::StatusCode::kInternal},       // undefined_table
      {"22P02", absl::StatusCode::kInternal},       // invalid_text_representation
      {"XX000", absl::StatusCode::kInternal},       // internal_error
  };
  for (const Case& c : cases) {
    absl::Status s = PgStatus(c.sqlstate, "the message");
    EXPECT_EQ(s.code(), c.code) << "SQLSTATE '" << c.sqlstate << "': " << s;
    EXPECT_THAT(Msg(s), HasSubstr("the message"));
  }
  EXPECT_THAT(Msg(PgStatus("53100", "m")), HasSubstr("disk is full"));
}

TEST(PgStoreTest, TextWithANulCharacterIsInvalidNotCut) {
  absl::StatusOr<surge::testing::PgServer*> pg = surge::testing::SharedPgServer();
  if (!pg.ok()) GTEST_SKIP() << "no PostgreSQL for this test: " << pg.status();
  absl::StatusOr<std::string> url = (*pg)->CreateDatabase(absl::StrCat("nul_", getpid()));
  ASSERT_TRUE(url.ok()) << url.status();
  absl::StatusOr<std::unique_ptr<PgStore>> store = PgStore::Open(*url);
  ASSERT_TRUE(store.ok()) << store.status();
  surge::v1::Job job = MakeJob("job");
  job.set_description(std::string("before\0after", 12));
  absl::StatusOr<surge::v1::Job> created = (*store)->CreateJob(job, kNow);
  EXPECT_EQ(created.status().code(), absl::StatusCode::kInvalidArgument) << created.status();
  EXPECT_THAT(Msg(created.status()), HasSubstr("NUL character"));
  EXPECT_EQ((*store)->GetJob("job").status().code(), absl::StatusCode::kNotFound);
}

TEST(PgStoreTest, ReconnectsAfterTheServerEndsItsConnection) {
  absl::StatusOr<surge::testing::PgServer*> pg = surge::testing::SharedPgServer();
  if (!pg.ok()) GTEST_SKIP() << "no PostgreSQL for this test: " << pg.status();
  const std::string db = absl::StrCat("reconnect_", getpid());
  absl::StatusOr<std::string> url = (*pg)->CreateDatabase(db);
  ASSERT_TRUE(url.ok()) << url.status();
  {
    absl::StatusOr<std::unique_ptr<PgStore>> store = PgStore::Open(*url);
    ASSERT_TRUE(store.ok()) << store.status();
    PgStore& s = **store;
    // Ends the store's server process and waits until it is gone.
    auto terminate = [&] {
      const int pid = s.backend_pid();
      absl::StatusOr<std::string> killed =
          (*pg)->Sql("postgres", absl::StrCat("SELECT pg_terminate_backend(", pid, ")"));
      ASSERT_TRUE(killed.ok()) << killed.status();
      ASSERT_EQ(*killed, "t");
      for (int i = 0; i < 500; ++i) {
        absl::StatusOr<std::string> left = (*pg)->Sql(
            "postgres", absl::StrCat("SELECT COUNT(*) FROM pg_stat_activity WHERE pid = ", pid));
        ASSERT_TRUE(left.ok()) << left.status();
        if (*left == "0") return;
        absl::SleepFor(absl::Milliseconds(10));
      }
      FAIL() << "backend " << pid << " did not end";
    };
    ASSERT_TRUE(s.CreateJob(MakeJob("job"), kNow).ok());
    ASSERT_TRUE(s.CreateRun("job", MakeRun("r", 32), kNow).ok());

    terminate();  // then a read: retried once on a fresh connection
    absl::StatusOr<surge::v1::Job> job = s.GetJob("job");
    EXPECT_TRUE(job.ok()) << job.status();
    EXPECT_EQ(s.reconnects(), 1);

    terminate();  // then a prepared statement: prepared again
    absl::StatusOr<RunKey> key = s.LookupRun("job", "r");
    ASSERT_TRUE(key.ok()) << key.status();
    EXPECT_EQ(s.reconnects(), 2);

    terminate();  // then a write group: its BEGIN finds the broken connection
    std::vector<TestBatch> batches = {Batch(key->run_id, Steps("r", 0, 10))};
    GroupResult written = Write(s, batches);
    EXPECT_TRUE(written.commit.ok()) << written.commit;
    EXPECT_EQ(s.reconnects(), 3);

    terminate();  // then a one-statement write
    EXPECT_TRUE(s.CreateJob(MakeJob("job-2"), kNow).ok());
    EXPECT_EQ(s.reconnects(), 4);

    // A connection that breaks inside a transaction fails that call with
    // UNAVAILABLE (nothing of it committed); the next call reconnects.
    std::vector<TestBatch> more = {Batch(key->run_id, Steps("r", 10, 20))};
    GroupResult broken = Write(s, more, [&](const auto&) { terminate(); });
    EXPECT_EQ(broken.commit.code(), absl::StatusCode::kUnavailable) << broken.commit;
    EXPECT_TRUE(broken.batches.empty());
    job = s.GetJob("job");
    ASSERT_TRUE(job.ok()) << job.status();
    EXPECT_EQ(job->record_count(), 10);
  }
}

}  // namespace
}  // namespace surge::store
