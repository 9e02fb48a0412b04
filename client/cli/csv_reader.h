// CsvRecordReader: reads the record CSV that `surge import` accepts.
//
// Header (any column order): run,step,examples,batch_size,lr,loss are
// required; eval_loss,grad_sq_small,grad_sq_big,b_small,b_big are optional
// (the four grad columns go together). Empty optional cells mean "absent".
// The text is split by CsvScanner (RFC 4180 quoting, BOM, CRLF, size caps).
//
// Each row is checked as the server checks a record and a run (same rules
// as server/core/validation.cc: run names, step/examples >= 0, batch_size
// > 0, finite lr >= 0 and loss, ...), and a run keeps one batch size within
// the file, so one pass over a file finds every row the server would
// refuse. Errors are INVALID_ARGUMENT "PATH:LINE: column 'NAME': ..." with
// the file line (the header is line 1) and file text escaped.
#ifndef SURGE_CLIENT_CLI_CSV_READER_H_
#define SURGE_CLIENT_CLI_CSV_READER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/cli/csv_scanner.h"
#include "surge/v1/surge.pb.h"

namespace surge::cli {

struct CsvRow {
  surge::v1::Record record;
  int64_t batch_size = 0;
  int64_t line = 0;  // first file line of the row
};

// A run as the file declares it: its batch size and first line.
struct CsvRun {
  std::string name;
  int64_t batch_size = 0;
  int64_t first_line = 0;
};

class CsvRecordReader {
 public:
  // Opens the file and parses the header.
  static absl::StatusOr<std::unique_ptr<CsvRecordReader>> Open(
      const std::string& path, const CsvScanner::Limits& limits);
  static absl::StatusOr<std::unique_ptr<CsvRecordReader>> Open(const std::string& path) {
    return Open(path, CsvScanner::Limits());
  }

  // Reads and checks the next row into `row`; returns false at the end.
  absl::StatusOr<bool> Next(CsvRow& row);

  // The runs of the rows read so far, in order of first appearance.
  const std::vector<CsvRun>& runs() const { return runs_; }

  // Progress: bytes consumed and total size of the file.
  int64_t bytes_read() const { return scanner_->bytes_read(); }
  int64_t file_size() const { return scanner_->file_size(); }

  // The canonical header written by `surge records --format csv`.
  static const char* CanonicalHeader();

  // The file lines of the rows with 0-based indices `rows` (ascending), by
  // reading the file again; 0 for an index past the last row.
  static absl::StatusOr<std::vector<int64_t>> LinesOfRows(const std::string& path,
                                                          const std::vector<int64_t>& rows);

 private:
  CsvRecordReader() = default;
  absl::Status ParseHeader();
  // Checks the row's run name and batch size against the earlier rows.
  absl::Status CheckRun(absl::string_view run, int64_t batch_size, int64_t line);

  std::unique_ptr<CsvScanner> scanner_;
  // Column index of each field, -1 when absent.
  int run_ = -1, step_ = -1, examples_ = -1, batch_size_ = -1, lr_ = -1, loss_ = -1;
  int eval_loss_ = -1, grad_sq_small_ = -1, grad_sq_big_ = -1, b_small_ = -1, b_big_ = -1;
  size_t columns_ = 0;
  std::vector<CsvRun> runs_;
  absl::flat_hash_map<std::string, size_t> run_index_;
  size_t last_run_ = 0;  // index in runs_ of the previous row's run
};

}  // namespace surge::cli

#endif  // SURGE_CLIENT_CLI_CSV_READER_H_
