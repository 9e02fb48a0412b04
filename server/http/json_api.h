// JsonApi: the read-only JSON API of the dashboard, one method per gRPC read
// RPC. Each parses its query parameters into the same request message the
// gRPC API takes, calls SurgeCore, and renders the response message with
// protobuf's JSON mapping (the options of `surge ... --json`: lowerCamelCase
// names, defaults printed, int64 as strings, NaN/Infinity as strings), so
// HTTP and gRPC share one schema. No HTTP library types appear here, so the
// mapping is testable without a socket. Every method acts for a Caller (the
// HTTP layer authenticates the request). Thread-safe (SurgeCore is).
#ifndef SURGE_SERVER_HTTP_JSON_API_H_
#define SURGE_SERVER_HTTP_JSON_API_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "google/protobuf/message.h"
#include "server/core/surge_core.h"

namespace surge::http {

// Query parameters as the HTTP layer parses them (same type as httplib::Params).
using QueryParams = std::multimap<std::string, std::string>;

// The options of the JSON mapping used for every response.
absl::StatusOr<std::string> ToJson(const google::protobuf::Message& message);

class JsonApi {
 public:
  explicit JsonApi(core::SurgeCore* core) : core_(core) {}

  // GET /api/v1/jobs -> ListJobsResponse.
  absl::StatusOr<std::string> ListJobs(const QueryParams& query,
      const core::Caller& caller = core::Caller::Local());
  // GET /api/v1/jobs/{job} -> Job.
  absl::StatusOr<std::string> GetJob(const std::string& job, const QueryParams& query,
      const core::Caller& caller = core::Caller::Local());
  // GET /api/v1/jobs/{job}/runs -> ListRunsResponse.
  absl::StatusOr<std::string> ListRuns(const std::string& job, const QueryParams& query,
      const core::Caller& caller = core::Caller::Local());
  // GET /api/v1/jobs/{job}/records?run=&page_size=&page_token= -> ListRecordsResponse.
  absl::StatusOr<std::string> ListRecords(const std::string& job, const QueryParams& query,
      const core::Caller& caller = core::Caller::Local());
  // GET /api/v1/jobs/{job}/fit -> Fit.
  absl::StatusOr<std::string> GetFit(const std::string& job, const QueryParams& query,
      const core::Caller& caller = core::Caller::Local());
  // GET /api/v1/jobs/{job}/advice?batch_size=&step=&criterion= -> Advice.
  // criterion: a Criterion enum name (CRITERION_FASTEST) or its short name
  // (fastest, improvement); absent or empty: CRITERION_UNSPECIFIED (= improvement).
  // &ref_batch_size=&ref_lr=[&ref_step=|&ref_loss=]: a reference (both or
  // neither of the first two) -> Advice.transfer.
  absl::StatusOr<std::string> GetAdvice(const std::string& job, const QueryParams& query,
      const core::Caller& caller = core::Caller::Local());

 private:
  core::SurgeCore* const core_;
};

// Rejects parameters outside `allowed` and repeated ones (INVALID_ARGUMENT
// naming the parameter), so a typo such as ?batchsize= is an error, not a
// silently ignored option.
absl::Status CheckQuery(const QueryParams& query, std::initializer_list<const char*> allowed);

// The `criterion` query parameter: an enum name, "improvement" or "fastest";
// anything else is INVALID_ARGUMENT naming the allowed values.
absl::StatusOr<surge::v1::Criterion> ParseCriterion(const std::string& text);

// The reference query parameters into request->reference; INVALID_ARGUMENT
// naming the parameter when one is not a number or only one of ref_batch_size
// and ref_lr is given.
absl::Status ParseReference(const QueryParams& query, surge::v1::GetAdviceRequest* request);

}  // namespace surge::http

#endif  // SURGE_SERVER_HTTP_JSON_API_H_
