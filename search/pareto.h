// Domain rules for a finished search's record: which candidates form the Pareto front of
// accuracy against one cost, and which candidate is the best. Pure functions over plain
// points, so every store backend persists the same answer and tests need no database.
#ifndef APQ_SEARCH_PARETO_H_
#define APQ_SEARCH_PARETO_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/types/span.h"

namespace apq::search {

// One scored, feasible candidate as the front sees it. Points are given in the order they
// were stored; that order breaks ties.
struct FrontPoint {
  double cost = 0.0;  // Finite.
  double accuracy = 0.0;
};

// Indices (into `points`) of the Pareto front, by ascending cost: points are taken by
// ascending cost, higher accuracy first among equal costs, then in the given order; a point
// joins the front when its accuracy is strictly above every point taken before it. So each
// front point is the first-stored one of its (cost, accuracy), and no front point is
// dominated by another candidate. Points with a NaN or infinite cost or a NaN accuracy are
// skipped (a cost the device cannot price is no point of the front).
std::vector<size_t> ParetoFront(absl::Span<const FrontPoint> points);

// True when a candidate of `accuracy` replaces the current best of `best_accuracy`: only a
// strictly higher accuracy does, so among equals the first one found stays the best.
inline bool ReplacesBest(double accuracy, std::optional<double> best_accuracy) {
  return !best_accuracy.has_value() || accuracy > *best_accuracy;
}

// A finalist of a verification stage: a candidate measured after the search.
struct MeasuredFinalist {
  double measured_accuracy = 0.0;
  double predicted_accuracy = 0.0;
  int64_t id = 0;  // The candidate's row id: lower was stored earlier.
};

// Index (into `finalists`) of the verified best: the highest measured accuracy; among equals
// the higher predicted one, then the lower id. Unset for no finalist.
std::optional<size_t> VerifiedBest(absl::Span<const MeasuredFinalist> finalists);

}  // namespace apq::search

#endif  // APQ_SEARCH_PARETO_H_
