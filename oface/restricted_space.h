// Views of a space with some genes held to fewer choices: the baselines a search compares
// against with the same engine and budgets.
// - Uniform bits: every bitwidth fixed to one value (APQ compares mixed precision against
//   uniform 8, 6 and 4 bits found by the same search with bits fixed).
// - Fixed architecture: every gene but the bitwidths held to one network's values, so that a
//   search allocates bits alone (a bit allocator's problem, e.g. CLADO's and HAQ's).
// The two compose: a uniform-bits view of a fixed-architecture view is one network at one
// precision. The genotypes, encoding, cost terms and JSON are the base space's; only the held
// genes have fewer choices, so sampling, mutation and crossover never move them. A view's cost
// decomposition is the base's without the choices outside the view.
//
// Thread safety: immutable; the base must outlive the view.
#ifndef APQ_OFACE_RESTRICTED_SPACE_H_
#define APQ_OFACE_RESTRICTED_SPACE_H_

#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "oface/search_space.h"

namespace apq::oface {

// INVALID_ARGUMENT when `base` has no bits genes (IsBitsGene) or `bits` is not a choice of
// every one of them. The view's name is "<base name>@w<bits>a<bits>".
absl::StatusOr<std::unique_ptr<SearchSpace>> NewUniformBitsSpace(const SearchSpace& base, int bits);

// Holds every gene that is not a bitwidth to its value in `base.Canonical(architecture)`
// (so genes of layers the architecture does not run keep their canonical value).
// INVALID_ARGUMENT naming the gene when `architecture` is not a valid genotype of `base`, or
// when `base` has no bits genes (nothing would be left to search). The view's name is
// "<base name>@fixed-arch".
absl::StatusOr<std::unique_ptr<SearchSpace>> NewFixedArchitectureSpace(
    const SearchSpace& base, const Genotype& architecture);

// The (weight, activation) bits gene pairs of a space: "<x>_w_bits_setting[i]" with
// "<x>_a_bits_setting[i]" (one per conv group of a layer), as gene indices, in gene order.
std::vector<std::pair<int, int>> BitsGenePairs(const SearchSpace& base);

// Holds every layer's pair of weight and activation bits (BitsGenePairs) to the pairs
// `allowed(w, a)` accepts, for a device that executes only those: each bits gene keeps the
// values some allowed pair gives it, and where the allowed pairs are not every combination of
// those values, a genotype with another pair in any layer (run or not) breaks the view's rules
// (sampling then redraws; cost slots drop such choices). Null when every pair of `base` is
// allowed (nothing to restrict). FAILED_PRECONDITION naming the gene when a layer has no
// allowed pair. The view's name is "<base name>@<label>".
absl::StatusOr<std::unique_ptr<SearchSpace>> NewBitPairsSpace(
    const SearchSpace& base, const std::function<bool(int, int)>& allowed, absl::string_view label);

}  // namespace apq::oface

#endif  // APQ_OFACE_RESTRICTED_SPACE_H_
