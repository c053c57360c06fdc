#include "search/pareto.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace apq::search {

std::vector<size_t> ParetoFront(absl::Span<const FrontPoint> points) {
  std::vector<size_t> order;
  order.reserve(points.size());
  for (size_t i = 0; i < points.size(); ++i) {
    if (std::isfinite(points[i].cost) && !std::isnan(points[i].accuracy)) order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (points[a].cost != points[b].cost) return points[a].cost < points[b].cost;
    return points[a].accuracy > points[b].accuracy;
  });
  std::vector<size_t> front;
  double best_accuracy = -std::numeric_limits<double>::infinity();
  for (const size_t index : order) {
    if (points[index].accuracy > best_accuracy) {
      best_accuracy = points[index].accuracy;
      front.push_back(index);
    }
  }
  return front;
}

std::optional<size_t> VerifiedBest(absl::Span<const MeasuredFinalist> finalists) {
  std::optional<size_t> best;
  for (size_t i = 0; i < finalists.size(); ++i) {
    const MeasuredFinalist& candidate = finalists[i];
    if (best.has_value()) {
      const MeasuredFinalist& held = finalists[*best];
      if (candidate.measured_accuracy != held.measured_accuracy) {
        if (candidate.measured_accuracy < held.measured_accuracy) continue;
      } else if (candidate.predicted_accuracy != held.predicted_accuracy) {
        if (candidate.predicted_accuracy < held.predicted_accuracy) continue;
      } else if (candidate.id >= held.id) {
        continue;
      }
    }
    best = i;
  }
  return best;
}

}  // namespace apq::search
