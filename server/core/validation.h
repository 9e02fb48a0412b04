// Validation of every request that enters surge. Each function returns
// InvalidArgument with a message that names the field (and, for records, the
// index), e.g. "records[3].lr: must be finite and >= 0, got nan".
#ifndef SURGE_SERVER_CORE_VALIDATION_H_
#define SURGE_SERVER_CORE_VALIDATION_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "surge/v1/surge.pb.h"

namespace surge::core {

// Largest number of records accepted in one IngestRequest.
inline constexpr int kMaxRecordsPerBatch = 100000;
// Largest page of ListRecords.
inline constexpr int kMaxPageSize = 100000;
inline constexpr int kDefaultPageSize = 10000;

// Names of jobs and runs: 1-128 of [A-Za-z0-9._-], first a letter or digit.
absl::Status ValidateName(absl::string_view field, absl::string_view name);

absl::Status ValidateJob(const surge::v1::Job& job);
absl::Status ValidateRun(const surge::v1::Run& run);

// Validates one record; `index` is its position in the batch.
absl::Status ValidateRecord(const surge::v1::Record& record, int index);

// Validates the batch envelope (job name, seq ordering, size) and every
// record. `last_seq` is the previous seq on the stream (0 at the start).
absl::Status ValidateIngestBatch(const surge::v1::IngestRequest& request, uint64_t last_seq);

// AddOptima: at most 100,000 optima, each with stage >= 0, stage_loss > 0,
// batch_size > 0, lr_opt > 0 and lr_opt_se >= 0 (all finite).
absl::Status ValidateOptima(const surge::v1::AddOptimaRequest& request);

// GetAdvice: job name, batch_size finite and > 0, step >= 0 when present.
absl::Status ValidateAdviceRequest(const surge::v1::GetAdviceRequest& request);
// GetFit: the job name, and ad hoc target_losses (finite, > 0, <= 16) and k_steps.
absl::Status ValidateFitRequest(const surge::v1::GetFitRequest& request);

}  // namespace surge::core

#endif  // SURGE_SERVER_CORE_VALIDATION_H_
