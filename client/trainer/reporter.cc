// Reporter: job/run declaration, record streaming, and the resume read.
#include "client/trainer/reporter.h"

#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"

namespace surge::trainer {
namespace {

// The server rejects non-finite losses; a diverged step reports this value
// instead (chance level is ln 10 = 2.3, so it reads as "much worse").
constexpr double kDivergedLoss = 100.0;

double Finite(double x) { return std::isfinite(x) ? std::min(x, kDivergedLoss) : kDivergedLoss; }

}  // namespace

Reporter::Reporter(std::unique_ptr<surge::client::SurgeClient> client, std::string job)
    : client_(std::move(client)), job_(std::move(job)) {
  surge::client::IngestOptions options;
  options.linger = absl::Milliseconds(50);
  session_ = std::make_unique<surge::client::IngestSession>(client_->channel(), job_, options);
}

Reporter::~Reporter() = default;

absl::StatusOr<std::unique_ptr<Reporter>> Reporter::Connect(const std::string& server,
                                                            const std::string& job,
                                                            const std::string& description) {
  // Token and TLS from SURGE_TOKEN / SURGE_TLS_* (a server with tokens).
  surge::client::ClientOptions options = surge::client::ClientOptionsFromEnv();
  options.target = server;
  options.call_timeout = absl::Seconds(20);
  auto client = std::make_unique<surge::client::SurgeClient>(options);
  surge::v1::Job j;
  j.set_name(job);
  j.set_batch_unit(surge::v1::BATCH_UNIT_EXAMPLES);
  j.set_description(description);
  auto created = client->CreateJob(j);
  if (!created.ok() && created.status().code() != absl::StatusCode::kAlreadyExists) {
    return absl::Status(created.status().code(),
                        absl::StrCat("creating job '", job, "' on ", server, ": ",
                                     created.status().message()));
  }
  return std::unique_ptr<Reporter>(new Reporter(std::move(client), job));
}

absl::Status Reporter::DeclareRun(const surge::v1::Run& run) {
  auto r = client_->CreateRun(job_, run);
  if (!r.ok()) {
    return absl::Status(r.status().code(),
                        absl::StrCat("creating run '", run.name(), "': ", r.status().message()));
  }
  return absl::OkStatus();
}

void Reporter::Append(surge::v1::Record record) {
  absl::Status s = session_->Append(std::move(record), absl::Seconds(1));
  if (!s.ok() && !warned_.exchange(true)) {
    std::fprintf(stderr, "surge-train: streaming to job '%s' failed (%s); training goes on\n",
                 job_.c_str(), s.ToString().c_str());
  }
}

absl::Status Reporter::Flush(absl::Duration timeout) { return session_->Flush(timeout); }

absl::StatusOr<std::map<std::string, StoredRun>> Reporter::StoredRuns() {
  std::map<std::string, StoredRun> out;
  auto runs = client_->ListRuns(job_);
  if (!runs.ok()) return runs.status();
  for (const auto& r : runs->runs()) out[r.name()].record_count = r.record_count();
  absl::Status s = client_->ForEachRecordPage(
      job_, "", 100000, [&](const surge::v1::ListRecordsResponse& page) {
        for (const auto& rec : page.records()) {
          auto& stored = out[rec.run()];
          if (!stored.last || rec.step() >= stored.last->step()) stored.last = rec;
        }
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  return out;
}

surge::v1::Optimizer ToOptimizer(const AdamConfig& adam) {
  surge::v1::Optimizer o;
  o.set_name(adam.weight_decay > 0 ? "adamw" : "adam");
  o.set_beta1(adam.beta1);
  o.set_beta2(adam.beta2);
  o.set_eps(adam.eps);
  o.set_weight_decay(adam.weight_decay);
  return o;
}

surge::v1::Record MakeRecord(const std::string& run, int64_t step, int64_t examples, double lr,
                             const StepStats& stats, std::optional<double> eval_loss) {
  surge::v1::Record r;
  r.set_run(run);
  r.set_step(step);
  r.set_examples(examples);
  r.set_lr(lr);
  r.set_loss(Finite(stats.loss));
  if (eval_loss) r.set_eval_loss(Finite(*eval_loss));
  if (stats.has_grad_stats && std::isfinite(stats.grad_sq_small) &&
      std::isfinite(stats.grad_sq_big)) {
    auto* g = r.mutable_grad_stats();
    g->set_grad_sq_small(stats.grad_sq_small);
    g->set_grad_sq_big(stats.grad_sq_big);
    g->set_b_small(stats.b_small);
    g->set_b_big(stats.b_big);
  }
  return r;
}

}  // namespace surge::trainer
