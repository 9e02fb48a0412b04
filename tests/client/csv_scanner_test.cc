// Tests of CsvScanner and EscapeText: RFC 4180 quoting, BOM, CRLF, line
// numbers of records that span lines, every split of the input across the
// read buffer, the size caps, files that are not regular, and messages that
// never carry raw control bytes.
#include "client/cli/csv_scanner.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"

namespace surge::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A record as read: its first line and its fields.
struct Record {
  int64_t line;
  std::vector<std::string> fields;
  bool operator==(const Record& o) const { return line == o.line && fields == o.fields; }
};

std::ostream& operator<<(std::ostream& os, const Record& r) {
  return os << r.line << ":[" << absl::StrJoin(r.fields, "|") << "]";
}

std::string Repeat(const std::string& piece, int times) {
  std::string out;
  for (int i = 0; i < times; ++i) out += piece;
  return out;
}

// True when `text` has a byte a terminal would act on.
bool HasRawControlBytes(absl::string_view text) {
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) return true;
  }
  return false;
}

class CsvScannerTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& content) {
    std::string path = dir_.File(absl::StrCat("scan-", ++files_, ".csv"));
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }

  // Scans the whole file; the records read before an error are in `out`.
  absl::Status ScanAll(const std::string& path, std::vector<Record>& out,
                       const CsvScanner::Limits& limits = CsvScanner::Limits()) {
    absl::StatusOr<std::unique_ptr<CsvScanner>> scanner = CsvScanner::Open(path, limits);
    if (!scanner.ok()) return scanner.status();
    while (true) {
      absl::StatusOr<bool> more = (*scanner)->Next();
      if (!more.ok()) return more.status();
      if (!*more) break;
      Record r{(*scanner)->line(), {}};
      for (absl::string_view f : (*scanner)->fields()) r.fields.emplace_back(f);
      out.push_back(std::move(r));
    }
    EXPECT_EQ((*scanner)->bytes_read(), (*scanner)->file_size());
    return absl::OkStatus();
  }

  std::vector<Record> ScanOk(const std::string& content,
                             const CsvScanner::Limits& limits = CsvScanner::Limits()) {
    std::vector<Record> out;
    absl::Status status = ScanAll(Write(content), out, limits);
    EXPECT_TRUE(status.ok()) << status;
    return out;
  }

  surge::testing::TempDir dir_;
  int files_ = 0;
};

TEST_F(CsvScannerTest, PlainLinesAndBlankLines) {
  EXPECT_THAT(ScanOk("a,b,c\n\n1,,3\n  \r\nx\n"),
              ElementsAre(Record{1, {"a", "b", "c"}}, Record{3, {"1", "", "3"}},
                          Record{5, {"x"}}));
}

TEST_F(CsvScannerTest, Utf8ByteOrderMarkIsSkipped) {
  EXPECT_THAT(ScanOk("\xEF\xBB\xBFrun,step\nr,1\n"),
              ElementsAre(Record{1, {"run", "step"}}, Record{2, {"r", "1"}}));
  // Only at the start: a BOM elsewhere is data.
  EXPECT_THAT(ScanOk("a\n\xEF\xBB\xBF" "b\n"),
              ElementsAre(Record{1, {"a"}}, Record{2, {"\xEF\xBB\xBF" "b"}}));
  EXPECT_THAT(ScanOk("\xEF\xBB\xBF"), ElementsAre());
}

TEST_F(CsvScannerTest, CrlfLineEnds) {
  EXPECT_THAT(ScanOk("a,b\r\n1,\r\n\"q\",2\r\n"),
              ElementsAre(Record{1, {"a", "b"}}, Record{2, {"1", ""}}, Record{3, {"q", "2"}}));
  // The last line without a line end, CR or not.
  EXPECT_THAT(ScanOk("a\r\nb\r"), ElementsAre(Record{1, {"a"}}, Record{2, {"b"}}));
}

TEST_F(CsvScannerTest, Rfc4180Quoting) {
  EXPECT_THAT(ScanOk("\"a,b\",\"say \"\"hi\"\"\",\"\",plain\n"),
              ElementsAre(Record{1, {"a,b", "say \"hi\"", "", "plain"}}));
  // Spaces around a quoted field are dropped; inside they are kept.
  EXPECT_THAT(ScanOk("  \" x \" ,\t\"y\"\t\n"), ElementsAre(Record{1, {" x ", "y"}}));
  // A quote inside an unquoted field is an ordinary character.
  EXPECT_THAT(ScanOk("5\"3,a\"b\"\n"), ElementsAre(Record{1, {"5\"3", "a\"b\""}}));
  // A quoted last field at the end of the file without a line end.
  EXPECT_THAT(ScanOk("x,\"y\""), ElementsAre(Record{1, {"x", "y"}}));
}

TEST_F(CsvScannerTest, LineBreaksInsideQuotesKeepLineNumbers) {
  EXPECT_THAT(ScanOk("h1,h2\n\"two\nlines\",1\n\"three\r\nmore\nlines\",2\nlast,3\n"),
              ElementsAre(Record{1, {"h1", "h2"}}, Record{2, {"two\nlines", "1"}},
                          Record{4, {"three\r\nmore\nlines", "2"}}, Record{7, {"last", "3"}}));
}

// Every split of a file across the read buffer gives the same records: the
// buffer is as small as the caps allow and the caps vary.
TEST_F(CsvScannerTest, SameRecordsForEveryBufferSize) {
  const std::string content =
      "\xEF\xBB\xBFrun,\"lr\",loss\r\n"
      "r1,0.1,2\r\n"
      "\n"
      "\"r,2\",\"a \"\"q\"\"\nz\",3\n"
      "  \"sp\" ,x\"y,\n"
      "end,\"\",\"\"";
  const std::vector<Record> expected = {
      {1, {"run", "lr", "loss"}}, {2, {"r1", "0.1", "2"}}, {4, {"r,2", "a \"q\"\nz", "3"}},
      {6, {"sp", "x\"y", ""}},    {7, {"end", "", ""}}};
  const std::string path = Write(content);
  for (int64_t cap = 20; cap <= 64; ++cap) {
    SCOPED_TRACE(absl::StrCat("max_record_bytes ", cap));
    CsvScanner::Limits limits;
    limits.max_record_bytes = cap;
    limits.buffer_bytes = 1;  // the smallest buffer: cap + 2
    std::vector<Record> got;
    absl::Status status = ScanAll(path, got, limits);
    ASSERT_TRUE(status.ok()) << status;
    EXPECT_EQ(got, expected);
  }
}

TEST_F(CsvScannerTest, QuotingErrorsNameLineAndColumn) {
  struct Case {
    std::string name;
    std::string content;
    std::string message;  // after "PATH:"
    size_t records_before;
  };
  const std::vector<Case> cases = {
      {"text after closing quote", "a,b\n1,\"x\"y\n",
       "2: column 'b': 'y' after the closing quote; quote the whole field and double each quote "
       "inside it",
       1},
      {"unclosed quote", "a,b\n1,2\n3,\"open\n4,5\n",
       "3: column 'b': the quote opened on line 3 is not closed at the end of the file", 2},
      {"unclosed quote on a later line", "a\n\"x\ny\" , \"\n\n",
       "2: column 'b': the quote opened on line 3 is not closed at the end of the file", 1},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string path = Write(c.content);
    absl::StatusOr<std::unique_ptr<CsvScanner>> scanner = CsvScanner::Open(path);
    ASSERT_TRUE(scanner.ok()) << scanner.status();
    (*scanner)->set_field_names({"a", "b"});
    size_t records = 0;
    absl::Status status;
    while (true) {
      absl::StatusOr<bool> more = (*scanner)->Next();
      if (!more.ok()) {
        status = more.status();
        break;
      }
      if (!*more) break;
      ++records;
    }
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_EQ(status.message(), absl::StrCat(path, ":", c.message));
    EXPECT_EQ(records, c.records_before);
  }
}

TEST_F(CsvScannerTest, LongLinesAndFieldsAreRefused) {
  CsvScanner::Limits limits;
  limits.max_record_bytes = 100;
  limits.max_field_bytes = 10;
  struct Case {
    std::string name;
    std::string content;
    std::string message;  // after "PATH:"
  };
  const std::vector<Case> cases = {
      {"line at the cap is fine, one more byte is not",
       "a\n" + Repeat("xxxxxxxxx,", 10) + "\n" + Repeat("yyyyyyyyy,", 10) + "y\n",
       "3: line longer than 100 bytes (the limit of one CSV record); is this a CSV text file?"},
      {"no line end at all", std::string(5000, '\0'),
       "1: line longer than 100 bytes (the limit of one CSV record); is this a CSV text file?"},
      {"quoted record of short lines too long", "a\n\"" + Repeat("qqqq\n", 50),
       "2: record longer than 100 bytes (the limit of one CSV record); a quote not closed?"},
      {"plain field too long", "a,b\n1,0123456789A\n",
       "2: field 2: longer than 10 bytes, starting '0123456789A'"},
      {"quoted field too long", "a,b\n\"01234\"\"567890\",1\n",
       "2: field 1: longer than 10 bytes, starting '01234\"567890'"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<Record> got;
    const std::string path = Write(c.content);
    absl::Status status = ScanAll(path, got, limits);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_EQ(status.message(), absl::StrCat(path, ":", c.message));
  }
}

// A big file without line ends costs a bounded buffer: the default caps
// refuse it after reading about one megabyte.
TEST_F(CsvScannerTest, GarbageWithoutLineEndsStopsEarly) {
  const std::string path = Write(std::string(8 << 20, 'z'));
  absl::StatusOr<std::unique_ptr<CsvScanner>> scanner = CsvScanner::Open(path);
  ASSERT_TRUE(scanner.ok()) << scanner.status();
  absl::StatusOr<bool> more = (*scanner)->Next();
  EXPECT_EQ(more.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(more.status().message()), HasSubstr(":1: line longer than 1048576"));
  EXPECT_EQ((*scanner)->bytes_read(), 0);
}

TEST_F(CsvScannerTest, NonRegularFilesAreRefused) {
  const std::string fifo = dir_.File("pipe.csv");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  struct Case {
    std::string path;
    std::string kind;
  };
  const std::vector<Case> cases = {{dir_.path(), "a directory"},
                                   {"/dev/zero", "a character device"},
                                   {"/dev/null", "a character device"},
                                   {fifo, "a FIFO (named pipe)"}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.path);
    // A FIFO without a writer must not block the open.
    absl::StatusOr<std::unique_ptr<CsvScanner>> scanner = CsvScanner::Open(c.path);
    EXPECT_EQ(scanner.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(scanner.status().message(),
              absl::StrCat(c.path, ": is ", c.kind,
                           ", not a regular file; surge import reads a CSV file"));
  }
  absl::StatusOr<std::unique_ptr<CsvScanner>> missing = CsvScanner::Open(dir_.File("none.csv"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("cannot open file"));
}

TEST_F(CsvScannerTest, Utf16IsRefused) {
  for (const std::string bom : {"\xFF\xFE", "\xFE\xFF"}) {
    const std::string path = Write(bom + std::string("r\0u\0n\0", 6));
    absl::StatusOr<std::unique_ptr<CsvScanner>> scanner = CsvScanner::Open(path);
    EXPECT_EQ(scanner.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(scanner.status().message()), HasSubstr("the file is UTF-16"));
    EXPECT_FALSE(HasRawControlBytes(scanner.status().message())) << scanner.status();
  }
}

TEST(EscapeTextTest, Cases) {
  struct Case {
    std::string in;
    size_t max;
    std::string out;
  };
  const std::vector<Case> cases = {
      {"plain text, 1.5e-3", 64, "plain text, 1.5e-3"},
      {std::string("nul\0bell\a", 9), 64, "nul\\x00bell\\x07"},
      {"tab\tnl\ncr\r del\x7F esc\x1b[31m", 64, "tab\\tnl\\ncr\\r del\\x7f esc\\x1b[31m"},
      {"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", 64,
       "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"},
      {"bad \xC3 \xFF \xC0\xAF \xED\xA0\x80", 64, "bad \\xc3 \\xff \\xc0\\xaf \\xed\\xa0\\x80"},
      {"\xEF\xBB\xBFrun", 64, "\\ufeffrun"},
      {"a\xE2\x80\x8B" "b\xE2\x80\xAE" "c\xC2\x85", 64, "a\\u200bb\\u202ec\\u0085"},
      {"0123456789", 4, "0123...[+6 bytes]"},
      {std::string(10, '\0'), 9, "\\x00\\x00...[+8 bytes]"},
      {"ab\xC3\xA9", 3, "ab...[+2 bytes]"},  // never cuts inside a character
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.out);
    EXPECT_EQ(EscapeText(c.in, c.max), c.out);
  }
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  EXPECT_FALSE(HasRawControlBytes(EscapeText(all, 4096)));
}

}  // namespace
}  // namespace surge::cli
