#include "search/budget_repair.h"

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace apq::search {
namespace {

using ::testing::HasSubstr;

double Cost(const RepairProblem& problem, const AllocationBudget& budget,
            const std::vector<int>& choice) {
  double total = budget.fixed;
  int offset = 0;
  for (size_t s = 0; s < choice.size(); ++s) {
    total += budget.costs[offset + choice[s]];
    offset += problem.choices_per_slot[s];
  }
  return total;
}

bool Meets(const RepairProblem& problem, const std::vector<int>& choice) {
  for (const AllocationBudget& budget : problem.budgets) {
    if (Cost(problem, budget, choice) > budget.limit) return false;
  }
  return true;
}

// The fewest slots any policy meeting the budgets changes from `policy` (brute force), or -1.
int FewestChanges(const RepairProblem& problem, const std::vector<int>& policy) {
  const size_t slots = policy.size();
  std::vector<int> choice(slots, 0);
  int fewest = -1;
  while (true) {
    if (Meets(problem, choice)) {
      int changes = 0;
      for (size_t s = 0; s < slots; ++s) changes += choice[s] != policy[s];
      if (fewest < 0 || changes < fewest) fewest = changes;
    }
    size_t s = 0;
    while (s < slots && ++choice[s] == problem.choices_per_slot[s]) choice[s++] = 0;
    if (s == slots) break;
  }
  return fewest;
}

// Bits {2, 3, 4, 8} on 5 layers of random sizes, one budget between the cheapest and dearest
// policies, and a random policy to repair.
RepairProblem RandomProblem(std::mt19937_64& random, std::vector<int>* policy) {
  RepairProblem problem;
  const std::vector<int> bits = {2, 3, 4, 8};
  AllocationBudget budget{"max_bitops", 0.0, 2.0, {}};
  double cheapest = budget.fixed;
  double dearest = budget.fixed;
  std::uniform_real_distribution<double> size(0.5, 5.0);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  policy->clear();
  for (int s = 0; s < 5; ++s) {
    problem.choices_per_slot.push_back(4);
    const double layer = size(random);
    for (const int b : bits) {
      budget.costs.push_back(layer * b);
      problem.preference.push_back(unit(random));
    }
    cheapest += layer * 2;
    dearest += layer * 8;
    policy->push_back(static_cast<int>(random() % 4));
  }
  budget.limit = cheapest + unit(random) * (dearest - cheapest);
  problem.budgets = {budget};
  return problem;
}

TEST(BudgetRepairTest, OneBudgetIsMetWithTheFewestChanges) {
  std::mt19937_64 random(11);
  int repaired = 0;
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<int> policy;
    const RepairProblem problem = RandomProblem(random, &policy);
    const RepairResult result = RepairToBudgets(problem, policy).value();
    EXPECT_TRUE(Meets(problem, result.choice)) << trial;
    EXPECT_EQ(result.repaired, !Meets(problem, policy));
    EXPECT_EQ(result.changed_slots, FewestChanges(problem, policy)) << trial;
    if (!result.repaired) EXPECT_EQ(result.choice, policy);
    repaired += result.repaired;
  }
  EXPECT_GT(repaired, 50);  // The draws break the budget often enough to test the repair.
}

TEST(BudgetRepairTest, AChangedSlotTakesItsMostPreferredChoiceThatFits) {
  RepairProblem problem;
  problem.choices_per_slot = {3, 3};
  // Slot 0 is the big one: changing it alone suffices.
  problem.budgets = {AllocationBudget{"max_size_mb", 14.0, 0.0, {2, 4, 8, 1, 2, 4}}};
  problem.preference = {0.1, 0.9, 0.5, 0.3, 0.3, 0.3};
  // At {2, 2}: 8 + 4 = 12 fits.
  EXPECT_FALSE(RepairToBudgets(problem, {2, 2}).value().repaired);
  problem.budgets[0].limit = 9.0;  // 12 > 9: slot 0 to its cheapest (2) would give 6; its
                                   // preferred 4 gives 8 and fits.
  const RepairResult result = RepairToBudgets(problem, {2, 2}).value();
  EXPECT_TRUE(result.repaired);
  EXPECT_EQ(result.choice, (std::vector<int>{1, 2}));
  EXPECT_EQ(result.changed_slots, 1);
}

TEST(BudgetRepairTest, RefusesMalformedInputAndImpossibleBudgets) {
  RepairProblem problem;
  problem.choices_per_slot = {2};
  problem.budgets = {AllocationBudget{"max_bitops", 10.0, 1.0, {2.0, 4.0}}};
  problem.preference = {0.0, 1.0};
  EXPECT_EQ(RepairToBudgets(problem, {2}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RepairToBudgets(problem, {0, 0}).status().code(), absl::StatusCode::kInvalidArgument);
  RepairProblem bad = problem;
  bad.preference[0] = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(RepairToBudgets(bad, {1}).status().code(), absl::StatusCode::kInvalidArgument);
  bad = problem;
  bad.budgets[0].costs[0] = -1;
  EXPECT_THAT(RepairToBudgets(bad, {1}).status().message(), HasSubstr("max_bitops"));
  bad = problem;
  bad.budgets[0].limit = 2.5;  // Below the cheapest (1 + 2).
  const absl::Status impossible = RepairToBudgets(bad, {1}).status();
  EXPECT_EQ(impossible.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(impossible.message(), HasSubstr("max_bitops"));
}

}  // namespace
}  // namespace apq::search
