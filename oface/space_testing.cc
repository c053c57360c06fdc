#include "oface/space_testing.h"

#include <cstdint>
#include <set>
#include <vector>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
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

}  // namespace apq::oface
