#include "server/running_front.h"

#include <algorithm>
#include <cstddef>
#include <optional>

#include "server/candidate_metrics.h"

namespace apq::server {

void RunningFront::Add(const std::vector<CandidateRecord>& candidates,
                       const std::vector<int64_t>& ids) {
  std::vector<std::pair<int64_t, search::FrontPoint>> points = front_;
  for (size_t i = 0; i < candidates.size() && i < ids.size(); ++i) {
    const CandidateRecord& candidate = candidates[i];
    if (!candidate.feasible || !candidate.accuracy.has_value()) continue;
    const std::optional<double> cost = CandidateCost(candidate, cost_);
    if (!cost.has_value()) continue;
    points.push_back({ids[i], {*cost, *candidate.accuracy}});
  }
  // Id order breaks ParetoFront's ties, as the stored rows' order does; a network met again
  // (its earlier id) is one point.
  std::sort(points.begin(), points.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  points.erase(std::unique(points.begin(), points.end(),
                           [](const auto& a, const auto& b) { return a.first == b.first; }),
               points.end());
  std::vector<search::FrontPoint> plain;
  plain.reserve(points.size());
  for (const auto& point : points) plain.push_back(point.second);
  front_.clear();
  front_ids_.clear();
  for (const size_t index : search::ParetoFront(plain)) {
    front_ids_.push_back(points[index].first);
    front_.push_back(points[index]);
  }
  std::sort(front_.begin(), front_.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
}

}  // namespace apq::server
