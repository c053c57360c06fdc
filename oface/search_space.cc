#include "oface/search_space.h"

#include <algorithm>
#include <cassert>
#include <cstddef>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace apq::oface {

bool IsBitsGene(const GeneSpec& gene) {
  return gene.name.find("_bits_setting[") != std::string::npos;
}

void SelectCostSlotChoice(const Genotype& genotype, CostSlot* slot) {
  const size_t num_genes = slot->genes.size();
  for (size_t c = 0; c < slot->choices.size(); ++c) {
    const auto& values = slot->choices[c].values;
    size_t g = 0;
    while (g < num_genes && values[g] == genotype[slot->genes[g]]) ++g;
    if (g == num_genes) {
      slot->selected = static_cast<int>(c);
      return;
    }
  }
  assert(false && "the genotype takes none of the slot's choices");
}

absl::Status SearchSpace::Validate(const Genotype& genotype) const {
  const std::vector<GeneSpec>& specs = genes();
  if (genotype.size() != specs.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("genotype has ", genotype.size(), " genes, the space has ", specs.size()));
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    const std::vector<int>& choices = specs[i].choices;
    if (!std::binary_search(choices.begin(), choices.end(), genotype[i])) {
      return absl::InvalidArgumentError(absl::StrCat(
          specs[i].name, ": ", genotype[i], " is not one of {", absl::StrJoin(choices, ", "), "}"));
    }
  }
  return CheckRules(genotype);
}

Genotype SearchSpace::Sample(Rng& rng) const {
  const std::vector<GeneSpec>& specs = genes();
  Genotype genotype(specs.size());
  do {
    for (size_t i = 0; i < specs.size(); ++i) {
      const std::vector<int>& choices = specs[i].choices;
      genotype[i] = choices[rng.Uniform(static_cast<uint32_t>(choices.size()))];
    }
    RepairDraw(genotype, rng);
  } while (!SatisfiesRules(genotype));
  return genotype;
}

Genotype SearchSpace::Mutate(const Genotype& parent, double probability,
                             double resolution_probability, Rng& rng) const {
  const std::vector<GeneSpec>& specs = genes();
  const std::vector<MutationGroup>& groups = mutation_groups();
  assert(parent.size() == specs.size());
  Genotype child = parent;
  while (true) {
    // One Bernoulli draw per group in group order, as OFA's mutate_sample draws them.
    for (const MutationGroup& group : groups) {
      const double p =
          group.kind == MutationKind::kResolution ? resolution_probability : probability;
      if (!rng.Bernoulli(p)) continue;
      for (const int gene : group.genes) {
        const std::vector<int>& choices = specs[gene].choices;
        child[gene] = choices[rng.Uniform(static_cast<uint32_t>(choices.size()))];
      }
    }
    RepairDraw(child, rng);
    if (SatisfiesRules(child)) return child;
    // Same size as `parent`: the copy reuses child's storage.
    std::copy(parent.begin(), parent.end(), child.begin());
  }
}

Genotype SearchSpace::Crossover(const Genotype& first, const Genotype& second, Rng& rng) const {
  const size_t size = genes().size();
  assert(first.size() == size && second.size() == size);
  // Indexing by the draw instead of branching on it: the branch would be unpredictable.
  const int* const parents[2] = {first.data(), second.data()};
  Genotype child(size);
  do {
    for (size_t i = 0; i < size; ++i) child[i] = parents[rng.Uniform(2)][i];
    RepairDraw(child, rng);
  } while (!SatisfiesRules(child));
  return child;
}

}  // namespace apq::oface
