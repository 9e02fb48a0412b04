// EXPERIMENTAL (issue 13, item 4: "pooling the raw probes"): a joint fit of
// one stage's improvement surface over (x = ln B, y = ln lr) from the raw
// probe points, instead of the two-step pipeline (per-B quadratic vertex in
// optimum.cc, then the surge law through the vertices in surge_law.cc). Not
// used by the service; surge-pooled (server/tools) compares the two on stored
// sweeps by leaving one batch size out.
//
// Data. Per batch size B (x_B = ln B), the reached probe points are grouped
// by LR exactly as optimum.cc does (equal when |d ln lr| < 1e-9): per cell
// (B, lr_j) the seed mean mbar_Bj of n_Bj seeds. k_B = argmax_j mbar_Bj and the
// window W_B = the 5 consecutive grid points containing k_B (all of them for
// a grid of 3 or 4), the same window optimum.cc's quadratic uses, so that a
// quadratic in ln lr is a valid local description of the peak. A B whose
// argmax sits on the edge of its grid (a censored optimum in the two-step
// fit) is left out unless PooledOptions::include_edge_batches.
//
// Model, per cell j in W_B (y_j = ln lr_j):
//   dL(x_B, y_j) = h_B - c(x_B) (y_j - m(x_B))^2
//   m(x)  peak location, one of (PeakLaw):
//           kSurge            a - ln cosh((x - b) / 2)          [a, b]  (Eq. 2)
//           kSaturatingSurge  a - ln cosh(ln beta(x) - ln beta_s),
//                             beta(x) = (1 + e^(c - x))^(-1/2), beta_s = 1/(1 + e^-u)
//                                                              [a, c, u]
//           kPowerLaw         p0 + p1 x                         [p0, p1]
//   h_B   peak height: a free nuisance parameter per B (ShapeTerm::kPerBatch,
//         the default; heights span orders of magnitude over B, and a free
//         height per B keeps the comparison with the per-B quadratic fair),
//         or h(x) = h0 + h1 t + h2 t^2 (kQuadratic), t = x - mean x.
//   c(x)  curvature > 0: ln c(x) = g0 + g1 t + g2 t^2 (kQuadratic, the default:
//         the width of the peak varies smoothly with B, so the curvature is
//         shared across batch sizes; this is what pooling gains over the
//         per-B quadratics), or a free ln c_B per B (kPerBatch).
// Residual of a cell: r_Bj = (mbar_Bj - dL(x_B, y_j)) / sd_Bj, sd_Bj = s_B / sqrt(n_Bj),
// with s_B^2 the per-probe seed variance of B, as optimum.cc computes it:
//   s2 = sum_W (n_j - 1) v_j / sum_W (n_j - 1)  (pooled over the window),
//   times the per-B quadratic's lack-of-fit factor max(1, RSS_q / s2 / (|W| - 3));
//   with one seed per LR the quadratic's residual variance RSS_q / (|W| - 3).
// SE floor: the two-step fit floors every optimum's SE at se_floor (0.05 in
// ln); the pooled fit applies the same cap on the information one B carries
// about its peak: when B's own quadratic vertex has a delta-method SE
// se_B < se_floor (VertexSe, optimum.h), s_B is multiplied by se_floor / se_B
// (the vertex SE scales linearly with s_B).
// Cost (Ceres's convention, the Huber loss of fit_core.h, k = huber_k):
//   C = sum_Bj 0.5 rho(r_Bj^2),
// minimized by Ceres (AutoDiffCostFunction, DENSE_QR). Start values from the
// two-step fit: per-B quadratic vertices (height = vertex value, ln c = ln(-c2)),
// the surge law fitted to the vertices (FitSurgeLaw), plus a multi-start over
// the law's location parameter (b, or c for the saturating law) on a 1.0 grid
// over [x_min - 3, x_max + 3] with a by variable projection; the start with
// the lowest final cost wins. The law's location parameter is kept inside
// [x_min - margin, x_max + margin] (as the surge fit's profile scan); ln c
// stays within +-15 of its start (per B, or g0) and g1, g2 within [-5, 5], so
// that exp() stays finite.
//
// Uncertainty: chi2 = 2 C, dof = cells - parameters, scale = max(1, chi2/dof)
// (VarianceScale); Cov(law params) = scale * the law block of ceres::Covariance
// (DENSE_SVD pseudo-inverse; the nuisance heights and curvature are
// marginalized in the joint covariance), and
//   var m(x) = g^T Cov g,  g = d m(x) / d(law params)   (delta method, autodiff).
//
// Held-out comparison (PooledHoldOut): per stage and batch size B that
// HoldOutCheck (holdout.h) compares, the pooled surface refitted without B's
// probes predicts m(x_B). Targets: ln_measured (the full-data two-step optimum
// at B) and the efficiency share at B:
//   share(y) = dLbar_B(y) / max_j mbar_Bj,
// dLbar_B the seed-mean improvement interpolated linearly in ln lr between
// B's grid LRs (clamped to the edge values outside the grid); negative where
// the predicted LR made the loss rise.
//
// Measured (Fashion-MNIST probe sweeps, 11 B x 8 seeds, 2 stages each; tool
// surge-pooled): not more accurate than the two-step model average. With
// the surge law the pooled fit is much worse on fmnist-adam (held-out mean
// |err| 0.71 and 0.48 in ln vs 0.08 and 0.10), whose optimum is nearly flat
// in B: the pooled cost weights each cell by its seed noise, so the precise
// large-B cells fix the law and a weak small-B peak costs little to miss
// (its penalty is bounded by the peak's signal, while the two-step
// delta-method SE keeps pulling quadratically). With the saturating law it
// matches the model average there (0.08, 0.11); on fmnist-sign it is
// comparable (0.19 vs 0.23 and 0.20; 0.34 vs 0.41 and 0.31).
//
// Thread-safety: pure functions.
#ifndef SURGE_SERVER_FIT_POOLED_SURFACE_H_
#define SURGE_SERVER_FIT_POOLED_SURFACE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "Eigen/Core"
#include "absl/status/statusor.h"
#include "server/fit/fit_job.h"
#include "server/fit/fit_types.h"
#include "server/fit/holdout.h"
#include "server/fit/optimum.h"

namespace surge::fit {

enum class PeakLaw { kSurge, kSaturatingSurge, kPowerLaw };
const char* PeakLawName(PeakLaw law);  // "surge", "saturating_surge", "power_law"
int PeakLawParams(PeakLaw law);        // 2, 3, 2

enum class ShapeTerm { kPerBatch, kQuadratic };
const char* ShapeTermName(ShapeTerm t);  // "per_batch", "quadratic"

struct PooledOptions {
  PeakLaw law = PeakLaw::kSurge;
  ShapeTerm heights = ShapeTerm::kPerBatch;
  ShapeTerm curvature = ShapeTerm::kQuadratic;
  int window = 5;                     // grid points around the argmax
  double huber_k = 2.0;               // in units of sd_Bj
  double se_floor = 0.05;             // per-B vertex SE floor (ln); 0: none
  bool lack_of_fit = true;            // per-B lack-of-fit factor on s_B^2
  bool include_edge_batches = false;  // B with the argmax on the grid edge
  double margin = 8.0;                // law location kept in [x_min - m, x_max + m]
};

// What one batch size contributed, and the fitted surface there.
struct PooledBatch {
  double batch_size = 0.0;
  int n_cells = 0;         // window cells
  int n_points = 0;        // raw probes in those cells
  double ln_lr_lo = NAN;   // window
  double ln_lr_hi = NAN;
  bool edge = false;       // argmax on the grid edge
  double sd = NAN;         // s_B used (per probe)
  double vertex = NAN;     // its own quadratic's vertex (NaN when unusable)
  double vertex_se = NAN;
  double height = NAN;     // fitted h at x_B
  double curvature = NAN;  // fitted c at x_B
  double ln_lr_peak = NAN; // fitted m(x_B)
};

struct PooledSurfaceFit {
  int64_t stage_id = 0;
  double stage_loss = NAN;
  PooledOptions options;
  std::vector<double> law_params;  // PeakLaw parameters (see file comment)
  Eigen::MatrixXd law_cov;         // scaled; NaN when the covariance failed
  bool covariance_ok = false;
  std::vector<double> height_params;     // per B (ascending) or [h0, h1, h2]
  std::vector<double> curvature_params;  // per B (ln c_B) or [g0, g1, g2]
  double x_center = 0.0;                 // mean ln B of the batches used
  double cost = 0.0;                     // 0.5 sum rho
  double chi2 = 0.0;
  int n_cells = 0;
  int n_params = 0;
  int dof = 0;
  double scale = 1.0;
  double x_min = NAN;  // ln B range of the batches used
  double x_max = NAN;
  bool location_at_bound = false;  // the law's location parameter sits on its bound
  std::vector<PooledBatch> batches;   // used, ascending B
  std::vector<std::string> skipped;   // batch sizes left out, and why

  // m(x) = ln lr at the peak, with its delta-method variance.
  CurvePrediction PredictLnLrPeak(double ln_b) const;
  // ln B_noise (kSurge: b with its SE; the saturating law: its peak, SE NaN;
  // power law: NaN).
  Estimate LnBNoise() const;
};

// Fits one stage's surface. All points must share stage_id (else
// kInvalidArgument); points with reached == false are ignored. Errors:
// kInvalidArgument (bad point, ValidateProbePoint), kFailedPrecondition
// (fewer than 3 usable batch sizes, or no residual degrees of freedom; the
// message lists the batch sizes left out), kInternal (solver failure).
absl::StatusOr<PooledSurfaceFit> FitPooledSurface(const std::vector<ProbePoint>& points,
                                                  const PooledOptions& options = {});

// share(ln_lr) at one batch size from its points (see the file comment). NaN
// when the points have no LR or the best seed mean is <= 0.
double ShareOfBest(const std::vector<ProbePoint>& points_at_b, double ln_lr);

// One held-out batch size: the pooled prediction beside the two-step ones.
struct PooledHoldOutRow {
  HoldOutResult two_step;      // from HoldOutCheck (kind, ln_measured, averaged, surge)
  double pooled_ln = NAN;      // m(x_B) from the pooled refit without B
  double pooled_se = NAN;
  std::string pooled_note;     // why the pooled refit failed; empty otherwise
  double share_pooled = NAN;   // ShareOfBest at the three predictions
  double share_averaged = NAN;
  double share_surge = NAN;
  double share_measured = NAN; // at the full-data two-step optimum (reference)
};

// HoldOutCheck on `input` (its probe points and measured optima) and, for
// each of its results that is not skipped, the pooled refit of that stage
// without B's probes. Also returns the full-data pooled fit per stage in
// `full_pooled` when not null (failed stages omitted). Errors: those of
// HoldOutCheck.
absl::StatusOr<std::vector<PooledHoldOutRow>> PooledHoldOut(
    const JobInput& input, const PooledOptions& options = {},
    std::vector<PooledSurfaceFit>* full_pooled = nullptr, JobFit* full_two_step = nullptr);

// Error statistics of one method over one stage's interior rows (kind ==
// kInterior) on the common set: rows where all three methods have a finite
// prediction, so the methods are compared on the same batch sizes.
// err = predicted - ln_measured; shares over the rows with a finite share.
enum class HoldOutMethod { kPooled, kAveraged, kSurge };
struct MethodStats {
  int n = 0;
  double mean_abs_err = NAN;
  double rms_err = NAN;
  double mean_share = NAN;   // over rows with a finite share
  double worst_share = NAN;
  int n_share = 0;
};
MethodStats SummarizeMethod(const std::vector<PooledHoldOutRow>& rows, HoldOutMethod method,
                            int64_t stage_id);

}  // namespace surge::fit

#endif  // SURGE_SERVER_FIT_POOLED_SURFACE_H_
