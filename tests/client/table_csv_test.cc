// Tests of TableCsv and ReadHeaderColumns (the optima and probe formats):
// BOM, quoted names and cells, bounds worded as the server words them, and
// the file line in every error.
#include "client/cli/table_csv.h"

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"

namespace surge::cli {
namespace {

using ::testing::ElementsAre;

class TableCsvTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& content) {
    std::string path = dir_.File(absl::StrCat("table-", ++files_, ".csv"));
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }
  surge::testing::TempDir dir_;
  int files_ = 0;
};

TEST_F(TableCsvTest, HeaderColumnsWithBomAndQuotes) {
  absl::StatusOr<std::vector<std::string>> columns =
      ReadHeaderColumns(Write("\xEF\xBB\xBF\"stage\", stage_loss ,\"lr_opt\"\r\n1,2,3\r\n"));
  ASSERT_TRUE(columns.ok()) << columns.status();
  EXPECT_THAT(*columns, ElementsAre("stage", "stage_loss", "lr_opt"));

  absl::StatusOr<std::vector<std::string>> dir = ReadHeaderColumns(dir_.path());
  EXPECT_EQ(dir.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(dir.status().message(),
            absl::StrCat(dir_.path(), ": is a directory, not a regular file; surge import reads "
                                      "a CSV file"));
  const std::string empty = Write("");
  EXPECT_EQ(ReadHeaderColumns(empty).status().message(),
            absl::StrCat(empty, ": empty file, expected a header"));
}

TEST_F(TableCsvTest, QuotedCellsAndBounds) {
  const std::string path = Write(
      "\xEF\xBB\xBF" "stage,\"stage_loss\",batch_size\r\n"
      "\"1\",\" 0.5 \",8\r\n"
      "\n"
      "-1,0.5,8\r\n"
      "2,0,x\r\n"
      "2,nan,0\r\n");
  absl::StatusOr<std::unique_ptr<TableCsv>> table =
      TableCsv::Open(path, {"stage", "stage_loss", "batch_size"});
  ASSERT_TRUE(table.ok()) << table.status();
  using Bound = TableCsv::Bound;
  TableCsv& t = **table;

  ASSERT_TRUE(*t.Next());
  EXPECT_EQ(t.line(), 2);
  EXPECT_EQ(*t.Int("stage", Bound::kNonNegative), 1);
  EXPECT_DOUBLE_EQ(*t.Double("stage_loss", Bound::kPositive), 0.5);

  ASSERT_TRUE(*t.Next());
  EXPECT_EQ(t.line(), 4);
  EXPECT_EQ(t.Int("stage", Bound::kNonNegative).status().message(),
            absl::StrCat(path, ":4: column 'stage': must be >= 0, got -1"));
  EXPECT_EQ(*t.Int("stage"), -1);

  ASSERT_TRUE(*t.Next());
  EXPECT_EQ(t.Double("stage_loss", Bound::kPositive).status().message(),
            absl::StrCat(path, ":5: column 'stage_loss': must be > 0, got 0"));
  EXPECT_EQ(t.Int("batch_size").status().message(),
            absl::StrCat(path, ":5: column 'batch_size': not an integer 'x'"));

  ASSERT_TRUE(*t.Next());
  EXPECT_EQ(t.Double("stage_loss").status().message(),
            absl::StrCat(path, ":6: column 'stage_loss': not a finite number 'nan'"));
  EXPECT_EQ(t.Int("batch_size", Bound::kPositive).status().message(),
            absl::StrCat(path, ":6: column 'batch_size': must be > 0, got 0"));
  EXPECT_FALSE(*t.Next());
}

TEST_F(TableCsvTest, ErrorsNameLineAndEscapeText) {
  const std::string missing = Write("stage,lr\n");
  EXPECT_EQ(TableCsv::Open(missing, {"stage", "seed"}).status().message(),
            absl::StrCat(missing, ":1: missing column 'seed'; the header needs stage,seed"));

  const std::string cells = Write("a,b\n1,2\n1,2,3\n");
  absl::StatusOr<std::unique_ptr<TableCsv>> table = TableCsv::Open(cells, {"a"});
  ASSERT_TRUE(table.ok()) << table.status();
  ASSERT_TRUE(*(*table)->Next());
  EXPECT_EQ((*table)->Next().status().message(),
            absl::StrCat(cells, ":3: expected 2 cells, got 3"));

  const std::string binary = Write(std::string("a\n\x1b[2J\x00\x07", 8));
  table = TableCsv::Open(binary, {"a"});
  ASSERT_TRUE(table.ok()) << table.status();
  ASSERT_TRUE(*(*table)->Next());
  EXPECT_EQ((*table)->Double("a").status().message(),
            absl::StrCat(binary, ":2: column 'a': not a finite number '\\x1b[2J\\x00\\x07'"));
}

}  // namespace
}  // namespace surge::cli
