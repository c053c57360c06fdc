#include "server/candidate_metrics.h"

#include "absl/strings/str_cat.h"

namespace apq::server {

absl::StatusOr<search::CostMetric> CostMetricFromProto(apq::v1::CostMetric metric,
                                                       absl::string_view field) {
  switch (metric) {
    case apq::v1::COST_METRIC_UNSPECIFIED:
    case apq::v1::COST_METRIC_LATENCY:
      return search::CostMetric::kLatency;
    case apq::v1::COST_METRIC_ENERGY:
      return search::CostMetric::kEnergy;
    case apq::v1::COST_METRIC_SIZE:
      return search::CostMetric::kSize;
    case apq::v1::COST_METRIC_BITOPS:
      return search::CostMetric::kBitops;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": unknown value ", static_cast<int>(metric)));
  }
}

CandidateOrder AscendingOrder(search::CostMetric metric) {
  switch (metric) {
    case search::CostMetric::kLatency:
      return CandidateOrder::kLatencyAsc;
    case search::CostMetric::kEnergy:
      return CandidateOrder::kEnergyAsc;
    case search::CostMetric::kSize:
      return CandidateOrder::kSizeAsc;
    case search::CostMetric::kBitops:
      return CandidateOrder::kBitopsAsc;
  }
  return CandidateOrder::kLatencyAsc;
}

absl::StatusOr<CandidateOrder> CandidateOrderFromProto(apq::v1::SortMetric metric,
                                                       absl::string_view field) {
  switch (metric) {
    case apq::v1::SORT_METRIC_UNSPECIFIED:
      return CandidateOrder::kId;
    case apq::v1::SORT_METRIC_ACCURACY:
      return CandidateOrder::kAccuracyDesc;
    case apq::v1::SORT_METRIC_LATENCY:
      return CandidateOrder::kLatencyAsc;
    case apq::v1::SORT_METRIC_ENERGY:
      return CandidateOrder::kEnergyAsc;
    case apq::v1::SORT_METRIC_SIZE:
      return CandidateOrder::kSizeAsc;
    case apq::v1::SORT_METRIC_BITOPS:
      return CandidateOrder::kBitopsAsc;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": unknown value ", static_cast<int>(metric)));
  }
}

std::optional<double> CandidateCost(const CandidateRecord& candidate, search::CostMetric metric) {
  switch (metric) {
    case search::CostMetric::kLatency:
      return candidate.latency_ms;
    case search::CostMetric::kEnergy:
      return candidate.energy_mj;
    case search::CostMetric::kSize:
      return candidate.size_mb;
    case search::CostMetric::kBitops:
      return candidate.bitops;
  }
  return std::nullopt;
}

}  // namespace apq::server
