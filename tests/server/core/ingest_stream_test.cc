// Tests of IngestStream through a SurgeCore on a real database file: acks,
// duplicates, errors that end a stream, concurrent streams and group commit,
// deletes and shutdown while streaming.
#include "server/core/ingest_stream.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <future>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/fit_service.h"
#include "server/core/ingest_stream.h"
#include "server/core/page_token.h"
#include "server/core/surge_core.h"
#include "server/core/write_queue.h"
#include "server/core/validation.h"
#include "tests/server/core/core_test_util.h"

namespace surge::core {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using test_util::Acks;
using test_util::CoreTest;
using test_util::DrainAcks;
using test_util::JobRequest;
using test_util::MakeBatch;
using test_util::MakeRecord;
using test_util::Msg;
using test_util::RunRequest;

using IngestStreamTest = CoreTest;

std::vector<std::pair<std::string, int64_t>> Keys(const std::vector<surge::v1::Record>& records) {
  std::vector<std::pair<std::string, int64_t>> keys;
  for (const auto& r : records) keys.emplace_back(r.run(), r.step());
  return keys;
}

std::vector<std::pair<std::string, int64_t>> Steps(const std::string& run, int64_t from,
                                                   int64_t to) {
  std::vector<std::pair<std::string, int64_t>> keys;
  for (int64_t s = from; s < to; ++s) keys.emplace_back(run, s);
  return keys;
}

TEST_F(IngestStreamTest, AcksFollowCommittedBatches) {
  const std::vector<uint64_t> seqs = {10, 20, 21, 35, 50};  // increasing, with gaps
  constexpr int kPerBatch = 10;
  std::unique_ptr<IngestStream> stream = core_->OpenIngestStream();
  // Acks are read concurrently with Accept, as the RPC layer does.
  std::future<Acks> acks = std::async(std::launch::async, [&] { return DrainAcks(*stream); });
  for (size_t i = 0; i < seqs.size(); ++i) {
    absl::Status status = stream->Accept(
        MakeBatch("job", seqs[i], "r1", static_cast<int64_t>(i) * kPerBatch, kPerBatch));
    ASSERT_TRUE(status.ok()) << "seq " << seqs[i] << ": " << status;
  }
  stream->Close();
  ASSERT_EQ(acks.wait_for(std::chrono::seconds(10)), std::future_status::ready)
      << "NextAck did not return nullopt after Close";
  Acks got = acks.get();
  ASSERT_FALSE(got.acks.empty());
  uint64_t previous = 0;
  for (const auto& ack : got.acks) {
    SCOPED_TRACE(ack.ShortDebugString());
    EXPECT_GT(ack.acked_seq(), previous) << "acks must advance";
    previous = ack.acked_seq();
    // The ack covers exactly the batches with seq <= acked_seq.
    auto covered = std::find(seqs.begin(), seqs.end(), ack.acked_seq());
    ASSERT_NE(covered, seqs.end()) << "acked_seq is not a seq that was sent";
    int64_t batches = covered - seqs.begin() + 1;
    EXPECT_EQ(ack.records_stored(), batches * kPerBatch);
    EXPECT_EQ(ack.records_duplicate(), 0);
  }
  EXPECT_EQ(got.last()->acked_seq(), 50u);
  EXPECT_EQ(got.last()->records_stored(), 50);
  EXPECT_TRUE(stream->commit_status().ok()) << stream->commit_status();
  // NextAck keeps answering nullopt once drained.
  EXPECT_FALSE(stream->NextAck().has_value());

  EXPECT_EQ(Keys(ListAll("job")), Steps("r1", 0, 50));
  EXPECT_EQ(RecordCount("job"), 50);
}

TEST_F(IngestStreamTest, EmptyBatchIsAckedHeartbeat) {
  std::unique_ptr<IngestStream> stream = core_->OpenIngestStream();
  auto heartbeat = std::make_unique<surge::v1::IngestRequest>();
  heartbeat->set_job("job");
  heartbeat->set_seq(1);
  ASSERT_TRUE(stream->Accept(std::move(heartbeat)).ok());
  stream->Close();
  Acks acks = DrainAcks(*stream);
  ASSERT_EQ(acks.acks.size(), 1u);
  EXPECT_EQ(acks.acks[0].acked_seq(), 1u);
  EXPECT_EQ(acks.acks[0].records_stored(), 0);
  EXPECT_EQ(acks.acks[0].records_duplicate(), 0);
}

TEST_F(IngestStreamTest, ResentRecordsAreDuplicates) {
  {
    std::unique_ptr<IngestStream> stream = core_->OpenIngestStream();
    for (uint64_t seq = 1; seq <= 3; ++seq) {
      ASSERT_TRUE(stream->Accept(MakeBatch("job", seq, "r1", (seq - 1) * 10, 10)).ok());
    }
    stream->Close();
    Acks acks = DrainAcks(*stream);
    ASSERT_TRUE(acks.last().has_value());
    EXPECT_EQ(acks.last()->records_stored(), 30);
  }
  {
    // A reconnecting client re-sends everything with new numbering.
    std::unique_ptr<IngestStream> stream = core_->OpenIngestStream();
    for (uint64_t seq = 1; seq <= 3; ++seq) {
      ASSERT_TRUE(stream->Accept(MakeBatch("job", seq * 7, "r1", (seq - 1) * 10, 10)).ok());
    }
    stream->Close();
    Acks acks = DrainAcks(*stream);
    ASSERT_TRUE(acks.last().has_value());
    EXPECT_EQ(acks.last()->acked_seq(), 21u);
    EXPECT_EQ(acks.last()->records_stored(), 0);
    EXPECT_EQ(acks.last()->records_duplicate(), 30);
  }
  {
    // Half old, half new.
    std::unique_ptr<IngestStream> stream = core_->OpenIngestStream();
    ASSERT_TRUE(stream->Accept(MakeBatch("job", 1, "r1", 25, 10)).ok());
    stream->Close();
    Acks acks = DrainAcks(*stream);
    ASSERT_TRUE(acks.last().has_value());
    EXPECT_EQ(acks.last()->records_stored(), 5);
    EXPECT_EQ(acks.last()->records_duplicate(), 5);
  }
  EXPECT_EQ(RecordCount("job"), 35);
  EXPECT_EQ(Keys(ListAll("job")), Steps("r1", 0, 35));
}

TEST_F(IngestStreamTest, InvalidRecordEndsStreamAfterEarlierBatches) {
  std::unique_ptr<IngestStream> stream = core_->OpenIngestStream();
  ASSERT_TRUE(stream->Accept(MakeBatch("job", 1, "r1", 0, 5)).ok());
  ASSERT_TRUE(stream->Accept(MakeBatch("job", 2, "r2", 0, 5)).ok());
  // Batch 3: records[0] and [1] are fine, records[2] has lr = NaN.
  auto bad = MakeBatch("job", 3, "r1", 5, 4);
  bad->mutable_records(2)->set_lr(std::numeric_limits<double>::quiet_NaN());
  absl::Status status = stream->Accept(std::move(bad));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(Msg(status), HasSubstr("seq 3")) << "the message must name the batch";
  EXPECT_THAT(Msg(status), HasSubstr("records[2].lr")) << "and the record index and field";

  stream->Close();
  Acks acks = DrainAcks(*stream);
  ASSERT_TRUE(acks.last().has_value()) << "earlier batches must be acked";
  EXPECT_EQ(acks.last()->acked_seq(), 2u);
  EXPECT_EQ(acks.last()->records_stored(), 10);

  std::vector<std::pair<std::string, int64_t>> want = Steps("r1", 0, 5);
  for (const auto& k : Steps("r2", 0, 5)) want.push_back(k);
  EXPECT_EQ(Keys(ListAll("job")), want) << "nothing of batch 3 may be stored";
  EXPECT_EQ(RecordCount("job"), 10);
}

TEST_F(IngestStreamTest, SeqMustIncrease) {
  std::unique_ptr<IngestStream> stream = core_->OpenIngestStream();
  ASSERT_TRUE(stream->Accept(MakeBatch("job", 5, "r1", 0, 2)).ok());
  for (uint64_t seq : {5u, 4u}) {
    SCOPED_TRACE(absl::StrCat("seq ", seq));
    absl::Status status = stream->Accept(MakeBatch("job", seq, "r1", 10, 2));
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(Msg(status), HasSubstr("seq"));
  }
  stream->Close();
  EXPECT_EQ(Keys(ListAll("job")), Steps("r1", 0, 2));

  std::unique_ptr<IngestStream> fresh = core_->OpenIngestStream();
  absl::Status zero = fresh->Accept(MakeBatch("job", 0, "r1", 10, 2));
  EXPECT_EQ(zero.code(), absl::StatusCode::kInvalidArgument) << "seq must be > 0: " << zero;
}

TEST_F(IngestStreamTest, UnknownRunOrJobIsNotFound) {
  std::unique_ptr<IngestStream> stream = core_->OpenIngestStream();
  auto batch = MakeBatch("job", 1, "r1", 0, 3);
  batch->mutable_records(1)->set_run("ghost");
  absl::Status status = stream->Accept(std::move(batch));
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_THAT(Msg(status), HasSubstr("records[1]")) << "the message must name the record index";
  EXPECT_THAT(Msg(status), HasSubstr("ghost"));
  stream->Close();
  EXPECT_FALSE(stream->NextAck().has_value());
  EXPECT_THAT(ListAll("job"), IsEmpty()) << "records[0] of the failed batch was stored";

  std::unique_ptr<IngestStream> other = core_->OpenIngestStream();
  absl::Status no_job = other->Accept(MakeBatch("nojob", 1, "r1", 0, 1));
  EXPECT_EQ(no_job.code(), absl::StatusCode::kNotFound) << no_job;
  EXPECT_THAT(Msg(no_job), HasSubstr("nojob"));
}

TEST_F(IngestStreamTest, OversizedBatchIsResourceExhausted) {
  std::unique_ptr<IngestStream> stream = core_->OpenIngestStream();
  auto batch = MakeBatch("job", 1, "r1", 0, kMaxRecordsPerBatch + 1);
  absl::Status status = stream->Accept(std::move(batch));
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  stream->Close();
  EXPECT_EQ(RecordCount("job"), 0);
}

TEST_F(IngestStreamTest, ManyConcurrentStreamsCommitEverythingOnce) {
  constexpr int kStreams = 4;
  constexpr int kBatches = 50;
  constexpr int kPerBatch = 5;
  std::vector<std::future<Acks>> acks;
  std::vector<std::thread> producers;
  std::vector<std::unique_ptr<IngestStream>> streams;
  for (int t = 0; t < kStreams; ++t) streams.push_back(core_->OpenIngestStream());
  for (int t = 0; t < kStreams; ++t) {
    IngestStream* stream = streams[t].get();
    acks.push_back(std::async(std::launch::async, [stream] { return DrainAcks(*stream); }));
    // Streams 0 and 1 write r1, 2 and 3 write r2, on disjoint steps.
    const std::string run = t < 2 ? "r1" : "r2";
    const int64_t base = (t % 2) * kBatches * kPerBatch;
    producers.emplace_back([stream, run, base] {
      for (int i = 0; i < kBatches; ++i) {
        absl::Status status = stream->Accept(
            MakeBatch("job", static_cast<uint64_t>(i + 1), run, base + i * kPerBatch, kPerBatch));
        EXPECT_TRUE(status.ok()) << status;
      }
      stream->Close();
    });
  }
  for (auto& p : producers) p.join();
  for (int t = 0; t < kStreams; ++t) {
    SCOPED_TRACE(absl::StrCat("stream ", t));
    ASSERT_EQ(acks[t].wait_for(std::chrono::seconds(20)), std::future_status::ready);
    Acks got = acks[t].get();
    ASSERT_TRUE(got.last().has_value());
    EXPECT_EQ(got.last()->acked_seq(), static_cast<uint64_t>(kBatches));
    EXPECT_EQ(got.last()->records_stored(), kBatches * kPerBatch);
    EXPECT_EQ(got.last()->records_duplicate(), 0);
  }
  constexpr int64_t kPerRun = 2 * kBatches * kPerBatch;
  std::vector<std::pair<std::string, int64_t>> want = Steps("r1", 0, kPerRun);
  for (const auto& k : Steps("r2", 0, kPerRun)) want.push_back(k);
  EXPECT_EQ(Keys(ListAll("job", "", 333)), want);
  EXPECT_EQ(RecordCount("job"), 2 * kPerRun);

  surge::v1::ListRunsRequest runs_request;
  runs_request.set_job("job");
  absl::StatusOr<surge::v1::ListRunsResponse> runs = core_->ListRuns(runs_request);
  ASSERT_TRUE(runs.ok()) << runs.status();
  for (const auto& run : runs->runs()) {
    SCOPED_TRACE(run.name());
    EXPECT_EQ(run.record_count(), kPerRun);
    EXPECT_EQ(run.last_step(), kPerRun - 1);
  }
  WriteQueueStats stats = core_->write_queue().stats();
  EXPECT_EQ(stats.records_stored, 2 * kPerRun);
  EXPECT_LE(stats.commits, kStreams * kBatches + 10);  // + the setup's jobs and runs
}

// Group commit made deterministic: hold the writer thread in a task while
// several streams queue batches; releasing it commits them all at once.
TEST_F(IngestStreamTest, BatchesOfManyStreamsShareOneCommit) {
  std::promise<void> entered, release;
  std::shared_future<void> release_future = release.get_future().share();
  std::thread holder([&] {
    absl::StatusOr<int> r = core_->write_queue().Run<int>(
        [&](store::Store&) -> absl::StatusOr<int> {
          entered.set_value();
          release_future.wait();
          return 0;
        });
    EXPECT_TRUE(r.ok()) << r.status();
  });
  entered.get_future().wait();
  const int64_t commits_before = core_->write_queue().stats().commits;

  std::vector<std::unique_ptr<IngestStream>> streams;
  for (int t = 0; t < 3; ++t) {
    streams.push_back(core_->OpenIngestStream());
    for (uint64_t seq = 1; seq <= 2; ++seq) {
      absl::Status status =
          streams.back()->Accept(MakeBatch("job", seq, "r1", t * 100 + (seq - 1) * 10, 10));
      ASSERT_TRUE(status.ok()) << status;
    }
  }
  release.set_value();
  holder.join();
  for (auto& stream : streams) {
    stream->Close();
    Acks acks = DrainAcks(*stream);
    ASSERT_TRUE(acks.last().has_value());
    EXPECT_EQ(acks.last()->acked_seq(), 2u);
    EXPECT_EQ(acks.last()->records_stored(), 20);
  }
  EXPECT_EQ(core_->write_queue().stats().commits - commits_before, 1);
  EXPECT_EQ(RecordCount("job"), 60);
}

TEST_F(IngestStreamTest, DeleteJobWhileStreaming) {
  std::unique_ptr<IngestStream> stream = core_->OpenIngestStream();
  ASSERT_TRUE(stream->Accept(MakeBatch("job", 1, "r1", 0, 10)).ok());
  // The delete runs on the writer after batch 1 (FIFO), so it counts it.
  surge::v1::DeleteJobRequest del;
  del.set_name("job");
  absl::StatusOr<surge::v1::DeleteJobResponse> deleted = core_->DeleteJob(del);
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(deleted->runs_deleted(), 2);
  EXPECT_EQ(deleted->records_deleted(), 10);

  // A batch of the deleted job still in flight is answered NOT_FOUND, either
  // by Accept or by the commit (then reported by the next Accept).
  absl::Status second = stream->Accept(MakeBatch("job", 2, "r1", 10, 10));
  stream->Close();
  if (second.ok()) {
    absl::Status commit = stream->commit_status();
    EXPECT_EQ(commit.code(), absl::StatusCode::kNotFound) << commit;
    EXPECT_THAT(Msg(commit), HasSubstr("seq 2"));
    absl::Status third = stream->Accept(MakeBatch("job", 3, "r1", 20, 1));
    EXPECT_EQ(third.code(), absl::StatusCode::kNotFound)
        << "Accept must report the failed commit: " << third;
  } else {
    EXPECT_EQ(second.code(), absl::StatusCode::kNotFound) << second;
  }
  Acks acks = DrainAcks(*stream);
  ASSERT_TRUE(acks.last().has_value());
  EXPECT_EQ(acks.last()->acked_seq(), 1u) << "batch 2 must not be acked";

  std::unique_ptr<IngestStream> fresh = core_->OpenIngestStream();
  absl::Status gone = fresh->Accept(MakeBatch("job", 1, "r1", 0, 1));
  EXPECT_EQ(gone.code(), absl::StatusCode::kNotFound) << gone;
  surge::v1::GetJobRequest get;
  get.set_name("job");
  EXPECT_EQ(core_->GetJob(get).status().code(), absl::StatusCode::kNotFound);
}

// A stream caches run ids by (job, run) name. After the job is deleted, the
// stale id must not point at a new run of another job (ids are AUTOINCREMENT,
// never reused): the batch fails with NOT_FOUND.
TEST_F(IngestStreamTest, DeletedJobsRunIdIsNotReusedByAStream) {
  std::unique_ptr<IngestStream> stream = core_->OpenIngestStream();
  ASSERT_TRUE(stream->Accept(MakeBatch("job", 1, "r1", 0, 5)).ok());
  surge::v1::DeleteJobRequest del;
  del.set_name("job");
  ASSERT_TRUE(core_->DeleteJob(del).ok());
  ASSERT_TRUE(core_->CreateJob(JobRequest("other")).ok());
  ASSERT_TRUE(core_->CreateRun(RunRequest("other", "x", 4096)).ok());

  absl::Status second = stream->Accept(MakeBatch("job", 2, "r1", 5, 5));
  stream->Close();
  if (second.ok()) {
    EXPECT_EQ(stream->commit_status().code(), absl::StatusCode::kNotFound)
        << "batch 2 belongs to a deleted job: " << stream->commit_status();
  } else {
    EXPECT_EQ(second.code(), absl::StatusCode::kNotFound) << second;
  }
  std::vector<surge::v1::Record> leaked = ListAll("other");
  EXPECT_EQ(leaked.size(), 0u) << leaked.size()
                               << " records of deleted job 'job' were stored in other/x"
                               << (leaked.empty() ? "" : ", e.g. " + leaked[0].ShortDebugString());
  EXPECT_EQ(RecordCount("other"), 0);
}

TEST_F(IngestStreamTest, ShutdownCommitsQueuedBatchesThenRefuses) {
  std::unique_ptr<IngestStream> stream = core_->OpenIngestStream();
  for (uint64_t seq = 1; seq <= 5; ++seq) {
    ASSERT_TRUE(stream->Accept(MakeBatch("job", seq, "r2", (seq - 1) * 4, 4)).ok());
  }
  core_->Shutdown();
  absl::Status after = stream->Accept(MakeBatch("job", 6, "r2", 100, 1));
  EXPECT_EQ(after.code(), absl::StatusCode::kUnavailable) << after;
  stream->Close();
  Acks acks = DrainAcks(*stream);
  ASSERT_TRUE(acks.last().has_value());
  EXPECT_EQ(acks.last()->acked_seq(), 5u) << "Shutdown must commit what was queued";
  EXPECT_EQ(acks.last()->records_stored(), 20);

  std::unique_ptr<IngestStream> fresh = core_->OpenIngestStream();
  absl::Status refused = fresh->Accept(MakeBatch("job", 1, "r2", 200, 1));
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable) << refused;

  ASSERT_NO_FATAL_FAILURE(Reopen());
  EXPECT_EQ(Keys(ListAll("job")), Steps("r2", 0, 20));
}

TEST_F(IngestStreamTest, DestroyingAStreamWaitsForItsBatches) {
  std::unique_ptr<IngestStream> stream = core_->OpenIngestStream();
  for (uint64_t seq = 1; seq <= 20; ++seq) {
    ASSERT_TRUE(stream->Accept(MakeBatch("job", seq, "r1", (seq - 1) * 50, 50)).ok());
  }
  stream.reset();  // ~IngestStream closes; commit callbacks must not outlive it
  EXPECT_EQ(RecordCount("job"), 1000);
}

}  // namespace
}  // namespace surge::core
