// Small status-propagation macros (Abseil 20220623 ships none).
//   SURGE_RETURN_IF_ERROR(expr);            returns the status if not ok
//   SURGE_ASSIGN_OR_RETURN(lhs, expr);      unwraps a StatusOr or returns
#ifndef SURGE_SERVER_UTIL_STATUS_MACROS_H_
#define SURGE_SERVER_UTIL_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define SURGE_RETURN_IF_ERROR(expr)            \
  do {                                         \
    const ::absl::Status surge_status_ = (expr); \
    if (!surge_status_.ok()) return surge_status_; \
  } while (0)

#define SURGE_STATUS_CONCAT_INNER_(a, b) a##b
#define SURGE_STATUS_CONCAT_(a, b) SURGE_STATUS_CONCAT_INNER_(a, b)

#define SURGE_ASSIGN_OR_RETURN(lhs, expr) \
  SURGE_ASSIGN_OR_RETURN_IMPL_(SURGE_STATUS_CONCAT_(surge_statusor_, __LINE__), lhs, expr)

#define SURGE_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                 \
  if (!statusor.ok()) return statusor.status();           \
  lhs = std::move(statusor).value()

#endif  // SURGE_SERVER_UTIL_STATUS_MACROS_H_
