// Implementation of TableCsv and ReadHeaderColumns.
#include "client/cli/table_csv.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace surge::cli {
namespace {

// Opens `path` and reads its header into `header` (trimmed names).
absl::StatusOr<std::unique_ptr<CsvScanner>> OpenWithHeader(const std::string& path,
                                                           std::vector<std::string>& header) {
  absl::StatusOr<std::unique_ptr<CsvScanner>> scanner = CsvScanner::Open(path);
  if (!scanner.ok()) return scanner.status();
  absl::StatusOr<bool> more = (*scanner)->Next();
  if (!more.ok()) return more.status();
  if (!*more) {
    return absl::InvalidArgumentError(
        absl::StrCat(EscapeText(path, 4096), ": empty file, expected a header"));
  }
  header.clear();
  for (absl::string_view name : (*scanner)->fields()) {
    header.emplace_back(absl::StripAsciiWhitespace(name));
  }
  (*scanner)->set_field_names(header);
  return scanner;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ReadHeaderColumns(const std::string& path) {
  std::vector<std::string> header;
  absl::StatusOr<std::unique_ptr<CsvScanner>> scanner = OpenWithHeader(path, header);
  if (!scanner.ok()) return scanner.status();
  return header;
}

absl::StatusOr<std::unique_ptr<TableCsv>> TableCsv::Open(const std::string& path,
                                                         const std::vector<std::string>& required) {
  std::unique_ptr<TableCsv> t(new TableCsv());
  absl::StatusOr<std::unique_ptr<CsvScanner>> scanner = OpenWithHeader(path, t->header_);
  if (!scanner.ok()) return scanner.status();
  t->scanner_ = std::move(*scanner);
  for (const std::string& name : required) {
    if (std::find(t->header_.begin(), t->header_.end(), name) == t->header_.end()) {
      return t->scanner_->Error(absl::StrCat("missing column '", name, "'; the header needs ",
                                             absl::StrJoin(required, ",")));
    }
  }
  return t;
}

absl::StatusOr<bool> TableCsv::Next() {
  absl::StatusOr<bool> more = scanner_->Next();
  if (!more.ok() || !*more) return more;
  if (scanner_->fields().size() != header_.size()) {
    return scanner_->Error(absl::StrCat("expected ", header_.size(), " cells, got ",
                                        scanner_->fields().size()));
  }
  return true;
}

absl::string_view TableCsv::Cell(const std::string& column) const {
  auto it = std::find(header_.begin(), header_.end(), column);
  return absl::StripAsciiWhitespace(scanner_->fields()[static_cast<size_t>(it - header_.begin())]);
}

absl::StatusOr<double> TableCsv::Double(const std::string& column, Bound bound) const {
  absl::string_view text = Cell(column);
  double v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || !std::isfinite(v)) {
    return scanner_->Error(absl::StrCat("column '", column, "': not a finite number '",
                                        EscapeText(text), "'"));
  }
  if (bound == Bound::kNonNegative && v < 0) {
    return scanner_->Error(absl::StrFormat("column '%s': must be >= 0, got %g", column, v));
  }
  if (bound == Bound::kPositive && v <= 0) {
    return scanner_->Error(absl::StrFormat("column '%s': must be > 0, got %g", column, v));
  }
  return v;
}

absl::StatusOr<int64_t> TableCsv::Int(const std::string& column, Bound bound) const {
  absl::string_view text = Cell(column);
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size()) {
    return scanner_->Error(absl::StrCat("column '", column, "': not an integer '",
                                        EscapeText(text), "'"));
  }
  if (bound == Bound::kNonNegative && v < 0) {
    return scanner_->Error(absl::StrCat("column '", column, "': must be >= 0, got ", v));
  }
  if (bound == Bound::kPositive && v <= 0) {
    return scanner_->Error(absl::StrCat("column '", column, "': must be > 0, got ", v));
  }
  return v;
}

}  // namespace surge::cli
