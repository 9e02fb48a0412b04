// Page tokens of ListRecords: "r1:<run_id>:<step>", the position after
// which the next page starts (core-internal; clients pass them unchanged).
#ifndef SURGE_SERVER_CORE_PAGE_TOKEN_H_
#define SURGE_SERVER_CORE_PAGE_TOKEN_H_

#include <string>

#include "absl/status/statusor.h"
#include "server/store/store.h"

namespace surge::core {

std::string EncodePageToken(const store::RecordCursor& cursor);
// INVALID_ARGUMENT naming page_token when it is not one of ours.
absl::StatusOr<store::RecordCursor> DecodePageToken(const std::string& token);

}  // namespace surge::core

#endif  // SURGE_SERVER_CORE_PAGE_TOKEN_H_
