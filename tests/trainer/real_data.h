// The real Fashion-MNIST train and test sets, loaded once per test binary
// (Debian's dataset-fashion-mnist, or $SURGE_FASHION_MNIST_DIR when set: the
// GPU bundle of scripts/gpu_bundle.sh carries its own copy); a load failure
// is a test failure.
#ifndef SURGE_TESTS_TRAINER_REAL_DATA_H_
#define SURGE_TESTS_TRAINER_REAL_DATA_H_

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <utility>

#include "client/trainer/fashion_mnist.h"

namespace surge::trainer {

// $SURGE_FASHION_MNIST_DIR when set and not empty, else the Debian package's.
inline std::string FashionMnistDir() {
  const char* env = std::getenv("SURGE_FASHION_MNIST_DIR");
  return env != nullptr && *env != '\0' ? env : kDefaultFashionMnistDir;
}

struct Data {
  Dataset train, eval;
};

inline const Data& RealData() {
  static const Data* data = [] {
    auto* d = new Data;
    auto train = LoadFashionMnist(FashionMnistDir(), "train");
    auto eval = LoadFashionMnist(FashionMnistDir(), "t10k");
    if (!train.ok() || !eval.ok()) {
      ADD_FAILURE() << train.status() << " " << eval.status();
      return d;
    }
    d->train = *std::move(train);
    d->eval = *std::move(eval);
    return d;
  }();
  return *data;
}

}  // namespace surge::trainer

#endif  // SURGE_TESTS_TRAINER_REAL_DATA_H_
