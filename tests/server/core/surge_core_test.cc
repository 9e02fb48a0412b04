// Tests of SurgeCore on a real database file: jobs, runs, deletes, record
// listing with page tokens, shutdown and reopening.
#include "server/core/fit_service.h"
#include "server/core/ingest_stream.h"
#include "server/core/page_token.h"
#include "server/core/surge_core.h"
#include "server/core/write_queue.h"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/validation.h"
#include "tests/server/core/core_test_util.h"

namespace surge::core {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using test_util::Acks;
using test_util::CoreTest;
using test_util::DrainAcks;
using test_util::JobRequest;
using test_util::MakeBatch;
using test_util::Msg;
using test_util::RunRequest;

using Key = std::pair<std::string, int64_t>;

std::vector<Key> Keys(const std::vector<surge::v1::Record>& records) {
  std::vector<Key> keys;
  for (const auto& r : records) keys.emplace_back(r.run(), r.step());
  return keys;
}

class SurgeCoreTest : public CoreTest {
 protected:
  // Ingests steps [from, to) of `run` of job "job" through one stream.
  void Ingest(const std::string& run, int64_t from, int64_t to, int per_batch = 10,
              const std::string& job = "job") {
    std::unique_ptr<IngestStream> stream = core_->OpenIngestStream();
    uint64_t seq = 0;
    for (int64_t first = from; first < to; first += per_batch) {
      int n = static_cast<int>(std::min<int64_t>(per_batch, to - first));
      absl::Status status = stream->Accept(MakeBatch(job, ++seq, run, first, n));
      ASSERT_TRUE(status.ok()) << status;
    }
    stream->Close();
    Acks acks = DrainAcks(*stream);
    ASSERT_TRUE(acks.last().has_value());
    ASSERT_EQ(acks.last()->acked_seq(), seq);
  }

  absl::StatusOr<surge::v1::ListRecordsResponse> List(const std::string& job,
                                                      const std::string& run, int page_size,
                                                      const std::string& token = "") {
    surge::v1::ListRecordsRequest request;
    request.set_job(job);
    request.set_run(run);
    request.set_page_size(page_size);
    request.set_page_token(token);
    return core_->ListRecords(request);
  }

  static std::vector<Key> Steps(const std::string& run, int64_t from, int64_t to) {
    std::vector<Key> keys;
    for (int64_t s = from; s < to; ++s) keys.emplace_back(run, s);
    return keys;
  }
};

// ------------------------------------------------------------------ jobs

// Fault 4 of issue 11: unpaged lists outgrew the 64 MiB message limit
// (16,000 jobs with 4 KiB descriptions broke ListJobs for every client).
// Pages hold at most page_size items and stop before 4 MiB; following
// next_page_token visits every job once, in name order.
TEST_F(SurgeCoreTest, ListJobsPagesStayUnderFourMiB) {
  const int n = 1100;  // 1100 x 4 KiB = 4.4 MiB: over one page's budget
  for (int i = 0; i < n; ++i) {
    surge::v1::CreateJobRequest request = JobRequest(absl::StrCat("job-", 10000 + i));
    request.mutable_job()->set_description(std::string(4096, 'd'));
    ASSERT_TRUE(core_->CreateJob(request).ok());
  }
  std::vector<std::string> names;
  surge::v1::ListJobsRequest request;
  request.set_page_size(10000);
  int pages = 0;
  do {
    auto page = core_->ListJobs(request);
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_LE(page->ByteSizeLong(), size_t{4} << 20);
    EXPECT_GT(page->jobs_size(), 0);
    for (const auto& j : page->jobs()) names.push_back(j.name());
    request.set_page_token(page->next_page_token());
    ++pages;
  } while (!request.page_token().empty());
  EXPECT_EQ(pages, 2);
  std::vector<std::string> want = {"job"};  // the fixture's job sorts first
  for (int i = 0; i < n; ++i) want.push_back(absl::StrCat("job-", 10000 + i));
  EXPECT_EQ(names, want);
  // page_size bounds a page too; bad sizes and tokens are named.
  surge::v1::ListJobsRequest small;
  small.set_page_size(500);
  auto first = core_->ListJobs(small);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->jobs_size(), 500);
  small.set_page_size(-1);
  EXPECT_THAT(Msg(core_->ListJobs(small).status()), HasSubstr("page_size"));
  small.set_page_size(0);
  small.set_page_token("x1:job");
  auto bad = core_->ListJobs(small);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(bad.status()), HasSubstr("page_token"));
}

TEST_F(SurgeCoreTest, ListRunsPagesFollowBatchSizeThenName) {
  // 600 runs over 7 batch sizes: pages of 250 split inside a batch size.
  for (int i = 0; i < 600; ++i) {
    const int64_t b = int64_t{1} << (i % 7);
    const std::string name = absl::StrCat("r", 1000 + i);
    ASSERT_TRUE(core_->CreateRun(RunRequest("job", name, b)).ok());
  }
  // The fixture's own runs.
  auto all = core_->ListRuns([] {
    surge::v1::ListRunsRequest r;
    r.set_job("job");
    r.set_page_size(10000);
    return r;
  }());
  ASSERT_TRUE(all.ok());
  std::vector<std::pair<int64_t, std::string>> want;
  for (const auto& r : all->runs()) want.emplace_back(r.batch_size(), r.name());
  ASSERT_GE(want.size(), 600u);
  std::vector<std::pair<int64_t, std::string>> got;
  surge::v1::ListRunsRequest request;
  request.set_job("job");
  request.set_page_size(250);
  do {
    auto page = core_->ListRuns(request);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const auto& r : page->runs()) got.emplace_back(r.batch_size(), r.name());
    request.set_page_token(page->next_page_token());
  } while (!request.page_token().empty());
  EXPECT_EQ(got, want);
  EXPECT_TRUE(std::is_sorted(got.begin(), got.end()));
  request.set_page_token("u1:notanumber:r1");
  EXPECT_EQ(core_->ListRuns(request).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SurgeCoreTest, Jobs) {
  absl::StatusOr<surge::v1::Job> created =
      core_->CreateJob(JobRequest("b-job", surge::v1::BATCH_UNIT_TOKENS));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->name(), "b-job");
  EXPECT_EQ(created->batch_unit(), surge::v1::BATCH_UNIT_TOKENS);
  EXPECT_GT(created->create_time_us(), 0);
  EXPECT_EQ(created->run_count(), 0);

  absl::StatusOr<surge::v1::Job> dup = core_->CreateJob(JobRequest("b-job"));
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kAlreadyExists) << dup.status();

  surge::v1::GetJobRequest get;
  get.set_name("b-job");
  absl::StatusOr<surge::v1::Job> got = core_->GetJob(get);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->SerializeAsString(), created->SerializeAsString());

  absl::StatusOr<surge::v1::ListJobsResponse> list = core_->ListJobs({});
  ASSERT_TRUE(list.ok()) << list.status();
  std::vector<std::string> names;
  for (const auto& j : list->jobs()) names.push_back(j.name());
  EXPECT_THAT(names, ElementsAre("b-job", "job"));
  EXPECT_EQ(list->jobs(1).run_count(), 2);
}

TEST_F(SurgeCoreTest, JobErrors) {
  struct Case {
    std::string name;
    std::function<absl::Status()> call;
    absl::StatusCode code;
    std::string substring;
  };
  SurgeCore* core = core_.get();
  auto get = [core](std::string name) {
    return [core, name] {
      surge::v1::GetJobRequest r;
      r.set_name(name);
      return core->GetJob(r).status();
    };
  };
  auto del = [core](std::string name) {
    return [core, name] {
      surge::v1::DeleteJobRequest r;
      r.set_name(name);
      return core->DeleteJob(r).status();
    };
  };
  const std::vector<Case> cases = {
      {"create: unspecified unit",
       [core] { return core->CreateJob(JobRequest("x", surge::v1::BATCH_UNIT_UNSPECIFIED)).status(); },
       absl::StatusCode::kInvalidArgument, "job.batch_unit"},
      {"create: bad name", [core] { return core->CreateJob(JobRequest("-x")).status(); },
       absl::StatusCode::kInvalidArgument, "job.name"},
      {"create: empty request", [core] { return core->CreateJob({}).status(); },
       absl::StatusCode::kInvalidArgument, "job.name"},
      {"get: empty name", get(""), absl::StatusCode::kInvalidArgument, "name"},
      {"get: bad name", get("a b"), absl::StatusCode::kInvalidArgument, "name"},
      {"get: missing", get("missing"), absl::StatusCode::kNotFound, "missing"},
      {"delete: bad name", del("a/b"), absl::StatusCode::kInvalidArgument, "name"},
      {"delete: missing", del("missing"), absl::StatusCode::kNotFound, "missing"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    absl::Status status = c.call();
    EXPECT_EQ(status.code(), c.code) << status;
    EXPECT_THAT(Msg(status), HasSubstr(c.substring));
  }
}

// ------------------------------------------------------------------ runs

TEST_F(SurgeCoreTest, Runs) {
  // Idempotent re-create.
  absl::StatusOr<surge::v1::Run> again = core_->CreateRun(RunRequest("job", "r1", 32));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->job(), "job");
  EXPECT_EQ(again->batch_size(), 32);

  struct Case {
    std::string name;
    surge::v1::CreateRunRequest request;
    absl::StatusCode code;
    std::string substring;
  };
  surge::v1::CreateRunRequest probe_without_parent =
      RunRequest("job", "p", 32, surge::v1::PROTOCOL_PROBE);
  const std::vector<Case> cases = {
      {"other batch size", RunRequest("job", "r1", 33), absl::StatusCode::kAlreadyExists, "r1"},
      {"other protocol", RunRequest("job", "r1", 32, surge::v1::PROTOCOL_FULL_RUN),
       absl::StatusCode::kAlreadyExists, "r1"},
      {"missing job", RunRequest("nojob", "r1", 32), absl::StatusCode::kNotFound, "nojob"},
      {"bad job name", RunRequest("", "r1", 32), absl::StatusCode::kInvalidArgument, "job"},
      {"batch size 0", RunRequest("job", "r3", 0), absl::StatusCode::kInvalidArgument,
       "run.batch_size"},
      {"bad run name", RunRequest("job", "r 3", 8), absl::StatusCode::kInvalidArgument,
       "run.name"},
      {"probe without parent", probe_without_parent, absl::StatusCode::kInvalidArgument,
       "run.parent"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    absl::StatusOr<surge::v1::Run> run = core_->CreateRun(c.request);
    EXPECT_EQ(run.status().code(), c.code) << run.status();
    EXPECT_THAT(Msg(run.status()), HasSubstr(c.substring));
  }

  // ListRuns orders by batch size, then name (r1 is 32, r2 is 64).
  ASSERT_TRUE(core_->CreateRun(RunRequest("job", "a0", 16)).ok());
  ASSERT_TRUE(core_->CreateRun(RunRequest("job", "zz", 8)).ok());
  ASSERT_TRUE(core_->CreateRun(RunRequest("job", "b", 32)).ok());
  surge::v1::ListRunsRequest list;
  list.set_job("job");
  absl::StatusOr<surge::v1::ListRunsResponse> runs = core_->ListRuns(list);
  ASSERT_TRUE(runs.ok()) << runs.status();
  std::vector<std::string> names;
  for (const auto& r : runs->runs()) names.push_back(r.name());
  EXPECT_THAT(names, ElementsAre("zz", "a0", "b", "r1", "r2"));

  list.set_job("nojob");
  EXPECT_EQ(core_->ListRuns(list).status().code(), absl::StatusCode::kNotFound);
  list.set_job("bad name");
  EXPECT_EQ(core_->ListRuns(list).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SurgeCoreTest, CountsFollowIngest) {
  ASSERT_NO_FATAL_FAILURE(Ingest("r1", 0, 25));
  ASSERT_NO_FATAL_FAILURE(Ingest("r2", 10, 14));
  surge::v1::GetJobRequest get;
  get.set_name("job");
  absl::StatusOr<surge::v1::Job> job = core_->GetJob(get);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->run_count(), 2);
  EXPECT_EQ(job->record_count(), 29);
  EXPECT_GE(job->update_time_us(), job->create_time_us());

  surge::v1::ListRunsRequest list;
  list.set_job("job");
  absl::StatusOr<surge::v1::ListRunsResponse> runs = core_->ListRuns(list);
  ASSERT_TRUE(runs.ok()) << runs.status();
  ASSERT_EQ(runs->runs_size(), 2);
  EXPECT_EQ(runs->runs(0).name(), "r1");
  EXPECT_EQ(runs->runs(0).record_count(), 25);
  EXPECT_EQ(runs->runs(0).last_step(), 24);
  EXPECT_EQ(runs->runs(1).record_count(), 4);
  EXPECT_EQ(runs->runs(1).last_step(), 13);
}

// ------------------------------------------------------------------ delete

TEST_F(SurgeCoreTest, DeleteJobWithRecords) {
  ASSERT_TRUE(core_->CreateJob(JobRequest("kept")).ok());
  ASSERT_TRUE(core_->CreateRun(RunRequest("kept", "r1", 8)).ok());
  ASSERT_NO_FATAL_FAILURE(Ingest("r1", 0, 20));
  ASSERT_NO_FATAL_FAILURE(Ingest("r2", 0, 7));
  ASSERT_NO_FATAL_FAILURE(Ingest("r1", 0, 3, 10, "kept"));

  surge::v1::DeleteJobRequest del;
  del.set_name("job");
  absl::StatusOr<surge::v1::DeleteJobResponse> deleted = core_->DeleteJob(del);
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(deleted->runs_deleted(), 2);
  EXPECT_EQ(deleted->records_deleted(), 27);

  surge::v1::GetJobRequest get;
  get.set_name("job");
  EXPECT_EQ(core_->GetJob(get).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(List("job", "", 0).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(List("job", "r1", 0).status().code(), absl::StatusCode::kNotFound);
  surge::v1::ListRunsRequest runs;
  runs.set_job("job");
  EXPECT_EQ(core_->ListRuns(runs).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(core_->DeleteJob(del).status().code(), absl::StatusCode::kNotFound);

  absl::StatusOr<surge::v1::ListJobsResponse> jobs = core_->ListJobs({});
  ASSERT_TRUE(jobs.ok());
  ASSERT_EQ(jobs->jobs_size(), 1);
  EXPECT_EQ(jobs->jobs(0).name(), "kept");
  EXPECT_EQ(jobs->jobs(0).record_count(), 3);
  EXPECT_EQ(Keys(ListAll("kept")), Steps("r1", 0, 3));

  // A new job of the same name starts empty.
  ASSERT_TRUE(core_->CreateJob(JobRequest("job")).ok());
  ASSERT_TRUE(core_->CreateRun(RunRequest("job", "r1", 32)).ok());
  EXPECT_THAT(ListAll("job"), IsEmpty());
  EXPECT_EQ(RecordCount("job"), 0);
}

// ------------------------------------------------------------------ records

TEST_F(SurgeCoreTest, ListRecordsPagesThroughEverythingOnce) {
  // r2 is created after r1, so r1's records come first whatever the names.
  ASSERT_TRUE(core_->CreateRun(RunRequest("job", "a-last", 8)).ok());
  ASSERT_NO_FATAL_FAILURE(Ingest("r2", 0, 12, 5));
  ASSERT_NO_FATAL_FAILURE(Ingest("r1", 0, 25, 7));
  ASSERT_NO_FATAL_FAILURE(Ingest("a-last", 3, 5));
  std::vector<Key> want = Steps("r1", 0, 25);
  for (const Key& k : Steps("r2", 0, 12)) want.push_back(k);
  for (const Key& k : Steps("a-last", 3, 5)) want.push_back(k);
  ASSERT_EQ(want.size(), 39u);

  for (int page_size : {1, 3, 7, 13, 39, 40, 0, kMaxPageSize}) {
    SCOPED_TRACE(absl::StrCat("page_size ", page_size));
    EXPECT_EQ(Keys(ListAll("job", "", page_size)), want);
  }
  for (int page_size : {1, 4, 12, 0}) {
    SCOPED_TRACE(absl::StrCat("run r2, page_size ", page_size));
    EXPECT_EQ(Keys(ListAll("job", "r2", page_size)), Steps("r2", 0, 12));
  }
  // A run without records.
  ASSERT_TRUE(core_->CreateRun(RunRequest("job", "empty", 8)).ok());
  absl::StatusOr<surge::v1::ListRecordsResponse> empty = List("job", "empty", 5);
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->records_size(), 0);
  EXPECT_TRUE(empty->next_page_token().empty());
}

TEST_F(SurgeCoreTest, PageTokensAreStableAndRoundTrip) {
  ASSERT_NO_FATAL_FAILURE(Ingest("r1", 0, 10));
  ASSERT_NO_FATAL_FAILURE(Ingest("r2", 0, 10));
  absl::StatusOr<surge::v1::ListRecordsResponse> first = List("job", "", 6);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_FALSE(first->next_page_token().empty());
  absl::StatusOr<store::RecordCursor> cursor = DecodePageToken(first->next_page_token());
  ASSERT_TRUE(cursor.ok()) << cursor.status();
  EXPECT_EQ(cursor->step, 5);
  EXPECT_EQ(EncodePageToken(*cursor), first->next_page_token());

  // The same token gives the same page (tokens are positions, not sessions).
  absl::StatusOr<surge::v1::ListRecordsResponse> a = List("job", "", 6, first->next_page_token());
  absl::StatusOr<surge::v1::ListRecordsResponse> b = List("job", "", 6, first->next_page_token());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->SerializeAsString(), b->SerializeAsString());
  EXPECT_THAT(Keys({a->records().begin(), a->records().end()}),
              ElementsAre(Key("r1", 6), Key("r1", 7), Key("r1", 8), Key("r1", 9), Key("r2", 0),
                          Key("r2", 1)));
}

TEST(PageTokenTest, EncodeDecodeRoundTrip) {
  const std::vector<store::RecordCursor> cursors = {
      {0, -1}, {1, 0}, {7, 123}, {int64_t{1} << 40, int64_t{1} << 50}, {9, -1}};
  for (const auto& c : cursors) {
    SCOPED_TRACE(absl::StrCat(c.run_id, ":", c.step));
    std::string token = EncodePageToken(c);
    EXPECT_FALSE(token.empty());
    absl::StatusOr<store::RecordCursor> back = DecodePageToken(token);
    ASSERT_TRUE(back.ok()) << token << ": " << back.status();
    EXPECT_EQ(back->run_id, c.run_id);
    EXPECT_EQ(back->step, c.step);
  }
}

TEST_F(SurgeCoreTest, ListRecordsErrors) {
  ASSERT_NO_FATAL_FAILURE(Ingest("r1", 0, 3));
  struct Case {
    std::string name;
    std::string job;
    std::string run;
    int page_size;
    std::string token;
    absl::StatusCode code;
    std::string substring;
  };
  const absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;
  const std::vector<Case> cases = {
      {"page_size -1", "job", "", -1, "", kInvalid, "page_size"},
      {"page_size over max", "job", "", kMaxPageSize + 1, "", kInvalid, "page_size"},
      {"token garbage", "job", "", 0, "garbage", kInvalid, "page_token"},
      {"token two parts", "job", "", 0, "r1:5", kInvalid, "page_token"},
      {"token four parts", "job", "", 0, "r1:1:2:3", kInvalid, "page_token"},
      {"token wrong version", "job", "", 0, "r2:1:2", kInvalid, "page_token"},
      {"token run not a number", "job", "", 0, "r1:x:2", kInvalid, "page_token"},
      {"token step not a number", "job", "", 0, "r1:1:2.5", kInvalid, "page_token"},
      {"token empty numbers", "job", "", 0, "r1::", kInvalid, "page_token"},
      {"token bad with run filter", "job", "r1", 10, "%%%", kInvalid, "page_token"},
      {"bad job name", "", "", 0, "", kInvalid, "job"},
      {"bad run name", "job", "r/1", 0, "", kInvalid, "run"},
      {"missing job", "nojob", "", 0, "", absl::StatusCode::kNotFound, "nojob"},
      {"missing run", "job", "ghost", 0, "", absl::StatusCode::kNotFound, "ghost"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    absl::StatusOr<surge::v1::ListRecordsResponse> response =
        List(c.job, c.run, c.page_size, c.token);
    EXPECT_EQ(response.status().code(), c.code) << response.status();
    EXPECT_THAT(Msg(response.status()), HasSubstr(c.substring));
  }
  // The limits themselves are fine.
  for (int page_size : {1, kMaxPageSize}) {
    absl::StatusOr<surge::v1::ListRecordsResponse> ok = List("job", "", page_size);
    ASSERT_TRUE(ok.ok()) << ok.status();
    EXPECT_EQ(ok->records_size(), std::min(page_size, 3)) << "page_size " << page_size;
  }
}

TEST_F(SurgeCoreTest, OptionalRecordFieldsSurviveIngestAndListing) {
  std::unique_ptr<IngestStream> stream = core_->OpenIngestStream();
  auto batch = MakeBatch("job", 1, "r1", 0, 3);
  batch->mutable_records(1)->set_eval_loss(1.75);
  auto* g = batch->mutable_records(2)->mutable_grad_stats();
  g->set_grad_sq_small(3.5);
  g->set_grad_sq_big(0.25);
  g->set_b_small(4);
  g->set_b_big(64);
  std::vector<surge::v1::Record> sent(batch->records().begin(), batch->records().end());
  ASSERT_TRUE(stream->Accept(std::move(batch)).ok());
  stream->Close();
  std::vector<surge::v1::Record> got = ListAll("job");
  ASSERT_EQ(got.size(), sent.size());
  for (size_t i = 0; i < sent.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(got[i].SerializeAsString(), sent[i].SerializeAsString())
        << "got " << got[i].ShortDebugString() << "\nsent " << sent[i].ShortDebugString();
  }
}

// ------------------------------------------------------------------ lifecycle

TEST_F(SurgeCoreTest, ShutdownRefusesWrites) {
  ASSERT_NO_FATAL_FAILURE(Ingest("r1", 0, 5));
  core_->Shutdown();
  surge::v1::DeleteJobRequest del;
  del.set_name("job");
  const std::vector<std::pair<std::string, absl::Status>> calls = {
      {"CreateJob", core_->CreateJob(JobRequest("new")).status()},
      {"CreateRun", core_->CreateRun(RunRequest("job", "r9", 8)).status()},
      {"DeleteJob", core_->DeleteJob(del).status()},
      {"Accept", core_->OpenIngestStream()->Accept(MakeBatch("job", 1, "r1", 5, 1))},
  };
  for (const auto& [name, status] : calls) {
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << name << ": " << status;
  }
  core_->Shutdown();  // idempotent

  // Nothing of the refused writes happened.
  ASSERT_NO_FATAL_FAILURE(Reopen());
  EXPECT_EQ(RecordCount("job"), 5);
  surge::v1::GetJobRequest get;
  get.set_name("new");
  EXPECT_EQ(core_->GetJob(get).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SurgeCoreTest, DataSurvivesReopen) {
  surge::v1::CreateRunRequest probe = RunRequest("job", "probe", 128, surge::v1::PROTOCOL_PROBE);
  probe.mutable_run()->mutable_parent()->set_checkpoint_step(10);
  probe.mutable_run()->mutable_parent()->set_loss(2.0);
  (*probe.mutable_run()->mutable_labels())["k"] = "v";
  absl::StatusOr<surge::v1::Run> created = core_->CreateRun(probe);
  ASSERT_TRUE(created.ok()) << created.status();
  ASSERT_NO_FATAL_FAILURE(Ingest("r1", 0, 30));
  ASSERT_NO_FATAL_FAILURE(Ingest("probe", 0, 4));
  std::vector<surge::v1::Record> before = ListAll("job");
  surge::v1::ListRunsRequest list;
  list.set_job("job");
  absl::StatusOr<surge::v1::ListRunsResponse> runs_before = core_->ListRuns(list);
  ASSERT_TRUE(runs_before.ok());

  ASSERT_NO_FATAL_FAILURE(Reopen());
  std::vector<surge::v1::Record> after = ListAll("job");
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_EQ(after[i].SerializeAsString(), before[i].SerializeAsString()) << i;
  }
  absl::StatusOr<surge::v1::ListRunsResponse> runs_after = core_->ListRuns(list);
  ASSERT_TRUE(runs_after.ok());
  EXPECT_EQ(runs_after->SerializeAsString(), runs_before->SerializeAsString());
  EXPECT_EQ(RecordCount("job"), 34);

  // The reopened core accepts more, and re-sends are duplicates.
  std::unique_ptr<IngestStream> stream = core_->OpenIngestStream();
  ASSERT_TRUE(stream->Accept(MakeBatch("job", 1, "r1", 25, 10)).ok());
  stream->Close();
  Acks acks = DrainAcks(*stream);
  ASSERT_TRUE(acks.last().has_value());
  EXPECT_EQ(acks.last()->records_stored(), 5);
  EXPECT_EQ(acks.last()->records_duplicate(), 5);
  EXPECT_EQ(RecordCount("job"), 39);
}

}  // namespace
}  // namespace surge::core
