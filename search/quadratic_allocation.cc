#include "search/quadratic_allocation.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "CbcEventHandler.hpp"
#include "CbcModel.hpp"
#include "CbcSolver.hpp"
#include "CoinPackedMatrix.hpp"
#include "CoinPackedVector.hpp"
#include "OsiClpSolverInterface.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "search/separable_allocation.h"

namespace apq::search {
namespace {

// Stops CBC at its next event once the caller cancels.
class CancelHandler final : public CbcEventHandler {
 public:
  explicit CancelHandler(const std::function<bool()>* cancelled) : cancelled_(cancelled) {}
  CbcEventHandler* clone() const override { return new CancelHandler(*this); }
  CbcAction event(CbcEvent /*which*/) override {
    return (*cancelled_ != nullptr && (*cancelled_)()) ? stop : noAction;
  }

 private:
  const std::function<bool()>* cancelled_;
};

absl::Status CheckProblem(const QuadraticAllocation& problem) {
  if (problem.choices_per_slot.empty()) {
    return absl::InvalidArgumentError("choices_per_slot: no slots");
  }
  for (size_t s = 0; s < problem.choices_per_slot.size(); ++s) {
    if (problem.choices_per_slot[s] < 1) {
      return absl::InvalidArgumentError(absl::StrCat("choices_per_slot[", s, "]: must be >= 1"));
    }
  }
  const int n = problem.num_choices();
  if (problem.g.size() != static_cast<size_t>(n) * n) {
    return absl::InvalidArgumentError(
        absl::StrCat("g: ", problem.g.size(), " entries for ", n, " choices (n x n expected)"));
  }
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) {
      const double value = problem.g[static_cast<size_t>(i) * n + j];
      if (!std::isfinite(value)) return absl::InvalidArgumentError("g: not finite");
      if (value != problem.g[static_cast<size_t>(j) * n + i]) {
        return absl::InvalidArgumentError(absl::StrCat("g: not symmetric at (", i, ", ", j, ")"));
      }
    }
  }
  for (const AllocationBudget& budget : problem.budgets) {
    if (budget.costs.size() != static_cast<size_t>(n) || !std::isfinite(budget.limit) ||
        !std::isfinite(budget.fixed)) {
      return absl::InvalidArgumentError(
          absl::StrCat(budget.name, ": a finite limit and fixed part and one cost per choice (", n,
                       ") expected"));
    }
    for (const double cost : budget.costs) {
      if (!std::isfinite(cost) || cost < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(budget.name, ": costs must be finite and >= 0"));
      }
    }
  }
  return absl::OkStatus();
}

// The cheapest policy of one budget alone: FAILED_PRECONDITION when even it is over.
absl::Status CheckEachBudgetCanBeMet(const QuadraticAllocation& problem) {
  for (const AllocationBudget& budget : problem.budgets) {
    double cheapest = budget.fixed;
    for (size_t s = 0; s < problem.choices_per_slot.size(); ++s) {
      const int offset = problem.offset(static_cast<int>(s));
      cheapest += *std::min_element(budget.costs.begin() + offset,
                                    budget.costs.begin() + offset + problem.choices_per_slot[s]);
    }
    if (cheapest > budget.limit) {
      return absl::FailedPreconditionError(
          absl::StrFormat("%s: the cheapest policy costs %.6g, over the limit %.6g", budget.name,
                          cheapest, budget.limit));
    }
  }
  return absl::OkStatus();
}

// Single-slot moves a warm start's local search tries at most (each costs O(choices)).
constexpr int kMaxLocalMoves = 100000;

bool MeetsEveryBudget(const QuadraticAllocation& problem, const std::vector<int>& choice) {
  return std::all_of(
      problem.budgets.begin(), problem.budgets.end(),
      [&](const AllocationBudget& budget) { return problem.Cost(budget, choice) <= budget.limit; });
}

// A policy meeting every budget to start the solver from, and a floor under its answer: the
// best allocation for G's diagonal alone (search/separable_allocation, feasible by
// construction), then improved by the single-slot change that lowers x^T G x most while every
// budget holds, until none does. Empty when the separable allocation finds no policy.
std::vector<int> WarmStart(const QuadraticAllocation& problem) {
  const int n = problem.num_choices();
  SeparableAllocation separable;
  separable.choices_per_slot = problem.choices_per_slot;
  separable.budgets = problem.budgets;
  for (int i = 0; i < n; ++i)
    separable.sensitivity.push_back(problem.g[static_cast<size_t>(i) * n + i]);
  absl::StatusOr<SeparableResult> start = SolveSeparableAllocation(separable);
  if (!start.ok()) return {};
  std::vector<int> choice = start->choice;
  const int slots = static_cast<int>(choice.size());
  std::vector<int> offsets(slots);
  for (int s = 0; s < slots; ++s) offsets[s] = problem.offset(s);
  const auto g = [&](int i, int j) { return problem.g[static_cast<size_t>(i) * n + j]; };
  for (int moves = 0; moves < kMaxLocalMoves;) {
    double best_delta = -1e-12;
    int best_slot = -1;
    int best_choice = -1;
    for (int s = 0; s < slots; ++s) {
      const int old_index = offsets[s] + choice[s];
      for (int c = 0; c < problem.choices_per_slot[s]; ++c, ++moves) {
        if (c == choice[s]) continue;
        const int new_index = offsets[s] + c;
        double delta = g(new_index, new_index) - g(old_index, old_index);
        for (int t = 0; t < slots; ++t) {
          if (t == s) continue;
          const int other = offsets[t] + choice[t];
          delta += 2 * (g(new_index, other) - g(old_index, other));
        }
        if (delta >= best_delta) continue;
        std::vector<int> moved = choice;
        moved[s] = c;
        if (!MeetsEveryBudget(problem, moved)) continue;
        best_delta = delta;
        best_slot = s;
        best_choice = c;
      }
    }
    if (best_slot < 0) break;
    choice[best_slot] = best_choice;
  }
  return choice;
}

}  // namespace

int QuadraticAllocation::num_choices() const {
  int n = 0;
  for (const int choices : choices_per_slot) n += choices;
  return n;
}

int QuadraticAllocation::offset(int slot) const {
  int offset = 0;
  for (int s = 0; s < slot; ++s) offset += choices_per_slot[s];
  return offset;
}

double QuadraticAllocation::Objective(const std::vector<int>& choice) const {
  const int n = num_choices();
  std::vector<int> chosen;
  chosen.reserve(choice.size());
  for (size_t s = 0; s < choice.size(); ++s)
    chosen.push_back(offset(static_cast<int>(s)) + choice[s]);
  double total = 0;
  for (const int i : chosen) {
    for (const int j : chosen) total += g[static_cast<size_t>(i) * n + j];
  }
  return total;
}

double QuadraticAllocation::Cost(const AllocationBudget& budget,
                                 const std::vector<int>& choice) const {
  double total = budget.fixed;
  for (size_t s = 0; s < choice.size(); ++s) {
    total += budget.costs[offset(static_cast<int>(s)) + choice[s]];
  }
  return total;
}

absl::StatusOr<AllocationResult> SolveQuadraticAllocation(const QuadraticAllocation& problem,
                                                          absl::Duration time_limit,
                                                          const std::function<bool()>& cancelled) {
  if (absl::Status valid = CheckProblem(problem); !valid.ok()) return valid;
  if (absl::Status can = CheckEachBudgetCanBeMet(problem); !can.ok()) return can;
  const absl::Time start_time = absl::Now();
  const int n = problem.num_choices();
  const int slots = static_cast<int>(problem.choices_per_slot.size());
  std::vector<int> slot_of(n);
  for (int s = 0; s < slots; ++s) {
    for (int c = 0; c < problem.choices_per_slot[s]; ++c) slot_of[problem.offset(s) + c] = s;
  }

  // Columns: the n binary choices, then one y per product of choices of two slots with a
  // non-zero term. x_i^2 = x_i puts the diagonal on x; minimisation makes y the product with
  // only the side of McCormick's envelope its sign needs: y >= x_i + x_j - 1 for a positive
  // coefficient, y <= x_i and y <= x_j for a negative one.
  std::vector<double> objective(n);
  std::vector<double> lower(n, 0.0);
  std::vector<double> upper(n, 1.0);
  for (int i = 0; i < n; ++i) objective[i] = problem.g[static_cast<size_t>(i) * n + i];
  CoinPackedMatrix rows(false, 0, 0);
  std::vector<double> row_lower;
  std::vector<double> row_upper;
  const double infinity = std::numeric_limits<double>::max();
  struct Product {
    int i;
    int j;
    double coefficient;
  };
  std::vector<Product> products;
  for (int i = 0; i < n; ++i) {
    for (int j = i + 1; j < n; ++j) {
      if (slot_of[i] == slot_of[j]) continue;
      const double coefficient = 2 * problem.g[static_cast<size_t>(i) * n + j];
      if (coefficient != 0) products.push_back({i, j, coefficient});
    }
  }
  rows.setDimensions(0, n + static_cast<int>(products.size()));
  for (size_t k = 0; k < products.size(); ++k) {
    const int y = n + static_cast<int>(k);
    objective.push_back(products[k].coefficient);
    lower.push_back(0.0);
    upper.push_back(1.0);
    if (products[k].coefficient > 0) {
      CoinPackedVector row;  // x_i + x_j - y <= 1
      row.insert(products[k].i, 1.0);
      row.insert(products[k].j, 1.0);
      row.insert(y, -1.0);
      rows.appendRow(row);
      row_lower.push_back(-infinity);
      row_upper.push_back(1.0);
    } else {
      for (const int x : {products[k].i, products[k].j}) {
        CoinPackedVector row;  // y - x <= 0
        row.insert(y, 1.0);
        row.insert(x, -1.0);
        rows.appendRow(row);
        row_lower.push_back(-infinity);
        row_upper.push_back(0.0);
      }
    }
  }
  for (int s = 0; s < slots; ++s) {
    CoinPackedVector row;  // One choice per slot.
    for (int c = 0; c < problem.choices_per_slot[s]; ++c) row.insert(problem.offset(s) + c, 1.0);
    rows.appendRow(row);
    row_lower.push_back(1.0);
    row_upper.push_back(1.0);
  }
  for (const AllocationBudget& budget : problem.budgets) {
    CoinPackedVector row;
    for (int i = 0; i < n; ++i) {
      if (budget.costs[i] != 0) row.insert(i, budget.costs[i]);
    }
    rows.appendRow(row);
    row_lower.push_back(-infinity);
    row_upper.push_back(budget.limit - budget.fixed);
  }

  OsiClpSolverInterface solver;
  solver.messageHandler()->setLogLevel(0);
  solver.loadProblem(rows, lower.data(), upper.data(), objective.data(), row_lower.data(),
                     row_upper.data());
  for (int i = 0; i < n; ++i) solver.setInteger(i);
  // The warm start as CBC's MIP start (by column name): x and the products it implies.
  const std::vector<int> start = WarmStart(problem);
  std::vector<std::pair<std::string, double>> mip_start;
  if (!start.empty()) {
    std::vector<double> x(n, 0.0);
    for (int s = 0; s < slots; ++s) x[problem.offset(s) + start[s]] = 1.0;
    const int columns = n + static_cast<int>(products.size());
    for (int column = 0; column < columns; ++column) {
      const std::string name = absl::StrCat("c", column);
      solver.setColName(column, name);
      const double value =
          column < n ? x[column] : x[products[column - n].i] * x[products[column - n].j];
      mip_start.emplace_back(name, value);
    }
  }
  CbcModel model(solver);
  model.setLogLevel(0);
  if (!mip_start.empty()) model.setMIPStart(mip_start);
  const CancelHandler handler(&cancelled);
  model.passInEventHandler(&handler);
  CbcSolverUsefulData data;
  data.noPrinting_ = true;
  CbcMain0(model, data);
  const std::string seconds =
      absl::StrFormat("%.3f", std::max(0.001, absl::ToDoubleSeconds(time_limit)));
  const char* argv[] = {"apq",      "-log", "0",      "-sec", seconds.c_str(),
                        "-threads", "1",    "-solve", "-quit"};
  CbcMain1(
      static_cast<int>(sizeof(argv) / sizeof(argv[0])), argv, model,
      [](CbcModel* /*model*/, int /*from*/) { return 0; }, data);

  const double* solution = model.bestSolution();
  if (solution == nullptr && !start.empty() && (cancelled == nullptr || !cancelled())) {
    // CBC found nothing in time: the warm start stands (it meets every budget), with no
    // bound better than its own objective.
    AllocationResult result;
    result.choice = start;
    result.objective = problem.Objective(start);
    result.solver_objective = result.objective;
    result.warm_start_objective = result.objective;
    result.from_warm_start = true;
    result.best_bound = std::min(result.objective, model.getBestPossibleObjValue());
    const double gap = result.objective - result.best_bound;
    result.relative_gap = std::max(0.0, gap) / std::max(1e-9, std::abs(result.objective));
    result.seconds = absl::ToDoubleSeconds(absl::Now() - start_time);
    return result;
  }
  if (solution == nullptr) {
    if (cancelled != nullptr && cancelled()) {
      return absl::CancelledError("the allocation was cancelled before a policy was found");
    }
    if (model.isProvenInfeasible()) {
      return absl::FailedPreconditionError(
          "no policy meets every budget together (each alone can be met)");
    }
    return absl::DeadlineExceededError(absl::StrFormat(
        "no policy meeting every budget was found in %.3g s", absl::ToDoubleSeconds(time_limit)));
  }
  AllocationResult result;
  result.choice.assign(slots, -1);
  for (int s = 0; s < slots; ++s) {
    for (int c = 0; c < problem.choices_per_slot[s]; ++c) {
      if (solution[problem.offset(s) + c] > 0.5) result.choice[s] = c;
    }
    if (result.choice[s] < 0) {
      return absl::InternalError(absl::StrCat("the solver's policy chose nothing in slot ", s));
    }
  }
  for (const AllocationBudget& budget : problem.budgets) {
    const double cost = problem.Cost(budget, result.choice);
    if (cost > budget.limit * (1 + 1e-9) + 1e-12) {
      return absl::DeadlineExceededError(absl::StrFormat(
          "%s: the solver's best policy costs %.9g, over the limit %.9g (numerical tolerance); "
          "no policy meeting every budget is returned",
          budget.name, cost, budget.limit));
    }
  }
  result.objective = problem.Objective(result.choice);
  result.solver_objective = model.getObjValue();
  if (!start.empty()) {
    // Never worse than the start the solver was given.
    result.warm_start_objective = problem.Objective(start);
    if (result.warm_start_objective < result.objective) {
      result.choice = start;
      result.objective = result.warm_start_objective;
      result.solver_objective = result.objective;
    }
    result.from_warm_start = result.choice == start;
  }
  result.best_bound = std::min(result.objective, model.getBestPossibleObjValue());
  result.optimal = model.isProvenOptimal();
  const double gap = result.objective - result.best_bound;
  result.relative_gap =
      result.optimal ? 0.0 : std::max(0.0, gap) / std::max(1e-9, std::abs(result.objective));
  result.seconds = absl::ToDoubleSeconds(absl::Now() - start_time);
  return result;
}

}  // namespace apq::search
