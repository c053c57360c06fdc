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

#include <memory>

#include "absl/status/statusor.h"
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

}  // namespace apq::oface

#endif  // APQ_OFACE_RESTRICTED_SPACE_H_
