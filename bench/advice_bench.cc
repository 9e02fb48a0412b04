// surge-advice-bench: latency of "optimal LR for batch B at step t".
//
// Loads a synthetic 2-stage probe sweep (12 batch sizes x 17 LRs x 4 seeds)
// into a real server on a temp SQLite file, then times GetAdvice calls with
// varying batch size and step: in process (SurgeCore::GetAdvice) and over
// gRPC on loopback (SurgeClient::GetAdvice, one call at a time). Prints p50,
// p99 and max per path.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "client/cpp/surge_client.h"
#include "server/app/server.h"
#include "tests/support/synthetic_probes.h"
#include "tests/support/temp_dir.h"

ABSL_FLAG(int, calls, 20000, "calls per path");

namespace {

struct Summary {
  double p50, p99, max;
};

Summary Summarize(std::vector<double> us) {
  std::sort(us.begin(), us.end());
  auto at = [&](double p) { return us[static_cast<size_t>(p * static_cast<double>(us.size() - 1))]; };
  return {at(0.5), at(0.99), us.back()};
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int calls = absl::GetFlag(FLAGS_calls);
  surge::testing::TempDir dir;
  surge::app::ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.http_listen = "127.0.0.1:0";
  options.core.db_path = dir.File("advice.db");
  auto server = surge::app::Server::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", server.status().ToString().c_str());
    return 1;
  }
  surge::core::SurgeCore& core = (*server)->core();
  auto loaded = surge::testing::LoadSyntheticSweep(core, "bench");
  if (!loaded.ok()) {
    std::fprintf(stderr, "%s\n", loaded.status().ToString().c_str());
    return 1;
  }
  // Fits land debounced after the last records: wait for the one that
  // covers every probe.
  auto latest = core.LatestFit("bench");
  if (!latest.ok()) {
    std::fprintf(stderr, "%s\n", latest.status().ToString().c_str());
    return 1;
  }
  std::shared_ptr<const surge::core::FitEntry> entry = *latest;
  while (entry->proto.inputs().probe_points() != *loaded) {
    auto next = core.WaitNewerFit("bench", entry->proto.version(), absl::Seconds(30));
    if (next == nullptr) {
      std::fprintf(stderr, "no fit with all %d probe points\n", *loaded);
      return 1;
    }
    entry = next;
  }
  const surge::v1::Fit* fit = &entry->proto;
  std::printf("job: %d probe runs, fit v%lld in %.1f ms (%d stages)\n", *loaded,
              static_cast<long long>(fit->version()), fit->fit_ms(), fit->stages_size());

  const double batches[] = {2, 8, 32, 100, 512, 3000};
  const int64_t steps[] = {200, 800, 1500, 5000};
  auto request = [&](int i) {
    surge::v1::GetAdviceRequest r;
    r.set_job("bench");
    r.set_batch_size(batches[i % 6]);
    r.set_step(steps[(i / 6) % 4]);
    return r;
  };

  std::vector<double> in_process;
  for (int i = 0; i < calls; ++i) {
    surge::v1::GetAdviceRequest r = request(i);
    auto t0 = std::chrono::steady_clock::now();
    auto advice = core.GetAdvice(r);
    auto t1 = std::chrono::steady_clock::now();
    if (!advice.ok()) {
      std::fprintf(stderr, "%s\n", advice.status().ToString().c_str());
      return 1;
    }
    in_process.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }

  surge::client::ClientOptions client_options;
  client_options.target = "127.0.0.1:" + std::to_string((*server)->port());
  surge::client::SurgeClient client(client_options);
  std::vector<double> grpc;
  for (int i = 0; i < calls; ++i) {
    surge::v1::GetAdviceRequest r = request(i);
    auto t0 = std::chrono::steady_clock::now();
    auto advice = client.GetAdvice(r.job(), r.batch_size(), r.step());
    auto t1 = std::chrono::steady_clock::now();
    if (!advice.ok()) {
      std::fprintf(stderr, "%s\n", advice.status().ToString().c_str());
      return 1;
    }
    if (i >= 100) grpc.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  Summary a = Summarize(in_process), b = Summarize(grpc);
  std::printf("advice in process (us): p50 %.1f  p99 %.1f  max %.1f  (%d calls)\n", a.p50, a.p99,
              a.max, calls);
  std::printf("advice over gRPC loopback (us): p50 %.1f  p99 %.1f  max %.1f  (%zu calls)\n",
              b.p50, b.p99, b.max, grpc.size());
  (*server)->Shutdown();
  return 0;
}
