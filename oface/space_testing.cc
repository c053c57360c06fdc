#include "oface/space_testing.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "oface/json_fields.h"
#include "oface/rng.h"
#include "oface/search_space.h"

namespace apq::oface {

void ExpectSamplesValidAndExhaustive(const SearchSpace& space, uint64_t seed, int samples) {
  Rng rng(seed);
  const std::vector<GeneSpec>& genes = space.genes();
  std::vector<std::set<int>> seen(genes.size());
  for (int n = 0; n < samples; ++n) {
    const Genotype genotype = space.Sample(rng);
    ASSERT_TRUE(space.Validate(genotype).ok()) << space.ToJson(genotype);
    for (size_t g = 0; g < genes.size(); ++g) seen[g].insert(genotype[g]);
  }
  for (size_t g = 0; g < genes.size(); ++g) {
    EXPECT_EQ(seen[g], std::set<int>(genes[g].choices.begin(), genes[g].choices.end()))
        << genes[g].name;
  }
}

void ExpectCrossoverMixesParents(const SearchSpace& space, uint64_t seed, int pairs) {
  Rng rng(seed);
  const size_t num_genes = space.genes().size();
  int from_first = 0, from_second = 0;
  for (int n = 0; n < pairs; ++n) {
    const Genotype first = space.Sample(rng);
    const Genotype second = space.Sample(rng);
    const Genotype child = space.Crossover(first, second, rng);
    ASSERT_TRUE(space.Validate(child).ok());
    for (size_t g = 0; g < num_genes; ++g) {
      ASSERT_TRUE(child[g] == first[g] || child[g] == second[g]);
      if (first[g] != second[g]) {
        from_first += child[g] == first[g];
        from_second += child[g] == second[g];
      }
    }
  }
  const double share = static_cast<double>(from_first) / (from_first + from_second);
  EXPECT_GT(share, 0.48);
  EXPECT_LT(share, 0.52);
}

void ExpectOperatorsDeterministic(const SearchSpace& space, double probability,
                                  double resolution_probability) {
  const auto run = [&](uint64_t seed) {
    Rng rng(seed);
    std::vector<Genotype> out;
    for (int n = 0; n < 100; ++n) {
      const Genotype a = space.Sample(rng);
      const Genotype b = space.Sample(rng);
      out.push_back(space.Mutate(a, probability, resolution_probability, rng));
      out.push_back(space.Crossover(a, b, rng));
    }
    return out;
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));
}

void ExpectJsonRoundTrip(const SearchSpace& space, const std::vector<Genotype>& genotypes,
                         uint64_t seed, int samples) {
  std::vector<Genotype> all = genotypes;
  Rng rng(seed);
  for (int n = 0; n < samples; ++n) all.push_back(space.Sample(rng));
  for (const Genotype& genotype : all) {
    const absl::StatusOr<Genotype> parsed = space.FromJson(space.ToJson(genotype));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, genotype);
  }
}

void ExpectJsonInputBounded(const SearchSpace& space, uint64_t seed) {
  Rng rng(seed);
  const Genotype genotype = space.Sample(rng);
  const std::string json = space.ToJson(genotype);
  const auto expect_rejected = [&space](const std::string& text, const std::string& why) {
    const absl::Status status = space.FromJson(text).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << text.substr(0, 200);
    EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr(why)) << space.name();
  };
  const size_t object = json.find('{');
  ASSERT_NE(object, std::string::npos) << json;
  std::string repeated = json;
  repeated.insert(object + 1, R"("extra": 1, "extra": 2, )");
  expect_rejected(repeated, "duplicate");
  expect_rejected(std::string(100, '[') + json + std::string(100, ']'), "nesting deeper than");
  expect_rejected(json + std::string(kMaxArchJsonBytes, ' '), "more than the limit of");
  const absl::StatusOr<Genotype> padded = space.FromJson("  " + json + "\n");
  ASSERT_TRUE(padded.ok()) << padded.status();
  EXPECT_EQ(*padded, genotype);
}

namespace {

void AddStatic(const StaticCost& part, StaticCost* sum) {
  sum->size_bytes += part.size_bytes;
  sum->macs += part.macs;
  sum->bitops += part.bitops;
}

// The network of `decomposition` with choices[s] in slot s, checked against the space.
void ExpectChoicesPriceExactly(const SearchSpace& space, const Genotype& genotype,
                               const CostDecomposition& decomposition,
                               const std::vector<int>& choices) {
  Genotype network = genotype;
  std::vector<int32_t> expected_terms = decomposition.fixed_terms;
  StaticCost expected_static = decomposition.fixed_static_cost;
  for (size_t s = 0; s < decomposition.slots.size(); ++s) {
    const CostSlot& slot = decomposition.slots[s];
    const CostSlotChoice& choice = slot.choices[choices[s]];
    for (size_t g = 0; g < slot.genes.size(); ++g) network[slot.genes[g]] = choice.values[g];
    expected_terms.insert(expected_terms.end(), choice.terms.begin(), choice.terms.end());
    AddStatic(choice.static_cost, &expected_static);
  }
  for (const CostCoupling& coupling : decomposition.couplings) {
    ASSERT_LT(coupling.first_slot, coupling.second_slot);
    ASSERT_LT(coupling.second_slot, static_cast<int>(decomposition.slots.size()));
    int matched = 0;
    for (const CostCouplingCase& one : coupling.cases) {
      if (network[coupling.first_gene] != one.first_value ||
          network[coupling.second_gene] != one.second_value) {
        continue;
      }
      ++matched;
      expected_terms.insert(expected_terms.end(), one.terms.begin(), one.terms.end());
    }
    EXPECT_LE(matched, 1) << "a network matches two cases of a coupling";
  }
  ASSERT_TRUE(space.Validate(network).ok()) << space.Validate(network);
  std::vector<int32_t> terms;
  space.CostTerms(network, &terms);
  std::sort(terms.begin(), terms.end());
  std::sort(expected_terms.begin(), expected_terms.end());
  EXPECT_EQ(terms, expected_terms) << space.ToJson(network);
  const std::optional<StaticCost> static_cost = space.StaticCosts(network);
  if (static_cost.has_value()) {
    EXPECT_EQ(static_cost->size_bytes, expected_static.size_bytes) << space.ToJson(network);
    EXPECT_EQ(static_cost->macs, expected_static.macs) << space.ToJson(network);
    EXPECT_EQ(static_cost->bitops, expected_static.bitops) << space.ToJson(network);
  } else {
    EXPECT_EQ(expected_static.size_bytes, 0.0);
    EXPECT_EQ(expected_static.macs, 0);
    EXPECT_EQ(expected_static.bitops, 0);
  }
}

// The number of settings of `slot`'s genes that `genotype`'s rules allow.
int CountRuleAbidingSettings(const SearchSpace& space, const Genotype& genotype,
                             const CostSlot& slot) {
  const std::vector<GeneSpec>& genes = space.genes();
  std::vector<size_t> at(slot.genes.size(), 0);
  Genotype network = genotype;
  int count = 0;
  while (true) {
    for (size_t g = 0; g < slot.genes.size(); ++g) {
      network[slot.genes[g]] = genes[slot.genes[g]].choices[at[g]];
    }
    count += space.SatisfiesRules(network);
    size_t g = slot.genes.size();
    while (g > 0 && ++at[g - 1] == genes[slot.genes[g - 1]].choices.size()) at[--g] = 0;
    if (g == 0) return count;
  }
}

// One genotype's decomposition; adds its slots to *slots_seen.
void ExpectDecompositionExact(const SearchSpace& space, CostSplit split, const Genotype& genotype,
                              bool check_complete, int combos, Rng& rng, int* slots_seen) {
  const std::vector<GeneSpec>& genes = space.genes();
  const std::optional<CostDecomposition> decomposition = space.DecomposeCosts(genotype, split);
  ASSERT_TRUE(decomposition.has_value()) << space.name() << ": " << space.ToJson(genotype);
  std::set<int> genes_seen;
  std::vector<int> selected;
  for (const CostSlot& slot : decomposition->slots) {
    ++*slots_seen;
    EXPECT_TRUE(std::is_sorted(slot.genes.begin(), slot.genes.end())) << slot.name;
    for (const int gene : slot.genes) {
      EXPECT_TRUE(genes_seen.insert(gene).second) << slot.name << ": gene " << gene;
    }
    ASSERT_FALSE(slot.choices.empty()) << slot.name;
    for (size_t c = 0; c < slot.choices.size(); ++c) {
      const auto& values = slot.choices[c].values;
      ASSERT_EQ(values.size(), slot.genes.size()) << slot.name;
      for (size_t g = 0; g < values.size(); ++g) {
        const std::vector<int>& choices = genes[slot.genes[g]].choices;
        EXPECT_TRUE(std::binary_search(choices.begin(), choices.end(), values[g])) << slot.name;
      }
      if (c > 0) {
        EXPECT_LT(slot.choices[c - 1].values, values) << slot.name;
      }
    }
    if (check_complete) {
      EXPECT_EQ(CountRuleAbidingSettings(space, genotype, slot), slot.choices.size()) << slot.name;
    }
    ASSERT_GE(slot.selected, 0);
    ASSERT_LT(slot.selected, static_cast<int>(slot.choices.size()));
    for (size_t g = 0; g < slot.genes.size(); ++g) {
      EXPECT_EQ(slot.choices[slot.selected].values[g], genotype[slot.genes[g]]) << slot.name;
    }
    selected.push_back(slot.selected);
  }
  for (const CostCoupling& coupling : decomposition->couplings) {
    for (const auto& [slot, gene] : {std::pair{coupling.first_slot, coupling.first_gene},
                                     std::pair{coupling.second_slot, coupling.second_gene}}) {
      ASSERT_GE(slot, 0);
      ASSERT_LT(slot, static_cast<int>(decomposition->slots.size()));
      const std::vector<int>& slot_genes = decomposition->slots[slot].genes;
      EXPECT_NE(std::find(slot_genes.begin(), slot_genes.end(), gene), slot_genes.end())
          << "coupling gene " << gene << " is not in slot " << decomposition->slots[slot].name;
    }
  }
  ExpectChoicesPriceExactly(space, genotype, *decomposition, selected);
  for (int k = 0; k < combos; ++k) {
    std::vector<int> choices;
    for (const CostSlot& slot : decomposition->slots) {
      choices.push_back(static_cast<int>(rng.Uniform(static_cast<uint32_t>(slot.choices.size()))));
    }
    ExpectChoicesPriceExactly(space, genotype, *decomposition, choices);
  }
}

}  // namespace

int ExpectCostDecompositionExact(const SearchSpace& space, CostSplit split,
                                 const std::vector<Genotype>& genotypes, uint64_t seed, int combos,
                                 int complete_checks) {
  Rng rng(seed);
  int slots_seen = 0;
  for (size_t n = 0; n < genotypes.size(); ++n) {
    ExpectDecompositionExact(space, split, genotypes[n], static_cast<int>(n) < complete_checks,
                             combos, rng, &slots_seen);
  }
  return slots_seen;
}

}  // namespace apq::oface
