#include "search/separable_allocation.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace apq::search {
namespace {

constexpr int kBisectionSteps = 100;
constexpr double kLargestMultiplier = 1e15;

absl::Status Validate(const SeparableAllocation& problem) {
  if (problem.choices_per_slot.empty()) {
    return absl::InvalidArgumentError("allocation: no slots");
  }
  for (const int count : problem.choices_per_slot) {
    if (count < 1) return absl::InvalidArgumentError("allocation: a slot without choices");
  }
  const size_t n = static_cast<size_t>(problem.num_choices());
  if (problem.sensitivity.size() != n) {
    return absl::InvalidArgumentError(absl::StrCat("allocation: ", problem.sensitivity.size(),
                                                   " sensitivities for ", n, " choices"));
  }
  for (const double value : problem.sensitivity) {
    if (!std::isfinite(value)) {
      return absl::InvalidArgumentError("allocation: a sensitivity is not finite");
    }
  }
  for (const AllocationBudget& budget : problem.budgets) {
    if (budget.costs.size() != n) {
      return absl::InvalidArgumentError(
          absl::StrCat(budget.name, ": ", budget.costs.size(), " costs for ", n, " choices"));
    }
    if (!std::isfinite(budget.limit) || !std::isfinite(budget.fixed) || budget.limit < 0 ||
        budget.fixed < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(budget.name, ": the limit and fixed part must be finite and >= 0"));
    }
    for (const double cost : budget.costs) {
      if (!std::isfinite(cost) || cost < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(budget.name, ": a cost is negative or not finite"));
      }
    }
    if (budget.fixed >= budget.limit) {
      return absl::FailedPreconditionError(
          absl::StrFormat("%s: the fixed part (%.6g) alone reaches the limit %.6g", budget.name,
                          budget.fixed, budget.limit));
    }
  }
  return absl::OkStatus();
}

// The problem in the multiplier's units: sensitivities divided by their largest magnitude,
// and per choice the sum over budgets of its cost divided by the budget's slack.
struct Scaled {
  std::vector<int> offsets;
  std::vector<double> sensitivity;
  std::vector<double> cost;
  double sensitivity_scale = 1.0;
  // The scaled budgets' total: one per budget.
  double capacity = 0.0;
};

Scaled Scale(const SeparableAllocation& problem) {
  Scaled scaled;
  int offset = 0;
  for (const int count : problem.choices_per_slot) {
    scaled.offsets.push_back(offset);
    offset += count;
  }
  double largest = 0.0;
  for (const double value : problem.sensitivity) largest = std::max(largest, std::fabs(value));
  scaled.sensitivity_scale = largest > 0 ? largest : 1.0;
  for (const double value : problem.sensitivity) {
    scaled.sensitivity.push_back(value / scaled.sensitivity_scale);
  }
  scaled.cost.assign(problem.sensitivity.size(), 0.0);
  for (const AllocationBudget& budget : problem.budgets) {
    const double slack = budget.limit - budget.fixed;
    for (size_t i = 0; i < budget.costs.size(); ++i) scaled.cost[i] += budget.costs[i] / slack;
    scaled.capacity += 1.0;
  }
  return scaled;
}

// Per slot the choice minimising sensitivity + multiplier * cost (ties: the cheaper, then the
// first); the Lagrangian dual value (scaled) in `dual`.
std::vector<int> Pick(const SeparableAllocation& problem, const Scaled& scaled, double multiplier,
                      double* dual) {
  std::vector<int> choice(problem.choices_per_slot.size(), 0);
  double value = -multiplier * scaled.capacity;
  for (size_t s = 0; s < choice.size(); ++s) {
    const int offset = scaled.offsets[s];
    double best = std::numeric_limits<double>::infinity();
    for (int c = 0; c < problem.choices_per_slot[s]; ++c) {
      const double priced = scaled.sensitivity[offset + c] + multiplier * scaled.cost[offset + c];
      if (priced < best ||
          (priced == best && scaled.cost[offset + c] < scaled.cost[offset + choice[s]])) {
        best = priced;
        choice[s] = c;
      }
    }
    value += best;
  }
  *dual = value;
  return choice;
}

bool MeetsEvery(const SeparableAllocation& problem, const std::vector<int>& choice) {
  for (const AllocationBudget& budget : problem.budgets) {
    if (problem.Cost(budget, choice) > budget.limit) return false;
  }
  return true;
}

}  // namespace

int SeparableAllocation::num_choices() const {
  int total = 0;
  for (const int count : choices_per_slot) total += count;
  return total;
}

double SeparableAllocation::Objective(const std::vector<int>& choice) const {
  double total = 0.0;
  int offset = 0;
  for (size_t s = 0; s < choice.size(); ++s) {
    total += sensitivity[offset + choice[s]];
    offset += choices_per_slot[s];
  }
  return total;
}

double SeparableAllocation::Cost(const AllocationBudget& budget,
                                 const std::vector<int>& choice) const {
  double total = budget.fixed;
  int offset = 0;
  for (size_t s = 0; s < choice.size(); ++s) {
    total += budget.costs[offset + choice[s]];
    offset += choices_per_slot[s];
  }
  return total;
}

absl::StatusOr<SeparableResult> SolveSeparableAllocation(const SeparableAllocation& problem) {
  if (absl::Status status = Validate(problem); !status.ok()) return status;
  const Scaled scaled = Scale(problem);
  SeparableResult result;
  double best_dual = -std::numeric_limits<double>::infinity();
  double dual = 0.0;
  std::vector<int> choice = Pick(problem, scaled, 0.0, &dual);
  best_dual = std::max(best_dual, dual);
  if (!MeetsEvery(problem, choice)) {
    // The smallest feasible multiplier: bracket it by doubling, then bisect.
    double low = 0.0;
    double high = 1.0;
    std::vector<int> feasible = Pick(problem, scaled, high, &dual);
    best_dual = std::max(best_dual, dual);
    while (!MeetsEvery(problem, feasible)) {
      low = high;
      high *= 2.0;
      if (high > kLargestMultiplier) {
        for (const AllocationBudget& budget : problem.budgets) {
          if (problem.Cost(budget, feasible) > budget.limit) {
            return absl::FailedPreconditionError(
                absl::StrFormat("%s: %.6g is below the cheapest policy found (%.6g)", budget.name,
                                budget.limit, problem.Cost(budget, feasible)));
          }
        }
      }
      feasible = Pick(problem, scaled, high, &dual);
      best_dual = std::max(best_dual, dual);
    }
    for (int step = 0; step < kBisectionSteps; ++step) {
      const double middle = 0.5 * (low + high);
      if (middle <= low || middle >= high) break;
      std::vector<int> picked = Pick(problem, scaled, middle, &dual);
      best_dual = std::max(best_dual, dual);
      if (MeetsEvery(problem, picked)) {
        high = middle;
        feasible = std::move(picked);
      } else {
        low = middle;
      }
    }
    choice = std::move(feasible);
    result.multiplier = high;

    // Spend what is left: the upgrade with the largest sensitivity decrease per unit of
    // (scaled) cost that keeps every budget, until none does.
    while (true) {
      int best_slot = -1;
      int best_choice = -1;
      double best_ratio = 0.0;
      for (size_t s = 0; s < choice.size(); ++s) {
        const int offset = scaled.offsets[s];
        const int current = choice[s];
        for (int c = 0; c < problem.choices_per_slot[s]; ++c) {
          const double gain = scaled.sensitivity[offset + current] - scaled.sensitivity[offset + c];
          if (gain <= 0) continue;
          const double added = scaled.cost[offset + c] - scaled.cost[offset + current];
          const double ratio = added <= 0 ? std::numeric_limits<double>::infinity() : gain / added;
          if (ratio <= best_ratio) continue;
          std::vector<int> trial = choice;
          trial[s] = c;
          if (!MeetsEvery(problem, trial)) continue;
          best_ratio = ratio;
          best_slot = static_cast<int>(s);
          best_choice = c;
        }
      }
      if (best_slot < 0) break;
      choice[best_slot] = best_choice;
    }
  }
  result.choice = std::move(choice);
  result.objective = problem.Objective(result.choice);
  result.lower_bound = std::min(best_dual * scaled.sensitivity_scale, result.objective);
  return result;
}

}  // namespace apq::search
