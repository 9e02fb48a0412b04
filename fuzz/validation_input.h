// The input of fuzz_validation: one byte naming the message (below, modulo
// the count), then the message's protobuf wire format. Shared by the target
// and make_seeds.cc.
#ifndef SURGE_FUZZ_VALIDATION_INPUT_H_
#define SURGE_FUZZ_VALIDATION_INPUT_H_

#include <cstdint>
#include <memory>

#include "google/protobuf/message.h"
#include "surge/v1/surge.pb.h"

namespace surge::fuzz {

enum class ValidationKind : uint8_t {
  kIngestBatch = 0,  // IngestRequest -> ValidateIngestBatch, ValidateRecord
  kRun = 1,          // Run -> ValidateRun
  kJob = 2,          // Job -> ValidateJob
  kOptima = 3,       // AddOptimaRequest -> ValidateOptima
  kAdvice = 4,       // GetAdviceRequest -> ValidateAdviceRequest
  kFit = 5,          // GetFitRequest -> ValidateFitRequest
};
inline constexpr int kValidationKinds = 6;

inline ValidationKind KindOf(uint8_t byte) {
  return static_cast<ValidationKind>(byte % kValidationKinds);
}

inline std::unique_ptr<google::protobuf::Message> NewMessage(ValidationKind kind) {
  switch (kind) {
    case ValidationKind::kIngestBatch: return std::make_unique<surge::v1::IngestRequest>();
    case ValidationKind::kRun: return std::make_unique<surge::v1::Run>();
    case ValidationKind::kJob: return std::make_unique<surge::v1::Job>();
    case ValidationKind::kOptima: return std::make_unique<surge::v1::AddOptimaRequest>();
    case ValidationKind::kAdvice: return std::make_unique<surge::v1::GetAdviceRequest>();
    case ValidationKind::kFit: return std::make_unique<surge::v1::GetFitRequest>();
  }
  return nullptr;
}

}  // namespace surge::fuzz

#endif  // SURGE_FUZZ_VALIDATION_INPUT_H_
