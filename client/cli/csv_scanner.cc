// Implementation of CsvScanner and EscapeText. Lines without a quote (all
// lines of a file that surge itself writes) are split in place in the read
// buffer with memchr; a record with a quote is unquoted into a side buffer.
#include "client/cli/csv_scanner.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace surge::cli {
namespace {

// Length of the well-formed UTF-8 sequence at the start of `s` (Unicode
// table 3-7) with its code point in `cp`; 0 if it is not one.
size_t DecodeUtf8(absl::string_view s, uint32_t* cp) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  auto cont = [&](size_t i, unsigned lo, unsigned hi) {
    return i < s.size() && byte(i) >= lo && byte(i) <= hi;
  };
  unsigned char b = byte(0);
  if (b >= 0xC2 && b <= 0xDF && cont(1, 0x80, 0xBF)) {
    *cp = ((b & 0x1Fu) << 6) | (byte(1) & 0x3Fu);
    return 2;
  }
  if (b >= 0xE0 && b <= 0xEF) {
    unsigned lo = b == 0xE0 ? 0xA0 : 0x80, hi = b == 0xED ? 0x9F : 0xBF;
    if (!cont(1, lo, hi) || !cont(2, 0x80, 0xBF)) return 0;
    *cp = ((b & 0x0Fu) << 12) | ((byte(1) & 0x3Fu) << 6) | (byte(2) & 0x3Fu);
    return 3;
  }
  if (b >= 0xF0 && b <= 0xF4) {
    unsigned lo = b == 0xF0 ? 0x90 : 0x80, hi = b == 0xF4 ? 0x8F : 0xBF;
    if (!cont(1, lo, hi) || !cont(2, 0x80, 0xBF) || !cont(3, 0x80, 0xBF)) return 0;
    *cp = ((b & 0x07u) << 18) | ((byte(1) & 0x3Fu) << 12) | ((byte(2) & 0x3Fu) << 6) |
          (byte(3) & 0x3Fu);
    return 4;
  }
  return 0;
}

// Code points that print as nothing or reorder the text around them.
bool IsInvisible(uint32_t cp) {
  return (cp >= 0x80 && cp <= 0x9F) || cp == 0xAD || cp == 0x61C || cp == 0x180E ||
         (cp >= 0x200B && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202E) ||
         (cp >= 0x2060 && cp <= 0x206F) || cp == 0xFEFF || (cp >= 0xFFF9 && cp <= 0xFFFB);
}

bool IsBlank(absl::string_view line) { return absl::StripAsciiWhitespace(line).empty(); }

const char* FileKind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

absl::Status NotRegular(absl::string_view shown_path, mode_t mode) {
  return absl::InvalidArgumentError(absl::StrCat(
      shown_path, ": is ", FileKind(mode), ", not a regular file; surge import reads a CSV file"));
}

}  // namespace

std::string EscapeText(absl::string_view text, size_t max_bytes) {
  std::string out;
  out.reserve(std::min(text.size(), max_bytes) + 8);
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    char piece[16];
    size_t piece_len = 0;
    size_t consumed = 1;
    if (c >= 0x20 && c < 0x7F) {
      piece[0] = static_cast<char>(c);
      piece_len = 1;
    } else if (c == '\t' || c == '\n' || c == '\r') {
      piece[0] = '\\';
      piece[1] = c == '\t' ? 't' : c == '\n' ? 'n' : 'r';
      piece_len = 2;
    } else {
      uint32_t cp = 0;
      size_t n = c >= 0x80 ? DecodeUtf8(text.substr(i), &cp) : 0;
      if (n == 0) {
        piece_len = static_cast<size_t>(std::snprintf(piece, sizeof(piece), "\\x%02x", c));
      } else if (IsInvisible(cp)) {
        piece_len = static_cast<size_t>(std::snprintf(piece, sizeof(piece), "\\u%04x", cp));
        consumed = n;
      } else {
        std::memcpy(piece, text.data() + i, n);
        piece_len = n;
        consumed = n;
      }
    }
    if (out.size() + piece_len > max_bytes) {
      absl::StrAppend(&out, "...[+", text.size() - i, " bytes]");
      break;
    }
    out.append(piece, piece_len);
    i += consumed;
  }
  return out;
}

absl::StatusOr<std::unique_ptr<CsvScanner>> CsvScanner::Open(const std::string& path,
                                                             const Limits& limits) {
  std::unique_ptr<CsvScanner> s(new CsvScanner());
  s->path_ = path;
  s->shown_path_ = EscapeText(path, 4096);
  s->limits_ = limits;
  // O_NONBLOCK: opening a FIFO must not wait for a writer.
  s->fd_ = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (s->fd_ < 0) {
    const int error = errno;
    struct stat st;
    if (stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
      return NotRegular(s->shown_path_, st.st_mode);
    }
    std::string message = absl::StrCat(s->shown_path_, ": cannot open file: ", strerror(error));
    if (error == ENOENT || error == ENOTDIR) return absl::NotFoundError(message);
    if (error == EACCES || error == EPERM) return absl::PermissionDeniedError(message);
    return absl::InvalidArgumentError(message);
  }
  struct stat st;
  if (fstat(s->fd_, &st) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(s->shown_path_, ": cannot stat file: ", strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) return NotRegular(s->shown_path_, st.st_mode);
  fcntl(s->fd_, F_SETFL, fcntl(s->fd_, F_GETFL) & ~O_NONBLOCK);
  s->file_size_ = static_cast<int64_t>(st.st_size);
  s->buffer_.resize(static_cast<size_t>(
      std::max<int64_t>(limits.buffer_bytes, limits.max_record_bytes + 2)));

  while (s->end_ < 3 && !s->eof_) {
    absl::Status filled = s->Fill();
    if (!filled.ok()) return filled;
  }
  absl::string_view start(s->buffer_.data(), s->end_);
  if (absl::StartsWith(start, "\xFF\xFE") || absl::StartsWith(start, "\xFE\xFF")) {
    return absl::InvalidArgumentError(absl::StrCat(
        s->shown_path_, ": the file is UTF-16 (it starts with the byte-order mark ",
        EscapeText(start.substr(0, 2)), "); save it as UTF-8"));
  }
  if (absl::StartsWith(start, "\xEF\xBB\xBF")) {  // UTF-8 byte-order mark
    s->begin_ = 3;
    s->consumed_ = 3;
  }
  return s;
}

CsvScanner::~CsvScanner() {
  if (fd_ >= 0) close(fd_);
}

absl::Status CsvScanner::Fill() {
  if (begin_ > 0) {
    std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  while (end_ < buffer_.size()) {
    ssize_t n = read(fd_, buffer_.data() + end_, buffer_.size() - end_);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return absl::DataLossError(
          absl::StrCat(shown_path_, ": read error after ", consumed_ + static_cast<int64_t>(end_),
                       " bytes: ", strerror(errno)));
    }
    if (n == 0) eof_ = true;
    end_ += static_cast<size_t>(n);
    break;
  }
  return absl::OkStatus();
}

std::string CsvScanner::FieldName(size_t index) const {
  if (index < names_.size()) return absl::StrCat("column '", EscapeText(names_[index]), "'");
  return absl::StrCat("field ", index + 1);
}

absl::Status CsvScanner::ErrorAt(int64_t line, absl::string_view message) const {
  return absl::InvalidArgumentError(absl::StrCat(shown_path_, ":", line, ": ", message));
}

absl::Status CsvScanner::Error(absl::string_view message) const {
  return ErrorAt(record_line_, message);
}

absl::StatusOr<bool> CsvScanner::Next() {
  const size_t max_record = static_cast<size_t>(limits_.max_record_bytes);
  while (true) {
    if (begin_ == end_) {
      if (eof_) return false;
      absl::Status filled = Fill();
      if (!filled.ok()) return filled;
      continue;
    }
    const char* p = buffer_.data() + begin_;
    const size_t avail = end_ - begin_;
    record_line_ = line_no_;
    const char* newline =
        static_cast<const char*>(std::memchr(p, '\n', std::min(avail, max_record + 1)));
    if (newline == nullptr && avail > max_record) {
      return Error(absl::StrCat("line longer than ", max_record,
                                " bytes (the limit of one CSV record); is this a CSV text file?"));
    }
    if (newline == nullptr && !eof_) {
      absl::Status filled = Fill();
      if (!filled.ok()) return filled;
      continue;
    }
    const size_t length = newline != nullptr ? static_cast<size_t>(newline - p) : avail;
    if (std::memchr(p, '"', length) != nullptr) {
      Parse parsed = ParseQuoted();
      if (parsed == Parse::kError) return error_;
      if (parsed == Parse::kNeedMore) {
        absl::Status filled = Fill();
        if (!filled.ok()) return filled;
        continue;
      }
      begin_ += quoted_bytes_;
      consumed_ += static_cast<int64_t>(quoted_bytes_);
      line_no_ += quoted_lines_;
      return true;
    }
    const size_t step = length + (newline != nullptr ? 1 : 0);
    begin_ += step;
    consumed_ += static_cast<int64_t>(step);
    if (newline != nullptr) ++line_no_;
    size_t content = length;
    if (content > 0 && p[content - 1] == '\r') --content;
    if (IsBlank(absl::string_view(p, content))) continue;
    absl::Status split = SplitPlainLine(p, content);
    if (!split.ok()) return split;
    return true;
  }
}

absl::Status CsvScanner::SplitPlainLine(const char* p, size_t length) {
  fields_.clear();
  // A byte loop: fields are short, shorter than a memchr call is worth.
  const char* end = p + length;
  const char* start = p;
  for (const char* c = p;; ++c) {
    if (c != end && *c != ',') continue;
    const absl::string_view field(start, static_cast<size_t>(c - start));
    if (static_cast<int64_t>(field.size()) > limits_.max_field_bytes) {
      return Error(absl::StrCat(FieldName(fields_.size()), ": longer than ",
                                limits_.max_field_bytes, " bytes, starting '",
                                EscapeText(field, 32), "'"));
    }
    fields_.push_back(field);
    if (c == end) return absl::OkStatus();
    start = c + 1;
  }
}

CsvScanner::Parse CsvScanner::ParseQuoted() {
  const char* p = buffer_.data() + begin_;
  const size_t avail = end_ - begin_;
  const size_t max_record = static_cast<size_t>(limits_.max_record_bytes);
  const size_t max_field = static_cast<size_t>(limits_.max_field_bytes);
  // The record goes on past the bytes read: read more, unless it is
  // already too long to be one record.
  auto need_more = [&]() {
    if (avail > max_record) {
      error_ = Error(absl::StrCat("record longer than ", max_record,
                                  " bytes (the limit of one CSV record); a quote not closed?"));
      return Parse::kError;
    }
    return Parse::kNeedMore;
  };
  auto field_too_long = [&](size_t start) {
    if (unquoted_.size() - start <= max_field) return false;
    error_ = Error(absl::StrCat(FieldName(spans_.size()), ": longer than ", max_field,
                                " bytes, starting '",
                                EscapeText(absl::string_view(unquoted_).substr(start), 32), "'"));
    return true;
  };
  if (unquoted_.capacity() < max_record + 1) unquoted_.reserve(max_record + 1);
  unquoted_.clear();
  spans_.clear();
  size_t i = 0;
  int64_t lines = 0;
  bool newline_ended = false;
  while (true) {  // one field per iteration
    const size_t start = unquoted_.size();
    size_t j = i;
    while (j < avail && (p[j] == ' ' || p[j] == '\t')) ++j;
    if (j < avail && p[j] == '"') {
      const int64_t open_line = line_no_ + lines;
      i = j + 1;
      while (true) {
        if (i >= avail) {
          if (!eof_) return need_more();
          error_ = Error(absl::StrCat(FieldName(spans_.size()), ": the quote opened on line ",
                                      open_line, " is not closed at the end of the file"));
          return Parse::kError;
        }
        const char c = p[i];
        if (c == '"') {
          if (i + 1 >= avail && !eof_) return need_more();
          if (i + 1 < avail && p[i + 1] == '"') {
            unquoted_.push_back('"');
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        if (c == '\n') ++lines;
        unquoted_.push_back(c);
        ++i;
      }
      if (field_too_long(start)) return Parse::kError;
      while (i < avail && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r')) ++i;
      if (i >= avail && !eof_) return need_more();
      spans_.emplace_back(start, unquoted_.size() - start);
      if (i >= avail) break;
      if (p[i] == ',') {
        ++i;
        continue;
      }
      if (p[i] == '\n') {
        ++i;
        ++lines;
        newline_ended = true;
        break;
      }
      error_ = Error(absl::StrCat(
          FieldName(spans_.size() - 1), ": '", EscapeText(absl::string_view(p + i, 1)),
          "' after the closing quote; quote the whole field and double each quote inside it"));
      return Parse::kError;
    }
    size_t k = i;
    while (k < avail && p[k] != ',' && p[k] != '\n') ++k;
    if (k >= avail && !eof_) return need_more();
    size_t field_end = k;
    if ((k >= avail || p[k] == '\n') && field_end > i && p[field_end - 1] == '\r') --field_end;
    unquoted_.append(p + i, field_end - i);
    if (field_too_long(start)) return Parse::kError;
    spans_.emplace_back(start, unquoted_.size() - start);
    if (k >= avail) {
      i = k;
      break;
    }
    i = k + 1;
    if (p[k] == '\n') {
      ++lines;
      newline_ended = true;
      break;
    }
  }
  if (i - (newline_ended ? 1 : 0) > max_record) {
    error_ = Error(absl::StrCat("record longer than ", max_record,
                                " bytes (the limit of one CSV record)"));
    return Parse::kError;
  }
  fields_.clear();
  for (const auto& [offset, size] : spans_) {
    fields_.emplace_back(unquoted_.data() + offset, size);
  }
  quoted_bytes_ = i;
  quoted_lines_ = lines;
  return Parse::kDone;
}

}  // namespace surge::cli
