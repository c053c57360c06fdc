// Bit allocation as an integer quadratic program (after CLADO, Deng et al. 2023): one choice
// per slot (a layer's bitwidths), a loss-change model x^T G x over the one-hot choice vector
// x, and hard linear budgets (size, BitOps, latency, energy: each is a fixed part plus one
// cost per chosen choice, hwmodels/cost_terms). Solved exactly, up to a time limit, by CBC
// after linearising the products of choices; the answer always meets every budget.
#ifndef APQ_SEARCH_QUADRATIC_ALLOCATION_H_
#define APQ_SEARCH_QUADRATIC_ALLOCATION_H_

#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "search/allocation_budget.h"

namespace apq::search {

// Choices are flattened slot by slot: slot s's choice c is variable offset(s) + c.
struct QuadraticAllocation {
  std::vector<int> choices_per_slot;  // Each >= 1.
  // Symmetric, row-major, n x n for n flattened choices. Entries between two choices of the
  // same slot never count (one choice per slot); G[i][i] is choice i's own term.
  std::vector<double> g;
  std::vector<AllocationBudget> budgets;

  int num_choices() const;
  int offset(int slot) const;
  // x^T G x of one choice per slot.
  double Objective(const std::vector<int>& choice) const;
  // Fixed part plus chosen costs of `budget`.
  double Cost(const AllocationBudget& budget, const std::vector<int>& choice) const;
};

struct AllocationResult {
  std::vector<int> choice;  // Per slot.
  double objective = 0;     // x^T G x of `choice`.
  // The linearised program's objective at the solver's solution: equals `objective` (the
  // linearisation is exact at an optimum of y); kept so that tests can say so.
  double solver_objective = 0;
  double best_bound = 0;  // No policy has a lower objective than this.
  bool optimal = false;   // Proven: objective == best_bound up to the solver's tolerance.
  // (objective - best_bound) / max(1e-9, |objective|); 0 when optimal.
  double relative_gap = 0;
  double seconds = 0;
  // x^T G x of the warm start (the diagonal's allocation improved by single-slot changes,
  // meeting every budget), NaN when there was none; and whether the answer is that start
  // (the solver found nothing better in time).
  double warm_start_objective = std::numeric_limits<double>::quiet_NaN();
  bool from_warm_start = false;
};

// The best policy CBC (its CbcMain1 driver: presolve, cuts, heuristics) finds within
// `time_limit`, with its bound, started from (and never worse than) a warm start that meets
// every budget. INVALID_ARGUMENT for a malformed problem (sizes, a G that is
// not symmetric or not finite, a negative or non-finite cost); FAILED_PRECONDITION naming the
// budget and the cheapest policy's cost when one budget alone cannot be met;
// DEADLINE_EXCEEDED when no policy meeting every budget was found in time (never an
// infeasible one); CANCELLED when `cancelled` (asked while the solver runs) says so before a
// policy is found. The returned policy is checked against every budget after solving.
absl::StatusOr<AllocationResult> SolveQuadraticAllocation(
    const QuadraticAllocation& problem, absl::Duration time_limit,
    const std::function<bool()>& cancelled = nullptr);

}  // namespace apq::search

#endif  // APQ_SEARCH_QUADRATIC_ALLOCATION_H_
