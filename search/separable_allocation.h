// Bit allocation with a separable loss model (after QBitOpt, Peters et al. 2023): minimise
// the sum of each slot's chosen sensitivity under hard linear budgets, one choice per slot.
// The convex relaxation (choices may be fractional) is solved through its Lagrangian: for a
// multiplier l every slot independently takes the choice minimising sensitivity + l * cost,
// and bisection finds the smallest l whose choices meet every budget. Rounding keeps
// feasibility: the integral choices at that l meet the budgets by construction; a greedy pass
// then spends what is left of the budgets on the upgrades that lower the sensitivity most per
// unit of cost, taking only upgrades that keep every budget. The result always meets every
// budget; the Lagrangian gives a lower bound on any policy's objective.
//
// With several budgets the multiplier prices their sum, each cost divided by its budget's
// slack (limit minus fixed part), which is a valid relaxation of them all; the choices are
// checked against each budget.
#ifndef APQ_SEARCH_SEPARABLE_ALLOCATION_H_
#define APQ_SEARCH_SEPARABLE_ALLOCATION_H_

#include <vector>

#include "absl/status/statusor.h"
#include "search/allocation_budget.h"

namespace apq::search {

struct SeparableAllocation {
  std::vector<int> choices_per_slot;  // Each >= 1.
  std::vector<double> sensitivity;    // Per flattened choice (allocation_budget.h); finite.
  std::vector<AllocationBudget> budgets;

  int num_choices() const;
  // The sum of the chosen sensitivities.
  double Objective(const std::vector<int>& choice) const;
  // Fixed part plus chosen costs of `budget`.
  double Cost(const AllocationBudget& budget, const std::vector<int>& choice) const;
};

struct SeparableResult {
  std::vector<int> choice;  // Per slot; meets every budget.
  double objective = 0;     // Of `choice`.
  // No policy meeting the budgets has a lower objective (the best Lagrangian dual value).
  double lower_bound = 0;
  double multiplier = 0;  // The multiplier whose choices were rounded (0: unconstrained).
};

// INVALID_ARGUMENT for a malformed problem (sizes, a non-finite sensitivity, a negative or
// non-finite cost or limit); FAILED_PRECONDITION naming the budget when the fixed part alone
// reaches it, or when even the cheapest choices (at the largest multiplier) break a budget.
absl::StatusOr<SeparableResult> SolveSeparableAllocation(const SeparableAllocation& problem);

}  // namespace apq::search

#endif  // APQ_SEARCH_SEPARABLE_ALLOCATION_H_
