// ServerMetrics: the process's Prometheus metrics (prometheus-cpp), shared by
// the gRPC handlers, the HTTP server, the write queue's commit observer and
// the fit service's fit observer. Render() gives the text exposition format
// served at /metrics. Thread-safe; every Observe* call is a few atomic adds
// (label sets are created once and cached by prometheus-cpp's families).
#ifndef SURGE_SERVER_METRICS_METRICS_H_
#define SURGE_SERVER_METRICS_METRICS_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace prometheus {
class Counter;
class Gauge;
class Histogram;
class Registry;
template <typename T>
class Family;
}  // namespace prometheus

namespace surge::metrics {

class ServerMetrics {
 public:
  ServerMetrics();
  ~ServerMetrics();
  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  // One finished gRPC call (for Ingest and WatchFits: one stream).
  void ObserveRpc(absl::string_view method, absl::StatusCode code, absl::Duration latency);
  // One HTTP request, by route name (not path, to bound the label set).
  void ObserveHttp(absl::string_view route, int http_status, absl::Duration latency);
  // One group commit of the write queue.
  void ObserveCommit(absl::Duration commit_latency, int64_t records_stored,
                     int64_t records_duplicate);
  // One fit computation.
  void ObserveFit(absl::Duration fit_time, bool fitted);
  // Live fit streams (server-sent events) open now.
  void AddFitStreams(int delta);

  // The Prometheus text exposition format (version 0.0.4).
  std::string Render() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* rpc_requests_;
  prometheus::Family<prometheus::Histogram>* rpc_duration_;
  prometheus::Family<prometheus::Counter>* http_requests_;
  prometheus::Family<prometheus::Histogram>* http_duration_;
  prometheus::Counter* records_ingested_;
  prometheus::Counter* records_duplicate_;
  prometheus::Histogram* commit_duration_;
  prometheus::Counter* fits_ok_;
  prometheus::Counter* fits_unfittable_;
  prometheus::Histogram* fit_duration_;
  prometheus::Gauge* fit_streams_;
};

}  // namespace surge::metrics

#endif  // SURGE_SERVER_METRICS_METRICS_H_
