// CsvRecordReader: reads the record CSV that `surge import` accepts.
//
// Header (any column order): run,step,examples,batch_size,lr,loss are
// required; eval_loss,grad_sq_small,grad_sq_big,b_small,b_big are optional
// (the four grad columns go together). Empty optional cells mean "absent".
// Errors name the file line and the column.
#ifndef SURGE_CLIENT_CLI_CSV_READER_H_
#define SURGE_CLIENT_CLI_CSV_READER_H_

#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "surge/v1/surge.pb.h"

namespace surge::cli {

struct CsvRow {
  surge::v1::Record record;
  int64_t batch_size = 0;
  int64_t line = 0;
};

class CsvRecordReader {
 public:
  // Opens the file and parses the header.
  static absl::StatusOr<std::unique_ptr<CsvRecordReader>> Open(const std::string& path);

  // Reads the next row into `row`; returns false at the end of the file.
  absl::StatusOr<bool> Next(CsvRow& row);

  // Progress: bytes consumed and total size of the file.
  int64_t bytes_read() const { return bytes_read_; }
  int64_t file_size() const { return file_size_; }

  // The canonical header written by `surge records --format csv`.
  static const char* CanonicalHeader();

 private:
  CsvRecordReader() = default;
  absl::Status ParseHeader(const std::string& line);

  std::string path_;
  std::ifstream in_;
  std::vector<char> buffer_;
  std::string line_;
  int64_t line_no_ = 0;
  int64_t bytes_read_ = 0;
  int64_t file_size_ = 0;
  // Column index of each field, -1 when absent.
  int run_ = -1, step_ = -1, examples_ = -1, batch_size_ = -1, lr_ = -1, loss_ = -1;
  int eval_loss_ = -1, grad_sq_small_ = -1, grad_sq_big_ = -1, b_small_ = -1, b_big_ = -1;
  size_t columns_ = 0;
  std::vector<absl::string_view> cells_;
};

}  // namespace surge::cli

#endif  // SURGE_CLIENT_CLI_CSV_READER_H_
