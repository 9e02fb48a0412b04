// The byte format of fuzz_fit_job: a bounded fit::JobInput (and one advice
// request) decoded from arbitrary bytes, and its encoder, used to write the
// seed corpus from synthetic sweeps (make_seeds.cc).
//
// Sizes are capped so that one execution stays in the milliseconds: at most
// 64 probe points, 64 measured optima, 64 steps points, 12 plain runs with
// 512 records in all, 64 loss-curve points, 32 gradient records and 16
// speed points. Every byte string decodes to some input; missing bytes read
// as 0.
//
// Batch sizes of the points the fit uses (probe points, measured optima,
// steps points, runs, speed points) that are finite and > 0 are clamped to
// [kMinPointBatch, kMaxPointBatch]: the fit scans start values and its
// profile over ln(batch size) in fixed steps, so an input with points at
// DBL_MIN and DBL_MAX (a span of 1,400 in ln) took 0.25-0.5 s and such inputs
// half of the fuzzer's time. NaN, infinities, zero and negative values pass
// (the validation paths), and the advice query and the gradient statistics
// keep the whole range.
//
// Numbers ("Num"): a tag byte t, then
//   t <  0xC0  a value on the field's grid: lo * ratio^(t mod n) (batch sizes
//              2^0..2^15, LRs 1e-5 * sqrt(2)^k, losses, ...), so a one-byte
//              mutation moves along a sensible scale;
//   0xC0-0xCF  an edge value: NaN, +-inf, +-0, +-1, +-DBL_MAX, DBL_MIN, the
//              smallest denormal, 1e-300, 1e300, -NaN, 0.5, 2;
//   0xD0-0xE7  a float32 follows (4 bytes, little-endian);
//   0xE8-0xFF  a float64 follows (8 bytes, little-endian).
// Integers (stage ids, seeds, step increments) are single bytes.
//
// Layout: counts (probe, measured, steps, runs, loss curve, grad, speed),
// run options (k_steps, targets, max_targets), then the points in that
// order, then the advice request (batch size, flags, step, reference).
#ifndef SURGE_FUZZ_FIT_INPUT_H_
#define SURGE_FUZZ_FIT_INPUT_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "server/fit/advise.h"
#include "server/fit/fit_job.h"
#include "server/fit/transfer.h"

namespace surge::fuzz {

inline constexpr int kMaxProbePoints = 64;
inline constexpr int kMaxMeasuredOptima = 64;
inline constexpr int kMaxStepsPoints = 64;
inline constexpr int kMaxRuns = 12;
inline constexpr int kMaxRunRecords = 512;  // over all runs
inline constexpr int kMaxLossPoints = 64;
inline constexpr int kMaxGradStats = 32;
inline constexpr int kMaxSpeedPoints = 16;
// 2^-16 and 2^64 (a run's batch size is an int64): a span of 55 in ln.
inline constexpr double kMinPointBatch = 1.0 / 65536.0;
inline constexpr double kMaxPointBatch = 18446744073709551616.0;

// The grid a number's tag byte indexes (see the header comment).
enum class Scale { kBatch, kLr, kLoss, kImprovement, kSe, kSteps };

// What Advise() is asked once the fit succeeds.
struct AdviceQuery {
  double batch_size = 64.0;
  std::optional<int64_t> step;
  fit::Criterion criterion = fit::Criterion::kImprovement;
  std::optional<fit::LrReference> reference;
};

struct FitInput {
  fit::JobInput job;
  AdviceQuery advice;
};

// Decodes any bytes into a FitInput within the caps above.
FitInput DecodeFitInput(const uint8_t* data, size_t size);

// Encodes `input` (points past the caps are dropped; numbers are written as
// grid tags when exact, else as float32, so the decoded values may differ
// in the last float digits).
std::string EncodeFitInput(const FitInput& input);

}  // namespace surge::fuzz

#endif  // SURGE_FUZZ_FIT_INPUT_H_
