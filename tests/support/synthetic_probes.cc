// Implementation of the synthetic probe sweep loader.
#include "tests/support/synthetic_probes.h"

#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/core/ingest_stream.h"
#include "server/util/status_macros.h"

namespace surge::testing {

double SyntheticLoss(int64_t step) {
  return 0.3 + 2.0 * std::pow(1.0 + static_cast<double>(step) / 200.0, -0.6);
}

absl::StatusOr<int> LoadSyntheticSweep(core::SurgeCore& core, const std::string& job,
                                       const SweepSpec& spec) {
  std::mt19937 rng(spec.seed);
  std::normal_distribution<double> gauss(0.0, 1.0);
  surge::v1::CreateJobRequest create;
  create.mutable_job()->set_name(job);
  create.mutable_job()->set_batch_unit(surge::v1::BATCH_UNIT_EXAMPLES);
  SURGE_RETURN_IF_ERROR(core.CreateJob(create).status());

  surge::v1::CreateRunRequest base;
  base.set_job(job);
  base.mutable_run()->set_name("base");
  base.mutable_run()->set_batch_size(32);
  base.mutable_run()->set_protocol(surge::v1::PROTOCOL_PLAIN);
  SURGE_RETURN_IF_ERROR(core.CreateRun(base).status());

  auto stream = core.OpenIngestStream();
  uint64_t seq = 0;
  auto request = std::make_unique<surge::v1::IngestRequest>();
  auto flush = [&]() -> absl::Status {
    if (request->records_size() == 0) return absl::OkStatus();
    request->set_job(job);
    request->set_seq(++seq);
    SURGE_RETURN_IF_ERROR(stream->Accept(std::move(request)));
    request = std::make_unique<surge::v1::IngestRequest>();
    return absl::OkStatus();
  };
  for (int64_t t = 0; t < spec.base_steps; ++t) {
    surge::v1::Record* r = request->add_records();
    r->set_run("base");
    r->set_step(t);
    r->set_examples(32 * (t + 1));
    r->set_lr(1e-3);
    r->set_loss(SyntheticLoss(t) * (1 + 0.02 * gauss(rng)));
    if (request->records_size() == 1000) SURGE_RETURN_IF_ERROR(flush());
  }
  SURGE_RETURN_IF_ERROR(flush());

  int runs = 0;
  for (const SyntheticStage& stage : spec.stages) {
    double l0 = SyntheticLoss(stage.step);
    for (int64_t b : spec.batch_sizes) {
      double eps_opt = stage.eps_max / std::cosh(std::log(b / stage.b_noise) / 2);
      double dl_opt = 0.05 * l0 / (1 + stage.b_noise / static_cast<double>(b));
      for (int i = 0; i < spec.lrs; ++i) {
        double lr = std::pow(10.0, -5 + 0.25 * i);
        double z = std::log(lr / eps_opt);
        for (int s = 0; s < spec.seeds; ++s) {
          double noise = 0.08 * dl_opt * gauss(rng) * std::sqrt(8.0 / b + 0.1);
          double improvement = dl_opt * (1 - 0.35 * z * z) + noise;
          surge::v1::CreateRunRequest probe;
          probe.set_job(job);
          surge::v1::Run* run = probe.mutable_run();
          run->set_name(absl::StrFormat("p%d-b%d-l%d-s%d", stage.step, b, i, s));
          run->set_batch_size(b);
          run->set_base_lr(lr);
          run->set_protocol(surge::v1::PROTOCOL_PROBE);
          run->mutable_parent()->set_checkpoint_step(stage.step);
          run->mutable_parent()->set_loss(l0);
          run->mutable_parent()->set_base_run("base");
          (*run->mutable_labels())["seed"] = absl::StrCat(s);
          SURGE_RETURN_IF_ERROR(core.CreateRun(probe).status());
          surge::v1::Record* r = request->add_records();
          r->set_run(run->name());
          r->set_step(10);
          r->set_examples(10 * b);
          r->set_lr(lr);
          r->set_loss(l0 - improvement);
          r->set_eval_loss(l0 - improvement);
          if (request->records_size() == 1000) SURGE_RETURN_IF_ERROR(flush());
          ++runs;
        }
      }
    }
  }
  SURGE_RETURN_IF_ERROR(flush());
  stream->Close();
  SURGE_RETURN_IF_ERROR(stream->commit_status());
  return runs;
}

}  // namespace surge::testing
