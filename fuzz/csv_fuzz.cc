// Fuzz target: the CSV readers of `surge import` (client/cli). The bytes are
// the file: written to a memfd and opened by its /proc/self/fd path, as the
// CLI opens a file (CsvScanner takes a path and checks the descriptor). The
// header picks the reader as Import() does (lr_opt: optima; improvement:
// probes; else records) and every row is read with the import's check-pass
// calls, to the end or the first error.
//
// Checked, besides "returns and never crashes" (ASan, UBSan):
//   * every error is INVALID_ARGUMENT "PATH:..." and terminal-safe: no
//     control bytes, well-formed UTF-8 (file text goes through EscapeText);
//   * the record reader with tiny limits (64-byte records, a 66-byte buffer,
//     so refills and size caps are reached by small inputs) reads the same
//     rows, on the same lines, as with large ones whenever it gets to the
//     end; LinesOfRows finds the lines the rows were read on;
//   * EscapeText of every field of a bare scanner pass is terminal-safe and
//     bounded.
// big_block_pool.cc reuses the scanners' 4 MiB buffers between inputs (see
// there why), with ASan's checks kept.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/cli/csv_reader.h"
#include "client/cli/csv_scanner.h"
#include "client/cli/table_csv.h"

namespace {

using surge::cli::CsvRecordReader;
using surge::cli::CsvRow;
using surge::cli::CsvScanner;
using surge::cli::TableCsv;
using Bound = surge::cli::TableCsv::Bound;

int memfd = -1;
std::string path;  // /proc/self/fd/N

void Fail(const std::string& what, const absl::Status& status) {
  std::fprintf(stderr, "fuzz_csv: %s: %s\n", what.c_str(), status.ToString().c_str());
  std::abort();
}

// No control bytes, and well-formed UTF-8 (no overlongs or surrogates).
bool TerminalSafe(absl::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7F) return false;
    if (c < 0x80) {
      ++i;
      continue;
    }
    const int n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    if (n == 0 || c > 0xF4 || i + n > s.size()) return false;
    uint32_t cp = c & (0x7F >> n);
    for (int k = 1; k < n; ++k) {
      const unsigned char t = static_cast<unsigned char>(s[i + k]);
      if ((t & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (t & 0x3F);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
      return false;
    }
    i += n;
  }
  return true;
}

void CheckError(const absl::Status& s) {
  if (!absl::IsInvalidArgument(s)) Fail("unexpected code", s);
  if (!absl::StartsWith(s.message(), path)) Fail("the error does not name the file", s);
  if (!TerminalSafe(s.message())) Fail("the error is not terminal-safe", s);
}

struct RecordPass {
  bool complete = false;  // read to the end without an error
  std::vector<int64_t> lines;
};

RecordPass ReadRecords(const CsvScanner::Limits& limits) {
  RecordPass pass;
  absl::StatusOr<std::unique_ptr<CsvRecordReader>> reader = CsvRecordReader::Open(path, limits);
  if (!reader.ok()) {
    CheckError(reader.status());
    return pass;
  }
  CsvRow row;
  while (true) {
    absl::StatusOr<bool> more = (*reader)->Next(row);
    if (!more.ok()) {
      CheckError(more.status());
      return pass;
    }
    if (!*more) break;
    if (!pass.lines.empty() && row.line <= pass.lines.back()) {
      Fail(absl::StrCat("row line ", row.line, " after line ", pass.lines.back()),
           absl::OkStatus());
    }
    pass.lines.push_back(row.line);
  }
  pass.complete = true;
  return pass;
}

void CheckRecords() {
  // The default caps with an 8 KiB buffer: the same as the defaults for any
  // input under -max_len (no record can reach a cap), without zeroing a 4 MiB
  // buffer per call.
  CsvScanner::Limits normal_limits;
  normal_limits.buffer_bytes = 8 << 10;
  normal_limits.max_record_bytes = 8 << 10;
  normal_limits.max_field_bytes = 8 << 10;
  const RecordPass normal = ReadRecords(normal_limits);
  CsvScanner::Limits tiny;
  tiny.max_record_bytes = 64;
  tiny.max_field_bytes = 32;
  tiny.buffer_bytes = 66;
  const RecordPass small = ReadRecords(tiny);
  if (small.complete && (!normal.complete || small.lines != normal.lines)) {
    Fail("tiny limits read other rows than the defaults", absl::OkStatus());
  }
  if (!normal.complete || normal.lines.empty()) return;
  const int64_t n = static_cast<int64_t>(normal.lines.size());
  std::vector<int64_t> rows = {0, n / 2, n - 1, n};
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  absl::StatusOr<std::vector<int64_t>> lines = CsvRecordReader::LinesOfRows(path, rows);
  if (!lines.ok()) Fail("LinesOfRows", lines.status());
  std::vector<int64_t> want;
  for (int64_t row : rows) want.push_back(row < n ? normal.lines[row] : 0);
  if (*lines != want) Fail("LinesOfRows disagrees with the rows read", absl::OkStatus());
}

// The rows of an optima or probes file, with the import's calls.
void CheckTable(bool optima) {
  const std::vector<std::string> columns =
      optima ? std::vector<std::string>{"stage", "stage_loss", "batch_size", "lr_opt", "lr_opt_se"}
             : std::vector<std::string>{"stage", "stage_loss", "batch_size", "lr", "seed",
                                        "improvement"};
  absl::StatusOr<std::unique_ptr<TableCsv>> table = TableCsv::Open(path, columns);
  if (!table.ok()) return CheckError(table.status());
  while (true) {
    absl::StatusOr<bool> more = (*table)->Next();
    if (!more.ok()) return CheckError(more.status());
    if (!*more) return;
    const TableCsv& t = **table;
    absl::Status s;
    if (optima) {
      s = t.Int("stage", Bound::kNonNegative).status();
      if (s.ok()) s = t.Double("stage_loss", Bound::kPositive).status();
      if (s.ok()) s = t.Double("batch_size", Bound::kPositive).status();
      if (s.ok()) s = t.Double("lr_opt", Bound::kPositive).status();
      if (s.ok()) s = t.Double("lr_opt_se", Bound::kNonNegative).status();
    } else {
      s = t.Int("stage", Bound::kNonNegative).status();
      if (s.ok()) s = t.Double("stage_loss").status();
      if (s.ok()) s = t.Int("batch_size", Bound::kPositive).status();
      if (s.ok()) s = t.Double("lr", Bound::kNonNegative).status();
      if (s.ok()) s = t.Int("seed").status();
      if (s.ok()) s = t.Double("improvement").status();
    }
    if (!s.ok()) return CheckError(s);
  }
}

// A bare scanner with tiny limits; every field through EscapeText.
void CheckScanner() {
  CsvScanner::Limits tiny;
  tiny.max_record_bytes = 64;
  tiny.max_field_bytes = 32;
  tiny.buffer_bytes = 66;
  absl::StatusOr<std::unique_ptr<CsvScanner>> scanner = CsvScanner::Open(path, tiny);
  if (!scanner.ok()) return CheckError(scanner.status());
  while (true) {
    absl::StatusOr<bool> more = (*scanner)->Next();
    if (!more.ok()) return CheckError(more.status());
    if (!*more) return;
    for (absl::string_view field : (*scanner)->fields()) {
      const std::string shown = surge::cli::EscapeText(field, 16);
      if (!TerminalSafe(shown) || shown.size() > 16 + 32) {
        Fail(absl::StrCat("EscapeText gave '", shown, "'"), absl::OkStatus());
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  memfd = memfd_create("surge-fuzz-csv", MFD_CLOEXEC);
  if (memfd < 0) {
    std::perror("memfd_create");
    std::abort();
  }
  path = absl::StrCat("/proc/self/fd/", memfd);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (ftruncate(memfd, 0) != 0 ||
      pwrite(memfd, data, size, 0) != static_cast<ssize_t>(size)) {
    std::perror("memfd write");
    std::abort();
  }
  absl::StatusOr<std::vector<std::string>> columns = surge::cli::ReadHeaderColumns(path);
  if (!columns.ok()) {
    CheckError(columns.status());
  } else {
    auto has = [&](const char* name) {
      return std::find(columns->begin(), columns->end(), name) != columns->end();
    };
    if (has("lr_opt")) {
      CheckTable(true);
    } else if (has("improvement")) {
      CheckTable(false);
    } else {
      CheckRecords();
    }
  }
  CheckScanner();
  return 0;
}
