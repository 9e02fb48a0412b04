// Per-batch-size optimal learning rate from raw probe results.
//
// Input: probe (or full-run) points {stage, B, lr, seed, dL}, dL being the
// loss improvement after k steps. Per batch size the LR grid is reduced to
// per-LR seed means and variances, and the optimum ln eps_opt is the vertex
// of a weighted quadratic through the (up to) 5 grid points around the
// argmax of the seed means. Its SE comes from the seed spread by the delta
// method (see optimum.cc). An argmax on the edge of the LR grid is censored:
// a bound, never a point. Already measured optima can be fed in directly.
//
// Thread-safety: pure functions.
#ifndef SURGE_SERVER_FIT_OPTIMUM_H_
#define SURGE_SERVER_FIT_OPTIMUM_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "Eigen/Core"
#include "absl/status/statusor.h"
#include "server/fit/fit_types.h"

namespace surge::fit {

// One probe (or full-run) result. The full-run protocol has the same shape:
// the improvement after k more steps from the target loss (the stage).
struct ProbePoint {
  int64_t stage_id = 0;
  double stage_loss = NAN;   // loss at the checkpoint, or the target loss L*
  double batch_size = 0.0;   // > 0
  double lr = 0.0;           // > 0
  int64_t seed = 0;
  double improvement = 0.0;  // dL = L0 - L(after k steps); finite when reached
  // False for a run that never reached the stage's target loss (censored):
  // it has no improvement, but its LR is a grid point the optimum cannot be
  // beyond (see ExtractOptimum).
  bool reached = true;
  int kind = kProbes;        // EvidenceKind
};

// An optimum measured elsewhere.
struct MeasuredOptimum {
  int64_t stage_id = 0;
  double stage_loss = NAN;
  double batch_size = 0.0;  // > 0
  double lr_opt = 0.0;      // > 0 (the bound, when censored)
  double lr_opt_se = 0.0;   // >= 0, SE of lr_opt in LR units (ln SE = se / lr_opt)
  Censoring censoring = Censoring::kNone;
};

// Where the SE of an optimum came from.
enum class SeSource {
  kSeedSpread,         // delta method, pooled seed variance (x lack of fit)
  kQuadraticResidual,  // delta method, residual variance of the quadratic
  kGridStep,           // fallback: one LR grid step (quadratic unusable)
  kMeasured,           // given with the optimum
};

// The optimum at one batch size of one stage.
struct BatchOptimum {
  double batch_size = 0.0;
  double ln_lr_opt = NAN;     // point estimate, or the bound when censored
  double ln_lr_opt_se = NAN;  // unfloored SE of ln_lr_opt (for a bound: half a grid step)
  Censoring censoring = Censoring::kNone;
  SeSource se_source = SeSource::kSeedSpread;
  int n_lrs = 0;     // distinct LRs on the grid
  int n_seeds = 0;   // distinct seeds
  int n_points = 0;  // raw points used
  int n_censored = 0;  // runs at this batch size that never reached the stage (runs only)
  double steps_at_opt = NAN;  // fastest criterion: fitted steps to the target at the optimum
};

// Checks one point: finite fields, B > 0, lr > 0. kInvalidArgument naming the field.
// Seed statistics at one LR of one batch size's probe points.
struct LrGroup {
  double x = 0.0;  // ln lr
  int n = 0;
  double mean = 0.0;
  double var = 0.0;  // sample variance (0 when n == 1)
};

// Groups the reached points by LR (equal when |ln lr difference| < 1e-9),
// ascending: per LR the seed count, mean improvement and sample variance.
std::vector<LrGroup> GroupByLr(const std::vector<ProbePoint>& points);

// The weighted quadratic over one batch size's window of grid LRs lo..hi
// around the argmax k (docs/fitting.md section 1, steps 3-4):
//   m_j ~ c0 + c1 u + c2 u^2,  u = x_j - x_k,  weights n_j,
//   c = A^-1 sum n_j m_j f_j,  A = sum n_j f_j f_j^T,  f = [1, u, u^2],
//   rss = sum n_j (m_j - q_j)^2,
//   sigma2 = s2 max(1, (rss / s2) / (|W| - 3))  with s2 the pooled seed
//            variance sum (n_j - 1) v_j / sum (n_j - 1) (seed_spread; the
//            factor only when lack_of_fit), else rss / (|W| - 3)
//            (quadratic_residual), else NaN.
struct WindowQuadratic {
  bool invertible = false;  // false: A is singular (c, a_inv unset)
  Eigen::Vector3d c = Eigen::Vector3d::Zero();
  Eigen::Matrix3d a_inv = Eigen::Matrix3d::Zero();
  double rss = 0.0;
  double sigma2 = NAN;
  int sigma2_dof = 0;  // degrees of freedom of sigma2
  SeSource source = SeSource::kGridStep;
};
WindowQuadratic FitWindowQuadratic(const std::vector<LrGroup>& g, int k, int lo, int hi,
                                   bool lack_of_fit = true);

absl::Status ValidateProbePoint(const ProbePoint& p);
absl::Status ValidateMeasuredOptimum(const MeasuredOptimum& m);

// The optimum at one batch size from that batch size's points (one stage).
// Points with reached == false (runs that never got to the target) carry no
// improvement; they only extend the grid: when the argmax sits on the edge of
// the reached LRs but a larger (smaller) LR was tried and never reached the
// target, the optimum is the grid argmax with an SE of one grid step (a
// point), not a bound.
// Errors: kInvalidArgument (bad point), kFailedPrecondition (fewer than 3
// distinct LRs: "batch size 64: need >= 3 distinct learning rates, have 1").
absl::StatusOr<BatchOptimum> ExtractOptimum(const std::vector<ProbePoint>& points);

// All batch sizes of one stage's points. A batch size that cannot give an
// optimum (too few LRs) is skipped, with its reason in `skipped`.
struct StageOptima {
  std::vector<BatchOptimum> optima;  // ascending batch size
  std::vector<std::string> skipped;
};
absl::StatusOr<StageOptima> ExtractStageOptima(const std::vector<ProbePoint>& points);

// Groups `points` by batch size (each checked with `validate`) and runs
// `extract` on each group, ascending; a group that fails with
// kFailedPrecondition is listed in `skipped`, other errors are returned.
// Shared by the improvement (probe) and fastest (steps) optima.
template <typename Point, typename Validate, typename Extract>
absl::StatusOr<StageOptima> ExtractPerBatchSize(const std::vector<Point>& points,
                                                Validate validate, Extract extract) {
  std::map<double, std::vector<Point>> by_batch;
  for (const Point& p : points) {
    if (absl::Status s = validate(p); !s.ok()) return s;
    by_batch[p.batch_size].push_back(p);
  }
  StageOptima out;
  for (const auto& [batch, pts] : by_batch) {
    absl::StatusOr<BatchOptimum> opt = extract(pts);
    if (opt.ok()) {
      out.optima.push_back(*opt);
    } else if (absl::IsFailedPrecondition(opt.status())) {
      out.skipped.emplace_back(opt.status().message());
    } else {
      return opt.status();
    }
  }
  return out;
}

// The SE of the vertex u* = -c1 / (2 c2) of a quadratic c0 + c1 u + c2 u^2
// fitted by (weighted) least squares with normal matrix A, by the delta method:
//   g = [0, -1 / (2 c2), c1 / (2 c2^2)],  se = sqrt(sigma2 g^T A^-1 g),
// widened by t_{0.975, dof} / z_{0.975} (sigma2 has only `dof` degrees of
// freedom, so that the normal 95% interval used downstream has the t
// interval's width) and capped at `width` (the window).
double VertexSe(const Eigen::Vector3d& c, const Eigen::Matrix3d& a_inv, double sigma2, int dof,
                double width);

// An already measured optimum as a BatchOptimum (ln SE = lr_opt_se / lr_opt).
BatchOptimum FromMeasured(const MeasuredOptimum& m);

}  // namespace surge::fit

#endif  // SURGE_SERVER_FIT_OPTIMUM_H_
