#include "search/separable_allocation.h"

#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace apq::search {
namespace {

using ::testing::HasSubstr;

// Every policy's objective: the optimum meeting every budget, or infinity when none does.
double BruteForceOptimum(const SeparableAllocation& problem) {
  const size_t slots = problem.choices_per_slot.size();
  std::vector<int> choice(slots, 0);
  double best = std::numeric_limits<double>::infinity();
  while (true) {
    bool feasible = true;
    for (const AllocationBudget& budget : problem.budgets) {
      feasible = feasible && problem.Cost(budget, choice) <= budget.limit;
    }
    if (feasible) best = std::min(best, problem.Objective(choice));
    size_t s = 0;
    while (s < slots && ++choice[s] == problem.choices_per_slot[s]) choice[s++] = 0;
    if (s == slots) break;
  }
  return best;
}

// Bits {2, 3, 4, 8} per slot: costs grow with the bits, sensitivities fall, as a real layer's.
SeparableAllocation RandomBitProblem(std::mt19937_64& random, int slots, int budgets) {
  SeparableAllocation problem;
  std::uniform_real_distribution<double> size(0.5, 4.0);
  std::uniform_real_distribution<double> weight(0.1, 10.0);
  const std::vector<int> bits = {2, 3, 4, 8};
  for (int s = 0; s < slots; ++s) {
    problem.choices_per_slot.push_back(4);
    const double layer_weight = weight(random);
    for (const int b : bits) problem.sensitivity.push_back(layer_weight * std::pow(4.0, -b));
  }
  for (int k = 0; k < budgets; ++k) {
    AllocationBudget budget;
    budget.name = "budget" + std::to_string(k);
    budget.fixed = 1.0;
    double cheapest = budget.fixed;
    double dearest = budget.fixed;
    for (int s = 0; s < slots; ++s) {
      const double layer_size = size(random);
      for (const int b : bits) budget.costs.push_back(layer_size * b * (k + 1));
      cheapest += layer_size * 2 * (k + 1);
      dearest += layer_size * 8 * (k + 1);
    }
    budget.limit =
        cheapest + std::uniform_real_distribution<double>(0.05, 0.6)(random) * (dearest - cheapest);
    problem.budgets.push_back(budget);
  }
  return problem;
}

TEST(SeparableAllocationTest, AlwaysMeetsTheBudgetsAndBracketsTheOptimum) {
  std::mt19937_64 random(7);
  int optimal = 0;
  for (int trial = 0; trial < 200; ++trial) {
    const SeparableAllocation problem = RandomBitProblem(random, 6, 1 + trial % 2);
    const SeparableResult result = SolveSeparableAllocation(problem).value();
    for (const AllocationBudget& budget : problem.budgets) {
      EXPECT_LE(problem.Cost(budget, result.choice), budget.limit) << trial;
    }
    const double optimum = BruteForceOptimum(problem);
    EXPECT_DOUBLE_EQ(result.objective, problem.Objective(result.choice));
    EXPECT_GE(result.objective, optimum - 1e-15);
    EXPECT_LE(result.lower_bound, optimum + 1e-15) << trial;
    if (result.objective <= optimum * (1 + 1e-12)) ++optimal;
  }
  // Rounding the relaxation is a heuristic, but on layer-like problems it is mostly exact.
  EXPECT_GT(optimal, 120);
}

TEST(SeparableAllocationTest, WithoutABindingBudgetEachSlotTakesItsLeastSensitiveChoice) {
  SeparableAllocation problem;
  problem.choices_per_slot = {2, 3};
  problem.sensitivity = {1.0, 0.5, 3.0, 0.25, 2.0};
  AllocationBudget budget{"max_bitops", 100.0, 1.0, {1, 2, 1, 2, 3}};
  problem.budgets = {budget};
  const SeparableResult result = SolveSeparableAllocation(problem).value();
  EXPECT_EQ(result.choice, (std::vector<int>{1, 1}));
  EXPECT_EQ(result.multiplier, 0.0);
  EXPECT_DOUBLE_EQ(result.lower_bound, 0.75);

  // Tight: only the cheapest choices fit.
  problem.budgets[0].limit = 3.0;
  const SeparableResult tight = SolveSeparableAllocation(problem).value();
  EXPECT_EQ(tight.choice, (std::vector<int>{0, 0}));
  EXPECT_GT(tight.multiplier, 0.0);
}

TEST(SeparableAllocationTest, RefusesMalformedOrImpossibleProblems) {
  SeparableAllocation problem;
  problem.choices_per_slot = {2};
  problem.sensitivity = {1.0, 0.5};
  problem.budgets = {AllocationBudget{"max_size_mb", 10.0, 1.0, {2.0, 4.0}}};
  ASSERT_TRUE(SolveSeparableAllocation(problem).ok());

  SeparableAllocation bad = problem;
  bad.sensitivity = {1.0};
  EXPECT_EQ(SolveSeparableAllocation(bad).status().code(), absl::StatusCode::kInvalidArgument);
  bad = problem;
  bad.sensitivity[0] = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(SolveSeparableAllocation(bad).status().code(), absl::StatusCode::kInvalidArgument);
  bad = problem;
  bad.budgets[0].costs[1] = -1.0;
  EXPECT_THAT(SolveSeparableAllocation(bad).status().message(), HasSubstr("max_size_mb"));
  bad = problem;
  bad.choices_per_slot = {0, 2};
  EXPECT_EQ(SolveSeparableAllocation(bad).status().code(), absl::StatusCode::kInvalidArgument);

  bad = problem;
  bad.budgets[0].limit = 2.5;  // Below the cheapest choice (1 + 2).
  const absl::Status below = SolveSeparableAllocation(bad).status();
  EXPECT_EQ(below.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(below.message(), HasSubstr("max_size_mb"));
  bad.budgets[0].limit = 1.0;  // The fixed part alone.
  EXPECT_EQ(SolveSeparableAllocation(bad).status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace apq::search
