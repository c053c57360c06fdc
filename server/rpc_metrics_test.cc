#include "server/rpc_metrics.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"

namespace apq::server {
namespace {

TEST(RpcMetricsTest, CountsCallsByCodeAndBucketsLatencyCumulatively) {
  RpcMetrics metrics;
  metrics.Record("/apq.v1.SearchService/GetJob", 0, 0.0005);
  metrics.Record("/apq.v1.SearchService/GetJob", 0, 0.03);
  metrics.Record("/apq.v1.SearchService/GetJob", 5, 20.0);  // Beyond the last bound.
  const auto snapshot = metrics.Snapshot();
  ASSERT_EQ(snapshot.size(), 1u);
  const RpcMetrics::MethodFigures& figures = snapshot.at("/apq.v1.SearchService/GetJob");
  EXPECT_EQ(figures.calls, 3);
  EXPECT_EQ(figures.calls_by_code.at(0), 2);
  EXPECT_EQ(figures.calls_by_code.at(5), 1);
  EXPECT_DOUBLE_EQ(figures.seconds_sum, 20.0305);
  EXPECT_EQ(figures.calls_at_or_below[0], 1);      // <= 1 ms
  EXPECT_EQ(figures.calls_at_or_below[4], 1);      // <= 25 ms
  EXPECT_EQ(figures.calls_at_or_below[5], 2);      // <= 50 ms
  EXPECT_EQ(figures.calls_at_or_below.back(), 2);  // <= 10 s: the 20 s call only in +Inf
}

TEST(RpcMetricsTest, ConcurrentRecordsAreAllCounted) {
  RpcMetrics metrics;
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&metrics] {
      for (int i = 0; i < 1000; ++i) metrics.Record("/m", 0, 0.002);
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(metrics.Snapshot().at("/m").calls, 4000);
}

TEST(PrometheusWriterTest, WritesRpcFamiliesInTheTextFormat) {
  RpcMetrics metrics;
  metrics.Record("/apq.v1.SearchService/GetJob", 0, 0.002);
  metrics.Record("/apq.v1.SearchService/GetJob", 16, 0.2);
  PrometheusWriter writer;
  writer.RpcFamilies(metrics);
  const std::string& text = writer.text();
  EXPECT_TRUE(absl::StrContains(text, "# TYPE apq_rpcs_total counter\n"));
  EXPECT_TRUE(absl::StrContains(
      text, "apq_rpcs_total{method=\"/apq.v1.SearchService/GetJob\",code=\"OK\"} 1\n"));
  EXPECT_TRUE(absl::StrContains(
      text,
      "apq_rpcs_total{method=\"/apq.v1.SearchService/GetJob\",code=\"UNAUTHENTICATED\"} 1\n"));
  EXPECT_TRUE(absl::StrContains(text, "# TYPE apq_rpc_duration_seconds histogram\n"));
  EXPECT_TRUE(absl::StrContains(text,
                                "apq_rpc_duration_seconds_bucket{method=\"/apq.v1.SearchService/"
                                "GetJob\",le=\"0.0025\"} 1\n"));
  EXPECT_TRUE(absl::StrContains(
      text,
      "apq_rpc_duration_seconds_bucket{method=\"/apq.v1.SearchService/GetJob\",le=\"0.25\"} 2\n"));
  EXPECT_TRUE(absl::StrContains(
      text,
      "apq_rpc_duration_seconds_bucket{method=\"/apq.v1.SearchService/GetJob\",le=\"+Inf\"} 2\n"));
  EXPECT_TRUE(absl::StrContains(
      text, "apq_rpc_duration_seconds_count{method=\"/apq.v1.SearchService/GetJob\"} 2\n"));
}

TEST(PrometheusWriterTest, EscapesLabelValuesAndFormatsSpecialValues) {
  PrometheusWriter writer;
  writer.Family("apq_example", "gauge", "An example.");
  writer.Sample("apq_example", {{"name", "a\"b\\c\nd"}}, 0.5);
  writer.Sample("apq_example", {}, 1.0 / 0.0);
  EXPECT_EQ(writer.text(),
            "# HELP apq_example An example.\n# TYPE apq_example gauge\n"
            "apq_example{name=\"a\\\"b\\\\c\\nd\"} 0.5\napq_example +Inf\n");
}

TEST(StatusCodeNameTest, NamesEveryCodeAndMarksUnknownOnes) {
  EXPECT_EQ(StatusCodeName(0), "OK");
  EXPECT_EQ(StatusCodeName(3), "INVALID_ARGUMENT");
  EXPECT_EQ(StatusCodeName(16), "UNAUTHENTICATED");
  EXPECT_EQ(StatusCodeName(17), "CODE_17");
}

}  // namespace
}  // namespace apq::server
