#include "server/rpc_metrics.h"

#include <grpcpp/support/interceptor.h>
#include <grpcpp/support/status.h>

#include <chrono>
#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"

namespace apq::server {

void RpcMetrics::Record(absl::string_view method, int status_code, double seconds) {
  absl::MutexLock lock(&mutex_);
  auto found = methods_.find(method);
  if (found == methods_.end())
    found = methods_.emplace(static_cast<std::string>(method), MethodFigures()).first;
  MethodFigures& figures = found->second;
  ++figures.calls_by_code[status_code];
  ++figures.calls;
  figures.seconds_sum += seconds;
  for (size_t bucket = 0; bucket < kLatencyBuckets.size(); ++bucket) {
    if (seconds <= kLatencyBuckets[bucket]) ++figures.calls_at_or_below[bucket];
  }
}

std::map<std::string, RpcMetrics::MethodFigures> RpcMetrics::Snapshot() const {
  absl::MutexLock lock(&mutex_);
  return {methods_.begin(), methods_.end()};
}

namespace {

// Times one call from its creation to the status it sends.
class RpcMetricsInterceptor : public grpc::experimental::Interceptor {
 public:
  RpcMetricsInterceptor(RpcMetrics* metrics, const char* method)
      : metrics_(metrics),
        method_(method != nullptr ? method : "unknown"),
        start_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start_;
      metrics_->Record(method_, static_cast<int>(methods->GetSendStatus().error_code()),
                       elapsed.count());
    }
    methods->Proceed();
  }

 private:
  RpcMetrics* metrics_;
  std::string method_;
  std::chrono::steady_clock::time_point start_;
};

class RpcMetricsInterceptorFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcMetricsInterceptorFactory(RpcMetrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new RpcMetricsInterceptor(metrics_, info->method());
  }

 private:
  RpcMetrics* metrics_;
};

// Prometheus label values escape backslash, double quote and newline.
std::string EscapeLabelValue(absl::string_view value) {
  std::string escaped;
  escaped.reserve(value.size());
  for (const char c : value) {
    if (c == '\\') {
      escaped += "\\\\";
    } else if (c == '"') {
      escaped += "\\\"";
    } else if (c == '\n') {
      escaped += "\\n";
    } else {
      escaped += c;
    }
  }
  return escaped;
}

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    return absl::StrCat(static_cast<int64_t>(value));
  }
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.9g", value);
  return buffer;
}

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeRpcMetricsInterceptor(
    RpcMetrics* metrics) {
  return std::make_unique<RpcMetricsInterceptorFactory>(metrics);
}

std::string StatusCodeName(int status_code) {
  static constexpr const char* kNames[] = {"OK",
                                           "CANCELLED",
                                           "UNKNOWN",
                                           "INVALID_ARGUMENT",
                                           "DEADLINE_EXCEEDED",
                                           "NOT_FOUND",
                                           "ALREADY_EXISTS",
                                           "PERMISSION_DENIED",
                                           "RESOURCE_EXHAUSTED",
                                           "FAILED_PRECONDITION",
                                           "ABORTED",
                                           "OUT_OF_RANGE",
                                           "UNIMPLEMENTED",
                                           "INTERNAL",
                                           "UNAVAILABLE",
                                           "DATA_LOSS",
                                           "UNAUTHENTICATED"};
  if (status_code >= 0 && status_code < static_cast<int>(std::size(kNames))) {
    return kNames[status_code];
  }
  return absl::StrCat("CODE_", status_code);
}

void PrometheusWriter::Family(absl::string_view name, absl::string_view type,
                              absl::string_view help) {
  absl::StrAppend(&text_, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
}

void PrometheusWriter::Sample(absl::string_view name, const Labels& labels, double value) {
  absl::StrAppend(&text_, name);
  if (!labels.empty()) {
    text_ += '{';
    for (size_t i = 0; i < labels.size(); ++i) {
      absl::StrAppend(&text_, i > 0 ? "," : "", labels[i].first, "=\"",
                      EscapeLabelValue(labels[i].second), "\"");
    }
    text_ += '}';
  }
  absl::StrAppend(&text_, " ", FormatValue(value), "\n");
}

void PrometheusWriter::RpcFamilies(const RpcMetrics& metrics) {
  const std::map<std::string, RpcMetrics::MethodFigures> methods = metrics.Snapshot();
  Family("apq_rpcs_total", "counter", "gRPC calls answered, by method and status code.");
  for (const auto& [method, figures] : methods) {
    for (const auto& [code, calls] : figures.calls_by_code) {
      Sample("apq_rpcs_total", {{"method", method}, {"code", StatusCodeName(code)}},
             static_cast<double>(calls));
    }
  }
  Family("apq_rpc_duration_seconds", "histogram",
         "Seconds from a call's start to its status, by method (a stream's whole life).");
  for (const auto& [method, figures] : methods) {
    for (size_t bucket = 0; bucket < RpcMetrics::kLatencyBuckets.size(); ++bucket) {
      Sample("apq_rpc_duration_seconds_bucket",
             {{"method", method}, {"le", FormatValue(RpcMetrics::kLatencyBuckets[bucket])}},
             static_cast<double>(figures.calls_at_or_below[bucket]));
    }
    Sample("apq_rpc_duration_seconds_bucket", {{"method", method}, {"le", "+Inf"}},
           static_cast<double>(figures.calls));
    Sample("apq_rpc_duration_seconds_sum", {{"method", method}}, figures.seconds_sum);
    Sample("apq_rpc_duration_seconds_count", {{"method", method}},
           static_cast<double>(figures.calls));
  }
}

}  // namespace apq::server
