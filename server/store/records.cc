#include "server/store/records.h"

namespace apq::server {

bool IsTerminal(JobState state) {
  return state == JobState::kSucceeded || state == JobState::kFailed ||
         state == JobState::kCancelled;
}

std::optional<double> CandidateRecord::*CandidateOrderMetric(CandidateOrder order) {
  switch (order) {
    case CandidateOrder::kAccuracyDesc:
      return &CandidateRecord::accuracy;
    case CandidateOrder::kLatencyAsc:
      return &CandidateRecord::latency_ms;
    case CandidateOrder::kEnergyAsc:
      return &CandidateRecord::energy_mj;
    case CandidateOrder::kSizeAsc:
      return &CandidateRecord::size_mb;
    case CandidateOrder::kBitopsAsc:
      return &CandidateRecord::bitops;
    case CandidateOrder::kId:
      break;
  }
  return nullptr;
}

}  // namespace apq::server
