// Conversions from the fitting library's results (server/fit) to the API's
// messages: a JobFit to surge.v1.Fit (with sampled model curves for plots)
// and an Advice to surge.v1.Advice.
#ifndef SURGE_SERVER_CORE_FIT_CONVERT_H_
#define SURGE_SERVER_CORE_FIT_CONVERT_H_

#include "server/fit/advise.h"
#include "server/fit/fit_job.h"
#include "surge/v1/surge.pb.h"

namespace surge::core {

// Fills stages, skipped stages, drift, B_simple, speed/data and notes.
void JobFitToProto(const fit::JobFit& fit, surge::v1::Fit* out);

void AdviceToProto(const fit::Advice& advice, surge::v1::Advice* out);

}  // namespace surge::core

#endif  // SURGE_SERVER_CORE_FIT_CONVERT_H_
