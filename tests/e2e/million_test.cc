// The foundation's scale check: `surge import` of a 1,000,000-record CSV
// finishes, and `surge records` returns all 1,000,000, identical to the input.
#include <algorithm>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace surge {
namespace {

TEST(MillionTest, ImportAndExportOneMillionRecords) {
  testing::TempDir dir;
  auto server = testing::ServerProcess::Start(dir.File("m.db"), dir.path());
  ASSERT_TRUE(server.ok()) << server.status();
  constexpr int kRuns = 8;
  constexpr int kSteps = 125000;
  std::string csv = dir.File("million.csv");
  {
    std::string text = "run,step,examples,batch_size,lr,loss,eval_loss,grad_sq_small,grad_sq_big,"
                       "b_small,b_big\n";
    text.reserve(64 << 20);
    for (int r = 0; r < kRuns; ++r) {
      int batch = 2 << r;
      for (int s = 0; s < kSteps; ++s) {
        absl::StrAppend(&text, "bs", batch, ",", s, ",", static_cast<int64_t>(s + 1) * batch, ",",
                        batch, ",0.001,", 1 + (s % 1000) * 0.001, ",,", 2 + (s % 7) * 0.25, ",",
                        1 + (s % 5) * 0.5, ",", batch / 2, ",", batch, "\n");
      }
    }
    std::ofstream(csv) << text;
  }
  auto imported = testing::RunCommand(
      {SURGE_CLI_BIN, "--server", server->address(), "import", "--job", "million", csv});
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  EXPECT_THAT(imported.out, ::testing::HasSubstr("imported 1000000 rows"));
  EXPECT_THAT(imported.out, ::testing::HasSubstr("1000000 new"));

  std::string out = dir.File("out.csv");
  auto exported = testing::RunCommand(
      {"/bin/sh", "-c",
       absl::StrCat(SURGE_CLI_BIN, " --server ", server->address(), " records million > ", out)});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  std::string original = testing::ReadFile(csv);
  std::string roundtrip = testing::ReadFile(out);
  EXPECT_EQ(std::count(roundtrip.begin(), roundtrip.end(), '\n'), 1000001);
  EXPECT_TRUE(original == roundtrip) << "export differs from the imported file";
}

}  // namespace
}  // namespace surge
