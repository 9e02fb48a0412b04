// Evidence: turns a job's stored runs, records and measured optima into the
// fitting library's input (fit::JobInput), following the mapping documented
// in surge.proto ("Evidence that a fit uses").
#ifndef SURGE_SERVER_CORE_EVIDENCE_H_
#define SURGE_SERVER_CORE_EVIDENCE_H_

#include <string>

#include "absl/status/statusor.h"
#include "server/fit/fit_job.h"
#include "server/store/store.h"
#include "surge/v1/surge.pb.h"

namespace surge::core {

struct Evidence {
  fit::JobInput input;
  surge::v1::FitInputs summary;
  std::vector<std::string> notes;  // what was left out and why
};

// Ad hoc settings for plain runs that replace the job's declared ones
// (GetFit with target_losses / k_steps; `surge fit --targets`).
struct EvidenceOverrides {
  std::vector<double> target_losses;  // empty: the job's
  int k_steps = 0;                    // 0: the job's
};

// Reads everything a fit needs for `job` through `reader`: probe runs, full
// runs, measured optima, every plain run's records (as columns: step,
// examples, lr, loss, eval_loss), the loss-curve run's sample and gradient
// statistics. Errors: NOT_FOUND (job), INTERNAL (storage).
absl::StatusOr<Evidence> LoadEvidence(store::Store& reader, const std::string& job,
                                      const EvidenceOverrides& overrides = {});

}  // namespace surge::core

#endif  // SURGE_SERVER_CORE_EVIDENCE_H_
