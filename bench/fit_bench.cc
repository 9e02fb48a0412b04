// Benchmarks of server/fit (Google Benchmark):
//   BM_StageFit  one stage from raw probe points (12 batch sizes x 16 LRs x
//                8 seeds): optimum extraction, surge fit, comparison models.
//   BM_FitJob    a 2-stage job from raw probes, with loss curve, B_simple and
//                speed/data inputs.
//   BM_Advise    one in-process Advise() call on a fitted 2-stage job.
//   BM_PlainJobFit        the whole fit of a job of 200 plain runs x 5,000
//                         records (1M records) as the server does it: a real
//                         SQLite file, core::LoadEvidence + fit::FitJob.
//   BM_PlainJobEvidence   LoadEvidence alone (SQLite read) of that job.
//   BM_PlainJobFitOnly    FitJob alone on the evidence read once.
//   Argument 0: eval loss on every 10th record (signal: eval loss);
//            1: training loss only (signal: smoothed training loss).
// Targets: a stage fit <= 5 ms, Advise p99 <= 1 ms, the plain-run job fit
// (SQLite read + fit) <= 1 s.
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "server/core/evidence.h"
#include "server/fit/advise.h"
#include "server/fit/fit_job.h"
#include "server/store/sqlite_store.h"
#include "tests/server/fit/synthetic_runs.h"

namespace surge::fit {
namespace {

// Probe grid of one stage from a surge law (eps_max, B_noise): per (B, lr, seed)
//   dL = h(B) exp(-(ln lr - ln eps_opt(B))^2 / 2) + noise.
std::vector<ProbePoint> StageProbes(int64_t stage, double loss, double eps_max,
                                    double b_noise, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> n01(0.0, 1.0);
  std::vector<ProbePoint> out;
  for (int e = 3; e <= 14; ++e) {
    const double b = std::ldexp(1.0, e);
    const double x_opt = std::log(eps_max) - std::log(std::cosh(0.5 * std::log(b / b_noise)));
    const double h = 0.5 / (1.0 + b_noise / b);
    const double sd = 0.02 * h * std::sqrt(64.0 / b) + 0.002 * h;
    for (int j = 0; j < 16; ++j) {
      const double lr = 3e-5 * std::pow(std::sqrt(2.0), j);
      const double d = std::log(lr) - x_opt;
      for (int s = 0; s < 8; ++s) {
        out.push_back({stage, loss, b, lr, s, h * std::exp(-0.5 * d * d) + sd * n01(rng)});
      }
    }
  }
  return out;
}

JobInput TwoStageJob() {
  JobInput in;
  in.probe_points = StageProbes(1, 2.0, 1e-3, 200.0, 1);
  const auto s2 = StageProbes(2, 1.5, 1.2e-3, 450.0, 2);
  in.probe_points.insert(in.probe_points.end(), s2.begin(), s2.end());
  for (int run = 0; run < 4; ++run) {
    for (int64_t t = 0; t <= 20000; t += 20) {
      in.loss_curve.push_back({t, 1.2 + 5.0 / std::sqrt(1.0 + t) + 0.01 * run});
    }
  }
  for (int64_t t = 0; t < 2000; ++t) {
    in.grad_stats.push_back({"plain-256", t, 2.0 + 400.0 / 32, 2.0 + 400.0 / 256, 32, 256});
  }
  for (double b : {32.0, 64.0, 128.0, 256.0, 512.0, 1024.0}) {
    in.speed_points.push_back({1.5, b, 1000.0 + 256000.0 / b});
  }
  return in;
}

void BM_StageFit(benchmark::State& state) {
  const std::vector<ProbePoint> probes = StageProbes(1, 2.0, 1e-3, 400.0, 7);
  for (auto _ : state) {
    absl::StatusOr<StageFit> st = FitStage(1, 2.0, probes, {});
    if (!st.ok()) state.SkipWithError(std::string(st.status().message()).c_str());
    benchmark::DoNotOptimize(st);
  }
}
BENCHMARK(BM_StageFit)->Unit(benchmark::kMillisecond);

void BM_FitJob(benchmark::State& state) {
  const JobInput in = TwoStageJob();
  for (auto _ : state) {
    absl::StatusOr<JobFit> job = FitJob(in);
    if (!job.ok()) state.SkipWithError(std::string(job.status().message()).c_str());
    benchmark::DoNotOptimize(job);
  }
}
BENCHMARK(BM_FitJob)->Unit(benchmark::kMillisecond);

void BM_Advise(benchmark::State& state) {
  const absl::StatusOr<JobFit> job = FitJob(TwoStageJob());
  if (!job.ok()) {
    state.SkipWithError(std::string(job.status().message()).c_str());
    return;
  }
  double b = 16.0;
  int64_t step = 0;
  for (auto _ : state) {
    absl::StatusOr<Advice> adv = Advise(*job, b, step);
    benchmark::DoNotOptimize(adv);
    b = b < 8192.0 ? b * 1.37 : 16.0;
    step = (step + 997) % 40000;
  }
}
BENCHMARK(BM_Advise)->Unit(benchmark::kMicrosecond);

// Advice on a stage whose optima follow no law (they rise, flatten and
// wiggle): the smooth curve carries weight and is evaluated per call.
// Arg 1: the smooth curve on; Arg 0: off (the five laws only).
void BM_AdviseWiggle(benchmark::State& state) {
  JobInput in;
  std::mt19937_64 rng(3);
  std::normal_distribution<double> noise(0.0, 0.05);
  for (int e = 0; e <= 13; ++e) {
    const double x = e * std::log(2.0);
    MeasuredOptimum m;
    m.stage_id = 1;
    m.stage_loss = 1.0;
    m.batch_size = std::ldexp(1.0, e);
    m.lr_opt = std::exp(-8.0 + 0.35 * x - 0.02 * x * x + 0.25 * std::sin(1.3 * x) + noise(rng));
    m.lr_opt_se = 0.05 * m.lr_opt;
    in.measured_optima.push_back(m);
  }
  FitOptions options;
  options.models.smooth_curve = state.range(0) != 0;
  const absl::StatusOr<JobFit> job = FitJob(in, options);
  if (!job.ok()) {
    state.SkipWithError(std::string(job.status().message()).c_str());
    return;
  }
  state.counters["smooth_weight"] = job->stages[0].models.smooth_weight;
  double b = 1.5;
  for (auto _ : state) {
    absl::StatusOr<Advice> adv = Advise(*job, b, std::nullopt);
    benchmark::DoNotOptimize(adv);
    b = b < 8000.0 ? b * 1.37 : 1.5;
  }
}
BENCHMARK(BM_AdviseWiggle)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

// ---------------------------------------------------------------------------
// A job of plain runs in a real SQLite file.
//
// Grid: 8 batch sizes (4 .. 512) x 5 LRs (half a decade apart, around the
// optimum) x 5 seeds = 200 plain runs, each recording steps 1..5000 (1M
// records per job). Loss curves follow tests/server/fit/synthetic_runs.h:
// the steps to a loss L grow with (1 + B_noise / B) and with the distance of
// ln lr from the surge-law optimum, so runs at different (B, lr) reach the
// targets at different steps and both criteria have real stages.
// Two jobs in the same file: "eval10" (eval loss on every 10th record) and
// "train" (training loss only, with spikes). Built once, outside the timed
// loops; a separate reader connection reads, as the server's reader pool.
constexpr int kPlainRunSteps = 5000;

synth::SweepSpec PlainJobSpec(bool training_only) {
  synth::SweepSpec spec;
  spec.batches = {4, 8, 16, 32, 64, 128, 256, 512};
  const std::vector<double> lrs7 = synth::DefaultLrs(spec);
  spec.lrs.assign(lrs7.begin() + 1, lrs7.end() - 1);  // 5 LRs
  spec.seeds = 5;
  spec.steps = kPlainRunSteps;
  spec.report = training_only ? synth::LossReport::kTrainingOnly : synth::LossReport::kEval;
  spec.eval_every = 10;
  return spec;
}

const char* PlainJobName(int64_t arg) { return arg == 0 ? "eval10" : "train"; }

class PlainJobDb {
 public:
  static PlainJobDb& Get() {
    static PlainJobDb* db = new PlainJobDb();  // removed at exit
    return *db;
  }
  const absl::Status& status() const { return status_; }
  store::Store& reader() { return *reader_; }

 private:
  PlainJobDb() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "fit_bench.XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      status_ = absl::InternalError("mkdtemp failed");
      return;
    }
    dir_ = tmpl;
    std::atexit([] { std::filesystem::remove_all(Get().dir_); });
    status_ = Build(dir_ + "/surge.db");
  }

  absl::Status Build(const std::string& path) {
    absl::StatusOr<std::unique_ptr<store::SqliteStore>> writer = store::SqliteStore::Open(path);
    if (!writer.ok()) return writer.status();
    store::Store& w = **writer;
    for (int64_t arg : {0, 1}) {
      surge::v1::Job job;
      job.set_name(PlainJobName(arg));
      job.set_batch_unit(surge::v1::BATCH_UNIT_EXAMPLES);
      if (absl::Status s = w.CreateJob(job, 0).status(); !s.ok()) return s;
      const std::vector<RunSeries> runs = synth::PlainRunSweep(PlainJobSpec(arg == 1), 7);
      for (const RunSeries& r : runs) {
        surge::v1::Run run;
        run.set_name(r.name);
        run.set_batch_size(static_cast<int64_t>(r.batch_size));
        run.set_protocol(surge::v1::PROTOCOL_PLAIN);
        (*run.mutable_labels())["seed"] = absl::StrCat(r.seed);
        if (absl::Status s = w.CreateRun(job.name(), run, 0).status(); !s.ok()) return s;
        absl::StatusOr<store::RunKey> key = w.LookupRun(job.name(), r.name);
        if (!key.ok()) return key.status();
        // One write group per run (the server's ingest path).
        surge::v1::IngestRequest batch;
        batch.set_job(job.name());
        for (size_t i = 0; i < r.steps.size(); ++i) {
          surge::v1::Record* rec = batch.add_records();
          rec->set_run(r.name);
          rec->set_step(r.steps[i]);
          rec->set_examples(static_cast<int64_t>(r.examples[i]));
          rec->set_lr(r.lr[i]);
          rec->set_loss(r.loss[i]);
          if (std::isfinite(r.eval_loss[i])) rec->set_eval_loss(r.eval_loss[i]);
        }
        const std::vector<int64_t> run_ids(r.steps.size(), key->run_id);
        const store::RecordBatch group[] = {{&batch, &run_ids}};
        store::GroupResult written = w.WriteGroup(group, 0, nullptr);
        if (!written.commit.ok()) return written.commit;
        if (!written.batches[0].ok()) return written.batches[0].status();
      }
    }
    store::StoreOptions ro;
    ro.migrate = false;
    absl::StatusOr<std::unique_ptr<store::SqliteStore>> reader = store::SqliteStore::Open(path, ro);
    if (!reader.ok()) return reader.status();
    reader_ = *std::move(reader);
    return absl::OkStatus();
  }

  std::string dir_;
  absl::Status status_;
  std::unique_ptr<store::SqliteStore> reader_;
};

// Empty when the fit is a real one: ok, every record read, stages in both
// criteria.
std::string CheckPlainJobFit(const core::Evidence& ev, const absl::StatusOr<JobFit>& job) {
  if (!job.ok()) return std::string(job.status().message());
  size_t records = 0;
  for (const RunSeries& r : ev.input.runs) records += r.steps.size();
  if (ev.input.runs.size() != 200 || records != 200u * kPlainRunSteps) {
    return absl::StrCat("evidence holds ", ev.input.runs.size(), " runs, ", records, " records");
  }
  if (job->stages.empty() || job->fastest.stages.empty()) {
    return absl::StrCat("stages: improvement ", job->stages.size(), ", fastest ",
                        job->fastest.stages.size());
  }
  return "";
}

void BM_PlainJobFit(benchmark::State& state) {
  PlainJobDb& db = PlainJobDb::Get();
  if (!db.status().ok()) {
    state.SkipWithError(std::string(db.status().message()).c_str());
    return;
  }
  const std::string name = PlainJobName(state.range(0));
  size_t stages = 0, fastest = 0;
  for (auto _ : state) {
    absl::StatusOr<core::Evidence> ev = core::LoadEvidence(db.reader(), name);
    if (!ev.ok()) {
      state.SkipWithError(std::string(ev.status().message()).c_str());
      break;
    }
    absl::StatusOr<JobFit> job = FitJob(ev->input);
    if (std::string err = CheckPlainJobFit(*ev, job); !err.empty()) {
      state.SkipWithError(err.c_str());
      break;
    }
    stages = job->stages.size();
    fastest = job->fastest.stages.size();
    benchmark::DoNotOptimize(job);
  }
  state.counters["stages"] = static_cast<double>(stages);
  state.counters["fastest"] = static_cast<double>(fastest);
  state.SetItemsProcessed(state.iterations() * 200 * kPlainRunSteps);
}
BENCHMARK(BM_PlainJobFit)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime()
    ->Repetitions(5);

void BM_PlainJobEvidence(benchmark::State& state) {
  PlainJobDb& db = PlainJobDb::Get();
  if (!db.status().ok()) {
    state.SkipWithError(std::string(db.status().message()).c_str());
    return;
  }
  const std::string name = PlainJobName(state.range(0));
  for (auto _ : state) {
    absl::StatusOr<core::Evidence> ev = core::LoadEvidence(db.reader(), name);
    if (!ev.ok()) {
      state.SkipWithError(std::string(ev.status().message()).c_str());
      break;
    }
    benchmark::DoNotOptimize(ev);
  }
  state.SetItemsProcessed(state.iterations() * 200 * kPlainRunSteps);
}
BENCHMARK(BM_PlainJobEvidence)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_PlainJobFitOnly(benchmark::State& state) {
  PlainJobDb& db = PlainJobDb::Get();
  if (!db.status().ok()) {
    state.SkipWithError(std::string(db.status().message()).c_str());
    return;
  }
  const absl::StatusOr<core::Evidence> ev =
      core::LoadEvidence(db.reader(), PlainJobName(state.range(0)));
  if (!ev.ok()) {
    state.SkipWithError(std::string(ev.status().message()).c_str());
    return;
  }
  if (std::string err = CheckPlainJobFit(*ev, FitJob(ev->input)); !err.empty()) {
    state.SkipWithError(err.c_str());
    return;
  }
  for (auto _ : state) {
    absl::StatusOr<JobFit> job = FitJob(ev->input);
    if (!job.ok()) {
      state.SkipWithError(std::string(job.status().message()).c_str());
      break;
    }
    benchmark::DoNotOptimize(job);
  }
  state.SetItemsProcessed(state.iterations() * 200 * kPlainRunSteps);
}
BENCHMARK(BM_PlainJobFitOnly)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace surge::fit

BENCHMARK_MAIN();
