// IDX reader (zlib's gz* functions read plain and gzip'd files alike) and the
// Fashion-MNIST loader.
#include "client/trainer/fashion_mnist.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "client/trainer/cnn_cpu.h"

namespace surge::trainer {
namespace {

constexpr float kMean = 0.2860f;
constexpr float kStd = 0.3530f;

struct GzCloser {
  void operator()(gzFile f) const { gzclose(f); }
};

uint32_t BigEndian32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

}  // namespace

absl::StatusOr<IdxArray> ReadIdxGz(const std::string& path) {
  std::unique_ptr<gzFile_s, GzCloser> f(gzopen(path.c_str(), "rb"));
  if (f == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        "cannot open ", path, ": ", std::strerror(errno),
        ". Fashion-MNIST comes from the Debian package dataset-fashion-mnist "
        "(apt-get install dataset-fashion-mnist), or pass --data_dir"));
  }
  unsigned char header[4];
  if (gzread(f.get(), header, 4) != 4) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": truncated IDX header"));
  }
  // Magic: two zero bytes, a type code (0x08 = uint8), the number of dims.
  if (header[0] != 0 || header[1] != 0 || header[2] != 0x08 || header[3] < 1 || header[3] > 4) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a uint8 IDX file (bad magic number)"));
  }
  IdxArray out;
  uint64_t count = 1;
  for (int i = 0; i < header[3]; ++i) {
    unsigned char d[4];
    if (gzread(f.get(), d, 4) != 4) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": truncated IDX dimensions"));
    }
    out.dims.push_back(BigEndian32(d));
    count *= out.dims.back();
  }
  if (count > (uint64_t{1} << 32)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": IDX dimensions too large"));
  }
  out.data.resize(count);
  uint64_t done = 0;
  while (done < count) {
    unsigned chunk = static_cast<unsigned>(std::min<uint64_t>(count - done, 1u << 30));
    int got = gzread(f.get(), out.data.data() + done, chunk);
    if (got <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": truncated IDX data (", done,
                                                     " of ", count, " bytes)"));
    }
    done += static_cast<uint64_t>(got);
  }
  return out;
}

absl::StatusOr<Dataset> LoadFashionMnist(const std::string& dir, const std::string& split) {
  if (split != "train" && split != "t10k") {
    return absl::InvalidArgumentError(
        absl::StrCat("split must be train or t10k, got '", split, "'"));
  }
  auto images = ReadIdxGz(absl::StrCat(dir, "/", split, "-images-idx3-ubyte.gz"));
  if (!images.ok()) return images.status();
  auto labels = ReadIdxGz(absl::StrCat(dir, "/", split, "-labels-idx1-ubyte.gz"));
  if (!labels.ok()) return labels.status();
  if (images->dims.size() != 3 || images->dims[1] != kImageSide ||
      images->dims[2] != kImageSide) {
    return absl::InvalidArgumentError(absl::StrCat(dir, ": ", split, " images are not N x 28 x 28"));
  }
  if (labels->dims.size() != 1 || labels->dims[0] != images->dims[0]) {
    return absl::InvalidArgumentError(
        absl::StrCat(dir, ": ", split, " labels do not match the images in count"));
  }
  Dataset d;
  d.size = static_cast<int>(images->dims[0]);
  d.images.resize(images->data.size());
  for (size_t i = 0; i < images->data.size(); ++i) {
    d.images[i] = (images->data[i] / 255.0f - kMean) / kStd;
  }
  d.labels = std::move(labels->data);
  for (uint8_t y : d.labels) {
    if (y >= kClasses) {
      return absl::InvalidArgumentError(absl::StrCat(dir, ": ", split, " has a label > 9"));
    }
  }
  return d;
}

void GatherBatch(const Dataset& data, const int* indices, int n, float* x, uint8_t* y) {
  for (int i = 0; i < n; ++i) {
    std::memcpy(x + static_cast<int64_t>(i) * kImagePixels,
                data.images.data() + static_cast<int64_t>(indices[i]) * kImagePixels,
                sizeof(float) * kImagePixels);
    y[i] = data.labels[indices[i]];
  }
}

}  // namespace surge::trainer
