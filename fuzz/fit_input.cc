// DecodeFitInput / EncodeFitInput: the byte format in fit_input.h. The two
// functions walk the fields in the same order; keep them side by side.
#include "fuzz/fit_input.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"

namespace surge::fuzz {
namespace {

struct Grid {
  double lo;
  double ratio;
  int n;
};

Grid GridOf(Scale s) {
  switch (s) {
    case Scale::kBatch: return {1.0, 2.0, 16};
    case Scale::kLr: return {1e-5, std::sqrt(2.0), 32};
    case Scale::kLoss: return {0.05, 1.1, 64};
    case Scale::kImprovement: return {1e-4, 1.25, 48};
    case Scale::kSe: return {1e-6, 1.5, 32};
    case Scale::kSteps: return {1.0, 1.5, 40};
  }
  return {1.0, 2.0, 16};
}

double GridValue(Scale s, int k) {
  const Grid g = GridOf(s);
  return g.lo * std::pow(g.ratio, k % g.n);
}

constexpr uint8_t kEdgeTag = 0xC0;
constexpr uint8_t kFloatTag = 0xD0;
constexpr uint8_t kDoubleTag = 0xE8;

const double kEdgeValues[16] = {
    std::numeric_limits<double>::quiet_NaN(), HUGE_VAL, -HUGE_VAL, 0.0, -0.0, 1.0, -1.0,
    DBL_MAX, -DBL_MAX, DBL_MIN, std::numeric_limits<double>::denorm_min(), 1e-300, 1e300,
    -std::numeric_limits<double>::quiet_NaN(), 0.5, 2.0};

const int kProbeKinds[4] = {fit::kProbes, fit::kFullRuns, fit::kPlainRuns, fit::kProbes};
const int kStepsKinds[2] = {fit::kPlainRuns, fit::kFullRuns};

class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool empty() const { return pos_ >= size_; }
  uint8_t Byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  double Num(Scale s) {
    const uint8_t t = Byte();
    if (t < kEdgeTag) return GridValue(s, t);
    if (t < kFloatTag) return kEdgeValues[t - kEdgeTag];
    if (t < kDoubleTag) {
      float f = 0;
      Read(&f, sizeof f);
      return f;
    }
    double d = 0;
    Read(&d, sizeof d);
    return d;
  }
  // The batch size of a point the fit uses (see kMinPointBatch in the header).
  double PointBatch() {
    const double b = Num(Scale::kBatch);
    if (!std::isfinite(b) || b <= 0.0) return b;  // validation paths
    return std::clamp(b, kMinPointBatch, kMaxPointBatch);
  }

 private:
  void Read(void* out, size_t n) {
    uint8_t bytes[8] = {0};
    for (size_t i = 0; i < n; ++i) bytes[i] = Byte();
    std::memcpy(out, bytes, n);
  }
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

class ByteWriter {
 public:
  void Byte(int v) { out_.push_back(static_cast<char>(static_cast<uint8_t>(v))); }
  void Num(Scale s, double v) {
    const Grid g = GridOf(s);
    for (int k = 0; k < g.n; ++k) {
      if (GridValue(s, k) == v) return Byte(k);
    }
    if (std::isnan(v)) return Byte(kEdgeTag);
    for (int i = 1; i < 16; ++i) {
      if (std::memcmp(&kEdgeValues[i], &v, sizeof v) == 0) return Byte(kEdgeTag + i);
    }
    const float f = static_cast<float>(v);
    if (std::isfinite(f) && (f != 0.0f || v == 0.0)) {
      Byte(kFloatTag);
      Append(&f, sizeof f);
    } else {
      Byte(kDoubleTag);
      Append(&v, sizeof v);
    }
  }
  std::string Take() { return std::move(out_); }

 private:
  void Append(const void* p, size_t n) { out_.append(static_cast<const char*>(p), n); }
  std::string out_;
};

int CountOf(size_t n, int cap) { return static_cast<int>(std::min<size_t>(n, cap)); }

int IndexOf(const int* table, int n, int value) {
  for (int i = 0; i < n; ++i) {
    if (table[i] == value) return i;
  }
  return 0;
}

}  // namespace

FitInput DecodeFitInput(const uint8_t* data, size_t size) {
  ByteReader r(data, size);
  FitInput in;
  fit::JobInput& job = in.job;
  const int n_probe = r.Byte() % (kMaxProbePoints + 1);
  const int n_measured = r.Byte() % (kMaxMeasuredOptima + 1);
  const int n_steps = r.Byte() % (kMaxStepsPoints + 1);
  const int n_runs = r.Byte() % (kMaxRuns + 1);
  const int n_loss = r.Byte() % (kMaxLossPoints + 1);
  const int n_grad = r.Byte() % (kMaxGradStats + 1);
  const int n_speed = r.Byte() % (kMaxSpeedPoints + 1);

  job.run_options.k_steps = static_cast<int8_t>(r.Byte());
  const int n_targets = r.Byte() % 5;
  for (int i = 0; i < n_targets; ++i) job.run_options.targets.push_back(r.Num(Scale::kLoss));
  job.run_options.max_targets = 1 + r.Byte() % 8;

  for (int i = 0; i < n_probe && !r.empty(); ++i) {
    fit::ProbePoint p;
    p.stage_id = r.Byte() % 8;
    p.stage_loss = r.Num(Scale::kLoss);
    p.batch_size = r.PointBatch();
    p.lr = r.Num(Scale::kLr);
    p.seed = r.Byte();
    p.improvement = r.Num(Scale::kImprovement);
    const uint8_t flags = r.Byte();
    p.reached = (flags & 1) == 0;
    p.kind = kProbeKinds[(flags >> 1) & 3];
    job.probe_points.push_back(p);
  }
  for (int i = 0; i < n_measured && !r.empty(); ++i) {
    fit::MeasuredOptimum m;
    m.stage_id = r.Byte() % 8;
    m.stage_loss = r.Num(Scale::kLoss);
    m.batch_size = r.PointBatch();
    m.lr_opt = r.Num(Scale::kLr);
    m.lr_opt_se = r.Num(Scale::kSe);
    m.censoring = static_cast<fit::Censoring>(r.Byte() % 3);
    job.measured_optima.push_back(m);
  }
  for (int i = 0; i < n_steps && !r.empty(); ++i) {
    fit::StepsPoint p;
    p.stage_id = r.Byte() % 8;
    p.stage_loss = r.Num(Scale::kLoss);
    p.batch_size = r.PointBatch();
    p.lr = r.Num(Scale::kLr);
    p.seed = r.Byte();
    p.steps = r.Num(Scale::kSteps);
    p.examples = r.Num(Scale::kSteps);
    const uint8_t flags = r.Byte();
    p.reached = (flags & 1) == 0;
    p.kind = kStepsKinds[(flags >> 1) & 1];
    job.steps_points.push_back(p);
  }
  int record_budget = kMaxRunRecords;
  for (int i = 0; i < n_runs && !r.empty(); ++i) {
    fit::RunSeries run;
    run.name = absl::StrCat("r", i);
    run.batch_size = r.PointBatch();
    const double lr = r.Num(Scale::kLr);
    const uint8_t flags = r.Byte();
    run.base_lr = (flags & 16) ? r.Num(Scale::kLr) : 0.0;
    run.seed = r.Byte();
    const int n_records = std::min<int>(r.Byte() % 129, record_budget);
    record_budget -= n_records;
    int64_t step = 0;
    for (int j = 0; j < n_records && !r.empty(); ++j) {
      step += 1 + r.Byte();
      run.steps.push_back(step);
      run.examples.push_back((flags & 4) ? r.Num(Scale::kSteps)
                                         : static_cast<double>(step) * run.batch_size);
      run.lr.push_back((flags & 1) ? r.Num(Scale::kLr) : lr);
      run.loss.push_back(r.Num(Scale::kLoss));
      run.eval_loss.push_back((flags & 2) ? r.Num(Scale::kLoss) : NAN);
    }
    // Mismatched series lengths: a documented InvalidArgument.
    if ((flags & 8) && !run.eval_loss.empty()) run.eval_loss.pop_back();
    job.runs.push_back(std::move(run));
  }
  int64_t step = 0;
  for (int i = 0; i < n_loss && !r.empty(); ++i) {
    step += r.Byte();
    job.loss_curve.push_back({step, r.Num(Scale::kLoss)});
  }
  step = 0;
  for (int i = 0; i < n_grad && !r.empty(); ++i) {
    fit::GradStatRecord g;
    g.run = absl::StrCat("r", r.Byte() % 3);
    step += r.Byte();
    g.step = step;
    g.grad_sq_small = r.Num(Scale::kImprovement);
    g.grad_sq_big = r.Num(Scale::kImprovement);
    g.b_small = r.Num(Scale::kBatch);
    g.b_big = r.Num(Scale::kBatch);
    job.grad_stats.push_back(g);
  }
  for (int i = 0; i < n_speed && !r.empty(); ++i) {
    fit::SpeedPoint p;
    p.target_loss = r.Num(Scale::kLoss);
    p.batch_size = r.PointBatch();
    p.steps = r.Num(Scale::kSteps);
    job.speed_points.push_back(p);
  }

  AdviceQuery& q = in.advice;
  q.batch_size = r.Num(Scale::kBatch);
  const uint8_t flags = r.Byte();
  const int64_t sign = (flags & 32) ? -1 : 1;
  if (flags & 1) q.step = sign * 64 * static_cast<int64_t>(r.Byte());
  q.criterion = (flags & 2) ? fit::Criterion::kFastest : fit::Criterion::kImprovement;
  if (flags & 4) {
    fit::LrReference ref;
    ref.batch_size = r.Num(Scale::kBatch);
    ref.lr = r.Num(Scale::kLr);
    if (flags & 8) ref.step = sign * 64 * static_cast<int64_t>(r.Byte());
    if (flags & 16) ref.loss = r.Num(Scale::kLoss);
    q.reference = ref;
  }
  return in;
}

std::string EncodeFitInput(const FitInput& input) {
  const fit::JobInput& job = input.job;
  ByteWriter w;
  const int n_probe = CountOf(job.probe_points.size(), kMaxProbePoints);
  const int n_measured = CountOf(job.measured_optima.size(), kMaxMeasuredOptima);
  const int n_steps = CountOf(job.steps_points.size(), kMaxStepsPoints);
  const int n_runs = CountOf(job.runs.size(), kMaxRuns);
  const int n_loss = CountOf(job.loss_curve.size(), kMaxLossPoints);
  const int n_grad = CountOf(job.grad_stats.size(), kMaxGradStats);
  const int n_speed = CountOf(job.speed_points.size(), kMaxSpeedPoints);
  for (int n : {n_probe, n_measured, n_steps, n_runs, n_loss, n_grad, n_speed}) w.Byte(n);

  w.Byte(static_cast<int8_t>(std::clamp(job.run_options.k_steps, -128, 127)));
  const int n_targets = CountOf(job.run_options.targets.size(), 4);
  w.Byte(n_targets);
  for (int i = 0; i < n_targets; ++i) w.Num(Scale::kLoss, job.run_options.targets[i]);
  w.Byte(std::clamp(job.run_options.max_targets, 1, 8) - 1);

  for (int i = 0; i < n_probe; ++i) {
    const fit::ProbePoint& p = job.probe_points[i];
    w.Byte(static_cast<int>(p.stage_id % 8));
    w.Num(Scale::kLoss, p.stage_loss);
    w.Num(Scale::kBatch, p.batch_size);
    w.Num(Scale::kLr, p.lr);
    w.Byte(static_cast<int>(p.seed));
    w.Num(Scale::kImprovement, p.improvement);
    w.Byte((p.reached ? 0 : 1) | IndexOf(kProbeKinds, 4, p.kind) << 1);
  }
  for (int i = 0; i < n_measured; ++i) {
    const fit::MeasuredOptimum& m = job.measured_optima[i];
    w.Byte(static_cast<int>(m.stage_id % 8));
    w.Num(Scale::kLoss, m.stage_loss);
    w.Num(Scale::kBatch, m.batch_size);
    w.Num(Scale::kLr, m.lr_opt);
    w.Num(Scale::kSe, m.lr_opt_se);
    w.Byte(static_cast<int>(m.censoring));
  }
  for (int i = 0; i < n_steps; ++i) {
    const fit::StepsPoint& p = job.steps_points[i];
    w.Byte(static_cast<int>(p.stage_id % 8));
    w.Num(Scale::kLoss, p.stage_loss);
    w.Num(Scale::kBatch, p.batch_size);
    w.Num(Scale::kLr, p.lr);
    w.Byte(static_cast<int>(p.seed));
    w.Num(Scale::kSteps, p.steps);
    w.Num(Scale::kSteps, p.examples);
    w.Byte((p.reached ? 0 : 1) | IndexOf(kStepsKinds, 2, p.kind) << 1);
  }
  int record_budget = kMaxRunRecords;
  for (int i = 0; i < n_runs; ++i) {
    const fit::RunSeries& run = job.runs[i];
    const double lr = run.lr.empty() ? run.base_lr : run.lr.front();
    bool varying_lr = false, has_eval = false, own_examples = false;
    for (size_t j = 0; j < run.steps.size(); ++j) {
      varying_lr = varying_lr || run.lr[j] != lr;
      has_eval = has_eval || !std::isnan(run.eval_loss[j]);
      own_examples = own_examples || run.examples[j] != static_cast<double>(run.steps[j]) * run.batch_size;
    }
    w.Num(Scale::kBatch, run.batch_size);
    w.Num(Scale::kLr, lr);
    const int flags = (varying_lr ? 1 : 0) | (has_eval ? 2 : 0) | (own_examples ? 4 : 0) |
                      (run.base_lr > 0 ? 16 : 0);
    w.Byte(flags);
    if (flags & 16) w.Num(Scale::kLr, run.base_lr);
    w.Byte(static_cast<int>(run.seed));
    const int n_records = std::min({CountOf(run.steps.size(), 128), record_budget});
    record_budget -= n_records;
    w.Byte(n_records);
    int64_t step = 0;
    for (int j = 0; j < n_records; ++j) {
      w.Byte(static_cast<int>(std::clamp<int64_t>(run.steps[j] - step - 1, 0, 255)));
      step = run.steps[j];
      if (flags & 4) w.Num(Scale::kSteps, run.examples[j]);
      if (flags & 1) w.Num(Scale::kLr, run.lr[j]);
      w.Num(Scale::kLoss, run.loss[j]);
      if (flags & 2) w.Num(Scale::kLoss, run.eval_loss[j]);
    }
  }
  int64_t step = 0;
  for (int i = 0; i < n_loss; ++i) {
    const fit::LossPoint& p = job.loss_curve[i];
    w.Byte(static_cast<int>(std::clamp<int64_t>(p.step - step, 0, 255)));
    step = p.step;
    w.Num(Scale::kLoss, p.loss);
  }
  step = 0;
  for (int i = 0; i < n_grad; ++i) {
    const fit::GradStatRecord& g = job.grad_stats[i];
    w.Byte(g.run.empty() ? 0 : (g.run.back() - '0') % 3);
    w.Byte(static_cast<int>(std::clamp<int64_t>(g.step - step, 0, 255)));
    step = g.step;
    w.Num(Scale::kImprovement, g.grad_sq_small);
    w.Num(Scale::kImprovement, g.grad_sq_big);
    w.Num(Scale::kBatch, g.b_small);
    w.Num(Scale::kBatch, g.b_big);
  }
  for (int i = 0; i < n_speed; ++i) {
    w.Num(Scale::kLoss, job.speed_points[i].target_loss);
    w.Num(Scale::kBatch, job.speed_points[i].batch_size);
    w.Num(Scale::kSteps, job.speed_points[i].steps);
  }

  const AdviceQuery& q = input.advice;
  w.Num(Scale::kBatch, q.batch_size);
  const bool has_ref = q.reference.has_value();
  const int flags = (q.step ? 1 : 0) | (q.criterion == fit::Criterion::kFastest ? 2 : 0) |
                    (has_ref ? 4 : 0) | (has_ref && q.reference->step ? 8 : 0) |
                    (has_ref && q.reference->loss ? 16 : 0);
  w.Byte(flags);
  auto step_byte = [](int64_t s) { return static_cast<int>(std::clamp<int64_t>(s / 64, 0, 255)); };
  if (q.step) w.Byte(step_byte(*q.step));
  if (has_ref) {
    w.Num(Scale::kBatch, q.reference->batch_size);
    w.Num(Scale::kLr, q.reference->lr);
    if (q.reference->step) w.Byte(step_byte(*q.reference->step));
    if (q.reference->loss) w.Num(Scale::kLoss, *q.reference->loss);
  }
  return w.Take();
}

}  // namespace surge::fuzz
