#include "oface/restricted_space.h"

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "oface/mbconv_quant_space.h"
#include "oface/mbconv_spec.h"
#include "oface/ofa_mbv3_space.h"
#include "oface/rng.h"
#include "oface/search_space.h"
#include "oface/space_testing.h"

namespace apq::oface {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(UniformBitsSpaceTest, FixesEveryBitwidthAndKeepsTheRest) {
  const std::unique_ptr<SearchSpace> base = NewMbConvQuantSpace(FashionMnistSpec()).value();
  const std::unique_ptr<SearchSpace> eight = NewUniformBitsSpace(*base, 8).value();
  EXPECT_EQ(eight->name(), "fmnist_mbv2@w8a8");
  ASSERT_EQ(eight->genes().size(), base->genes().size());
  EXPECT_EQ(eight->feature_size(), base->feature_size());
  EXPECT_EQ(eight->num_cost_terms(), base->num_cost_terms());
  Rng rng(1);
  for (int i = 0; i < 200; ++i) {
    Genotype genotype = eight->Sample(rng);
    genotype = eight->Mutate(genotype, 0.5, 0.5, rng);
    for (size_t g = 0; g < genotype.size(); ++g) {
      if (IsBitsGene(eight->genes()[g])) {
        ASSERT_EQ(genotype[g], 8) << eight->genes()[g].name;
      }
    }
    const Genotype canonical = eight->Canonical(genotype);
    EXPECT_TRUE(eight->Validate(canonical).ok());
    // The same network in both spaces: one encoding, one JSON.
    std::vector<int32_t> view_features;
    std::vector<int32_t> base_features;
    eight->ActiveFeatures(genotype, &view_features);
    base->ActiveFeatures(genotype, &base_features);
    EXPECT_EQ(view_features, base_features);
    EXPECT_EQ(eight->FromJson(eight->ToJson(genotype)).value(), genotype);
  }
  // A mixed-precision config of the base is outside the view, named by its gene.
  Genotype mixed = base->Sample(rng);
  for (size_t g = 0; g < mixed.size(); ++g) {
    if (IsBitsGene(base->genes()[g])) {
      mixed[g] = 4;
      break;
    }
  }
  const absl::Status status = eight->FromJson(base->ToJson(mixed)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("pw_w_bits_setting[0]: 4 is not one of {8}"));
}

TEST(UniformBitsSpaceTest, KeepsTheBaseRules) {
  // apq_mbv2 bans kernel 7 with 4-bit depthwise activations: at 4 bits no slot has kernel 7.
  const std::unique_ptr<SearchSpace> base = NewApqMbv2Space();
  const std::unique_ptr<SearchSpace> four = NewUniformBitsSpace(*base, 4).value();
  Rng rng(2);
  for (int i = 0; i < 20; ++i) {
    const Genotype genotype = four->Sample(rng);
    for (size_t g = 0; g < genotype.size(); ++g) {
      if (four->genes()[g].name.rfind("ks[", 0) == 0) {
        ASSERT_NE(genotype[g], 7);
      }
    }
  }
}

TEST(UniformBitsSpaceTest, DecomposesCostsWithinItsBits) {
  const std::unique_ptr<SearchSpace> base = NewApqMbv2Space();
  const std::unique_ptr<SearchSpace> six = NewUniformBitsSpace(*base, 6).value();
  std::vector<Genotype> genotypes;
  Rng rng(3);
  for (int i = 0; i < 200; ++i) genotypes.push_back(six->Sample(rng));
  // Every bitwidth slot has the one setting (6, 6).
  EXPECT_GT(ExpectCostDecompositionExact(*six, CostSplit::kBitwidths, genotypes, 4, 2, 200), 0);
  const std::optional<CostDecomposition> bits =
      six->DecomposeCosts(genotypes[0], CostSplit::kBitwidths);
  ASSERT_TRUE(bits.has_value());
  for (const CostSlot& slot : bits->slots) {
    ASSERT_EQ(slot.choices.size(), 1) << slot.name;
    EXPECT_THAT(slot.choices[0].values, ElementsAre(6, 6));
  }
  // A block of mid widths m has 3 kernels x m settings at 6 bits.
  genotypes.resize(5);
  EXPECT_GT(ExpectCostDecompositionExact(*six, CostSplit::kBlocks, genotypes, 5, 20, 5), 0);
  const std::optional<CostDecomposition> blocks =
      six->DecomposeCosts(genotypes[0], CostSplit::kBlocks);
  ASSERT_TRUE(blocks.has_value());
  EXPECT_EQ(blocks->slots[0].choices.size(), 3 * six->genes()[21].choices.size());
}

TEST(UniformBitsSpaceTest, RejectsSpacesWithoutThoseBits) {
  const std::unique_ptr<SearchSpace> base = NewMbConvQuantSpace(FashionMnistSpec()).value();
  absl::Status status = NewUniformBitsSpace(*base, 5).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("uniform_bits: 5 is not a choice"));
  const std::unique_ptr<SearchSpace> ofa = NewOfaMbv3Space();
  status = NewUniformBitsSpace(*ofa, 8).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("no bitwidths"));
}

// The non-bits genes of `genotype` (the architecture part).
std::vector<int> ArchitectureGenes(const SearchSpace& space, const Genotype& genotype) {
  std::vector<int> values;
  for (size_t g = 0; g < genotype.size(); ++g) {
    if (!IsBitsGene(space.genes()[g])) values.push_back(genotype[g]);
  }
  return values;
}

TEST(FixedArchitectureSpaceTest, SearchesBitsAloneOnEverySpaceWithBits) {
  for (const MbConvSpec& spec : {FashionMnistSpec(), FashionMnistLowBitSpec()}) {
    SCOPED_TRACE(spec.name);
    const std::unique_ptr<SearchSpace> base = NewMbConvQuantSpace(spec).value();
    Rng rng(4);
    const Genotype architecture = base->Canonical(base->Sample(rng));
    const std::unique_ptr<SearchSpace> fixed =
        NewFixedArchitectureSpace(*base, architecture).value();
    EXPECT_EQ(fixed->name(), spec.name + "@fixed-arch");
    const std::vector<int> held = ArchitectureGenes(*base, architecture);
    std::set<Genotype> policies;
    for (int i = 0; i < 200; ++i) {
      Genotype genotype = fixed->Sample(rng);
      genotype = fixed->Mutate(genotype, 0.5, 0.5, rng);
      genotype = fixed->Crossover(genotype, fixed->Sample(rng), rng);
      const Genotype canonical = fixed->Canonical(genotype);
      ASSERT_EQ(ArchitectureGenes(*base, canonical), held);
      ASSERT_TRUE(fixed->Validate(canonical).ok());
      EXPECT_EQ(fixed->FromJson(fixed->ToJson(canonical)).value(), canonical);
      policies.insert(canonical);
    }
    // The bits do move: 200 draws of 12 layers' policies are not all one.
    EXPECT_GT(policies.size(), 100);
    // Another architecture is outside the view, named by its gene.
    Genotype other = architecture;
    for (size_t g = 0; g < other.size(); ++g) {
      if (base->genes()[g].name == "ks[0]") other[g] = other[g] == 3 ? 5 : 3;
    }
    const absl::Status status = fixed->FromJson(base->ToJson(other)).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(status.message(), HasSubstr("ks[0]"));
    // Bit allocation over the held architecture: each bitwidth slot keeps the base's choices.
    EXPECT_GT(ExpectCostDecompositionExact(*fixed, CostSplit::kBitwidths, {architecture}, 1, 20, 1),
              0);
  }
}

TEST(FixedArchitectureSpaceTest, ComposesWithUniformBitsIntoOneNetwork) {
  const std::unique_ptr<SearchSpace> base = NewMbConvQuantSpace(FashionMnistLowBitSpec()).value();
  Rng rng(5);
  const Genotype architecture = base->Canonical(base->Sample(rng));
  const std::unique_ptr<SearchSpace> fixed = NewFixedArchitectureSpace(*base, architecture).value();
  const std::unique_ptr<SearchSpace> one = NewUniformBitsSpace(*fixed, 3).value();
  EXPECT_EQ(one->name(), "fmnist_lowbit@fixed-arch@w3a3");
  const Genotype first = one->Canonical(one->Sample(rng));
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(one->Canonical(one->Mutate(one->Sample(rng), 0.5, 0.5, rng)), first);
  }
  EXPECT_EQ(ArchitectureGenes(*base, first), ArchitectureGenes(*base, architecture));
}

TEST(FixedArchitectureSpaceTest, RejectsBadArchitecturesAndSpacesWithoutBits) {
  const std::unique_ptr<SearchSpace> base = NewMbConvQuantSpace(FashionMnistSpec()).value();
  Rng rng(6);
  Genotype outside = base->Sample(rng);
  outside[0] = 999;
  absl::Status status = NewFixedArchitectureSpace(*base, outside).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("fixed_architecture: "));
  EXPECT_THAT(status.message(), HasSubstr(base->genes()[0].name));
  status = NewFixedArchitectureSpace(*base, Genotype(3, 0)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  const std::unique_ptr<SearchSpace> ofa = NewOfaMbv3Space();
  status = NewFixedArchitectureSpace(*ofa, ofa->Sample(rng)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("no bitwidths"));
}

}  // namespace
}  // namespace apq::oface
