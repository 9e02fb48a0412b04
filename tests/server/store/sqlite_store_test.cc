// Unit tests of SqliteStore: schema and migrations, jobs, runs, records,
// paging and cascading deletes; SQLite result codes as status codes and the
// start-up checks (CheckDatabaseAtStart) on damaged and read-only files. Most
// tests use an in-memory database; the migration tests and the start-up
// checks use files in a TempDir.
#include "server/store/sqlite_store.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <sqlite3.h>

#include <cstdlib>
#include <fstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/schema.h"
#include "tests/server/store/store_test_records.h"
#include "tests/support/temp_dir.h"

namespace surge::store {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

constexpr int64_t kNow = 1700000000000000;

surge::v1::Job MakeJob(const std::string& name,
                       surge::v1::BatchUnit unit = surge::v1::BATCH_UNIT_EXAMPLES,
                       const std::string& description = "") {
  surge::v1::Job job;
  job.set_name(name);
  job.set_batch_unit(unit);
  job.set_description(description);
  return job;
}

std::unique_ptr<SqliteStore> OpenMemory() {
  absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(":memory:");
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::move(*store) : nullptr;
}

// (run name, step) of a record, for order comparisons.
using Key = std::pair<std::string, int64_t>;

std::vector<Key> Keys(const std::vector<surge::v1::Record>& records) {
  std::vector<Key> keys;
  for (const auto& r : records) keys.emplace_back(r.run(), r.step());
  return keys;
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = OpenMemory();
    ASSERT_NE(store_, nullptr);
  }

  // Creates a job and returns its id.
  int64_t CreateJob(const std::string& name) {
    return CreateTestJob(*store_, name, kNow);
  }

  // Creates a run and returns its id.
  int64_t CreateRun(const std::string& job, const std::string& run, int64_t batch_size = 32) {
    return CreateTestRun(*store_, job, run, batch_size, kNow);
  }

  // Inserts records (must be new) and bumps the run's counters.
  void Insert(int64_t run_id, const std::vector<surge::v1::Record>& records) {
    int64_t max_step = -1;
    for (const auto& r : records) {
      absl::StatusOr<bool> inserted = store_->InsertRecord(run_id, r);
      ASSERT_TRUE(inserted.ok()) << inserted.status();
      ASSERT_TRUE(*inserted) << "record (" << r.run() << ", " << r.step() << ") not new";
      max_step = std::max(max_step, r.step());
    }
    ASSERT_TRUE(store_->BumpRun(run_id, static_cast<int64_t>(records.size()), max_step, kNow + 1)
                    .ok());
  }

  // Pages through ListRecords with `page_size`, checking the page invariants:
  // exactly ceil(total / page_size) pages (at least one), every page but the
  // last one full, so no empty page follows a next token.
  std::vector<surge::v1::Record> ListAll(int64_t job_id, std::optional<int64_t> run_id,
                                         int page_size, int64_t total) {
    std::vector<surge::v1::Record> all;
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
      EXPECT_LE(static_cast<int>(page->records.size()), page_size);
      all.insert(all.end(), page->records.begin(), page->records.end());
      if (!page->next) break;
      EXPECT_EQ(static_cast<int>(page->records.size()), page_size)
          << "a page that is not full must be the last one";
      cursor = *page->next;
    }
    return all;
  }

  std::unique_ptr<SqliteStore> store_;
};

// ------------------------------------------------------------------ schema

TEST(StoreSchemaTest, VersionEqualsNumberOfMigrations) {
  ASSERT_FALSE(Migrations().empty());
  std::unique_ptr<SqliteStore> store = OpenMemory();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<int> version = store->SchemaVersion();
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(*version, static_cast<int>(Migrations().size()));
}

TEST(StoreSchemaTest, ReopeningAFileKeepsDataAndVersion) {
  surge::testing::TempDir dir;
  const std::string path = dir.File("surge.db");
  {
    absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->CreateJob(MakeJob("job-a", surge::v1::BATCH_UNIT_TOKENS, "d"), kNow).ok());
    ASSERT_TRUE((*store)->CreateRun("job-a", MakeRun("r1", 64), kNow).ok());
    absl::StatusOr<RunKey> key = (*store)->LookupRun("job-a", "r1");
    ASSERT_TRUE(key.ok()) << key.status();
    ASSERT_TRUE((*store)->InsertRecord(key->run_id, MakeRecord("r1", 0)).ok());
    ASSERT_TRUE((*store)->InsertRecord(key->run_id, MakeRecord("r1", 1)).ok());
    ASSERT_TRUE((*store)->BumpRun(key->run_id, 2, 1, kNow).ok());
  }
  // Reopen several times: the migrations must not run again (they would fail
  // on existing tables) and the version must stay put.
  for (int reopen = 0; reopen < 3; ++reopen) {
    SCOPED_TRACE(absl::StrCat("reopen #", reopen));
    absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    absl::StatusOr<int> version = (*store)->SchemaVersion();
    ASSERT_TRUE(version.ok()) << version.status();
    EXPECT_EQ(*version, static_cast<int>(Migrations().size()));
    absl::StatusOr<surge::v1::Job> job = (*store)->GetJob("job-a");
    ASSERT_TRUE(job.ok()) << job.status();
    EXPECT_EQ(job->batch_unit(), surge::v1::BATCH_UNIT_TOKENS);
    EXPECT_EQ(job->description(), "d");
    EXPECT_EQ(job->run_count(), 1);
    EXPECT_EQ(job->record_count(), 2);
    absl::StatusOr<std::vector<surge::v1::Job>> jobs = (*store)->ListJobs();
    ASSERT_TRUE(jobs.ok()) << jobs.status();
    EXPECT_EQ(jobs->size(), 1u);
  }
  // A reader-style open (no migrations) sees the same schema.
  StoreOptions no_migrate;
  no_migrate.migrate = false;
  absl::StatusOr<std::unique_ptr<SqliteStore>> reader = SqliteStore::Open(path, no_migrate);
  ASSERT_TRUE(reader.ok()) << reader.status();
  absl::StatusOr<int> version = (*reader)->SchemaVersion();
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(*version, static_cast<int>(Migrations().size()));
}

// ReadSnapshot: a reader connection sees one snapshot for all its queries,
// even while another connection commits (WAL); after the snapshot it sees
// the new data. Outside a snapshot every query sees the latest commit.
TEST(StoreSchemaTest, ReadSnapshotSeesOneStateWhileAWriterCommits) {
  surge::testing::TempDir dir;
  const std::string path = dir.File("surge.db");
  absl::StatusOr<std::unique_ptr<SqliteStore>> writer = SqliteStore::Open(path);
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)->CreateJob(MakeJob("job"), kNow).ok());
  ASSERT_TRUE((*writer)->CreateRun("job", MakeRun("r", 64), kNow).ok());
  absl::StatusOr<RunKey> key = (*writer)->LookupRun("job", "r");
  ASSERT_TRUE(key.ok()) << key.status();
  ASSERT_TRUE((*writer)->InsertRecord(key->run_id, MakeRecord("r", 0)).ok());
  ASSERT_TRUE((*writer)->BumpRun(key->run_id, 1, 0, kNow).ok());

  StoreOptions no_migrate;
  no_migrate.migrate = false;
  absl::StatusOr<std::unique_ptr<SqliteStore>> reader = SqliteStore::Open(path, no_migrate);
  ASSERT_TRUE(reader.ok()) << reader.status();
  auto commit_step = [&](int64_t step) {
    ASSERT_TRUE((*writer)->InsertRecord(key->run_id, MakeRecord("r", step)).ok());
    ASSERT_TRUE((*writer)->BumpRun(key->run_id, 1, step, kNow).ok());
  };
  auto last_step = [&]() -> int64_t {
    absl::StatusOr<std::optional<surge::v1::Record>> last = (*reader)->LastRecord(key->run_id);
    EXPECT_TRUE(last.ok()) << last.status();
    return last.ok() && last->has_value() ? (*last)->step() : -1;
  };

  absl::Status s = (*reader)->ReadSnapshot([&]() -> absl::Status {
    EXPECT_EQ(last_step(), 0);
    commit_step(1);  // committed by the other connection mid-snapshot
    EXPECT_EQ(last_step(), 0);
    absl::StatusOr<surge::v1::Job> job = (*reader)->GetJob("job");
    EXPECT_TRUE(job.ok()) << job.status();
    if (job.ok()) EXPECT_EQ(job->record_count(), 1);  // the same snapshot
    return absl::OkStatus();
  });
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(last_step(), 1);
  commit_step(2);
  EXPECT_EQ(last_step(), 2);  // no snapshot: the latest commit

  // An error from the body is returned, and the snapshot still ends.
  s = (*reader)->ReadSnapshot([&]() -> absl::Status {
    return absl::InternalError("body failed");
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  commit_step(3);
  EXPECT_EQ(last_step(), 3);
}

TEST(StoreSchemaTest, NewerDatabaseIsRefused) {
  surge::testing::TempDir dir;
  const std::string path = dir.File("surge.db");
  {
    absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
  }
  // Pretend a newer server migrated this file.
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
  const std::string sql =
      absl::StrCat("INSERT INTO schema_version (version) VALUES (", Migrations().size() + 1, ");");
  char* err = nullptr;
  int rc = sqlite3_exec(raw, sql.c_str(), nullptr, nullptr, &err);
  EXPECT_EQ(rc, SQLITE_OK) << (err ? err : "");
  sqlite3_free(err);
  sqlite3_close(raw);

  absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(path);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
  EXPECT_THAT(Msg(store.status()), HasSubstr(absl::StrCat(Migrations().size() + 1)));
}

// ------------------------------------------------------------------ jobs

TEST_F(StoreTest, CreateGetListJobs) {
  absl::StatusOr<surge::v1::Job> created =
      store_->CreateJob(MakeJob("b-job", surge::v1::BATCH_UNIT_TOKENS, "about b"), kNow);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->name(), "b-job");
  EXPECT_EQ(created->batch_unit(), surge::v1::BATCH_UNIT_TOKENS);
  EXPECT_EQ(created->description(), "about b");
  EXPECT_EQ(created->create_time_us(), kNow);
  EXPECT_EQ(created->update_time_us(), kNow);
  EXPECT_EQ(created->run_count(), 0);
  EXPECT_EQ(created->record_count(), 0);

  ASSERT_TRUE(store_->CreateJob(MakeJob("a-job"), kNow + 1).ok());
  ASSERT_TRUE(store_->CreateJob(MakeJob("c-job"), kNow + 2).ok());

  absl::StatusOr<surge::v1::Job> got = store_->GetJob("b-job");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->SerializeAsString(), created->SerializeAsString());

  absl::StatusOr<std::vector<surge::v1::Job>> jobs = store_->ListJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  std::vector<std::string> names;
  for (const auto& j : *jobs) names.push_back(j.name());
  EXPECT_THAT(names, ElementsAre("a-job", "b-job", "c-job")) << "ListJobs must order by name";
}

TEST_F(StoreTest, DuplicateJobIsAlreadyExists) {
  ASSERT_TRUE(store_->CreateJob(MakeJob("dup"), kNow).ok());
  absl::StatusOr<surge::v1::Job> again =
      store_->CreateJob(MakeJob("dup", surge::v1::BATCH_UNIT_TOKENS), kNow + 5);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists) << again.status();
  EXPECT_THAT(Msg(again.status()), HasSubstr("dup"));
  // The original is untouched.
  absl::StatusOr<surge::v1::Job> job = store_->GetJob("dup");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->batch_unit(), surge::v1::BATCH_UNIT_EXAMPLES);
  EXPECT_EQ(job->create_time_us(), kNow);
}

TEST_F(StoreTest, MissingJobIsNotFound) {
  absl::StatusOr<surge::v1::Job> job = store_->GetJob("nope");
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kNotFound) << job.status();
  EXPECT_THAT(Msg(job.status()), HasSubstr("nope"));
  EXPECT_EQ(store_->JobId("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->ListRuns("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->DeleteJob("nope").status().code(), absl::StatusCode::kNotFound);
  absl::StatusOr<std::vector<surge::v1::Job>> jobs = store_->ListJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  EXPECT_THAT(*jobs, IsEmpty());
}

// ------------------------------------------------------------------ runs

TEST_F(StoreTest, CreateRunIsIdempotentForSameBatchSizeAndProtocol) {
  CreateJob("job");
  surge::v1::Run run = MakeRun("r1", 128);
  absl::StatusOr<surge::v1::Run> first = store_->CreateRun("job", run, kNow);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->job(), "job");
  EXPECT_EQ(first->name(), "r1");
  EXPECT_EQ(first->batch_size(), 128);
  EXPECT_EQ(first->create_time_us(), kNow);

  // Same batch size and protocol: the stored run comes back, even when other
  // fields differ and time has passed.
  surge::v1::Run same = run;
  same.set_base_lr(0.5);
  absl::StatusOr<surge::v1::Run> second = store_->CreateRun("job", same, kNow + 100);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->SerializeAsString(), first->SerializeAsString());

  absl::StatusOr<std::vector<surge::v1::Run>> runs = store_->ListRuns("job");
  ASSERT_TRUE(runs.ok()) << runs.status();
  EXPECT_EQ(runs->size(), 1u);
  absl::StatusOr<surge::v1::Job> job = store_->GetJob("job");
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->run_count(), 1);
}

TEST_F(StoreTest, CreateRunConflictsAndMissingJob) {
  CreateJob("job");
  ASSERT_TRUE(store_->CreateRun("job", MakeRun("r1", 128), kNow).ok());

  struct Case {
    std::string name;
    std::string job;
    surge::v1::Run run;
    absl::StatusCode code;
    std::string substring;
  };
  const std::vector<Case> cases = {
      {"other batch size", "job", MakeRun("r1", 256), absl::StatusCode::kAlreadyExists, "r1"},
      {"other protocol", "job", MakeRun("r1", 128, surge::v1::PROTOCOL_FULL_RUN),
       absl::StatusCode::kAlreadyExists, "r1"},
      {"missing job", "ghost", MakeRun("r1", 128), absl::StatusCode::kNotFound, "ghost"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    absl::StatusOr<surge::v1::Run> run = store_->CreateRun(c.job, c.run, kNow);
    ASSERT_FALSE(run.ok());
    EXPECT_EQ(run.status().code(), c.code) << run.status();
    EXPECT_THAT(Msg(run.status()), HasSubstr(c.substring));
  }
  // Nothing changed, and the store is still usable (no transaction left open).
  absl::StatusOr<std::vector<surge::v1::Run>> runs = store_->ListRuns("job");
  ASSERT_TRUE(runs.ok()) << runs.status();
  ASSERT_EQ(runs->size(), 1u);
  EXPECT_EQ((*runs)[0].batch_size(), 128);
  EXPECT_EQ((*runs)[0].protocol(), surge::v1::PROTOCOL_PLAIN);
  EXPECT_TRUE(store_->CreateRun("job", MakeRun("r2", 1), kNow).ok());
}

TEST_F(StoreTest, RunFieldsRoundTrip) {
  CreateJob("job");
  surge::v1::Run probe = MakeProbeRunWithEverything();

  surge::v1::Run full = MakeRun("full-1", 64, surge::v1::PROTOCOL_FULL_RUN);
  full.set_target_loss(3.5);

  surge::v1::Run plain = MakeRun("plain-1", 32);  // no optimizer, parent, target, labels

  for (const surge::v1::Run* run : {&probe, &full, &plain}) {
    absl::StatusOr<surge::v1::Run> created = store_->CreateRun("job", *run, kNow);
    ASSERT_TRUE(created.ok()) << run->name() << ": " << created.status();
  }
  absl::StatusOr<std::vector<surge::v1::Run>> runs = store_->ListRuns("job");
  ASSERT_TRUE(runs.ok()) << runs.status();
  ASSERT_EQ(runs->size(), 3u);
  auto find = [&](const std::string& name) -> const surge::v1::Run& {
    for (const auto& r : *runs) {
      if (r.name() == name) return r;
    }
    ADD_FAILURE() << "run " << name << " not listed";
    return runs->front();
  };
  const surge::v1::Run& got_full = find("full-1");
  const surge::v1::Run& got_plain = find("plain-1");
  const surge::v1::Run& got_probe = find("probe-1");

  // Output-only fields of fresh runs.
  for (const auto& r : *runs) {
    SCOPED_TRACE(r.name());
    EXPECT_EQ(r.job(), "job");
    EXPECT_EQ(r.record_count(), 0);
    EXPECT_EQ(r.last_step(), -1);
    EXPECT_EQ(r.create_time_us(), kNow);
  }

  EXPECT_EQ(got_probe.batch_size(), 512);
  EXPECT_EQ(got_probe.protocol(), surge::v1::PROTOCOL_PROBE);
  EXPECT_DOUBLE_EQ(got_probe.base_lr(), 3e-4);
  ASSERT_TRUE(got_probe.has_optimizer());
  EXPECT_EQ(got_probe.optimizer().name(), "adamw");
  EXPECT_DOUBLE_EQ(got_probe.optimizer().beta1(), 0.9);
  EXPECT_DOUBLE_EQ(got_probe.optimizer().beta2(), 0.95);
  EXPECT_DOUBLE_EQ(got_probe.optimizer().eps(), 1e-8);
  EXPECT_DOUBLE_EQ(got_probe.optimizer().weight_decay(), 0.1);
  ASSERT_TRUE(got_probe.has_parent());
  EXPECT_EQ(got_probe.parent().checkpoint_step(), 1000);
  EXPECT_DOUBLE_EQ(got_probe.parent().loss(), 2.75);
  EXPECT_EQ(got_probe.parent().base_run(), "base");
  EXPECT_FALSE(got_probe.has_target_loss());
  EXPECT_THAT(got_probe.labels(), UnorderedElementsAre(Pair("model", "gpt-small"), Pair("seed", "7"),
                                                       Pair("empty", "")));

  EXPECT_EQ(got_full.protocol(), surge::v1::PROTOCOL_FULL_RUN);
  ASSERT_TRUE(got_full.has_target_loss());
  EXPECT_DOUBLE_EQ(got_full.target_loss(), 3.5);
  EXPECT_FALSE(got_full.has_parent());

  EXPECT_FALSE(got_plain.has_optimizer());
  EXPECT_FALSE(got_plain.has_parent());
  EXPECT_FALSE(got_plain.has_target_loss());
  EXPECT_THAT(got_plain.labels(), IsEmpty());
}

TEST_F(StoreTest, ListRunsOrderedByBatchSizeThenName) {
  CreateJob("job");
  // (name, batch size) in creation order.
  const std::vector<std::pair<std::string, int64_t>> runs = {
      {"m", 64}, {"z", 8}, {"b", 64}, {"a", 512}, {"y", 8}, {"c", 32}};
  for (const auto& [name, batch_size] : runs) {
    ASSERT_TRUE(store_->CreateRun("job", MakeRun(name, batch_size), kNow).ok()) << name;
  }
  absl::StatusOr<std::vector<surge::v1::Run>> listed = store_->ListRuns("job");
  ASSERT_TRUE(listed.ok()) << listed.status();
  std::vector<std::string> names;
  for (const auto& r : *listed) names.push_back(absl::StrCat(r.batch_size(), "/", r.name()));
  EXPECT_THAT(names, ElementsAre("8/y", "8/z", "32/c", "64/b", "64/m", "512/a"));
}

TEST_F(StoreTest, LookupRun) {
  int64_t job_id = CreateJob("job");
  ASSERT_TRUE(store_->CreateRun("job", MakeRun("r1", 96), kNow).ok());
  absl::StatusOr<RunKey> key = store_->LookupRun("job", "r1");
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(key->job_id, job_id);
  EXPECT_GT(key->run_id, 0);
  EXPECT_EQ(key->batch_size, 96);

  absl::StatusOr<RunKey> missing_run = store_->LookupRun("job", "r2");
  EXPECT_EQ(missing_run.status().code(), absl::StatusCode::kNotFound) << missing_run.status();
  EXPECT_THAT(Msg(missing_run.status()), HasSubstr("r2"));
  absl::StatusOr<RunKey> missing_job = store_->LookupRun("ghost", "r1");
  EXPECT_EQ(missing_job.status().code(), absl::StatusCode::kNotFound) << missing_job.status();
  EXPECT_THAT(Msg(missing_job.status()), HasSubstr("ghost"));
  // The prepared statement is reusable after the misses.
  EXPECT_TRUE(store_->LookupRun("job", "r1").ok());
}

// ------------------------------------------------------------------ records

TEST_F(StoreTest, InsertRecordReportsDuplicates) {
  CreateJob("job");
  int64_t run_id = CreateRun("job", "r1");
  absl::StatusOr<bool> first = store_->InsertRecord(run_id, MakeRecord("r1", 5));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(*first);
  surge::v1::Record changed = MakeRecord("r1", 5);
  changed.set_loss(123.0);
  absl::StatusOr<bool> second = store_->InsertRecord(run_id, changed);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_FALSE(*second) << "(run, step) already stored";

  absl::StatusOr<RecordPage> page = store_->ListRecords(store_->JobId("job").value(), std::nullopt,
                                                        RecordCursor{}, 10);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->records.size(), 1u);
  EXPECT_DOUBLE_EQ(page->records[0].loss(), MakeRecord("r1", 5).loss()) << "first write wins";
}

TEST_F(StoreTest, InsertRecordForMissingRunIsNotFound) {
  CreateJob("job");
  int64_t run_id = CreateRun("job", "r1");
  absl::StatusOr<bool> inserted = store_->InsertRecord(run_id + 1000, MakeRecord("x", 0));
  ASSERT_FALSE(inserted.ok());
  EXPECT_EQ(inserted.status().code(), absl::StatusCode::kNotFound) << inserted.status();
  // The statement is reusable afterwards.
  absl::StatusOr<bool> ok = store_->InsertRecord(run_id, MakeRecord("r1", 0));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_TRUE(*ok);
}

TEST_F(StoreTest, BumpRunUpdatesCounters) {
  CreateJob("job");
  int64_t r1 = CreateRun("job", "r1");
  int64_t r2 = CreateRun("job", "r2");
  Insert(r1, {MakeRecord("r1", 0), MakeRecord("r1", 7), MakeRecord("r1", 3)});
  Insert(r2, {MakeRecord("r2", 2)});
  // A bump with a lower max step must not lower last_step.
  ASSERT_TRUE(store_->InsertRecord(r1, MakeRecord("r1", 1)).value());
  ASSERT_TRUE(store_->BumpRun(r1, 1, 1, kNow + 50).ok());

  absl::StatusOr<surge::v1::Job> job = store_->GetJob("job");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->run_count(), 2);
  EXPECT_EQ(job->record_count(), 5);
  EXPECT_EQ(job->update_time_us(), kNow + 50) << "update time follows the latest run change";

  absl::StatusOr<std::vector<surge::v1::Run>> runs = store_->ListRuns("job");
  ASSERT_TRUE(runs.ok()) << runs.status();
  ASSERT_EQ(runs->size(), 2u);
  EXPECT_EQ((*runs)[0].record_count(), 4);
  EXPECT_EQ((*runs)[0].last_step(), 7);
  EXPECT_EQ((*runs)[1].record_count(), 1);
  EXPECT_EQ((*runs)[1].last_step(), 2);

  absl::StatusOr<std::vector<surge::v1::Job>> jobs = store_->ListJobs();
  ASSERT_TRUE(jobs.ok());
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_EQ((*jobs)[0].record_count(), 5);
  EXPECT_EQ((*jobs)[0].run_count(), 2);
}

TEST_F(StoreTest, SavepointRollbackDiscardsOnlyThatBatch) {
  CreateJob("job");
  int64_t run_id = CreateRun("job", "r1");
  ASSERT_TRUE(store_->Begin().ok());
  ASSERT_TRUE(store_->Savepoint().ok());
  ASSERT_TRUE(store_->InsertRecord(run_id, MakeRecord("r1", 0)).value());
  ASSERT_TRUE(store_->ReleaseSavepoint().ok());
  ASSERT_TRUE(store_->Savepoint().ok());
  ASSERT_TRUE(store_->InsertRecord(run_id, MakeRecord("r1", 1)).value());
  ASSERT_TRUE(store_->RollbackToSavepoint().ok());
  ASSERT_TRUE(store_->Savepoint().ok());
  ASSERT_TRUE(store_->InsertRecord(run_id, MakeRecord("r1", 2)).value());
  ASSERT_TRUE(store_->ReleaseSavepoint().ok());
  ASSERT_TRUE(store_->Commit().ok());

  absl::StatusOr<RecordPage> page =
      store_->ListRecords(store_->JobId("job").value(), std::nullopt, RecordCursor{}, 10);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(Keys(page->records), ElementsAre(Key("r1", 0), Key("r1", 2)));

  // A rolled-back transaction stores nothing.
  ASSERT_TRUE(store_->Begin().ok());
  ASSERT_TRUE(store_->InsertRecord(run_id, MakeRecord("r1", 9)).value());
  ASSERT_TRUE(store_->Rollback().ok());
  page = store_->ListRecords(store_->JobId("job").value(), std::nullopt, RecordCursor{}, 10);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->records.size(), 2u);
}

TEST_F(StoreTest, OptionalRecordFieldsRoundTrip) {
  int64_t job_id = CreateJob("job");
  int64_t run_id = CreateRun("job", "r1");

  surge::v1::Record bare = MakeRecord("r1", 0);
  surge::v1::Record with_eval = MakeRecord("r1", 1);
  with_eval.set_eval_loss(0.0);  // zero is a value, not absence
  surge::v1::Record with_grad = MakeRecord("r1", 2);
  auto* g = with_grad.mutable_grad_stats();
  g->set_grad_sq_small(0.0);
  g->set_grad_sq_big(1.25e-3);
  g->set_b_small(1);
  g->set_b_big(8);
  surge::v1::Record with_both = MakeRecord("r1", 3);
  with_both.set_eval_loss(2.5);
  *with_both.mutable_grad_stats() = with_grad.grad_stats();
  with_both.mutable_grad_stats()->set_grad_sq_small(4.5);
  with_both.set_lr(0.0);
  with_both.set_loss(-1.5);  // negative losses are finite, hence valid
  with_both.set_examples(int64_t{1} << 40);
  Insert(run_id, {bare, with_eval, with_grad, with_both});

  absl::StatusOr<RecordPage> page = store_->ListRecords(job_id, std::nullopt, RecordCursor{}, 100);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->records.size(), 4u);
  const std::vector<surge::v1::Record> want = {bare, with_eval, with_grad, with_both};
  for (size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("step ", want[i].step()));
    const surge::v1::Record& got = page->records[i];
    EXPECT_EQ(got.has_eval_loss(), want[i].has_eval_loss());
    EXPECT_EQ(got.has_grad_stats(), want[i].has_grad_stats());
    // Exact round trip, field by field (doubles are stored as REAL).
    EXPECT_EQ(got.SerializeAsString(), want[i].SerializeAsString())
        << "got " << got.ShortDebugString() << "\nwant " << want[i].ShortDebugString();
  }
}

// Three runs created in an order that differs from their names' order, with
// steps inserted out of order and with gaps, and an empty run in between.
class StorePagingTest : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    job_id_ = CreateJob("job");
    // Another job's records must never show up.
    CreateJob("other");
    int64_t other_run = CreateRun("other", "zz");
    Insert(other_run, {MakeRecord("zz", 0), MakeRecord("zz", 1)});

    const std::vector<std::pair<std::string, std::vector<int64_t>>> runs = {
        {"zeta", {9, 0, 4, 2, 100}},
        {"alpha", {}},
        {"mid", {3, 1, 2}},
        {"beta", {7}},
    };
    for (const auto& [name, steps] : runs) {
      int64_t id = CreateRun("job", name);
      run_ids_[name] = id;
      std::vector<surge::v1::Record> records;
      for (int64_t step : steps) records.push_back(MakeRecord(name, step));
      if (!records.empty()) Insert(id, records);
      std::vector<int64_t> sorted = steps;
      std::sort(sorted.begin(), sorted.end());
      for (int64_t step : sorted) expected_.emplace_back(name, step);
    }
  }

  int64_t job_id_ = 0;
  std::map<std::string, int64_t> run_ids_;
  std::vector<Key> expected_;  // (run creation order, step)
};

TEST_F(StorePagingTest, WholeJobEveryRecordOnceInOrder) {
  const int64_t total = static_cast<int64_t>(expected_.size());
  ASSERT_EQ(total, 9);
  // 1, 3 (exact multiple of 9), 2 and 4 (not), 9 (exactly the total), larger.
  for (int page_size : {1, 2, 3, 4, 9, 10, 1000}) {
    SCOPED_TRACE(absl::StrCat("page_size ", page_size));
    std::vector<surge::v1::Record> all = ListAll(job_id_, std::nullopt, page_size, total);
    EXPECT_EQ(Keys(all), expected_);
  }
}

TEST_F(StorePagingTest, OneRunEveryRecordOnceInOrder) {
  for (const char* run : {"zeta", "mid", "beta", "alpha"}) {
    std::vector<Key> want;
    for (const Key& k : expected_) {
      if (k.first == run) want.push_back(k);
    }
    const int64_t total = static_cast<int64_t>(want.size());
    for (int page_size : {1, 3, 5, 100}) {
      SCOPED_TRACE(absl::StrCat("run ", run, ", page_size ", page_size));
      std::vector<surge::v1::Record> all = ListAll(job_id_, run_ids_[run], page_size, total);
      EXPECT_EQ(Keys(all), want);
    }
  }
}

TEST_F(StorePagingTest, CursorInTheMiddleOfARun) {
  // Start after ("zeta", 2): the rest of zeta, then mid, then beta.
  absl::StatusOr<RecordPage> page =
      store_->ListRecords(job_id_, std::nullopt, RecordCursor{run_ids_["zeta"], 2}, 100);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(Keys(page->records),
              ElementsAre(Key("zeta", 4), Key("zeta", 9), Key("zeta", 100), Key("mid", 1),
                          Key("mid", 2), Key("mid", 3), Key("beta", 7)));
  EXPECT_FALSE(page->next.has_value());
}

TEST_F(StorePagingTest, PageNextCursorPointsAtLastRecord) {
  absl::StatusOr<RecordPage> page =
      store_->ListRecords(job_id_, std::nullopt, RecordCursor{}, 6);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->records.size(), 6u);
  ASSERT_TRUE(page->next.has_value());
  EXPECT_EQ(page->next->run_id, run_ids_["mid"]);
  EXPECT_EQ(page->next->step, 1);
}

// ------------------------------------------------------------------ delete

TEST_F(StoreTest, DeleteJobCascades) {
  int64_t job_id = CreateJob("doomed");
  int64_t r1 = CreateRun("doomed", "r1");
  int64_t r2 = CreateRun("doomed", "r2");
  surge::v1::Run labeled = MakeRun("r3", 8);
  (*labeled.mutable_labels())["k"] = "v";
  ASSERT_TRUE(store_->CreateRun("doomed", labeled, kNow).ok());
  Insert(r1, {MakeRecord("r1", 0), MakeRecord("r1", 1), MakeRecord("r1", 2)});
  Insert(r2, {MakeRecord("r2", 0), MakeRecord("r2", 1)});

  CreateJob("kept");
  int64_t kept_run = CreateRun("kept", "r1");
  Insert(kept_run, {MakeRecord("r1", 0)});

  absl::StatusOr<DeleteCounts> counts = store_->DeleteJob("doomed");
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_EQ(counts->runs, 3);
  EXPECT_EQ(counts->records, 5);

  EXPECT_EQ(store_->GetJob("doomed").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->LookupRun("doomed", "r1").status().code(), absl::StatusCode::kNotFound);
  absl::StatusOr<RecordPage> page = store_->ListRecords(job_id, std::nullopt, RecordCursor{}, 100);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(page->records, IsEmpty());

  // Recreate the same names: SQLite may hand out the same ids again, so any
  // record or label that survived the cascade would reappear here.
  CreateJob("doomed");
  int64_t new_r1 = CreateRun("doomed", "r1");
  int64_t new_r2 = CreateRun("doomed", "r2");
  ASSERT_TRUE(store_->CreateRun("doomed", MakeRun("r3", 8), kNow).ok());
  absl::StatusOr<int64_t> new_job_id = store_->JobId("doomed");
  ASSERT_TRUE(new_job_id.ok());
  page = store_->ListRecords(*new_job_id, std::nullopt, RecordCursor{}, 100);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(page->records, IsEmpty()) << "records of the deleted job survived";
  for (int64_t id : {new_r1, new_r2}) {
    absl::StatusOr<bool> inserted = store_->InsertRecord(id, MakeRecord("r", 0));
    ASSERT_TRUE(inserted.ok()) << inserted.status();
    EXPECT_TRUE(*inserted) << "run id " << id << " still has the old step 0";
  }
  absl::StatusOr<std::vector<surge::v1::Run>> runs = store_->ListRuns("doomed");
  ASSERT_TRUE(runs.ok());
  for (const auto& r : *runs) {
    EXPECT_THAT(r.labels(), IsEmpty()) << r.name() << " got the deleted run's labels";
  }

  // The other job is untouched.
  absl::StatusOr<surge::v1::Job> kept = store_->GetJob("kept");
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(kept->record_count(), 1);
  page = store_->ListRecords(store_->JobId("kept").value(), std::nullopt, RecordCursor{}, 100);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->records.size(), 1u);

  // Deleting an empty job reports zero counts.
  CreateJob("empty");
  absl::StatusOr<DeleteCounts> empty = store_->DeleteJob("empty");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->runs, 0);
  EXPECT_EQ(empty->records, 0);
  EXPECT_EQ(store_->DeleteJob("empty").status().code(), absl::StatusCode::kNotFound);
}

// ------------------------------------------ error codes and start-up checks

TEST(StoreErrorCodeTest, SqliteResultCodesMapByMeaning) {
  struct Case {
    int rc;
    absl::StatusCode code;
    std::string message;  // what the status adds to SQLite's text
  };
  const std::vector<Case> cases = {
      {SQLITE_BUSY, absl::StatusCode::kUnavailable, "database is locked"},
      {SQLITE_LOCKED, absl::StatusCode::kUnavailable, "database table is locked"},
      {SQLITE_READONLY, absl::StatusCode::kUnavailable, "cannot be written"},
      {SQLITE_FULL, absl::StatusCode::kUnavailable, "no space left"},
      {SQLITE_IOERR, absl::StatusCode::kUnavailable, "I/O error"},
      {SQLITE_IOERR_WRITE, absl::StatusCode::kUnavailable, "I/O error"},
      {SQLITE_IOERR_FSYNC, absl::StatusCode::kUnavailable, "I/O error"},
      {SQLITE_CANTOPEN, absl::StatusCode::kUnavailable, "cannot be opened"},
      {SQLITE_CORRUPT, absl::StatusCode::kDataLoss, "is damaged"},
      {SQLITE_NOTADB, absl::StatusCode::kDataLoss, "is damaged"},
      {SQLITE_CONSTRAINT, absl::StatusCode::kAlreadyExists, "constraint failed"},
      {SQLITE_ERROR, absl::StatusCode::kInternal, "SQL logic error"},
  };
  for (const Case& c : cases) {
    absl::Status status = SqliteError(nullptr, c.rc, "writing");
    EXPECT_EQ(status.code(), c.code) << "rc " << c.rc << ": " << status;
    EXPECT_THAT(Msg(status), HasSubstr("writing: ")) << "rc " << c.rc;
    EXPECT_THAT(Msg(status), HasSubstr(c.message)) << "rc " << c.rc;
  }
}

// A file database with a job "j", a run "r" and `records` records, closed
// (so that its WAL is checkpointed into the file).
void MakeFileDatabase(const std::string& path, int records) {
  absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->CreateJob(MakeJob("j"), kNow).ok());
  ASSERT_TRUE((*store)->CreateRun("j", MakeRun("r", 32), kNow).ok());
  absl::StatusOr<RunKey> key = (*store)->LookupRun("j", "r");
  ASSERT_TRUE(key.ok()) << key.status();
  ASSERT_TRUE((*store)->Begin().ok());
  for (int step = 0; step < records; ++step) {
    ASSERT_TRUE((*store)->InsertRecord(key->run_id, MakeRecord("r", step)).ok());
  }
  ASSERT_TRUE((*store)->Commit().ok());
}

// Overwrites the header of a b-tree page near the middle of the file.
void DamageMiddlePage(const std::string& path) {
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(file.good());
  unsigned char header[100];
  file.read(reinterpret_cast<char*>(header), sizeof(header));
  int page_size = (header[16] << 8) | header[17];
  if (page_size == 1) page_size = 65536;
  file.seekg(0, std::ios::end);
  int64_t pages = static_cast<int64_t>(file.tellg()) / page_size;
  ASSERT_GT(pages, 10);
  for (int64_t page = pages / 2; page < pages; ++page) {
    file.seekg(page * page_size);
    char type = 0;
    file.read(&type, 1);
    if (type == 2 || type == 5 || type == 10 || type == 13) {  // b-tree pages
      std::string garbage(64, '\xA5');
      file.seekp(page * page_size);
      file.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
      return;
    }
  }
  FAIL() << "no b-tree page in the second half of " << path;
}

// Marks files immutable (chattr +i; even root cannot write them) for its
// lifetime; supported() is false where the filesystem refuses.
class Immutable {
 public:
  explicit Immutable(std::vector<std::string> paths) : paths_(std::move(paths)) {
    for (const std::string& path : paths_) {
      std::string command = absl::StrCat("chattr +i '", path, "' 2>/dev/null");
      if (std::system(command.c_str()) != 0) supported_ = false;
    }
  }
  ~Immutable() {
    for (const std::string& path : paths_) {
      std::string command = absl::StrCat("chattr -i '", path, "' 2>/dev/null");
      if (std::system(command.c_str()) != 0) ADD_FAILURE() << "chattr -i " << path;
    }
  }
  bool supported() const { return supported_; }

 private:
  std::vector<std::string> paths_;
  bool supported_ = true;
};

TEST(StoreStartupCheckTest, ReadingADamagedPageIsDataLoss) {
  surge::testing::TempDir dir;
  const std::string path = dir.File("damaged.db");
  MakeFileDatabase(path, 20000);
  DamageMiddlePage(path);
  StoreOptions options;
  options.migrate = false;
  absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(path, options);
  ASSERT_TRUE(store.ok()) << store.status();
  absl::StatusOr<RunKey> key = (*store)->LookupRun("j", "r");
  ASSERT_TRUE(key.ok()) << key.status();
  absl::Status failed;
  RecordCursor after{key->run_id, -1};
  while (failed.ok()) {
    absl::StatusOr<RecordPage> page = (*store)->ListRecords(key->job_id, key->run_id, after, 1000);
    if (!page.ok()) {
      failed = page.status();
      break;
    }
    if (!page->next) break;
    after = *page->next;
  }
  EXPECT_EQ(failed.code(), absl::StatusCode::kDataLoss) << failed;
  EXPECT_THAT(Msg(failed), HasSubstr("malformed"));
}

TEST(StoreStartupCheckTest, DamagedFileIsRefused) {
  surge::testing::TempDir dir;
  const std::string path = dir.File("damaged.db");
  MakeFileDatabase(path, 20000);
  ASSERT_TRUE(CheckDatabaseAtStart(path).ok());
  DamageMiddlePage(path);
  absl::Status status = CheckDatabaseAtStart(path);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_THAT(Msg(status), HasSubstr(absl::StrCat("database ", path, " is damaged")));
  EXPECT_THAT(Msg(status), HasSubstr("PRAGMA quick_check"));
  // Without quick_check the damage goes unseen at start (the write probe
  // touches only the header page).
  StartupCheckOptions no_check;
  no_check.quick_check = false;
  EXPECT_TRUE(CheckDatabaseAtStart(path, no_check).ok());
}

TEST(StoreStartupCheckTest, NewAndHealthyFilesPassAndAreNotMigrated) {
  surge::testing::TempDir dir;
  EXPECT_TRUE(CheckDatabaseAtStart(dir.File("new.db")).ok());
  const std::string path = dir.File("full.db");
  MakeFileDatabase(path, 1000);
  EXPECT_TRUE(CheckDatabaseAtStart(path).ok());
  // The check wrote nothing a reader sees: the data and version are intact.
  absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  absl::StatusOr<surge::v1::Job> job = (*store)->GetJob("j");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->run_count(), 1);
  // A new file is created but gets no schema: the server's writer migrates.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(dir.File("new.db").c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM sqlite_master", -1, &stmt, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(stmt, 0), 0);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}

TEST(StoreStartupCheckTest, ReadOnlyFileIsRefusedAndItsWritesAreUnavailable) {
  surge::testing::TempDir dir;
  const std::string path = dir.File("ro.db");
  // A live connection keeps the -wal and -shm files (as after a kill -9).
  absl::StatusOr<std::unique_ptr<SqliteStore>> writer = SqliteStore::Open(path);
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)->CreateJob(MakeJob("j"), kNow).ok());
  Immutable immutable({path, path + "-wal"});
  if (!immutable.supported()) GTEST_SKIP() << "chattr +i is not supported here";

  absl::Status status = CheckDatabaseAtStart(path);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(Msg(status), HasSubstr(absl::StrCat("database ", path, " cannot be written")));
  EXPECT_THAT(Msg(status), HasSubstr("readonly database"));

  // SQLite opens the immutable file read-only: reads work, a write is
  // UNAVAILABLE (SQLITE_READONLY) with a message, not INTERNAL.
  StoreOptions options;
  options.migrate = false;
  absl::StatusOr<std::unique_ptr<SqliteStore>> reader = SqliteStore::Open(path, options);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_TRUE((*reader)->GetJob("j").ok());
  absl::StatusOr<surge::v1::Job> created = (*reader)->CreateJob(MakeJob("k"), kNow);
  EXPECT_EQ(created.status().code(), absl::StatusCode::kUnavailable) << created.status();
  EXPECT_THAT(Msg(created.status()), HasSubstr("cannot be written"));
  // The connection opened before: its -wal is immutable now, so a commit
  // fails with an I/O error: UNAVAILABLE too.
  absl::StatusOr<surge::v1::Job> late = (*writer)->CreateJob(MakeJob("late"), kNow);
  EXPECT_EQ(late.status().code(), absl::StatusCode::kUnavailable) << late.status();
}

}  // namespace
}  // namespace surge::store
