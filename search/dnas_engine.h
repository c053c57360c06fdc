// The "dnas" engine (after DNAS, Wu et al. 2018): differentiable search of one architecture's
// per-layer bitwidths (weights and activations) on the space's trained supernet, the cost in
// the loss. It needs a space held to one architecture (SubmitSearchRequest.fixed_architecture)
// and the space's supernet (SearchProblem::subnet_training).
//   1. Costs: every (weight, activation) setting of every layer's pointwise and depthwise
//      convolutions priced on the job's device (hwmodels::DecomposeCost, kBitwidths) in the
//      metric `cost` (BitOps, size, latency or energy): oface::BitCostTable.
//   2. Search: oface::PrecisionSearch for `steps` alternations (weights on the train split,
//      the distributions on the validation split), with the options' learning rates,
//      temperatures and cost exponents.
//   3. Every `report_every` steps a step: the most likely policy, priced whole and scored by the
//      predictor (a candidate when it meets the budgets, a rejected draw otherwise), with the
//      search's whole state as the checkpoint.
//   4. The result: the final most likely policy; when it breaks a budget, the fewest changes
//      that meet them all, preferring the likelier settings (search/budget_repair). Its report
//      is the job's output artifact "dnas_result" (repaired or not, changed layers, expected
//      cost, entropy) when the caller keeps artifacts.
#ifndef APQ_SEARCH_DNAS_ENGINE_H_
#define APQ_SEARCH_DNAS_ENGINE_H_

#include <memory>

#include "search/engine.h"

namespace apq::search {

inline constexpr char kDnasEngineName[] = "dnas";
inline constexpr char kDnasResultKind[] = "dnas_result";
inline constexpr char kDnasResultName[] = "result.json";

std::unique_ptr<Engine> NewDnasEngine();

}  // namespace apq::search

#endif  // APQ_SEARCH_DNAS_ENGINE_H_
