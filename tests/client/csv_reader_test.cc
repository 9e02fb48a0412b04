// Tests of CsvRecordReader: headers in any order, optional columns and
// cells, CRLF, blank lines, and errors that name FILE:LINE.
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

}  // namespace
}  // namespace surge::cli
