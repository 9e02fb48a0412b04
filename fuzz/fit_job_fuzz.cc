// Fuzz target: the fit entry point. fit::FitJob on a bounded JobInput decoded
// from the bytes (fit_input.h: probe points, measured optima, steps points,
// plain runs, loss curve, gradient statistics, speed points, with finite and
// non-finite values), then fit::Advise on a fit that succeeded.
//
// Checked: FitJob and Advise return a status (InvalidArgument or
// FailedPrecondition, or Internal when Ceres finds no usable solution) with a
// message, never crash; a JobFit lists its stages by ascending loss. Advice
// whose LR is not finite and > 0 is counted, not a crash (extreme but valid
// inputs, e.g. optima at 1e300, can overflow), and the count is printed at
// exit. ASan, UBSan and libFuzzer's timeout and memory limits catch
// everything else.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "absl/status/status.h"
#include "fuzz/fit_input.h"
#include "server/fit/advise.h"
#include "server/fit/fit_job.h"

namespace {

void Fail(const char* what, const absl::Status& status) {
  std::fprintf(stderr, "fuzz_fit_job: %s: %s\n", what, status.ToString().c_str());
  std::abort();
}

void CheckError(const char* what, const absl::Status& status) {
  const bool expected = absl::IsInvalidArgument(status) || absl::IsFailedPrecondition(status) ||
                        absl::IsInternal(status);
  if (!expected || status.message().empty()) Fail(what, status);
}

long long non_finite_advice = 0;

void PrintCounts() {
  std::fprintf(stderr, "fuzz_fit_job: advice with an LR not finite and > 0: %lld\n",
               non_finite_advice);
}

void CheckSorted(const std::vector<surge::fit::StageFit>& stages) {
  for (size_t i = 1; i < stages.size(); ++i) {
    if (stages[i - 1].stage_loss > stages[i].stage_loss) {
      std::fprintf(stderr, "fuzz_fit_job: stages not in ascending loss\n");
      std::abort();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const surge::fuzz::FitInput in = surge::fuzz::DecodeFitInput(data, size);
  absl::StatusOr<surge::fit::JobFit> fit = surge::fit::FitJob(in.job);
  if (!fit.ok()) {
    CheckError("FitJob", fit.status());
    return 0;
  }
  CheckSorted(fit->stages);
  CheckSorted(fit->fastest.stages);
  const surge::fuzz::AdviceQuery& q = in.advice;
  absl::StatusOr<surge::fit::Advice> advice =
      surge::fit::Advise(*fit, q.batch_size, q.step, q.criterion, q.reference);
  if (!advice.ok()) {
    CheckError("Advise", advice.status());
    return 0;
  }
  if (!(std::isfinite(advice->lr) && advice->lr > 0)) ++non_finite_advice;
  return 0;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  std::atexit(PrintCounts);
  return 0;
}
