// Implementation of ParseErrorInterceptorFactory (see parse_error_interceptor.h).
#include "server/rpc/parse_error_interceptor.h"

#include <mutex>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/stubs/logging.h"

namespace surge::rpc {
namespace {

thread_local std::string parse_error;
google::protobuf::LogHandler* previous_handler = nullptr;

void CaptureLog(google::protobuf::LogLevel level, const char* filename, int line,
                const std::string& message) {
  if (absl::StrContains(message, "invalid UTF-8")) {
    // "String field 'surge.v1.Job.name' contains invalid UTF-8 data when ..."
    const size_t cut = message.find(" when parsing");
    parse_error = message.substr(0, cut);
  }
  if (previous_handler != nullptr) previous_handler(level, filename, line, message);
}

class ParseErrorInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit ParseErrorInterceptor(std::string method) : method_(std::move(method)) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      if (status.error_code() == grpc::StatusCode::INTERNAL && status.error_message().empty()) {
        const std::string field = TakeParseError();
        methods->ModifySendStatus(grpc::Status(
            grpc::StatusCode::INVALID_ARGUMENT,
            absl::StrCat("the request to ", method_, " could not be parsed: ",
                         field.empty() ? "a string field (a name, label or description) holds "
                                         "invalid UTF-8, or the bytes are not the request message"
                                       : field,
                         "; strings must be valid UTF-8")));
      }
    }
    methods->Proceed();
  }

 private:
  const std::string method_;
};

}  // namespace

void InstallParseErrorCapture() {
  static std::once_flag once;
  std::call_once(once, [] {
    // SetLogHandler returns the handler it replaces (the default prints).
    previous_handler = google::protobuf::SetLogHandler(&CaptureLog);
  });
}

std::string TakeParseError() {
  std::string out;
  out.swap(parse_error);
  return out;
}

grpc::experimental::Interceptor* ParseErrorInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new ParseErrorInterceptor(info->method() != nullptr ? info->method() : "");
}

}  // namespace surge::rpc
