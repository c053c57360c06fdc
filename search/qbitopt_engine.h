// The "qbitopt" engine (after QBitOpt, Peters et al. 2023): bit allocation of one
// architecture during its quantization-aware fine-tune, under hard budgets. It needs a space
// held to one architecture (SubmitSearchRequest.fixed_architecture) and the space's trained
// supernet (SearchProblem::subnet_training).
//   1. Slots and costs as engine iqp (search/bit_allocation.h): per slot the weight widths,
//      with activations at their highest or at one width (`activations`).
//   2. Training: `steps` steps of SGD on the train split at the current policy
//      (oface::SubnetTrainer: the fine-tune every final report applies, with batch_size and
//      learning_rate), on a private copy of the supernet.
//   3. Every `update_every` steps, and once before the first (from `gradient_batches` batches
//      of gradients without training), an update: each (slot, width)'s sensitivity is the
//      empirical-Fisher-weighted quantization noise of the slot's weights at that width
//      (oface::SubnetTrainer::WeightSensitivity, from the gradients since the last update);
//      the convex relaxation of "least total sensitivity within the budgets" is solved by
//      bisection on its Lagrange multiplier and rounded keeping every budget
//      (search/separable_allocation); the policy becomes the trained one. Every update's
//      policy meets every budget (checked, priced whole) and is a step's candidate.
//   4. The result: the last update's policy with the fine-tuned weights. The job's best is that
//      policy; its TorchScript module (the trained weights, batch norm recalibrated) is the
//      job's output artifact "qbitopt_module" when the caller keeps artifacts.
// A checkpoint holds the trainer's whole state after an update, so a resumed job trains on
// exactly as the interrupted one would have.
#ifndef APQ_SEARCH_QBITOPT_ENGINE_H_
#define APQ_SEARCH_QBITOPT_ENGINE_H_

#include <memory>

#include "search/engine.h"

namespace apq::search {

inline constexpr char kQbitoptEngineName[] = "qbitopt";
// The artifact kind and output name of the trained module.
inline constexpr char kQbitoptModuleKind[] = "qbitopt_module";
inline constexpr char kQbitoptModuleName[] = "module.pt";

std::unique_ptr<Engine> NewQbitoptEngine();

}  // namespace apq::search

#endif  // APQ_SEARCH_QBITOPT_ENGINE_H_
