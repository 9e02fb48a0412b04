// TableCsv: a small reader for CSV files with a named header and numeric
// cells (the optima and probe-result formats of `surge import`). Errors
// name "FILE:LINE" and the column.
#ifndef SURGE_CLIENT_CLI_TABLE_CSV_H_
#define SURGE_CLIENT_CLI_TABLE_CSV_H_

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace surge::cli {

class TableCsv {
 public:
  // Opens `path`; every name in `required` must be a column.
  static absl::StatusOr<std::unique_ptr<TableCsv>> Open(const std::string& path,
                                                        const std::vector<std::string>& required);
  // Reads the next non-blank row; false at the end.
  absl::StatusOr<bool> Next();
  // The current row's cell of `column` as a number (INVALID_ARGUMENT if not one).
  absl::StatusOr<double> Double(const std::string& column) const;
  absl::StatusOr<int64_t> Int(const std::string& column) const;
  int64_t line() const { return line_no_; }

 private:
  int Index(const std::string& column) const;
  std::string path_;
  std::ifstream in_;
  std::vector<std::string> header_;
  std::vector<std::string> cells_;
  int64_t line_no_ = 0;
};

// The first line of a file (its header), without a trailing CR.
absl::StatusOr<std::string> ReadHeader(const std::string& path);

}  // namespace surge::cli

#endif  // SURGE_CLIENT_CLI_TABLE_CSV_H_
