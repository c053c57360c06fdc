// Differentiable search of one architecture's per-layer bitwidths on a quantization-aware
// supernet (after DNAS, Wu et al. 2018): per layer slot, learnable logits over the spec's
// bit choices for each of its four bitwidths (pointwise weights and activations, depthwise
// weights and activations); each forward mixes the slot's quantizations by a Gumbel-softmax
// sample of them (supernet_module.h, SlotBitMixture) at a temperature annealed geometrically
// from `temperature_start` to `temperature_end`. Weights and logits train in alternation:
// weights by SGD on train-split batches, logits by Adam on validation-split batches with the
// loss cross-entropy x (cost_alpha x log(expected cost))^cost_beta, the expected cost being
// the per-term costs (BitCostTable) weighted by the samples: differentiable in the logits.
// The supernet's other weights are shared as in any fine-tune (subnet_finetune.h).
//
// Single path (after SSPS, `relaxation` kSinglePath): each forward quantizes every layer at
// one width per bitwidth, the argmax of a Gumbel-softmax sample, and passes the gradient to
// the logits straight through that sample (supernet_module.h, SlotBitMixture::single_path);
// the cost term is the expected cost under the distributions themselves. With
// `sequential_fixing`, after the warm-up and then every `fix_every` steps, the unfixed layer
// (a slot's pointwise or depthwise convolutions: their weight and activation widths) whose
// joint distribution is most certain by `certainty` is frozen at its most likely pair, until
// every layer is fixed; a fixed layer is never unfixed and its distribution is one-hot from
// then on (Probabilities, MostLikely, the costs).
//
// Architecture too (DNAS's block search, `search_architecture`, mixture relaxation only): per
// slot, logits over its kernel sizes and middle widths, and per stage over its depths, mixed by
// Gumbel-softmax samples as the bits are (supernet_module.h, SlotArchMixture and
// StageDepthMixture; one-hot mixtures are the chosen network). The expected cost then weighs
// each slot's tables at every (kernel, width) by their probabilities and each slot by the
// probability that its stage runs it (its stage's depth exceeds its position in the stage).
// Every architecture gene is then searched: the genotype given to Create is not kept.
//
// Thread safety: uses the Supernet exclusively; LibTorch's thread count is the caller's.
#ifndef APQ_OFACE_PRECISION_SEARCH_H_
#define APQ_OFACE_PRECISION_SEARCH_H_

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "oface/fashion_mnist.h"
#include "oface/search_space.h"
#include "oface/supernet.h"

namespace apq::oface {

// The cost of a network as a fixed part plus, per layer slot, the cost of its pointwise
// layers and of its depthwise layer at each (weight bits, activation bits) pair: row-major
// [weight choice][activation choice] over the spec's bit choices. Slots the architecture does
// not use have empty tables.
struct BitCostTable {
  double fixed = 0.0;
  // [slot][0]: pointwise, [slot][1]: depthwise.
  std::vector<std::array<std::vector<double>, 2>> slots;
  // Architecture search only, instead of `slots`: per slot (every slot of the spec), per
  // (kernel, width) setting, kernel-major over the slot's kernel and mid gene choices, the
  // same pair of tables at that setting (a pointwise table does not depend on the kernel and
  // is the same for every kernel of a width).
  std::vector<std::vector<std::array<std::vector<double>, 2>>> by_architecture;
};

enum class PrecisionRelaxation {
  kMixture,     // DNAS: every width's quantization, mixed by the sample's weights.
  kSinglePath,  // SSPS: one width per layer and step, straight-through.
};

// How certain a layer's joint (weight, activation) distribution is, for sequential fixing.
enum class FixingCertainty {
  kMaxProbability,   // The probability of its most likely pair.
  kMargin,           // That minus the probability of the second most likely pair.
  kNegativeEntropy,  // Minus the joint entropy.
};

struct PrecisionSearchOptions {
  int64_t steps = 0;               // Alternations, in [1, 1,000,000].
  int batch_size = 64;             // In [1, the smaller split].
  double weight_lr = 0.005;        // SGD (Nesterov momentum 0.9), cosine to 0; in (0, 1].
  double arch_lr = 0.01;           // Adam; in (0, 1].
  double temperature_start = 5.0;  // In (0, 100], at least temperature_end.
  double temperature_end = 0.5;    // In (0, 100].
  double cost_alpha = 0.2;         // In (0, 10].
  double cost_beta = 0.6;          // In (0, 10].
  // The cost term uses max(expected cost, cost_floor): with a budget as the floor it pushes
  // only while the distributions expect more than the budget (the constraint in the loss);
  // 0 keeps DNAS's form, the expected cost itself. Finite, >= 0.
  double cost_floor = 0.0;
  // The logarithm is of cost / cost_scale, so that the term's pull does not depend on the
  // metric's units (its relative gradient is beta / log(cost / cost_scale)); a base
  // alpha log(...) below 1e-6 counts as 1e-6 (no pull). Finite, > 0; 1: DNAS's absolute units.
  double cost_scale = 1.0;
  int64_t warmup_steps = 0;  // Steps training weights only; in [0, steps].
  uint64_t seed = 1;         // Batches and Gumbel noise.
  PrecisionRelaxation relaxation = PrecisionRelaxation::kMixture;
  // Single path only: fix one layer after step warmup_steps + k x fix_every, k = 1, 2, ...
  // fix_every 0 spreads the fixes evenly: max(1, (steps - warmup_steps) / layers), so the
  // last layer is fixed by the last step (layers left unfixed at the end are taken at their
  // most likely pair by MostLikely). In [0, steps].
  bool sequential_fixing = false;
  int64_t fix_every = 0;
  FixingCertainty certainty = FixingCertainty::kMaxProbability;
  // Searches every slot's kernel and width and every stage's depth too (mixture relaxation
  // only); the cost table is then BitCostTable::by_architecture.
  bool search_architecture = false;
  std::function<bool()> cancelled;  // Polled before every step; may be empty.
};

class PrecisionSearch {
 public:
  // `genotype` fixes the architecture (its bits are ignored; with search_architecture nothing
  // of it is kept); `train` and `validation` are the splits of those names and `costs` prices
  // the architecture's slots (as many slots as the spec; a table of num_bits^2 entries for
  // every slot the architecture uses; with search_architecture, by_architecture for every
  // slot and setting). INVALID_ARGUMENT naming the option or field. All references outlive
  // the search.
  static absl::StatusOr<std::unique_ptr<PrecisionSearch>> Create(
      Supernet& supernet, const Genotype& genotype, const LabeledImages& train,
      const LabeledImages& validation, BitCostTable costs, const PrecisionSearchOptions& options);
  ~PrecisionSearch();

  // Runs the next min(`steps`, what remains) alternations. CANCELLED; INTERNAL from LibTorch.
  absl::Status Train(int64_t steps);
  int64_t steps_done() const;
  double temperature() const;  // Of the next step (of the last once every step ran).

  // Per active slot and bitwidth (pw_w, pw_a, dw_w, dw_a), the softmax of the logits.
  std::vector<std::array<std::vector<double>, 4>> Probabilities() const;
  // A Gumbel-softmax sample of the same distributions at `temperature` (> 0), its noise drawn
  // from a generator seeded with `seed` (the search's own is untouched): weights summing to 1,
  // one-hot in the limit of temperature 0 (at the argmax of logits plus noise).
  std::vector<std::array<std::vector<double>, 4>> GumbelSample(double temperature,
                                                               uint64_t seed) const;
  // The expected cost under Probabilities() (computed in double precision from the table).
  double ExpectedCost() const;
  // The same through the differentiable path the logits' loss uses, with the probabilities
  // in place of a Gumbel sample: equal to ExpectedCost up to float rounding.
  double RelaxedCost() const;
  // Mean entropy (nats) of the active slots' distributions (and, searching the architecture,
  // of the kernel, width and depth distributions).
  double MeanEntropy() const;
  // The probability that gene `gene` (an index into the space's genes) takes `value`: of a
  // searched gene (a bitwidth; a kernel, width or depth when searching the architecture), from
  // its distribution; of any other gene, 1 when `value` is the searched genotype's and 0
  // otherwise.
  double Probability(int gene, int value) const;
  // The genotype with every searched gene at its most likely choice.
  Genotype MostLikely() const;
  // A genotype drawn from the distributions (every searched gene independently; fixed layers
  // at their choices) with a generator seeded with `seed`: the argmax of a Gumbel sample.
  Genotype SamplePolicy(uint64_t seed) const;
  // The layers the distributions cover: two per slot the architecture uses (its pointwise
  // and its depthwise convolutions).
  int layers() const;
  // The layers fixed so far, in the order they were fixed: (slot, 0 pointwise / 1 depthwise).
  std::vector<std::pair<int, int>> FixedLayers() const;
  // The steps between two fixes (sequential fixing; 0 when off).
  int64_t fix_interval() const;
  // Mean cross-entropy and mean loss of the last step's weight and logit batches.
  double last_weight_loss() const;
  double last_arch_loss() const;

  // Everything a resumed search needs (weights and batch norm of the supernet, optimizers,
  // logits, step, random state); RestoreState on a search created alike continues exactly.
  absl::StatusOr<std::string> SaveState() const;
  absl::Status RestoreState(absl::string_view state);  // DATA_LOSS when not one of its states.

 private:
  struct Impl;
  explicit PrecisionSearch(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace apq::oface

#endif  // APQ_OFACE_PRECISION_SEARCH_H_
