// Unit tests of WriteQueue on a real database file: group commit (made
// deterministic by holding the writer thread in a task), per-batch savepoints,
// backpressure, tasks, and Stop() draining the queue.
#include "server/core/write_queue.h"

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/sqlite_store.h"
#include "tests/support/temp_dir.h"

namespace surge::core {
namespace {

using ::testing::HasSubstr;
using store::SqliteStore;

constexpr auto kWait = std::chrono::seconds(10);

surge::v1::Record MakeRecord(const std::string& run, int64_t step) {
  surge::v1::Record r;
  r.set_run(run);
  r.set_step(step);
  r.set_examples(step * 8);
  r.set_lr(0.01);
  r.set_loss(1.0 + static_cast<double>(step));
  return r;
}

// Collects the result of one batch's `done` callback.
struct Done {
  std::promise<absl::StatusOr<BatchResult>> promise;
  std::shared_future<absl::StatusOr<BatchResult>> future = promise.get_future().share();
  std::atomic<int> calls{0};
};

// Holds the writer thread inside a task until Release(); while it is held,
// everything submitted piles up in the queue.
class WriterGate {
 public:
  explicit WriterGate(WriteQueue& queue) {
    std::promise<void> entered;
    std::future<void> entered_future = entered.get_future();
    std::shared_future<void> release = release_.get_future().share();
    thread_ = std::thread([&queue, release, entered = std::move(entered)]() mutable {
      absl::StatusOr<int> r = queue.Run<int>([&entered, release](store::Store&) -> absl::StatusOr<int> {
        entered.set_value();
        release.wait();
        return 0;
      });
      EXPECT_TRUE(r.ok()) << r.status();
    });
    entered_future.wait();
  }
  ~WriterGate() { Release(); }
  void Release() {
    if (!released_) {
      released_ = true;
      release_.set_value();
      thread_.join();
    }
  }

 private:
  std::promise<void> release_;
  bool released_ = false;
  std::thread thread_;
};

class WriteQueueTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(OpenQueue({})); }

  void OpenQueue(const WriteQueueOptions& options) {
    queue_.reset();
    path_ = dir_.File("surge.db");
    absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(path_);
    ASSERT_TRUE(store.ok()) << store.status();
    if (run_id_ == 0) {
      surge::v1::Job job;
      job.set_name("job");
      job.set_batch_unit(surge::v1::BATCH_UNIT_EXAMPLES);
      ASSERT_TRUE((*store)->CreateJob(job, 1).ok());
      surge::v1::Run run;
      run.set_name("r1");
      run.set_batch_size(8);
      run.set_protocol(surge::v1::PROTOCOL_PLAIN);
      ASSERT_TRUE((*store)->CreateRun("job", run, 1).ok());
      run.set_name("r2");
      ASSERT_TRUE((*store)->CreateRun("job", run, 1).ok());
      run_id_ = (*store)->LookupRun("job", "r1").value().run_id;
      run2_id_ = (*store)->LookupRun("job", "r2").value().run_id;
    }
    queue_ = std::make_unique<WriteQueue>(std::move(*store), options);
  }

  // A batch of records run r1, steps [first, first + n).
  PendingBatch MakeBatch(int64_t first, int n, Done* done, int64_t run_id = 0) {
    PendingBatch batch;
    batch.request = std::make_unique<surge::v1::IngestRequest>();
    batch.request->set_job("job");
    for (int i = 0; i < n; ++i) {
      *batch.request->add_records() = MakeRecord("r1", first + i);
      batch.run_ids.push_back(run_id == 0 ? run_id_ : run_id);
    }
    batch.done = [done](const absl::StatusOr<BatchResult>& r) {
      ++done->calls;
      done->promise.set_value(r);
    };
    return batch;
  }

  // Waits for a done callback; fails the test on timeout.
  static absl::StatusOr<BatchResult> Wait(Done& done) {
    if (done.future.wait_for(kWait) != std::future_status::ready) {
      ADD_FAILURE() << "done callback not called within " << kWait.count() << "s";
      return absl::DeadlineExceededError("timeout");
    }
    return done.future.get();
  }

  // The stored steps of r1 and its counters, read through the writer thread.
  struct RunState {
    std::vector<int64_t> steps;
    int64_t record_count = 0;
    int64_t last_step = -1;
  };
  RunState ReadRun(const std::string& run = "r1") {
    absl::StatusOr<RunState> state = queue_->Run<RunState>(
        [run](store::Store& s) -> absl::StatusOr<RunState> {
          RunState out;
          absl::StatusOr<store::RunKey> key = s.LookupRun("job", run);
          if (!key.ok()) return key.status();
          absl::StatusOr<store::RecordPage> page =
              s.ListRecords(key->job_id, key->run_id, store::RecordCursor{}, 1000000);
          if (!page.ok()) return page.status();
          for (const auto& r : page->records) out.steps.push_back(r.step());
          absl::StatusOr<std::vector<surge::v1::Run>> runs = s.ListRuns("job");
          if (!runs.ok()) return runs.status();
          for (const auto& r : *runs) {
            if (r.name() == run) {
              out.record_count = r.record_count();
              out.last_step = r.last_step();
            }
          }
          return out;
        });
    EXPECT_TRUE(state.ok()) << state.status();
    return state.ok() ? *state : RunState{};
  }

  static std::vector<int64_t> Range(int64_t from, int64_t to) {
    std::vector<int64_t> v;
    for (int64_t i = from; i < to; ++i) v.push_back(i);
    return v;
  }

  surge::testing::TempDir dir_;
  std::string path_;
  int64_t run_id_ = 0;
  int64_t run2_id_ = 0;
  std::unique_ptr<WriteQueue> queue_;
};

TEST_F(WriteQueueTest, StoresBatchAndReportsDuplicates) {
  Done first;
  ASSERT_TRUE(queue_->SubmitBatch(MakeBatch(0, 5, &first)).ok());
  absl::StatusOr<BatchResult> r1 = Wait(first);
  ASSERT_TRUE(r1.ok()) << r1.status();
  EXPECT_EQ(r1->stored, 5);
  EXPECT_EQ(r1->duplicate, 0);

  // Steps 3..7: 3 and 4 are duplicates.
  Done second;
  ASSERT_TRUE(queue_->SubmitBatch(MakeBatch(3, 5, &second)).ok());
  absl::StatusOr<BatchResult> r2 = Wait(second);
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ(r2->stored, 3);
  EXPECT_EQ(r2->duplicate, 2);

  // Duplicates inside one batch.
  Done third;
  PendingBatch batch = MakeBatch(8, 2, &third);
  *batch.request->add_records() = MakeRecord("r1", 8);
  batch.run_ids.push_back(run_id_);
  ASSERT_TRUE(queue_->SubmitBatch(std::move(batch)).ok());
  absl::StatusOr<BatchResult> r3 = Wait(third);
  ASSERT_TRUE(r3.ok()) << r3.status();
  EXPECT_EQ(r3->stored, 2);
  EXPECT_EQ(r3->duplicate, 1);

  RunState state = ReadRun();
  EXPECT_EQ(state.steps, Range(0, 10));
  EXPECT_EQ(state.record_count, 10) << "duplicates must not be counted";
  EXPECT_EQ(state.last_step, 9);

  WriteQueueStats stats = queue_->stats();
  EXPECT_EQ(stats.records_stored, 10);
  EXPECT_EQ(stats.records_duplicate, 3);
  EXPECT_GE(stats.commits, 1);
  EXPECT_LE(stats.commits, 3);
  EXPECT_EQ(first.calls.load() + second.calls.load() + third.calls.load(), 3);
}

// Fault 12 of issue 11: the same (run, step) re-sent with another loss was
// counted a duplicate and the new value dropped without a word. Identical
// re-sends stay silent duplicates; conflicting ones fail the batch with
// ALREADY_EXISTS naming the record, and the batch stores nothing.
TEST_F(WriteQueueTest, ConflictingReSendIsAlreadyExists) {
  Done first;
  ASSERT_TRUE(queue_->SubmitBatch(MakeBatch(0, 5, &first)).ok());
  ASSERT_TRUE(Wait(first).ok());
  Done same;
  ASSERT_TRUE(queue_->SubmitBatch(MakeBatch(0, 5, &same)).ok());
  absl::StatusOr<BatchResult> r = Wait(same);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->duplicate, 5);

  Done conflict;
  PendingBatch batch = MakeBatch(5, 3, &conflict);  // steps 5, 6, 7 are new
  surge::v1::Record changed = MakeRecord("r1", 2);
  changed.set_loss(changed.loss() + 0.25);
  *batch.request->add_records() = changed;
  batch.run_ids.push_back(run_id_);
  ASSERT_TRUE(queue_->SubmitBatch(std::move(batch)).ok());
  r = Wait(conflict);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kAlreadyExists) << r.status();
  EXPECT_THAT(std::string(r.status().message()),
              ::testing::HasSubstr("records[3] (run 'r1', step 2): already stored with other "
                                   "values (loss"));
  RunState state = ReadRun();
  EXPECT_EQ(state.steps, Range(0, 5)) << "the conflicting batch stores nothing";
  EXPECT_EQ(state.record_count, 5);

  Done eval;  // an eval loss added to a stored step is a conflict too
  PendingBatch with_eval = MakeBatch(1, 1, &eval);
  with_eval.request->mutable_records(0)->set_eval_loss(0.5);
  ASSERT_TRUE(queue_->SubmitBatch(std::move(with_eval)).ok());
  r = Wait(eval);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kAlreadyExists) << r.status();
  EXPECT_THAT(std::string(r.status().message()),
              ::testing::HasSubstr("eval_loss absent when stored, sent now"));
}

TEST_F(WriteQueueTest, DoneRunsAfterCommitIsVisibleToOtherConnections) {
  store::StoreOptions reader_options;
  reader_options.migrate = false;
  absl::StatusOr<std::unique_ptr<SqliteStore>> reader = SqliteStore::Open(path_, reader_options);
  ASSERT_TRUE(reader.ok()) << reader.status();
  int64_t job_id = (*reader)->JobId("job").value();

  std::promise<size_t> seen;
  std::future<size_t> seen_future = seen.get_future();
  PendingBatch batch = MakeBatch(0, 4, nullptr);
  batch.done = [&](const absl::StatusOr<BatchResult>& r) {
    EXPECT_TRUE(r.ok()) << r.status();
    // Another connection must already see the batch: it has committed.
    absl::StatusOr<store::RecordPage> page =
        (*reader)->ListRecords(job_id, std::nullopt, store::RecordCursor{}, 100);
    seen.set_value(page.ok() ? page->records.size() : 0);
  };
  ASSERT_TRUE(queue_->SubmitBatch(std::move(batch)).ok());
  ASSERT_EQ(seen_future.wait_for(kWait), std::future_status::ready);
  EXPECT_EQ(seen_future.get(), 4u);
}

TEST_F(WriteQueueTest, QueuedBatchesShareOneCommit) {
  constexpr int kBatches = 20;
  const int64_t commits_before = queue_->stats().commits;
  std::vector<std::unique_ptr<Done>> done;
  {
    WriterGate gate(*queue_);
    for (int i = 0; i < kBatches; ++i) {
      done.push_back(std::make_unique<Done>());
      ASSERT_TRUE(queue_->SubmitBatch(MakeBatch(i * 3, 3, done.back().get())).ok());
    }
  }  // releases the writer: it finds all batches queued
  for (int i = 0; i < kBatches; ++i) {
    SCOPED_TRACE(absl::StrCat("batch ", i));
    absl::StatusOr<BatchResult> r = Wait(*done[i]);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->stored, 3);
  }
  EXPECT_EQ(queue_->stats().commits - commits_before, 1) << "group commit";
  EXPECT_EQ(ReadRun().steps, Range(0, kBatches * 3));
}

TEST_F(WriteQueueTest, CommitRespectsRecordBudget) {
  WriteQueueOptions options;
  options.max_records_per_commit = 10;
  ASSERT_NO_FATAL_FAILURE(OpenQueue(options));
  const int64_t commits_before = queue_->stats().commits;
  // Five batches of 4 and one of 15 (over the budget on its own): groups are
  // {4, 4}, {4, 4}, {4}, {15}.
  std::vector<std::unique_ptr<Done>> done;
  {
    WriterGate gate(*queue_);
    for (int i = 0; i < 5; ++i) {
      done.push_back(std::make_unique<Done>());
      ASSERT_TRUE(queue_->SubmitBatch(MakeBatch(i * 4, 4, done.back().get())).ok());
    }
    done.push_back(std::make_unique<Done>());
    ASSERT_TRUE(queue_->SubmitBatch(MakeBatch(20, 15, done.back().get())).ok());
  }
  for (auto& d : done) {
    absl::StatusOr<BatchResult> r = Wait(*d);
    ASSERT_TRUE(r.ok()) << r.status();
  }
  EXPECT_EQ(queue_->stats().commits - commits_before, 4);
  EXPECT_EQ(ReadRun().steps, Range(0, 35));
}

TEST_F(WriteQueueTest, FailedBatchIsRolledBackAlone) {
  const int64_t commits_before = queue_->stats().commits;
  Done a, b, c;
  {
    WriterGate gate(*queue_);
    ASSERT_TRUE(queue_->SubmitBatch(MakeBatch(0, 3, &a)).ok());
    // b: one good record first, then one for a run id that does not exist.
    PendingBatch bad = MakeBatch(100, 1, &b);
    *bad.request->add_records() = MakeRecord("gone", 101);
    bad.run_ids.push_back(run_id_ + 100000);
    ASSERT_TRUE(queue_->SubmitBatch(std::move(bad)).ok());
    ASSERT_TRUE(queue_->SubmitBatch(MakeBatch(3, 3, &c)).ok());
  }
  absl::StatusOr<BatchResult> ra = Wait(a);
  absl::StatusOr<BatchResult> rb = Wait(b);
  absl::StatusOr<BatchResult> rc = Wait(c);
  ASSERT_TRUE(ra.ok()) << ra.status();
  ASSERT_TRUE(rc.ok()) << rc.status();
  ASSERT_FALSE(rb.ok());
  EXPECT_EQ(rb.status().code(), absl::StatusCode::kNotFound) << rb.status();
  EXPECT_EQ(queue_->stats().commits - commits_before, 1);

  RunState state = ReadRun();
  EXPECT_EQ(state.steps, Range(0, 6)) << "step 100 of the failed batch must be rolled back";
  EXPECT_EQ(state.record_count, 6);
  EXPECT_EQ(state.last_step, 5);
  EXPECT_EQ(queue_->stats().records_stored, 6);
}

TEST_F(WriteQueueTest, CountersPerRunInOneBatch) {
  Done done;
  PendingBatch batch = MakeBatch(0, 2, &done);
  for (int64_t step : {5, 1, 9}) {
    *batch.request->add_records() = MakeRecord("r2", step);
    batch.run_ids.push_back(run2_id_);
  }
  ASSERT_TRUE(queue_->SubmitBatch(std::move(batch)).ok());
  absl::StatusOr<BatchResult> r = Wait(done);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->stored, 5);
  RunState r1 = ReadRun("r1");
  RunState r2 = ReadRun("r2");
  EXPECT_EQ(r1.record_count, 2);
  EXPECT_EQ(r1.last_step, 1);
  EXPECT_EQ(r2.steps, (std::vector<int64_t>{1, 5, 9}));
  EXPECT_EQ(r2.record_count, 3);
  EXPECT_EQ(r2.last_step, 9);
}

TEST_F(WriteQueueTest, SubmitBlocksWhileQueueIsFull) {
  WriteQueueOptions options;
  options.max_queued_records = 5;
  ASSERT_NO_FATAL_FAILURE(OpenQueue(options));
  Done a, b;
  std::future<absl::Status> blocked;
  {
    WriterGate gate(*queue_);
    ASSERT_TRUE(queue_->SubmitBatch(MakeBatch(0, 3, &a)).ok());
    blocked = std::async(std::launch::async, [&] { return queue_->SubmitBatch(MakeBatch(3, 3, &b)); });
    // 3 + 3 > 5: the second submit must wait for the writer.
    EXPECT_EQ(blocked.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout)
        << "SubmitBatch did not push back";
  }
  ASSERT_EQ(blocked.wait_for(kWait), std::future_status::ready);
  EXPECT_TRUE(blocked.get().ok());
  EXPECT_TRUE(Wait(a).ok());
  EXPECT_TRUE(Wait(b).ok());
  EXPECT_EQ(ReadRun().steps, Range(0, 6));
}

// Fault 11 of issue 11: memory was bounded by record counts, not bytes: a
// few records padded to megabytes filled memory within the record budget.
TEST_F(WriteQueueTest, SubmitBlocksWhileQueuedBytesAreOverBudget) {
  WriteQueueOptions options;
  options.max_queued_records = 1000;  // far from binding
  options.max_queued_bytes = 1 << 20;
  ASSERT_NO_FATAL_FAILURE(OpenQueue(options));
  auto padded = [&](int64_t first, Done* done) {
    PendingBatch b = MakeBatch(first, 1, done);
    // 700 KB of padding in an unknown field (IngestStream drops those; the
    // queue counts whatever it is given).
    b.request->GetReflection()->MutableUnknownFields(b.request.get())->AddLengthDelimited(
        9999, std::string(700 << 10, 'x'));
    return b;
  };
  Done a, b;
  std::future<absl::Status> blocked;
  {
    WriterGate gate(*queue_);
    ASSERT_TRUE(queue_->SubmitBatch(padded(0, &a)).ok());
    blocked = std::async(std::launch::async, [&] { return queue_->SubmitBatch(padded(1, &b)); });
    // 2 x 700 KB > 1 MiB: the second submit must wait for the writer.
    EXPECT_EQ(blocked.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout)
        << "SubmitBatch did not push back on bytes";
  }
  ASSERT_EQ(blocked.wait_for(kWait), std::future_status::ready);
  EXPECT_TRUE(blocked.get().ok());
  EXPECT_TRUE(Wait(a).ok());
  EXPECT_TRUE(Wait(b).ok());
  EXPECT_EQ(ReadRun().steps, Range(0, 2));
}

TEST_F(WriteQueueTest, OversizedBatchIsAdmittedIntoAnEmptyQueue) {
  WriteQueueOptions options;
  options.max_queued_records = 5;
  ASSERT_NO_FATAL_FAILURE(OpenQueue(options));
  Done done;
  WriterGate gate(*queue_);
  std::future<absl::Status> submitted =
      std::async(std::launch::async, [&] { return queue_->SubmitBatch(MakeBatch(0, 12, &done)); });
  ASSERT_EQ(submitted.wait_for(kWait), std::future_status::ready)
      << "a batch over the budget must not wait forever on an empty queue";
  EXPECT_TRUE(submitted.get().ok());
  gate.Release();
  absl::StatusOr<BatchResult> r = Wait(done);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->stored, 12);
}

TEST_F(WriteQueueTest, RunTaskReturnsValueAndError) {
  absl::StatusOr<std::string> value =
      queue_->Run<std::string>([](store::Store& s) -> absl::StatusOr<std::string> {
        absl::StatusOr<surge::v1::Job> job = s.GetJob("job");
        if (!job.ok()) return job.status();
        return job->name();
      });
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(*value, "job");
  absl::StatusOr<int> error = queue_->Run<int>(
      [](store::Store&) -> absl::StatusOr<int> { return absl::FailedPreconditionError("nope"); });
  EXPECT_EQ(error.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(error.status().message(), "nope");
}

TEST_F(WriteQueueTest, StopDrainsQueuedBatchesThenRefusesWork) {
  constexpr int kBatches = 8;
  std::vector<std::unique_ptr<Done>> done;
  {
    WriterGate gate(*queue_);
    for (int i = 0; i < kBatches; ++i) {
      done.push_back(std::make_unique<Done>());
      ASSERT_TRUE(queue_->SubmitBatch(MakeBatch(i * 2, 2, done.back().get())).ok());
    }
  }
  queue_->Stop();  // right after the writer is released: the batches are still queued
  for (int i = 0; i < kBatches; ++i) {
    SCOPED_TRACE(absl::StrCat("batch ", i));
    ASSERT_EQ(done[i]->future.wait_for(std::chrono::seconds(0)), std::future_status::ready)
        << "Stop() returned before committing a queued batch";
    absl::StatusOr<BatchResult> r = done[i]->future.get();
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->stored, 2);
    EXPECT_EQ(done[i]->calls.load(), 1);
  }

  Done late;
  absl::Status submit = queue_->SubmitBatch(MakeBatch(100, 1, &late));
  EXPECT_EQ(submit.code(), absl::StatusCode::kUnavailable) << submit;
  absl::StatusOr<int> task =
      queue_->Run<int>([](store::Store&) -> absl::StatusOr<int> { return 1; });
  EXPECT_EQ(task.status().code(), absl::StatusCode::kUnavailable) << task.status();
  queue_->Stop();  // idempotent
  EXPECT_EQ(late.calls.load(), 0) << "a refused batch must not be answered through done";

  // Everything is durable in the file.
  queue_.reset();
  absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(path_);
  ASSERT_TRUE(store.ok()) << store.status();
  absl::StatusOr<store::RecordPage> page = (*store)->ListRecords(
      (*store)->JobId("job").value(), std::nullopt, store::RecordCursor{}, 1000);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->records.size(), static_cast<size_t>(kBatches * 2));
}

TEST_F(WriteQueueTest, StopWakesBlockedSubmitters) {
  WriteQueueOptions options;
  options.max_queued_records = 2;
  ASSERT_NO_FATAL_FAILURE(OpenQueue(options));
  Done a, b;
  WriterGate gate(*queue_);
  ASSERT_TRUE(queue_->SubmitBatch(MakeBatch(0, 2, &a)).ok());
  std::future<absl::Status> blocked =
      std::async(std::launch::async, [&] { return queue_->SubmitBatch(MakeBatch(2, 2, &b)); });
  ASSERT_EQ(blocked.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  std::thread stopper([&] { queue_->Stop(); });
  ASSERT_EQ(blocked.wait_for(kWait), std::future_status::ready)
      << "Stop() must wake a SubmitBatch waiting for space";
  absl::Status status = blocked.get();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  gate.Release();
  stopper.join();
  absl::StatusOr<BatchResult> ra = Wait(a);
  EXPECT_TRUE(ra.ok()) << ra.status() << ": a batch queued before Stop() is committed";
  EXPECT_EQ(b.calls.load(), 0);
}

TEST_F(WriteQueueTest, ConcurrentSubmitters) {
  constexpr int kThreads = 4;
  constexpr int kBatches = 40;
  constexpr int kPerBatch = 5;
  std::vector<std::vector<std::unique_ptr<Done>>> done(kThreads);
  for (auto& d : done) {
    for (int i = 0; i < kBatches; ++i) d.push_back(std::make_unique<Done>());
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kBatches; ++i) {
        int64_t first = (static_cast<int64_t>(t) * kBatches + i) * kPerBatch;
        EXPECT_TRUE(queue_->SubmitBatch(MakeBatch(first, kPerBatch, done[t][i].get())).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  int64_t stored = 0;
  for (auto& d : done) {
    for (auto& one : d) {
      absl::StatusOr<BatchResult> r = Wait(*one);
      ASSERT_TRUE(r.ok()) << r.status();
      stored += r->stored;
      EXPECT_EQ(one->calls.load(), 1);
    }
  }
  constexpr int kTotal = kThreads * kBatches * kPerBatch;
  EXPECT_EQ(stored, kTotal);
  RunState state = ReadRun();
  EXPECT_EQ(state.steps, Range(0, kTotal));
  EXPECT_EQ(state.record_count, kTotal);
  EXPECT_EQ(state.last_step, kTotal - 1);
  WriteQueueStats stats = queue_->stats();
  EXPECT_EQ(stats.records_stored, kTotal);
  EXPECT_LE(stats.commits, kThreads * kBatches);
}

}  // namespace
}  // namespace surge::core
