// End-to-end test of `surge-train follow` (RunPlain with advise_every) against
// a real surge-server: a job gets measured optima from a known surge law
// (eps_opt(B) = 1e-3 / cosh(ln(B / 32) / 2), so B_noise = 32) and is fitted;
// a follow run on real Fashion-MNIST then asks for advice every 10 steps. It
// must switch to the advised LR (and, with follow_batch, to the advised batch
// size), log the change, and stream records that carry the new LR and count
// the examples actually seen.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <vector>

#include "absl/time/clock.h"
#include "client/trainer/plain_run.h"
#include "client/trainer/reporter.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"
#include "tests/trainer/real_data.h"

namespace surge::trainer {
namespace {

constexpr double kEpsMax = 1e-3;
constexpr double kBNoise = 32;

// Measured optima of one stage (loss 1.0) at B = 1..1024, 5% standard error.
std::vector<surge::v1::MeasuredOptimum> KnownOptima() {
  std::vector<surge::v1::MeasuredOptimum> out;
  for (double b = 1; b <= 1024; b *= 2) {
    surge::v1::MeasuredOptimum m;
    m.set_stage(1);
    m.set_stage_loss(1.0);
    m.set_batch_size(b);
    m.set_lr_opt(kEpsMax / std::cosh(std::log(b / kBNoise) / 2));
    m.set_lr_opt_se(0.05 * m.lr_opt());
    out.push_back(m);
  }
  return out;
}

class FollowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_GT(RealData().train.size, 0);
    auto server = testing::ServerProcess::Start(dir_.File("s.db"), dir_.path());
    ASSERT_TRUE(server.ok()) << server.status();
    server_.emplace(*std::move(server));
  }

  // A fitted job named `job` with the known optima; returns its reporter.
  std::unique_ptr<Reporter> FittedJob(const std::string& job) {
    auto reporter = Reporter::Connect(server_->address(), job, "follow test");
    EXPECT_TRUE(reporter.ok()) << reporter.status();
    if (!reporter.ok()) return nullptr;
    auto added = (*reporter)->client().AddOptima(job, KnownOptima());
    EXPECT_TRUE(added.ok()) << added.status();
    absl::Status fit = absl::UnavailableError("not polled");
    for (int i = 0; i < 200; ++i) {
      fit = (*reporter)->client().GetFit(job).status();
      if (fit.ok()) break;
      absl::SleepFor(absl::Milliseconds(100));
    }
    EXPECT_TRUE(fit.ok()) << fit;
    return *std::move(reporter);
  }

  PlainRunOptions Follow(const std::string& job) {
    PlainRunOptions o;
    o.run_name = "follow";
    o.batch_size = 8;
    o.lr = 1e-2;  // 10x the advice: the switch is visible
    o.steps = 30;
    o.eval_every = 10;
    o.eval_size = 200;
    o.threads = 2;
    o.log_every = 0;
    o.advise_every = 10;
    o.advice_job = job;
    return o;
  }

  // step -> record of run "follow".
  std::map<int64_t, surge::v1::Record> Records(Reporter& reporter) {
    std::map<int64_t, surge::v1::Record> out;
    absl::Status s = reporter.client().ForEachRecordPage(
        reporter.job(), "follow", 1000, [&](const surge::v1::ListRecordsResponse& page) {
          for (const auto& r : page.records()) out[r.step()] = r;
          return absl::OkStatus();
        });
    EXPECT_TRUE(s.ok()) << s;
    return out;
  }

  testing::TempDir dir_;
  std::optional<testing::ServerProcess> server_;
};

TEST_F(FollowTest, SwitchesToTheAdvisedLearningRate) {
  auto reporter = FittedJob("lr-only");
  ASSERT_NE(reporter, nullptr);
  auto advice = reporter->client().GetAdvice("lr-only", 8, std::nullopt);
  ASSERT_TRUE(advice.ok()) << advice.status();
  // The fit recovers the law: eps_opt(8) = 1e-3 / cosh(ln(1/4) / 2) = 8.0e-4.
  EXPECT_NEAR(std::log(advice->lr() / (kEpsMax / std::cosh(std::log(8 / kBNoise) / 2))), 0, 0.1);

  auto result = RunPlain(Follow("lr-only"), RealData().train, RealData().eval, reporter.get(),
                         nullptr);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_TRUE(reporter->Flush(absl::Seconds(30)).ok());
  ASSERT_FALSE(result->changes.empty());
  const FollowChange& c = result->changes.front();
  EXPECT_EQ(c.step, 11);  // the first advice is asked before step advise_every + 1
  EXPECT_DOUBLE_EQ(c.lr_before, 1e-2);
  EXPECT_NEAR(std::log(c.lr_after / advice->lr()), 0, 0.05);
  EXPECT_EQ(c.batch_before, 8);
  EXPECT_EQ(c.batch_after, 8);  // follow_batch is off
  EXPECT_EQ(result->examples, 30 * 8);

  auto records = Records(*reporter);
  ASSERT_EQ(records.size(), 30u);
  EXPECT_DOUBLE_EQ(records.at(10).lr(), 1e-2);
  EXPECT_DOUBLE_EQ(records.at(11).lr(), c.lr_after);
  EXPECT_EQ(records.at(30).examples(), 30 * 8);
}

TEST_F(FollowTest, AlsoSwitchesToTheAdvisedBatchSize) {
  auto reporter = FittedJob("lr-and-batch");
  ASSERT_NE(reporter, nullptr);
  PlainRunOptions o = Follow("lr-and-batch");
  o.follow_batch = true;
  o.max_batch = 256;
  auto result = RunPlain(o, RealData().train, RealData().eval, reporter.get(), nullptr);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_TRUE(reporter->Flush(absl::Seconds(30)).ok());
  ASSERT_FALSE(result->changes.empty());
  const FollowChange& c = result->changes.front();
  EXPECT_EQ(c.step, 11);
  EXPECT_EQ(c.batch_before, 8);
  // The recommended batch size is the balance point B_noise = 32 of the law.
  EXPECT_GE(c.batch_after, 28);
  EXPECT_LE(c.batch_after, 36);
  // And the LR is the one advised for the new batch size (~eps_max there).
  auto at_new = reporter->client().GetAdvice("lr-and-batch", c.batch_after, std::nullopt);
  ASSERT_TRUE(at_new.ok()) << at_new.status();
  EXPECT_NEAR(std::log(c.lr_after / at_new->lr()), 0, 0.05);
  EXPECT_NEAR(std::log(c.lr_after / kEpsMax), 0, 0.1);

  auto records = Records(*reporter);
  ASSERT_EQ(records.size(), 30u);
  EXPECT_EQ(records.at(10).examples(), 10 * 8);
  EXPECT_EQ(records.at(11).examples(), 10 * 8 + c.batch_after);
  EXPECT_EQ(result->examples, records.at(30).examples());

  // A bad range is refused before anything runs.
  o.min_batch = 64;
  o.max_batch = 16;
  auto bad = RunPlain(o, RealData().train, RealData().eval, reporter.get(), nullptr);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace surge::trainer
