// Tests of the CPU reference (client/trainer/cnn_cpu.h): every layer's
// backward against central finite differences of its forward (in double),
// the whole model's gradient, and Adam against its formulas.
//
// Layer checks use the scalar loss L = sum_i R_i * y_i with a fixed random R,
// so dL/dy = R and the analytic input/parameter gradients must equal
// (L(theta + h e_j) - L(theta - h e_j)) / (2h) to within 1e-6 relative.
#include "client/trainer/cnn_cpu.h"

#include <gtest/gtest.h>

#include <functional>
#include <random>
#include <vector>

namespace surge::trainer {
namespace {

using Vec = std::vector<double>;

Vec RandomVec(size_t n, uint64_t seed, double scale = 1.0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> d(0.0, scale);
  Vec v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

double Dot(const double* a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < b.size(); ++i) s += a[i] * b[i];
  return s;
}

// Checks analytic[j] == d f / d x[j] numerically for every j (or `stride`-th).
void ExpectGradient(const std::string& what, Vec* x, const Vec& analytic,
                    const std::function<double()>& f, int stride = 1) {
  ASSERT_EQ(x->size(), analytic.size()) << what;
  const double h = 1e-5;
  int failures = 0;
  double max_err = 0;
  for (size_t j = 0; j < x->size(); j += stride) {
    const double saved = (*x)[j];
    (*x)[j] = saved + h;
    const double up = f();
    (*x)[j] = saved - h;
    const double down = f();
    (*x)[j] = saved;
    const double numeric = (up - down) / (2 * h);
    const double err = std::abs(numeric - analytic[j]);
    max_err = std::max(max_err, err);
    if (err > 1e-6 + 1e-5 * std::abs(numeric) && ++failures <= 5) {
      ADD_FAILURE() << what << "[" << j << "]: analytic " << analytic[j] << " numeric "
                    << numeric;
    }
  }
  EXPECT_EQ(failures, 0) << what << ": max abs error " << max_err;
}

TEST(CnnCpuTest, ConvBackwardMatchesFiniteDifferences) {
  const ConvShape s{3, 7, 6, 4, 3};  // C=3, 7x6 input, O=4, K=3
  const int n = 2;
  Vec in = RandomVec(static_cast<size_t>(s.c) * n * s.h * s.w, 1);
  Vec w = RandomVec(static_cast<size_t>(s.o) * s.rows(), 2);
  Vec b = RandomVec(s.o, 3);
  const Vec r = RandomVec(static_cast<size_t>(s.o) * n * s.oh() * s.ow(), 4);
  Mat<double> col, y, dcol;
  auto loss = [&] {
    ConvForward(s, n, in.data(), w.data(), b.data(), &col, &y);
    return Dot(y.data(), r);
  };
  loss();
  Mat<double> dy = Eigen::Map<const Mat<double>>(r.data(), s.o, n * s.oh() * s.ow());
  Vec dw(w.size()), db(b.size()), dx(in.size());
  ConvBackward(s, n, col, w.data(), dy, dw.data(), db.data(), dx.data(), &dcol);
  ExpectGradient("conv dx", &in, dx, loss);
  ExpectGradient("conv dw", &w, dw, loss);
  ExpectGradient("conv db", &b, db, loss);
}

// The direct one-channel convolution (conv1's fast path) computes the same
// forward output and weight/bias gradients as the im2col product, on conv1's
// shape (rows of 144 values: whole register chunks) and on a shape whose rows
// (13 x 6 = 78 values) end in a partial chunk.
TEST(CnnCpuTest, OneChannelConvMatchesIm2Col) {
  for (const ConvShape& s : {kConv1, ConvShape{1, 10, 17, 6, 5}, ConvShape{1, 6, 6, 3, 3}}) {
    SCOPED_TRACE(testing::Message() << "shape " << s.h << "x" << s.w << " O=" << s.o
                                    << " K=" << s.k);
    const int n = 3;
    const Vec in = RandomVec(static_cast<size_t>(n) * s.h * s.w, 21);
    const Vec w = RandomVec(static_cast<size_t>(s.o) * s.rows(), 22);
    const Vec b = RandomVec(s.o, 23);
    Mat<double> col, y_ref, e, we, y, dcol, acc;
    ConvForward(s, n, in.data(), w.data(), b.data(), &col, &y_ref);
    ConvForwardOneChannel(s, n, in.data(), w.data(), b.data(), &e, &we, &y);
    ASSERT_EQ(y.rows(), y_ref.rows());
    ASSERT_EQ(y.cols(), y_ref.cols());
    EXPECT_LE((y - y_ref).cwiseAbs().maxCoeff(), 1e-12 * (1 + y_ref.cwiseAbs().maxCoeff()));

    const Vec r = RandomVec(static_cast<size_t>(y.size()), 24);
    const Mat<double> dy = Eigen::Map<const Mat<double>>(r.data(), y.rows(), y.cols());
    Vec dw_ref(w.size()), db_ref(b.size()), dw(w.size()), db(b.size());
    ConvBackward<double>(s, n, col, w.data(), dy, dw_ref.data(), db_ref.data(), nullptr, &dcol);
    ConvBackwardOneChannel(s, n, e, dy, dw.data(), db.data(), &acc);
    for (size_t i = 0; i < dw.size(); ++i) EXPECT_NEAR(dw[i], dw_ref[i], 1e-10) << "dw " << i;
    for (size_t i = 0; i < db.size(); ++i) EXPECT_NEAR(db[i], db_ref[i], 1e-10) << "db " << i;
  }
}

// The float fast path of ExpandChannels (shuffles of 8 pixels, O = 6) and
// the generic loop give e[ix*O + c] = in[ix]; 19 pixels = 2 blocks + a tail.
TEST(CnnCpuTest, ExpandChannelsRepeatsEveryPixel) {
  for (int o : {6, 4}) {
    std::vector<float> in(19), e(19 * o, -1.0f);
    for (int i = 0; i < 19; ++i) in[i] = 0.5f + i;
    ExpandChannels(o, 19, in.data(), e.data());
    for (int ix = 0; ix < 19; ++ix) {
      for (int c = 0; c < o; ++c) EXPECT_EQ(e[ix * o + c], in[ix]) << "O=" << o << " ix=" << ix;
    }
  }
}

TEST(CnnCpuTest, Im2ColPicksTheRightPixels) {
  // One 1-channel 4x4 image with pixel value = index; K=3 -> 2x2 outputs.
  const ConvShape s{1, 4, 4, 1, 3};
  Vec in(16);
  for (int i = 0; i < 16; ++i) in[i] = i;
  Vec col(9 * 4);
  Im2Col(s, 1, in.data(), col.data());
  // Output position (1, 0): rows kh, kw -> pixel (1 + kh) * 4 + kw.
  for (int kh = 0; kh < 3; ++kh) {
    for (int kw = 0; kw < 3; ++kw) EXPECT_EQ(col[2 * 9 + kh * 3 + kw], (1 + kh) * 4 + kw);
  }
}

TEST(CnnCpuTest, MaxPoolBackwardMatchesFiniteDifferences) {
  const int c = 3, n = 2, h = 6, w = 4;
  Vec x = RandomVec(static_cast<size_t>(c) * n * h * w, 5);  // distinct values: no ties
  const Vec r = RandomVec(static_cast<size_t>(c) * n * (h / 2) * (w / 2), 6);
  Vec y(r.size());
  std::vector<int32_t> idx(r.size());
  auto loss = [&] {
    MaxPoolForward(c, n, h, w, x.data(), y.data(), idx.data());
    return Dot(y.data(), r);
  };
  loss();
  Vec dx(x.size());
  MaxPoolBackward(static_cast<int64_t>(r.size()), static_cast<int64_t>(x.size()), r.data(),
                  idx.data(), dx.data());
  ExpectGradient("maxpool dx", &x, dx, loss);
}

TEST(CnnCpuTest, ReluBackwardMatchesFiniteDifferences) {
  Vec x = RandomVec(50, 7);
  const Vec r = RandomVec(50, 8);
  Vec y;
  auto loss = [&] {
    y = x;
    ReluForward(y.data(), static_cast<int64_t>(y.size()));
    return Dot(y.data(), r);
  };
  loss();
  Vec dx = r;
  ReluBackward(y.data(), dx.data(), static_cast<int64_t>(dx.size()));
  ExpectGradient("relu dx", &x, dx, loss);
}

TEST(CnnCpuTest, DenseBackwardMatchesFiniteDifferences) {
  const int f_in = 7, f_out = 5, n = 3;
  Vec x = RandomVec(f_in * n, 9), w = RandomVec(f_out * f_in, 10), b = RandomVec(f_out, 11);
  const Vec r = RandomVec(f_out * n, 12);
  Vec y(f_out * n);
  auto loss = [&] {
    DenseForward(f_in, f_out, n, x.data(), w.data(), b.data(), y.data());
    return Dot(y.data(), r);
  };
  Vec dx(x.size()), dw(w.size()), db(b.size());
  DenseBackward(f_in, f_out, n, x.data(), w.data(), r.data(), dw.data(), db.data(), dx.data());
  ExpectGradient("dense dx", &x, dx, loss);
  ExpectGradient("dense dw", &w, dw, loss);
  ExpectGradient("dense db", &b, db, loss);
}

TEST(CnnCpuTest, SoftmaxCrossEntropyValueAndGradient) {
  const int n = 4;
  Vec z = RandomVec(kClasses * n, 13, 2.0);
  const std::vector<uint8_t> y = {0, 3, 9, 3};
  Vec dz(z.size());
  const double loss = SoftmaxCrossEntropy<double>(n, z.data(), y.data(), dz.data());
  // Direct formula for example 0.
  double sum = 0;
  for (int k = 0; k < kClasses; ++k) sum += std::exp(z[k]);
  double direct = 0;
  for (int b = 0; b < n; ++b) {
    double s = 0;
    for (int k = 0; k < kClasses; ++k) s += std::exp(z[b * kClasses + k]);
    direct += std::log(s) - z[b * kClasses + y[b]];
  }
  EXPECT_NEAR(loss, direct / n, 1e-12);
  ExpectGradient("softmax dz", &z, dz,
                 [&] { return SoftmaxCrossEntropy<double>(n, z.data(), y.data(), nullptr); });
}

TEST(CnnCpuTest, ModelGradientMatchesFiniteDifferences) {
  const int n = 3;
  Vec params(kNumParams);
  InitParams<double>(42, params.data());
  const Vec x = RandomVec(static_cast<size_t>(kImagePixels) * n, 14);
  const std::vector<uint8_t> y = {1, 7, 4};
  Activations<double> act;
  Vec grad(kNumParams);
  ModelLossAndGradient(params.data(), x.data(), y.data(), n, &act, grad.data());
  auto loss = [&] {
    return ModelLossAndGradient<double>(params.data(), x.data(), y.data(), n, &act, nullptr);
  };
  // Every layer's weights and biases: all bias entries, every 7th weight of
  // the small layers and every 37th of the big ones (keeps the test fast).
  using L = ParamLayout;
  const std::vector<std::pair<int, int>> ranges = {
      {L::kConv1W, L::kConv1B}, {L::kConv1B, L::kConv2W}, {L::kConv2W, L::kConv2B},
      {L::kConv2B, L::kFc1W},   {L::kFc1W, L::kFc1B},     {L::kFc1B, L::kFc2W},
      {L::kFc2W, L::kFc2B},     {L::kFc2B, L::kFc3W},     {L::kFc3W, L::kFc3B},
      {L::kFc3B, L::kTotal}};
  for (auto [begin, end] : ranges) {
    Vec sub(params.begin() + begin, params.begin() + end);
    Vec sub_grad(grad.begin() + begin, grad.begin() + end);
    const int size = end - begin;
    ExpectGradient("model params [" + std::to_string(begin) + ", " + std::to_string(end) + ")",
                   &sub, sub_grad,
                   [&] {
                     std::copy(sub.begin(), sub.end(), params.begin() + begin);
                     return loss();
                   },
                   size <= kFc1Out ? 1 : (size < 1000 ? 7 : 37));
    std::copy(sub.begin(), sub.end(), params.begin() + begin);
  }
}

TEST(CnnCpuTest, AdamFollowsItsFormulas) {
  AdamConfig c;
  c.beta1 = 0.9;
  c.beta2 = 0.99;
  c.eps = 1e-3;
  c.weight_decay = 0.1;
  AdamState<double> s;
  s.Reset(1);
  double p = 1.0;
  const double g1 = 0.5, g2 = -0.2, lr = 0.01;
  AdamStep(c, lr, &g1, 1, &p, &s);
  double m = 0.1 * g1, v = 0.01 * g1 * g1;
  double expected = 1.0 - lr * ((m / 0.1) / (std::sqrt(v / 0.01) + 1e-3) + 0.1 * 1.0);
  EXPECT_NEAR(p, expected, 1e-12);
  AdamStep(c, lr, &g2, 1, &p, &s);
  m = 0.9 * m + 0.1 * g2;
  v = 0.99 * v + 0.01 * g2 * g2;
  expected = expected - lr * ((m / (1 - 0.81)) / (std::sqrt(v / (1 - 0.9801)) + 1e-3) +
                              0.1 * expected);
  EXPECT_NEAR(p, expected, 1e-12);
  EXPECT_EQ(s.t, 2);
}

TEST(CnnCpuTest, AdamWithZeroBetasIsSignLike) {
  AdamConfig c;
  c.beta1 = 0;
  c.beta2 = 0;
  c.eps = 1e-8;
  AdamState<double> s;
  s.Reset(3);
  Vec p = {0, 0, 0};
  const Vec g = {3.0, -1e-3, 2e-2};
  AdamStep(c, 0.1, g.data(), 3, p.data(), &s);
  EXPECT_NEAR(p[0], -0.1, 1e-6);
  EXPECT_NEAR(p[1], 0.1, 1e-5);
  EXPECT_NEAR(p[2], -0.1, 1e-6);
}

TEST(CnnCpuTest, AdamAtZeroLearningRateOnlyWarmsTheMoments) {
  AdamConfig c;
  AdamState<double> s;
  s.Reset(2);
  Vec p = {1.5, -2.0};
  const Vec g = {0.3, 0.4};
  for (int i = 0; i < 5; ++i) AdamStep(c, 0.0, g.data(), 2, p.data(), &s);
  EXPECT_EQ(p[0], 1.5);
  EXPECT_EQ(p[1], -2.0);
  EXPECT_EQ(s.t, 5);
  EXPECT_NEAR(s.m[0], 0.3 * (1 - std::pow(0.9, 5)), 1e-12);
  EXPECT_NEAR(s.v[1], 0.16 * (1 - std::pow(0.999, 5)), 1e-12);
}

}  // namespace
}  // namespace surge::trainer
