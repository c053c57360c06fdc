// What the server has answered, for `/metrics` (Prometheus text format): calls by method and
// status code with a latency histogram per method, counted by a gRPC server interceptor so that
// every call is seen, refused ones (unauthenticated, over quota, past the deadline) included.
// The other figures of /metrics (jobs by state, queue depth, candidates scored) are gauges the
// server reads when the page is asked for; `PrometheusWriter` formats both.
#ifndef APQ_SERVER_RPC_METRICS_H_
#define APQ_SERVER_RPC_METRICS_H_

#include <grpcpp/support/server_interceptor.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace apq::server {

// Thread-safe counters of answered calls. Methods are full gRPC names
// ("/apq.v1.SearchService/GetJob"); a streaming call's latency is its whole stream's.
class RpcMetrics {
 public:
  // Upper bounds of the latency buckets, in seconds (the last, +Inf, is implicit).
  static constexpr std::array<double, 12> kLatencyBuckets = {
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0};

  void Record(absl::string_view method, int status_code, double seconds);

  struct MethodFigures {
    std::map<int, int64_t> calls_by_code;  // gRPC status code -> calls.
    // Calls at or below each bucket's bound (cumulative, as Prometheus wants them).
    std::array<int64_t, kLatencyBuckets.size()> calls_at_or_below{};
    int64_t calls = 0;
    double seconds_sum = 0;
  };
  std::map<std::string, MethodFigures> Snapshot() const;

 private:
  mutable absl::Mutex mutex_;
  std::map<std::string, MethodFigures, std::less<>> methods_ ABSL_GUARDED_BY(mutex_);
};

// Makes the interceptor that records each call into `metrics` (which must outlive the
// server) when its status is sent.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeRpcMetricsInterceptor(
    RpcMetrics* metrics);

// The name Prometheus labels carry for a gRPC status code ("OK", "NOT_FOUND", ...).
std::string StatusCodeName(int status_code);

// Writes metric families in the Prometheus text exposition format (version 0.0.4): each with
// its HELP and TYPE lines, label values escaped.
class PrometheusWriter {
 public:
  using Labels = std::vector<std::pair<std::string, std::string>>;
  // Starts a family; `type` is "counter", "gauge" or "histogram".
  void Family(absl::string_view name, absl::string_view type, absl::string_view help);
  void Sample(absl::string_view name, const Labels& labels, double value);
  // The calls of `metrics` as apq_rpcs_total and apq_rpc_duration_seconds.
  void RpcFamilies(const RpcMetrics& metrics);
  const std::string& text() const { return text_; }

 private:
  std::string text_;
};

}  // namespace apq::server

#endif  // APQ_SERVER_RPC_METRICS_H_
