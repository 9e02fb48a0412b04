// `surge-server --db=A --copy_to=B` (issue 12, moving up): a database made by
// a real server (runs with labels, records with eval loss and gradient
// statistics, optima, a fit) is copied into a new one, verified run by run,
// and a server on the copy answers exactly what the original answered. A
// copy into a database that has the jobs is refused; a destination changed
// after the copy fails VerifyCopy naming the run.
#include <signal.h>

#include <sqlite3.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "client/cpp/ingest_session.h"
#include "client/cpp/surge_client.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "server/store/copy_store.h"
#include "server/store/open_store.h"
#include "tests/support/server_child.h"
#include "tests/support/temp_dir.h"

namespace surge {
namespace {

using ::testing::HasSubstr;

std::unique_ptr<client::SurgeClient> ClientFor(const testing::Server& server) {
  client::ClientOptions options;
  options.target = server.address();
  return std::make_unique<client::SurgeClient>(options);
}

void Stop(testing::Server& server) {
  server.process.Kill(SIGTERM);
  server.process.Wait();
}

// Fills a job through a real server: two plain runs with labels, 3,000
// records each (every 10th with an eval loss, every 7th with gradient
// statistics), two measured optima, and waits for its fit.
void Fill(const testing::Server& server) {
  auto c = ClientFor(server);
  surge::v1::Job job;
  job.set_name("copied");
  job.set_batch_unit(surge::v1::BATCH_UNIT_EXAMPLES);
  job.set_description("a job to copy");
  job.add_target_losses(1.5);
  job.set_k_steps(20);
  ASSERT_TRUE(c->CreateJob(job).ok());
  for (int b : {32, 128}) {
    surge::v1::Run run;
    run.set_name(absl::StrCat("b", b));
    run.set_batch_size(b);
    run.set_base_lr(1e-3);
    run.set_protocol(surge::v1::PROTOCOL_PLAIN);
    (*run.mutable_labels())["seed"] = "7";
    ASSERT_TRUE(c->CreateRun("copied", run).ok());
    client::IngestSession session(c->channel(), "copied");
    for (int step = 0; step < 3000; ++step) {
      surge::v1::Record r;
      r.set_run(run.name());
      r.set_step(step);
      r.set_examples(static_cast<int64_t>(b) * (step + 1));
      r.set_lr(1e-3);
      r.set_loss(2.5 / (1.0 + 1e-3 * step * b / 32.0));
      if (step % 10 == 0) r.set_eval_loss(r.loss() + 0.05);
      if (step % 7 == 0) {
        r.mutable_grad_stats()->set_grad_sq_small(0.5 + 1e-4 * step);
        r.mutable_grad_stats()->set_grad_sq_big(0.3);
        r.mutable_grad_stats()->set_b_small(b / 2);
        r.mutable_grad_stats()->set_b_big(b);
      }
      ASSERT_TRUE(session.Append(r).ok());
    }
    ASSERT_TRUE(session.Close(absl::Seconds(30)).ok());
  }
  std::vector<surge::v1::MeasuredOptimum> optima(2);
  for (int i = 0; i < 2; ++i) {
    optima[i].set_stage(0);
    optima[i].set_batch_size(32 << (2 * i));
    optima[i].set_stage_loss(1.5);
    optima[i].set_lr_opt(1e-3 * (i + 1));
    optima[i].set_lr_opt_se(2e-4);
  }
  ASSERT_TRUE(c->AddOptima("copied", optima).ok());
  ASSERT_TRUE(c->GetFit("copied").ok());
}

TEST(CopyTest, CopyIsWholeAndServesTheSameAnswers) {
  testing::TempDir dir;
  const std::string a = dir.File("a.db"), b = dir.File("b.db");
  auto original = testing::StartServer(dir, "a", {"--listen=127.0.0.1:0", "--http=", "--db=" + a});
  ASSERT_TRUE(original.ok()) << original.status();
  ASSERT_NO_FATAL_FAILURE(Fill(*original));
  auto c = ClientFor(*original);
  auto job_a = c->GetJob("copied");
  auto runs_a = c->ListRuns("copied");
  auto fit_a = c->GetFit("copied");
  surge::v1::ListRecordsRequest all;
  all.set_job("copied");
  all.set_page_size(100000);
  auto records_a = c->ListRecords(all);
  ASSERT_TRUE(job_a.ok() && runs_a.ok() && fit_a.ok() && records_a.ok());
  Stop(*original);

  testing::CommandResult copy = testing::RunCommand(
      {SURGE_SERVER_BIN, "--db=" + a, "--copy_to=sqlite://" + b, "--http="});
  EXPECT_EQ(copy.exit_code, 0) << copy.out << copy.err;
  EXPECT_THAT(copy.out, HasSubstr("1 jobs, 2 runs, 6000 records, 2 optima, 1 latest fits"));
  EXPECT_THAT(copy.out, HasSubstr("verified 2 runs (record counts and checksums): 0 problems"));

  auto copied = testing::StartServer(dir, "b", {"--listen=127.0.0.1:0", "--http=", "--db=" + b});
  ASSERT_TRUE(copied.ok()) << copied.status();
  auto d = ClientFor(*copied);
  auto job_b = d->GetJob("copied");
  auto runs_b = d->ListRuns("copied");
  auto records_b = d->ListRecords(all);
  auto fit_b = d->GetFit("copied");
  ASSERT_TRUE(job_b.ok() && runs_b.ok() && records_b.ok() && fit_b.ok());
  using google::protobuf::util::MessageDifferencer;
  // AddOptima stamps the job's update time with the copy's clock.
  job_b->set_update_time_us(job_a->update_time_us());
  EXPECT_TRUE(MessageDifferencer::Equals(*job_a, *job_b))
      << job_a->DebugString() << "\nvs\n" << job_b->DebugString();
  EXPECT_TRUE(MessageDifferencer::Equals(*runs_a, *runs_b));
  EXPECT_EQ(records_a->records_size(), 6000);
  EXPECT_TRUE(MessageDifferencer::Equals(*records_a, *records_b));
  // The same evidence, so the same fit (its version, times and fit duration aside).
  surge::v1::Fit fa = *fit_a, fb = *fit_b;
  for (surge::v1::Fit* f : {&fa, &fb}) {
    f->clear_version();
    f->clear_create_time_us();
    f->clear_fit_ms();
  }
  MessageDifferencer fits;
  fits.set_float_comparison(MessageDifferencer::APPROXIMATE);
  std::string diff;
  fits.ReportDifferencesToString(&diff);
  EXPECT_TRUE(fits.Compare(fa, fb)) << diff;
  Stop(*copied);

  // Copying again into the same database is refused, nothing written.
  testing::CommandResult again = testing::RunCommand(
      {SURGE_SERVER_BIN, "--db=" + a, "--copy_to=sqlite://" + b, "--http="});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.err, HasSubstr("already has a job 'copied'"));

  // A destination changed afterwards fails the verification, naming the run.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(b.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "UPDATE records SET loss = loss + 1e-9 WHERE step = 1234 AND run_id = "
                         "(SELECT id FROM runs WHERE name = 'b128')",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  EXPECT_EQ(sqlite3_changes(db), 1);
  sqlite3_close(db);
  auto from = store::OpenStore(*store::ParseDbTarget(a));
  auto to = store::OpenStore(*store::ParseDbTarget(b));
  ASSERT_TRUE(from.ok() && to.ok());
  auto verified = store::VerifyCopy(**from, **to);
  ASSERT_TRUE(verified.ok()) << verified.status();
  ASSERT_EQ(verified->problems.size(), 1u);
  EXPECT_THAT(verified->problems[0], HasSubstr("run 'b128': 3000 records with checksum"));
}

}  // namespace
}  // namespace surge
