// Tests of the fitting service below the network: advice from a synthetic
// sweep with a known surge law, the codes of bad requests, fit versions and
// history, debouncing, and that ingest never waits for a fit.
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "core_test_util.h"
#include "gmock/gmock.h"
#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/core/fit_service.h"
#include "server/core/ingest_stream.h"
#include "server/core/page_token.h"
#include "server/core/surge_core.h"
#include "server/core/write_queue.h"
#include "server/store/sqlite_store.h"
#include "tests/support/synthetic_probes.h"
#include "tests/support/temp_dir.h"

namespace surge::core {
namespace {

using ::testing::HasSubstr;
using test_util::JobRequest;
using test_util::MakeBatch;
using test_util::RunRequest;

surge::v1::GetAdviceRequest AdviceRequest(const std::string& job, double b,
                                          std::optional<int64_t> step) {
  surge::v1::GetAdviceRequest r;
  r.set_job(job);
  r.set_batch_size(b);
  if (step) r.set_step(*step);
  return r;
}

surge::v1::GetFitRequest FitRequest(const std::string& job) {
  surge::v1::GetFitRequest r;
  r.set_job(job);
  return r;
}

class FitServiceTest : public ::testing::Test {
 protected:
  // Fits land debounced after the evidence; waits for the one that covers
  // `probe_points` probe results.
  surge::v1::Fit WaitForFitWith(const std::string& job, int probe_points) {
    auto fit = core_->GetFit(FitRequest(job));
    EXPECT_TRUE(fit.ok()) << fit.status();
    surge::v1::Fit current = *fit;
    absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (current.inputs().probe_points() != probe_points && absl::Now() < deadline) {
      auto next = core_->WaitNewerFit(job, current.version(), absl::Seconds(1));
      if (next != nullptr) current = next->proto;
    }
    EXPECT_EQ(current.inputs().probe_points(), probe_points);
    return current;
  }

  void Open(const FitServiceOptions& fits = {}) {
    CoreOptions options;
    options.db_path = dir_.File("fits.db");
    options.fits = fits;
    auto core = SurgeCore::Open(options);
    ASSERT_TRUE(core.ok()) << core.status();
    core_ = std::move(*core);
  }

  testing::TempDir dir_;
  std::unique_ptr<SurgeCore> core_;
};

TEST_F(FitServiceTest, AdviceRecoversTheKnownSurgeLaw) {
  Open();
  auto runs = testing::LoadSyntheticSweep(*core_, "sweep");
  ASSERT_TRUE(runs.ok()) << runs.status();
  EXPECT_EQ(*runs, 2 * 12 * 17 * 4);

  std::optional<surge::v1::Fit> fit = WaitForFitWith("sweep", *runs);
  EXPECT_TRUE(fit->error().empty()) << fit->error();
  ASSERT_EQ(fit->stages_size(), 2);
  EXPECT_EQ(fit->inputs().probe_points(), *runs);
  EXPECT_EQ(fit->inputs().loss_curve_run(), "base");
  // Stages come in ascending loss: step 1500 (B_noise 160) before step 300 (40).
  const double truth[] = {160.0, 40.0};
  for (int i = 0; i < 2; ++i) {
    const auto& surge = fit->stages(i).surge();
    SCOPED_TRACE(fit->stages(i).stage_id());
    ASSERT_EQ(surge.b_noise_kind(), surge::v1::B_NOISE_KIND_POINT);
    EXPECT_LE(surge.b_noise_ci95().lo(), truth[i]);
    EXPECT_GE(surge.b_noise_ci95().hi(), truth[i]);
    EXPECT_EQ(fit->stages(i).verdict(), surge::v1::VERDICT_YES);
    ASSERT_EQ(fit->stages(i).models_size(), 6);
    EXPECT_EQ(fit->stages(i).models(0).model(), "surge");
    EXPECT_EQ(fit->stages(i).models(5).model(), "smooth");
    // On data from the surge law the shape-free curve does not take over.
    EXPECT_LT(fit->stages(i).smooth_weight(), 0.5);
    EXPECT_GT(fit->stages(i).models(0).curve_size(), 10);
  }
  EXPECT_EQ(fit->drift().mode(), "linear");

  // At step 1500 (the second stage's checkpoint) the peak is B_noise = 160
  // with eps_max = 1.5e-3; at B = 4 the surge law gives eps_max / cosh(ln(40)/2).
  auto at_peak = core_->GetAdvice(AdviceRequest("sweep", 160, 1500));
  ASSERT_TRUE(at_peak.ok()) << at_peak.status();
  EXPECT_NEAR(at_peak->lr(), 1.5e-3, 0.1 * 1.5e-3);
  EXPECT_LT(at_peak->lr_ci95().lo(), at_peak->lr());
  EXPECT_GT(at_peak->lr_ci95().hi(), at_peak->lr());
  EXPECT_NEAR(at_peak->recommended_batch_size(), 160, 30);
  EXPECT_NEAR(at_peak->steps_ratio(), 1 + at_peak->b_noise() / 160, 1e-9);
  EXPECT_FALSE(at_peak->flags().surge_not_supported());
  EXPECT_FALSE(at_peak->flags().extrapolated_in_batch());
  EXPECT_EQ(at_peak->stages_used_size() > 0, true);
  EXPECT_GT(at_peak->probe_points_used(), 0);
  EXPECT_GT(at_peak->fit_version(), 0);
  EXPECT_THAT(at_peak->model(), HasSubstr("surge"));

  double small_truth = 1.5e-3 / std::cosh(std::log(4.0 / 160.0) / 2);
  auto small = core_->GetAdvice(AdviceRequest("sweep", 4, 1500));
  ASSERT_TRUE(small.ok());
  EXPECT_NEAR(small->lr(), small_truth, 0.15 * small_truth);
  EXPECT_LT(small->lr(), at_peak->lr()) << "below the peak the optimum rises with B";
  auto large = core_->GetAdvice(AdviceRequest("sweep", 4000, 1500));
  ASSERT_TRUE(large.ok());
  EXPECT_LT(large->lr(), at_peak->lr()) << "above the peak it falls (the surge)";

  // Far outside the observed batch sizes: flagged. Beyond the loss curve: flagged.
  auto far = core_->GetAdvice(AdviceRequest("sweep", 1e6, 1500));
  ASSERT_TRUE(far.ok());
  EXPECT_TRUE(far->flags().extrapolated_in_batch());
  auto late = core_->GetAdvice(AdviceRequest("sweep", 64, 100000));
  ASSERT_TRUE(late.ok());
  EXPECT_TRUE(late->flags().extrapolated_in_step());
  // The peak moves to larger batches as the loss falls.
  auto early = core_->GetAdvice(AdviceRequest("sweep", 64, 300));
  ASSERT_TRUE(early.ok());
  EXPECT_LT(early->b_noise(), at_peak->b_noise());
}

// Full runs (the paper's protocol): from scratch to L* = 0.5, then k = 10
// more steps. S(B, lr) = (100 + 6400 / B)(1 + z^2) steps with z = ln(lr /
// eps_opt(B)), eps_opt from the surge law (B_noise 64, eps_max 1e-3); the
// improvement over the k steps peaks at eps_opt.
TEST_F(FitServiceTest, FullRunsGiveAStageAndTheSpeedDataFit) {
  Open();
  ASSERT_TRUE(core_->CreateJob(JobRequest("full")).ok());
  auto stream = core_->OpenIngestStream();
  uint64_t seq = 0;
  int runs = 0;
  for (int64_t b : {4, 16, 64, 256, 1024}) {
    double eps_opt = 1e-3 / std::cosh(std::log(b / 64.0) / 2);
    for (int i = 0; i < 13; ++i) {
      double lr = std::pow(10.0, -4.5 + 0.25 * i);
      double z = std::log(lr / eps_opt);
      surge::v1::CreateRunRequest create = RunRequest("full", absl::StrCat("b", b, "-lr", i), b,
                                                      surge::v1::PROTOCOL_FULL_RUN);
      create.mutable_run()->set_target_loss(0.5);
      create.mutable_run()->set_base_lr(lr);
      ASSERT_TRUE(core_->CreateRun(create).ok());
      int64_t s = static_cast<int64_t>((100 + 6400.0 / b) * (1 + z * z));
      auto batch = std::make_unique<surge::v1::IngestRequest>();
      batch->set_job("full");
      batch->set_seq(++seq);
      auto add = [&](int64_t step, double eval) {
        surge::v1::Record* r = batch->add_records();
        r->set_run(create.run().name());
        r->set_step(step);
        r->set_examples(step * b);
        r->set_lr(lr);
        r->set_loss(eval);
        r->set_eval_loss(eval);
      };
      add(s / 2, 0.9);
      add(s, 0.499);
      double improvement = 0.02 / (1 + 64.0 / b) * (1 - 0.35 * z * z);
      add(s + 10, 0.499 - improvement);
      ASSERT_TRUE(stream->Accept(std::move(batch)).ok());
      ++runs;
    }
  }
  stream->Close();
  surge::v1::Fit fit = WaitForFitWith("full", runs);
  ASSERT_TRUE(fit.error().empty()) << fit.error();
  ASSERT_EQ(fit.stages_size(), 1);
  EXPECT_DOUBLE_EQ(fit.stages(0).stage_loss(), 0.5);
  EXPECT_EQ(fit.stages(0).stage_id(), 500000);
  EXPECT_EQ(fit.stages(0).optima_size(), 5);
  const auto& surge = fit.stages(0).surge();
  ASSERT_EQ(surge.b_noise_kind(), surge::v1::B_NOISE_KIND_POINT);
  EXPECT_LE(surge.b_noise_ci95().lo(), 64.0);
  EXPECT_GE(surge.b_noise_ci95().hi(), 64.0);
  // The fastest run per B is the grid LR nearest eps_opt: with 4 LRs per
  // decade |z| <= 0.29, so S is at most (1 + z^2) = 1.09 times S(B).
  ASSERT_EQ(fit.speed_data_size(), 1);
  EXPECT_NEAR(fit.speed_data(0).s_min(), 100, 9);
  EXPECT_NEAR(fit.speed_data(0).e_min(), 6400, 0.09 * 6400);
  EXPECT_NEAR(fit.speed_data(0).b_crit(), 64, 0.09 * 64 * 2);
}

TEST_F(FitServiceTest, BadRequestsGetTheirCodes) {
  Open();
  ASSERT_TRUE(core_->CreateJob(JobRequest("empty")).ok());
  struct Case {
    const char* name;
    surge::v1::GetAdviceRequest request;
    absl::StatusCode code;
    const char* message;
  };
  const Case cases[] = {
      {"zero batch", AdviceRequest("empty", 0, std::nullopt), absl::StatusCode::kInvalidArgument,
       "batch_size"},
      {"nan batch", AdviceRequest("empty", NAN, std::nullopt), absl::StatusCode::kInvalidArgument,
       "batch_size"},
      {"negative step", AdviceRequest("empty", 8, -1), absl::StatusCode::kInvalidArgument, "step"},
      {"bad job name", AdviceRequest("a b", 8, std::nullopt), absl::StatusCode::kInvalidArgument,
       "job"},
      {"missing job", AdviceRequest("ghost", 8, std::nullopt), absl::StatusCode::kNotFound,
       "ghost"},
      {"no evidence", AdviceRequest("empty", 8, std::nullopt),
       absl::StatusCode::kFailedPrecondition, "no usable fit yet"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto advice = core_->GetAdvice(c.request);
    EXPECT_EQ(advice.status().code(), c.code) << advice.status();
    EXPECT_THAT(std::string(advice.status().message()), HasSubstr(c.message));
  }
  // A job without evidence still has a Fit that says what is missing.
  auto fit = core_->GetFit(FitRequest("empty"));
  ASSERT_TRUE(fit.ok());
  EXPECT_FALSE(fit->error().empty());
  EXPECT_EQ(core_->GetFit(FitRequest("ghost")).status().code(), absl::StatusCode::kNotFound);

  surge::v1::AddOptimaRequest optima;
  optima.set_job("empty");
  auto* o = optima.add_optima();
  o->set_stage(1);
  o->set_stage_loss(1.0);
  o->set_batch_size(8);
  o->set_lr_opt(-1);
  auto bad = core_->AddOptima(optima);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("optima[0].lr_opt"));
  o->set_lr_opt(1e-3);
  optima.set_job("ghost");
  EXPECT_EQ(core_->AddOptima(optima).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(FitServiceTest, MeasuredOptimaAloneGiveAFitAndNewVersions) {
  FitServiceOptions fits;
  fits.debounce = absl::Milliseconds(50);
  Open(fits);
  ASSERT_TRUE(core_->CreateJob(JobRequest("old-sweep")).ok());
  auto first = core_->GetFit(FitRequest("old-sweep"));
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(first->error().empty());
  // Optima of a surge law below and above B_noise = 100, eps_max = 1e-3.
  surge::v1::AddOptimaRequest request;
  request.set_job("old-sweep");
  for (double b : {4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0}) {
    auto* o = request.add_optima();
    o->set_stage(1);
    o->set_stage_loss(0.5);
    o->set_batch_size(b);
    o->set_lr_opt(1e-3 / std::cosh(std::log(b / 100.0) / 2));
    o->set_lr_opt_se(0.05 * o->lr_opt());
  }
  ASSERT_TRUE(core_->AddOptima(request).ok());
  std::shared_ptr<const FitEntry> next =
      core_->WaitNewerFit("old-sweep", first->version(), absl::Seconds(10));
  ASSERT_NE(next, nullptr) << "AddOptima schedules a refit";
  EXPECT_GT(next->proto.version(), first->version());
  EXPECT_TRUE(next->proto.error().empty()) << next->proto.error();
  auto advice = core_->GetAdvice(AdviceRequest("old-sweep", 100, std::nullopt));
  ASSERT_TRUE(advice.ok()) << advice.status();
  EXPECT_NEAR(advice->lr(), 1e-3, 1e-4);
  EXPECT_FALSE(advice->has_step());
}

TEST_F(FitServiceTest, VersionsAreKeptAcrossRestartWithoutDuplicates) {
  Open();
  auto runs = testing::LoadSyntheticSweep(*core_, "sweep");
  ASSERT_TRUE(runs.ok());
  std::optional<surge::v1::Fit> fit = WaitForFitWith("sweep", *runs);
  int64_t version = fit->version();
  core_.reset();
  Open();
  // Same evidence after the restart: the stored version is reused, not bumped.
  auto again = core_->GetFit(FitRequest("sweep"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->version(), version);
  EXPECT_EQ(again->create_time_us(), fit->create_time_us());
}

TEST_F(FitServiceTest, RefitsAreDebounced) {
  FitServiceOptions fits;
  fits.debounce = absl::Milliseconds(300);
  Open(fits);
  ASSERT_TRUE(core_->CreateJob(JobRequest("j")).ok());
  ASSERT_TRUE(core_->CreateRun(RunRequest("j", "r", 32)).ok());
  ASSERT_TRUE(core_->GetFit(FitRequest("j")).ok());
  int64_t before = core_->fits().stats().fits_computed;
  auto stream = core_->OpenIngestStream();
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(stream->Accept(MakeBatch("j", i + 1, "r", i * 10, 10)).ok());
  }
  stream->Close();
  // Ten commits within the debounce window lead to exactly one refit.
  auto deadline = absl::Now() + absl::Seconds(10);
  while (core_->fits().stats().fits_computed == before && absl::Now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  EXPECT_EQ(core_->fits().stats().fits_computed, before + 1);
}

TEST_F(FitServiceTest, IngestNeverWaitsForAFit) {
  // The background fit blocks until released; ingest must commit and ack
  // meanwhile.
  std::mutex mu;
  std::condition_variable cv;
  bool fit_started = false;
  bool release = false;
  FitServiceOptions fits;
  fits.debounce = absl::Milliseconds(1);
  fits.before_fit_for_testing = [&](const std::string&) {
    std::unique_lock<std::mutex> lock(mu);
    fit_started = true;
    cv.notify_all();
    cv.wait(lock, [&] { return release; });
  };
  // The fit threads call the hook above, which uses this test's locals: stop
  // them before the locals go, on every way out (found by TSan).
  absl::Cleanup stop_fits = [&] {
    {
      std::lock_guard<std::mutex> lock(mu);
      release = true;
    }
    cv.notify_all();
    core_.reset();
  };
  Open(fits);
  ASSERT_TRUE(core_->CreateJob(JobRequest("j")).ok());
  ASSERT_TRUE(core_->CreateRun(RunRequest("j", "r", 32)).ok());
  auto stream = core_->OpenIngestStream();
  ASSERT_TRUE(stream->Accept(MakeBatch("j", 1, "r", 0, 100)).ok());
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return fit_started; }));
  }
  // A fit is in progress (blocked). 50 more batches commit and are acked.
  for (int i = 1; i <= 50; ++i) {
    ASSERT_TRUE(stream->Accept(MakeBatch("j", i + 1, "r", i * 100, 100)).ok());
  }
  uint64_t acked = 0;
  while (acked < 51) {
    auto ack = stream->NextAck();
    ASSERT_TRUE(ack.has_value());
    acked = ack->acked_seq();
  }
  EXPECT_EQ(acked, 51u);
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  stream->Close();
}

// Blocks every fit of job "big" inside its computation until released.
struct BigFitGate {
  std::mutex mu;
  std::condition_variable cv;
  bool started = false;
  bool released = false;

  void Enter(const std::string& job) {
    if (job != "big") return;
    std::unique_lock<std::mutex> lock(mu);
    started = true;
    cv.notify_all();
    cv.wait(lock, [&] { return released; });
  }
  bool WaitStarted() {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(10), [&] { return started; });
  }
  void Release() {
    {
      std::lock_guard<std::mutex> lock(mu);
      released = true;
    }
    cv.notify_all();
  }
};

surge::v1::AddOptimaRequest SurgeOptima(const std::string& job, double eps_max) {
  surge::v1::AddOptimaRequest request;
  request.set_job(job);
  for (double b : {4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0}) {
    auto* o = request.add_optima();
    o->set_stage(1);
    o->set_stage_loss(0.5);
    o->set_batch_size(b);
    o->set_lr_opt(eps_max / std::cosh(std::log(b / 100.0) / 2));
    o->set_lr_opt_se(0.05 * o->lr_opt());
  }
  return request;
}

// Fault 5 of issue 11: one global fit lock made advice for an unrelated job
// wait for a big job's fit. A fit blocked inside job "big" must not delay the
// first (on-demand) fit and advice of job "small".
TEST_F(FitServiceTest, ABigFitDoesNotDelayAnotherJobsAdvice) {
  BigFitGate gate;
  FitServiceOptions fits;
  fits.debounce = absl::Seconds(600);  // no background fits: every fit here is on demand
  fits.max_delay = absl::Seconds(600);
  fits.inside_fit_for_testing = [&](const std::string& job) { gate.Enter(job); };
  Open(fits);
  ASSERT_TRUE(core_->CreateJob(JobRequest("big")).ok());
  ASSERT_TRUE(core_->CreateJob(JobRequest("small")).ok());
  ASSERT_TRUE(core_->AddOptima(SurgeOptima("small", 1e-3)).ok());
  std::thread big([&] { (void)core_->GetFit(FitRequest("big")); });
  ASSERT_TRUE(gate.WaitStarted());
  auto small = std::async(std::launch::async, [&] {
    return core_->GetAdvice(AdviceRequest("small", 100, std::nullopt));
  });
  const bool answered = small.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  gate.Release();
  big.join();
  ASSERT_TRUE(answered) << "advice for 'small' waited for the fit of 'big'";
  auto advice = small.get();
  ASSERT_TRUE(advice.ok()) << advice.status();
  EXPECT_NEAR(advice->lr(), 1e-3, 1e-4);
}

// Background fits of different jobs run in parallel: while a background fit
// of "big" is blocked, new evidence for "small" is fitted and published.
TEST_F(FitServiceTest, BackgroundFitsOfDifferentJobsRunInParallel) {
  BigFitGate gate;
  FitServiceOptions fits;
  fits.debounce = absl::Milliseconds(1);
  fits.threads = 2;
  fits.inside_fit_for_testing = [&](const std::string& job) { gate.Enter(job); };
  // Background fits call `gate`, a local: stop them before it goes.
  absl::Cleanup stop_fits = [&] {
    gate.Release();
    core_.reset();
  };
  Open(fits);
  ASSERT_TRUE(core_->CreateJob(JobRequest("small")).ok());
  auto first = core_->GetFit(FitRequest("small"));
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(core_->CreateJob(JobRequest("big")).ok());
  ASSERT_TRUE(core_->AddOptima(SurgeOptima("big", 2e-3)).ok());  // background fit of big
  ASSERT_TRUE(gate.WaitStarted());
  ASSERT_TRUE(core_->AddOptima(SurgeOptima("small", 1e-3)).ok());
  std::shared_ptr<const FitEntry> next =
      core_->WaitNewerFit("small", first->version(), absl::Seconds(10));
  gate.Release();
  ASSERT_NE(next, nullptr) << "the fit of 'small' waited for the fit of 'big'";
  EXPECT_TRUE(next->proto.error().empty()) << next->proto.error();
}

// Fault 3 of issue 11: one bad run disabled a job forever. A probe run with
// parent.loss <= 0 and a full run with target_loss <= 0 are refused at
// CreateRun; such runs already stored (written before this validation) are
// left out of the fit and named in its notes instead of failing the job.
TEST_F(FitServiceTest, BrokenRunsAreRefusedAndStoredOnesLeftOut) {
  Open();
  ASSERT_TRUE(core_->CreateJob(JobRequest("j")).ok());
  ASSERT_TRUE(core_->AddOptima(SurgeOptima("j", 1e-3)).ok());
  surge::v1::CreateRunRequest probe = RunRequest("j", "bad-probe", 64, surge::v1::PROTOCOL_PROBE);
  probe.mutable_run()->mutable_parent()->set_checkpoint_step(100);
  probe.mutable_run()->mutable_parent()->set_loss(-5);
  probe.mutable_run()->set_base_lr(1e-3);
  auto refused = core_->CreateRun(probe);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("run.parent.loss"));
  surge::v1::CreateRunRequest full = RunRequest("j", "bad-full", 64, surge::v1::PROTOCOL_FULL_RUN);
  full.mutable_run()->set_target_loss(-3);
  full.mutable_run()->set_base_lr(1e-3);
  refused = core_->CreateRun(full);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("run.target_loss"));

  // Store them behind the core's back, as an older server would have.
  core_.reset();
  {
    auto store = store::SqliteStore::Open(dir_.File("fits.db"));
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->CreateRun("j", probe.run(), 1).ok());
    ASSERT_TRUE((*store)->CreateRun("j", full.run(), 1).ok());
  }
  Open();
  auto stream = core_->OpenIngestStream();
  ASSERT_TRUE(stream->Accept(MakeBatch("j", 1, "bad-probe", 100, 10)).ok());
  ASSERT_TRUE(stream->Accept(MakeBatch("j", 2, "bad-full", 0, 10)).ok());
  stream->Close();
  auto fit = core_->GetFit(FitRequest("j"));
  ASSERT_TRUE(fit.ok()) << fit.status();
  const surge::v1::Fit& current = *fit;  // computed now, with the broken runs' records
  EXPECT_TRUE(current.error().empty()) << current.error();
  std::string notes;
  for (const auto& n : current.notes()) notes += n + "\n";
  EXPECT_THAT(notes, HasSubstr("run 'bad-probe' left out: parent.loss = -5"));
  EXPECT_THAT(notes, HasSubstr("run 'bad-full' left out: target_loss = -3"));
  auto advice = core_->GetAdvice(AdviceRequest("j", 100, std::nullopt));
  ASSERT_TRUE(advice.ok()) << advice.status();
  EXPECT_NEAR(advice->lr(), 1e-3, 1e-4);

  // Deleting the broken runs schedules a refit without their notes.
  surge::v1::DeleteRunRequest del;
  del.set_job("j");
  for (const char* run : {"bad-probe", "bad-full"}) {
    del.set_run(run);
    auto deleted = core_->DeleteRun(del);
    ASSERT_TRUE(deleted.ok()) << deleted.status();
    EXPECT_EQ(deleted->records_deleted(), 10);
  }
  std::shared_ptr<const FitEntry> next =
      core_->WaitNewerFit("j", current.version(), absl::Seconds(10));
  ASSERT_NE(next, nullptr);
  for (const auto& n : next->proto.notes()) EXPECT_THAT(n, ::testing::Not(HasSubstr("left out")));
}

}  // namespace
}  // namespace surge::core
