// Implementation of the HTTP error mapping (see api_error.h).
#include "server/http/api_error.h"

#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace surge::http {

int HttpStatusFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk: return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange: return 400;
    case absl::StatusCode::kUnauthenticated: return 401;
    case absl::StatusCode::kPermissionDenied: return 403;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted: return 409;
    case absl::StatusCode::kFailedPrecondition: return 412;
    case absl::StatusCode::kResourceExhausted: return 429;
    case absl::StatusCode::kCancelled: return 499;
    case absl::StatusCode::kUnimplemented: return 501;
    case absl::StatusCode::kUnavailable: return 503;
    case absl::StatusCode::kDeadlineExceeded: return 504;
    default: return 500;  // kInternal, kUnknown, kDataLoss
  }
}

std::string ErrorJson(const absl::Status& status) {
  google::protobuf::Struct body;
  auto& fields = *body.mutable_fields();
  fields["code"].set_string_value(absl::StatusCodeToString(status.code()));
  fields["message"].set_string_value(std::string(status.message()));
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(body, &out).ok()) {
    return R"({"code":"INTERNAL","message":"cannot encode error"})";
  }
  return out;
}

}  // namespace surge::http
