// Tests of CsvRecordReader: headers in any order, optional columns and
// cells, CRLF, blank lines, BOM, RFC 4180 quoting, the server's record and
// run rules checked locally, escaped messages, size caps, and errors that
// name FILE:LINE.
#include "client/cli/csv_reader.h"

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"

namespace surge::cli {
namespace {

using ::testing::HasSubstr;

std::string Times(const std::string& piece, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += piece;
  return out;
}

class CsvReaderTest : public ::testing::Test {
 protected:
  // Writes `content` to a new file and returns its path.
  std::string Write(const std::string& content) {
    std::string path = dir_.File(absl::StrCat("records-", ++files_, ".csv"));
    std::ofstream out(path, std::ios::binary);
    out << content;
    return path;
  }

  // Reads every row; on error returns the status (rows read so far in `rows`).
  absl::Status ReadAll(const std::string& path, std::vector<CsvRow>& rows) {
    absl::StatusOr<std::unique_ptr<CsvRecordReader>> reader = CsvRecordReader::Open(path);
    if (!reader.ok()) return reader.status();
    while (true) {
      CsvRow row;
      absl::StatusOr<bool> more = (*reader)->Next(row);
      if (!more.ok()) return more.status();
      if (!*more) break;
      rows.push_back(row);
    }
    EXPECT_EQ((*reader)->file_size(), static_cast<int64_t>(FileSize(path)));
    EXPECT_GE((*reader)->bytes_read(), (*reader)->file_size() - 1);
    return absl::OkStatus();
  }

  static size_t FileSize(const std::string& path) {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    return static_cast<size_t>(in.tellg());
  }

  surge::testing::TempDir dir_;
  int files_ = 0;
};

TEST_F(CsvReaderTest, AllColumns) {
  const std::string path = Write(absl::StrCat(
      CsvRecordReader::CanonicalHeader(), "\n",
      "run-a,0,0,32,0.001,5.5,5.75,1.5,0.25,4,32\n",
      "run-a,1,32,32,0.002,5.25,,,,,\n",
      "run-b,7,224,64,0,-1.5e-3,4,,,,\n"));
  std::vector<CsvRow> rows;
  absl::Status status = ReadAll(path, rows);
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_EQ(rows.size(), 3u);

  const surge::v1::Record& r0 = rows[0].record;
  EXPECT_EQ(r0.run(), "run-a");
  EXPECT_EQ(r0.step(), 0);
  EXPECT_EQ(r0.examples(), 0);
  EXPECT_EQ(rows[0].batch_size, 32);
  EXPECT_DOUBLE_EQ(r0.lr(), 0.001);
  EXPECT_DOUBLE_EQ(r0.loss(), 5.5);
  ASSERT_TRUE(r0.has_eval_loss());
  EXPECT_DOUBLE_EQ(r0.eval_loss(), 5.75);
  ASSERT_TRUE(r0.has_grad_stats());
  EXPECT_DOUBLE_EQ(r0.grad_stats().grad_sq_small(), 1.5);
  EXPECT_DOUBLE_EQ(r0.grad_stats().grad_sq_big(), 0.25);
  EXPECT_EQ(r0.grad_stats().b_small(), 4);
  EXPECT_EQ(r0.grad_stats().b_big(), 32);
  EXPECT_EQ(rows[0].line, 2);

  // Empty optional cells mean absent; the record of the previous row must
  // not leak into this one.
  const surge::v1::Record& r1 = rows[1].record;
  EXPECT_EQ(r1.step(), 1);
  EXPECT_EQ(r1.examples(), 32);
  EXPECT_FALSE(r1.has_eval_loss());
  EXPECT_FALSE(r1.has_grad_stats());
  EXPECT_EQ(rows[1].line, 3);

  const surge::v1::Record& r2 = rows[2].record;
  EXPECT_EQ(r2.run(), "run-b");
  EXPECT_EQ(rows[2].batch_size, 64);
  EXPECT_DOUBLE_EQ(r2.lr(), 0.0);
  EXPECT_DOUBLE_EQ(r2.loss(), -1.5e-3);
  ASSERT_TRUE(r2.has_eval_loss());
  EXPECT_DOUBLE_EQ(r2.eval_loss(), 4.0);
  EXPECT_FALSE(r2.has_grad_stats());
}

TEST_F(CsvReaderTest, RequiredColumnsInAnotherOrder) {
  const std::string path = Write(
      "loss,lr,batch_size, run ,examples,step\n"
      "2.5,0.01,128,r1,1280,10\n"
      " 2.25 , 1e-2 , +128 , r1 , 2560 , 20 \n");
  std::vector<CsvRow> rows;
  absl::Status status = ReadAll(path, rows);
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_EQ(rows.size(), 2u);
  for (size_t i = 0; i < rows.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(rows[i].record.run(), "r1") << "cells are trimmed";
    EXPECT_EQ(rows[i].batch_size, 128);
    EXPECT_DOUBLE_EQ(rows[i].record.lr(), 0.01);
    EXPECT_FALSE(rows[i].record.has_eval_loss());
    EXPECT_FALSE(rows[i].record.has_grad_stats());
  }
  EXPECT_EQ(rows[0].record.step(), 10);
  EXPECT_EQ(rows[0].record.examples(), 1280);
  EXPECT_DOUBLE_EQ(rows[0].record.loss(), 2.5);
  EXPECT_EQ(rows[1].record.step(), 20);
  EXPECT_EQ(rows[1].record.examples(), 2560);
  EXPECT_DOUBLE_EQ(rows[1].record.loss(), 2.25);
}

TEST_F(CsvReaderTest, CrlfLineEndings) {
  const std::string path = Write(
      "run,step,examples,batch_size,lr,loss,eval_loss\r\n"
      "r1,0,0,8,0.1,3.0,\r\n"
      "r1,1,8,8,0.1,2.5,2.75\r\n"
      "r1,2,16,8,0.1,2.0,\r\n");
  std::vector<CsvRow> rows;
  absl::Status status = ReadAll(path, rows);
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].record.run(), "r1");
  EXPECT_FALSE(rows[0].record.has_eval_loss()) << "an empty last cell before \\r is absent";
  ASSERT_TRUE(rows[1].record.has_eval_loss());
  EXPECT_DOUBLE_EQ(rows[1].record.eval_loss(), 2.75);
  EXPECT_FALSE(rows[2].record.has_eval_loss());
  EXPECT_EQ(rows[2].line, 4);
}

TEST_F(CsvReaderTest, BlankLinesAreSkippedAndLinesCounted) {
  const std::string path = Write(
      "run,step,examples,batch_size,lr,loss\n"
      "\n"
      "r1,0,0,8,0.1,3.0\n"
      "   \n"
      "\r\n"
      "r1,1,8,8,0.1,2.5\n"
      "\n"
      "\n");
  std::vector<CsvRow> rows;
  absl::Status status = ReadAll(path, rows);
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].line, 3);
  EXPECT_EQ(rows[1].line, 6);
  EXPECT_EQ(rows[1].record.step(), 1);
}

TEST_F(CsvReaderTest, LastLineWithoutNewline) {
  const std::string path = Write("run,step,examples,batch_size,lr,loss\nr1,4,32,8,0.1,3.0");
  std::vector<CsvRow> rows;
  absl::Status status = ReadAll(path, rows);
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].record.step(), 4);
  EXPECT_DOUBLE_EQ(rows[0].record.loss(), 3.0);
}

TEST_F(CsvReaderTest, HeaderOnlyHasNoRows) {
  const std::string path = Write("run,step,examples,batch_size,lr,loss\n");
  std::vector<CsvRow> rows;
  absl::Status status = ReadAll(path, rows);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_TRUE(rows.empty());
}

TEST_F(CsvReaderTest, ErrorsNameFileAndLine) {
  const std::string kReq = "run,step,examples,batch_size,lr,loss";
  struct Case {
    std::string name;
    std::string content;
    int line;               // expected in "FILE:LINE"
    std::string substring;  // a column name or other detail
    size_t rows_before;     // rows returned before the error
  };
  const std::vector<Case> cases = {
      {"missing run column", "step,examples,batch_size,lr,loss\n0,0,8,0.1,1\n", 1, "run", 0},
      {"missing step column", "run,examples,batch_size,lr,loss\nr,0,8,0.1,1\n", 1, "step", 0},
      {"missing examples column", "run,step,batch_size,lr,loss\nr,0,8,0.1,1\n", 1, "examples", 0},
      {"missing batch_size column", "run,step,examples,lr,loss\nr,0,0,0.1,1\n", 1, "batch_size",
       0},
      {"missing lr column", "run,step,examples,batch_size,loss\nr,0,0,8,1\n", 1, "lr", 0},
      {"missing loss column", "run,step,examples,batch_size,lr\nr,0,0,8,0.1\n", 1, "loss", 0},
      {"unknown column", kReq + ",momentum\nr,0,0,8,0.1,1,0.9\n", 1, "momentum", 0},
      {"column twice", kReq + ",lr\nr,0,0,8,0.1,1,0.1\n", 1, "lr", 0},
      {"partial grad columns", kReq + ",grad_sq_small,grad_sq_big\nr,0,0,8,0.1,1,1,2\n", 1,
       "grad", 0},
      {"three of four grad columns", kReq + ",grad_sq_small,grad_sq_big,b_small\n", 1, "grad", 0},
      {"too few cells", kReq + "\nr,0,0,8,0.1,1\nr,1,8,8,0.1\n", 3, "cells", 1},
      {"too many cells", kReq + "\nr,0,0,8,0.1,1,7\n", 2, "cells", 0},
      {"bad step", kReq + "\nr,0,0,8,0.1,1\nr,abc,8,8,0.1,1\n", 3, "step", 1},
      {"fractional step", kReq + "\nr,1.5,0,8,0.1,1\n", 2, "step", 0},
      {"bad examples", kReq + "\nr,0,1e3,8,0.1,1\n", 2, "examples", 0},
      {"bad batch_size", kReq + "\nr,0,0,eight,0.1,1\n", 2, "batch_size", 0},
      {"bad lr", kReq + "\nr,0,0,8,0.1.2,1\n", 2, "lr", 0},
      {"empty lr", kReq + "\nr,0,0,8,,1\n", 2, "lr", 0},
      {"bad loss", kReq + "\nr,0,0,8,0.1,1x\n", 2, "loss", 0},
      {"empty run", kReq + "\n ,0,0,8,0.1,1\n", 2, "run", 0},
      {"bad eval_loss", kReq + ",eval_loss\nr,0,0,8,0.1,1,low\n", 2, "eval_loss", 0},
      {"bad b_big", kReq + ",grad_sq_small,grad_sq_big,b_small,b_big\nr,0,0,8,0.1,1,1,2,4,x\n", 2,
       "b_big", 0},
      {"grad row missing b_big", kReq + ",grad_sq_small,grad_sq_big,b_small,b_big\nr,0,0,8,0.1,1,1,2,4,\n",
       2, "b_big", 0},
      {"error after blank lines", kReq + "\n\n\nr,0,0,8,0.1,1\n\nr,1,8,8,zz,1\n", 6, "lr", 1},
      {"error on CRLF line", kReq + "\r\nr,0,0,8,0.1,1\r\nr,x,0,8,0.1,1\r\n", 3, "step", 1},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string path = Write(c.content);
    std::vector<CsvRow> rows;
    absl::Status status = ReadAll(path, rows);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr(absl::StrCat(path, ":", c.line, ":")))
        << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr(c.substring)) << status;
    EXPECT_EQ(rows.size(), c.rows_before);
  }
}

TEST_F(CsvReaderTest, EmptyAndMissingFiles) {
  std::vector<CsvRow> rows;
  const std::string empty = Write("");
  absl::Status status = ReadAll(empty, rows);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(empty));

  const std::string missing = dir_.File("does-not-exist.csv");
  status = ReadAll(missing, rows);
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(missing));
}

TEST_F(CsvReaderTest, ManyRowsAndProgress) {
  std::string content = absl::StrCat(CsvRecordReader::CanonicalHeader(), "\n");
  constexpr int kRows = 20000;
  for (int i = 0; i < kRows; ++i) {
    absl::StrAppend(&content, "run-", i % 3, ",", i, ",", i * 16, ",16,0.0003,", 1.0 + i * 1e-4,
                    i % 2 ? "," : ",2.5", i % 5 ? ",,,," : ",1.5,0.5,2,16", "\n");
  }
  const std::string path = Write(content);
  absl::StatusOr<std::unique_ptr<CsvRecordReader>> reader = CsvRecordReader::Open(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  int n = 0;
  int64_t last_progress = 0;
  CsvRow row;
  while (true) {
    absl::StatusOr<bool> more = (*reader)->Next(row);
    ASSERT_TRUE(more.ok()) << more.status();
    if (!*more) break;
    ASSERT_EQ(row.record.step(), n);
    ASSERT_EQ(row.record.has_eval_loss(), n % 2 == 0) << "row " << n;
    ASSERT_EQ(row.record.has_grad_stats(), n % 5 == 0) << "row " << n;
    EXPECT_GE((*reader)->bytes_read(), last_progress);
    last_progress = (*reader)->bytes_read();
    ++n;
  }
  EXPECT_EQ(n, kRows);
  EXPECT_EQ((*reader)->bytes_read(), (*reader)->file_size());
}

// The four grad cells of a row go together, like the columns: a row with only
// some of them set is rejected.
TEST_F(CsvReaderTest, PartialGradCellsAreRejected) {
  const std::string path = Write(
      "run,step,examples,batch_size,lr,loss,grad_sq_small,grad_sq_big,b_small,b_big\n"
      "r,0,0,8,0.1,1,,2,4,32\n");
  std::vector<CsvRow> rows;
  absl::Status status = ReadAll(path, rows);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument)
      << status << "; rows: " << (rows.empty() ? "" : rows[0].record.ShortDebugString());
}

TEST_F(CsvReaderTest, BomQuotesAndCrlf) {
  const std::string path = Write(
      "\xEF\xBB\xBF\"run\",step,\"examples\",batch_size,lr,loss,eval_loss\r\n"
      "\"r1\",0,\"8\",8,\" 0.1 \",\"2.5\",\r\n"
      "r1,1,16,8,0.1,2.25,\"2.5\n\"\r\n"
      "\"r1\" , 2 ,24,8,0.1,2,\"\"\r\n");
  std::vector<CsvRow> rows;
  absl::Status status = ReadAll(path, rows);
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].record.run(), "r1");
  EXPECT_EQ(rows[0].record.examples(), 8);
  EXPECT_DOUBLE_EQ(rows[0].record.lr(), 0.1);
  EXPECT_DOUBLE_EQ(rows[0].record.loss(), 2.5);
  EXPECT_FALSE(rows[0].record.has_eval_loss());
  EXPECT_EQ(rows[0].line, 2);
  // A line break inside quotes: the row spans lines 3-4, the next is line 5.
  ASSERT_TRUE(rows[1].record.has_eval_loss());
  EXPECT_DOUBLE_EQ(rows[1].record.eval_loss(), 2.5);
  EXPECT_EQ(rows[1].line, 3);
  EXPECT_EQ(rows[2].line, 5);
  EXPECT_EQ(rows[2].record.step(), 2);
  EXPECT_FALSE(rows[2].record.has_eval_loss());
}

// The rules of server/core/validation.cc (ValidateRecord, ValidateRun's
// batch size, ValidateName for the run), checked before anything is sent,
// with the file line and column.
TEST_F(CsvReaderTest, ServerRulesAreCheckedWithLineAndColumn) {
  const std::string kHeader =
      "run,step,examples,batch_size,lr,loss,eval_loss,grad_sq_small,grad_sq_big,b_small,b_big\n"
      "ok,0,0,8,0.1,1,,,,,\n";
  struct Case {
    std::string row;
    std::string message;  // after "PATH:3: "
  };
  const std::vector<Case> cases = {
      {"r,-1,0,8,0.1,1,,,,,", "column 'step': must be >= 0, got -1"},
      {"r,0,-8,8,0.1,1,,,,,", "column 'examples': must be >= 0, got -8"},
      {"r,0,0,0,0.1,1,,,,,", "column 'batch_size': must be > 0, got 0"},
      {"r,0,0,-4,0.1,1,,,,,", "column 'batch_size': must be > 0, got -4"},
      {"r,0,0,8,nan,1,,,,,", "column 'lr': must be finite and >= 0, got nan"},
      {"r,0,0,8,-0.1,1,,,,,", "column 'lr': must be finite and >= 0, got -0.1"},
      {"r,0,0,8,inf,1,,,,,", "column 'lr': must be finite and >= 0, got inf"},
      {"r,0,0,8,0.1,-inf,,,,,", "column 'loss': must be finite, got -inf"},
      {"r,0,0,8,0.1,1,NaN,,,,", "column 'eval_loss': must be finite, got nan"},
      {"r,0,0,8,0.1,1,,-1,2,4,8", "column 'grad_sq_small': must be finite and >= 0, got -1"},
      {"r,0,0,8,0.1,1,,1,inf,4,8", "column 'grad_sq_big': must be finite and >= 0, got inf"},
      {"r,0,0,8,0.1,1,,1,2,0,8", "column 'b_small': must be >= 1, got 0"},
      {"r,0,0,8,0.1,1,,1,2,4,4", "column 'b_big': must be > b_small (4), got 4"},
      {"-r,0,0,8,0.1,1,,,,,", "column 'run': must start with a letter or digit, got '-r'"},
      {"a b,0,0,8,0.1,1,,,,,",
       "column 'run': only letters, digits, '.', '_' and '-' are allowed, got 'a b'"},
      {"\"r\n1\",0,0,8,0.1,1,,,,,",
       "column 'run': only letters, digits, '.', '_' and '-' are allowed, got 'r\\n1'"},
      {std::string(129, 'r') + ",0,0,8,0.1,1,,,,,",
       "column 'run': at most 128 characters, got 129: '" + std::string(64, 'r') +
           "...[+65 bytes]'"},
      {"ok,1,8,16,0.1,1,,,,,",
       "run 'ok' has batch_size 8 in earlier rows (from line 2), 16 here; a run has one batch "
       "size"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.row);
    const std::string path = Write(kHeader + c.row + "\n");
    std::vector<CsvRow> rows;
    absl::Status status = ReadAll(path, rows);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_EQ(status.message(), absl::StrCat(path, ":3: ", c.message));
    EXPECT_EQ(rows.size(), 1u);
  }
  // Limits that pass: a 128-character run, step 0, lr 0, b_big = b_small + 1.
  const std::string path = Write(kHeader + std::string(128, 'r') + ",0,0,1,0,-5,-1,0,0,1,2\n");
  std::vector<CsvRow> rows;
  absl::Status status = ReadAll(path, rows);
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(rows.size(), 2u);
}

// A run keeps one batch size across the whole file, not only in adjacent
// rows; runs() lists the runs in order of first appearance.
TEST_F(CsvReaderTest, RunsAndTheirBatchSizes) {
  const std::string path = Write(
      "run,step,examples,batch_size,lr,loss\n"
      "a,0,8,8,0.1,1\nb,0,16,16,0.1,1\na,1,16,8,0.1,1\nc,0,4,4,0.1,1\nb,1,32,16,0.1,1\n");
  absl::StatusOr<std::unique_ptr<CsvRecordReader>> reader = CsvRecordReader::Open(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  CsvRow row;
  int n = 0;
  while (*(*reader)->Next(row)) ++n;
  EXPECT_EQ(n, 5);
  const std::vector<CsvRun>& runs = (*reader)->runs();
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[0].name, "a");
  EXPECT_EQ(runs[0].batch_size, 8);
  EXPECT_EQ(runs[0].first_line, 2);
  EXPECT_EQ(runs[1].name, "b");
  EXPECT_EQ(runs[1].first_line, 3);
  EXPECT_EQ(runs[2].name, "c");
  EXPECT_EQ(runs[2].batch_size, 4);

  const std::string conflict = Write(
      "run,step,examples,batch_size,lr,loss\n"
      "a,0,8,8,0.1,1\nb,0,16,16,0.1,1\n\nb,1,32,16,0.1,1\na,1,32,32,0.1,1\n");
  std::vector<CsvRow> rows;
  absl::Status status = ReadAll(conflict, rows);
  EXPECT_EQ(status.message(),
            absl::StrCat(conflict, ":6: run 'a' has batch_size 8 in earlier rows (from line 2), 32 "
                                   "here; a run has one batch size"));
  EXPECT_EQ(rows.size(), 3u);
}

// Text from the file is escaped and cut in every message: no raw control
// byte reaches the terminal.
TEST_F(CsvReaderTest, MessagesEscapeFileText) {
  struct Case {
    std::string name;
    std::string content;
    std::string message;  // after "PATH:"
  };
  const std::string kReq = "run,step,examples,batch_size,lr,loss\n";
  const std::vector<Case> cases = {
      {"BOM not at the start", "\xEF\xBB\xBF\xEF\xBB\xBFrun,step\n",
       "1: unknown column '\\ufeffrun'; expected "
       "run,step,examples,batch_size,lr,loss,eval_loss,grad_sq_small,grad_sq_big,b_small,b_big"},
      {"binary header", std::string("\x7f" "ELF\x02\x01\x01\0\0\0,x\n", 13),
       "1: unknown column '\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00'; expected "
       "run,step,examples,batch_size,lr,loss,eval_loss,grad_sq_small,grad_sq_big,b_small,b_big"
       " (the file does not look like CSV text)"},
      {"escape sequence in a number", kReq + "r,0,0,8,\x1b[31m1,1\n",
       "2: column 'lr': not a valid number '\\x1b[31m1'"},
      {"long garbage in a number", kReq + "r,0,0,8," + std::string(1000, '\x01') + ",1\n",
       "2: column 'lr': not a valid number '" + Times("\\x01", 16) + "...[+984 bytes]'"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string path = Write(c.content);
    std::vector<CsvRow> rows;
    absl::Status status = ReadAll(path, rows);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_EQ(status.message(), absl::StrCat(path, ":", c.message));
    for (char ch : status.message()) {
      EXPECT_FALSE(static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) << status;
    }
  }
}

TEST_F(CsvReaderTest, LineAndFieldCaps) {
  CsvScanner::Limits limits;
  limits.max_record_bytes = 64;
  limits.max_field_bytes = 16;
  const std::string kReq = "run,step,examples,batch_size,lr,loss\n";
  const std::string long_line = Write(kReq + "r,0,0,8,0.1,1\nr,1,8,8,0.1,1" +
                                      std::string(60, ' ') + "\n");
  absl::StatusOr<std::unique_ptr<CsvRecordReader>> reader =
      CsvRecordReader::Open(long_line, limits);
  ASSERT_TRUE(reader.ok()) << reader.status();
  CsvRow row;
  ASSERT_TRUE(*(*reader)->Next(row));
  EXPECT_EQ((*reader)->Next(row).status().message(),
            absl::StrCat(long_line, ":3: line longer than 64 bytes (the limit of one CSV record); "
                                    "is this a CSV text file?"));

  const std::string long_field = Write(kReq + "r,0,0,8,0.1,1\nr,1,8,8,0.1,\"1" +
                                       std::string(20, '0') + "\"\n");
  reader = CsvRecordReader::Open(long_field, limits);
  ASSERT_TRUE(reader.ok()) << reader.status();
  ASSERT_TRUE(*(*reader)->Next(row));
  EXPECT_EQ((*reader)->Next(row).status().message(),
            absl::StrCat(long_field, ":3: column 'loss': longer than 16 bytes, starting '1",
                         std::string(20, '0'), "'"));
}

TEST_F(CsvReaderTest, LinesOfRows) {
  const std::string path = Write(
      "run,step,examples,batch_size,lr,loss\n"
      "r,0,0,8,0.1,1\n"
      "\n"
      "r,1,8,8,0.1,1\n"
      "\"r\",2,16,8,0.1,\"1\n\"\n"
      "r,3,24,8,0.1,1\n");
  absl::StatusOr<std::vector<int64_t>> lines =
      CsvRecordReader::LinesOfRows(path, {0, 1, 2, 3, 3, 4});
  ASSERT_TRUE(lines.ok()) << lines.status();
  EXPECT_THAT(*lines, ::testing::ElementsAre(2, 4, 5, 7, 7, 0));
}

}  // namespace
}  // namespace surge::cli
