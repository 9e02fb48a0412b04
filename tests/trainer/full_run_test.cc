// End-to-end test of `surge-train full-run` (RunFullRuns) against a real
// surge-server on 127.0.0.1: a tiny grid (2 batch sizes x 2 LRs x 1 seed, an
// easy target) streams PROTOCOL_FULL_RUN runs that follow the contract of
// full_run.h (evaluated records up to the first one at or below the target,
// then exactly one final record k steps later), and a second identical
// invocation re-runs nothing.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "absl/time/clock.h"
#include "client/trainer/full_run.h"
#include "client/trainer/reporter.h"
#include "tests/support/subprocess.h"
#include "tests/trainer/real_data.h"
#include "tests/support/temp_dir.h"

namespace surge::trainer {
namespace {

FullRunConfig TinyGrid() {
  FullRunConfig c;
  c.targets = {1.5};
  c.batch_sizes = {16, 64};
  c.lrs = {2e-3, 5e-3};
  c.seeds = 1;
  c.probe_steps = 4;
  c.eval_every = 5;
  c.max_steps = 400;
  c.eval_size = 200;
  c.threads = 2;
  c.progress = false;
  return c;
}

TEST(FullRunTest, StreamsFullRunsByTheContractAndResumesWithoutRerunning) {
  ASSERT_GT(RealData().train.size, 0);
  testing::TempDir dir;
  auto server = testing::ServerProcess::Start(dir.File("s.db"), dir.path());
  ASSERT_TRUE(server.ok()) << server.status();
  auto reporter = Reporter::Connect(server->address(), "full", "test");
  ASSERT_TRUE(reporter.ok()) << reporter.status();
  const FullRunConfig c = TinyGrid();

  auto first = RunFullRuns(c, RealData().train, RealData().eval, reporter->get(), nullptr);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->interrupted);
  EXPECT_EQ(first->points_trained, 4);
  EXPECT_EQ(first->points_skipped, 0);
  ASSERT_EQ(first->runs.size(), 4u);
  std::map<std::string, FullRunResult> by_name;
  for (const auto& r : first->runs) {
    EXPECT_TRUE(r.reached) << FullRunName(r.target, r.batch_size, r.lr, r.seed);
    by_name[FullRunName(r.target, r.batch_size, r.lr, r.seed)] = r;
  }
  ASSERT_TRUE((*reporter)->Flush(absl::Seconds(30)).ok());

  auto runs = (*reporter)->client().ListRuns("full");
  ASSERT_TRUE(runs.ok()) << runs.status();
  ASSERT_EQ(runs->runs_size(), 4);
  std::set<std::string> names;
  int runs_with_history = 0;  // runs whose target was not met at the first evaluation
  for (const auto& run : runs->runs()) {
    SCOPED_TRACE(run.name());
    names.insert(run.name());
    ASSERT_EQ(run.protocol(), surge::v1::PROTOCOL_FULL_RUN);
    ASSERT_TRUE(run.has_target_loss());
    EXPECT_DOUBLE_EQ(run.target_loss(), 1.5);
    EXPECT_GT(run.record_count(), 0);
    EXPECT_EQ(run.labels().at("seed"), "1");
    EXPECT_DOUBLE_EQ(run.optimizer().beta1(), 0.9);
    auto it = by_name.find(run.name());
    ASSERT_NE(it, by_name.end());
    const FullRunResult& r = it->second;
    EXPECT_EQ(run.batch_size(), r.batch_size);
    EXPECT_DOUBLE_EQ(run.base_lr(), r.lr);

    // The records as the server reads them.
    std::vector<surge::v1::Record> records;
    ASSERT_TRUE((*reporter)
                    ->client()
                    .ForEachRecordPage("full", run.name(), 1000,
                                       [&](const surge::v1::ListRecordsResponse& page) {
                                         for (const auto& rec : page.records()) {
                                           records.push_back(rec);
                                         }
                                         return absl::OkStatus();
                                       })
                    .ok());
    ASSERT_EQ(static_cast<int64_t>(records.size()), run.record_count());
    std::sort(records.begin(), records.end(),
              [](const auto& a, const auto& b) { return a.step() < b.step(); });
    size_t first_hit = records.size();
    for (size_t i = 0; i < records.size(); ++i) {
      ASSERT_TRUE(records[i].has_eval_loss()) << "step " << records[i].step();
      EXPECT_EQ(records[i].examples(), records[i].step() * r.batch_size);
      EXPECT_DOUBLE_EQ(records[i].lr(), r.lr);
      if (first_hit == records.size() && records[i].eval_loss() <= run.target_loss()) {
        first_hit = i;
      }
    }
    ASSERT_LT(first_hit, records.size());
    if (first_hit > 0) ++runs_with_history;
    // Evaluated steps every eval_every up to S, then exactly one record at S + k.
    for (size_t i = 0; i <= first_hit; ++i) {
      EXPECT_EQ(records[i].step(), static_cast<int64_t>(i + 1) * c.eval_every);
    }
    ASSERT_EQ(records.size(), first_hit + 2);
    const auto& s = records[first_hit];
    const auto& last = records.back();
    EXPECT_EQ(s.step(), r.steps_to_target);
    EXPECT_EQ(last.step(), s.step() + c.probe_steps);
    EXPECT_NEAR(s.eval_loss(), r.eval_at_target, 1e-6);
    EXPECT_NEAR(last.eval_loss(), r.eval_final, 1e-6);
  }
  EXPECT_EQ(names.size(), 4u);
  EXPECT_GT(runs_with_history, 0) << "every run met the target at once: the test proves little";

  // Same invocation again: every run is on the server, nothing is trained.
  auto second = RunFullRuns(c, RealData().train, RealData().eval, reporter->get(), nullptr);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->points_trained, 0);
  EXPECT_EQ(second->points_skipped, 4);
  ASSERT_TRUE((*reporter)->Flush(absl::Seconds(30)).ok());
  auto again = (*reporter)->client().ListRuns("full");
  ASSERT_TRUE(again.ok()) << again.status();
  ASSERT_EQ(again->runs_size(), 4);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(again->runs(i).record_count(), runs->runs(i).record_count());
  }
}

TEST(FullRunTest, UnreachedTargetStreamsNoFinalRecord) {
  ASSERT_GT(RealData().train.size, 0);
  testing::TempDir dir;
  auto server = testing::ServerProcess::Start(dir.File("s.db"), dir.path());
  ASSERT_TRUE(server.ok()) << server.status();
  auto reporter = Reporter::Connect(server->address(), "unreached", "test");
  ASSERT_TRUE(reporter.ok()) << reporter.status();
  FullRunConfig c = TinyGrid();
  c.targets = {1e-3};  // not reachable in 20 steps
  c.batch_sizes = {16};
  c.lrs = {1e-3};
  c.max_steps = 20;
  auto result = RunFullRuns(c, RealData().train, RealData().eval, reporter->get(), nullptr);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->runs.size(), 1u);
  EXPECT_FALSE(result->runs[0].reached);
  ASSERT_TRUE((*reporter)->Flush(absl::Seconds(30)).ok());
  auto runs = (*reporter)->client().ListRuns("unreached");
  ASSERT_TRUE(runs.ok()) << runs.status();
  ASSERT_EQ(runs->runs_size(), 1);
  EXPECT_EQ(runs->runs(0).record_count(), 4);  // steps 5, 10, 15, 20; no final record
  EXPECT_EQ(runs->runs(0).last_step(), 20);
}

TEST(FullRunTest, StopsWhenAskedAndSaysSo) {
  ASSERT_GT(RealData().train.size, 0);
  std::atomic<bool> stop{true};
  auto result = RunFullRuns(TinyGrid(), RealData().train, RealData().eval, nullptr, &stop);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->interrupted);
  EXPECT_EQ(result->points_trained, 0);
}

}  // namespace
}  // namespace surge::trainer
