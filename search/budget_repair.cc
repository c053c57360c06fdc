#include "search/budget_repair.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace apq::search {
namespace {

struct Layout {
  std::vector<int> offsets;
  int total = 0;
};

Layout LayoutOf(const std::vector<int>& choices_per_slot) {
  Layout layout;
  for (const int count : choices_per_slot) {
    layout.offsets.push_back(layout.total);
    layout.total += count;
  }
  return layout;
}

double Cost(const AllocationBudget& budget, const Layout& layout, const std::vector<int>& choice) {
  double total = budget.fixed;
  for (size_t s = 0; s < choice.size(); ++s) total += budget.costs[layout.offsets[s] + choice[s]];
  return total;
}

// Sum over budgets of the cost above the limit, each divided by its limit.
double Excess(const RepairProblem& problem, const Layout& layout, const std::vector<int>& choice) {
  double excess = 0.0;
  for (const AllocationBudget& budget : problem.budgets) {
    const double over = Cost(budget, layout, choice) - budget.limit;
    if (over > 0) excess += over / std::max(budget.limit, 1e-300);
  }
  return excess;
}

absl::Status Validate(const RepairProblem& problem, const Layout& layout,
                      const std::vector<int>& policy) {
  if (problem.choices_per_slot.empty()) return absl::InvalidArgumentError("repair: no slots");
  for (const int count : problem.choices_per_slot) {
    if (count < 1) return absl::InvalidArgumentError("repair: a slot without choices");
  }
  if (policy.size() != problem.choices_per_slot.size()) {
    return absl::InvalidArgumentError(absl::StrCat("repair: a policy of ", policy.size(),
                                                   " slots for ", problem.choices_per_slot.size()));
  }
  for (size_t s = 0; s < policy.size(); ++s) {
    if (policy[s] < 0 || policy[s] >= problem.choices_per_slot[s]) {
      return absl::InvalidArgumentError(
          absl::StrCat("repair: slot ", s, "'s choice ", policy[s], " is out of range"));
    }
  }
  if (problem.preference.size() != static_cast<size_t>(layout.total)) {
    return absl::InvalidArgumentError(absl::StrCat("repair: ", problem.preference.size(),
                                                   " preferences for ", layout.total, " choices"));
  }
  for (const double value : problem.preference) {
    if (!std::isfinite(value)) {
      return absl::InvalidArgumentError("repair: a preference is not finite");
    }
  }
  for (const AllocationBudget& budget : problem.budgets) {
    if (budget.costs.size() != static_cast<size_t>(layout.total) || !std::isfinite(budget.limit) ||
        !std::isfinite(budget.fixed) || budget.limit < 0 || budget.fixed < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(budget.name,
                       ": costs, limit and fixed part must fit the slots, be "
                       "finite and >= 0"));
    }
    for (const double cost : budget.costs) {
      if (!std::isfinite(cost) || cost < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(budget.name, ": a cost is negative or not finite"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RepairResult> RepairToBudgets(const RepairProblem& problem,
                                             const std::vector<int>& policy) {
  const Layout layout = LayoutOf(problem.choices_per_slot);
  if (absl::Status status = Validate(problem, layout, policy); !status.ok()) return status;
  RepairResult result;
  result.choice = policy;
  if (Excess(problem, layout, policy) == 0.0) return result;
  result.repaired = true;

  // Per slot, its cheapest choice over every budget (each cost divided by its limit).
  const size_t slots = policy.size();
  std::vector<int> cheapest(slots, 0);
  for (size_t s = 0; s < slots; ++s) {
    double best = std::numeric_limits<double>::infinity();
    for (int c = 0; c < problem.choices_per_slot[s]; ++c) {
      double scaled = 0.0;
      for (const AllocationBudget& budget : problem.budgets) {
        scaled += budget.costs[layout.offsets[s] + c] / std::max(budget.limit, 1e-300);
      }
      if (scaled < best) {
        best = scaled;
        cheapest[s] = c;
      }
    }
  }

  // 1. Fewest changes.
  std::vector<bool> changed(slots, false);
  std::vector<int> order;  // Slots in the order they were changed.
  double excess = Excess(problem, layout, result.choice);
  while (excess > 0.0) {
    int best_slot = -1;
    double best_excess = excess;
    for (size_t s = 0; s < slots; ++s) {
      if (changed[s] || result.choice[s] == cheapest[s]) continue;
      std::vector<int> trial = result.choice;
      trial[s] = cheapest[s];
      const double trial_excess = Excess(problem, layout, trial);
      if (trial_excess < best_excess) {
        best_excess = trial_excess;
        best_slot = static_cast<int>(s);
      }
    }
    if (best_slot < 0) break;
    result.choice[best_slot] = cheapest[best_slot];
    changed[best_slot] = true;
    order.push_back(best_slot);
    excess = best_excess;
  }
  if (excess > 0.0) {
    for (const AllocationBudget& budget : problem.budgets) {
      const double cost = Cost(budget, layout, cheapest);
      if (cost > budget.limit) {
        return absl::FailedPreconditionError(absl::StrFormat(
            "%s: %.6g is below the cheapest policy (%.6g)", budget.name, budget.limit, cost));
      }
    }
    return absl::FailedPreconditionError(
        "repair: no policy of the slots' cheapest choices meets every budget at once");
  }

  // 2. Least loss: each changed slot to its most preferred choice that keeps every budget
  // (its original one first).
  for (const int s : order) {
    std::vector<int> candidates(problem.choices_per_slot[s]);
    for (int c = 0; c < problem.choices_per_slot[s]; ++c) candidates[c] = c;
    const int offset = layout.offsets[s];
    std::stable_sort(candidates.begin(), candidates.end(), [&](int a, int b) {
      if ((a == policy[s]) != (b == policy[s])) return a == policy[s];
      return problem.preference[offset + a] > problem.preference[offset + b];
    });
    for (const int c : candidates) {
      std::vector<int> trial = result.choice;
      trial[s] = c;
      if (Excess(problem, layout, trial) == 0.0) {
        result.choice[s] = c;
        break;
      }
    }
  }
  for (size_t s = 0; s < slots; ++s) result.changed_slots += result.choice[s] != policy[s];
  return result;
}

}  // namespace apq::search
