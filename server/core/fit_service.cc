// Implementation of FitService (see fit_service.h).
#include "server/core/fit_service.h"

#include <algorithm>
#include <chrono>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/message_differencer.h"
#include "server/core/evidence.h"
#include "server/core/fit_convert.h"
#include "server/util/status_macros.h"

namespace surge::core {

FitService::FitService(ReaderPool* readers, WriteQueue* writes, const FitServiceOptions& options)
    : readers_(readers), writes_(writes), options_(options) {
  for (int i = 0; i < std::max(1, options_.threads); ++i) threads_.emplace_back([this] { Loop(); });
  if (options_.shared_poll > absl::ZeroDuration()) {
    threads_.emplace_back([this] { PollSharedVersions(); });
  }
}

void FitService::PollSharedVersions() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, absl::ToChronoMicroseconds(options_.shared_poll),
                   [&] { return stopping_; });
      if (stopping_) return;
    }
    absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> versions;
    {
      absl::StatusOr<ReaderPool::Lease> reader = readers_->Acquire();
      if (!reader.ok()) continue;
      versions = (*reader)->LatestFitVersions();
    }
    if (!versions.ok()) continue;  // the database is away: try at the next poll
    const absl::Time now = absl::Now();
    std::lock_guard<std::mutex> lock(mu_);
    bool any = false;
    for (const auto& [job, version] : *versions) {
      auto it = latest_.find(job);
      if (it == latest_.end() || it->second->proto.version() >= version) continue;
      // Due at once: another replica already waited out the debounce.
      const absl::Time due = now - options_.debounce;
      auto [d, inserted] = dirty_.try_emplace(job, Dirty{due, due});
      if (!inserted) d->second.first = std::min(d->second.first, due);
      any = true;
    }
    if (any) cv_.notify_all();
  }
}

FitService::~FitService() { Stop(); }

void FitService::MarkDirty(const std::string& job) {
  absl::Time now = absl::Now();
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, inserted] = dirty_.try_emplace(job, Dirty{now, now});
  if (!inserted) it->second.last = now;
  cv_.notify_all();
}

void FitService::Forget(const std::string& job) {
  std::lock_guard<std::mutex> lock(mu_);
  dirty_.erase(job);
  latest_.erase(job);
  job_mu_.erase(job);  // a holder keeps its copy alive
}

void FitService::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

bool FitService::stopping() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stopping_;
}

FitServiceStats FitService::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

absl::StatusOr<std::shared_ptr<const FitEntry>> FitService::Latest(const std::string& job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = latest_.find(job);
    if (it != latest_.end()) return it->second;
  }
  return Compute(job, /*reuse_published=*/true);
}

std::shared_ptr<std::mutex> FitService::JobMutex(const std::string& job) {
  std::lock_guard<std::mutex> lock(mu_);
  std::shared_ptr<std::mutex>& m = job_mu_[job];
  if (m == nullptr) m = std::make_shared<std::mutex>();
  return m;
}

std::shared_ptr<const FitEntry> FitService::WaitNewer(const std::string& job,
                                                      int64_t after_version,
                                                      absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  std::shared_ptr<const FitEntry> found;
  auto ready = [&] {
    if (stopping_) return true;
    auto it = latest_.find(job);
    if (it != latest_.end() && it->second->proto.version() > after_version) {
      found = it->second;
      return true;
    }
    return false;
  };
  cv_.wait_for(lock, std::chrono::microseconds(absl::ToInt64Microseconds(timeout)), ready);
  return found;
}

absl::StatusOr<surge::v1::Fit> FitService::ComputeAdHoc(const std::string& job,
                                                        const EvidenceOverrides& overrides) {
  absl::Time start = absl::Now();
  Evidence evidence;
  {
    SURGE_ASSIGN_OR_RETURN(auto reader, readers_->Acquire());
    SURGE_ASSIGN_OR_RETURN(evidence, LoadEvidence(*reader, job, overrides));
  }
  absl::StatusOr<fit::JobFit> result = fit::FitJob(evidence.input, options_.fit);
  surge::v1::Fit proto;
  proto.set_job(job);
  proto.set_create_time_us(absl::ToUnixMicros(absl::Now()));
  *proto.mutable_inputs() = evidence.summary;
  for (const auto& note : evidence.notes) proto.add_notes(note);
  if (result.ok()) {
    JobFitToProto(*result, &proto);
  } else {
    proto.set_error(std::string(result.status().message()));
  }
  proto.set_fit_ms(absl::ToDoubleMilliseconds(absl::Now() - start));
  return proto;
}

absl::StatusOr<std::shared_ptr<const FitEntry>> FitService::Compute(const std::string& job,
                                                                    bool reuse_published) {
  const std::shared_ptr<std::mutex> job_mu = JobMutex(job);
  std::lock_guard<std::mutex> job_lock(*job_mu);
  if (reuse_published) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = latest_.find(job);
    if (it != latest_.end()) return it->second;
  }
  if (options_.inside_fit_for_testing) options_.inside_fit_for_testing(job);
  absl::Time start = absl::Now();
  Evidence evidence;
  {
    SURGE_ASSIGN_OR_RETURN(auto reader, readers_->Acquire());
    SURGE_ASSIGN_OR_RETURN(evidence, LoadEvidence(*reader, job));
  }
  auto entry = std::make_shared<FitEntry>();
  absl::StatusOr<fit::JobFit> result = fit::FitJob(evidence.input, options_.fit);
  surge::v1::Fit& proto = entry->proto;
  proto.set_job(job);
  proto.set_create_time_us(absl::ToUnixMicros(absl::Now()));
  *proto.mutable_inputs() = evidence.summary;
  for (const auto& note : evidence.notes) proto.add_notes(note);
  if (result.ok()) {
    JobFitToProto(*result, &proto);
    entry->fit = std::move(*result);
  } else {
    entry->status = result.status();
    proto.set_error(std::string(result.status().message()));
  }
  absl::Duration fit_time = absl::Now() - start;
  double fit_ms = absl::ToDoubleMilliseconds(fit_time);
  proto.set_fit_ms(fit_ms);
  if (options_.on_fit) options_.on_fit(fit_time, result.ok());

  // Store as the next version unless the newest stored fit had the same
  // inputs (then its version is adopted: another replica, or this one
  // before a restart, stored this very fit). Only the holder of the job's
  // fit lease stores; without it the fit is served with the newest stored
  // version and the job is fitted again later.
  enum class Outcome { kStored, kSame, kNotLeased };
  surge::v1::Fit* to_store = &proto;
  SURGE_ASSIGN_OR_RETURN(
      Outcome outcome,
      writes_->Run<Outcome>([&job, to_store](store::Store& s) -> absl::StatusOr<Outcome> {
        SURGE_ASSIGN_OR_RETURN(int64_t job_id, s.JobId(job));
        SURGE_ASSIGN_OR_RETURN(bool leased, s.TryLeaseFit(job_id));
        absl::StatusOr<Outcome> result = [&]() -> absl::StatusOr<Outcome> {
          SURGE_ASSIGN_OR_RETURN(std::optional<surge::v1::Fit> previous, s.LatestFit(job_id));
          if (previous &&
              google::protobuf::util::MessageDifferencer::Equals(previous->inputs(),
                                                                 to_store->inputs()) &&
              previous->error() == to_store->error()) {
            to_store->set_version(previous->version());
            to_store->set_create_time_us(previous->create_time_us());
            return Outcome::kSame;
          }
          if (!leased) {
            to_store->set_version(previous ? previous->version() : 0);
            return Outcome::kNotLeased;
          }
          SURGE_RETURN_IF_ERROR(s.InsertFit(job_id, *to_store).status());
          return Outcome::kStored;
        }();
        if (leased) s.ReleaseFitLease(job_id).IgnoreError();
        return result;
      }));
  const bool stored = outcome == Outcome::kStored;
  if (outcome == Outcome::kNotLeased) MarkDirty(job);  // another replica is storing

  std::shared_ptr<const FitEntry> published = std::move(entry);
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.fits_computed;
    if (stored) ++stats_.fits_stored;
    stats_.last_fit_ms = fit_ms;
    auto it = latest_.find(job);
    if (it == latest_.end() || it->second->proto.version() <= published->proto.version()) {
      latest_[job] = published;
    }
  }
  cv_.notify_all();
  return published;
}

void FitService::Loop() {
  while (true) {
    std::string job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      while (!stopping_) {
        absl::Time now = absl::Now();
        absl::Time next_due = absl::InfiniteFuture();
        for (const auto& [name, d] : dirty_) {
          if (running_.contains(name)) continue;  // one fit per job at a time
          absl::Time due = std::min(d.last + options_.debounce, d.first + options_.max_delay);
          if (due <= now) {
            job = name;
            break;
          }
          next_due = std::min(next_due, due);
        }
        if (!job.empty()) break;
        if (next_due == absl::InfiniteFuture()) {
          cv_.wait(lock);
        } else {
          cv_.wait_for(lock, std::chrono::microseconds(
                                 absl::ToInt64Microseconds(next_due - now) + 1));
        }
      }
      if (stopping_) return;
      dirty_.erase(job);
      running_.insert(job);
    }
    if (options_.before_fit_for_testing) options_.before_fit_for_testing(job);
    absl::StatusOr<std::shared_ptr<const FitEntry>> fitted =
        Compute(job, /*reuse_published=*/false);
    if (!fitted.ok() && !absl::IsNotFound(fitted.status())) {
      std::cerr << "surge-server: fit of job '" << job << "' failed: " << fitted.status() << "\n";
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      running_.erase(job);
    }
    cv_.notify_all();  // the job may have been marked dirty while it ran
  }
}

}  // namespace surge::core
