// surge-replica-bench: what nginx in front of three replicas on one
// PostgreSQL costs (issue 12, docs/scaling.md), on a throwaway PostgreSQL
// (tests/support/replica_cluster.h; as root, fsync on):
//   - durable ingest, records/s, 1 and 4 streams, direct to one replica and
//     through nginx (round robin: each stream lands on some replica);
//   - GetAdvice latency, one call at a time, direct and through nginx.
// Prints one line per figure. Not part of the tests.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "client/cpp/ingest_session.h"
#include "client/cpp/surge_client.h"
#include "tests/server/fit/synthetic_runs.h"
#include "tests/support/replica_cluster.h"

ABSL_FLAG(int, calls, 5000, "GetAdvice calls per path");
ABSL_FLAG(int, records, 200000, "records per ingest measurement (split over its streams)");

namespace {

using surge::client::SurgeClient;

std::unique_ptr<SurgeClient> ClientAt(const std::string& target) {
  surge::client::ClientOptions options;
  options.target = target;
  return std::make_unique<SurgeClient>(options);
}

bool Check(const absl::Status& s, const char* what) {
  if (!s.ok()) std::fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
  return s.ok();
}

// Streams `records` records over `streams` sessions to `target` into a new
// job; durable records/s (until every record is acked).
double Ingest(const std::string& target, const std::string& job, int streams, int records) {
  auto c = ClientAt(target);
  surge::v1::Job j;
  j.set_name(job);
  j.set_batch_unit(surge::v1::BATCH_UNIT_EXAMPLES);
  if (!Check(c->CreateJob(j).status(), "CreateJob")) return NAN;
  for (int s = 0; s < streams; ++s) {
    surge::v1::Run run;
    run.set_name(absl::StrCat("r", s));
    run.set_batch_size(64);
    run.set_protocol(surge::v1::PROTOCOL_PLAIN);
    if (!Check(c->CreateRun(job, run).status(), "CreateRun")) return NAN;
  }
  const int per_stream = records / streams;
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int s = 0; s < streams; ++s) {
    threads.emplace_back([&, s] {
      auto own = ClientAt(target);  // a channel each: nginx balances per connection and call
      surge::client::IngestOptions options;
      options.batch_records = 1000;
      surge::client::IngestSession session(own->channel(), job, options);
      for (int i = 0; i < per_stream; ++i) {
        surge::v1::Record r;
        r.set_run(absl::StrCat("r", s));
        r.set_step(i);
        r.set_examples(64LL * (i + 1));
        r.set_lr(1e-3);
        r.set_loss(2.0 / (1.0 + 1e-4 * i));
        session.Append(r).IgnoreError();
      }
      Check(session.Close(absl::Minutes(5)), "Close");
    });
  }
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return per_stream * streams / seconds;
}

struct Summary {
  double p50, p99;
};

Summary Time(SurgeClient& c, const std::string& job, int calls) {
  std::vector<double> us;
  const double batches[] = {8, 16, 32, 64, 128, 48};
  for (int i = 0; i < calls + 100; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    auto advice = c.GetAdvice(job, batches[i % 6], std::nullopt);
    auto t1 = std::chrono::steady_clock::now();
    if (!advice.ok()) {
      std::fprintf(stderr, "GetAdvice: %s\n", advice.status().ToString().c_str());
      return {NAN, NAN};
    }
    if (i >= 100) us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  std::sort(us.begin(), us.end());
  return {us[us.size() / 2], us[static_cast<size_t>(0.99 * static_cast<double>(us.size() - 1))]};
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  auto cluster = surge::testing::ReplicaCluster::Start();
  if (!cluster.ok()) {
    std::fprintf(stderr, "cannot start the cluster: %s\n", cluster.status().ToString().c_str());
    return 1;
  }
  const std::string direct = (*cluster)->replica(0).address();
  const std::string front = (*cluster)->front();
  const int records = absl::GetFlag(FLAGS_records);
  for (int streams : {1, 4}) {
    double d = Ingest(direct, absl::StrCat("ingest-direct-", streams), streams, records);
    double n = Ingest(front, absl::StrCat("ingest-nginx-", streams), streams, records);
    std::printf("ingest, %d stream(s), %d records: direct %.0f records/s, through nginx %.0f "
                "records/s (ratio %.2f)\n",
                streams, records, d, n, n / d);
  }

  // A job with a fit: a plain-run sweep through nginx, then every replica
  // serving the same fit version.
  surge::fit::synth::SweepSpec spec;
  spec.batches = {8, 16, 32, 64, 128};
  const std::vector<double> lrs = surge::fit::synth::DefaultLrs(spec);
  spec.lrs = {lrs[2], lrs[3], lrs[4]};
  spec.seeds = 1;
  spec.steps = 300;
  auto c = ClientAt(front);
  surge::v1::Job job;
  job.set_name("advice");
  job.set_batch_unit(surge::v1::BATCH_UNIT_EXAMPLES);
  if (!Check(c->CreateJob(job).status(), "CreateJob")) return 1;
  {
    surge::client::IngestSession session(c->channel(), "advice");
    for (const auto& r : surge::fit::synth::PlainRunSweep(spec, 7)) {
      surge::v1::Run run;
      run.set_name(r.name);
      run.set_batch_size(static_cast<int64_t>(r.batch_size));
      run.set_protocol(surge::v1::PROTOCOL_PLAIN);
      if (!Check(c->CreateRun("advice", run).status(), "CreateRun")) return 1;
      for (size_t i = 0; i < r.steps.size(); ++i) {
        surge::v1::Record rec;
        rec.set_run(r.name);
        rec.set_step(r.steps[i]);
        rec.set_examples(static_cast<int64_t>(r.examples[i]));
        rec.set_lr(r.lr[i]);
        rec.set_loss(r.loss[i]);
        session.Append(rec).IgnoreError();
      }
    }
    if (!Check(session.Close(absl::Minutes(2)), "Close")) return 1;
  }
  std::this_thread::sleep_for(std::chrono::seconds(3));  // fits settle on every replica
  auto d = ClientAt(direct);
  Summary a = Time(*d, "advice", absl::GetFlag(FLAGS_calls));
  Summary b = Time(*c, "advice", absl::GetFlag(FLAGS_calls));
  std::printf("GetAdvice, one call at a time (us): direct p50 %.0f p99 %.0f; through nginx p50 %.0f "
              "p99 %.0f (%d calls each)\n",
              a.p50, a.p99, b.p50, b.p99, absl::GetFlag(FLAGS_calls));
  return 0;
}
