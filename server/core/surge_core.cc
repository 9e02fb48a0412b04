// Implementation of SurgeCore: validation, then store calls on the right
// connection (writes on the writer thread, reads from the pool).
#include "server/core/surge_core.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "server/core/fit_convert.h"
#include "server/core/fit_service.h"
#include "server/core/ingest_stream.h"
#include "server/core/page_token.h"
#include "server/core/reader_pool.h"
#include "server/core/write_queue.h"
#include "server/store/open_store.h"
#include "server/core/validation.h"
#include "server/util/status_macros.h"

namespace surge::core {
namespace {

int64_t NowMicros() { return absl::ToUnixMicros(absl::Now()); }

}  // namespace

absl::StatusOr<std::unique_ptr<SurgeCore>> SurgeCore::Open(const CoreOptions& options) {
  // The writer opens first: it runs the migrations that readers rely on.
  SURGE_ASSIGN_OR_RETURN(store::DbTarget target, store::ParseDbTarget(options.db_path));
  store::StoreOptions store_options;
  store_options.wal_autocheckpoint_pages = options.wal_autocheckpoint_pages;
  if (options.unsafe_synchronous_normal_for_testing) {
    store_options.synchronous = store::StoreOptions::Synchronous::kNormal;
  }
  SURGE_ASSIGN_OR_RETURN(std::unique_ptr<store::Store> writer,
                         store::OpenStore(target, store_options));
  auto queue = std::make_unique<WriteQueue>(std::move(writer), options.write);
  auto readers = std::make_unique<ReaderPool>(target, options.max_readers);
  CoreOptions core_options = options;
  if (!target.sqlite() && core_options.fits.shared_poll == absl::ZeroDuration()) {
    // Replicas may share this database: follow the fits they store.
    core_options.fits.shared_poll = absl::Seconds(1);
  }
  std::unique_ptr<SurgeCore> core(
      new SurgeCore(std::move(queue), std::move(readers), core_options));
  SURGE_RETURN_IF_ERROR(core->auth_.Reload());
  return core;
}

absl::StatusOr<std::string> SurgeCore::TenantOf(const std::string& job) {
  {
    std::lock_guard<std::mutex> lock(tenant_mu_);
    auto it = tenant_of_.find(job);
    if (it != tenant_of_.end()) return it->second;
  }
  SURGE_ASSIGN_OR_RETURN(auto reader, readers_->Acquire());
  SURGE_ASSIGN_OR_RETURN(surge::v1::Job found, reader->GetJob(job));
  std::lock_guard<std::mutex> lock(tenant_mu_);
  tenant_of_[job] = found.tenant();
  return found.tenant();
}

void SurgeCore::ForgetTenant(const std::string& job) {
  std::lock_guard<std::mutex> lock(tenant_mu_);
  tenant_of_.erase(job);
}

absl::Status SurgeCore::Authorize(const Caller& caller, Permission needed,
                                  const std::string& job) {
  SURGE_RETURN_IF_ERROR(CheckRole(caller, needed));
  if (job.empty()) return absl::OkStatus();
  SURGE_ASSIGN_OR_RETURN(std::string tenant, TenantOf(job));
  if (tenant != caller.tenant) {
    // The same answer as for a job that does not exist.
    return absl::NotFoundError(absl::StrCat("job '", job, "' not found"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<IngestStream>> SurgeCore::OpenIngestStream(const Caller& caller) {
  SURGE_RETURN_IF_ERROR(CheckRole(caller, Permission::kWrite));
  SURGE_RETURN_IF_ERROR(tenant_limits_.OpenStream(caller.tenant));
  return std::make_unique<IngestStream>(this, caller, /*holds_slot=*/true);
}

SurgeCore::SurgeCore(std::unique_ptr<WriteQueue> write_queue, std::unique_ptr<ReaderPool> readers,
                     const CoreOptions& options)
    : write_queue_(std::move(write_queue)),
      readers_(std::move(readers)),
      fits_(std::make_unique<FitService>(readers_.get(), write_queue_.get(), options.fits)),
      auth_(options.tokens_file),
      tenant_limits_(options.tenant_limits) {}

SurgeCore::~SurgeCore() { Shutdown(); }

std::shared_ptr<const FitEntry> SurgeCore::WaitNewerFit(const std::string& job,
                                                        int64_t after_version,
                                                        absl::Duration timeout) {
  return fits_->WaitNewer(job, after_version, timeout);
}

bool SurgeCore::stopping() const { return fits_->stopping(); }
void SurgeCore::StopFits() { fits_->Stop(); }
void SurgeCore::OnRecordsStored(const std::string& job) { fits_->MarkDirty(job); }

std::unique_ptr<IngestStream> SurgeCore::OpenIngestStream() {
  return std::make_unique<IngestStream>(this, Caller::Local(), /*holds_slot=*/false);
}

void SurgeCore::Shutdown() {
  fits_->Stop();
  write_queue_->Stop();
}

absl::StatusOr<surge::v1::Job> SurgeCore::CreateJob(const surge::v1::CreateJobRequest& request,
                                                    const Caller& caller) {
  SURGE_RETURN_IF_ERROR(CheckRole(caller, Permission::kWrite));
  SURGE_RETURN_IF_ERROR(ValidateJob(request.job()));
  surge::v1::Job job = request.job();
  job.set_tenant(caller.tenant);
  return write_queue_->Run<surge::v1::Job>(
      [job](store::Store& s) { return s.CreateJob(job, NowMicros()); });
}

absl::StatusOr<surge::v1::Job> SurgeCore::GetJob(const surge::v1::GetJobRequest& request,
                                                 const Caller& caller) {
  SURGE_RETURN_IF_ERROR(ValidateName("name", request.name()));
  SURGE_RETURN_IF_ERROR(Authorize(caller, Permission::kRead, request.name()));
  SURGE_ASSIGN_OR_RETURN(auto reader, readers_->Acquire());
  return reader->GetJob(request.name());
}

namespace {

// Page sizes of ListJobs and ListRuns: page_size (0: the default), and a
// page ends before it would pass kMaxListPageBytes.
constexpr int kDefaultListPage = 1000;
constexpr int kMaxListPage = 10000;
constexpr size_t kMaxListPageBytes = size_t{4} << 20;

absl::StatusOr<int> ListPageSize(int32_t page_size) {
  if (page_size < 0 || page_size > kMaxListPage) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size: must be in 0..", kMaxListPage, " (0: ", kDefaultListPage,
                     "), got ", page_size));
  }
  return page_size == 0 ? kDefaultListPage : page_size;
}

absl::Status BadToken(absl::string_view token) {
  return absl::InvalidArgumentError(absl::StrCat(
      "page_token: malformed '", token.substr(0, 64),
      "' (pass next_page_token of the previous response unchanged)"));
}

// Moves items into `out` until `limit` or the byte budget (at least one);
// true when items were left over (a next page exists).
template <typename T, typename Add>
bool FillPage(std::vector<T>& items, int limit, Add add) {
  size_t bytes = 0;
  int n = 0;
  for (T& item : items) {
    const size_t size = item.ByteSizeLong() + 8;
    if (n == limit || (n > 0 && bytes + size > kMaxListPageBytes)) return true;
    bytes += size;
    ++n;
    add(std::move(item));
  }
  return false;
}

}  // namespace

absl::StatusOr<surge::v1::ListJobsResponse> SurgeCore::ListJobs(
    const surge::v1::ListJobsRequest& request, const Caller& caller) {
  SURGE_RETURN_IF_ERROR(CheckRole(caller, Permission::kRead));
  SURGE_ASSIGN_OR_RETURN(int limit, ListPageSize(request.page_size()));
  std::string after;
  if (!request.page_token().empty()) {
    if (!absl::StartsWith(request.page_token(), "j1:")) return BadToken(request.page_token());
    after = request.page_token().substr(3);
    if (!ValidateName("page_token", after).ok()) return BadToken(request.page_token());
  }
  SURGE_ASSIGN_OR_RETURN(auto reader, readers_->Acquire());
  SURGE_ASSIGN_OR_RETURN(std::vector<surge::v1::Job> jobs, reader->ListJobsPage(after, limit + 1, caller.tenant));
  surge::v1::ListJobsResponse response;
  const bool more = FillPage(jobs, limit, [&](surge::v1::Job&& j) {
    *response.add_jobs() = std::move(j);
  });
  if (more && response.jobs_size() > 0) {
    response.set_next_page_token(absl::StrCat("j1:", response.jobs().rbegin()->name()));
  }
  return response;
}

absl::StatusOr<surge::v1::DeleteJobResponse> SurgeCore::DeleteJob(
    const surge::v1::DeleteJobRequest& request, const Caller& caller) {
  SURGE_RETURN_IF_ERROR(ValidateName("name", request.name()));
  SURGE_RETURN_IF_ERROR(Authorize(caller, Permission::kDelete, request.name()));
  std::string name = request.name();
  SURGE_ASSIGN_OR_RETURN(store::DeleteCounts counts,
                         write_queue_->Run<store::DeleteCounts>(
                             [name](store::Store& s) { return s.DeleteJob(name); }));
  fits_->Forget(name);
  ForgetTenant(name);
  surge::v1::DeleteJobResponse response;
  response.set_runs_deleted(counts.runs);
  response.set_records_deleted(counts.records);
  return response;
}

absl::StatusOr<surge::v1::DeleteRunResponse> SurgeCore::DeleteRun(
    const surge::v1::DeleteRunRequest& request, const Caller& caller) {
  SURGE_RETURN_IF_ERROR(ValidateName("job", request.job()));
  SURGE_RETURN_IF_ERROR(ValidateName("run", request.run()));
  SURGE_RETURN_IF_ERROR(Authorize(caller, Permission::kDelete, request.job()));
  const std::string job = request.job(), run = request.run();
  SURGE_ASSIGN_OR_RETURN(int64_t records,
                         write_queue_->Run<int64_t>([job, run](store::Store& s) {
                           return s.DeleteRun(job, run);
                         }));
  fits_->MarkDirty(job);
  surge::v1::DeleteRunResponse response;
  response.set_records_deleted(records);
  return response;
}

absl::StatusOr<surge::v1::Run> SurgeCore::CreateRun(const surge::v1::CreateRunRequest& request,
                                                    const Caller& caller) {
  SURGE_RETURN_IF_ERROR(ValidateName("job", request.job()));
  SURGE_RETURN_IF_ERROR(ValidateRun(request.run()));
  SURGE_RETURN_IF_ERROR(Authorize(caller, Permission::kWrite, request.job()));
  std::string job = request.job();
  surge::v1::Run run = request.run();
  return write_queue_->Run<surge::v1::Run>(
      [job, run](store::Store& s) { return s.CreateRun(job, run, NowMicros()); });
}

absl::StatusOr<surge::v1::ListRunsResponse> SurgeCore::ListRuns(
    const surge::v1::ListRunsRequest& request, const Caller& caller) {
  SURGE_RETURN_IF_ERROR(ValidateName("job", request.job()));
  SURGE_RETURN_IF_ERROR(Authorize(caller, Permission::kRead, request.job()));
  SURGE_ASSIGN_OR_RETURN(int limit, ListPageSize(request.page_size()));
  std::optional<std::pair<int64_t, std::string>> after;
  if (!request.page_token().empty()) {
    // "u1:<batch_size>:<name>" of the last run of the previous page.
    std::vector<std::string> parts = absl::StrSplit(request.page_token(), absl::MaxSplits(':', 2));
    int64_t batch = 0;
    if (parts.size() != 3 || parts[0] != "u1" || !absl::SimpleAtoi(parts[1], &batch) ||
        !ValidateName("page_token", parts[2]).ok()) {
      return BadToken(request.page_token());
    }
    after.emplace(batch, parts[2]);
  }
  SURGE_ASSIGN_OR_RETURN(auto reader, readers_->Acquire());
  SURGE_ASSIGN_OR_RETURN(std::vector<surge::v1::Run> runs,
                         reader->ListRunsPage(request.job(), after, limit + 1));
  surge::v1::ListRunsResponse response;
  const bool more = FillPage(runs, limit, [&](surge::v1::Run&& r) {
    *response.add_runs() = std::move(r);
  });
  if (more && response.runs_size() > 0) {
    const surge::v1::Run& last = *response.runs().rbegin();
    response.set_next_page_token(absl::StrCat("u1:", last.batch_size(), ":", last.name()));
  }
  return response;
}

absl::StatusOr<surge::v1::ListRecordsResponse> SurgeCore::ListRecords(
    const surge::v1::ListRecordsRequest& request, const Caller& caller) {
  SURGE_RETURN_IF_ERROR(ValidateName("job", request.job()));
  SURGE_RETURN_IF_ERROR(Authorize(caller, Permission::kRead, request.job()));
  if (!request.run().empty()) SURGE_RETURN_IF_ERROR(ValidateName("run", request.run()));
  if (request.page_size() < 0 || request.page_size() > kMaxPageSize) {
    return absl::InvalidArgumentError(absl::StrCat("page_size: must be in 0..", kMaxPageSize,
                                                   ", got ", request.page_size()));
  }
  int limit = request.page_size() == 0 ? kDefaultPageSize : request.page_size();
  store::RecordCursor after;
  if (!request.page_token().empty()) {
    SURGE_ASSIGN_OR_RETURN(after, DecodePageToken(request.page_token()));
  }
  SURGE_ASSIGN_OR_RETURN(auto reader, readers_->Acquire());
  std::optional<int64_t> run_id;
  int64_t job_id = 0;
  if (!request.run().empty()) {
    SURGE_ASSIGN_OR_RETURN(store::RunKey key, reader->LookupRun(request.job(), request.run()));
    run_id = key.run_id;
    job_id = key.job_id;
  } else {
    SURGE_ASSIGN_OR_RETURN(job_id, reader->JobId(request.job()));
  }
  SURGE_ASSIGN_OR_RETURN(store::RecordPage page,
                         reader->ListRecords(job_id, run_id, after, limit));
  surge::v1::ListRecordsResponse response;
  response.mutable_records()->Reserve(static_cast<int>(page.records.size()));
  for (auto& r : page.records) *response.add_records() = std::move(r);
  if (page.next) response.set_next_page_token(EncodePageToken(*page.next));
  return response;
}

absl::StatusOr<surge::v1::AddOptimaResponse> SurgeCore::AddOptima(
    const surge::v1::AddOptimaRequest& request, const Caller& caller) {
  SURGE_RETURN_IF_ERROR(ValidateName("job", request.job()));
  SURGE_RETURN_IF_ERROR(Authorize(caller, Permission::kWrite, request.job()));
  SURGE_RETURN_IF_ERROR(ValidateOptima(request));
  std::string job = request.job();
  std::vector<surge::v1::MeasuredOptimum> optima(request.optima().begin(),
                                                 request.optima().end());
  SURGE_RETURN_IF_ERROR(write_queue_->Run<bool>([job, optima](store::Store& s)
                                                    -> absl::StatusOr<bool> {
    SURGE_ASSIGN_OR_RETURN(int64_t job_id, s.JobId(job));
    SURGE_RETURN_IF_ERROR(s.AddOptima(job_id, optima));
    return true;
  }).status());
  fits_->MarkDirty(job);
  surge::v1::AddOptimaResponse response;
  response.set_stored(request.optima_size());
  return response;
}

absl::StatusOr<std::shared_ptr<const FitEntry>> SurgeCore::LatestFit(const std::string& job,
                                                                    const Caller& caller) {
  SURGE_RETURN_IF_ERROR(ValidateName("job", job));
  SURGE_RETURN_IF_ERROR(Authorize(caller, Permission::kRead, job));
  return fits_->Latest(job);
}

absl::StatusOr<surge::v1::Fit> SurgeCore::GetFit(const surge::v1::GetFitRequest& request,
                                                 const Caller& caller) {
  SURGE_RETURN_IF_ERROR(ValidateFitRequest(request));
  SURGE_RETURN_IF_ERROR(Authorize(caller, Permission::kRead, request.job()));
  if (request.target_losses().empty() && request.k_steps() == 0) {
    SURGE_ASSIGN_OR_RETURN(std::shared_ptr<const FitEntry> entry, fits_->Latest(request.job()));
    return entry->proto;
  }
  // Ad hoc settings: computed now, neither stored nor published (version 0).
  EvidenceOverrides overrides;
  overrides.target_losses.assign(request.target_losses().begin(), request.target_losses().end());
  overrides.k_steps = request.k_steps();
  return fits_->ComputeAdHoc(request.job(), overrides);
}

absl::StatusOr<surge::v1::Advice> SurgeCore::GetAdvice(
    const surge::v1::GetAdviceRequest& request, const Caller& caller) {
  SURGE_RETURN_IF_ERROR(ValidateAdviceRequest(request));
  SURGE_ASSIGN_OR_RETURN(std::shared_ptr<const FitEntry> entry,
                         LatestFit(request.job(), caller));
  if (!entry->fit) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job '", request.job(), "' has no usable fit yet: ", entry->status.message()));
  }
  std::optional<int64_t> step;
  if (request.has_step()) step = request.step();
  std::optional<fit::LrReference> reference;
  if (request.has_reference()) {
    const surge::v1::AdviceReference& r = request.reference();
    reference.emplace();
    reference->batch_size = r.batch_size();
    reference->lr = r.lr();
    if (r.has_step()) reference->step = r.step();
    if (r.has_loss()) reference->loss = r.loss();
  }
  SURGE_ASSIGN_OR_RETURN(fit::Advice advice,
                         fit::Advise(*entry->fit, request.batch_size(), step,
                                     request.criterion() == surge::v1::CRITERION_FASTEST
                                         ? fit::Criterion::kFastest
                                         : fit::Criterion::kImprovement,
                                     reference));
  surge::v1::Advice response;
  AdviceToProto(advice, &response);
  response.set_job(request.job());
  response.set_fit_version(entry->proto.version());
  return response;
}

absl::StatusOr<int64_t> SurgeCore::LookupRunId(const std::string& job, const std::string& run,
                                               const Caller& caller) {
  SURGE_RETURN_IF_ERROR(Authorize(caller, Permission::kWrite, job));
  SURGE_ASSIGN_OR_RETURN(auto reader, readers_->Acquire());
  SURGE_ASSIGN_OR_RETURN(store::RunKey key, reader->LookupRun(job, run));
  return key.run_id;
}

std::string EncodePageToken(const store::RecordCursor& cursor) {
  return absl::StrCat("r1:", cursor.run_id, ":", cursor.step);
}

absl::StatusOr<store::RecordCursor> DecodePageToken(const std::string& token) {
  std::vector<absl::string_view> parts = absl::StrSplit(token, ':');
  store::RecordCursor cursor;
  if (parts.size() != 3 || parts[0] != "r1" || !absl::SimpleAtoi(parts[1], &cursor.run_id) ||
      !absl::SimpleAtoi(parts[2], &cursor.step)) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_token: malformed ('", token, "'); pass next_page_token unchanged"));
  }
  return cursor;
}

}  // namespace surge::core
