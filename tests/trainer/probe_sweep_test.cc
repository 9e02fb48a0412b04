// End-to-end tests of surge-train's modes against a real surge-server on
// 127.0.0.1: a tiny probe sweep is streamed with the declared shape (base
// plain run, PROTOCOL_PROBE runs with parent stage and seed label, k records
// each, eval_loss on the last), a second identical sweep re-runs nothing, and
// a plain run keeps training through a server kill -9 and restart, with every
// record stored exactly once in the end.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <map>
#include <thread>

#include "absl/time/clock.h"
#include "client/trainer/plain_run.h"
#include "client/trainer/probe_sweep.h"
#include "client/trainer/reporter.h"
#include "tests/support/subprocess.h"
#include "tests/trainer/real_data.h"
#include "tests/support/temp_dir.h"

namespace surge::trainer {
namespace {

SweepConfig TinySweep(const std::string& work_dir) {
  SweepConfig c;
  c.work_dir = work_dir;
  c.base.run_name = "base";
  c.base.batch_size = 64;
  c.base.lr = 2e-3;
  c.base.steps = 2000;
  c.base.eval_every = 10;
  c.base.eval_size = 200;
  c.base.threads = 2;
  c.base.log_every = 0;
  c.base.target_losses = {1.2};
  c.batch_sizes = {4, 16};
  c.seeds = 2;
  c.warm_steps = 2;
  c.probe_steps = 3;
  c.lrs_per_decade = 2;
  c.initial_lrs = 3;
  c.edge_margin = 1;
  c.max_lrs = 5;
  c.eval_size = 200;
  c.threads = 2;
  c.progress = false;
  return c;
}

TEST(ProbeSweepTest, StreamsProbeRunsAndResumesWithoutRerunning) {
  ASSERT_GT(RealData().train.size, 0);
  testing::TempDir dir;
  auto server = testing::ServerProcess::Start(dir.File("s.db"), dir.path());
  ASSERT_TRUE(server.ok()) << server.status();
  auto reporter = Reporter::Connect(server->address(), "tiny", "test");
  ASSERT_TRUE(reporter.ok()) << reporter.status();
  const SweepConfig c = TinySweep(dir.File("work"));

  auto first = RunProbeSweep(c, RealData().train, RealData().eval, reporter->get(), nullptr);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->interrupted);
  // 2 batch sizes x >= 3 LRs x 2 seeds.
  EXPECT_GE(first->probes_run, 12);
  EXPECT_EQ(first->probes_reused, 0);
  ASSERT_TRUE((*reporter)->Flush(absl::Seconds(30)).ok());

  auto runs = (*reporter)->client().ListRuns("tiny");
  ASSERT_TRUE(runs.ok()) << runs.status();
  auto stored = (*reporter)->StoredRuns();
  ASSERT_TRUE(stored.ok()) << stored.status();
  std::map<std::string, ProbeResult> by_name;
  for (const auto& p : first->probes) {
    by_name[ProbeRunName(p.stage, p.batch_size, p.lr, p.seed)] = p;
  }
  int probes = 0, plain = 0;
  for (const auto& run : runs->runs()) {
    if (run.protocol() == surge::v1::PROTOCOL_PLAIN) {
      ++plain;
      EXPECT_EQ(run.name(), "base");
      EXPECT_GT(run.record_count(), 0);
      continue;
    }
    ASSERT_EQ(run.protocol(), surge::v1::PROTOCOL_PROBE) << run.name();
    ++probes;
    auto it = by_name.find(run.name());
    ASSERT_NE(it, by_name.end()) << run.name();
    const ProbeResult& p = it->second;
    EXPECT_EQ(run.batch_size(), p.batch_size);
    EXPECT_DOUBLE_EQ(run.base_lr(), p.lr);
    EXPECT_EQ(run.parent().checkpoint_step(), p.checkpoint_step);
    EXPECT_DOUBLE_EQ(run.parent().loss(), p.stage_loss);
    EXPECT_EQ(run.parent().base_run(), "base");
    EXPECT_EQ(run.labels().at("seed"), std::to_string(p.seed));
    EXPECT_EQ(run.record_count(), c.probe_steps);
    EXPECT_DOUBLE_EQ(run.optimizer().beta1(), 0.9);
    const auto& last = stored->at(run.name()).last;
    ASSERT_TRUE(last.has_value());
    EXPECT_EQ(last->step(), c.probe_steps);
    EXPECT_EQ(last->examples(), int64_t{c.probe_steps} * p.batch_size);
    ASSERT_TRUE(last->has_eval_loss());
    // The server's evidence: improvement = parent.loss - eval_loss of the last record.
    EXPECT_NEAR(run.parent().loss() - last->eval_loss(), p.improvement, 1e-6);
    EXPECT_TRUE(last->has_grad_stats());  // B = 4 and 16 are even
  }
  EXPECT_EQ(plain, 1);
  EXPECT_EQ(probes, first->probes_run);

  // Same command again: everything is read back, nothing re-run, same numbers.
  auto second = RunProbeSweep(c, RealData().train, RealData().eval, reporter->get(), nullptr);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->probes_run, 0);
  EXPECT_EQ(second->probes_reused, first->probes_run);
  for (const auto& p : second->probes) {
    const auto& q = by_name.at(ProbeRunName(p.stage, p.batch_size, p.lr, p.seed));
    EXPECT_NEAR(p.improvement, q.improvement, 1e-6);
  }
}

TEST(ProbeSweepTest, StopsWhenAskedAndSaysSo) {
  ASSERT_GT(RealData().train.size, 0);
  testing::TempDir dir;
  std::atomic<bool> stop{true};
  auto result =
      RunProbeSweep(TinySweep(dir.File("work")), RealData().train, RealData().eval, nullptr, &stop);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->interrupted);
  EXPECT_EQ(result->probes_run, 0);
}

TEST(PlainRunTest, KeepsTrainingThroughAServerRestart) {
  ASSERT_GT(RealData().train.size, 0);
  testing::TempDir dir;
  auto server = testing::ServerProcess::Start(dir.File("s.db"), dir.path());
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = server->port();
  auto reporter = Reporter::Connect(server->address(), "restart", "test");
  ASSERT_TRUE(reporter.ok()) << reporter.status();
  PlainRunOptions o;
  o.run_name = "plain";
  o.batch_size = 256;
  o.steps = 150;
  o.eval_every = 50;
  o.eval_size = 200;
  o.log_every = 0;
  absl::StatusOr<PlainRunResult> result;
  std::thread training([&] {
    result = RunPlain(o, RealData().train, RealData().eval, reporter->get(), nullptr);
  });
  // Kill the server once it has stored some records, while training goes on.
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < deadline && (*reporter)->stats().acked_records < 5) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  server->process().Kill(SIGKILL);
  server->process().Wait();
  const int64_t acked_at_kill = (*reporter)->stats().acked_records;
  absl::SleepFor(absl::Milliseconds(500));
  auto restarted = testing::ServerProcess::Start(dir.File("s.db"), dir.path(), port);
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  training.join();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->steps, 150);
  ASSERT_TRUE((*reporter)->Flush(absl::Seconds(60)).ok());
  EXPECT_LT(acked_at_kill, 150) << "training finished before the kill: the test proved nothing";
  EXPECT_GE((*reporter)->stats().reconnects, 1);
  auto runs = (*reporter)->client().ListRuns("restart");
  ASSERT_TRUE(runs.ok()) << runs.status();
  ASSERT_EQ(runs->runs_size(), 1);
  EXPECT_EQ(runs->runs(0).record_count(), 150);
  EXPECT_EQ(runs->runs(0).last_step(), 150);
}

}  // namespace
}  // namespace surge::trainer
