// Fuzz target: the server's request validation (server/core/validation.h).
// The input is one byte naming the message and its protobuf wire format
// (validation_input.h); inputs that do not parse (bad wire format, invalid
// UTF-8 in a string) stop there, as gRPC would refuse them.
//
// Checked, besides "returns and never crashes" (ASan, UBSan):
//   * a refusal is INVALID_ARGUMENT (RESOURCE_EXHAUSTED for an oversized
//     batch) with a message that names the field ("records[3].lr: ...");
//   * a batch that passes has every record passing ValidateRecord and every
//     run name ValidateName; the same batch after its own seq is refused
//     with "seq: ...";
//   * validation is a function of the message: the message serialized and
//     parsed again gets the same status code.
// A custom mutator (proto_mutator.h) edits parsed messages field by field
// half of the time; the other half is libFuzzer's byte mutation.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "fuzz/proto_mutator.h"
#include "fuzz/validation_input.h"
#include "google/protobuf/stubs/logging.h"
#include "server/core/validation.h"

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace {

using surge::fuzz::ValidationKind;

void Fail(const char* what, const absl::Status& status) {
  std::fprintf(stderr, "fuzz_validation: %s: %s\n", what, status.ToString().c_str());
  std::abort();
}

absl::Status Validate(ValidationKind kind, const google::protobuf::Message& m) {
  namespace core = surge::core;
  switch (kind) {
    case ValidationKind::kIngestBatch:
      return core::ValidateIngestBatch(static_cast<const surge::v1::IngestRequest&>(m), 0);
    case ValidationKind::kRun:
      return core::ValidateRun(static_cast<const surge::v1::Run&>(m));
    case ValidationKind::kJob:
      return core::ValidateJob(static_cast<const surge::v1::Job&>(m));
    case ValidationKind::kOptima:
      return core::ValidateOptima(static_cast<const surge::v1::AddOptimaRequest&>(m));
    case ValidationKind::kAdvice:
      return core::ValidateAdviceRequest(static_cast<const surge::v1::GetAdviceRequest&>(m));
    case ValidationKind::kFit:
      return core::ValidateFitRequest(static_cast<const surge::v1::GetFitRequest&>(m));
  }
  return absl::OkStatus();
}

// A refusal names a field first: "records[3].lr: must be ...".
void CheckRefusal(const absl::Status& s) {
  if (!absl::IsInvalidArgument(s) && !absl::IsResourceExhausted(s)) Fail("unexpected code", s);
  const absl::string_view message = s.message();
  const size_t colon = message.find(": ");
  if (colon == absl::string_view::npos || colon == 0 || message[0] < 'a' || message[0] > 'z') {
    Fail("the message does not start with a field name", s);
  }
}

void CheckBatch(const surge::v1::IngestRequest& batch, const absl::Status& s) {
  if (surge::core::ValidateName("job", batch.job()).ok()) {
    const absl::Status again = surge::core::ValidateIngestBatch(batch, batch.seq());
    if (!absl::IsInvalidArgument(again) || !absl::StartsWith(again.message(), "seq: ")) {
      Fail("a batch at its own seq was not refused for seq", again);
    }
  }
  if (!s.ok()) return;
  for (int i = 0; i < batch.records_size(); ++i) {
    absl::Status r = surge::core::ValidateRecord(batch.records(i), i);
    if (r.ok()) r = surge::core::ValidateName("run", batch.records(i).run());
    if (!r.ok()) Fail("a batch passed with a bad record", r);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);  // parse errors of bad UTF-8 are expected
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const ValidationKind kind = surge::fuzz::KindOf(data[0]);
  std::unique_ptr<google::protobuf::Message> message = surge::fuzz::NewMessage(kind);
  if (!message->ParseFromArray(data + 1, static_cast<int>(size - 1))) return 0;

  const absl::Status status = Validate(kind, *message);
  if (!status.ok()) CheckRefusal(status);
  if (kind == ValidationKind::kIngestBatch) {
    CheckBatch(static_cast<const surge::v1::IngestRequest&>(*message), status);
  }
  std::unique_ptr<google::protobuf::Message> copy = surge::fuzz::NewMessage(kind);
  if (!copy->ParseFromString(message->SerializeAsString())) {
    Fail("a parsed message does not parse again", absl::OkStatus());
  }
  // Codes only: with several bad map entries (run.labels) the one named
  // first follows the map's iteration order, which differs between copies.
  const absl::Status again = Validate(kind, *copy);
  if (again.code() != status.code()) Fail("the same message validated differently", again);
  return 0;
}

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size,
                                          unsigned int seed) {
  std::minstd_rand rng(seed);
  if (size < 1 || rng() % 2 == 0) return LLVMFuzzerMutate(data, size, max_size);
  const ValidationKind kind = surge::fuzz::KindOf(data[0]);
  std::unique_ptr<google::protobuf::Message> message = surge::fuzz::NewMessage(kind);
  if (!message->ParseFromArray(data + 1, static_cast<int>(size - 1))) {
    return LLVMFuzzerMutate(data, size, max_size);
  }
  const int edits = 1 + static_cast<int>(rng() % 3);
  for (int i = 0; i < edits; ++i) surge::fuzz::MutateMessage(message.get(), rng);
  const std::string bytes = message->SerializeAsString();
  if (bytes.size() + 1 > max_size) return LLVMFuzzerMutate(data, size, max_size);
  std::memcpy(data + 1, bytes.data(), bytes.size());
  return bytes.size() + 1;
}
