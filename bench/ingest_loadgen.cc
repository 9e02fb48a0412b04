// surge-ingest-loadgen: a load generator for the Ingest RPC.
//
// Starts a real surge-server (separate process) on 127.0.0.1 with a fresh
// SQLite file (WAL, synchronous=FULL), or targets --server. Opens --streams
// concurrent Ingest streams; each keeps up to --window batches of --batch
// records in flight and times every batch from Write to the ack that covers
// it (an ack is sent only after the batch's COMMIT returned). Prints the
// sustained durable rate and ack-latency percentiles over --seconds after a
// --warmup.
//
// Soak mode (issue 11): --jobs=N spreads the streams over N jobs
// ("loadgen-<i>"), the child server's RSS is sampled every second, and
// --verify checks at the end that every run holds exactly the records its
// stream had acked and that no stream ended with an error (exit 1 if not):
//   surge-ingest-loadgen --streams=200 --jobs=200 --batch=100 --window=2 \
//       --seconds=300 --verify
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/cpp/surge_client.h"

ABSL_FLAG(std::string, server, "", "target host:port; empty starts a surge-server child");
ABSL_FLAG(std::string, server_bin, SURGE_SERVER_BIN, "surge-server binary for the child");
ABSL_FLAG(std::string, db, "", "database of the child server (default: a fresh temp file)");
ABSL_FLAG(int, streams, 4, "concurrent Ingest streams");
ABSL_FLAG(int, batch, 1000, "records per batch");
ABSL_FLAG(int, window, 8, "batches in flight per stream");
ABSL_FLAG(double, seconds, 10, "measured duration");
ABSL_FLAG(double, warmup, 2, "unmeasured warm-up");
ABSL_FLAG(int, jobs, 1, "jobs the streams are spread over (1: the single job \"loadgen\")");
ABSL_FLAG(bool, verify, false,
          "at the end, check every run's stored records against its stream's acks");

namespace {

using Clock = std::chrono::steady_clock;

struct Sample {
  double latency_us;
};

struct Shared {
  std::atomic<bool> stop{false};
  std::atomic<bool> measuring{false};
  std::atomic<int64_t> records{0};
  std::atomic<int> errors{0};
  std::mutex mu;
  std::vector<double> latencies_us;
  std::vector<int64_t> acked;  // per stream: records acked in all (warm-up included)
};

std::string JobOf(int stream) {
  const int jobs = absl::GetFlag(FLAGS_jobs);
  return jobs <= 1 ? std::string("loadgen") : absl::StrCat("loadgen-", stream % jobs);
}

// VmRSS of `pid` in MiB (0 when unreadable).
double RssMib(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return 0;
}

// One stream: a writer loop with a window, and a reader thread for acks.
void RunStream(surge::client::SurgeClient& client, int index, Shared& shared) {
  const int batch_size = absl::GetFlag(FLAGS_batch);
  const int window = absl::GetFlag(FLAGS_window);
  std::string run = absl::StrCat("load-", index);
  surge::v1::Run spec;
  spec.set_name(run);
  spec.set_batch_size(256);
  spec.set_protocol(surge::v1::PROTOCOL_PLAIN);
  const std::string job = JobOf(index);
  auto created = client.CreateRun(job, spec);
  if (!created.ok()) {
    std::fprintf(stderr, "CreateRun: %s\n", created.status().ToString().c_str());
    std::exit(1);
  }

  grpc::ClientContext context;
  auto stream = client.stub().Ingest(&context);
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::pair<uint64_t, Clock::time_point>> in_flight;
  std::vector<double> local;
  int64_t acked_records = 0;

  std::thread reader([&] {
    surge::v1::IngestResponse ack;
    while (stream->Read(&ack)) {
      Clock::time_point now = Clock::now();
      std::lock_guard<std::mutex> lock(mu);
      while (!in_flight.empty() && in_flight.front().first <= ack.acked_seq()) {
        acked_records += batch_size;
        if (shared.measuring.load()) {
          local.push_back(std::chrono::duration<double, std::micro>(now - in_flight.front().second).count());
          shared.records.fetch_add(batch_size);
        }
        in_flight.pop_front();
      }
      cv.notify_all();
    }
  });

  surge::v1::IngestRequest request;
  request.set_job(job);
  for (int i = 0; i < batch_size; ++i) {
    auto* r = request.add_records();
    r->set_run(run);
    r->set_lr(1e-3);
    r->set_loss(2.0);
    auto* g = r->mutable_grad_stats();
    g->set_grad_sq_small(3.0);
    g->set_grad_sq_big(1.0);
    g->set_b_small(128);
    g->set_b_big(256);
  }
  int64_t step = 0;
  uint64_t seq = 0;
  while (!shared.stop.load()) {
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return static_cast<int>(in_flight.size()) < window; });
      in_flight.emplace_back(++seq, Clock::now());
    }
    request.set_seq(seq);
    for (int i = 0; i < batch_size; ++i) {
      auto* r = request.mutable_records(i);
      r->set_step(step);
      r->set_examples(step * 256);
      r->set_loss(2.0 / (1.0 + 1e-4 * static_cast<double>(step)));
      ++step;
    }
    if (!stream->Write(request)) break;
  }
  stream->WritesDone();
  reader.join();
  grpc::Status status = stream->Finish();
  if (!status.ok()) {
    std::fprintf(stderr, "stream %d: %s\n", index, status.error_message().c_str());
    ++shared.errors;
  }
  std::lock_guard<std::mutex> lock(shared.mu);
  shared.latencies_us.insert(shared.latencies_us.end(), local.begin(), local.end());
  shared.acked[static_cast<size_t>(index)] = acked_records;
}

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  size_t k = static_cast<size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k];
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::string target = absl::GetFlag(FLAGS_server);
  pid_t child = -1;
  std::string tmp_dir;
  if (target.empty()) {
    tmp_dir = (std::filesystem::temp_directory_path() / absl::StrCat("surge-loadgen-", getpid())).string();
    std::filesystem::create_directories(tmp_dir);
    std::string db = absl::GetFlag(FLAGS_db).empty() ? tmp_dir + "/load.db" : absl::GetFlag(FLAGS_db);
    std::string port_file = tmp_dir + "/port";
    std::vector<std::string> args = {absl::GetFlag(FLAGS_server_bin), "--db=" + db,
                                     "--listen=127.0.0.1:0", "--port_file=" + port_file,
                                     "--http=127.0.0.1:0"};
    std::vector<char*> cargs;
    for (auto& a : args) cargs.push_back(a.data());
    cargs.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    if (posix_spawn(&child, cargs[0], &actions, nullptr, cargs.data(), environ) != 0) {
      std::fprintf(stderr, "cannot start %s\n", cargs[0]);
      return 1;
    }
    std::string port;
    for (int i = 0; i < 1000 && port.empty(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      std::ifstream in(port_file);
      std::getline(in, port);
    }
    if (port.empty()) {
      std::fprintf(stderr, "surge-server did not start\n");
      return 1;
    }
    target = "127.0.0.1:" + port;
    std::printf("server: surge-server child pid %d on %s, db %s\n", child, target.c_str(), db.c_str());
  }

  surge::client::ClientOptions options;
  options.target = target;
  surge::client::SurgeClient client(options);
  const int n_streams = absl::GetFlag(FLAGS_streams);
  for (int j = 0; j < std::max(1, std::min(absl::GetFlag(FLAGS_jobs), n_streams)); ++j) {
    surge::v1::Job job;
    job.set_name(JobOf(j));
    job.set_batch_unit(surge::v1::BATCH_UNIT_EXAMPLES);
    auto created = client.CreateJob(job);
    if (!created.ok() && !absl::IsAlreadyExists(created.status())) {
      std::fprintf(stderr, "CreateJob: %s\n", created.status().ToString().c_str());
      return 1;
    }
  }

  Shared shared;
  shared.acked.assign(static_cast<size_t>(n_streams), 0);
  // The child's RSS, once a second.
  std::vector<double> rss;
  std::thread sampler([&] {
    while (child > 0 && !shared.stop.load()) {
      rss.push_back(RssMib(child));
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
  });
  std::vector<std::thread> streams;
  for (int i = 0; i < absl::GetFlag(FLAGS_streams); ++i) {
    streams.emplace_back([&, i] { RunStream(client, i, shared); });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(absl::GetFlag(FLAGS_warmup)));
  shared.measuring = true;
  absl::Time start = absl::Now();
  std::this_thread::sleep_for(std::chrono::duration<double>(absl::GetFlag(FLAGS_seconds)));
  shared.measuring = false;
  double elapsed = absl::ToDoubleSeconds(absl::Now() - start);
  int64_t records = shared.records.load();
  shared.stop = true;
  for (auto& t : streams) t.join();
  sampler.join();

  std::vector<double>& lat = shared.latencies_us;
  std::printf("config: streams=%d batch=%d window=%d seconds=%.1f (cores: %u)\n",
              absl::GetFlag(FLAGS_streams), absl::GetFlag(FLAGS_batch), absl::GetFlag(FLAGS_window),
              elapsed, std::thread::hardware_concurrency());
  std::printf("durable records/s: %.0f  (%lld records acked in %.2f s)\n",
              static_cast<double>(records) / elapsed, static_cast<long long>(records), elapsed);
  std::printf("ack latency per batch (us): p50 %.0f  p90 %.0f  p99 %.0f  max %.0f  (%zu batches)\n",
              Percentile(lat, 0.5), Percentile(lat, 0.9), Percentile(lat, 0.99),
              Percentile(lat, 1.0), lat.size());
  int failures = shared.errors.load();
  std::printf("streams ended with an error: %d\n", shared.errors.load());
  if (!rss.empty()) {
    const size_t n = rss.size(), tenth = std::max<size_t>(1, n / 10);
    double first = 0, last = 0;
    for (size_t i = 0; i < tenth; ++i) first += rss[i] / static_cast<double>(tenth);
    for (size_t i = n - tenth; i < n; ++i) last += rss[i] / static_cast<double>(tenth);
    std::printf("server RSS (MiB): max %.0f, mean of the first tenth %.0f, of the last tenth %.0f "
                "(%zu samples)\n",
                *std::max_element(rss.begin(), rss.end()), first, last, n);
  }
  if (absl::GetFlag(FLAGS_verify)) {
    int64_t acked = 0, stored = 0;
    int mismatches = 0;
    for (int i = 0; i < n_streams; ++i) {
      auto runs = client.ListRuns(JobOf(i));
      int64_t have = -1;
      if (runs.ok()) {
        for (const auto& r : runs->runs()) {
          if (r.name() == absl::StrCat("load-", i)) have = r.record_count();
        }
      }
      acked += shared.acked[static_cast<size_t>(i)];
      stored += std::max<int64_t>(0, have);
      if (have != shared.acked[static_cast<size_t>(i)]) {
        if (++mismatches <= 5) {
          std::fprintf(stderr, "run load-%d of %s: %lld stored, %lld acked\n", i,
                       JobOf(i).c_str(), static_cast<long long>(have),
                       static_cast<long long>(shared.acked[static_cast<size_t>(i)]));
        }
      }
    }
    std::printf("verify: %lld records acked, %lld stored, %d runs differ\n",
                static_cast<long long>(acked), static_cast<long long>(stored), mismatches);
    failures += mismatches;
  }
  // Fits of the job ran in the server during the measurement (off the ingest
  // path): say how many were stored.
  auto fit = client.GetFit(JobOf(0));
  if (fit.ok()) {
    std::printf("fits of the ingested job stored meanwhile: %lld (last took %.1f ms)\n",
                static_cast<long long>(fit->version()), fit->fit_ms());
  }
  if (child > 0) {
    kill(child, SIGTERM);
    waitpid(child, nullptr, 0);
    std::filesystem::remove_all(tmp_dir);
  }
  return failures == 0 ? 0 : 1;
}
