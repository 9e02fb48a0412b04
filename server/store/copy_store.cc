// Implementation of CopyStore and VerifyCopy (see copy_store.h).
#include "server/store/copy_store.h"

#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/util/status_macros.h"

namespace surge::store {
namespace {

constexpr int kPage = 50000;  // records read and written per step

// FNV-1a, 64 bit: h = (h XOR byte) * 1099511628211 for each byte.
void Mix(uint64_t& h, const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
}
template <typename T>
void MixValue(uint64_t& h, T v) {
  Mix(h, &v, sizeof(v));
}

// The values of a record that a copy must keep (not its run name, which the
// reads fill in or not depending on the call).
void MixRecord(uint64_t& h, const surge::v1::Record& r) {
  MixValue(h, r.step());
  MixValue(h, r.examples());
  MixValue(h, r.lr());
  MixValue(h, r.loss());
  MixValue(h, r.has_eval_loss());
  if (r.has_eval_loss()) MixValue(h, r.eval_loss());
  MixValue(h, r.has_grad_stats());
  if (r.has_grad_stats()) {
    MixValue(h, r.grad_stats().grad_sq_small());
    MixValue(h, r.grad_stats().grad_sq_big());
    MixValue(h, r.grad_stats().b_small());
    MixValue(h, r.grad_stats().b_big());
  }
}

// Calls `page` with each page of one run's records, in step order.
absl::Status ForEachRecordPage(Store& store, int64_t job_id, int64_t run_id,
                               const std::function<absl::Status(RecordPage&)>& page) {
  RecordCursor after{run_id, -1};
  while (true) {
    SURGE_ASSIGN_OR_RETURN(RecordPage p, store.ListRecords(job_id, run_id, after, kPage));
    SURGE_RETURN_IF_ERROR(page(p));
    if (!p.next) return absl::OkStatus();
    after = *p.next;
  }
}

absl::StatusOr<RunDigest> Digest(Store& store, const std::string& job, int64_t job_id,
                                 int64_t run_id, const std::string& run) {
  RunDigest d{job, run, 0, 14695981039346656037ull};
  SURGE_RETURN_IF_ERROR(ForEachRecordPage(store, job_id, run_id, [&](RecordPage& p) {
    for (const surge::v1::Record& r : p.records) MixRecord(d.checksum, r);
    d.records += static_cast<int64_t>(p.records.size());
    return absl::OkStatus();
  }));
  return d;
}

// Copies one job; its name is not in `to` yet.
absl::Status CopyJob(Store& from, Store& to, const surge::v1::Job& job, CopyReport& report) {
  SURGE_ASSIGN_OR_RETURN(int64_t from_job, from.JobId(job.name()));
  surge::v1::Job created = job;
  SURGE_RETURN_IF_ERROR(to.CreateJob(created, job.create_time_us()).status());
  SURGE_ASSIGN_OR_RETURN(int64_t to_job, to.JobId(job.name()));
  ++report.jobs;
  SURGE_ASSIGN_OR_RETURN(auto runs, from.ListRunsWithIds(job.name()));
  for (const auto& [from_run, run] : runs) {
    SURGE_RETURN_IF_ERROR(to.CreateRun(job.name(), run, run.create_time_us()).status());
    SURGE_ASSIGN_OR_RETURN(RunKey key, to.LookupRun(job.name(), run.name()));
    ++report.runs;
    SURGE_RETURN_IF_ERROR(ForEachRecordPage(from, from_job, from_run, [&](RecordPage& p) {
      if (p.records.empty()) return absl::OkStatus();
      surge::v1::IngestRequest batch;
      batch.set_job(job.name());
      for (surge::v1::Record& r : p.records) {
        r.set_run(run.name());
        *batch.add_records() = std::move(r);
      }
      const std::vector<int64_t> run_ids(static_cast<size_t>(batch.records_size()), key.run_id);
      const RecordBatch group[] = {{&batch, &run_ids}};
      GroupResult written = to.WriteGroup(group, job.update_time_us(), nullptr);
      SURGE_RETURN_IF_ERROR(written.commit);
      SURGE_RETURN_IF_ERROR(written.batches[0].status());
      report.records += written.batches[0]->stored;
      return absl::OkStatus();
    }));
  }
  SURGE_ASSIGN_OR_RETURN(std::vector<surge::v1::MeasuredOptimum> optima, from.ListOptima(from_job));
  if (!optima.empty()) {
    SURGE_RETURN_IF_ERROR(to.AddOptima(to_job, optima));
    report.optima += static_cast<int64_t>(optima.size());
  }
  SURGE_ASSIGN_OR_RETURN(std::optional<surge::v1::Fit> fit, from.LatestFit(from_job));
  if (fit.has_value()) {
    SURGE_RETURN_IF_ERROR(to.InsertFit(to_job, *fit).status());
    ++report.fits;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CopyReport> CopyStore(
    Store& from, Store& to, const std::function<void(const std::string& job)>& progress) {
  SURGE_ASSIGN_OR_RETURN(std::vector<surge::v1::Job> jobs, from.ListJobs());
  // Refuse before writing anything when a name is taken on the other side.
  for (const surge::v1::Job& job : jobs) {
    absl::StatusOr<surge::v1::Job> there = to.GetJob(job.name());
    if (there.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the destination already has a job '", job.name(),
          "'; copy into an empty database (nothing was copied)"));
    }
    if (!absl::IsNotFound(there.status())) return there.status();
  }
  CopyReport report;
  for (const surge::v1::Job& job : jobs) {
    absl::Status copied = CopyJob(from, to, job, report);
    if (!copied.ok()) {
      return absl::Status(copied.code(),
                          absl::StrCat("copying job '", job.name(), "': ", copied.message()));
    }
    if (progress) progress(job.name());
  }
  return report;
}

absl::StatusOr<VerifyReport> VerifyCopy(Store& from, Store& to) {
  VerifyReport report;
  SURGE_ASSIGN_OR_RETURN(std::vector<surge::v1::Job> jobs, from.ListJobs());
  SURGE_ASSIGN_OR_RETURN(std::vector<surge::v1::Job> to_jobs, to.ListJobs());
  if (to_jobs.size() != jobs.size()) {
    report.problems.push_back(absl::StrCat("the source has ", jobs.size(),
                                           " jobs, the destination ", to_jobs.size()));
  }
  for (const surge::v1::Job& job : jobs) {
    absl::StatusOr<int64_t> to_job = to.JobId(job.name());
    if (!to_job.ok()) {
      report.problems.push_back(absl::StrCat("job '", job.name(), "' is missing"));
      continue;
    }
    SURGE_ASSIGN_OR_RETURN(int64_t from_job, from.JobId(job.name()));
    SURGE_ASSIGN_OR_RETURN(surge::v1::Job copied, to.GetJob(job.name()));
    if (copied.tenant() != job.tenant()) {
      report.problems.push_back(absl::StrCat("job '", job.name(), "': tenant '", copied.tenant(),
                                             "', not '", job.tenant(), "'"));
    }
    SURGE_ASSIGN_OR_RETURN(auto runs, from.ListRunsWithIds(job.name()));
    SURGE_ASSIGN_OR_RETURN(auto to_runs, to.ListRunsWithIds(job.name()));
    if (to_runs.size() != runs.size()) {
      report.problems.push_back(absl::StrCat("job '", job.name(), "': ", runs.size(),
                                             " runs in the source, ", to_runs.size(),
                                             " in the destination"));
    }
    for (const auto& [from_run, run] : runs) {
      SURGE_ASSIGN_OR_RETURN(RunDigest want, Digest(from, job.name(), from_job, from_run,
                                                    run.name()));
      report.runs.push_back(want);
      absl::StatusOr<RunKey> key = to.LookupRun(job.name(), run.name());
      if (!key.ok()) {
        report.problems.push_back(
            absl::StrCat("job '", job.name(), "', run '", run.name(), "' is missing"));
        continue;
      }
      SURGE_ASSIGN_OR_RETURN(RunDigest got,
                             Digest(to, job.name(), *to_job, key->run_id, run.name()));
      if (got.records != want.records || got.checksum != want.checksum) {
        report.problems.push_back(absl::StrCat(
            "job '", job.name(), "', run '", run.name(), "': ", got.records,
            " records with checksum ", absl::Hex(got.checksum), " in the destination, ",
            want.records, " with checksum ", absl::Hex(want.checksum), " in the source"));
      }
    }
  }
  return report;
}

}  // namespace surge::store
