// Implementation of JsonApi (see json_api.h): query parsing and the calls.
#include "server/http/json_api.h"

#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/json_util.h"
#include "server/util/status_macros.h"

namespace surge::http {
namespace {

std::optional<std::string> Param(const QueryParams& query, const std::string& name) {
  auto it = query.find(name);
  if (it == query.end()) return std::nullopt;
  return it->second;
}

// No JSON response passes this: the message's binary size is checked before
// it is rendered (JSON is larger still), so a huge fit costs no rendering.
constexpr size_t kMaxResponseBytes = size_t{32} << 20;

template <typename Message>
absl::StatusOr<std::string> Render(absl::StatusOr<Message> result) {
  if (!result.ok()) return result.status();
  if (const size_t size = result->ByteSizeLong(); size > kMaxResponseBytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "response of ", size >> 20, " MiB is over the HTTP API's ", kMaxResponseBytes >> 20,
        " MiB cap; page through it (page_size, page_token) or use the gRPC API"));
  }
  return ToJson(*result);
}

}  // namespace

absl::StatusOr<std::string> ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  std::string out;
  auto status = google::protobuf::util::MessageToJsonString(message, &out, options);
  if (!status.ok()) {
    return absl::InternalError(absl::StrCat("JSON encoding failed: ", status.ToString()));
  }
  return out;
}

absl::Status CheckQuery(const QueryParams& query, std::initializer_list<const char*> allowed) {
  for (auto it = query.begin(); it != query.end(); ++it) {
    bool known = false;
    for (const char* name : allowed) known = known || it->first == name;
    if (!known) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown query parameter '", it->first, "'",
          allowed.size() == 0 ? " (this endpoint takes none)"
                              : absl::StrCat(" (allowed: ", absl::StrJoin(allowed, ", "), ")")));
    }
    if (query.count(it->first) > 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("query parameter '", it->first, "' given more than once"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<surge::v1::Criterion> ParseCriterion(const std::string& text) {
  if (text.empty()) return surge::v1::CRITERION_UNSPECIFIED;
  surge::v1::Criterion criterion;
  if (surge::v1::Criterion_Parse(text, &criterion)) return criterion;
  if (text == "improvement") return surge::v1::CRITERION_IMPROVEMENT;
  if (text == "fastest") return surge::v1::CRITERION_FASTEST;
  return absl::InvalidArgumentError(absl::StrCat(
      "criterion: unknown value '", text,
      "' (allowed: CRITERION_IMPROVEMENT, CRITERION_FASTEST, improvement, fastest)"));
}

absl::Status ParseReference(const QueryParams& query, surge::v1::GetAdviceRequest* request) {
  std::optional<std::string> ref_b = Param(query, "ref_batch_size");
  std::optional<std::string> ref_lr = Param(query, "ref_lr");
  const bool has_b = ref_b && !ref_b->empty(), has_lr = ref_lr && !ref_lr->empty();
  if (has_b != has_lr) {
    return absl::InvalidArgumentError(
        "ref_batch_size, ref_lr: give both (the batch size and the LR tuned there) or neither");
  }
  if (!has_b) {
    for (const char* only : {"ref_step", "ref_loss"}) {
      if (auto t = Param(query, only); t && !t->empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            only, ": needs ref_batch_size and ref_lr (the batch size and the LR tuned there)"));
      }
    }
    return absl::OkStatus();
  }
  surge::v1::AdviceReference* ref = request->mutable_reference();
  double v = 0;
  if (!absl::SimpleAtod(*ref_b, &v)) {
    return absl::InvalidArgumentError(absl::StrCat("ref_batch_size: not a number: '", *ref_b, "'"));
  }
  ref->set_batch_size(v);  // the core checks finite and > 0
  if (!absl::SimpleAtod(*ref_lr, &v)) {
    return absl::InvalidArgumentError(absl::StrCat("ref_lr: not a number: '", *ref_lr, "'"));
  }
  ref->set_lr(v);
  if (auto t = Param(query, "ref_step"); t && !t->empty()) {
    int64_t step = 0;
    if (!absl::SimpleAtoi(*t, &step)) {
      return absl::InvalidArgumentError(absl::StrCat("ref_step: not an integer: '", *t, "'"));
    }
    ref->set_step(step);
  }
  if (auto t = Param(query, "ref_loss"); t && !t->empty()) {
    if (!absl::SimpleAtod(*t, &v)) {
      return absl::InvalidArgumentError(absl::StrCat("ref_loss: not a number: '", *t, "'"));
    }
    ref->set_loss(v);
  }
  return absl::OkStatus();
}

// page_size and page_token of the list calls into the request.
template <typename Request>
absl::Status ParsePage(const QueryParams& query, Request* request) {
  if (auto token = Param(query, "page_token")) request->set_page_token(*token);
  if (auto size = Param(query, "page_size"); size && !size->empty()) {
    int32_t page_size = 0;
    if (!absl::SimpleAtoi(*size, &page_size)) {
      return absl::InvalidArgumentError(absl::StrCat("page_size: not an integer: '", *size, "'"));
    }
    request->set_page_size(page_size);  // the core checks the range
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> JsonApi::ListJobs(const QueryParams& query,
    const core::Caller& caller) {
  SURGE_RETURN_IF_ERROR(CheckQuery(query, {"page_size", "page_token"}));
  surge::v1::ListJobsRequest request;
  SURGE_RETURN_IF_ERROR(ParsePage(query, &request));
  return Render(core_->ListJobs(request, caller));
}

absl::StatusOr<std::string> JsonApi::GetJob(const std::string& job, const QueryParams& query,
    const core::Caller& caller) {
  SURGE_RETURN_IF_ERROR(CheckQuery(query, {}));
  surge::v1::GetJobRequest request;
  request.set_name(job);
  return Render(core_->GetJob(request, caller));
}

absl::StatusOr<std::string> JsonApi::ListRuns(const std::string& job, const QueryParams& query,
    const core::Caller& caller) {
  SURGE_RETURN_IF_ERROR(CheckQuery(query, {"page_size", "page_token"}));
  surge::v1::ListRunsRequest request;
  request.set_job(job);
  SURGE_RETURN_IF_ERROR(ParsePage(query, &request));
  return Render(core_->ListRuns(request, caller));
}

absl::StatusOr<std::string> JsonApi::ListRecords(const std::string& job,
    const QueryParams& query, const core::Caller& caller) {
  SURGE_RETURN_IF_ERROR(CheckQuery(query, {"run", "page_size", "page_token"}));
  surge::v1::ListRecordsRequest request;
  request.set_job(job);
  if (auto run = Param(query, "run")) request.set_run(*run);
  if (auto token = Param(query, "page_token")) request.set_page_token(*token);
  if (auto size = Param(query, "page_size")) {
    int32_t page_size = 0;
    if (!absl::SimpleAtoi(*size, &page_size)) {
      return absl::InvalidArgumentError(
          absl::StrCat("page_size: not an integer: '", *size, "'"));
    }
    request.set_page_size(page_size);  // the core checks the range 1..100000
  }
  return Render(core_->ListRecords(request, caller));
}

absl::StatusOr<std::string> JsonApi::GetFit(const std::string& job, const QueryParams& query,
    const core::Caller& caller) {
  SURGE_RETURN_IF_ERROR(CheckQuery(query, {}));
  surge::v1::GetFitRequest request;
  request.set_job(job);
  return Render(core_->GetFit(request, caller));
}

absl::StatusOr<std::string> JsonApi::GetAdvice(const std::string& job,
    const QueryParams& query, const core::Caller& caller) {
  SURGE_RETURN_IF_ERROR(CheckQuery(
      query, {"batch_size", "step", "criterion", "ref_batch_size", "ref_lr", "ref_step", "ref_loss"}));
  surge::v1::GetAdviceRequest request;
  request.set_job(job);
  std::optional<std::string> batch = Param(query, "batch_size");
  if (!batch) return absl::InvalidArgumentError("batch_size: required query parameter");
  double batch_size = 0;
  if (!absl::SimpleAtod(*batch, &batch_size)) {
    return absl::InvalidArgumentError(absl::StrCat("batch_size: not a number: '", *batch, "'"));
  }
  request.set_batch_size(batch_size);  // the core checks > 0 and finite
  if (auto step_text = Param(query, "step"); step_text && !step_text->empty()) {
    int64_t step = 0;
    if (!absl::SimpleAtoi(*step_text, &step)) {
      return absl::InvalidArgumentError(
          absl::StrCat("step: not an integer: '", *step_text, "'"));
    }
    request.set_step(step);  // the core checks >= 0
  }
  if (auto criterion_text = Param(query, "criterion")) {
    absl::StatusOr<surge::v1::Criterion> criterion = ParseCriterion(*criterion_text);
    if (!criterion.ok()) return criterion.status();
    request.set_criterion(*criterion);
  }
  SURGE_RETURN_IF_ERROR(ParseReference(query, &request));
  return Render(core_->GetAdvice(request, caller));
}

}  // namespace surge::http
