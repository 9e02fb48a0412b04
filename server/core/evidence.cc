// Implementation of LoadEvidence: probe runs -> probe points, the base plain
// run -> loss curve and gradient statistics, measured optima as they are.
#include "server/core/evidence.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/util/status_macros.h"

namespace surge::core {
namespace {

// Loss-curve points read per fit, at most (about).
constexpr int64_t kMaxCurvePoints = 20000;

// The plain run whose records give the loss curve: the base run most probes
// name, else the plain run with the most records.
const surge::v1::Run* ChooseLossCurveRun(
    const std::vector<std::pair<int64_t, surge::v1::Run>>& runs, int64_t* run_id) {
  absl::flat_hash_map<std::string, int> named;
  for (const auto& [id, run] : runs) {
    if (run.protocol() == surge::v1::PROTOCOL_PROBE && !run.parent().base_run().empty()) {
      ++named[run.parent().base_run()];
    }
  }
  const surge::v1::Run* best = nullptr;
  int best_votes = -1;
  for (const auto& [id, run] : runs) {
    if (run.protocol() != surge::v1::PROTOCOL_PLAIN || run.record_count() == 0) continue;
    auto it = named.find(run.name());
    int votes = it == named.end() ? 0 : it->second;
    if (best == nullptr || votes > best_votes ||
        (votes == best_votes && run.record_count() > best->record_count())) {
      best = &run;
      best_votes = votes;
      *run_id = id;
    }
  }
  return best;
}

int64_t Seed(const surge::v1::Run& run) {
  int64_t seed = 0;
  auto it = run.labels().find("seed");
  if (it != run.labels().end()) (void)absl::SimpleAtoi(it->second, &seed);
  return seed;
}

// Full runs (PROTOCOL_FULL_RUN with a target loss L*): S = the first record
// whose eval loss is <= L* (E = its examples), the improvement is
// eval_loss(S) - eval_loss(last record), the k steps after S. Each reached
// run is a probe point of the stage "L*" (stage id = round(L* x 10^6)), and
// every run a steps point of that stage for the fastest criterion (censored
// at its last step when it never reached L*); the fastest LR's steps per
// batch size then feed S(B) = S_min + E_min / B.
// Why a stored run cannot be evidence (a field the fit reads is out of
// range), or nullopt.
std::optional<std::string> BrokenRunReason(const surge::v1::Run& run) {
  auto bad = [](const char* field, double v) {
    return absl::StrCat(field, " = ", v, " is not finite and > 0");
  };
  if (run.batch_size() <= 0) return bad("batch_size", static_cast<double>(run.batch_size()));
  if (!std::isfinite(run.base_lr()) || run.base_lr() < 0) {
    return absl::StrCat("base_lr = ", run.base_lr(), " is not finite and >= 0");
  }
  if (run.protocol() == surge::v1::PROTOCOL_PROBE &&
      (!std::isfinite(run.parent().loss()) || run.parent().loss() <= 0)) {
    return bad("parent.loss", run.parent().loss());
  }
  if (run.protocol() == surge::v1::PROTOCOL_PROBE && run.parent().checkpoint_step() < 0) {
    return absl::StrCat("parent.checkpoint_step = ", run.parent().checkpoint_step(), " is < 0");
  }
  if (run.has_target_loss() && (!std::isfinite(run.target_loss()) || run.target_loss() <= 0)) {
    return bad("target_loss", run.target_loss());
  }
  return std::nullopt;
}

absl::Status AddFullRuns(store::Store& reader,
                         const std::vector<std::pair<int64_t, surge::v1::Run>>& runs,
                         Evidence& ev) {
  int not_reached = 0;
  for (const auto& [id, run] : runs) {
    if (run.protocol() != surge::v1::PROTOCOL_FULL_RUN || !run.has_target_loss()) continue;
    if (run.record_count() == 0) continue;
    SURGE_ASSIGN_OR_RETURN(store::RunColumns r, reader.ReadRunColumns(id));
    if (r.steps.empty()) continue;
    const double target = run.target_loss();
    size_t hit = 0;  // the first record whose eval loss is <= L* (eval_loss NaN: absent)
    while (hit < r.steps.size() && !(r.eval_loss[hit] <= target)) ++hit;
    const bool reached = hit < r.steps.size();
    const size_t last = r.steps.size() - 1;
    const size_t at = reached ? hit : last;
    fit::StepsPoint sp;
    sp.stage_id = fit::TargetStageId(target);
    sp.stage_loss = target;
    sp.batch_size = static_cast<double>(run.batch_size());
    sp.lr = run.base_lr() > 0 ? run.base_lr() : r.lr[last];
    sp.seed = Seed(run);
    sp.kind = fit::kFullRuns;
    sp.reached = reached;
    sp.steps = static_cast<double>(r.steps[at]);
    sp.examples = r.examples[at];
    if (sp.lr > 0 && (sp.steps > 0 || !sp.reached)) ev.input.steps_points.push_back(sp);
    fit::ProbePoint p;
    p.stage_id = sp.stage_id;
    p.stage_loss = target;
    p.batch_size = sp.batch_size;
    p.seed = sp.seed;
    p.kind = fit::kFullRuns;
    if (!reached) {
      // Never reached L* (the search ended first): censored, not dropped, as
      // a plain run that never reaches L* (run_evidence.h): its LR is a grid
      // point the improvement optimum cannot be beyond (ExtractOptimum).
      p.lr = sp.lr;
      p.reached = false;
      if (p.lr > 0) ev.input.probe_points.push_back(p);
      continue;
    }
    if (r.steps[last] <= r.steps[hit] || !std::isfinite(r.eval_loss[last])) {
      ++not_reached;
      continue;
    }
    p.lr = run.base_lr() > 0 ? run.base_lr() : r.lr[hit];
    p.improvement = r.eval_loss[hit] - r.eval_loss[last];
    ev.input.probe_points.push_back(p);
  }
  if (not_reached > 0) {
    ev.notes.push_back(absl::StrCat(not_reached,
                                    " full runs reached their target loss but have no "
                                    "record k steps later yet (not used)"));
  }
  return absl::OkStatus();
}

// Plain runs: every record, as columns, for the run evidence (fit::RunSeries).
absl::Status AddPlainRuns(store::Store& reader,
                          const std::vector<std::pair<int64_t, surge::v1::Run>>& runs,
                          Evidence& ev) {
  for (const auto& [id, run] : runs) {
    if (run.protocol() != surge::v1::PROTOCOL_PLAIN || run.record_count() == 0) continue;
    SURGE_ASSIGN_OR_RETURN(store::RunColumns cols, reader.ReadRunColumns(id));
    fit::RunSeries series;
    series.name = run.name();
    series.batch_size = static_cast<double>(run.batch_size());
    series.base_lr = run.base_lr();
    series.seed = Seed(run);
    series.steps = std::move(cols.steps);
    series.examples = std::move(cols.examples);
    series.lr = std::move(cols.lr);
    series.loss = std::move(cols.loss);
    series.eval_loss = std::move(cols.eval_loss);
    ev.input.runs.push_back(std::move(series));
  }
  return absl::OkStatus();
}

absl::StatusOr<Evidence> LoadEvidenceInSnapshot(store::Store& reader,
                                                const std::string& job,
                                                const EvidenceOverrides& overrides) {
  Evidence ev;
  SURGE_ASSIGN_OR_RETURN(auto runs, reader.ListRunsWithIds(job));
  // A run stored before its fields were validated as they are now cannot
  // fail the whole job: it is left out and named in the fit's notes.
  runs.erase(std::remove_if(runs.begin(), runs.end(),
                            [&](const std::pair<int64_t, surge::v1::Run>& r) {
                              std::optional<std::string> why = BrokenRunReason(r.second);
                              if (!why) return false;
                              ev.notes.push_back(absl::StrCat(
                                  "run '", r.second.name(), "' left out: ", *why,
                                  "; fix it or delete it (surge run delete --job ", job, " ",
                                  r.second.name(), ")"));
                              return true;
                            }),
             runs.end());
  SURGE_ASSIGN_OR_RETURN(surge::v1::Job job_row, reader.GetJob(job));
  ev.summary.set_records_seen(job_row.record_count());
  fit::RunEvidenceOptions& ro = ev.input.run_options;
  ro.k_steps = overrides.k_steps > 0 ? overrides.k_steps
                                     : (job_row.k_steps() > 0 ? job_row.k_steps() : 10);
  if (!overrides.target_losses.empty()) {
    ro.targets = overrides.target_losses;
  } else {
    ro.targets.assign(job_row.target_losses().begin(), job_row.target_losses().end());
  }

  // Probe runs: improvement = parent loss - loss of the last record.
  int unmeasured = 0;
  for (const auto& [id, run] : runs) {
    if (run.protocol() != surge::v1::PROTOCOL_PROBE) continue;
    SURGE_ASSIGN_OR_RETURN(std::optional<surge::v1::Record> last, reader.LastRecord(id));
    if (!last) {
      ++unmeasured;
      continue;
    }
    fit::ProbePoint p;
    p.stage_id = run.parent().checkpoint_step();
    p.stage_loss = run.parent().loss();
    p.batch_size = static_cast<double>(run.batch_size());
    p.lr = run.base_lr() > 0 ? run.base_lr() : last->lr();
    p.seed = Seed(run);
    double after = last->has_eval_loss() ? last->eval_loss() : last->loss();
    p.improvement = run.parent().loss() - after;
    ev.input.probe_points.push_back(p);
  }
  if (unmeasured > 0) {
    ev.notes.push_back(absl::StrCat(unmeasured, " probe runs have no records yet"));
  }
  SURGE_RETURN_IF_ERROR(AddFullRuns(reader, runs, ev));
  SURGE_RETURN_IF_ERROR(AddPlainRuns(reader, runs, ev));

  // Measured optima.
  SURGE_ASSIGN_OR_RETURN(int64_t job_id, reader.JobId(job));
  SURGE_ASSIGN_OR_RETURN(auto optima, reader.ListOptima(job_id));
  for (const auto& o : optima) {
    fit::MeasuredOptimum m;
    m.stage_id = o.stage();
    m.stage_loss = o.stage_loss();
    m.batch_size = o.batch_size();
    m.lr_opt = o.lr_opt();
    m.lr_opt_se = o.lr_opt_se();
    ev.input.measured_optima.push_back(m);
  }

  // Loss curve and gradient statistics from one plain run.
  int64_t curve_id = 0;
  if (const surge::v1::Run* curve_run = ChooseLossCurveRun(runs, &curve_id)) {
    ev.summary.set_loss_curve_run(curve_run->name());
    // A bounded sample: every k-th step, so a fit's cost does not grow with
    // the length of the run (the loss curve is binned anyway).
    int64_t every = std::max<int64_t>(1, curve_run->record_count() / kMaxCurvePoints);
    SURGE_ASSIGN_OR_RETURN(std::vector<surge::v1::Record> sample,
                           reader.SampleRunRecords(curve_id, every));
    for (const auto& r : sample) {
      if (std::isfinite(r.loss()) && r.loss() > 0) {
        ev.input.loss_curve.push_back({r.step(), r.loss()});
      }
      if (r.has_grad_stats()) {
        const auto& g = r.grad_stats();
        ev.input.grad_stats.push_back({curve_run->name(), r.step(), g.grad_sq_small(),
                                       g.grad_sq_big(), static_cast<double>(g.b_small()),
                                       static_cast<double>(g.b_big())});
      }
    }
    if (every > 1) {
      ev.notes.push_back(absl::StrCat("loss curve and B_simple use every ", every,
                                      "th step of run '", curve_run->name(), "'"));
    }
  }

  ev.summary.set_probe_points(static_cast<int>(ev.input.probe_points.size()));
  ev.summary.set_measured_optima(static_cast<int>(ev.input.measured_optima.size()));
  ev.summary.set_loss_points(static_cast<int>(ev.input.loss_curve.size()));
  ev.summary.set_plain_runs(static_cast<int>(ev.input.runs.size()));
  ev.summary.set_grad_stat_records(static_cast<int>(ev.input.grad_stats.size()));
  absl::flat_hash_map<int64_t, bool> stages;
  for (const auto& p : ev.input.probe_points) stages[p.stage_id] = true;
  for (const auto& m : ev.input.measured_optima) stages[m.stage_id] = true;
  ev.summary.set_stages(static_cast<int>(stages.size()));
  return ev;
}

}  // namespace

absl::StatusOr<Evidence> LoadEvidence(store::Store& reader, const std::string& job,
                                      const EvidenceOverrides& overrides) {
  // One snapshot for all of LoadEvidenceInSnapshot's queries: records that
  // commit while they run are either all in this evidence or all in the next
  // fit's.
  return reader.ReadSnapshot<Evidence>(
      [&] { return LoadEvidenceInSnapshot(reader, job, overrides); });
}

}  // namespace surge::core
