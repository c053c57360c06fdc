// The one mapping between the API's metrics, the search's cost metrics and the store's
// candidate orders and figures.
#ifndef APQ_SERVER_CANDIDATE_METRICS_H_
#define APQ_SERVER_CANDIDATE_METRICS_H_

#include <optional>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/apq/v1/apq.pb.h"
#include "search/budgets.h"
#include "server/store/records.h"

namespace apq::server {

// The API's cost metric (UNSPECIFIED = latency); INVALID_ARGUMENT naming `field` for an
// unknown value.
absl::StatusOr<search::CostMetric> CostMetricFromProto(apq::v1::CostMetric metric,
                                                       absl::string_view field);

// The candidate order by ascending `metric`.
CandidateOrder AscendingOrder(search::CostMetric metric);

// The API's sort order (UNSPECIFIED = order of evaluation); INVALID_ARGUMENT naming `field`
// for an unknown value.
absl::StatusOr<CandidateOrder> CandidateOrderFromProto(apq::v1::SortMetric metric,
                                                       absl::string_view field);

// The candidate's figure of `metric`; unset when it has none.
std::optional<double> CandidateCost(const CandidateRecord& candidate, search::CostMetric metric);

}  // namespace apq::server

#endif  // APQ_SERVER_CANDIDATE_METRICS_H_
