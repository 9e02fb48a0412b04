// Several replicas on one PostgreSQL (issue 12, item 5): three real
// surge-server processes on a throwaway PostgreSQL (tests/support/pg_server.h)
// behind nginx from Debian with deploy/nginx/surge-grpc.conf (grpc_pass,
// round robin; its ports rewritten to free ones). 20 jobs stream plain runs
// through nginx with the C++ client while one replica is killed with kill -9
// and restarted on its port. Afterwards: every record is stored exactly once,
// every job's stored fit versions are 1..n with no gap or duplicate, and
// every replica serves the same fit and the same advice for every job.
// Skipped where PostgreSQL or nginx cannot run here.
#include <libpq-fe.h>
#include <signal.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <iostream>

#include <chrono>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "client/cpp/ingest_session.h"
#include "client/cpp/surge_client.h"
#include "google/protobuf/util/field_comparator.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "tests/server/fit/synthetic_runs.h"
#include "tests/support/replica_cluster.h"

namespace surge {
namespace {

using google::protobuf::util::DefaultFieldComparator;
using google::protobuf::util::MessageDifferencer;

// Equal up to float rounding, NaN equal to NaN (fits hold NaN where a law
// has no estimate).
bool SameAnswer(const google::protobuf::Message& a, const google::protobuf::Message& b,
                std::string* diff = nullptr) {
  DefaultFieldComparator comparator;
  comparator.set_float_comparison(DefaultFieldComparator::APPROXIMATE);
  comparator.set_treat_nan_as_equal(true);
  MessageDifferencer d;
  d.set_field_comparator(&comparator);
  if (diff != nullptr) d.ReportDifferencesToString(diff);
  return d.Compare(a, b);
}

const int kJobs = std::getenv("SURGE_REPLICA_JOBS") ? std::atoi(std::getenv("SURGE_REPLICA_JOBS")) : 20;
std::unique_ptr<client::SurgeClient> ClientAt(const std::string& target) {
  client::ClientOptions options;
  options.target = target;
  options.call_timeout = absl::Seconds(20);
  return std::make_unique<client::SurgeClient>(options);
}

// The plain-run sweep of job `j`: 5 batch sizes x 3 LRs, 300 steps each.
std::vector<fit::RunSeries> Sweep(int j) {
  fit::synth::SweepSpec spec;
  spec.batches = {8, 16, 32, 64, 128};
  const std::vector<double> lrs = fit::synth::DefaultLrs(spec);
  spec.lrs = {lrs[2], lrs[3], lrs[4]};
  spec.seeds = 1;
  spec.steps = 300;
  spec.report = fit::synth::LossReport::kEval;
  spec.eval_every = 10;
  return fit::synth::PlainRunSweep(spec, 100 + j);
}

class ReplicasTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = testing::ReplicaCluster::Start();
    if (absl::IsFailedPrecondition(cluster.status())) GTEST_SKIP() << cluster.status().message();
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = std::move(*cluster);
  }

  std::string Front() const { return cluster_->front(); }

  // Each job's stored fit versions, ascending, read from PostgreSQL.
  std::map<std::string, std::vector<int64_t>> StoredVersions() {
    std::map<std::string, std::vector<int64_t>> out;
    PGconn* conn = PQconnectdb(cluster_->url().c_str());
    EXPECT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
    PGresult* r = PQexec(conn,
                         "SELECT j.name, f.version FROM fits f JOIN jobs j ON j.id = f.job_id "
                         "ORDER BY j.name, f.version");
    EXPECT_EQ(PQresultStatus(r), PGRES_TUPLES_OK) << PQerrorMessage(conn);
    for (int row = 0; row < PQntuples(r); ++row) {
      out[PQgetvalue(r, row, 0)].push_back(std::stoll(PQgetvalue(r, row, 1)));
    }
    PQclear(r);
    PQfinish(conn);
    return out;
  }

  std::unique_ptr<testing::ReplicaCluster> cluster_;
};

TEST_F(ReplicasTest, ThreeReplicasBehindNginxSurviveAKillAndAgree) {
  auto front = ClientAt(Front());
  std::vector<std::vector<fit::RunSeries>> sweeps;
  int64_t total = 0;
  for (int j = 0; j < kJobs; ++j) {
    const std::string job = absl::StrCat("job", j);
    surge::v1::Job spec;
    spec.set_name(job);
    spec.set_batch_unit(surge::v1::BATCH_UNIT_EXAMPLES);
    ASSERT_TRUE(front->CreateJob(spec).ok());
    sweeps.push_back(Sweep(j));
    for (const auto& r : sweeps.back()) {
      surge::v1::Run run;
      run.set_name(r.name);
      run.set_batch_size(static_cast<int64_t>(r.batch_size));
      run.set_protocol(surge::v1::PROTOCOL_PLAIN);
      ASSERT_TRUE(front->CreateRun(job, run).ok());
      total += static_cast<int64_t>(r.steps.size());
    }
  }

  // 20 streams through nginx; replica 1 is killed mid-stream and restarted.
  std::vector<std::thread> streams;
  std::vector<absl::Status> closed(kJobs);
  std::atomic<int64_t> reconnects{0}, resent{0};
  std::atomic<int> started{0};
  for (int j = 0; j < kJobs; ++j) {
    streams.emplace_back([&, j] {
      client::IngestOptions options;
      options.batch_records = 250;
      client::IngestSession session(front->channel(), absl::StrCat("job", j), options);
      ++started;
      for (const auto& r : sweeps[j]) {
        for (size_t i = 0; i < r.steps.size(); ++i) {
          surge::v1::Record rec;
          rec.set_run(r.name);
          rec.set_step(r.steps[i]);
          rec.set_examples(static_cast<int64_t>(r.examples[i]));
          rec.set_lr(r.lr[i]);
          rec.set_loss(r.loss[i]);
          if (std::isfinite(r.eval_loss[i])) rec.set_eval_loss(r.eval_loss[i]);
          if (absl::Status s = session.Append(rec); !s.ok()) {
            closed[j] = s;
            return;
          }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a run at a time
      }
      closed[j] = session.Close(absl::Seconds(120));
      reconnects += session.stats().reconnects;
      resent += session.stats().batches_resent;
    });
  }
  while (started < kJobs) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  cluster_->replica(1).process.Kill(SIGKILL);
  cluster_->replica(1).process.Wait();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_TRUE(cluster_->Restart(1).ok());
  for (auto& t : streams) t.join();
  for (int j = 0; j < kJobs; ++j) EXPECT_TRUE(closed[j].ok()) << "job" << j << ": " << closed[j];
  // The kill cut streams that were sending (else this test shows nothing).
  EXPECT_GT(reconnects.load(), 0) << "no stream was cut by the kill";

  // Exactly once: every record of every run is there, no more (records are
  // unique per (run, step), so a count equal to what was sent is both).
  int64_t stored = 0;
  for (int j = 0; j < kJobs; ++j) {
    auto job = front->GetJob(absl::StrCat("job", j));
    ASSERT_TRUE(job.ok()) << job.status();
    int64_t sent = 0;
    for (const auto& r : sweeps[j]) sent += static_cast<int64_t>(r.steps.size());
    EXPECT_EQ(job->record_count(), sent) << "job" << j;
    stored += job->record_count();
  }
  EXPECT_EQ(stored, total);

  // Every replica settles on the same fit for every job (polling: at most a
  // second behind the replica that stored it, plus its own refit).
  std::unique_ptr<client::SurgeClient> direct[3];
  for (int i = 0; i < 3; ++i) direct[i] = ClientAt(cluster_->replica(i).address());
  for (int j = 0; j < kJobs; ++j) {
    const std::string job = absl::StrCat("job", j);
    absl::Time deadline = absl::Now() + absl::Seconds(60);
    std::vector<surge::v1::Fit> fits(3);
    bool same = false;
    while (!same && absl::Now() < deadline) {
      same = true;
      for (int i = 0; i < 3; ++i) {
        auto fit = direct[i]->GetFit(job);
        ASSERT_TRUE(fit.ok()) << fit.status();
        fits[i] = *fit;
        fits[i].clear_fit_ms();
        fits[i].clear_create_time_us();
        if (i > 0 && !SameAnswer(fits[0], fits[i])) same = false;
      }
      if (!same) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    EXPECT_TRUE(same) << job << ": the replicas serve different fits (versions "
                      << fits[0].version() << ", " << fits[1].version() << ", "
                      << fits[2].version() << ")";
    if (!same) {
      for (int i = 1; i < 3; ++i) {
        std::string diff;
        SameAnswer(fits[0], fits[i], &diff);
        std::cerr << "fit 0 vs " << i << ":\n" << diff.substr(0, 2000) << "\n";
      }
      for (int i = 0; i < 3; ++i) {
        std::cerr << "replica " << i << " fit inputs: " << fits[i].inputs().ShortDebugString()
                  << "\nlog:\n" << testing::ReadFile(cluster_->replica(i).log).substr(0, 3000) << "\n";
      }
      return;
    }
    EXPECT_GT(fits[0].version(), 0) << job;
    // The same advice from each.
    absl::StatusOr<surge::v1::Advice> advice[3];
    for (int i = 0; i < 3; ++i) advice[i] = direct[i]->GetAdvice(job, 48, std::nullopt);
    for (int i = 1; i < 3; ++i) {
      EXPECT_EQ(advice[i].status(), advice[0].status()) << job;
      if (advice[0].ok() && advice[i].ok()) {
        EXPECT_TRUE(SameAnswer(*advice[0], *advice[i])) << job;
      }
    }
  }

  int advised = 0;
  for (int j = 0; j < kJobs; ++j) {
    if (direct[0]->GetAdvice(absl::StrCat("job", j), 48, std::nullopt).ok()) ++advised;
  }
  std::cout << "replicas: " << total << " records in " << kJobs << " jobs, " << reconnects
            << " stream reconnects (" << resent << " batches re-sent) after the kill; "
            << advised << " jobs with advice, the same from all three replicas\n";
  // WatchFits on one replica sees a fit that another replica computed and
  // stored (the shared-version poller: about a second behind).
  {
    auto before = direct[2]->GetFit("job0");
    ASSERT_TRUE(before.ok());
    std::atomic<int64_t> seen{0};
    std::thread watcher([&] {
      direct[2]
          ->WatchFits("job0", absl::Seconds(30),
                      [&](const surge::v1::Fit& fit) {
                        seen = fit.version();
                        return fit.version() <= before->version();
                      })
          .IgnoreError();
    });
    surge::v1::Run extra;
    extra.set_name("extra");
    extra.set_batch_size(256);
    extra.set_protocol(surge::v1::PROTOCOL_PLAIN);
    ASSERT_TRUE(direct[0]->CreateRun("job0", extra).ok());
    {
      client::IngestSession session(direct[0]->channel(), "job0");
      const fit::RunSeries& r = sweeps[0].back();
      for (size_t i = 0; i < r.steps.size(); ++i) {
        surge::v1::Record rec;
        rec.set_run("extra");
        rec.set_step(r.steps[i]);
        rec.set_examples(static_cast<int64_t>(r.examples[i]) * 2);
        rec.set_lr(r.lr[i]);
        rec.set_loss(r.loss[i]);
        ASSERT_TRUE(session.Append(rec).ok());
      }
      ASSERT_TRUE(session.Close(absl::Seconds(30)).ok());
    }
    const absl::Time stored_at = absl::Now();
    watcher.join();
    EXPECT_GT(seen.load(), before->version())
        << "replica 2's WatchFits did not see the fit replica 0 stored";
    std::cout << "replicas: replica 2's watcher saw version " << seen << " "
              << absl::FormatDuration(absl::Now() - stored_at)
              << " after replica 0 acked the records\n";
  }

  // Stored versions: 1..n per job, no gap, no duplicate.
  std::map<std::string, std::vector<int64_t>> versions = StoredVersions();
  EXPECT_EQ(versions.size(), static_cast<size_t>(kJobs));
  for (const auto& [job, v] : versions) {
    for (size_t k = 0; k < v.size(); ++k) {
      EXPECT_EQ(v[k], static_cast<int64_t>(k) + 1) << job << " has versions out of 1..n";
    }
  }
}

}  // namespace
}  // namespace surge
