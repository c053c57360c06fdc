// Repair of a policy that misses its hard budgets: what engines whose relaxed search may end
// outside the budgets (differentiable search: the most likely policy of its distributions)
// return instead, saying that they repaired it. Over per-slot choices with per-term costs
// (search/allocation_budget.h):
//   1. Fewest changes: while a budget is broken, the one slot not yet changed whose move to
//      its cheapest choice (cost summed over the budgets, each divided by its limit) lowers
//      the budgets' total excess the most is moved there. With one budget this changes the
//      fewest slots any repair can (the largest reductions first).
//   2. Least loss: each changed slot then takes, of its choices, the one the caller prefers
//      most (`preference`, e.g. its probability under the search's distribution) that keeps
//      every budget, the others held; its original choice counts as preferred most, so a
//      slot whose change turned out unneeded goes back.
#ifndef APQ_SEARCH_BUDGET_REPAIR_H_
#define APQ_SEARCH_BUDGET_REPAIR_H_

#include <vector>

#include "absl/status/statusor.h"
#include "search/allocation_budget.h"

namespace apq::search {

struct RepairProblem {
  std::vector<int> choices_per_slot;  // Each >= 1.
  std::vector<AllocationBudget> budgets;
  // Per flattened choice: higher is preferred (finite).
  std::vector<double> preference;
};

struct RepairResult {
  std::vector<int> choice;  // Meets every budget.
  int changed_slots = 0;    // Slots whose choice differs from the policy given.
  bool repaired = false;    // The policy given broke a budget.
};

// INVALID_ARGUMENT for a malformed problem or policy (sizes, a choice out of range, a
// negative or non-finite cost, limit or preference); FAILED_PRECONDITION naming the budget
// when even every slot at its cheapest choice breaks it.
absl::StatusOr<RepairResult> RepairToBudgets(const RepairProblem& problem,
                                             const std::vector<int>& policy);

}  // namespace apq::search

#endif  // APQ_SEARCH_BUDGET_REPAIR_H_
