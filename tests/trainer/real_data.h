// The real Fashion-MNIST train and test sets, loaded once per test binary
// (Debian's dataset-fashion-mnist); a load failure is a test failure.
#ifndef SURGE_TESTS_TRAINER_REAL_DATA_H_
#define SURGE_TESTS_TRAINER_REAL_DATA_H_

#include <gtest/gtest.h>

#include <utility>

#include "client/trainer/fashion_mnist.h"

namespace surge::trainer {

struct Data {
  Dataset train, eval;
};

inline const Data& RealData() {
  static const Data* data = [] {
    auto* d = new Data;
    auto train = LoadFashionMnist(kDefaultFashionMnistDir, "train");
    auto eval = LoadFashionMnist(kDefaultFashionMnistDir, "t10k");
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
