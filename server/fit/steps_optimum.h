// The "fastest" optimum at one batch size: the LR that reaches a target loss
// in the fewest steps, from runs at several LRs (the second criterion of
// surge-math.md, section 2; the first is the k-step improvement, optimum.h).
//
// Per run: y = ln S (S = first step at or below the target), or, for a run
// that never reached the target, the bound y > ln T (T = its last step).
// Model, in a window of up to 5 consecutive LRs of the grid around the LR
// with the smallest mean ln S (u = ln lr - ln lr_k):
//   ln S ~ c0 + c1 u + c2 u^2,   c2 > 0,
// least squares over the runs that reached, plus every censored run whose
// bound the parabola violates (predicted ln S < ln T), entered as a point at
// ln T (an active-set approximation of a censored fit; repeated until no
// bound is violated). dof = n - 3 with n the runs that reached (an active
// bound is a constraint, not an observation), sigma^2 = RSS / dof,
// Cov(c) = sigma^2 (F^T F)^-1.
// The optimum is the vertex u* = -c1 / (2 c2), its SE by the delta method
//   g = [0, -1 / (2 c2), c1 / (2 c2^2)],  se = t_0.975(dof) / z_0.975 sqrt(g^T Cov g)
// (the t factor: sigma^2 has few degrees of freedom, 7 with 2 seeds x 5 LRs,
// and downstream the SE is used as a normal one; capped at the window
// width); ln S at the optimum = c0 + c1 u* + c2 u*^2.
// Censoring: when the fastest reached LR is the grid's lowest (highest) LR
// and no run was tried below (above) it, the optimum is an upper (lower)
// bound half a grid step inside, as for probes. Without a usable vertex
// (c2 <= 0, u* outside the window, dof < 1) the grid argmin is returned with an
// SE of one grid step.
//
// Thread-safety: pure functions.
#ifndef SURGE_SERVER_FIT_STEPS_OPTIMUM_H_
#define SURGE_SERVER_FIT_STEPS_OPTIMUM_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "server/fit/optimum.h"

namespace surge::fit {

// One run at one target loss.
struct StepsPoint {
  int64_t stage_id = 0;
  double stage_loss = NAN;  // the target loss L*
  double batch_size = 0.0;  // > 0
  double lr = 0.0;          // > 0
  int64_t seed = 0;
  double steps = 0.0;       // reached: first step at or below L* (> 0); else the run's last step
  double examples = 0.0;    // at `steps`
  bool reached = true;
  int kind = kPlainRuns;    // EvidenceKind
};

absl::Status ValidateStepsPoint(const StepsPoint& p);

// The fastest-LR optimum at one batch size (all points share it).
// `steps_at_opt` of the result is exp(ln S at the optimum) for a vertex, else
// the fewest steps observed. Errors: kInvalidArgument (bad point),
// kFailedPrecondition ("batch size 64: need >= 3 learning rates that reach
// the target, have 2 (3 runs never reached it)").
absl::StatusOr<BatchOptimum> ExtractFastestOptimum(const std::vector<StepsPoint>& points);

// Every batch size of one stage; batch sizes without an optimum are listed
// in `skipped` with their reason.
absl::StatusOr<StageOptima> ExtractFastestStageOptima(const std::vector<StepsPoint>& points);

}  // namespace surge::fit

#endif  // SURGE_SERVER_FIT_STEPS_OPTIMUM_H_
