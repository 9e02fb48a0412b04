// cnn_cpu.h: the CPU reference of surge's trainer, to be read top to bottom:
// the network's layers (each a forward/backward pair), the model that chains
// them, softmax cross-entropy, and Adam. The CUDA path (cuda/cnn_cuda.h) is
// checked against these functions. Header-only because every function is a
// template on the scalar type T: training uses float, the gradient-check
// tests use double.
//
// The network (a LeNet-5-style "5-layer CNN": 2 convolutions + 3 dense layers,
// 44,426 parameters), for 28x28 grey images and 10 classes:
//
//   input   1 x 28 x 28
//   conv1   6 filters 5x5, stride 1, no padding -> 6 x 24 x 24, ReLU
//   pool1   max 2x2 stride 2                    -> 6 x 12 x 12
//   conv2   16 filters 5x5 over 6 channels      -> 16 x 8 x 8, ReLU
//   pool2   max 2x2 stride 2                    -> 16 x 4 x 4 = 256 features
//   fc1     256 -> 120, ReLU
//   fc2     120 -> 84, ReLU
//   fc3     84 -> 10 logits; softmax cross-entropy, mean over the batch
//
// Shape legend: N batch (examples), C input channels, O output channels,
// H x W input size, K kernel size, OH = H-K+1, OW = W-K+1.
//
// Layouts. Every tensor is a column-major Eigen matrix (no copies to reshape):
//   conv activations  [C, N*H*W]     column n*H*W + h*W + w holds the C channels
//                                     of one pixel (channels are contiguous)
//   im2col matrix     [K*K*C, N*OH*OW] row (kh*K + kw)*C + c
//   conv weights      [O, K*K*C]      same row order as the im2col matrix
//   dense activations [F, N]          one column per example
// pool2's output [16, N*16] is, in memory, N contiguous blocks of 256 floats:
// it *is* the dense input [256, N] (feature index = pixel*16 + channel).
//
// Parameters and gradients live in one flat vector (kNumParams values) in the
// order conv1.w, conv1.b, conv2.w, conv2.b, fc1.w, fc1.b, fc2.w, fc2.b,
// fc3.w, fc3.b; the optimizer and the gradient statistics see only that
// vector. Initialization matches PyTorch's defaults for Conv2d/Linear:
// w, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
#ifndef SURGE_CLIENT_TRAINER_CNN_CPU_H_
#define SURGE_CLIENT_TRAINER_CNN_CPU_H_

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "client/trainer/cnn_shapes.h"

namespace surge::trainer {

template <typename T>
using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
template <typename T>
using MatMap = Eigen::Map<Mat<T>>;
template <typename T>
using ConstMatMap = Eigen::Map<const Mat<T>>;
template <typename T>
using VecMap = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>>;
template <typename T>
using ConstVecMap = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, 1>>;

// ---------------------------------------------------------------------------
// Initialization (the shapes and the parameter layout are in cnn_shapes.h)
// ---------------------------------------------------------------------------

// w, b ~ U(-1/sqrt(fan_in), +1/sqrt(fan_in)) for every layer (PyTorch's
// default init of Conv2d and Linear), from a seeded generator.
template <typename T>
void InitParams(uint64_t seed, T* params) {
  std::mt19937_64 rng(seed);
  auto fill = [&](int offset, int count, int fan_in) {
    std::uniform_real_distribution<double> u(-1.0 / std::sqrt(fan_in), 1.0 / std::sqrt(fan_in));
    for (int i = 0; i < count; ++i) params[offset + i] = static_cast<T>(u(rng));
  };
  using L = ParamLayout;
  fill(L::kConv1W, L::kConv1B - L::kConv1W, kConv1.rows());
  fill(L::kConv1B, kConv1.o, kConv1.rows());
  fill(L::kConv2W, L::kConv2B - L::kConv2W, kConv2.rows());
  fill(L::kConv2B, kConv2.o, kConv2.rows());
  fill(L::kFc1W, L::kFc1B - L::kFc1W, kFc1In);
  fill(L::kFc1B, kFc1Out, kFc1In);
  fill(L::kFc2W, L::kFc2B - L::kFc2W, kFc1Out);
  fill(L::kFc2B, kFc2Out, kFc1Out);
  fill(L::kFc3W, L::kFc3B - L::kFc3W, kFc2Out);
  fill(L::kFc3B, kClasses, kFc2Out);
}

// ---------------------------------------------------------------------------
// Convolution (im2col + one matrix product per batch)
// ---------------------------------------------------------------------------

// col[(kh*K+kw)*C + c, n*OH*OW + oh*OW + ow] = in[c, n*H*W + (oh+kh)*W + (ow+kw)]
// in: [C, N*H*W] -> col: [K*K*C, N*OH*OW]
template <typename T>
void Im2Col(const ConvShape& s, int n, const T* in, T* col) {
  const int oh = s.oh(), ow = s.ow();
  for (int b = 0; b < n; ++b) {
    for (int y = 0; y < oh; ++y) {
      for (int x = 0; x < ow; ++x) {
        T* dst = col + (static_cast<int64_t>(b * oh + y) * ow + x) * s.rows();
        for (int kh = 0; kh < s.k; ++kh) {
          const T* src = in + (static_cast<int64_t>(b * s.h + y + kh) * s.w + x) * s.c;
          std::memcpy(dst, src, sizeof(T) * s.k * s.c);  // kw and c are contiguous
          dst += s.k * s.c;
        }
      }
    }
  }
}

// The adjoint of Im2Col: dx[c, pixel] += dcol[row, position] over every
// (row, position) that Im2Col copied from that pixel. dx is overwritten.
template <typename T>
void Col2Im(const ConvShape& s, int n, const T* dcol, T* dx) {
  const int oh = s.oh(), ow = s.ow();
  std::fill(dx, dx + static_cast<int64_t>(n) * s.h * s.w * s.c, T(0));
  for (int b = 0; b < n; ++b) {
    for (int y = 0; y < oh; ++y) {
      for (int x = 0; x < ow; ++x) {
        const T* src = dcol + (static_cast<int64_t>(b * oh + y) * ow + x) * s.rows();
        for (int kh = 0; kh < s.k; ++kh) {
          T* dst = dx + (static_cast<int64_t>(b * s.h + y + kh) * s.w + x) * s.c;
          for (int i = 0; i < s.k * s.c; ++i) dst[i] += src[i];
          src += s.k * s.c;
        }
      }
    }
  }
}

// y = W col + b (bias broadcast over columns).
// in [C, N*H*W], w [O, K*K*C], b [O] -> col [K*K*C, N*OH*OW], y [O, N*OH*OW]
template <typename T>
void ConvForward(const ConvShape& s, int n, const T* in, const T* w, const T* b, Mat<T>* col,
                 Mat<T>* y) {
  const int positions = n * s.oh() * s.ow();
  col->resize(s.rows(), positions);
  y->resize(s.o, positions);
  Im2Col(s, n, in, col->data());
  ConstMatMap<T> wm(w, s.o, s.rows());
  ConstVecMap<T> bv(b, s.o);
  y->noalias() = wm * *col;
  y->colwise() += bv;
}

// dW = dy col^T, db = sum over columns of dy, dx = col2im(W^T dy).
// dy [O, N*OH*OW] -> dw [O, K*K*C], db [O], dx [C, N*H*W] (skipped when null;
// dcol is scratch).
template <typename T>
void ConvBackward(const ConvShape& s, int n, const Mat<T>& col, const T* w, const Mat<T>& dy,
                  T* dw, T* db, T* dx, Mat<T>* dcol) {
  MatMap<T> dwm(dw, s.o, s.rows());
  VecMap<T> dbv(db, s.o);
  dwm.noalias() = dy * col.transpose();
  dbv = dy.rowwise().sum();
  if (dx == nullptr) return;
  ConstMatMap<T> wm(w, s.o, s.rows());
  dcol->resize(s.rows(), dy.cols());
  dcol->noalias() = wm.transpose() * dy;
  Col2Im(s, n, dcol->data(), dx);
}

// ---------------------------------------------------------------------------
// Convolution of a one-channel input (conv1), computed directly
// ---------------------------------------------------------------------------
// With C = 1 and O = 6 the im2col product above is a [6, 25] x [25, N*576]
// matrix product, a shape that matrix kernels (which block 16-48 rows) run at
// a fraction of their speed. These two functions compute the same numbers as
// ConvForward / ConvBackward (tested against them) with long contiguous
// vector loops instead, in the same output layout:
//
// The output row (n, oy) is OW*O contiguous values, index ox*O + o. Repeat
// every input pixel O times ("expanded input" e, [O, N*H*W] in the channel-
// contiguous layout: e[ix*O + o] = in[ix]); then the input row (n, iy) of e
// lines up with an output row after a shift of kw*O values, and
//   y[n, oy][i] = be[i] + sum_{kh,kw} we[kh*K+kw][i] * e[n, oy+kh][kw*O + i]
// for i = ox*O + o < OW*O, with the expanded weights we[r][ox*O + o] = W[o, r]
// and be[ox*O + o] = b[o].

// e[ix*O + o] = in[ix] for every pixel ix of the N images. in [1, N*H*W] ->
// e [O, N*H*W]
template <typename T>
void ExpandChannelsPlain(int o, int64_t pixels, const T* in, T* e) {
  for (int64_t ix = 0; ix < pixels; ++ix) {
    const T v = in[ix];
    for (int c = 0; c < o; ++c) e[ix * o + c] = v;
  }
}
template <typename T>
void ExpandChannels(int o, int64_t pixels, const T* in, T* e) {
  ExpandChannelsPlain(o, pixels, in, e);
}

// The same for float and O = 6 (conv1), 8 pixels at a time: the 48 values
// are three 16-lane shuffles of the 8 pixels (GCC/Clang vector extensions,
// lowered to whatever vector width the target has). The plain loop above
// compiles to one scalar store per value, as slow as the convolution itself.
template <>
inline void ExpandChannels<float>(int o, int64_t pixels, const float* in, float* e) {
  int64_t ix = 0;
  if (o == 6) {
    typedef float V8 __attribute__((vector_size(32)));
    typedef float V16 __attribute__((vector_size(64)));
    for (; ix + 8 <= pixels; ix += 8) {
      V8 v;
      std::memcpy(&v, in + ix, sizeof(v));
      const V16 a = __builtin_shufflevector(v, v, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2);
      const V16 b = __builtin_shufflevector(v, v, 2, 2, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 5, 5);
      const V16 c = __builtin_shufflevector(v, v, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7);
      std::memcpy(e + ix * 6, &a, sizeof(a));
      std::memcpy(e + ix * 6 + 16, &b, sizeof(b));
      std::memcpy(e + ix * 6 + 32, &c, sizeof(c));
    }
  }
  ExpandChannelsPlain(o, pixels - ix, in + ix, e + ix * o);  // the last pixels
}

// The loops below work on tiles: kLanes consecutive values of a row (48
// floats: 3 AVX-512 or 6 AVX2 registers) times a few rows, with the partial
// sums of the whole tile in registers while the sum over (kh, kw), or over an
// image's rows, runs. The sizes are compile-time constants so the compiler
// can keep the tile in registers; tiles cut short at the end of a row or of
// an image take the same formula in plain loops (ForwardTileAny /
// BackwardTileAny), which the tests cover with odd shapes.
constexpr int kLanes = 48;
constexpr int kRowBlock = 4;  // output rows per forward tile

// One forward tile: for j < rows, i < len (i counted from the tile start),
//   out[j*row + i] = bias[i] + sum_{kh,kw} we[(kh*K+kw)*row + i] * e[(j+kh)*in_row + kw*O + i]
// where e points at the tile's first input row and column.
template <typename T>
void ForwardTileAny(const ConvShape& s, int rows, int len, const T* we, int row, const T* bias,
                    const T* e, int64_t in_row, T* out) {
  for (int j = 0; j < rows; ++j) {
    for (int i = 0; i < len; ++i) out[j * row + i] = bias[i];
    for (int kh = 0; kh < s.k; ++kh) {
      for (int kw = 0; kw < s.k; ++kw) {
        const T* wr = we + (kh * s.k + kw) * row;
        const T* src = e + (j + kh) * in_row + kw * s.o;
        for (int i = 0; i < len; ++i) out[j * row + i] += wr[i] * src[i];
      }
    }
  }
}

// The same with rows = kRowBlock, len = kLanes: the weights of each (kh, kw)
// are loaded once for kRowBlock rows.
template <typename T>
void ForwardTile(const ConvShape& s, const T* we, int row, const T* bias, const T* e,
                 int64_t in_row, T* out) {
  T acc[kRowBlock][kLanes];
  for (int j = 0; j < kRowBlock; ++j) {
    for (int i = 0; i < kLanes; ++i) acc[j][i] = bias[i];
  }
  for (int kh = 0; kh < s.k; ++kh) {
    for (int kw = 0; kw < s.k; ++kw) {
      const T* wr = we + (kh * s.k + kw) * row;
      const T* src = e + kh * in_row + kw * s.o;
      for (int j = 0; j < kRowBlock; ++j) {
        for (int i = 0; i < kLanes; ++i) acc[j][i] += wr[i] * src[j * in_row + i];
      }
    }
  }
  for (int j = 0; j < kRowBlock; ++j) std::copy(acc[j], acc[j] + kLanes, out + j * row);
}

// y = conv(in) + b for C = 1, via the expanded input (kept in *e for the
// backward pass). in [1, N*H*W], w [O, K*K], b [O] -> e [O, N*H*W],
// y [O, N*OH*OW]; we is scratch.
template <typename T>
void ConvForwardOneChannel(const ConvShape& s, int n, const T* in, const T* w, const T* b,
                           Mat<T>* e, Mat<T>* we, Mat<T>* y) {
  const int row = s.ow() * s.o;  // values in one output row
  const int rows = s.k * s.k;    // K*K weights per output channel
  e->resize(s.o, static_cast<int64_t>(n) * s.h * s.w);
  ExpandChannels(s.o, static_cast<int64_t>(n) * s.h * s.w, in, e->data());
  we->resize(row, rows + 1);  // columns: we[r] for r < K*K, then be
  for (int r = 0; r <= rows; ++r) {
    for (int ox = 0; ox < s.ow(); ++ox) {
      for (int c = 0; c < s.o; ++c) (*we)(ox * s.o + c, r) = r < rows ? w[c + s.o * r] : b[c];
    }
  }
  y->resize(s.o, static_cast<int64_t>(n) * s.oh() * s.ow());
  const int64_t in_row = static_cast<int64_t>(s.w) * s.o;  // values in one row of e
  const T* bias = we->data() + static_cast<int64_t>(rows) * row;
  for (int img = 0; img < n; ++img) {
    for (int oy = 0; oy < s.oh(); oy += kRowBlock) {
      const int nr = std::min(kRowBlock, s.oh() - oy);
      T* out = y->data() + (static_cast<int64_t>(img) * s.oh() + oy) * row;
      const T* src = e->data() + (static_cast<int64_t>(img) * s.h + oy) * in_row;
      for (int i0 = 0; i0 < row; i0 += kLanes) {
        const int len = std::min(kLanes, row - i0);
        if (nr == kRowBlock && len == kLanes) {
          ForwardTile(s, we->data() + i0, row, bias + i0, src + i0, in_row, out + i0);
        } else {
          ForwardTileAny(s, nr, len, we->data() + i0, row, bias + i0, src + i0, in_row, out + i0);
        }
      }
    }
  }
}

// One backward tile: for every kw < K and i < len,
//   acc[(kh*K+kw)*row + i] += sum_{oy < OH} d[oy*row + i] * e[(oy+kh)*in_row + kw*O + i]
// where d and e point at one image's tile column.
template <typename T>
void BackwardTileAny(const ConvShape& s, int kh, int len, const T* d, int row, const T* e,
                     int64_t in_row, T* acc) {
  for (int kw = 0; kw < s.k; ++kw) {
    T* ar = acc + (kh * s.k + kw) * row;
    for (int oy = 0; oy < s.oh(); ++oy) {
      const T* src = e + (oy + kh) * in_row + kw * s.o;
      for (int i = 0; i < len; ++i) ar[i] += d[oy * row + i] * src[i];
    }
  }
}

// The same with K = kK and len = kLanes: each row of d is loaded once for
// the K sums over kw, which stay in registers.
template <int kK, typename T>
void BackwardTile(const ConvShape& s, int kh, const T* d, int row, const T* e, int64_t in_row,
                  T* acc) {
  T sum[kK][kLanes] = {};
  for (int oy = 0; oy < s.oh(); ++oy) {
    const T* dr = d + oy * row;
    const T* src = e + (oy + kh) * in_row;
    for (int kw = 0; kw < kK; ++kw) {
      for (int i = 0; i < kLanes; ++i) sum[kw][i] += dr[i] * src[kw * s.o + i];
    }
  }
  for (int kw = 0; kw < kK; ++kw) {
    T* ar = acc + (kh * kK + kw) * row;
    for (int i = 0; i < kLanes; ++i) ar[i] += sum[kw][i];
  }
}

// The weight and bias gradients of ConvForwardOneChannel (the input needs
// none):
//   acc[r][i] = sum_{n,oy} dy[n, oy][i] * e[n, oy+kh][kw*O + i]   (r = kh*K+kw)
//   dW[o, r]  = sum_ox acc[r][ox*O + o],   db[o] = sum_{n,oy,ox} dy[n, oy][ox*O + o]
// e is the expanded input of the forward pass; acc is scratch.
template <typename T>
void ConvBackwardOneChannel(const ConvShape& s, int n, const Mat<T>& e, const Mat<T>& dy, T* dw,
                            T* db, Mat<T>* acc) {
  const int row = s.ow() * s.o;
  const int rows = s.k * s.k;
  acc->setZero(row, rows + 1);  // column K*K accumulates db
  T* accb = acc->data() + static_cast<int64_t>(rows) * row;
  const int64_t in_row = static_cast<int64_t>(s.w) * s.o;
  for (int img = 0; img < n; ++img) {
    const T* d = dy.data() + static_cast<int64_t>(img) * s.oh() * row;
    const T* src = e.data() + static_cast<int64_t>(img) * s.h * in_row;
    for (int oy = 0; oy < s.oh(); ++oy) {
      for (int i = 0; i < row; ++i) accb[i] += d[oy * row + i];
    }
    for (int i0 = 0; i0 < row; i0 += kLanes) {
      const int len = std::min(kLanes, row - i0);
      for (int kh = 0; kh < s.k; ++kh) {
        if (s.k == 5 && len == kLanes) {
          BackwardTile<5>(s, kh, d + i0, row, src + i0, in_row, acc->data() + i0);
        } else {
          BackwardTileAny(s, kh, len, d + i0, row, src + i0, in_row, acc->data() + i0);
        }
      }
    }
  }
  for (int r = 0; r <= rows; ++r) {
    for (int c = 0; c < s.o; ++c) {
      T total = 0;
      for (int ox = 0; ox < s.ow(); ++ox) total += (*acc)(ox * s.o + c, r);
      if (r < rows) {
        dw[c + s.o * r] = total;
      } else {
        db[c] = total;
      }
    }
  }
}

// ---------------------------------------------------------------------------
// ReLU and max pooling
// ---------------------------------------------------------------------------

// y = max(0, x), in place.
template <typename T>
void ReluForward(T* x, int64_t count) {
  for (int64_t i = 0; i < count; ++i) x[i] = std::max(x[i], T(0));
}

// dx = dy * [y > 0], in place on dy (y is the ReLU's output).
template <typename T>
void ReluBackward(const T* y, T* dy, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    if (!(y[i] > T(0))) dy[i] = T(0);
  }
}

// 2x2 max pool, stride 2: y[c, n*(H/2)*(W/2) + i*(W/2) + j] = max over the
// 2x2 window; argmax holds the flat index into x of the winner (first on ties).
// x [C, N*H*W] -> y [C, N*(H/2)*(W/2)]
template <typename T>
void MaxPoolForward(int c, int n, int h, int w, const T* x, T* y, int32_t* argmax) {
  const int ph = h / 2, pw = w / 2;
  for (int b = 0; b < n; ++b) {
    for (int i = 0; i < ph; ++i) {
      for (int j = 0; j < pw; ++j) {
        const int64_t out = (static_cast<int64_t>(b * ph + i) * pw + j) * c;
        const int64_t p00 = (static_cast<int64_t>(b * h + 2 * i) * w + 2 * j) * c;
        const int64_t offsets[4] = {p00, p00 + c, p00 + static_cast<int64_t>(w) * c,
                                    p00 + static_cast<int64_t>(w + 1) * c};
        for (int ch = 0; ch < c; ++ch) {
          int64_t best = offsets[0] + ch;
          for (int q = 1; q < 4; ++q) {
            if (x[offsets[q] + ch] > x[best]) best = offsets[q] + ch;
          }
          y[out + ch] = x[best];
          argmax[out + ch] = static_cast<int32_t>(best);
        }
      }
    }
  }
}

// dx[argmax[i]] = dy[i]; every other dx is 0. dx has `in_count` values.
template <typename T>
void MaxPoolBackward(int64_t out_count, int64_t in_count, const T* dy, const int32_t* argmax,
                     T* dx) {
  std::fill(dx, dx + in_count, T(0));
  for (int64_t i = 0; i < out_count; ++i) dx[argmax[i]] += dy[i];
}

// ---------------------------------------------------------------------------
// Dense layers
// ---------------------------------------------------------------------------

// y = W x + b.  x [F_in, N], w [F_out, F_in], b [F_out] -> y [F_out, N]
template <typename T>
void DenseForward(int f_in, int f_out, int n, const T* x, const T* w, const T* b, T* y) {
  ConstMatMap<T> xm(x, f_in, n);
  ConstMatMap<T> wm(w, f_out, f_in);
  MatMap<T> ym(y, f_out, n);
  ym.noalias() = wm * xm;
  ym.colwise() += ConstVecMap<T>(b, f_out);
}

// dW = dy x^T, db = sum_n dy, dx = W^T dy (skipped when dx is null).
template <typename T>
void DenseBackward(int f_in, int f_out, int n, const T* x, const T* w, const T* dy, T* dw, T* db,
                   T* dx) {
  ConstMatMap<T> xm(x, f_in, n);
  ConstMatMap<T> dym(dy, f_out, n);
  MatMap<T>(dw, f_out, f_in).noalias() = dym * xm.transpose();
  VecMap<T>(db, f_out) = dym.rowwise().sum();
  if (dx != nullptr) {
    MatMap<T>(dx, f_in, n).noalias() = ConstMatMap<T>(w, f_out, f_in).transpose() * dym;
  }
}

// ---------------------------------------------------------------------------
// Softmax cross-entropy
// ---------------------------------------------------------------------------

// loss = (1/N) sum_n [ log sum_k exp(z_kn) - z_{y_n, n} ]
// dz_kn = (softmax(z)_kn - [k == y_n]) / N      (written when dz is not null)
// logits z [10, N], labels y [N] in 0..9.
template <typename T>
double SoftmaxCrossEntropy(int n, const T* z, const uint8_t* labels, T* dz) {
  double total = 0;
  for (int b = 0; b < n; ++b) {
    const T* zc = z + static_cast<int64_t>(b) * kClasses;
    T zmax = zc[0];
    for (int k = 1; k < kClasses; ++k) zmax = std::max(zmax, zc[k]);
    double sum = 0;
    for (int k = 0; k < kClasses; ++k) sum += std::exp(static_cast<double>(zc[k] - zmax));
    const double log_sum = std::log(sum) + static_cast<double>(zmax);
    total += log_sum - static_cast<double>(zc[labels[b]]);
    if (dz != nullptr) {
      T* dc = dz + static_cast<int64_t>(b) * kClasses;
      for (int k = 0; k < kClasses; ++k) {
        double p = std::exp(static_cast<double>(zc[k]) - log_sum);
        dc[k] = static_cast<T>((p - (k == labels[b] ? 1.0 : 0.0)) / n);
      }
    }
  }
  return total / n;
}

// ---------------------------------------------------------------------------
// The model: forward, loss, backward
// ---------------------------------------------------------------------------

// The intermediate tensors of one forward/backward pass, reused across steps
// (one per thread). Sizes follow the legend; names follow the layers.
template <typename T>
struct Activations {
  int n = 0;
  Mat<T> e1, we1, a1;        // expanded input [6, N*784], scratch, conv1 + ReLU [6, N*576]
  Mat<T> p1;                 // pool1 [6, N*144]
  std::vector<int32_t> idx1;
  Mat<T> col2, a2;           // [150, N*64], conv2 + ReLU [16, N*64]
  Mat<T> p2;                 // pool2 [16, N*16] = dense input [256, N]
  std::vector<int32_t> idx2;
  Mat<T> h1, h2, z;          // fc1 [120, N], fc2 [84, N], logits [10, N]
  // Backward scratch.
  Mat<T> dz, dh2, dh1, dp2, da2, dp1, da1, dcol;
};

// Runs the network on x [784, N] (normalized pixels); leaves every layer's
// output in `a` (the logits in a->z).
template <typename T>
void ModelForward(const T* params, const T* x, int n, Activations<T>* a) {
  using L = ParamLayout;
  a->n = n;
  ConvForwardOneChannel(kConv1, n, x, params + L::kConv1W, params + L::kConv1B, &a->e1, &a->we1,
                        &a->a1);
  ReluForward(a->a1.data(), a->a1.size());
  a->p1.resize(kConv1.o, static_cast<int64_t>(n) * 144);
  a->idx1.resize(a->p1.size());
  MaxPoolForward(kConv1.o, n, 24, 24, a->a1.data(), a->p1.data(), a->idx1.data());

  ConvForward(kConv2, n, a->p1.data(), params + L::kConv2W, params + L::kConv2B, &a->col2,
              &a->a2);
  ReluForward(a->a2.data(), a->a2.size());
  a->p2.resize(kConv2.o, static_cast<int64_t>(n) * 16);
  a->idx2.resize(a->p2.size());
  MaxPoolForward(kConv2.o, n, 8, 8, a->a2.data(), a->p2.data(), a->idx2.data());

  a->h1.resize(kFc1Out, n);
  DenseForward(kFc1In, kFc1Out, n, a->p2.data(), params + L::kFc1W, params + L::kFc1B,
               a->h1.data());
  ReluForward(a->h1.data(), a->h1.size());
  a->h2.resize(kFc2Out, n);
  DenseForward(kFc1Out, kFc2Out, n, a->h1.data(), params + L::kFc2W, params + L::kFc2B,
               a->h2.data());
  ReluForward(a->h2.data(), a->h2.size());
  a->z.resize(kClasses, n);
  DenseForward(kFc2Out, kClasses, n, a->h2.data(), params + L::kFc3W, params + L::kFc3B,
               a->z.data());
}

// Back-propagates dL/dz (in a->dz) through the network of the last
// ModelForward; writes dL/dparams into grad (kNumParams values, overwritten).
template <typename T>
void ModelBackward(const T* params, int n, Activations<T>* a, T* grad) {
  using L = ParamLayout;
  a->dh2.resize(kFc2Out, n);
  DenseBackward(kFc2Out, kClasses, n, a->h2.data(), params + L::kFc3W, a->dz.data(),
                grad + L::kFc3W, grad + L::kFc3B, a->dh2.data());
  ReluBackward(a->h2.data(), a->dh2.data(), a->dh2.size());
  a->dh1.resize(kFc1Out, n);
  DenseBackward(kFc1Out, kFc2Out, n, a->h1.data(), params + L::kFc2W, a->dh2.data(),
                grad + L::kFc2W, grad + L::kFc2B, a->dh1.data());
  ReluBackward(a->h1.data(), a->dh1.data(), a->dh1.size());
  a->dp2.resize(kConv2.o, static_cast<int64_t>(n) * 16);  // = d(dense input) [256, N]
  DenseBackward(kFc1In, kFc1Out, n, a->p2.data(), params + L::kFc1W, a->dh1.data(),
                grad + L::kFc1W, grad + L::kFc1B, a->dp2.data());

  a->da2.resize(kConv2.o, static_cast<int64_t>(n) * 64);
  MaxPoolBackward(a->dp2.size(), a->da2.size(), a->dp2.data(), a->idx2.data(), a->da2.data());
  ReluBackward(a->a2.data(), a->da2.data(), a->da2.size());
  a->dp1.resize(kConv1.o, static_cast<int64_t>(n) * 144);
  ConvBackward(kConv2, n, a->col2, params + L::kConv2W, a->da2, grad + L::kConv2W,
               grad + L::kConv2B, a->dp1.data(), &a->dcol);

  a->da1.resize(kConv1.o, static_cast<int64_t>(n) * 576);
  MaxPoolBackward(a->dp1.size(), a->da1.size(), a->dp1.data(), a->idx1.data(), a->da1.data());
  ReluBackward(a->a1.data(), a->da1.data(), a->da1.size());
  // The input needs no gradient.
  ConvBackwardOneChannel(kConv1, n, a->e1, a->da1, grad + L::kConv1W, grad + L::kConv1B,
                         &a->dcol);
}

// Mean cross-entropy of the batch and, when grad is not null, its gradient.
template <typename T>
double ModelLossAndGradient(const T* params, const T* x, const uint8_t* labels, int n,
                            Activations<T>* a, T* grad) {
  ModelForward(params, x, n, a);
  if (grad == nullptr) return SoftmaxCrossEntropy<T>(n, a->z.data(), labels, nullptr);
  a->dz.resize(kClasses, n);
  double loss = SoftmaxCrossEntropy<T>(n, a->z.data(), labels, a->dz.data());
  ModelBackward(params, n, a, grad);
  return loss;
}

// ---------------------------------------------------------------------------
// Adam
// ---------------------------------------------------------------------------

// Adam with decoupled weight decay (AdamW when weight_decay > 0). beta1 =
// beta2 = 0 is allowed: then m = g, v = g^2 and the update is
// lr * g / (|g| + eps), a sign-like step.
struct AdamConfig {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

template <typename T>
struct AdamState {
  std::vector<T> m, v;  // first and second moment estimates, kNumParams each
  int64_t t = 0;        // steps taken, including warm-up steps at lr = 0
  void Reset(size_t count) {
    m.assign(count, T(0));
    v.assign(count, T(0));
    t = 0;
  }
};

// One step, t <- t + 1:
//   m <- beta1 m + (1 - beta1) g            v <- beta2 v + (1 - beta2) g^2
//   m^ = m / (1 - beta1^t)                  v^ = v / (1 - beta2^t)
//   p <- p - lr (m^ / (sqrt(v^) + eps) + weight_decay p)
// With lr = 0 the parameters stay as they are and only the moments move: that
// is how probes warm the optimizer state at the probe batch size.
template <typename T>
void AdamStep(const AdamConfig& c, double lr, const T* grad, int64_t count, T* params,
              AdamState<T>* s) {
  s->t += 1;
  const double c1 = 1.0 - std::pow(c.beta1, static_cast<double>(s->t));
  const double c2 = 1.0 - std::pow(c.beta2, static_cast<double>(s->t));
  const T b1 = static_cast<T>(c.beta1), b2 = static_cast<T>(c.beta2);
  const T inv_c1 = static_cast<T>(1.0 / c1), inv_sqrt_c2 = static_cast<T>(1.0 / std::sqrt(c2));
  const T step = static_cast<T>(lr), eps = static_cast<T>(c.eps);
  const T decay = static_cast<T>(lr * c.weight_decay);
  // Eigen array expressions (explicitly vectorized, sqrt included).
  using Arr = Eigen::Array<T, Eigen::Dynamic, 1>;
  Eigen::Map<const Arr> g(grad, count);
  Eigen::Map<Arr> m(s->m.data(), count), v(s->v.data(), count), p(params, count);
  m = b1 * m + (T(1) - b1) * g;
  v = b2 * v + (T(1) - b2) * g.square();
  p -= step * ((m * inv_c1) / (v.sqrt() * inv_sqrt_c2 + eps)) + decay * p;
}

}  // namespace surge::trainer

#endif  // SURGE_CLIENT_TRAINER_CNN_CPU_H_
