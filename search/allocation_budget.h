// A hard linear budget of a bit allocation: what every allocator (quadratic_allocation,
// separable_allocation) takes for size, BitOps, latency or energy, each a fixed part plus one
// cost per chosen choice (hwmodels/cost_terms).
#ifndef APQ_SEARCH_ALLOCATION_BUDGET_H_
#define APQ_SEARCH_ALLOCATION_BUDGET_H_

#include <string>
#include <vector>

namespace apq::search {

// Choices are flattened slot by slot: slot s's choice c is the entry at the sum of the
// earlier slots' choice counts plus c.
struct AllocationBudget {
  std::string name;  // Names the budget in errors, e.g. "max_bitops".
  double limit = 0;
  double fixed = 0;           // The cost no choice changes.
  std::vector<double> costs;  // Per flattened choice.
};

}  // namespace apq::search

#endif  // APQ_SEARCH_ALLOCATION_BUDGET_H_
