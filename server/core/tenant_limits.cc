// Implementation of TenantLimits (see tenant_limits.h).
#include "server/core/tenant_limits.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace surge::core {

absl::Status TenantLimits::OpenStream(const std::string& tenant) {
  std::lock_guard<std::mutex> lock(mu_);
  State& s = states_[tenant];
  if (options_.max_streams > 0 && s.streams >= options_.max_streams) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "tenant '", tenant, "' has ", s.streams, " Ingest streams open, its limit (",
        options_.max_streams, "); close one or send more records per stream"));
  }
  ++s.streams;
  return absl::OkStatus();
}

void TenantLimits::CloseStream(const std::string& tenant) {
  std::lock_guard<std::mutex> lock(mu_);
  State& s = states_[tenant];
  s.streams = std::max(0, s.streams - 1);
}

absl::Status TenantLimits::AdmitBatch(const std::string& tenant, int64_t records, int64_t bytes,
                                      absl::Time now) {
  std::lock_guard<std::mutex> lock(mu_);
  State& s = states_[tenant];
  if (options_.max_queued_bytes > 0 && s.queued_bytes > 0 &&
      s.queued_bytes + bytes > options_.max_queued_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "tenant '", tenant, "' has ", s.queued_bytes, " bytes waiting for commit; with this ",
        bytes, "-byte batch it would pass its limit of ", options_.max_queued_bytes,
        " bytes; wait for acks before sending more"));
  }
  if (options_.max_records_per_s > 0) {
    const double rate = options_.max_records_per_s;
    if (s.refilled == absl::InfinitePast()) {
      s.tokens = rate;
    } else {
      s.tokens = std::min(rate, s.tokens + rate * absl::ToDoubleSeconds(now - s.refilled));
    }
    s.refilled = now;
    if (s.tokens <= 0) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "tenant '", tenant, "' is over its limit of ", rate,
          " records per second; retry in ", std::max(0.001, (1 - s.tokens) / rate), " s"));
    }
    s.tokens -= static_cast<double>(records);
  }
  s.queued_bytes += bytes;
  return absl::OkStatus();
}

void TenantLimits::ReleaseBytes(const std::string& tenant, int64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  State& s = states_[tenant];
  s.queued_bytes = std::max<int64_t>(0, s.queued_bytes - bytes);
}

}  // namespace surge::core
