// Implementation of the record CSV reader: a header map, then per row a
// parse with std::from_chars and the server's record and run checks.
#include "client/cli/csv_reader.h"

#include <charconv>
#include <cmath>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace surge::cli {
namespace {

constexpr size_t kMaxNameLength = 128;  // as ValidateName on the server

template <typename T>
bool ParseNumber(absl::string_view text, T& out) {
  if (text.empty()) return false;
  // from_chars takes no leading '+'; accept one before a digit or a point.
  if (text.size() > 1 && text.front() == '+' && (absl::ascii_isdigit(text[1]) || text[1] == '.')) {
    text.remove_prefix(1);
  }
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && ptr == text.data() + text.size();
}

bool IsNameChar(char c) { return absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-'; }

// The rules of the server's ValidateName, with the same wording.
std::string CheckName(absl::string_view name) {
  if (name.empty()) return "is empty";
  if (name.size() > kMaxNameLength) {
    return absl::StrCat("at most ", kMaxNameLength, " characters, got ", name.size(), ": '",
                        EscapeText(name), "'");
  }
  if (!absl::ascii_isalnum(name[0])) {
    return absl::StrCat("must start with a letter or digit, got '", EscapeText(name), "'");
  }
  for (char c : name) {
    if (!IsNameChar(c)) {
      return absl::StrCat("only letters, digits, '.', '_' and '-' are allowed, got '",
                          EscapeText(name), "'");
    }
  }
  return "";
}

bool LooksBinary(absl::string_view text) {
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    if ((u < 0x20 && u != '\t' && u != '\r' && u != '\n') || u == 0x7F) return true;
  }
  return false;
}

}  // namespace

const char* CsvRecordReader::CanonicalHeader() {
  return "run,step,examples,batch_size,lr,loss,eval_loss,grad_sq_small,grad_sq_big,b_small,b_big";
}

absl::StatusOr<std::unique_ptr<CsvRecordReader>> CsvRecordReader::Open(
    const std::string& path, const CsvScanner::Limits& limits) {
  absl::StatusOr<std::unique_ptr<CsvScanner>> scanner = CsvScanner::Open(path, limits);
  if (!scanner.ok()) return scanner.status();
  std::unique_ptr<CsvRecordReader> reader(new CsvRecordReader());
  reader->scanner_ = std::move(*scanner);
  absl::StatusOr<bool> header = reader->scanner_->Next();
  if (!header.ok()) return header.status();
  if (!*header) {
    return absl::InvalidArgumentError(
        absl::StrCat(EscapeText(path, 4096), ": empty file, expected a header"));
  }
  absl::Status status = reader->ParseHeader();
  if (!status.ok()) return status;
  return reader;
}

absl::Status CsvRecordReader::ParseHeader() {
  const std::vector<absl::string_view>& cells = scanner_->fields();
  columns_ = cells.size();
  std::vector<std::string> names;
  names.reserve(cells.size());
  for (size_t i = 0; i < cells.size(); ++i) {
    std::string name(absl::StripAsciiWhitespace(cells[i]));
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
      return scanner_->Error(absl::StrCat(
          "unknown column '", EscapeText(name), "'; expected ", CanonicalHeader(),
          LooksBinary(name) ? " (the file does not look like CSV text)" : ""));
    }
    if (*slot != -1) return scanner_->Error(absl::StrCat("column '", name, "' twice"));
    *slot = static_cast<int>(i);
    names.push_back(std::move(name));
  }
  const std::pair<const char*, int> required[] = {
      {"run", run_}, {"step", step_}, {"examples", examples_}, {"batch_size", batch_size_},
      {"lr", lr_},   {"loss", loss_}};
  for (const auto& [name, index] : required) {
    if (index == -1) {
      return scanner_->Error(absl::StrCat(
          "missing required column '", name,
          "'; the header needs run,step,examples,batch_size,lr,loss"));
    }
  }
  int grad = (grad_sq_small_ != -1) + (grad_sq_big_ != -1) + (b_small_ != -1) + (b_big_ != -1);
  if (grad != 0 && grad != 4) {
    return scanner_->Error(
        "gradient columns grad_sq_small,grad_sq_big,b_small,b_big go together");
  }
  scanner_->set_field_names(std::move(names));
  return absl::OkStatus();
}

absl::Status CsvRecordReader::CheckRun(absl::string_view run, int64_t batch_size, int64_t line) {
  if (!runs_.empty() && runs_[last_run_].name == run) {
    if (runs_[last_run_].batch_size == batch_size) return absl::OkStatus();
  } else {
    auto it = run_index_.find(run);
    if (it == run_index_.end()) {
      std::string problem = CheckName(run);
      if (!problem.empty()) return scanner_->Error(absl::StrCat("column 'run': ", problem));
      last_run_ = runs_.size();
      run_index_.emplace(std::string(run), runs_.size());
      runs_.push_back(CsvRun{std::string(run), batch_size, line});
      return absl::OkStatus();
    }
    last_run_ = it->second;
    if (runs_[last_run_].batch_size == batch_size) return absl::OkStatus();
  }
  const CsvRun& known = runs_[last_run_];
  return scanner_->Error(absl::StrCat("run '", known.name, "' has batch_size ", known.batch_size,
                                      " in earlier rows (from line ", known.first_line, "), ",
                                      batch_size, " here; a run has one batch size"));
}

absl::StatusOr<bool> CsvRecordReader::Next(CsvRow& row) {
  absl::StatusOr<bool> more = scanner_->Next();
  if (!more.ok() || !*more) return more;
  const std::vector<absl::string_view>& cells = scanner_->fields();
  if (cells.size() != columns_) {
    return scanner_->Error(absl::StrCat("expected ", columns_, " cells, got ", cells.size()));
  }
  auto cell = [&](int column) {
    return absl::StripAsciiWhitespace(cells[static_cast<size_t>(column)]);
  };
  auto fail = [&](int column, absl::string_view problem) {
    return scanner_->Error(
        absl::StrCat(scanner_->FieldName(static_cast<size_t>(column)), ": ", problem));
  };
  auto not_a_number = [&](int column) {
    return fail(column, absl::StrCat("not a valid number '", EscapeText(cell(column)), "'"));
  };
  // Integer cells with their lower bound (v >= min) and its wording.
  auto read_int = [&](int column, int64_t min, const char* rule, int64_t& out) -> absl::Status {
    if (!ParseNumber(cell(column), out)) return not_a_number(column);
    if (out < min) return fail(column, absl::StrCat(rule, ", got ", out));
    return absl::OkStatus();
  };
  // Real cells: finite, and >= 0 when `non_negative`.
  auto read_double = [&](int column, bool non_negative, double& out) -> absl::Status {
    if (!ParseNumber(cell(column), out)) return not_a_number(column);
    if (!std::isfinite(out) || (non_negative && out < 0)) {
      // Two literal formats: clang checks StrFormat's format at compile time.
      return fail(column, non_negative ? absl::StrFormat("must be finite and >= 0, got %g", out)
                                       : absl::StrFormat("must be finite, got %g", out));
    }
    return absl::OkStatus();
  };

  row.line = scanner_->line();
  surge::v1::Record& r = row.record;
  r.Clear();
  absl::string_view run = cell(run_);
  if (run.empty()) return scanner_->Error("column 'run' is empty");
  int64_t i64 = 0;
  double f64 = 0;
  absl::Status status;
  if (!(status = read_int(step_, 0, "must be >= 0", i64)).ok()) return status;
  r.set_step(i64);
  if (!(status = read_int(examples_, 0, "must be >= 0", i64)).ok()) return status;
  r.set_examples(i64);
  if (!(status = read_int(batch_size_, 1, "must be > 0", row.batch_size)).ok()) return status;
  if (!(status = read_double(lr_, true, f64)).ok()) return status;
  r.set_lr(f64);
  if (!(status = read_double(loss_, false, f64)).ok()) return status;
  r.set_loss(f64);
  if (eval_loss_ != -1 && !cell(eval_loss_).empty()) {
    if (!(status = read_double(eval_loss_, false, f64)).ok()) return status;
    r.set_eval_loss(f64);
  }
  if (grad_sq_small_ != -1) {
    int filled = 0;
    for (int column : {grad_sq_small_, grad_sq_big_, b_small_, b_big_}) {
      filled += cell(column).empty() ? 0 : 1;
    }
    if (filled != 0 && filled != 4) {
      return scanner_->Error("grad_sq_small,grad_sq_big,b_small,b_big are all set or all empty");
    }
    if (filled == 4) {
      auto* g = r.mutable_grad_stats();
      if (!(status = read_double(grad_sq_small_, true, f64)).ok()) return status;
      g->set_grad_sq_small(f64);
      if (!(status = read_double(grad_sq_big_, true, f64)).ok()) return status;
      g->set_grad_sq_big(f64);
      if (!(status = read_int(b_small_, 1, "must be >= 1", i64)).ok()) return status;
      g->set_b_small(i64);
      if (!ParseNumber(cell(b_big_), i64)) return not_a_number(b_big_);
      if (i64 <= g->b_small()) {
        return fail(b_big_, absl::StrCat("must be > b_small (", g->b_small(), "), got ", i64));
      }
      g->set_b_big(i64);
    }
  }
  if (!(status = CheckRun(run, row.batch_size, row.line)).ok()) return status;
  r.set_run(run.data(), run.size());
  return true;
}

absl::StatusOr<std::vector<int64_t>> CsvRecordReader::LinesOfRows(
    const std::string& path, const std::vector<int64_t>& rows) {
  std::vector<int64_t> lines(rows.size(), 0);
  absl::StatusOr<std::unique_ptr<CsvRecordReader>> reader = Open(path);
  if (!reader.ok()) return reader.status();
  CsvRow row;
  size_t next = 0;
  for (int64_t index = 0; next < rows.size(); ++index) {
    absl::StatusOr<bool> more = (*reader)->Next(row);
    if (!more.ok()) return more.status();
    if (!*more) break;
    while (next < rows.size() && rows[next] <= index) {
      if (rows[next] == index) lines[next] = row.line;
      ++next;
    }
  }
  return lines;
}

}  // namespace surge::cli
