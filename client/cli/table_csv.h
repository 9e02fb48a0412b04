// TableCsv: a small reader for CSV files with a named header and numeric
// cells (the optima and probe-result formats of `surge import`), on
// CsvScanner: RFC 4180 quoting, a UTF-8 BOM, CRLF, size caps, and only
// regular files. Errors are INVALID_ARGUMENT "PATH:LINE: column 'NAME': ..."
// with the file line (the header is line 1) and file text escaped.
#ifndef SURGE_CLIENT_CLI_TABLE_CSV_H_
#define SURGE_CLIENT_CLI_TABLE_CSV_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/cli/csv_scanner.h"

namespace surge::cli {

class TableCsv {
 public:
  // The range a number must be in, worded as the server words it.
  enum class Bound { kAny, kNonNegative, kPositive };

  // Opens `path`; every name in `required` must be a column (others are
  // ignored).
  static absl::StatusOr<std::unique_ptr<TableCsv>> Open(const std::string& path,
                                                        const std::vector<std::string>& required);
  // Reads the next non-blank row; false at the end.
  absl::StatusOr<bool> Next();
  // The current row's cell of `column` as a finite number in `bound`
  // (INVALID_ARGUMENT if not one).
  absl::StatusOr<double> Double(const std::string& column, Bound bound = Bound::kAny) const;
  absl::StatusOr<int64_t> Int(const std::string& column, Bound bound = Bound::kAny) const;
  // First file line of the current row.
  int64_t line() const { return scanner_->line(); }
  // INVALID_ARGUMENT "PATH:LINE: message" at the current row.
  absl::Status Error(absl::string_view message) const { return scanner_->Error(message); }

 private:
  TableCsv() = default;
  // The trimmed cell of `column` (a required column).
  absl::string_view Cell(const std::string& column) const;

  std::unique_ptr<CsvScanner> scanner_;
  std::vector<std::string> header_;
};

// The trimmed column names of a CSV file's header, read as the importers
// read them (so a directory, a BOM or quoted names are handled alike).
absl::StatusOr<std::vector<std::string>> ReadHeaderColumns(const std::string& path);

}  // namespace surge::cli

#endif  // SURGE_CLIENT_CLI_TABLE_CSV_H_
