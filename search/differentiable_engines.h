// The differentiable bit-search engines: "dnas" (after DNAS, Wu et al. 2018) and "ssps" (after
// sequential single-path search). Both search one architecture's per-layer bitwidths (weights
// and activations) by gradient descent on the space's trained supernet, the cost in the loss.
// They need a space held to one architecture (SubmitSearchRequest.fixed_architecture) and the
// space's supernet (SearchProblem::subnet_training).
//   1. Costs: every (weight, activation) setting of every layer's pointwise and depthwise
//      convolutions priced on the job's device (hwmodels::DecomposeCost, kBitwidths) in the
//      metric `cost` (by default the metric of the job's budget): oface::BitCostTable. In the
//      loss the cost is in units of the cheapest policy's over e and, with `cost_floor`
//      budget (the default), floored at the job's budget in that metric, so the term pushes
//      only while the distributions expect more than the budget.
//   2. Search: oface::PrecisionSearch for `steps` alternations (weights on the train split,
//      the distributions on the validation split), with the options' learning rates,
//      temperatures and cost exponents. dnas mixes every width's quantization by a
//      Gumbel-softmax sample; ssps quantizes each layer at one sampled width per step
//      (straight-through) and fixes the most certain layer at intervals until all are fixed.
//   3. Every `report_every` steps a step: the most likely policy, priced whole and scored by the
//      predictor (a candidate when it meets the budgets, a rejected draw otherwise), with the
//      search's figures (losses, expected cost, entropy, temperature, layers fixed) as the
//      step's metrics and its whole state as the checkpoint.
//   4. The result: the final most likely policy and `samples` policies drawn from the final
//      distributions, each repaired with the fewest changes when it misses a budget, preferring
//      the likelier settings (search/budget_repair); all are candidates of the last step, the
//      most likely one is the job's best. The report is the job's output artifact
//      "<engine>_result" (repaired or not, changed layers, expected cost, entropy, layers fixed
//      in order, the samples) when the caller keeps artifacts.
// dnas with `architecture` searched (DNAS's block search) needs the whole space instead (no
// fixed_architecture, no uniform_bits): every slot's kernel and width and every stage's depth
// get distributions too (oface::PrecisionSearchOptions::search_architecture), priced per
// (kernel, width) setting from kBitwidths views of the deepest network; a result that misses a
// budget is repaired over its blocks' whole settings (kBlocks view) at its depths, or, when
// even their cheapest settings miss it, at every stage's shallowest depth.
#ifndef APQ_SEARCH_DIFFERENTIABLE_ENGINES_H_
#define APQ_SEARCH_DIFFERENTIABLE_ENGINES_H_

#include <memory>

#include "search/engine.h"

namespace apq::search {

inline constexpr char kDnasEngineName[] = "dnas";
inline constexpr char kDnasResultKind[] = "dnas_result";
inline constexpr char kSspsEngineName[] = "ssps";
inline constexpr char kSspsResultKind[] = "ssps_result";
// The output name of either engine's report.
inline constexpr char kDifferentiableResultName[] = "result.json";

std::unique_ptr<Engine> NewDnasEngine();
std::unique_ptr<Engine> NewSspsEngine();

}  // namespace apq::search

#endif  // APQ_SEARCH_DIFFERENTIABLE_ENGINES_H_
