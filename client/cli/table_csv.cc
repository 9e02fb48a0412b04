// Implementation of TableCsv.
#include "client/cli/table_csv.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace surge::cli {

absl::StatusOr<std::string> ReadHeader(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open file"));
  std::string header;
  if (!std::getline(in, header)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": empty file, expected a header"));
  }
  if (!header.empty() && header.back() == '\r') header.pop_back();
  return header;
}

absl::StatusOr<std::unique_ptr<TableCsv>> TableCsv::Open(const std::string& path,
                                                         const std::vector<std::string>& required) {
  std::unique_ptr<TableCsv> t(new TableCsv());
  t->path_ = path;
  t->in_.open(path);
  if (!t->in_) return absl::NotFoundError(absl::StrCat(path, ": cannot open file"));
  std::string header;
  std::getline(t->in_, header);
  if (!header.empty() && header.back() == '\r') header.pop_back();
  t->line_no_ = 1;
  for (absl::string_view name : absl::StrSplit(header, ',')) {
    t->header_.emplace_back(absl::StripAsciiWhitespace(name));
  }
  for (const std::string& name : required) {
    if (t->Index(name) < 0) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":1: missing column '", name,
                                                     "'; the header needs ",
                                                     absl::StrJoin(required, ",")));
    }
  }
  return t;
}

int TableCsv::Index(const std::string& column) const {
  auto it = std::find(header_.begin(), header_.end(), column);
  return it == header_.end() ? -1 : static_cast<int>(it - header_.begin());
}

absl::StatusOr<bool> TableCsv::Next() {
  std::string line;
  while (std::getline(in_, line)) {
    ++line_no_;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    cells_ = absl::StrSplit(line, ',');
    if (cells_.size() != header_.size()) {
      return absl::InvalidArgumentError(absl::StrCat(path_, ":", line_no_, ": expected ",
                                                     header_.size(), " cells, got ", cells_.size()));
    }
    return true;
  }
  return false;
}

absl::StatusOr<double> TableCsv::Double(const std::string& column) const {
  std::string text(absl::StripAsciiWhitespace(cells_[static_cast<size_t>(Index(column))]));
  double v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || !std::isfinite(v)) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ":", line_no_, ": column '", column,
                                                   "': not a finite number '", text, "'"));
  }
  return v;
}

absl::StatusOr<int64_t> TableCsv::Int(const std::string& column) const {
  std::string text(absl::StripAsciiWhitespace(cells_[static_cast<size_t>(Index(column))]));
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size()) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ":", line_no_, ": column '", column,
                                                   "': not an integer '", text, "'"));
  }
  return v;
}

}  // namespace surge::cli
