// surge-holdout: the held-out batch-size check (server/fit/holdout.h) on a
// job stored in a surge database.
//
//   surge-holdout --db=FILE --job=NAME [--json] [--laws_only]
//
// Opens FILE read-only (a SQLite URI with mode=ro, so a running server and
// its WAL are left alone and a missing file is not created), loads the job's
// evidence as the server does (core::LoadEvidence), runs HoldOutCheck and
// prints, per stage and criterion (improvement: probes, full or plain runs;
// fastest: steps to a target), the full-data fit and a table of the held-out
// batch sizes, then the summary over all stages:
//   interior: K of N within the 95% prediction interval allowing for the
//   measurement's own error (|z| <= 1.96), M of N inside the prediction
//   interval itself, C of N inside the curve-only interval; median interval
//   widths (hi/lo); efficiency: the mean share of the best measured outcome
//   at B that the predicted LR achieves, and the ceiling (B's own optimum).
// --json prints the same as one JSON object instead. Exit status: 0 when the
// check ran (whatever its outcome), 1 on errors (missing file, unknown job,
// no stage fittable), 2 on usage errors.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "server/core/evidence.h"
#include "server/fit/fit_job.h"
#include "server/fit/holdout.h"
#include "server/tools/read_only_db.h"

ABSL_FLAG(std::string, db, "", "surge SQLite database file (opened read-only)");
ABSL_FLAG(std::string, job, "", "job name");
ABSL_FLAG(bool, json, false, "print one JSON object instead of tables");
ABSL_FLAG(bool, laws_only, false,
          "fit as before prediction intervals and the smooth curve (the five laws, curve-only "
          "intervals): the 'before' of a before/after comparison");

namespace {

using surge::fit::Criterion;
using surge::fit::HoldOutKind;
using surge::fit::HoldOutPrediction;
using surge::fit::HoldOutResult;
using surge::fit::HoldOutSummary;
using surge::fit::JobFit;
using surge::fit::StageFit;

std::string Lr(double ln_lr) {
  return std::isfinite(ln_lr) ? absl::StrFormat("%.3g", std::exp(ln_lr)) : "-";
}

std::string LrInterval(double ln_mean, double ln_se) {
  if (!std::isfinite(ln_mean) || !std::isfinite(ln_se)) return "-";
  return absl::StrFormat("[%.3g, %.3g]", std::exp(ln_mean - surge::fit::kZ95 * ln_se),
                         std::exp(ln_mean + surge::fit::kZ95 * ln_se));
}

std::string Z(double z) { return std::isfinite(z) ? absl::StrFormat("%+.2f", z) : "-"; }

std::string Share(double v, bool bound) {
  if (!std::isfinite(v)) return "-";
  return absl::StrFormat("%s%.2f", bound ? "<=" : "", v);
}

std::string Num(double v, const char* fmt = "%.2f") {
  return std::isfinite(v) ? absl::StrFormat(fmt, v) : "-";
}

// Every stage checked: improvement (advice's and set-aside) then fastest.
std::vector<const StageFit*> CheckedStages(const JobFit& full) {
  std::vector<const StageFit*> out;
  for (const StageFit& st : full.stages) out.push_back(&st);
  for (const StageFit& st : full.set_aside) out.push_back(&st);
  std::stable_sort(out.begin(), out.end(), [](const StageFit* a, const StageFit* b) {
    return a->stage_loss < b->stage_loss;
  });
  for (const StageFit& st : full.fastest.stages) out.push_back(&st);
  return out;
}

// One line on a stage's full-data fit: identification, B_noise, verdict, weights.
std::string StageHeadline(const StageFit& st) {
  std::string out = absl::StrFormat(
      "stage %d (loss %.4g, criterion %s, evidence %s): %d probe points, %d runs, %d optima",
      st.stage_id, st.stage_loss, CriterionName(st.criterion), surge::fit::EvidenceNames(st.evidence),
      st.n_probe_points, st.n_runs, st.optima.size());
  const auto& s = st.surge;
  absl::StrAppend(&out, "; full-data surge fit: ", PeakIdentificationName(s.identification));
  if (s.identification == surge::fit::PeakIdentification::kIdentified) {
    const auto b = s.LnBNoise();
    absl::StrAppendFormat(&out, ", B_noise %.3g [%.3g, %.3g], eps_max %.3g", std::exp(b.value),
                          std::exp(b.Ci95().lo), std::exp(b.Ci95().hi), std::exp(s.ln_eps_max));
  } else if (std::isfinite(s.ln_b_noise_bound)) {
    absl::StrAppendFormat(
        &out, ", B_noise %s %.3g",
        s.identification == surge::fit::PeakIdentification::kBelowPeak ? ">=" : "<=",
        std::exp(s.ln_b_noise_bound));
  }
  absl::StrAppendFormat(&out, ", chi2/dof %.3g/%d; verdict %s; weights", s.chi2, s.dof,
                        VerdictName(st.models.verdict));
  for (const auto& m : st.models.models) {
    absl::StrAppendFormat(&out, " %s %.2f", ModelName(m.kind), m.weight);
  }
  return out;
}

std::string SummaryLine(const HoldOutSummary& s) {
  return absl::StrFormat(
      "interior: %d of %d within the 95%% prediction interval allowing for the measurement's "
      "error (|z| <= 1.96); %d of %d inside the prediction interval, %d of %d inside the "
      "curve-only interval; median width (hi/lo) %s prediction, %s curve; efficiency mean %s, "
      "median %s (worst %s), ceiling %s, over %d",
      s.consistent, s.interior, s.inside, s.interior, s.curve_inside, s.interior,
      Num(s.median_width), Num(s.median_curve_width), Num(s.mean_share), Num(s.median_share),
      Num(s.min_share), Num(s.mean_ceiling), s.efficiency_n);
}

std::string DetailLine(const HoldOutSummary& s) {
  return absl::StrFormat(
      "  model-average z over interior: mean %s, rms %s; surge law alone: %d of %d consistent, %d "
      "inside; extrapolated: %d (%d consistent, not counted); skipped: %d",
      Z(s.mean_z), std::isfinite(s.rms_z) ? absl::StrFormat("%.2f", s.rms_z) : "-",
      s.surge_consistent, s.surge_evaluated, s.surge_inside, s.extrapolated,
      s.extrapolated_consistent, s.skipped);
}

void PrintTables(const std::string& job, const JobFit& full,
                 const std::vector<HoldOutResult>& results, const std::vector<std::string>& notes) {
  std::printf("surge-holdout: job %s; leave one batch size out, refit the stage, predict it\n",
              job.c_str());
  for (const std::string& n : notes) std::printf("note: %s\n", n.c_str());
  for (const auto& sk : full.skipped_stages) {
    std::printf("stage %lld not fitted: %s\n", static_cast<long long>(sk.stage_id),
                std::string(sk.status.message()).c_str());
  }
  for (const StageFit* stp : CheckedStages(full)) {
    const StageFit& st = *stp;
    std::printf("\n%s\n", StageHeadline(st).c_str());
    std::printf("%6s %9s %-22s %9s %-22s %-22s %6s %3s %3s %4s %6s %6s %9s %7s  %-12s %s\n", "B",
                "meas lr", "meas 95%", "pred lr", "pred 95% (prediction)", "pred 95% (curve)", "z",
                "in", "inc", "cons", "eff", "ceil", "surge lr", "z_surge", "kind",
                "refit top model / note");
    for (const HoldOutResult& r : results) {
      if (r.stage_id != st.stage_id || r.criterion != st.criterion) continue;
      const HoldOutPrediction& a = r.averaged;
      std::string tail = r.note;
      if (r.kind != HoldOutKind::kSkipped) {
        tail = absl::StrFormat("%s %.2f, %s", r.refit_top_model, r.refit_top_weight,
                               PeakIdentificationName(r.refit_identification));
        if (!r.note.empty()) absl::StrAppend(&tail, "; ", r.note);
      }
      const bool skipped = r.kind == HoldOutKind::kSkipped;
      std::printf("%6g %9s %-22s %9s %-22s %-22s %6s %3s %3s %4s %6s %6s %9s %7s  %-12s %s\n",
                  r.batch_size, Lr(r.ln_measured).c_str(),
                  LrInterval(r.ln_measured, r.ln_measured_se).c_str(), Lr(a.ln_mean).c_str(),
                  LrInterval(a.ln_mean, a.ln_se).c_str(),
                  LrInterval(a.ln_mean, a.ln_curve_se).c_str(), Z(a.z).c_str(),
                  skipped ? "-" : (a.inside ? "yes" : "no"),
                  skipped ? "-" : (a.curve_inside ? "yes" : "no"),
                  skipped ? "-" : (a.consistent ? "yes" : "no"),
                  Share(r.efficiency.share, r.efficiency.share_bound).c_str(),
                  Share(r.efficiency.ceiling, r.efficiency.ceiling_bound).c_str(),
                  Lr(r.surge.ln_mean).c_str(), Z(r.surge.z).c_str(), HoldOutKindName(r.kind),
                  tail.c_str());
    }
    const HoldOutSummary s = SummarizeHoldOut(results, st.stage_id, st.criterion);
    std::printf("stage %lld %s\n%s\n", static_cast<long long>(st.stage_id), SummaryLine(s).c_str(),
                DetailLine(s).c_str());
  }
  const HoldOutSummary all = SummarizeHoldOut(results);
  std::printf("\njob %s, all stages\n%s\n%s\n", job.c_str(), SummaryLine(all).c_str(),
              DetailLine(all).c_str());
  std::printf(
      "(in: inside the 95%% prediction interval; inc: inside the curve-only interval; cons: "
      "|z| <= 1.96, z = (ln meas - ln pred) / sqrt(se_pred^2 + se_meas^2); eff: share of the "
      "best measured outcome at B reached at the predicted LR, ceil: at B's own optimum; "
      "improvement: seed-mean loss fall; fastest: S_best / S)\n");
}

// --- JSON (hand-written: the tool needs nothing more) ---
std::string JNum(double v) { return std::isfinite(v) ? absl::StrFormat("%.6g", v) : "null"; }
std::string JStr(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppendFormat(&out, "\\u%04x", static_cast<unsigned char>(c));
    } else {
      out.push_back(c);
    }
  }
  return out + "\"";
}
std::string JBool(bool b) { return b ? "true" : "false"; }
std::string JLrCi(double ln_mean, double ln_se) {
  if (!std::isfinite(ln_mean) || !std::isfinite(ln_se)) return "null";
  return absl::StrCat("[", JNum(std::exp(ln_mean - surge::fit::kZ95 * ln_se)), ", ",
                      JNum(std::exp(ln_mean + surge::fit::kZ95 * ln_se)), "]");
}
std::string JPrediction(const HoldOutPrediction& p) {
  return absl::StrCat("{\"lr\": ", JNum(std::exp(p.ln_mean)), ", \"ln_lr\": ", JNum(p.ln_mean),
                      ", \"ln_se\": ", JNum(p.ln_se), ", \"lr_ci95\": ", JLrCi(p.ln_mean, p.ln_se),
                      ", \"inside\": ", JBool(p.inside), ", \"ln_curve_se\": ",
                      JNum(p.ln_curve_se), ", \"lr_curve_ci95\": ", JLrCi(p.ln_mean, p.ln_curve_se),
                      ", \"curve_inside\": ", JBool(p.curve_inside), ", \"z\": ", JNum(p.z),
                      ", \"consistent\": ", JBool(p.consistent), "}");
}
std::string JSummary(const HoldOutSummary& s) {
  return absl::StrCat(
      "{\"interior\": ", s.interior, ", \"consistent\": ", s.consistent, ", \"inside\": ", s.inside,
      ", \"mean_z\": ", JNum(s.mean_z), ", \"rms_z\": ", JNum(s.rms_z),
      ", \"surge_evaluated\": ", s.surge_evaluated, ", \"surge_consistent\": ", s.surge_consistent,
      ", \"surge_inside\": ", s.surge_inside, ", \"curve_inside\": ", s.curve_inside,
      ", \"median_width\": ", JNum(s.median_width),
      ", \"median_curve_width\": ", JNum(s.median_curve_width),
      ", \"efficiency_n\": ", s.efficiency_n, ", \"mean_share\": ", JNum(s.mean_share),
      ", \"min_share\": ", JNum(s.min_share), ", \"median_share\": ", JNum(s.median_share), ", \"mean_ceiling\": ", JNum(s.mean_ceiling),
      ", \"extrapolated\": ", s.extrapolated,
      ", \"extrapolated_consistent\": ", s.extrapolated_consistent, ", \"skipped\": ", s.skipped,
      "}");
}

void PrintJson(const std::string& job, const JobFit& full,
               const std::vector<HoldOutResult>& results, const std::vector<std::string>& notes) {
  std::vector<std::string> stages;
  for (const StageFit* stp : CheckedStages(full)) {
    const StageFit& st = *stp;
    std::vector<std::string> rows;
    for (const HoldOutResult& r : results) {
      if (r.stage_id != st.stage_id || r.criterion != st.criterion) continue;
      rows.push_back(absl::StrCat(
          "{\"batch_size\": ", JNum(r.batch_size), ", \"kind\": ", JStr(HoldOutKindName(r.kind)),
          ", \"note\": ", JStr(r.note), ", \"measured\": {\"lr\": ", JNum(std::exp(r.ln_measured)),
          ", \"ln_lr\": ", JNum(r.ln_measured), ", \"ln_se\": ", JNum(r.ln_measured_se),
          ", \"lr_ci95\": ", JLrCi(r.ln_measured, r.ln_measured_se), "}, \"refit\": {\"optima\": ",
          r.refit_optima, ", \"batch_min\": ", JNum(r.refit_batch_min),
          ", \"batch_max\": ", JNum(r.refit_batch_max),
          ", \"identification\": ", JStr(PeakIdentificationName(r.refit_identification)),
          ", \"verdict\": ", JStr(VerdictName(r.refit_verdict)), ", \"top_model\": ",
          JStr(r.refit_top_model), ", \"top_weight\": ", JNum(r.refit_top_weight),
          "}, \"averaged\": ", JPrediction(r.averaged), ", \"surge\": ", JPrediction(r.surge),
          ", \"efficiency\": {\"share\": ", JNum(r.efficiency.share),
          ", \"share_bound\": ", JBool(r.efficiency.share_bound),
          ", \"ceiling\": ", JNum(r.efficiency.ceiling),
          ", \"ceiling_bound\": ", JBool(r.efficiency.ceiling_bound),
          ", \"best_lr\": ", JNum(r.efficiency.best_lr), "}}"));
    }
    stages.push_back(absl::StrCat(
        "{\"stage_id\": ", st.stage_id, ", \"stage_loss\": ", JNum(st.stage_loss),
        ", \"criterion\": ", JStr(CriterionName(st.criterion)),
        ", \"evidence\": ", JStr(surge::fit::EvidenceNames(st.evidence)),
        ", \"verdict\": ", JStr(VerdictName(st.models.verdict)),
        ", \"identification\": ", JStr(PeakIdentificationName(st.surge.identification)),
        ", \"results\": [\n    ", absl::StrJoin(rows, ",\n    "),
        "],\n  \"summary\": ", JSummary(SummarizeHoldOut(results, st.stage_id, st.criterion)),
        "}"));
  }
  std::vector<std::string> jnotes;
  for (const std::string& n : notes) jnotes.push_back(JStr(n));
  for (const auto& sk : full.skipped_stages) {
    jnotes.push_back(
        JStr(absl::StrCat("stage ", sk.stage_id, " not fitted: ", sk.status.message())));
  }
  std::printf("{\"job\": %s, \"notes\": [%s],\n \"stages\": [\n  %s],\n \"summary\": %s}\n",
              JStr(job).c_str(), absl::StrJoin(jnotes, ", ").c_str(),
              absl::StrJoin(stages, ",\n  ").c_str(), JSummary(SummarizeHoldOut(results)).c_str());
}

int Fail(const std::string& what) {
  std::cerr << "surge-holdout: " << what << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "held-out batch-size check of a stored job's fits.\n"
      "Usage: surge-holdout --db=FILE --job=NAME [--json] [--laws_only]");
  absl::FlagsUsageConfig usage_config;
  usage_config.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "surge_holdout.cc");
  };
  absl::SetFlagsUsageConfig(usage_config);
  absl::ParseCommandLine(argc, argv);
  const std::string db = absl::GetFlag(FLAGS_db);
  const std::string job = absl::GetFlag(FLAGS_job);
  if (db.empty() || job.empty()) {
    std::cerr << "surge-holdout: --db and --job are required\n"
              << absl::ProgramUsageMessage() << "\n";
    return 2;
  }
  auto store = surge::tools::OpenReadOnlyStore(db);
  if (!store.ok()) return Fail(std::string(store.status().message()));
  auto evidence = surge::tools::LoadJobEvidence(**store, job);
  if (!evidence.ok()) {
    return Fail(
        absl::StrCat("loading job '", job, "' from ", db, ": ", evidence.status().ToString()));
  }

  // The check, and the full-data fit it compared against (for the stage headlines).
  JobFit full;
  surge::fit::FitOptions options;
  if (absl::GetFlag(FLAGS_laws_only)) {
    options.models.smooth_curve = false;
    options.models.scatter = false;
  }
  auto results = surge::fit::HoldOutCheck(evidence->input, options, &full);
  if (!results.ok()) {
    return Fail(absl::StrCat("hold-out check of job '", job, "': ", results.status().ToString()));
  }
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(job, full, *results, evidence->notes);
  } else {
    PrintTables(job, full, *results, evidence->notes);
  }
  return 0;
}
