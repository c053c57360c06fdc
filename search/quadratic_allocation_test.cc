#include "search/quadratic_allocation.h"

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace apq::search {
namespace {

using ::testing::HasSubstr;

// A random problem: symmetric G with both signs (or only its diagonal), `budgets` budgets
// whose limits lie between the cheapest and the dearest policy.
QuadraticAllocation RandomProblem(uint64_t seed, int slots, int max_choices, int budgets,
                                  bool diagonal_only) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> unit(0, 1);
  QuadraticAllocation problem;
  for (int s = 0; s < slots; ++s) {
    problem.choices_per_slot.push_back(1 + static_cast<int>(rng() % max_choices));
  }
  const int n = problem.num_choices();
  problem.g.assign(static_cast<size_t>(n) * n, 0.0);
  for (int i = 0; i < n; ++i) {
    for (int j = i; j < n; ++j) {
      if (diagonal_only && i != j) continue;
      const double value = unit(rng) * 2 - (i == j ? 0.5 : 1.0);
      problem.g[static_cast<size_t>(i) * n + j] = value;
      problem.g[static_cast<size_t>(j) * n + i] = value;
    }
  }
  for (int b = 0; b < budgets; ++b) {
    AllocationBudget budget;
    budget.name = "budget" + std::to_string(b);
    budget.fixed = unit(rng);
    for (int i = 0; i < n; ++i) budget.costs.push_back(unit(rng) * 3);
    double cheapest = budget.fixed;
    double dearest = budget.fixed;
    for (int s = 0; s < slots; ++s) {
      const auto first = budget.costs.begin() + problem.offset(s);
      const auto last = first + problem.choices_per_slot[s];
      cheapest += *std::min_element(first, last);
      dearest += *std::max_element(first, last);
    }
    budget.limit = cheapest + (dearest - cheapest) * (0.3 + 0.4 * unit(rng));
    problem.budgets.push_back(budget);
  }
  return problem;
}

// The best objective over every policy that meets every budget (infinity when none does).
double BruteForceOptimum(const QuadraticAllocation& problem) {
  const int slots = static_cast<int>(problem.choices_per_slot.size());
  std::vector<int> choice(slots, 0);
  double best = std::numeric_limits<double>::infinity();
  while (true) {
    bool feasible = true;
    for (const AllocationBudget& budget : problem.budgets) {
      feasible = feasible && problem.Cost(budget, choice) <= budget.limit;
    }
    if (feasible) best = std::min(best, problem.Objective(choice));
    int s = 0;
    while (s < slots && ++choice[s] == problem.choices_per_slot[s]) choice[s++] = 0;
    if (s == slots) break;
  }
  return best;
}

TEST(QuadraticAllocationTest, TheOptimumEqualsBruteForceOverEveryPolicy) {
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    const QuadraticAllocation problem =
        RandomProblem(seed, /*slots=*/3 + static_cast<int>(seed % 3), /*max_choices=*/4,
                      /*budgets=*/1 + static_cast<int>(seed % 2), /*diagonal_only=*/seed % 5 == 0);
    const double brute = BruteForceOptimum(problem);
    const absl::StatusOr<AllocationResult> result =
        SolveQuadraticAllocation(problem, absl::Seconds(30));
    if (std::isinf(brute)) {
      EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition) << "seed " << seed;
      continue;
    }
    ASSERT_TRUE(result.ok()) << "seed " << seed << ": " << result.status();
    EXPECT_TRUE(result->optimal) << "seed " << seed;
    EXPECT_NEAR(result->objective, brute, 1e-7) << "seed " << seed;
    for (const AllocationBudget& budget : problem.budgets) {
      EXPECT_LE(problem.Cost(budget, result->choice), budget.limit) << "seed " << seed;
    }
  }
}

TEST(QuadraticAllocationTest, TheLinearisedObjectiveIsXTransposeGX) {
  for (uint64_t seed = 40; seed < 50; ++seed) {
    const QuadraticAllocation problem = RandomProblem(seed, 6, 5, 1, false);
    const absl::StatusOr<AllocationResult> result =
        SolveQuadraticAllocation(problem, absl::Seconds(30));
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_NEAR(result->solver_objective, result->objective, 1e-6) << "seed " << seed;
    EXPECT_NEAR(result->objective, problem.Objective(result->choice), 1e-12);
    EXPECT_LE(result->best_bound, result->objective);
  }
}

TEST(QuadraticAllocationTest, ABudgetNoPolicyMeetsIsRefusedWithTheCheapestCost) {
  QuadraticAllocation problem = RandomProblem(7, 3, 3, 2, false);
  problem.budgets[1].limit = problem.budgets[1].fixed;  // Below any policy's cost.
  const absl::StatusOr<AllocationResult> result =
      SolveQuadraticAllocation(problem, absl::Seconds(10));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(result.status().message()),
              HasSubstr("budget1: the cheapest policy costs"));

  // Two budgets each met by some policy, never by the same one.
  QuadraticAllocation opposite;
  opposite.choices_per_slot = {2};
  opposite.g = {0, 0, 0, 0};
  opposite.budgets = {{"size", 1.0, 0.0, {0.0, 2.0}}, {"latency", 1.0, 0.0, {2.0, 0.0}}};
  const absl::StatusOr<AllocationResult> none =
      SolveQuadraticAllocation(opposite, absl::Seconds(10));
  EXPECT_EQ(none.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(none.status().message()), HasSubstr("no policy meets every budget"));
}

TEST(QuadraticAllocationTest, MalformedProblemsAreRefusedNamingWhat) {
  const QuadraticAllocation good = RandomProblem(3, 2, 2, 1, false);
  struct Case {
    QuadraticAllocation problem;
    std::string says;
  };
  std::vector<Case> cases;
  cases.push_back({good, ""});
  cases.back().problem.g.pop_back();
  cases.back().says = "g: ";
  cases.push_back({good, "g: not symmetric"});
  cases.back().problem.g[1] += 1;
  cases.push_back({good, "g: not finite"});
  cases.back().problem.g[0] = std::nan("");
  cases.push_back({good, "budget0: costs must be finite and >= 0"});
  cases.back().problem.budgets[0].costs[0] = -1;
  cases.push_back({good, "budget0: a finite limit"});
  cases.back().problem.budgets[0].costs.pop_back();
  cases.push_back({good, "choices_per_slot[1]: must be >= 1"});
  cases.back().problem.choices_per_slot[1] = 0;
  cases.push_back({QuadraticAllocation(), "choices_per_slot: no slots"});
  for (const Case& c : cases) {
    const absl::StatusOr<AllocationResult> result =
        SolveQuadraticAllocation(c.problem, absl::Seconds(5));
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << c.says;
    EXPECT_THAT(std::string(result.status().message()), HasSubstr(c.says));
  }
}

TEST(QuadraticAllocationTest, ACancelledSolveStopsPromptlyAndNeverReturnsABrokenBudget) {
  const QuadraticAllocation problem = RandomProblem(11, 40, 5, 2, false);
  const absl::Time start = absl::Now();
  const absl::StatusOr<AllocationResult> result =
      SolveQuadraticAllocation(problem, absl::Seconds(60), [] { return true; });
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
  if (result.ok()) {
    for (const AllocationBudget& budget : problem.budgets) {
      EXPECT_LE(problem.Cost(budget, result->choice), budget.limit * (1 + 1e-9));
    }
  } else {
    EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled) << result.status();
  }
}

TEST(QuadraticAllocationTest, WithoutTimeToSearchTheAnswerIsTheWarmStartMeetingEveryBudget) {
  for (const uint64_t seed : {3, 4, 5}) {
    const QuadraticAllocation problem = RandomProblem(seed, 30, 5, 2, false);
    const absl::StatusOr<AllocationResult> result =
        SolveQuadraticAllocation(problem, absl::Milliseconds(1));
    ASSERT_TRUE(result.ok()) << result.status();
    ASSERT_TRUE(std::isfinite(result->warm_start_objective));
    EXPECT_LE(result->objective, result->warm_start_objective);
    EXPECT_DOUBLE_EQ(result->objective, problem.Objective(result->choice));
    EXPECT_LE(result->best_bound, result->objective);
    for (const AllocationBudget& budget : problem.budgets) {
      EXPECT_LE(problem.Cost(budget, result->choice), budget.limit) << budget.name;
    }
    // The warm start is a local optimum: no single-slot change that keeps every budget
    // lowers the objective below the answer.
    if (result->from_warm_start) {
      std::vector<int> moved = result->choice;
      for (size_t s = 0; s < moved.size(); ++s) {
        for (int c = 0; c < problem.choices_per_slot[s]; ++c) {
          moved[s] = c;
          bool feasible = true;
          for (const AllocationBudget& budget : problem.budgets) {
            feasible = feasible && problem.Cost(budget, moved) <= budget.limit;
          }
          if (feasible) EXPECT_GE(problem.Objective(moved), result->objective - 1e-9) << s;
        }
        moved[s] = result->choice[s];
      }
    }
  }
}

}  // namespace
}  // namespace apq::search
