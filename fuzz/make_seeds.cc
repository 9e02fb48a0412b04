// make_fuzz_seeds OUT_DIR: writes the seed corpus of the two binary-input
// targets from valid data (scripts/fuzz.sh --seeds copies it into
// fuzz/corpus/; the CSV and JSON API seeds are text, made by the script):
//   OUT_DIR/fuzz_validation/*  a valid message of each kind validation.h checks
//   OUT_DIR/fuzz_fit_job/*     synthetic jobs with a known surge law
//                              (tests/server/fit/synthetic*.h), cut to the caps
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <sys/stat.h>

#include "fuzz/fit_input.h"
#include "fuzz/validation_input.h"
#include "tests/server/fit/synthetic.h"
#include "tests/server/fit/synthetic_runs.h"

namespace {

using surge::fuzz::FitInput;
using surge::fuzz::ValidationKind;

std::string out_dir;
int written = 0;

void Write(const std::string& target, const std::string& name, const std::string& bytes) {
  const std::string dir = out_dir + "/" + target;
  mkdir(dir.c_str(), 0755);
  std::ofstream(dir + "/" + name, std::ios::binary) << bytes;
  ++written;
}

void WriteMessage(const std::string& name, ValidationKind kind,
                  const google::protobuf::Message& m) {
  Write("fuzz_validation", name, std::string(1, static_cast<char>(kind)) + m.SerializeAsString());
}

void ValidationSeeds() {
  surge::v1::IngestRequest batch;
  batch.set_job("my-sweep");
  batch.set_seq(1);
  for (int step = 0; step < 4; ++step) {
    surge::v1::Record* r = batch.add_records();
    r->set_run(step < 2 ? "bs64" : "bs128");
    r->set_step(step * 10);
    r->set_examples(step * 640);
    r->set_lr(1e-3);
    r->set_loss(2.3 - 0.1 * step);
    if (step == 1) r->set_eval_loss(2.25);
    if (step == 3) {
      auto* g = r->mutable_grad_stats();
      g->set_grad_sq_small(4.0);
      g->set_grad_sq_big(2.5);
      g->set_b_small(16);
      g->set_b_big(128);
    }
  }
  WriteMessage("ingest_batch", ValidationKind::kIngestBatch, batch);

  surge::v1::Run plain;
  plain.set_name("bs64-lr1e-3");
  plain.set_batch_size(64);
  plain.set_base_lr(1e-3);
  plain.set_protocol(surge::v1::PROTOCOL_PLAIN);
  plain.mutable_optimizer()->set_name("adam");
  plain.mutable_optimizer()->set_beta1(0.9);
  plain.mutable_optimizer()->set_beta2(0.999);
  plain.mutable_optimizer()->set_eps(1e-8);
  (*plain.mutable_labels())["model"] = "lenet5";
  WriteMessage("run_plain", ValidationKind::kRun, plain);
  surge::v1::Run probe;
  probe.set_name("probe-s2-b32-lr3e-3-s0");
  probe.set_batch_size(32);
  probe.set_base_lr(3e-3);
  probe.set_protocol(surge::v1::PROTOCOL_PROBE);
  probe.mutable_parent()->set_checkpoint_step(2000);
  probe.mutable_parent()->set_loss(0.62);
  probe.mutable_parent()->set_base_run("base");
  WriteMessage("run_probe", ValidationKind::kRun, probe);
  surge::v1::Run full;
  full.set_name("full-b256");
  full.set_batch_size(256);
  full.set_base_lr(3e-3);
  full.set_protocol(surge::v1::PROTOCOL_FULL_RUN);
  full.set_target_loss(0.6);
  WriteMessage("run_full", ValidationKind::kRun, full);

  surge::v1::Job job;
  job.set_name("fmnist");
  job.set_batch_unit(surge::v1::BATCH_UNIT_EXAMPLES);
  job.set_description("Fashion-MNIST LeNet-5 sweep");
  job.add_target_losses(0.8);
  job.add_target_losses(0.6);
  job.set_k_steps(10);
  WriteMessage("job", ValidationKind::kJob, job);

  surge::v1::AddOptimaRequest optima;
  optima.set_job("imported");
  for (double b : {16.0, 64.0, 256.0}) {
    auto* o = optima.add_optima();
    o->set_stage(1);
    o->set_stage_loss(2.0);
    o->set_batch_size(b);
    o->set_lr_opt(1e-3 / std::cosh(0.5 * std::log(b / 64.0)));
    o->set_lr_opt_se(5e-5);
  }
  WriteMessage("optima", ValidationKind::kOptima, optima);

  surge::v1::GetAdviceRequest advice;
  advice.set_job("fmnist");
  advice.set_batch_size(1024);
  advice.set_step(12000);
  advice.set_criterion(surge::v1::CRITERION_FASTEST);
  WriteMessage("advice_step", ValidationKind::kAdvice, advice);
  advice.clear_step();
  advice.mutable_reference()->set_batch_size(256);
  advice.mutable_reference()->set_lr(3e-4);
  advice.mutable_reference()->set_step(500);
  WriteMessage("advice_reference", ValidationKind::kAdvice, advice);

  surge::v1::GetFitRequest fit;
  fit.set_job("fmnist");
  fit.add_target_losses(0.8);
  fit.set_k_steps(10);
  WriteMessage("fit", ValidationKind::kFit, fit);
}

void FitSeeds() {
  namespace synth = surge::fit::synth;
  std::mt19937_64 rng(11);
  {  // Measured optima of one stage (12 batch sizes), a loss curve, speed points, advice at a step.
    FitInput in;
    surge::fit::JobInput good = synth::GoodJob(rng);
    in.job.measured_optima = good.measured_optima;
    for (size_t i = 0; i < good.loss_curve.size(); i += good.loss_curve.size() / 32) {
      in.job.loss_curve.push_back(good.loss_curve[i]);
    }
    for (double b : {32.0, 128.0, 512.0, 2048.0}) {
      in.job.speed_points.push_back({2.0, b, 800.0 * (1.0 + 400.0 / b)});
    }
    in.advice.batch_size = 256;
    in.advice.step = 6400;
    Write("fuzz_fit_job", "measured_optima", surge::fuzz::EncodeFitInput(in));
  }
  {  // Raw probes: 4 batch sizes x 8 LRs x 2 seeds of one stage; a reference transfer.
    FitInput in;
    const std::vector<double> lrs = synth::LrGrid(1e-4, 2.0, 8);
    for (double b : {16.0, 64.0, 256.0, 1024.0}) {
      const double height = 0.5 / (1.0 + 128.0 / b);
      std::vector<surge::fit::ProbePoint> g = synth::ProbeGrid(
          2, 0.8, b, synth::SurgeLnLr(2e-3, 128.0, b), lrs, 2, height, 1.0, 0.01 * height, rng);
      in.job.probe_points.insert(in.job.probe_points.end(), g.begin(), g.end());
    }
    in.advice.batch_size = 512;
    in.advice.reference = surge::fit::LrReference{64.0, 1e-3, std::nullopt, std::nullopt};
    Write("fuzz_fit_job", "probes", surge::fuzz::EncodeFitInput(in));
  }
  // Plain runs: 3 batch sizes x 3 LRs, 1 seed, every 40th step of 1500
  // (training loss only, and eval loss), both criteria.
  for (bool eval : {false, true}) {
    synth::SweepSpec spec;
    spec.batches = {16, 64, 256};
    spec.seeds = 1;
    spec.report = eval ? synth::LossReport::kEval : synth::LossReport::kTrainingOnly;
    const std::vector<double> grid = synth::DefaultLrs(spec);
    spec.lrs = {grid[2], grid[3], grid[4]};
    FitInput in;
    for (const surge::fit::RunSeries& full : synth::PlainRunSweep(spec, 5)) {
      surge::fit::RunSeries run = full;
      run.steps.clear(), run.examples.clear(), run.lr.clear(), run.loss.clear();
      run.eval_loss.clear();
      for (size_t j = 39; j < full.steps.size(); j += eval ? 60 : 40) {
        run.steps.push_back(full.steps[j]);
        run.examples.push_back(full.examples[j]);
        run.lr.push_back(full.lr[j]);
        run.loss.push_back(full.loss[j]);
        run.eval_loss.push_back(full.eval_loss[j]);
      }
      in.job.runs.push_back(std::move(run));
    }
    in.advice.batch_size = 128;
    if (eval) in.advice.criterion = surge::fit::Criterion::kFastest;
    Write("fuzz_fit_job", eval ? "plain_runs_eval" : "plain_runs", surge::fuzz::EncodeFitInput(in));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_fuzz_seeds OUT_DIR\n");
    return 2;
  }
  out_dir = argv[1];
  mkdir(out_dir.c_str(), 0755);
  ValidationSeeds();
  FitSeeds();
  std::printf("make_fuzz_seeds: %d files in %s\n", written, out_dir.c_str());
  return 0;
}
