// Properties every SearchSpace must have, as GoogleTest expectations shared by the spaces'
// tests. Test-only.
#ifndef APQ_OFACE_SPACE_TESTING_H_
#define APQ_OFACE_SPACE_TESTING_H_

#include <cstdint>
#include <vector>

#include "oface/search_space.h"

namespace apq::oface {

// `samples` draws of Sample are valid and, together, take every choice of every gene.
void ExpectSamplesValidAndExhaustive(const SearchSpace& space, uint64_t seed, int samples);

// Crossover of `pairs` sampled pairs: each child is valid and takes every gene from one of
// its parents, about half of the differing genes from each.
void ExpectCrossoverMixesParents(const SearchSpace& space, uint64_t seed, int pairs);

// Sample, Mutate (with the given probabilities) and Crossover repeat for a seed and differ
// for another seed.
void ExpectOperatorsDeterministic(const SearchSpace& space, double probability,
                                  double resolution_probability);

// FromJson(ToJson(g)) == g for each of `genotypes` and for `samples` sampled genotypes.
void ExpectJsonRoundTrip(const SearchSpace& space, const std::vector<Genotype>& genotypes,
                         uint64_t seed, int samples);

// FromJson refuses, with INVALID_ARGUMENT naming why, a sampled config with a repeated key, one
// wrapped in nesting deeper than a config's, and one padded beyond the size limit, while the
// same config padded with a little whitespace parses.
void ExpectJsonInputBounded(const SearchSpace& space, uint64_t seed);

// SearchSpace::DecomposeCosts(g, split) keeps its contract for each of `genotypes`: slots on
// disjoint ascending genes; choices sorted, unique, within the genes' choices and, for the
// first `complete_checks` genotypes, every rule-abiding setting of the slot's genes; `selected`
// is g's; and for the selected choices and `combos` random choice vectors per genotype the
// network is valid, its CostTerms are the fixed and chosen terms as a multiset, and its
// StaticCosts are their sum, exactly. Returns the number of slots seen (so a caller can check
// that the split is not vacuous).
int ExpectCostDecompositionExact(const SearchSpace& space, CostSplit split,
                                 const std::vector<Genotype>& genotypes, uint64_t seed, int combos,
                                 int complete_checks);

}  // namespace apq::oface

#endif  // APQ_OFACE_SPACE_TESTING_H_
