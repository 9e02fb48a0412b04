// The HTTP side of the error model: absl::StatusCode -> HTTP status, and the
// JSON error body {"code": "NOT_FOUND", "message": "..."} (code names are the
// gRPC/absl names, the same the CLI prints).
#ifndef SURGE_SERVER_HTTP_API_ERROR_H_
#define SURGE_SERVER_HTTP_API_ERROR_H_

#include <string>

#include "absl/status/status.h"

namespace surge::http {

// 400 INVALID_ARGUMENT/OUT_OF_RANGE, 401, 403, 404 NOT_FOUND,
// 409 ALREADY_EXISTS/ABORTED, 412 FAILED_PRECONDITION, 429 RESOURCE_EXHAUSTED,
// 499 CANCELLED, 501 UNIMPLEMENTED, 503 UNAVAILABLE, 504 DEADLINE_EXCEEDED,
// 500 for INTERNAL, UNKNOWN, DATA_LOSS. OK is 200.
int HttpStatusFor(absl::StatusCode code);

// {"code":"NOT_FOUND","message":"job 'x' not found"} (JSON-escaped).
std::string ErrorJson(const absl::Status& status);

}  // namespace surge::http

#endif  // SURGE_SERVER_HTTP_API_ERROR_H_
