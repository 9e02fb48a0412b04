// Fashion-MNIST from Debian's dataset-fashion-mnist package: gzip'd IDX files
// under /usr/share/datasets/fashion-mnist ({train,t10k}-{images-idx3,
// labels-idx1}-ubyte.gz). IDX is big-endian: a magic number (0x00000803 for
// uint8 images with 3 dimensions, 0x00000801 for uint8 labels), one uint32 per
// dimension, then the data.
//
// Images are normalized as x = (pixel / 255 - 0.2860) / 0.3530 (the training
// set's mean and standard deviation) and stored one image per column,
// [784, N], the layout of cnn_cpu.h.
#ifndef SURGE_CLIENT_TRAINER_FASHION_MNIST_H_
#define SURGE_CLIENT_TRAINER_FASHION_MNIST_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace surge::trainer {

inline constexpr char kDefaultFashionMnistDir[] = "/usr/share/datasets/fashion-mnist";

// A raw IDX array: dims and uint8 data (row-major as in the file).
struct IdxArray {
  std::vector<uint32_t> dims;
  std::vector<uint8_t> data;
};

// Reads a gzip'd (or plain) IDX file of uint8 data. NotFound names the path
// and the Debian package; InvalidArgument for a malformed file.
absl::StatusOr<IdxArray> ReadIdxGz(const std::string& path);

struct Dataset {
  int size = 0;
  std::vector<float> images;    // [784, size], normalized
  std::vector<uint8_t> labels;  // [size], 0..9
};

// Loads split "train" (60,000) or "t10k" (10,000) from `dir`.
absl::StatusOr<Dataset> LoadFashionMnist(const std::string& dir, const std::string& split);

// Copies the examples `indices` into x [784, n] and y [n].
void GatherBatch(const Dataset& data, const int* indices, int n, float* x, uint8_t* y);

}  // namespace surge::trainer

#endif  // SURGE_CLIENT_TRAINER_FASHION_MNIST_H_
