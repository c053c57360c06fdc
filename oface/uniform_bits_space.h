// A joint space with every bitwidth fixed to one value: the uniform-precision baseline of a
// mixed-precision search (the same search with bits fixed, as APQ compares against uniform 8,
// 6 and 4 bits). The genotypes, encoding, cost terms and JSON are the base space's; only the
// bits genes have a single choice, so sampling, mutation and crossover never move them. Its
// cost decomposition is the base's without the choices of other bits.
//
// Thread safety: immutable; the base must outlive the view.
#ifndef APQ_OFACE_UNIFORM_BITS_SPACE_H_
#define APQ_OFACE_UNIFORM_BITS_SPACE_H_

#include <memory>

#include "absl/status/statusor.h"
#include "oface/search_space.h"

namespace apq::oface {

// INVALID_ARGUMENT when `base` has no bits genes (IsBitsGene) or `bits` is not a choice of
// every one of them. The view's name is "<base name>@w<bits>a<bits>".
absl::StatusOr<std::unique_ptr<SearchSpace>> NewUniformBitsSpace(const SearchSpace& base, int bits);

}  // namespace apq::oface

#endif  // APQ_OFACE_UNIFORM_BITS_SPACE_H_
