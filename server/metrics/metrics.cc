// Implementation of ServerMetrics (see metrics.h): metric names, help texts
// and histogram buckets live here.
#include "server/metrics/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <string>

namespace surge::metrics {
namespace {

// 100 us .. ~13 s, x2 per bucket: covers a cached GET and a slow fit.
prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  prometheus::Histogram::BucketBoundaries buckets;
  for (double b = 1e-4; b < 15; b *= 2) buckets.push_back(b);
  return buckets;
}

std::string CodeName(absl::StatusCode code) { return absl::StatusCodeToString(code); }

}  // namespace

ServerMetrics::ServerMetrics() : registry_(std::make_shared<prometheus::Registry>()) {
  rpc_requests_ = &prometheus::BuildCounter()
                       .Name("surge_rpc_requests_total")
                       .Help("gRPC calls (streams for Ingest/WatchFits) by method and status code")
                       .Register(*registry_);
  rpc_duration_ = &prometheus::BuildHistogram()
                       .Name("surge_rpc_duration_seconds")
                       .Help("gRPC call latency (stream lifetime for Ingest/WatchFits) by method")
                       .Register(*registry_);
  http_requests_ = &prometheus::BuildCounter()
                        .Name("surge_http_requests_total")
                        .Help("HTTP requests by route and HTTP status")
                        .Register(*registry_);
  http_duration_ = &prometheus::BuildHistogram()
                        .Name("surge_http_duration_seconds")
                        .Help("HTTP handler latency by route (until the stream starts for SSE)")
                        .Register(*registry_);
  auto& ingested = prometheus::BuildCounter()
                       .Name("surge_records_ingested_total")
                       .Help("records made durable by the write queue")
                       .Register(*registry_);
  records_ingested_ = &ingested.Add({});
  auto& duplicate = prometheus::BuildCounter()
                        .Name("surge_records_duplicate_total")
                        .Help("re-sent records ignored because (run, step) was already stored")
                        .Register(*registry_);
  records_duplicate_ = &duplicate.Add({});
  auto& commit = prometheus::BuildHistogram()
                     .Name("surge_sqlite_commit_duration_seconds")
                     .Help("latency of the SQLite COMMIT of each group commit (fsync included)")
                     .Register(*registry_);
  commit_duration_ = &commit.Add({}, LatencyBuckets());
  auto& fits = prometheus::BuildCounter()
                   .Name("surge_fits_computed_total")
                   .Help("fit computations; result=ok (fitted) or unfittable (evidence missing)")
                   .Register(*registry_);
  fits_ok_ = &fits.Add({{"result", "ok"}});
  fits_unfittable_ = &fits.Add({{"result", "unfittable"}});
  auto& fit_time = prometheus::BuildHistogram()
                       .Name("surge_fit_duration_seconds")
                       .Help("time of one fit computation (evidence loading + fitting)")
                       .Register(*registry_);
  fit_duration_ = &fit_time.Add({}, LatencyBuckets());
  auto& streams = prometheus::BuildGauge()
                      .Name("surge_http_fit_streams")
                      .Help("live fit streams (server-sent events) open now")
                      .Register(*registry_);
  fit_streams_ = &streams.Add({});
}

ServerMetrics::~ServerMetrics() = default;

void ServerMetrics::ObserveRpc(absl::string_view method, absl::StatusCode code,
                               absl::Duration latency) {
  std::string name(method);
  rpc_requests_->Add({{"method", name}, {"code", CodeName(code)}}).Increment();
  rpc_duration_->Add({{"method", name}}, LatencyBuckets())
      .Observe(absl::ToDoubleSeconds(latency));
}

void ServerMetrics::ObserveHttp(absl::string_view route, int http_status,
                                absl::Duration latency) {
  std::string name(route);
  http_requests_->Add({{"route", name}, {"status", std::to_string(http_status)}}).Increment();
  http_duration_->Add({{"route", name}}, LatencyBuckets())
      .Observe(absl::ToDoubleSeconds(latency));
}

void ServerMetrics::ObserveCommit(absl::Duration commit_latency, int64_t records_stored,
                                  int64_t records_duplicate) {
  commit_duration_->Observe(absl::ToDoubleSeconds(commit_latency));
  records_ingested_->Increment(static_cast<double>(records_stored));
  records_duplicate_->Increment(static_cast<double>(records_duplicate));
}

void ServerMetrics::ObserveFit(absl::Duration fit_time, bool fitted) {
  (fitted ? fits_ok_ : fits_unfittable_)->Increment();
  fit_duration_->Observe(absl::ToDoubleSeconds(fit_time));
}

void ServerMetrics::AddFitStreams(int delta) { fit_streams_->Increment(delta); }

std::string ServerMetrics::Render() const {
  prometheus::TextSerializer serializer;
  return serializer.Serialize(registry_->Collect());
}

}  // namespace surge::metrics
