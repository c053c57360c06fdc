// Hard budgets of a search, the costs a search can trade against accuracy, and its
// objective: shared by every engine.
#ifndef APQ_SEARCH_BUDGETS_H_
#define APQ_SEARCH_BUDGETS_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "hwmodels/lut_cost_model.h"

namespace apq::search {

// Hard constraints; an unset field is no constraint.
struct Budgets {
  std::optional<double> max_latency_ms;
  std::optional<double> max_energy_mj;
  std::optional<double> max_size_mb;
  std::optional<double> max_bitops;
};

// INVALID_ARGUMENT naming the field when a budget is NaN, infinite or not positive.
absl::Status ValidateBudgets(const Budgets& budgets);

// FAILED_PRECONDITION naming the budget when the cost model cannot price it (an energy
// budget on a latency-only table; size or BitOps on a space without bitwidths).
absl::Status CheckBudgetsPriceable(const Budgets& budgets, const hwmodels::LutCostModel& model,
                                   const std::string& device);

// True when `cost` meets every set budget and the device executes the network
// (`cost.executable`). A budget the cost lacks a figure for is not met.
bool MeetsBudgets(const hwmodels::NetworkCost& cost, const Budgets& budgets);

// The cost a Pareto search trades against accuracy.
enum class CostMetric { kLatency, kEnergy, kSize, kBitops };
// "latency_ms", "energy_mj", "size_mb" or "bitops".
const char* CostMetricName(CostMetric metric);
// The metric's value in `cost`; +infinity when the cost lacks it.
double CostValue(const hwmodels::NetworkCost& cost, CostMetric metric);

enum class Objective {
  // The most accurate network under the budgets (OFA, APQ).
  kMaxAccuracy,
  // The front of accuracy against one cost under the budgets: parents are chosen by
  // non-dominated rank, then crowding distance (NSGA-II), so the population spreads along
  // the front instead of crowding at the budget.
  kPareto,
};

}  // namespace apq::search

#endif  // APQ_SEARCH_BUDGETS_H_
