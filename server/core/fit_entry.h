// FitEntry: one published fit of a job, as the fit service keeps it and the
// core hands it to readers (GetFit, GetAdvice, WatchFits). Immutable.
#ifndef SURGE_SERVER_CORE_FIT_ENTRY_H_
#define SURGE_SERVER_CORE_FIT_ENTRY_H_

#include <optional>

#include "absl/status/status.h"
#include "server/fit/fit_job.h"
#include "surge/v1/surge.pb.h"

namespace surge::core {

struct FitEntry {
  surge::v1::Fit proto;           // as stored (version, inputs, stages ...)
  std::optional<fit::JobFit> fit; // absent when the evidence cannot be fitted
  absl::Status status;            // why `fit` is absent
};

}  // namespace surge::core

#endif  // SURGE_SERVER_CORE_FIT_ENTRY_H_
