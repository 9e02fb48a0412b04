// cnn_shapes.h: the architecture of surge-train's network as constants
// (layer shapes and the layout of the flat parameter vector), shared by the
// CPU reference (cnn_cpu.h) and the CUDA path (cuda/cnn_cuda.cu). No Eigen
// here, so nvcc can include it. The network is described in cnn_cpu.h.
#ifndef SURGE_CLIENT_TRAINER_CNN_SHAPES_H_
#define SURGE_CLIENT_TRAINER_CNN_SHAPES_H_

namespace surge::trainer {

constexpr int kImageSide = 28;
constexpr int kImagePixels = kImageSide * kImageSide;  // 784
constexpr int kClasses = 10;

// A "valid" convolution with stride 1.
struct ConvShape {
  int c, h, w, o, k;
  constexpr int oh() const { return h - k + 1; }
  constexpr int ow() const { return w - k + 1; }
  constexpr int rows() const { return k * k * c; }  // im2col rows = weight columns
};
constexpr ConvShape kConv1{1, 28, 28, 6, 5};   // -> 6 x 24 x 24
constexpr ConvShape kConv2{6, 12, 12, 16, 5};  // -> 16 x 8 x 8
constexpr int kFc1In = 16 * 4 * 4;             // 256
constexpr int kFc1Out = 120;
constexpr int kFc2Out = 84;

// Offsets of each tensor in the flat parameter vector.
struct ParamLayout {
  static constexpr int kConv1W = 0;
  static constexpr int kConv1B = kConv1W + kConv1.o * kConv1.rows();
  static constexpr int kConv2W = kConv1B + kConv1.o;
  static constexpr int kConv2B = kConv2W + kConv2.o * kConv2.rows();
  static constexpr int kFc1W = kConv2B + kConv2.o;
  static constexpr int kFc1B = kFc1W + kFc1Out * kFc1In;
  static constexpr int kFc2W = kFc1B + kFc1Out;
  static constexpr int kFc2B = kFc2W + kFc2Out * kFc1Out;
  static constexpr int kFc3W = kFc2B + kFc2Out;
  static constexpr int kFc3B = kFc3W + kClasses * kFc2Out;
  static constexpr int kTotal = kFc3B + kClasses;
};
constexpr int kNumParams = ParamLayout::kTotal;  // 44,426
static_assert(kNumParams == 44426, "architecture changed: update the docs");

}  // namespace surge::trainer

#endif  // SURGE_CLIENT_TRAINER_CNN_SHAPES_H_
