// Output helpers of the `surge` CLI: protobuf JSON, aligned tables, CSV
// cells with shortest round-trip numbers, times, and a terminal progress bar.
#ifndef SURGE_CLIENT_CLI_FORMAT_H_
#define SURGE_CLIENT_CLI_FORMAT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "google/protobuf/message.h"

namespace surge::cli {

// The message in protobuf's JSON mapping (multi-line unless `compact`).
std::string ToJson(const google::protobuf::Message& message, bool compact = false);

// Prints rows as columns padded to the widest cell; the first row is the header.
void PrintTable(const std::vector<std::vector<std::string>>& rows);

// Shortest decimal text that reads back to the same double.
void AppendDouble(std::string& out, double value);
void AppendInt(std::string& out, int64_t value);

// "2026-11-29 03:12:45" in UTC; "-" for 0.
std::string FormatTimeUs(int64_t unix_us);

// A one-line progress bar on stderr, redrawn at most ~10 times a second.
// Draws nothing unless stderr is a terminal.
class ProgressBar {
 public:
  explicit ProgressBar(std::string label);
  // `done` and `total` in the same unit (total <= 0: unknown); `count` and
  // `unit` describe the work for the rate, e.g. 123456 "rows".
  void Update(double done, double total, int64_t count, const char* unit, bool force = false);
  void Finish();

 private:
  std::string label_;
  bool enabled_;
  absl::Time start_;
  absl::Time last_draw_;
};

}  // namespace surge::cli

#endif  // SURGE_CLIENT_CLI_FORMAT_H_
