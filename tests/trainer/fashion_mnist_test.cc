// Tests of the IDX reader and the Fashion-MNIST loader on the real files from
// Debian's dataset-fashion-mnist, plus synthetic and malformed IDX files.
#include "client/trainer/fashion_mnist.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <string>
#include <vector>

#include "tests/support/temp_dir.h"

namespace surge::trainer {
namespace {

void WriteGz(const std::string& path, const std::vector<unsigned char>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())),
            static_cast<int>(bytes.size()));
  gzclose(f);
}

TEST(FashionMnistTest, ReadsASyntheticIdxFile) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/a.gz";
  // Magic 0x00000803, dims 2 x 1 x 3, then 6 bytes.
  WriteGz(path, {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 3, 10, 20, 30, 40, 50, 60});
  auto idx = ReadIdxGz(path);
  ASSERT_TRUE(idx.ok()) << idx.status();
  EXPECT_EQ(idx->dims, (std::vector<uint32_t>{2, 1, 3}));
  EXPECT_EQ(idx->data, (std::vector<uint8_t>{10, 20, 30, 40, 50, 60}));
}

TEST(FashionMnistTest, RejectsBadMagicAndTruncation) {
  testing::TempDir dir;
  WriteGz(dir.path() + "/bad.gz", {0, 0, 9, 1, 0, 0, 0, 1, 7});  // type 0x09 (int8)
  auto bad = ReadIdxGz(dir.path() + "/bad.gz");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("magic"), std::string::npos) << bad.status();
  WriteGz(dir.path() + "/short.gz", {0, 0, 8, 1, 0, 0, 0, 5, 1, 2});  // 5 declared, 2 present
  auto shorter = ReadIdxGz(dir.path() + "/short.gz");
  EXPECT_EQ(shorter.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(shorter.status().message().find("truncated"), std::string::npos) << shorter.status();
}

TEST(FashionMnistTest, MissingFilesNameTheDebianPackage) {
  testing::TempDir dir;
  auto data = LoadFashionMnist(dir.path() + "/nowhere", "train");
  ASSERT_EQ(data.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(data.status().message().find("dataset-fashion-mnist"), std::string::npos)
      << data.status();
  EXPECT_NE(data.status().message().find("train-images-idx3-ubyte.gz"), std::string::npos);
}

TEST(FashionMnistTest, LoadsTheRealTestSplit) {
  auto data = LoadFashionMnist(kDefaultFashionMnistDir, "t10k");
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_EQ(data->size, 10000);
  ASSERT_EQ(data->images.size(), 10000u * 784u);
  // Balanced classes: 1,000 of each.
  std::vector<int> counts(10, 0);
  for (uint8_t y : data->labels) ++counts[y];
  for (int c = 0; c < 10; ++c) EXPECT_EQ(counts[c], 1000) << "class " << c;
  // The first test image is an ankle boot (class 9); normalized pixels span
  // [(0 - mean)/std, (1 - mean)/std] and average about 0 over the set.
  EXPECT_EQ(data->labels[0], 9);
  double sum = 0, lo = 1e9, hi = -1e9;
  for (float v : data->images) {
    sum += v;
    lo = std::min<double>(lo, v);
    hi = std::max<double>(hi, v);
  }
  EXPECT_NEAR(lo, -0.2860 / 0.3530, 1e-4);
  EXPECT_NEAR(hi, (1 - 0.2860) / 0.3530, 1e-4);
  EXPECT_NEAR(sum / data->images.size(), 0.0, 0.05);
}

TEST(FashionMnistTest, RejectsAnUnknownSplit) {
  EXPECT_EQ(LoadFashionMnist(kDefaultFashionMnistDir, "valid").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace surge::trainer
