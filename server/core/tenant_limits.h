// TenantLimits: what one tenant's ingest may take of the server, so that one
// tenant cannot crowd out the others: open Ingest streams, records per second
// and serialized bytes waiting for commit. Over a limit the call (or the
// stream, after acking what came before) ends with RESOURCE_EXHAUSTED, which
// names the limit. 0 means unlimited. Thread-safe.
#ifndef SURGE_SERVER_CORE_TENANT_LIMITS_H_
#define SURGE_SERVER_CORE_TENANT_LIMITS_H_

#include <cstdint>
#include <mutex>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/core/options.h"

namespace surge::core {

class TenantLimits {
 public:
  explicit TenantLimits(const TenantLimitOptions& options) : options_(options) {}

  // A stream opens / closes. RESOURCE_EXHAUSTED when the tenant has
  // max_streams open (the stream must then not call CloseStream).
  absl::Status OpenStream(const std::string& tenant);
  void CloseStream(const std::string& tenant);

  // A batch of `records` records and `bytes` bytes is about to be queued.
  // Records per second: a token bucket of one second's worth, refilled
  // continuously,  tokens(t) = min(rate, tokens(t0) + rate * (t - t0));
  // a batch passes while tokens > 0 and takes `records` (it may go below 0,
  // so a batch larger than one second's worth passes once, then waits).
  absl::Status AdmitBatch(const std::string& tenant, int64_t records, int64_t bytes,
                          absl::Time now);
  // The batch admitted with `bytes` was committed or failed.
  void ReleaseBytes(const std::string& tenant, int64_t bytes);

  const TenantLimitOptions& options() const { return options_; }

 private:
  struct State {
    int streams = 0;
    double tokens = 0;
    absl::Time refilled = absl::InfinitePast();
    int64_t queued_bytes = 0;
  };

  const TenantLimitOptions options_;
  std::mutex mu_;
  absl::flat_hash_map<std::string, State> states_;
};

}  // namespace surge::core

#endif  // SURGE_SERVER_CORE_TENANT_LIMITS_H_
