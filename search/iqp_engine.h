// The "iqp" engine (after CLADO, Deng et al. 2023): bit allocation of one architecture under
// hard budgets with a measured loss model. It needs a space held to one architecture
// (SubmitSearchRequest.fixed_architecture) and the space's trained supernet
// (SearchProblem::policy_losses).
//   1. Slots and costs: the architecture's per-layer bitwidth slots
//      (hwmodels::DecomposeCost, kBitwidths) priced on the job's device; with
//      `activations` "highest" a slot's choices are its weight widths with its activations at
//      their highest (as CLADO allocates weight bits), with a width ("4") at that width, with
//      "searched" every (weight, activation) setting. The reference policy has every kept
//      width at its highest.
//   2. Sensitivity: the cross-entropy on `calibration_images` train-split images of the
//      reference policy (every width at its highest), of every single change and (with
//      `cross_layer`) every pair of changes in two slots (search/cross_layer_sensitivity),
//      measured in 20 steps of equal size, each a checkpoint; G made positive semi-definite.
//      Without `cross_layer`, G's diagonal alone: the independent-sensitivity baseline.
//   3. Allocation: minimise x^T G x under the budgets with CBC within `time_limit_s`
//      (search/quadratic_allocation); the one network it returns meets every budget, is
//      scored by the predictor and is the job's best. (The solver's gap and bound are not
//      reported yet: EngineResult has no field for them.)
#ifndef APQ_SEARCH_IQP_ENGINE_H_
#define APQ_SEARCH_IQP_ENGINE_H_

#include <cstddef>
#include <memory>

#include "search/engine.h"

namespace apq::search {

inline constexpr char kIqpEngineName[] = "iqp";
// The shared artifact of measured losses (one per supernet version, architecture, activation
// setting, calibration images and seed, pairs or not): a later job with the same setting
// reads it instead of measuring, and single changes reuse an entry with pairs. A job that
// waited for the supernet while another measured looks again before measuring, so two jobs
// of one setting at once measure once.
inline constexpr char kIqpSensitivityKind[] = "iqp_sensitivity";
// The job's output artifact with the solver's outcome (JSON: objective, best bound, relative
// gap, proven optimal, seconds, whether the losses came from the cache). The bound is CBC's,
// raised to 0 when G was made positive semi-definite (no policy scores below 0 then); CBC's
// own is kept as cbc_bound.
inline constexpr char kIqpSolutionKind[] = "iqp_solution";
inline constexpr char kIqpSolutionName[] = "solution.json";
// Steps of the sensitivity measurement; the allocation is the step after them.
inline constexpr int kIqpMeasurementSteps = 20;
// Policies measured per call to the loss session (at once when it has several threads); the
// cancel check runs between calls.
inline constexpr size_t kIqpMeasurementBatch = 8;

std::unique_ptr<Engine> NewIqpEngine();

}  // namespace apq::search

#endif  // APQ_SEARCH_IQP_ENGINE_H_
