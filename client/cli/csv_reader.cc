// Implementation of the record CSV reader: a header map, then a fast
// split-and-parse per line with std::from_chars.
#include "client/cli/csv_reader.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace surge::cli {
namespace {

template <typename T>
bool ParseNumber(absl::string_view text, T& out) {
  text = absl::StripAsciiWhitespace(text);
  if (text.empty()) return false;
  // from_chars takes no leading '+'; accept one before a digit or a point.
  if (text.size() > 1 && text.front() == '+' && (absl::ascii_isdigit(text[1]) || text[1] == '.')) {
    text.remove_prefix(1);
  }
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && ptr == text.data() + text.size();
}

}  // namespace

const char* CsvRecordReader::CanonicalHeader() {
  return "run,step,examples,batch_size,lr,loss,eval_loss,grad_sq_small,grad_sq_big,b_small,b_big";
}

absl::StatusOr<std::unique_ptr<CsvRecordReader>> CsvRecordReader::Open(const std::string& path) {
  std::unique_ptr<CsvRecordReader> reader(new CsvRecordReader());
  reader->path_ = path;
  reader->buffer_.resize(1 << 20);
  reader->in_.rdbuf()->pubsetbuf(reader->buffer_.data(),
                                 static_cast<std::streamsize>(reader->buffer_.size()));
  reader->in_.open(path, std::ios::binary);
  if (!reader->in_) return absl::NotFoundError(absl::StrCat(path, ": cannot open file"));
  std::error_code ec;
  reader->file_size_ = static_cast<int64_t>(std::filesystem::file_size(path, ec));
  std::string header;
  if (!std::getline(reader->in_, header)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": empty file, expected a header"));
  }
  reader->line_no_ = 1;
  reader->bytes_read_ = static_cast<int64_t>(header.size()) + 1;
  absl::Status status = reader->ParseHeader(header);
  if (!status.ok()) return status;
  return reader;
}

absl::Status CsvRecordReader::ParseHeader(const std::string& line) {
  std::vector<std::string> names =
      absl::StrSplit(absl::StripSuffix(line, "\r"), ',');
  columns_ = names.size();
  for (size_t i = 0; i < names.size(); ++i) {
    std::string name(absl::StripAsciiWhitespace(names[i]));
    int* slot = nullptr;
    if (name == "run") slot = &run_;
    else if (name == "step") slot = &step_;
    else if (name == "examples") slot = &examples_;
    else if (name == "batch_size") slot = &batch_size_;
    else if (name == "lr") slot = &lr_;
    else if (name == "loss") slot = &loss_;
    else if (name == "eval_loss") slot = &eval_loss_;
    else if (name == "grad_sq_small") slot = &grad_sq_small_;
    else if (name == "grad_sq_big") slot = &grad_sq_big_;
    else if (name == "b_small") slot = &b_small_;
    else if (name == "b_big") slot = &b_big_;
    if (slot == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(path_, ":1: unknown column '", name,
                                                     "'; expected ", CanonicalHeader()));
    }
    if (*slot != -1) {
      return absl::InvalidArgumentError(absl::StrCat(path_, ":1: column '", name, "' twice"));
    }
    *slot = static_cast<int>(i);
  }
  const std::pair<const char*, int> required[] = {{"run", run_},          {"step", step_},
                                                  {"examples", examples_}, {"batch_size", batch_size_},
                                                  {"lr", lr_},            {"loss", loss_}};
  for (const auto& [name, index] : required) {
    if (index == -1) {
      return absl::InvalidArgumentError(absl::StrCat(
          path_, ":1: missing required column '", name,
          "'; the header needs run,step,examples,batch_size,lr,loss"));
    }
  }
  int grad = (grad_sq_small_ != -1) + (grad_sq_big_ != -1) + (b_small_ != -1) + (b_big_ != -1);
  if (grad != 0 && grad != 4) {
    return absl::InvalidArgumentError(absl::StrCat(
        path_, ":1: gradient columns grad_sq_small,grad_sq_big,b_small,b_big go together"));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> CsvRecordReader::Next(CsvRow& row) {
  while (true) {
    if (!std::getline(in_, line_)) return false;
    ++line_no_;
    bytes_read_ = std::min(file_size_, bytes_read_ + static_cast<int64_t>(line_.size()) + 1);
    if (!line_.empty() && line_.back() == '\r') line_.pop_back();
    if (!absl::StripAsciiWhitespace(line_).empty()) break;
  }
  cells_.clear();
  for (absl::string_view cell : absl::StrSplit(absl::string_view(line_), ',')) cells_.push_back(cell);
  if (cells_.size() != columns_) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ":", line_no_, ": expected ", columns_,
                                                   " cells, got ", cells_.size()));
  }
  auto bad = [&](const char* column, absl::string_view cell) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ":", line_no_, ": column '", column,
                                                   "': not a valid number '", cell, "'"));
  };
  row.line = line_no_;
  surge::v1::Record& r = row.record;
  r.Clear();
  absl::string_view run = absl::StripAsciiWhitespace(cells_[static_cast<size_t>(run_)]);
  if (run.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ":", line_no_, ": column 'run' is empty"));
  }
  r.set_run(std::string(run));
  int64_t i64 = 0;
  double f64 = 0;
#define SURGE_CSV_INT(col, name, setter)                                           \
  if (!ParseNumber(cells_[static_cast<size_t>(col)], i64)) return bad(name, cells_[static_cast<size_t>(col)]); \
  setter(i64)
#define SURGE_CSV_DOUBLE(col, name, setter)                                        \
  if (!ParseNumber(cells_[static_cast<size_t>(col)], f64)) return bad(name, cells_[static_cast<size_t>(col)]); \
  setter(f64)
  SURGE_CSV_INT(step_, "step", r.set_step);
  SURGE_CSV_INT(examples_, "examples", r.set_examples);
  SURGE_CSV_INT(batch_size_, "batch_size", row.batch_size =);
  SURGE_CSV_DOUBLE(lr_, "lr", r.set_lr);
  SURGE_CSV_DOUBLE(loss_, "loss", r.set_loss);
  if (eval_loss_ != -1 &&
      !absl::StripAsciiWhitespace(cells_[static_cast<size_t>(eval_loss_)]).empty()) {
    SURGE_CSV_DOUBLE(eval_loss_, "eval_loss", r.set_eval_loss);
  }
  if (grad_sq_small_ != -1) {
    int filled = 0;
    for (int col : {grad_sq_small_, grad_sq_big_, b_small_, b_big_}) {
      filled += absl::StripAsciiWhitespace(cells_[static_cast<size_t>(col)]).empty() ? 0 : 1;
    }
    if (filled != 0 && filled != 4) {
      return absl::InvalidArgumentError(
          absl::StrCat(path_, ":", line_no_,
                       ": grad_sq_small,grad_sq_big,b_small,b_big are all set or all empty"));
    }
  }
  if (grad_sq_small_ != -1 &&
      !absl::StripAsciiWhitespace(cells_[static_cast<size_t>(grad_sq_small_)]).empty()) {
    auto* g = r.mutable_grad_stats();
    SURGE_CSV_DOUBLE(grad_sq_small_, "grad_sq_small", g->set_grad_sq_small);
    SURGE_CSV_DOUBLE(grad_sq_big_, "grad_sq_big", g->set_grad_sq_big);
    SURGE_CSV_INT(b_small_, "b_small", g->set_b_small);
    SURGE_CSV_INT(b_big_, "b_big", g->set_b_big);
  }
#undef SURGE_CSV_INT
#undef SURGE_CSV_DOUBLE
  return true;
}

}  // namespace surge::cli
