// `surge fit` and `surge advise`: the job's fit as tables, and the learning
// rate for a batch size at a step, with its interval, evidence and flags.
#include <cmath>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
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

}  // namespace

absl::Status ShowFit(client::SurgeClient& client, const std::string& job, bool json) {
  auto fit = client.GetFit(job);
  if (!fit.ok()) return fit.status();
  if (json) {
    std::cout << ToJson(*fit) << "\n";
    return absl::OkStatus();
  }
  const auto& in = fit->inputs();
  std::cout << absl::StrFormat(
      "job %s, fit v%d (%s UTC, %.1f ms): %d probe points, %d measured optima, %d stages, "
      "%d loss-curve points%s\n",
      job, fit->version(), FormatTimeUs(fit->create_time_us()), fit->fit_ms(), in.probe_points(),
      in.measured_optima(), in.stages(), in.loss_points(),
      in.loss_curve_run().empty() ? "" : absl::StrCat(" (run ", in.loss_curve_run(), ")"));
  if (!fit->error().empty()) std::cout << "no fit: " << fit->error() << "\n";
  for (const auto& stage : fit->stages()) {
    std::cout << absl::StrFormat("\nstage %d (loss %.4g): %d optima from %d probe points\n",
                                 stage.stage_id(), stage.stage_loss(), stage.optima_size(),
                                 stage.probe_points());
    std::vector<std::vector<std::string>> rows = {
        {"  BATCH", "LR_OPT", "95%", "KIND", "LRS", "SEEDS", "SE_FROM"}};
    for (const auto& o : stage.optima()) {
      std::string kind = o.censoring() == surge::v1::CENSORING_NONE ? "point"
                         : o.censoring() == surge::v1::CENSORING_UPPER_BOUND
                             ? "<= (grid low edge)"
                             : ">= (grid high edge)";
      double lo = o.lr_opt() * std::exp(-1.96 * o.ln_lr_opt_se());
      double hi = o.lr_opt() * std::exp(1.96 * o.ln_lr_opt_se());
      rows.push_back({absl::StrCat("  ", G(o.batch_size())), G(o.lr_opt()),
                      o.censoring() == surge::v1::CENSORING_NONE
                          ? absl::StrFormat("[%s, %s]", G(lo), G(hi))
                          : "-",
                      kind, absl::StrCat(o.n_lrs()), absl::StrCat(o.n_seeds()), o.se_source()});
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
    std::vector<std::vector<std::string>> models = {{"  MODEL", "AICc", "WEIGHT", "NOTE"}};
    for (const auto& m : stage.models()) {
      models.push_back({absl::StrCat("  ", m.model()), G(m.aicc()),
                        absl::StrFormat("%.3f", m.weight()), m.fitted() ? m.note() : m.note()});
    }
    PrintTable(models);
    std::cout << "  surge supported by the data: " << VerdictText(stage.verdict()) << " ("
              << stage.verdict_reason() << ")\n";
  }
  for (const auto& s : fit->skipped_stages()) {
    std::cout << absl::StrFormat("\nstage %d (loss %.4g) not fitted: %s\n", s.stage_id(),
                                 s.stage_loss(), s.reason());
  }
  if (fit->drift().mode() == "linear") {
    std::cout << absl::StrFormat("\ndrift: ln B_noise = %.3g - (1/alpha) ln L, alpha %.3g +- %.2g\n",
                                 fit->drift().c0(), fit->drift().alpha(), fit->drift().alpha_se());
  } else if (fit->stages_size() > 0) {
    std::cout << "\ndrift: " << fit->drift().mode()
              << " (needs >= 2 stages with an identified peak)\n";
  }
  for (const auto& n : fit->noise_scale()) {
    std::cout << absl::StrFormat("B_simple (run %s): %s at step %d\n", n.run(),
                                 G(n.last_b_simple()), n.steps_size() ? n.steps(n.steps_size() - 1) : 0);
  }
  for (const auto& note : fit->notes()) std::cout << "note: " << note << "\n";
  return absl::OkStatus();
}

absl::Status Advise(client::SurgeClient& client, const std::string& job, double batch_size,
                    std::optional<int64_t> step, bool json) {
  auto advice = client.GetAdvice(job, batch_size, step);
  if (!advice.ok()) return advice.status();
  if (json) {
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
  std::vector<std::string> stages;
  for (int64_t s : a.stages_used()) stages.push_back(absl::StrCat(s));
  std::cout << absl::StrFormat("job %s (fit v%d): batch %s%s, loss %.4g\n", job, a.fit_version(),
                               G(a.batch_size()),
                               a.has_step() ? absl::StrCat(" at step ", a.step()) : " (latest stage)",
                               a.loss());
  PrintTable({
      {"  lr", absl::StrCat(G(a.lr()), "  95% ", Range(a.lr_ci95()))},
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
      {"  evidence", absl::StrFormat("stages [%s], %d optima from %d probe points",
                                     absl::StrJoin(stages, ", "), a.optima_used(),
                                     a.probe_points_used())},
      {"  surge", absl::StrCat("supported by the data: ", VerdictText(a.verdict()), " (",
                               a.verdict_reason(), ")")},
      {"  flags", flags.empty() ? "none" : absl::StrJoin(flags, ", ")},
  });
  return absl::OkStatus();
}

}  // namespace surge::cli
