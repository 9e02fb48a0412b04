// surge-train: the reference trainer. A LeNet-5-style CNN on Fashion-MNIST
// (client/trainer/cnn_cpu.h) trained with Adam on the CPU, streaming to a
// surge server through the C++ client library.
//
//   surge-train train  --job J [--batch_size 64 --lr 1e-3 --steps 2000]
//   surge-train probe  --job J --work_dir DIR [--batch_sizes 1,2,...,1024
//                      --targets 0.6,0.45 --seeds 3 --beta1 0.9 --beta2 0.999]
//   surge-train follow --job J --advice_job P [--advise_every 100] [--follow_batch]
//   surge-train full-run --job J --targets 0.7,0.5 --batch_sizes 16,64
//                      --lrs 1e-3,3e-3 [--seeds 3 --probe_steps 10 --eval_every 5
//                      --max_steps 20000]
//
// See docs/trainer.md. Ctrl-C stops cleanly (records already queued are
// flushed); rerunning the same probe or full-run command resumes the sweep.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "client/trainer/fashion_mnist.h"
#include "client/trainer/full_run.h"
#include "client/trainer/plain_run.h"
#include "client/trainer/probe_sweep.h"
#include "client/trainer/progress.h"
#include "client/trainer/reporter.h"
#ifdef SURGE_TRAINER_HAVE_CUDA
#include "client/trainer/cuda/cuda_trainer.h"
#endif

ABSL_FLAG(std::string, server, "",
          "surge server host:port (default: $SURGE_SERVER, else 127.0.0.1:50051); 'none' trains "
          "without streaming");
ABSL_FLAG(std::string, job, "fmnist-cnn", "job to stream to");
ABSL_FLAG(std::string, data_dir, surge::trainer::kDefaultFashionMnistDir,
          "Fashion-MNIST IDX files (Debian package dataset-fashion-mnist)");
ABSL_FLAG(int, threads, 2, "worker threads");
ABSL_FLAG(std::string, backend, "cpu",
          "probe: where probes run, cpu or cuda (the base run and train/follow use the CPU)");
// Optimizer (the run's, or in probe mode the probes').
ABSL_FLAG(double, beta1, 0.9, "Adam beta1 (0 allowed)");
ABSL_FLAG(double, beta2, 0.999, "Adam beta2 (0 allowed)");
ABSL_FLAG(double, adam_eps, 1e-8, "Adam epsilon");
ABSL_FLAG(double, weight_decay, 0.0, "decoupled weight decay (AdamW)");
// train / follow.
ABSL_FLAG(std::string, run, "train", "run name (train/follow)");
ABSL_FLAG(int, batch_size, 64, "batch size (train/follow)");
ABSL_FLAG(double, lr, 1e-3, "learning rate (train/follow: the starting one)");
ABSL_FLAG(int64_t, steps, 2000, "steps (train/follow)");
ABSL_FLAG(int64_t, seed, 1, "init and data seed (train/follow)");
ABSL_FLAG(int, eval_every, 0,
          "evaluate on the eval subset every N steps (0: the mode's default, 50 for train/follow, "
          "5 for full-run)");
ABSL_FLAG(int, eval_size, 1000, "evaluation subset: the first N test images");
ABSL_FLAG(int, log_every, 100, "print a line every N steps");
ABSL_FLAG(std::string, advice_job, "", "follow: job whose fit advises the LR (default --job)");
ABSL_FLAG(int, advise_every, 100, "follow: ask for advice every N steps");
ABSL_FLAG(bool, follow_batch, false,
          "follow: also set the batch size to the advised one (the speed/data balance point)");
ABSL_FLAG(int, min_batch, 1, "follow --follow_batch: smallest batch size to use");
ABSL_FLAG(int, max_batch, 4096, "follow --follow_batch: largest batch size to use");
// probe.
ABSL_FLAG(std::string, work_dir, "", "probe: directory for checkpoints and results (required)");
ABSL_FLAG(std::string, targets, "0.6,0.45", "probe: base-run eval losses that define the stages");
ABSL_FLAG(std::string, batch_sizes, "1,2,4,8,16,32,64,128,256,512,1024", "probe: batch sizes");
ABSL_FLAG(int, seeds, 3, "probe: seeds per grid point");
ABSL_FLAG(int, warm_steps, 20, "probe: Adam warm-up steps at lr = 0");
ABSL_FLAG(int, probe_steps, 10, "probe: measured steps k");
ABSL_FLAG(double, lr_start, 1e-3, "probe: centre of the first LR window");
ABSL_FLAG(int, lrs_per_decade, 8, "probe: LR grid density");
ABSL_FLAG(int, initial_lrs, 8, "probe: LRs in the first window per batch size");
ABSL_FLAG(int, edge_margin, 2, "probe: evaluated LRs required on each side of the best");
ABSL_FLAG(int, max_lrs, 24, "probe: most LRs per batch size");
ABSL_FLAG(double, lr_min, 1e-6, "probe: lowest LR");
ABSL_FLAG(double, lr_max, 1.0, "probe: highest LR");
ABSL_FLAG(std::string, base_run, "base", "probe: name of the base run");
ABSL_FLAG(int, base_batch, 64, "probe: base run batch size");
ABSL_FLAG(double, base_lr, 1e-3, "probe: base run LR (Adam 0.9/0.999)");
ABSL_FLAG(int64_t, base_steps, 20000, "probe: base run step limit");
ABSL_FLAG(int, base_eval_every, 20, "probe: base run evaluation interval");
ABSL_FLAG(int64_t, base_seed, 1, "probe: base run seed");
ABSL_FLAG(bool, progress, true, "probe/full-run: progress bar on stderr");
// full-run (also --targets, --batch_sizes, --seeds, --probe_steps, --eval_every, --eval_size).
ABSL_FLAG(std::string, lrs, "",
          "full-run: learning rates; empty: the lattice lr_start * 10^(j / lrs_per_decade) within "
          "[lr_min, lr_max]");
ABSL_FLAG(int64_t, max_steps, 20000, "full-run: step limit of the search for a target");

namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) {
  if (g_stop.exchange(true)) std::_Exit(130);  // second Ctrl-C: now
}

template <typename T>
absl::StatusOr<std::vector<T>> ParseList(const std::string& flag, const std::string& text) {
  std::vector<T> out;
  for (absl::string_view s : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    T v{};
    bool ok;
    if constexpr (std::is_same_v<T, int>) {
      ok = absl::SimpleAtoi(s, &v);
    } else {
      ok = absl::SimpleAtod(s, &v);
    }
    if (!ok) return absl::InvalidArgumentError(absl::StrCat("--", flag, ": bad entry '", s, "'"));
    out.push_back(v);
  }
  return out;
}

surge::trainer::AdamConfig AdamFromFlags() {
  surge::trainer::AdamConfig a;
  a.beta1 = absl::GetFlag(FLAGS_beta1);
  a.beta2 = absl::GetFlag(FLAGS_beta2);
  a.eps = absl::GetFlag(FLAGS_adam_eps);
  a.weight_decay = absl::GetFlag(FLAGS_weight_decay);
  return a;
}

std::string ServerAddress() {
  std::string s = absl::GetFlag(FLAGS_server);
  if (s.empty()) {
    const char* env = std::getenv("SURGE_SERVER");
    s = env != nullptr && *env != '\0' ? env : "127.0.0.1:50051";
  }
  return s;
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "surge-train: %s\n", s.ToString().c_str());
  return 1;
}

surge::trainer::PlainRunOptions PlainFromFlags() {
  surge::trainer::PlainRunOptions o;
  o.run_name = absl::GetFlag(FLAGS_run);
  o.batch_size = absl::GetFlag(FLAGS_batch_size);
  o.lr = absl::GetFlag(FLAGS_lr);
  o.adam = AdamFromFlags();
  o.seed = absl::GetFlag(FLAGS_seed);
  o.steps = absl::GetFlag(FLAGS_steps);
  o.eval_every = absl::GetFlag(FLAGS_eval_every) > 0 ? absl::GetFlag(FLAGS_eval_every) : 50;
  o.eval_size = absl::GetFlag(FLAGS_eval_size);
  o.threads = absl::GetFlag(FLAGS_threads);
  o.log_every = absl::GetFlag(FLAGS_log_every);
  return o;
}

// Where --backend=cuda can run, a factory for CudaTrainers; else an error.
absl::StatusOr<surge::trainer::TrainerFactory> BackendFromFlags(const char* mode) {
  const std::string backend = absl::GetFlag(FLAGS_backend);
  if (backend == "cpu") return surge::trainer::TrainerFactory();
  if (backend != "cuda") return absl::InvalidArgumentError("--backend must be cpu or cuda");
#ifdef SURGE_TRAINER_HAVE_CUDA
  std::string why;
  if (!surge::trainer::cuda::DeviceAvailable(&why)) {
    return absl::FailedPreconditionError("--backend=cuda: " + why);
  }
  std::printf("%s: runs on %s\n", mode, surge::trainer::cuda::DeviceName().c_str());
  return surge::trainer::TrainerFactory(
      [](const surge::trainer::AdamConfig& adam, int max_batch) {
        return std::unique_ptr<surge::trainer::Trainer>(
            new surge::trainer::cuda::CudaTrainer(adam, max_batch));
      });
#else
  (void)mode;
  return absl::FailedPreconditionError(
      "--backend=cuda: this surge-train was built without CUDA (nvcc not found)");
#endif
}

int RunProbe(const surge::trainer::Dataset& train, const surge::trainer::Dataset& eval,
             surge::trainer::Reporter* reporter) {
  surge::trainer::SweepConfig c;
  c.work_dir = absl::GetFlag(FLAGS_work_dir);
  if (c.work_dir.empty()) return Fail(absl::InvalidArgumentError("probe needs --work_dir"));
  auto targets = ParseList<double>("targets", absl::GetFlag(FLAGS_targets));
  auto batches = ParseList<int>("batch_sizes", absl::GetFlag(FLAGS_batch_sizes));
  if (!targets.ok()) return Fail(targets.status());
  if (!batches.ok()) return Fail(batches.status());
  c.base.run_name = absl::GetFlag(FLAGS_base_run);
  c.base.batch_size = absl::GetFlag(FLAGS_base_batch);
  c.base.lr = absl::GetFlag(FLAGS_base_lr);
  c.base.adam = surge::trainer::AdamConfig{};  // the base run always uses Adam(0.9, 0.999)
  c.base.seed = absl::GetFlag(FLAGS_base_seed);
  c.base.steps = absl::GetFlag(FLAGS_base_steps);
  c.base.eval_every = absl::GetFlag(FLAGS_base_eval_every);
  c.base.eval_size = absl::GetFlag(FLAGS_eval_size);
  c.base.threads = absl::GetFlag(FLAGS_threads);
  c.base.log_every = 0;
  c.base.target_losses = *targets;
  c.batch_sizes = *batches;
  std::sort(c.batch_sizes.begin(), c.batch_sizes.end());
  c.seeds = absl::GetFlag(FLAGS_seeds);
  c.warm_steps = absl::GetFlag(FLAGS_warm_steps);
  c.probe_steps = absl::GetFlag(FLAGS_probe_steps);
  c.adam = AdamFromFlags();
  c.lr_start = absl::GetFlag(FLAGS_lr_start);
  c.lrs_per_decade = absl::GetFlag(FLAGS_lrs_per_decade);
  c.initial_lrs = absl::GetFlag(FLAGS_initial_lrs);
  c.edge_margin = absl::GetFlag(FLAGS_edge_margin);
  c.max_lrs = absl::GetFlag(FLAGS_max_lrs);
  c.lr_min = absl::GetFlag(FLAGS_lr_min);
  c.lr_max = absl::GetFlag(FLAGS_lr_max);
  c.eval_size = absl::GetFlag(FLAGS_eval_size);
  c.threads = absl::GetFlag(FLAGS_threads);
  c.progress = absl::GetFlag(FLAGS_progress);
  auto factory = BackendFromFlags("probe");
  if (!factory.ok()) return Fail(factory.status());
  c.make_trainer = *std::move(factory);
  auto result = surge::trainer::RunProbeSweep(c, train, eval, reporter, &g_stop);
  if (!result.ok()) return Fail(result.status());

  // Results file and a per-(stage, B) summary: the best grid LR by mean.
  const std::string csv = c.work_dir + "/probes.csv";
  std::ofstream out(csv);
  out << "stage,checkpoint_step,stage_loss,batch_size,lr,seed,improvement\n";
  std::map<std::tuple<int, int>, std::map<double, std::pair<double, int>>> means;
  for (const auto& p : result->probes) {
    out << absl::StrFormat("%d,%d,%.6f,%d,%.6g,%d,%.6g\n", p.stage, p.checkpoint_step,
                           p.stage_loss, p.batch_size, p.lr, p.seed, p.improvement);
    auto& m = means[{p.stage, p.batch_size}][p.lr];
    m.first += p.improvement;
    m.second += 1;
  }
  std::printf("probe: %d probes run, %d read back from the server, %s%s; results in %s\n",
              result->probes_run, result->probes_reused,
              surge::trainer::FormatDuration(result->seconds).c_str(),
              result->interrupted ? " (INTERRUPTED: rerun the same command to resume)" : "",
              csv.c_str());
  std::printf("%6s %6s %6s %12s %12s\n", "stage", "batch", "n_lrs", "best_lr", "best_dL");
  for (const auto& [key, by_lr] : means) {
    double best_lr = 0, best = -INFINITY;
    for (const auto& [lr, sum] : by_lr) {
      if (sum.first / sum.second > best) {
        best = sum.first / sum.second;
        best_lr = lr;
      }
    }
    std::printf("%6d %6d %6zu %12.4g %12.4g\n", std::get<0>(key), std::get<1>(key), by_lr.size(),
                best_lr, best);
  }
  return result->interrupted ? 130 : 0;
}

int RunFull(const surge::trainer::Dataset& train, const surge::trainer::Dataset& eval,
            surge::trainer::Reporter* reporter) {
  surge::trainer::FullRunConfig c;
  auto targets = ParseList<double>("targets", absl::GetFlag(FLAGS_targets));
  auto batches = ParseList<int>("batch_sizes", absl::GetFlag(FLAGS_batch_sizes));
  auto lrs = ParseList<double>("lrs", absl::GetFlag(FLAGS_lrs));
  if (!targets.ok()) return Fail(targets.status());
  if (!batches.ok()) return Fail(batches.status());
  if (!lrs.ok()) return Fail(lrs.status());
  c.targets = *targets;
  c.batch_sizes = *batches;
  c.lrs = *lrs;
  if (c.lrs.empty()) {
    const double start = absl::GetFlag(FLAGS_lr_start);
    const double per = absl::GetFlag(FLAGS_lrs_per_decade);
    const double lo = absl::GetFlag(FLAGS_lr_min), hi = absl::GetFlag(FLAGS_lr_max);
    if (!(start > 0) || !(per >= 1) || !(lo > 0) || !(hi >= lo)) {
      return Fail(absl::InvalidArgumentError("bad LR lattice flags"));
    }
    const int j_min = static_cast<int>(std::ceil(per * std::log10(lo / start) - 1e-9));
    const int j_max = static_cast<int>(std::floor(per * std::log10(hi / start) + 1e-9));
    for (int j = j_min; j <= j_max; ++j) c.lrs.push_back(start * std::pow(10.0, j / per));
  }
  c.seeds = absl::GetFlag(FLAGS_seeds);
  c.probe_steps = absl::GetFlag(FLAGS_probe_steps);
  c.eval_every = absl::GetFlag(FLAGS_eval_every) > 0 ? absl::GetFlag(FLAGS_eval_every) : 5;
  c.max_steps = absl::GetFlag(FLAGS_max_steps);
  c.eval_size = absl::GetFlag(FLAGS_eval_size);
  c.adam = AdamFromFlags();
  c.threads = absl::GetFlag(FLAGS_threads);
  c.progress = absl::GetFlag(FLAGS_progress);
  auto factory = BackendFromFlags("full-run");
  if (!factory.ok()) return Fail(factory.status());
  c.make_trainer = *factory;
  std::printf("full-run: %zu targets x %zu batch sizes x %zu LRs x %d seeds\n", c.targets.size(),
              c.batch_sizes.size(), c.lrs.size(), c.seeds);
  auto result = surge::trainer::RunFullRuns(c, train, eval, reporter, &g_stop);
  if (!result.ok()) return Fail(result.status());
  std::printf("%10s %6s %10s %5s %10s %10s %10s\n", "target", "batch", "lr", "seed", "S", "L(S)",
              "L(S+k)");
  for (const auto& r : result->runs) {
    if (r.from_server) continue;
    if (r.reached) {
      std::printf("%10.4g %6d %10.4g %5d %10lld %10.4f %10.4f\n", r.target, r.batch_size, r.lr,
                  r.seed, static_cast<long long>(r.steps_to_target), r.eval_at_target,
                  r.eval_final);
    } else {
      std::printf("%10.4g %6d %10.4g %5d %10s\n", r.target, r.batch_size, r.lr, r.seed,
                  "not reached");
    }
  }
  std::printf("full-run: %d grid points trained, %d already on the server, %s%s\n",
              result->points_trained, result->points_skipped,
              surge::trainer::FormatDuration(result->seconds).c_str(),
              result->interrupted ? " (INTERRUPTED: rerun the same command to resume)" : "");
  return result->interrupted ? 130 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "surge-train MODE [flags]; MODE is train, probe, follow or full-run (see docs/trainer.md)");
  // --help lists this file's flags (Abseil matches the binary's name otherwise).
  absl::FlagsUsageConfig usage_config;
  usage_config.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "trainer/main.cc");
  };
  absl::SetFlagsUsageConfig(usage_config);
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() != 2) {
    std::fprintf(stderr,
                 "usage: surge-train train|probe|follow|full-run [flags]  (--help for flags)\n");
    return 2;
  }
  const std::string mode = args[1];
  if (mode != "train" && mode != "probe" && mode != "follow" && mode != "full-run") {
    std::fprintf(stderr, "surge-train: unknown mode '%s' (train, probe, follow, full-run)\n",
                 mode.c_str());
    return 2;
  }
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);

  const std::string dir = absl::GetFlag(FLAGS_data_dir);
  auto train = surge::trainer::LoadFashionMnist(dir, "train");
  if (!train.ok()) return Fail(train.status());
  auto eval = surge::trainer::LoadFashionMnist(dir, "t10k");
  if (!eval.ok()) return Fail(eval.status());

  std::unique_ptr<surge::trainer::Reporter> reporter;
  const std::string server = ServerAddress();
  if (server != "none") {
    const auto adam = AdamFromFlags();
    auto r = surge::trainer::Reporter::Connect(
        server, absl::GetFlag(FLAGS_job),
        absl::StrFormat("surge-train: LeNet-5-style CNN on Fashion-MNIST, Adam(%g, %g), eps %g",
                        adam.beta1, adam.beta2, adam.eps));
    if (!r.ok()) return Fail(r.status());
    reporter = *std::move(r);
  }

  int rc = 0;
  if (mode == "probe") {
    rc = RunProbe(*train, *eval, reporter.get());
  } else if (mode == "full-run") {
    rc = RunFull(*train, *eval, reporter.get());
  } else {
    surge::trainer::PlainRunOptions o = PlainFromFlags();
    if (mode == "follow") {
      if (reporter == nullptr) return Fail(absl::InvalidArgumentError("follow needs a server"));
      o.advise_every = absl::GetFlag(FLAGS_advise_every);
      o.advice_job = absl::GetFlag(FLAGS_advice_job).empty() ? absl::GetFlag(FLAGS_job)
                                                             : absl::GetFlag(FLAGS_advice_job);
      o.follow_batch = absl::GetFlag(FLAGS_follow_batch);
      o.min_batch = absl::GetFlag(FLAGS_min_batch);
      o.max_batch = absl::GetFlag(FLAGS_max_batch);
    }
    auto result = surge::trainer::RunPlain(o, *train, *eval, reporter.get(), &g_stop);
    if (!result.ok()) return Fail(result.status());
    std::printf("%s: %lld steps, final eval loss %.4f%s\n", o.run_name.c_str(),
                static_cast<long long>(result->steps), result->final_eval_loss,
                result->interrupted ? " (interrupted)" : "");
    rc = result->interrupted ? 130 : 0;
  }
  if (reporter != nullptr) {
    absl::Status s = reporter->Flush(absl::Seconds(60));
    auto st = reporter->stats();
    std::printf("streamed to %s job %s: %lld records acked (%lld new, %lld re-sent duplicates, "
                "%lld reconnects)\n",
                server.c_str(), reporter->job().c_str(), static_cast<long long>(st.acked_records),
                static_cast<long long>(st.stored_records),
                static_cast<long long>(st.duplicate_records), static_cast<long long>(st.reconnects));
    if (!s.ok()) {
      std::fprintf(stderr, "surge-train: not everything was acked: %s\n", s.ToString().c_str());
      if (rc == 0) rc = 1;
    }
  }
  return rc;
}
