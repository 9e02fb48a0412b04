// The one place where absl::Status becomes grpc::Status (codes map 1:1).
#ifndef SURGE_SERVER_RPC_STATUS_CONVERT_H_
#define SURGE_SERVER_RPC_STATUS_CONVERT_H_

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"

namespace surge::rpc {

inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

}  // namespace surge::rpc

#endif  // SURGE_SERVER_RPC_STATUS_CONVERT_H_
