// surge-pooled: EXPERIMENTAL comparison of the pooled improvement-surface fit
// (server/fit/pooled_surface.h) with the two-step pipeline (per-B optima, then
// the surge law and the comparison models) on a job stored in a surge
// database, by leaving one batch size out.
//
//   surge-pooled --db=FILE --job=NAME[,NAME...] [--detail] [--edge]
//                [--se_floor=0.05] [--huber_k=2]
//
// Opens FILE read-only (as surge-holdout does), loads each job's evidence
// (core::LoadEvidence) and, per stage, prints the full-data fits (two-step
// surge B_noise; pooled B_noise per variant) and the table
//   method | N | mean |err| | rms err | mean share | worst share
// over the interior held-out batch sizes (B strictly inside the remaining
// range of the two-step refit; the common set where every method predicts).
// err = predicted ln lr - the full-data two-step optimum at B (ln); share =
// the seed-mean improvement at the predicted LR (linear in ln lr between
// grid LRs, clamped at the grid edges) over the best seed mean at B. Methods:
// the pooled variants (law / heights / curvature), the two-step model average
// (what the service answers) and the two-step surge law alone. "measured" is
// the share at the full-data two-step optimum itself (a reference, not a
// prediction). --detail adds a row per batch size; --edge lets batch sizes
// whose best LR is on the grid edge enter the pooled fits; --se_floor and
// --huber_k set PooledOptions for every pooled variant (experiments).
// Exit status: 0 when the comparison ran, 1 on errors, 2 on usage errors.

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
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
#include "absl/strings/str_split.h"
#include "server/core/evidence.h"
#include "server/fit/fit_job.h"
#include "server/fit/holdout.h"
#include "server/fit/pooled_surface.h"
#include "server/tools/read_only_db.h"

ABSL_FLAG(std::string, db, "", "surge SQLite database file (opened read-only)");
ABSL_FLAG(std::string, job, "", "job name (or several, comma-separated)");
ABSL_FLAG(bool, detail, false, "print a row per held-out batch size");
ABSL_FLAG(double, se_floor, 0.05, "pooled fits: per-B vertex SE floor (ln), 0 for none");
ABSL_FLAG(double, huber_k, 2.0, "pooled fits: Huber threshold on cell residuals");
ABSL_FLAG(bool, edge, false, "let batch sizes with the best LR on the grid edge enter the pooled fits");

namespace {

namespace fit = surge::fit;

struct Variant {
  std::string name;
  fit::PooledOptions options;
};

std::vector<Variant> Variants(bool edge) {
  std::vector<Variant> v;
  auto add = [&](fit::PeakLaw law, fit::ShapeTerm h, fit::ShapeTerm c) {
    fit::PooledOptions o;
    o.law = law;
    o.heights = h;
    o.curvature = c;
    o.include_edge_batches = edge;
    o.se_floor = absl::GetFlag(FLAGS_se_floor);
    o.huber_k = absl::GetFlag(FLAGS_huber_k);
    v.push_back({absl::StrCat("pooled ", fit::PeakLawName(law), " h:", fit::ShapeTermName(h),
                              " lnc:", fit::ShapeTermName(c)),
                 o});
  };
  using fit::PeakLaw;
  using fit::ShapeTerm;
  add(PeakLaw::kSurge, ShapeTerm::kPerBatch, ShapeTerm::kQuadratic);  // the default
  add(PeakLaw::kSurge, ShapeTerm::kPerBatch, ShapeTerm::kPerBatch);
  add(PeakLaw::kSurge, ShapeTerm::kQuadratic, ShapeTerm::kQuadratic);
  add(PeakLaw::kSaturatingSurge, ShapeTerm::kPerBatch, ShapeTerm::kQuadratic);
  add(PeakLaw::kPowerLaw, ShapeTerm::kPerBatch, ShapeTerm::kQuadratic);
  return v;
}

std::string F(double v, const char* fmt = "%.3f") {
  return std::isfinite(v) ? absl::StrFormat(fmt, v) : "-";
}

void StatsLine(const std::string& name, const fit::MethodStats& s) {
  std::printf("  %-48s %3d %9s %8s %10s %11s\n", name.c_str(), s.n, F(s.mean_abs_err).c_str(),
              F(s.rms_err).c_str(), F(s.mean_share, "%.4f").c_str(),
              F(s.worst_share, "%.4f").c_str());
}

int Fail(const std::string& what) {
  std::cerr << "surge-pooled: " << what << "\n";
  return 1;
}

// Runs and prints the comparison for one job; 0 or 1.
int RunJob(surge::store::Store& store, const std::string& db, const std::string& job) {
  auto evidence = surge::tools::LoadJobEvidence(store, job);
  if (!evidence.ok()) {
    return Fail(absl::StrCat("loading job '", job, "' from ", db, ": ",
                             evidence.status().ToString()));
  }
  const bool edge = absl::GetFlag(FLAGS_edge);
  const std::vector<Variant> variants = Variants(edge);
  std::vector<std::vector<fit::PooledHoldOutRow>> rows;
  std::vector<std::vector<fit::PooledSurfaceFit>> fulls;
  fit::JobFit two_step;
  for (const Variant& v : variants) {
    std::vector<fit::PooledSurfaceFit> full;
    auto r = fit::PooledHoldOut(evidence->input, v.options, &full, &two_step);
    if (!r.ok()) return Fail(absl::StrCat("job '", job, "': ", r.status().ToString()));
    rows.push_back(*std::move(r));
    fulls.push_back(std::move(full));
  }
  std::printf("\n=== job %s: leave one batch size out; pooled surface vs two-step%s\n", job.c_str(),
              edge ? " (edge batch sizes in the pooled fits)" : "");
  for (const std::string& n : evidence->notes) std::printf("note: %s\n", n.c_str());
  for (const fit::StageFit& st : two_step.stages) {
    std::printf("\nstage %lld (loss %.4g): %d probe points, %zu optima (two-step)\n",
                static_cast<long long>(st.stage_id), st.stage_loss, st.n_probe_points,
                st.optima.size());
    const auto& s = st.surge;
    if (s.identification == fit::PeakIdentification::kIdentified) {
      const auto b = s.LnBNoise();
      std::printf("  two-step surge law: B_noise %.3g [%.3g, %.3g], eps_max %.3g\n",
                  std::exp(b.value), std::exp(b.Ci95().lo), std::exp(b.Ci95().hi),
                  std::exp(s.ln_eps_max));
    } else {
      std::printf("  two-step surge law: %s, B_noise bound %.3g\n",
                  PeakIdentificationName(s.identification), std::exp(s.ln_b_noise_bound));
    }
    for (size_t v = 0; v < variants.size(); ++v) {
      for (const fit::PooledSurfaceFit& f : fulls[v]) {
        if (f.stage_id != st.stage_id) continue;
        const surge::fit::Estimate b = f.LnBNoise();
        std::string bn = "-";
        if (std::isfinite(b.value)) {
          bn = std::isfinite(b.se)
                   ? absl::StrFormat("%.3g [%.3g, %.3g]", std::exp(b.value),
                                     std::exp(b.value - fit::kZ95 * b.se),
                                     std::exp(b.value + fit::kZ95 * b.se))
                   : absl::StrFormat("%.3g", std::exp(b.value));
        }
        std::printf("  %-48s B_noise %s%s; law [%s]; %d batch sizes, %d cells, chi2/dof %.1f/%d\n",
                    variants[v].name.c_str(), bn.c_str(),
                    f.location_at_bound ? " (at bound)" : "",
                    absl::StrJoin(f.law_params, ", ",
                                  [](std::string* out, double p) {
                                    absl::StrAppendFormat(out, "%.3f", p);
                                  })
                        .c_str(),
                    static_cast<int>(f.batches.size()), f.n_cells, f.chi2, f.dof);
        if (!f.skipped.empty()) {
          std::printf("    skipped: %s\n", absl::StrJoin(f.skipped, "; ").c_str());
        }
      }
    }
    if (absl::GetFlag(FLAGS_detail)) {
      std::printf("  %6s %-12s %8s %8s %8s %8s | %6s %6s %6s %6s", "B", "kind", "meas",
                  "avg", "surge", "pooled0", "s_meas", "s_avg", "s_srg", "s_p0");
      for (size_t v = 1; v < variants.size(); ++v) std::printf(" %8s %6s", absl::StrCat("pooled", v).c_str(), absl::StrCat("s_p", v).c_str());
      std::printf("\n");
      for (size_t i = 0; i < rows[0].size(); ++i) {
        const fit::PooledHoldOutRow& r = rows[0][i];
        if (r.two_step.stage_id != st.stage_id) continue;
        std::printf("  %6g %-12s %8s %8s %8s %8s | %6s %6s %6s %6s", r.two_step.batch_size,
                    fit::HoldOutKindName(r.two_step.kind), F(r.two_step.ln_measured).c_str(),
                    F(r.two_step.averaged.ln_mean).c_str(), F(r.two_step.surge.ln_mean).c_str(),
                    F(r.pooled_ln).c_str(), F(r.share_measured).c_str(),
                    F(r.share_averaged).c_str(), F(r.share_surge).c_str(),
                    F(r.share_pooled).c_str());
        for (size_t v = 1; v < variants.size(); ++v) {
          std::printf(" %8s %6s", F(rows[v][i].pooled_ln).c_str(),
                      F(rows[v][i].share_pooled).c_str());
        }
        std::printf("%s\n", r.pooled_note.empty() ? "" : absl::StrCat("  [", r.pooled_note, "]").c_str());
      }
      std::printf("  (ln lr; shares of the best seed-mean improvement at B)\n");
    }
    std::printf("  %-48s %3s %9s %8s %10s %11s\n", "method (interior, held out)", "N", "mean|err|",
                "rms err", "mean share", "worst share");
    for (size_t v = 0; v < variants.size(); ++v) {
      StatsLine(variants[v].name,
                fit::SummarizeMethod(rows[v], fit::HoldOutMethod::kPooled, st.stage_id));
    }
    // The two-step methods on the default variant's common set.
    StatsLine("two-step model average",
              fit::SummarizeMethod(rows[0], fit::HoldOutMethod::kAveraged, st.stage_id));
    StatsLine("two-step surge law alone",
              fit::SummarizeMethod(rows[0], fit::HoldOutMethod::kSurge, st.stage_id));
    // Reference: the share at the measured optimum itself, same rows.
    double sum = 0.0, worst = HUGE_VAL;
    int n = 0;
    for (const fit::PooledHoldOutRow& r : rows[0]) {
      if (r.two_step.stage_id != st.stage_id || r.two_step.kind != fit::HoldOutKind::kInterior ||
          !std::isfinite(r.pooled_ln) || !std::isfinite(r.share_measured)) {
        continue;
      }
      sum += r.share_measured;
      worst = std::min(worst, r.share_measured);
      ++n;
    }
    std::printf("  %-48s %3d %9s %8s %10s %11s\n", "(reference: full-data two-step optimum)", n,
                "0", "0", F(n > 0 ? sum / n : NAN, "%.4f").c_str(),
                F(n > 0 ? worst : NAN, "%.4f").c_str());
    for (size_t v = 0; v < variants.size(); ++v) {
      int failed = 0;
      for (const fit::PooledHoldOutRow& r : rows[v]) {
        if (r.two_step.stage_id == st.stage_id && r.two_step.kind == fit::HoldOutKind::kInterior &&
            !std::isfinite(r.pooled_ln)) {
          ++failed;
        }
      }
      if (failed > 0) {
        std::printf("  note: %s: %d interior refit(s) without a prediction (left out)\n",
                    variants[v].name.c_str(), failed);
      }
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "pooled improvement-surface fit vs the two-step pipeline, leave one batch size out.\n"
      "Usage: surge-pooled --db=FILE --job=NAME[,NAME...] [--detail] [--edge]");
  absl::FlagsUsageConfig usage_config;
  usage_config.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "surge_pooled.cc");
  };
  absl::SetFlagsUsageConfig(usage_config);
  absl::ParseCommandLine(argc, argv);
  const std::string db = absl::GetFlag(FLAGS_db);
  const std::string jobs = absl::GetFlag(FLAGS_job);
  if (db.empty() || jobs.empty()) {
    std::cerr << "surge-pooled: --db and --job are required\n"
              << absl::ProgramUsageMessage() << "\n";
    return 2;
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto store = surge::tools::OpenReadOnlyStore(db);
  if (!store.ok()) return Fail(std::string(store.status().message()));
  for (absl::string_view job : absl::StrSplit(jobs, ',', absl::SkipEmpty())) {
    if (int rc = RunJob(**store, db, std::string(job)); rc != 0) return rc;
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("\nsurge-pooled: %.2f s\n", secs);
  return 0;
}
