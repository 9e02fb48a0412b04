// `surge fit` and `surge advise`: the job's fit as tables, and the learning
// rate for a batch size at a step, with its interval, evidence and flags.
#include <cmath>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "client/cli/commands.h"
#include "client/cli/format.h"

namespace surge::cli {
namespace {

std::string G(double v) { return std::isfinite(v) ? absl::StrFormat("%.4g", v) : "-"; }

std::string Range(const surge::v1::Interval& i) {
  return absl::StrFormat("[%s, %s]", G(i.lo()), std::isinf(i.hi()) ? "inf" : G(i.hi()));
}

std::string VerdictText(surge::v1::Verdict v) {
  switch (v) {
    case surge::v1::VERDICT_YES: return "yes";
    case surge::v1::VERDICT_NO: return "no";
    default: return "undecided";
  }
}

std::string BNoiseText(surge::v1::BNoiseKind kind, double value, const surge::v1::Interval& ci) {
  switch (kind) {
    case surge::v1::B_NOISE_KIND_POINT: return absl::StrCat(G(value), " 95% ", Range(ci));
    case surge::v1::B_NOISE_KIND_LOWER_BOUND:
      return absl::StrCat(">= ", G(value), " (lower bound: the data stop below the peak)");
    case surge::v1::B_NOISE_KIND_UPPER_BOUND:
      return absl::StrCat("<= ", G(value), " (upper bound: the data start above the peak)");
    default: return "unknown (no peak information)";
  }
}

// One stage: optima, surge law, models, verdict.
void PrintStage(const surge::v1::StageFit& stage) {
  const bool runs = stage.runs() > 0;
  std::string source =
      runs ? absl::StrFormat("%d runs (%d never reached the target), evidence %s", stage.runs(),
                             stage.censored_runs(), stage.evidence())
           : absl::StrFormat("%d probe points, evidence %s", stage.probe_points(),
                             stage.evidence().empty() ? "probes" : stage.evidence());
  std::cout << absl::StrFormat("\nstage %d (loss %.4g), criterion %s: %d optima from %s\n",
                               stage.stage_id(), stage.stage_loss(),
                               stage.criterion().empty() ? "improvement" : stage.criterion(),
                               stage.optima_size(), source);
  const bool fastest = stage.criterion() == "fastest";
  std::vector<std::string> header = {"  BATCH", "LR_OPT", "95%", "KIND", "LRS", "SEEDS", "SE_FROM"};
  if (runs) header.push_back("CENSORED");
  if (fastest) header.push_back("STEPS");
  std::vector<std::vector<std::string>> rows = {header};
  for (const auto& o : stage.optima()) {
    std::string kind = o.censoring() == surge::v1::CENSORING_NONE ? "point"
                       : o.censoring() == surge::v1::CENSORING_UPPER_BOUND
                           ? "<= (grid low edge)"
                           : ">= (grid high edge)";
    double lo = o.lr_opt() * std::exp(-1.96 * o.ln_lr_opt_se());
    double hi = o.lr_opt() * std::exp(1.96 * o.ln_lr_opt_se());
    std::vector<std::string> row = {
        absl::StrCat("  ", G(o.batch_size())), G(o.lr_opt()),
        o.censoring() == surge::v1::CENSORING_NONE ? absl::StrFormat("[%s, %s]", G(lo), G(hi))
                                                   : "-",
        kind, absl::StrCat(o.n_lrs()), absl::StrCat(o.n_seeds()), o.se_source()};
    if (runs) row.push_back(absl::StrCat(o.n_censored()));
    if (fastest) row.push_back(G(o.steps_at_opt()));
    rows.push_back(row);
  }
  PrintTable(rows);
  for (const auto& s : stage.skipped()) std::cout << "  skipped: " << s << "\n";
  const auto& surge = stage.surge();
  std::cout << "  surge law: " << surge.identification() << "; B_noise "
            << BNoiseText(surge.b_noise_kind(), surge.b_noise(), surge.b_noise_ci95());
  if (surge.b_noise_kind() == surge::v1::B_NOISE_KIND_POINT) {
    std::cout << "; eps_max " << G(surge.eps_max()) << " 95% " << Range(surge.eps_max_ci95());
  }
  std::cout << "\n";
  std::vector<std::vector<std::string>> models = {
      {"  MODEL", "AICc", "WEIGHT", "LAW WEIGHT", "SCATTER", "NOTE"}};
  for (const auto& m : stage.models()) {
    models.push_back({absl::StrCat("  ", m.model()), G(m.aicc()),
                      absl::StrFormat("%.3f", m.weight()),
                      m.model() == "smooth" ? "-" : absl::StrFormat("%.3f", m.law_weight()),
                      m.fitted() ? absl::StrFormat("%.3f", m.scatter_sd()) : "-", m.note()});
  }
  PrintTable(models);
  std::cout << "  (WEIGHT: in the average; LAW WEIGHT: among the five laws, for the verdict; "
               "SCATTER: sd of ln optima around the curve beyond their SEs)\n";
  std::cout << "  surge supported by the data: " << VerdictText(stage.verdict()) << " ("
            << stage.verdict_reason() << ")\n";
}

void PrintDrift(const surge::v1::DriftFit& drift, int stages, const char* what) {
  if (drift.mode() == "linear") {
    std::cout << absl::StrFormat("\n%sdrift: ln B_noise = %.3g - (1/alpha) ln L, alpha %.3g +- %.2g\n",
                                 what, drift.c0(), drift.alpha(), drift.alpha_se());
  } else if (stages > 0) {
    std::cout << "\n" << what << "drift: " << drift.mode()
              << " (needs >= 2 stages with an identified peak)\n";
  }
}

}  // namespace

absl::Status ShowFit(client::SurgeClient& client, const std::string& job,
                     const std::vector<double>& targets, int k, bool json) {
  surge::v1::GetFitRequest request;
  request.set_job(job);
  for (double t : targets) request.add_target_losses(t);
  request.set_k_steps(k);
  auto fit = client.GetFit(request);
  if (!fit.ok()) return fit.status();
  if (json) {
    std::cout << ToJson(*fit) << "\n";
    return absl::OkStatus();
  }
  const auto& in = fit->inputs();
  std::cout << absl::StrFormat(
      "job %s, fit %s (%s UTC, %.1f ms): %d plain runs, %d probe points, %d measured optima, "
      "%d loss-curve points%s\n",
      job, fit->version() > 0 ? absl::StrCat("v", fit->version()) : "ad hoc (not stored)",
      FormatTimeUs(fit->create_time_us()), fit->fit_ms(), in.plain_runs(), in.probe_points(),
      in.measured_optima(), in.loss_points(),
      in.loss_curve_run().empty() ? "" : absl::StrCat(" (run ", in.loss_curve_run(), ")"));
  if (fit->has_runs()) {
    const auto& r = fit->runs();
    std::vector<std::string> ts;
    for (double t : r.target_losses()) ts.push_back(G(t));
    std::cout << absl::StrFormat(
        "plain runs: %d used (%d scheduled, %d left out); loss signal %s; targets %s (%s); k = %d\n",
        r.runs_used(), r.runs_scheduled(), r.runs_left_out(), r.signal(),
        ts.empty() ? "none" : absl::StrJoin(ts, ", "),
        r.targets_from_data() ? "chosen from the data" : "declared", r.k_steps());
  }
  if (!fit->error().empty()) std::cout << "no fit: " << fit->error() << "\n";
  if (fit->stages_size() > 0) {
    std::cout << "\n== criterion improvement (the paper's: largest loss fall over k steps after "
                 "the stage); advice answers with this by default\n";
  }
  for (const auto& stage : fit->stages()) PrintStage(stage);
  for (const auto& s : fit->skipped_stages()) {
    std::cout << absl::StrFormat("\nstage %d (loss %.4g) not fitted: %s\n", s.stage_id(),
                                 s.stage_loss(), s.reason());
  }
  PrintDrift(fit->drift(), fit->stages_size(), "");
  if (fit->fastest_stages_size() > 0 || fit->fastest_skipped_stages_size() > 0) {
    std::cout << "\n== criterion fastest (fewest steps to the target loss; "
                 "`surge advise --criterion fastest`)\n";
  }
  for (const auto& stage : fit->fastest_stages()) PrintStage(stage);
  for (const auto& s : fit->fastest_skipped_stages()) {
    std::cout << absl::StrFormat("\nstage %d (loss %.4g) not fitted: %s\n", s.stage_id(),
                                 s.stage_loss(), s.reason());
  }
  PrintDrift(fit->fastest_drift(), fit->fastest_stages_size(), "fastest criterion ");
  if (fit->set_aside_stages_size() > 0) {
    std::cout << "\n== set aside (short horizon: probes / imported optima; the training runs "
                 "set the LR level)\n";
  }
  for (const auto& stage : fit->set_aside_stages()) PrintStage(stage);
  for (const auto& s : fit->speed_data()) {
    std::cout << absl::StrFormat(
        "speed/data at loss %s: S_min %s, E_min %s, B_crit %s (%d batch sizes)\n",
        G(s.target_loss()), G(s.s_min()), G(s.e_min()), G(s.b_crit()), s.n());
  }
  for (const auto& n : fit->noise_scale()) {
    std::cout << absl::StrFormat("B_simple (run %s): %s at step %d\n", n.run(),
                                 G(n.last_b_simple()), n.steps_size() ? n.steps(n.steps_size() - 1) : 0);
  }
  for (const auto& note : fit->notes()) std::cout << "note: " << note << "\n";
  return absl::OkStatus();
}

// The transfer block of `surge advise --from`: the user's LR scaled by the
// fitted curve, and the two rules of thumb beside it.
void PrintTransfer(const surge::v1::Advice& a) {
  const surge::v1::AdviceTransfer& t = a.transfer();
  const surge::v1::AdviceReference& r = t.reference();
  std::vector<std::string> flags;
  if (t.reference_outside_data()) flags.push_back("reference_outside_data (B0 beyond the job's batch sizes)");
  if (t.reference_extrapolated_in_loss()) flags.push_back("reference_extrapolated_in_loss");
  if (t.reference_other_stage()) {
    flags.push_back("reference_other_stage (tuned at another loss: the interval adds both stages' errors)");
  }
  std::cout << absl::StrFormat("transfer from lr %s at batch %s (loss %.4g) to batch %s:\n",
                               G(r.lr()), G(r.batch_size()), t.reference_loss(), G(a.batch_size()));
  PrintTable({
      {"  lr", absl::StrCat(G(t.lr()), "  95% ", Range(t.lr_ci95()), "  (x", G(t.ratio()),
                            " by the fitted curve; curve alone ", Range(t.lr_curve_ci95()), ")")},
      {"  linear rule", absl::StrCat(G(t.linear_rule_lr()), "  (lr0 x B/B0)")},
      {"  sqrt rule", absl::StrCat(G(t.sqrt_rule_lr()), "  (lr0 x sqrt(B/B0))")},
      {"  fit at B0", absl::StrCat(G(t.fitted_lr_at_reference()),
                                   "  (the job's own optimum at the reference; yours is x",
                                   G(r.lr() / t.fitted_lr_at_reference()), ")")},
      {"  flags", flags.empty() ? "none" : absl::StrJoin(flags, ", ")},
  });
  std::cout << "the job's own level at batch " << G(a.batch_size()) << ":\n";
}

absl::Status ParseFrom(const std::string& text, surge::v1::AdviceReference* reference) {
  const std::vector<std::string> parts = absl::StrSplit(text, ':');
  double b0 = 0, lr0 = 0;
  if (parts.size() != 2 || !absl::SimpleAtod(parts[0], &b0) || !absl::SimpleAtod(parts[1], &lr0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--from: expected B0:LR0 (the batch size and the LR tuned there, e.g. 256:3e-4), got '",
        text, "'"));
  }
  reference->set_batch_size(b0);
  reference->set_lr(lr0);
  return absl::OkStatus();
}

absl::Status Advise(client::SurgeClient& client, const AdviseArgs& args) {
  surge::v1::GetAdviceRequest request;
  request.set_job(args.job);
  request.set_batch_size(args.batch_size);
  if (args.step.has_value()) request.set_step(*args.step);
  request.set_criterion(args.criterion == "fastest" ? surge::v1::CRITERION_FASTEST
                                                    : surge::v1::CRITERION_IMPROVEMENT);
  if (args.from.empty() && (args.from_step.has_value() || args.from_loss.has_value())) {
    return absl::InvalidArgumentError("--from-step and --from-loss need --from B0:LR0");
  }
  if (!args.from.empty()) {
    surge::v1::AdviceReference* ref = request.mutable_reference();
    if (absl::Status s = ParseFrom(args.from, ref); !s.ok()) return s;
    if (args.from_step.has_value()) ref->set_step(*args.from_step);
    if (args.from_loss.has_value()) ref->set_loss(*args.from_loss);
  }
  const std::string& job = args.job;
  auto advice = client.GetAdvice(request);
  if (!advice.ok()) return advice.status();
  if (args.json) {
    std::cout << ToJson(*advice) << "\n";
    return absl::OkStatus();
  }
  const auto& a = *advice;
  std::vector<std::string> flags;
  if (a.flags().extrapolated_in_batch()) flags.push_back("extrapolated_in_batch");
  if (a.flags().extrapolated_in_step()) flags.push_back("extrapolated_in_step");
  if (a.flags().extrapolated_in_loss()) flags.push_back("extrapolated_in_loss");
  if (a.flags().b_noise_bound_only()) flags.push_back("b_noise_bound_only");
  if (a.flags().surge_not_supported()) flags.push_back("surge_not_supported");
  if (a.flags().short_horizon()) {
    flags.push_back("short_horizon (probes only: the best LR for the next k steps, not for training)");
  }
  std::vector<std::string> stages;
  for (int64_t s : a.stages_used()) stages.push_back(absl::StrCat(s));
  std::cout << absl::StrFormat(
      "job %s (fit v%d): batch %s%s, loss %.4g%s, criterion %s\n", job, a.fit_version(),
      G(a.batch_size()), a.has_step() ? absl::StrCat(" at step ", a.step()) : " (latest stage)",
      a.loss(),
      a.step_mapping() == "speed_data" ? " (reached at this step by a run at this batch size)" : "",
      a.criterion() == surge::v1::CRITERION_FASTEST ? "fastest (fewest steps to the target)"
                                                    : "improvement (the paper's)");
  if (a.has_transfer()) PrintTransfer(a);
  PrintTable({
      {"  lr", absl::StrCat(G(a.lr()), "  95% ", Range(a.lr_ci95()),
                            "  (prediction interval; curve alone ", Range(a.lr_curve_ci95()),
                            ")")},
      {"  model", a.model()},
      {"  B_noise", absl::StrCat(BNoiseText(a.b_noise_kind(), a.b_noise(), a.b_noise_ci95()),
                                 a.verdict() == surge::v1::VERDICT_NO
                                     ? "  (of the surge-law fit; the data favour a monotone model)"
                                     : "")},
      {"  eps_max", std::isfinite(a.eps_max()) ? absl::StrCat(G(a.eps_max()), "  95% ",
                                                              Range(a.eps_max_ci95()))
                                               : "- (peak not identified)"},
      {"  batch", absl::StrFormat("recommended %s (speed/data balance); at %s: S/S_min %s, "
                                  "E/E_min %s",
                                  G(a.recommended_batch_size()), G(a.batch_size()),
                                  G(a.steps_ratio()), G(a.examples_ratio()))},
      {"  evidence",
       a.runs_used() > 0
           ? absl::StrFormat("%s: stages [%s], %d optima from %d training runs", a.evidence(),
                             absl::StrJoin(stages, ", "), a.optima_used(), a.runs_used())
           : absl::StrFormat("%s: stages [%s], %d optima from %d probe points",
                             a.evidence().empty() ? "probes" : a.evidence(),
                             absl::StrJoin(stages, ", "), a.optima_used(),
                             a.probe_points_used())},
      {"  surge", absl::StrCat("supported by the data: ", VerdictText(a.verdict()), " (",
                               a.verdict_reason(), ")")},
      {"  flags", flags.empty() ? "none" : absl::StrJoin(flags, ", ")},
  });
  return absl::OkStatus();
}

}  // namespace surge::cli
