// CsvScanner: splits a CSV file into records and fields (RFC 4180), the
// layer under the readers of `surge import`.
//
// Accepts: a UTF-8 byte-order mark at the start (skipped); LF or CRLF line
// ends; fields in double quotes, with commas, doubled quotes ("") and line
// breaks inside; spaces around a quoted field. A quote inside an unquoted
// field is an ordinary character. Blank lines are skipped.
//
// Refuses, with INVALID_ARGUMENT naming "PATH:LINE:" (1-based; a record
// that spans lines is named by its first line): a path that is not a
// regular file (directory, device, FIFO, socket; checked on the opened
// descriptor, which never blocks on a FIFO); a UTF-16 file; a record longer
// than Limits::max_record_bytes or a field longer than max_field_bytes (so
// a binary file costs bounded memory); text after a closing quote; a quote
// still open at the end of the file.
//
// Every piece of file text quoted in a message goes through EscapeText.
// Not thread-safe; one scanner per pass over a file.
#ifndef SURGE_CLIENT_CLI_CSV_SCANNER_H_
#define SURGE_CLIENT_CLI_CSV_SCANNER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace surge::cli {

// `text` safe to print on a terminal: printable ASCII and well-formed UTF-8
// stay; control bytes become \t \n \r or \xNN, bytes that are not UTF-8
// \xNN, invisible or direction-changing code points (C1 controls,
// zero-width characters, bidi overrides, U+FEFF) \uXXXX. Past `max_bytes`
// of output the rest is cut and "...[+N bytes]" says how much.
std::string EscapeText(absl::string_view text, size_t max_bytes = 64);

class CsvScanner {
 public:
  struct Limits {
    int64_t max_record_bytes = 1 << 20;  // one record, quotes and line ends included
    int64_t max_field_bytes = 64 << 10;  // one field after unquoting
    int64_t buffer_bytes = 4 << 20;      // read buffer (at least max_record_bytes + 2)
  };

  // Opens `path` (NOT_FOUND / PERMISSION_DENIED when it cannot be opened,
  // INVALID_ARGUMENT when it is not a regular file or is UTF-16).
  static absl::StatusOr<std::unique_ptr<CsvScanner>> Open(const std::string& path,
                                                          const Limits& limits);
  static absl::StatusOr<std::unique_ptr<CsvScanner>> Open(const std::string& path) {
    return Open(path, Limits());
  }
  ~CsvScanner();
  CsvScanner(const CsvScanner&) = delete;
  CsvScanner& operator=(const CsvScanner&) = delete;

  // Reads the next record that is not blank; false at the end of the file.
  absl::StatusOr<bool> Next();
  // The current record's fields, valid until the next call of Next().
  const std::vector<absl::string_view>& fields() const { return fields_; }
  // First line of the current record (1-based).
  int64_t line() const { return record_line_; }

  // Names of the fields by position, used in messages ("column 'lr'").
  void set_field_names(std::vector<std::string> names) { names_ = std::move(names); }
  // "column 'lr'" for a named field, "field 3" (1-based) otherwise.
  std::string FieldName(size_t index) const;
  // INVALID_ARGUMENT "PATH:LINE: message" at the current record.
  absl::Status Error(absl::string_view message) const;

  const std::string& path() const { return path_; }
  // Bytes consumed so far and the size of the file, for progress.
  int64_t bytes_read() const { return consumed_; }
  int64_t file_size() const { return file_size_; }

 private:
  enum class Parse { kDone, kNeedMore, kError };

  CsvScanner() = default;
  // Moves the unread bytes to the front of the buffer and reads more.
  absl::Status Fill();
  // Splits a line without quotes into fields_ (views into the buffer).
  absl::Status SplitPlainLine(const char* p, size_t length);
  // Parses a record with quotes from begin_; kNeedMore when the buffer ends
  // first (and the file does not), kError with `error_` set.
  Parse ParseQuoted();
  absl::Status ErrorAt(int64_t line, absl::string_view message) const;

  std::string path_;
  std::string shown_path_;  // path_ through EscapeText
  Limits limits_;
  int fd_ = -1;
  int64_t file_size_ = 0;
  std::vector<char> buffer_;
  size_t begin_ = 0;  // first unread byte
  size_t end_ = 0;    // end of the bytes read
  bool eof_ = false;
  int64_t consumed_ = 0;     // file offset of begin_
  int64_t line_no_ = 1;      // line of begin_
  int64_t record_line_ = 0;  // first line of the current record
  std::vector<absl::string_view> fields_;
  std::string unquoted_;  // field text of a record with quotes
  std::vector<std::pair<size_t, size_t>> spans_;
  size_t quoted_bytes_ = 0;  // raw bytes of the record ParseQuoted finished
  int64_t quoted_lines_ = 0;  // line ends inside and after it
  absl::Status error_;
  std::vector<std::string> names_;
};

}  // namespace surge::cli

#endif  // SURGE_CLIENT_CLI_CSV_SCANNER_H_
