// What the bit-allocation engines (iqp, qbitopt) share: the allocation problem of the one
// architecture a space is held to (its per-layer bitwidth slots priced on the job's device,
// the choices an engine picks from, the reference policy), its budget rows, and the checks
// and scoring around a policy.
#ifndef APQ_SEARCH_BIT_ALLOCATION_H_
#define APQ_SEARCH_BIT_ALLOCATION_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "hwmodels/cost_terms.h"
#include "oface/search_space.h"
#include "search/allocation_budget.h"
#include "search/engine.h"

namespace apq::search {

// The activation settings an engine allocates with (its "activations" option): "highest"
// (weight widths with activations at their highest, as CLADO), a width ("4": every
// activation at it), or "searched" (every (weight, activation) setting).
struct BitAllocation {
  hwmodels::CostTermView view;
  // Per slot, the view's choices the allocation picks from (indices into the slot's choices).
  std::vector<std::vector<int>> kept;
  std::vector<int> reference;  // Per slot: the index into kept[s] of every width at its highest.
  // Per slot, the gene of its weight width (-1 when the slot has none).
  std::vector<int> weight_gene;

  std::vector<int> choices_per_slot() const;
  // The network of one kept choice per slot.
  oface::Genotype Network(const std::vector<int>& policy) const;
  // Slot s's kept choice k's value of gene `gene` (one of the slot's genes).
  int GeneValue(int slot, int k, int gene) const;
};

// The allocation problem of `problem`'s space, which must be held to one architecture:
// FAILED_PRECONDITION naming fixed_architecture when a gene other than bits is free (the
// message names `engine`) or the network has no bits to allocate; INVALID_ARGUMENT naming
// engine.options.activations when a slot lacks the width.
absl::StatusOr<BitAllocation> BuildBitAllocation(const SearchProblem& problem,
                                                 const std::string& activations,
                                                 const std::string& engine);

// What both allocators need of a problem beyond the allocation: the objective of one best
// network (INVALID_ARGUMENT naming "objective") and the space's trained supernet
// (`has_supernet`; FAILED_PRECONDITION naming "space": `engine` `uses` it).
absl::Status CheckOneNetworkWithSupernet(const SearchProblem& problem, bool has_supernet,
                                         const std::string& engine, const std::string& uses);

// One row per budget the problem sets, over the allocation's kept choices.
std::vector<AllocationBudget> AllocationBudgets(const SearchProblem& problem,
                                                const BitAllocation& allocation);

// FAILED_PRECONDITION naming budgets.<name> with the cheapest policy's cost when a budget is
// below what the cheapest kept choices cost.
absl::Status CheckCheapestPolicyFits(const BitAllocation& allocation,
                                     const std::vector<AllocationBudget>& budgets);

// `genotype` priced whole and scored by the predictor, as step `step`'s individual; INTERNAL
// when it breaks a budget (the per-term costs and the cost model disagree), the predictor's
// errors otherwise.
absl::StatusOr<Individual> PriceAndScore(const SearchProblem& problem,
                                         const oface::Genotype& genotype, int step,
                                         const std::string& engine);

}  // namespace apq::search

#endif  // APQ_SEARCH_BIT_ALLOCATION_H_
