// ParseErrorInterceptor: a request gRPC cannot parse (most often a string
// field, a name, label or description, holding invalid UTF-8, which proto3
// refuses) never reaches a handler: gRPC answers INTERNAL with an empty
// message, which clients retry or show as nothing. This server interceptor
// rewrites exactly that answer (INTERNAL, empty message: every INTERNAL of
// the service carries a message) into INVALID_ARGUMENT saying what to fix.
//
// Naming the field: protobuf logs "String field 'surge.v1.Job.name' contains
// invalid UTF-8 data" on the thread that parses. A log handler keeps the
// latest such line per thread (TakeParseError), which the interceptor and
// the Ingest handler (whose Read() parses on the handler's thread) use.
#ifndef SURGE_SERVER_RPC_PARSE_ERROR_INTERCEPTOR_H_
#define SURGE_SERVER_RPC_PARSE_ERROR_INTERCEPTOR_H_

#include <grpcpp/support/server_interceptor.h>

#include <memory>
#include <string>

namespace surge::rpc {

// Installs the protobuf log handler (once per process; earlier handlers,
// e.g. the default printing to stderr, still run).
void InstallParseErrorCapture();

// The protobuf parse error logged on this thread since the last call, or "".
std::string TakeParseError();

class ParseErrorInterceptorFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;
};

}  // namespace surge::rpc

#endif  // SURGE_SERVER_RPC_PARSE_ERROR_INTERCEPTOR_H_
