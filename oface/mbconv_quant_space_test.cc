#include "oface/mbconv_quant_space.h"

#include <cstdint>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "oface/mbconv_spec.h"
#include "oface/rng.h"
#include "oface/search_space.h"
#include "oface/space_testing.h"

namespace apq::oface {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

constexpr int kNumLayers = 21;
constexpr int kMidOffset = 21;
constexpr int kPwWOffset = 42;
constexpr int kPwAOffset = 63;
constexpr int kDwWOffset = 84;
constexpr int kDwAOffset = 105;
constexpr int kDOffset = 126;
constexpr int kNumGenes = 132;
constexpr int kArchFeatures = 520;

// Input channels of APQ's 21 layer slots (golden README, "Block geometry").
constexpr int kInChannels[kNumLayers] = {16, 24, 24, 24, 24, 40, 40,  40,  40,  80, 80,
                                         80, 80, 96, 96, 96, 96, 192, 192, 192, 192};

bool IsActive(const Genotype& genotype, int layer) {
  return layer % 4 < genotype[kDOffset + layer / 4];
}

struct GoldenVector {
  nlohmann::json arch_json;
  std::vector<bool> active;
  std::vector<int> mid_channels;
  std::vector<int32_t> features;              // spec2feature(spec, quantize=True)
  std::vector<int32_t> search_time_features;  // spec2feature(spec), bits read as 8
};

std::vector<GoldenVector> LoadGolden() {
  std::ifstream in("tests/testdata/golden_apq_bitfusion.json");
  EXPECT_TRUE(in.good()) << "missing golden file in the runfiles";
  const nlohmann::json doc = nlohmann::json::parse(in);
  std::vector<GoldenVector> golden;
  for (const auto& entry : doc) {
    golden.push_back({entry.at("arch_json"), entry.at("active_block").get<std::vector<bool>>(),
                      entry.at("mid_channels").get<std::vector<int>>(),
                      entry.at("feature_onehot_indices_quantize_true").get<std::vector<int32_t>>(),
                      entry.at("feature_onehot_indices_search_time").get<std::vector<int32_t>>()});
  }
  return golden;
}

// Shared by every test, built once (intentionally leaked, as gtest's own singletons are).
const SearchSpace& Space() {
  static const SearchSpace* const kSpace = NewApqMbv2Space().release();
  return *kSpace;
}
const std::vector<GoldenVector>& Golden() {
  static const std::vector<GoldenVector>* const kGolden =
      new std::vector<GoldenVector>(LoadGolden());
  return *kGolden;
}
// The golden configs, parsed.
const std::vector<Genotype>& GoldenGenotypes() {
  static const std::vector<Genotype>* const kGenotypes = [] {
    auto* parsed = new std::vector<Genotype>();
    for (const GoldenVector& golden : Golden()) {
      const absl::StatusOr<Genotype> genotype = Space().FromJson(golden.arch_json.dump());
      EXPECT_TRUE(genotype.ok()) << genotype.status();
      parsed->push_back(genotype.value_or(Genotype(kNumGenes, 0)));
    }
    return parsed;
  }();
  return *kGenotypes;
}

std::vector<int32_t> Features(const Genotype& genotype) {
  std::vector<int32_t> features;
  Space().ActiveFeatures(genotype, &features);
  return features;
}
std::vector<int32_t> Terms(const Genotype& genotype) {
  std::vector<int32_t> terms;
  Space().CostTerms(genotype, &terms);
  return terms;
}

class ApqMbv2SpaceTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(GoldenGenotypes().size(), 300); }
};

TEST_F(ApqMbv2SpaceTest, Layout) {
  EXPECT_EQ(Space().name(), "apq_mbv2");
  const std::vector<GeneSpec>& genes = Space().genes();
  ASSERT_EQ(genes.size(), kNumGenes);
  int mid_choices = 0;
  for (int i = 0; i < kNumLayers; ++i) {
    EXPECT_EQ(genes[i].name, absl::StrCat("ks[", i, "]"));
    EXPECT_EQ(genes[i].choices, (std::vector<int>{3, 5, 7}));
    EXPECT_EQ(genes[kMidOffset + i].name, absl::StrCat("mid[", i, "]"));
    std::vector<int> mids;
    for (int k = 4 * kInChannels[i]; k < 6 * kInChannels[i] + 8; k += 8) mids.push_back(k);
    EXPECT_EQ(genes[kMidOffset + i].choices, mids);
    mid_choices += static_cast<int>(mids.size());
    int offset = kPwWOffset;
    for (const char* field :
         {"pw_w_bits_setting", "pw_a_bits_setting", "dw_w_bits_setting", "dw_a_bits_setting"}) {
      EXPECT_EQ(genes[offset + i].name, absl::StrCat(field, "[", i, "]"));
      EXPECT_EQ(genes[offset + i].choices, (std::vector<int>{4, 6, 8}));
      offset += kNumLayers;
    }
  }
  EXPECT_EQ(mid_choices, 457);
  EXPECT_EQ(genes[kMidOffset].choices, (std::vector<int>{64, 72, 80, 88, 96}));
  EXPECT_EQ(genes[kMidOffset + 20].choices.size(), 49);
  for (int s = 0; s < 5; ++s) {
    EXPECT_EQ(genes[kDOffset + s].name, absl::StrCat("d[", s, "]"));
    EXPECT_EQ(genes[kDOffset + s].choices, (std::vector<int>{2, 3, 4}));
  }
  EXPECT_EQ(genes[kDOffset + 5].name, "d[5]");
  EXPECT_EQ(genes[kDOffset + 5].choices, (std::vector<int>{1}));

  const std::vector<MutationGroup>& groups = Space().mutation_groups();
  ASSERT_EQ(groups.size(), kNumLayers + 5);
  for (int i = 0; i < kNumLayers; ++i) {
    EXPECT_EQ(groups[i].kind, MutationKind::kBlock);
    EXPECT_EQ(groups[i].genes, (std::vector<int>{i, kMidOffset + i, kPwWOffset + i, kPwAOffset + i,
                                                 kDwWOffset + i, kDwAOffset + i}));
  }
  for (int s = 0; s < 5; ++s) {
    EXPECT_EQ(groups[kNumLayers + s].kind, MutationKind::kDepth);
    EXPECT_EQ(groups[kNumLayers + s].genes, (std::vector<int>{kDOffset + s}));
  }
  EXPECT_EQ(Space().feature_size(), 772);
  EXPECT_EQ(Space().arch_feature_size(), kArchFeatures);
}

TEST_F(ApqMbv2SpaceTest, GoldenConfigsParseExactly) {
  ASSERT_EQ(Golden().size(), 300);
  for (size_t n = 0; n < Golden().size(); ++n) {
    const GoldenVector& golden = Golden()[n];
    const Genotype& genotype = GoldenGenotypes()[n];
    const nlohmann::json& arch = golden.arch_json[0];
    const nlohmann::json& policy = golden.arch_json[1];
    for (int i = 0; i < kNumLayers; ++i) {
      ASSERT_EQ(genotype[i], arch["ks"][i].get<int>()) << n;
      // The reference's make_divisible(e * in_ch, 8), for inactive slots too.
      ASSERT_EQ(genotype[kMidOffset + i], golden.mid_channels[i]) << n << " layer " << i;
      ASSERT_EQ(genotype[kPwWOffset + i], policy["pw_w_bits_setting"][i].get<int>());
      ASSERT_EQ(genotype[kPwAOffset + i], policy["pw_a_bits_setting"][i].get<int>());
      ASSERT_EQ(genotype[kDwWOffset + i], policy["dw_w_bits_setting"][i].get<int>());
      ASSERT_EQ(genotype[kDwAOffset + i], policy["dw_a_bits_setting"][i].get<int>());
      ASSERT_EQ(IsActive(genotype, i), golden.active[i]) << n << " layer " << i;
    }
    for (int s = 0; s < 5; ++s) ASSERT_EQ(genotype[kDOffset + s], arch["d"][s].get<int>());
    // APQ samples d[5] in 2..4 although the last stage has exactly one layer.
    EXPECT_GE(arch["d"][5].get<int>(), 2);
    EXPECT_EQ(genotype[kDOffset + 5], 1);
  }
}

TEST_F(ApqMbv2SpaceTest, GoldenPredictorFeatures) {
  for (size_t n = 0; n < Golden().size(); ++n) {
    const GoldenVector& golden = Golden()[n];
    const Genotype& genotype = GoldenGenotypes()[n];
    EXPECT_THAT(Features(genotype), ElementsAreArray(golden.features)) << "vector " << n;

    // APQ's search-time encoding is the same with every bit at 8.
    Genotype all_eight = genotype;
    for (int g = kPwWOffset; g < kDOffset; ++g) all_eight[g] = 8;
    EXPECT_THAT(Features(all_eight), ElementsAreArray(golden.search_time_features))
        << "vector " << n;

    // The architecture prefix does not depend on the bits.
    std::vector<int32_t> arch_part, search_arch_part;
    for (const int32_t f : golden.features) {
      if (f < kArchFeatures) arch_part.push_back(f);
    }
    for (const int32_t f : golden.search_time_features) {
      if (f < kArchFeatures) search_arch_part.push_back(f);
    }
    EXPECT_EQ(arch_part, search_arch_part);
    // One ks, one mid and four bit features per active layer.
    int active = 0;
    for (const bool a : golden.active) active += a;
    EXPECT_EQ(arch_part.size(), 2 * active);
    EXPECT_EQ(golden.features.size(), 6 * active);
  }
}

TEST_F(ApqMbv2SpaceTest, FeatureBlocksFollowTheConverterLayout) {
  // Every layer active, each gene at its last choice: the last index of each block.
  Genotype genotype(kNumGenes);
  for (int g = 0; g < kNumGenes; ++g) genotype[g] = Space().genes()[g].choices.back();
  const std::vector<int32_t> features = Features(genotype);
  ASSERT_EQ(features.size(), 6 * kNumLayers);
  EXPECT_EQ(features[0], 2);            // ks[0] = 7
  EXPECT_EQ(features[20], 62);          // ks[20] = 7
  EXPECT_EQ(features[21], 63 + 4);      // mid[0] = 96, 5th of 5
  EXPECT_EQ(features[22], 63 + 5 + 6);  // mid[1] = 144, 7th of 7
  EXPECT_EQ(features[41], 519);         // mid[20] = 1152, last of 49
  EXPECT_EQ(features[42], 520 + 2);     // pw_w[0] = 8
  EXPECT_EQ(features[63], 583 + 2);     // pw_a[0] = 8
  EXPECT_EQ(features[84], 646 + 2);     // dw_w[0] = 8
  EXPECT_EQ(features[105], 709 + 2);    // dw_a[0] = 8
  EXPECT_EQ(features.back(), 771);      // dw_a[20] = 8
}

TEST_F(ApqMbv2SpaceTest, CanonicalKeepsFeaturesAndCostTerms) {
  Rng rng(7);
  int changed = 0;
  for (const Genotype& genotype : GoldenGenotypes()) {
    const Genotype canonical = Space().Canonical(genotype);
    ASSERT_TRUE(Space().Validate(canonical).ok());
    EXPECT_EQ(Space().Canonical(canonical), canonical);
    EXPECT_EQ(Features(canonical), Features(genotype));
    EXPECT_EQ(Terms(canonical), Terms(genotype));
    EXPECT_EQ(Space().StaticCosts(canonical)->bitops, Space().StaticCosts(genotype)->bitops);
    for (int i = 0; i < kNumLayers; ++i) {
      for (const int offset : {0, kMidOffset, kPwWOffset, kPwAOffset, kDwWOffset, kDwAOffset}) {
        const int gene = offset + i;
        EXPECT_EQ(canonical[gene],
                  IsActive(genotype, i) ? genotype[gene] : Space().genes()[gene].choices.front());
      }
    }
    for (int g = kDOffset; g < kNumGenes; ++g) EXPECT_EQ(canonical[g], genotype[g]);
    changed += canonical != genotype;

    // Rewriting inactive genes at random (within the rules) changes nothing that counts.
    Genotype scrambled = genotype;
    for (int i = 0; i < kNumLayers; ++i) {
      if (IsActive(scrambled, i)) continue;
      for (const int offset : {0, kMidOffset, kPwWOffset, kPwAOffset, kDwWOffset}) {
        const std::vector<int>& choices = Space().genes()[offset + i].choices;
        scrambled[offset + i] = choices[rng.Uniform(static_cast<uint32_t>(choices.size()))];
      }
      scrambled[kDwAOffset + i] = 6 + 2 * static_cast<int>(rng.Uniform(2));
    }
    ASSERT_TRUE(Space().Validate(scrambled).ok());
    EXPECT_EQ(Space().Canonical(scrambled), canonical);
    EXPECT_EQ(Features(scrambled), Features(genotype));
    EXPECT_EQ(Terms(scrambled), Terms(genotype));
  }
  EXPECT_GT(changed, 250);
}

// Keys built independently from the golden README's recipe.
std::vector<std::string> ReferenceKeys(const nlohmann::json& arch_json,
                                       const std::vector<int>& mid_channels) {
  constexpr int kOut[kNumLayers] = {24, 24, 24, 24, 40, 40,  40,  40,  80,  80, 80,
                                    80, 96, 96, 96, 96, 192, 192, 192, 192, 320};
  constexpr int kH[kNumLayers] = {112, 56, 56, 56, 56, 28, 28, 28, 28, 14, 14,
                                  14,  14, 14, 14, 14, 14, 7,  7,  7,  7};
  constexpr int kStride[kNumLayers] = {2, 1, 1, 1, 2, 1, 1, 1, 2, 1, 1,
                                       1, 1, 1, 1, 1, 2, 1, 1, 1, 1};
  const nlohmann::json& arch = arch_json[0];
  const nlohmann::json& policy = arch_json[1];
  std::vector<std::string> keys = {"head", "tail"};
  for (int i = 0; i < kNumLayers; ++i) {
    if (i % 4 >= arch["d"][i / 4].get<int>()) continue;
    const int mid = mid_channels[i];
    const int ks = arch["ks"][i].get<int>();
    const std::string pw_bits = absl::StrCat("-W", policy["pw_w_bits_setting"][i].get<int>(), "A",
                                             policy["pw_a_bits_setting"][i].get<int>());
    keys.push_back(
        absl::StrCat("(", kInChannels[i], ", ", mid, ", ", kH[i], ", 1, 1, 0, 1)", pw_bits));
    keys.push_back(absl::StrCat("(", mid, ", ", mid, ", ", kH[i], ", ", ks, ", ", kStride[i], ", ",
                                ks / 2, ", ", mid, ")-W", policy["dw_w_bits_setting"][i].get<int>(),
                                "A", policy["dw_a_bits_setting"][i].get<int>()));
    keys.push_back(
        absl::StrCat("(", mid, ", ", kOut[i], ", ", kH[i] / kStride[i], ", 1, 1, 0, 1)", pw_bits));
  }
  return keys;
}

TEST_F(ApqMbv2SpaceTest, CostTermsFollowTheReferenceOrder) {
  const int num_terms = Space().num_cost_terms();
  // 779 conv shapes x 9 bit pairs, minus the A4 pairs of the 148 depthwise 7x7 shapes, plus
  // head and tail: exactly the entries of APQ's BitFusion table.
  EXPECT_EQ(num_terms, 779 * 9 - 148 * 3 + 2);
  std::set<std::string> keys;
  for (int t = 0; t < num_terms; ++t) keys.insert(Space().CostTermKey(t));
  EXPECT_EQ(keys.size(), num_terms);
  EXPECT_EQ(keys.count("head"), 1);
  EXPECT_EQ(keys.count("(1152, 1152, 7, 7, 1, 3, 1152)-W8A4"), 0);
  EXPECT_EQ(keys.count("(1152, 1152, 7, 7, 1, 3, 1152)-W8A6"), 1);

  for (size_t n = 0; n < Golden().size(); ++n) {
    std::vector<std::string> keys_in_order;
    for (const int32_t term : Terms(GoldenGenotypes()[n])) {
      ASSERT_GE(term, 0);
      ASSERT_LT(term, num_terms);
      keys_in_order.push_back(Space().CostTermKey(term));
    }
    EXPECT_EQ(keys_in_order, ReferenceKeys(Golden()[n].arch_json, Golden()[n].mid_channels))
        << "vector " << n;
  }
}

TEST_F(ApqMbv2SpaceTest, CostDecompositionsAreExact) {
  std::vector<Genotype> genotypes = GoldenGenotypes();
  Rng rng(21);
  for (int n = 0; n < 1000; ++n) genotypes.push_back(Space().Sample(rng));
  // Two slots per active layer; completeness checked on every genotype (9 settings a slot).
  int active_layers = 0;
  for (const Genotype& genotype : genotypes) {
    for (int i = 0; i < kNumLayers; ++i) active_layers += IsActive(genotype, i);
  }
  EXPECT_EQ(ExpectCostDecompositionExact(Space(), CostSplit::kBitwidths, genotypes, 22, 10,
                                         static_cast<int>(genotypes.size())),
            2 * active_layers);
  // Blocks: up to 10,584 settings per layer; fewer genotypes, complete on the first three.
  const std::vector<Genotype> some(GoldenGenotypes().begin(), GoldenGenotypes().begin() + 20);
  active_layers = 0;
  for (const Genotype& genotype : some) {
    for (int i = 0; i < kNumLayers; ++i) active_layers += IsActive(genotype, i);
  }
  EXPECT_EQ(ExpectCostDecompositionExact(Space(), CostSplit::kBlocks, some, 23, 50, 3),
            active_layers);
}

TEST_F(ApqMbv2SpaceTest, BitwidthSlotsOfALayer) {
  const Genotype& genotype = GoldenGenotypes()[0];
  const std::optional<CostDecomposition> decomposition =
      Space().DecomposeCosts(genotype, CostSplit::kBitwidths);
  ASSERT_TRUE(decomposition.has_value());
  std::vector<std::string> fixed_keys;
  for (const int32_t term : decomposition->fixed_terms) {
    fixed_keys.push_back(Space().CostTermKey(term));
  }
  EXPECT_EQ(fixed_keys, (std::vector<std::string>{"head", "tail"}));
  // Layer 0 is always active: its pw slot then its dw slot come first.
  ASSERT_GE(decomposition->slots.size(), 2);
  const CostSlot& pw = decomposition->slots[0];
  const CostSlot& dw = decomposition->slots[1];
  EXPECT_EQ(pw.name, "layer 0 pw");
  EXPECT_EQ(pw.genes, (std::vector<int>{kPwWOffset, kPwAOffset}));
  EXPECT_EQ(dw.name, "layer 0 dw");
  EXPECT_EQ(dw.genes, (std::vector<int>{kDwWOffset, kDwAOffset}));
  ASSERT_EQ(pw.choices.size(), 9);
  EXPECT_EQ(dw.choices.size(), genotype[0] == 7 ? 6 : 9);
  // (W4, A6) of both 1x1 convs at the layer's mid width, 112 x 112 input, 56 x 56 output.
  const int mid = genotype[kMidOffset];
  const CostSlotChoice& w4a6 = pw.choices[1];
  EXPECT_THAT(w4a6.values, ElementsAre(4, 6));
  ASSERT_EQ(w4a6.terms.size(), 2);
  EXPECT_EQ(Space().CostTermKey(w4a6.terms[0]),
            absl::StrCat("(16, ", mid, ", 112, 1, 1, 0, 1)-W4A6"));
  EXPECT_EQ(Space().CostTermKey(w4a6.terms[1]),
            absl::StrCat("(", mid, ", 24, 56, 1, 1, 0, 1)-W4A6"));
  const int64_t macs = 112 * 112 * 16 * mid + 56 * 56 * mid * 24;
  EXPECT_EQ(w4a6.static_cost.macs, macs);
  EXPECT_EQ(w4a6.static_cost.bitops, macs * 4 * 6);
  EXPECT_EQ(w4a6.static_cost.size_bytes, (16 * mid + mid * 24) * 4 / 8.0);
}

TEST_F(ApqMbv2SpaceTest, RuleBansKernel7WithFourBitDepthwiseActivations) {
  Genotype genotype = Space().Canonical(GoldenGenotypes()[0]);
  genotype[3] = 7;
  genotype[kDwAOffset + 3] = 4;
  EXPECT_FALSE(Space().SatisfiesRules(genotype));
  absl::Status status = Space().CheckRules(genotype);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("layer 3: ks[3] = 7 with dw_a_bits_setting[3] = 4"));
  EXPECT_EQ(Space().Validate(genotype).message(), status.message());

  // Every slot counts, active or not (APQ's Converter.is_valid).
  genotype = Space().Canonical(GoldenGenotypes()[0]);
  ASSERT_FALSE(IsActive(genotype, 3));
  genotype[3] = 7;
  genotype[kDwAOffset + 3] = 4;
  EXPECT_FALSE(Space().SatisfiesRules(genotype));

  // Other kernel / bit pairs are fine.
  for (const int ks : {3, 5, 7}) {
    for (const int dw_a : {4, 6, 8}) {
      genotype[3] = ks;
      genotype[kDwAOffset + 3] = dw_a;
      EXPECT_EQ(Space().SatisfiesRules(genotype), !(ks == 7 && dw_a == 4));
      EXPECT_EQ(Space().CheckRules(genotype).ok(), !(ks == 7 && dw_a == 4));
    }
  }
}

TEST_F(ApqMbv2SpaceTest, SampleIsValidAndReachesEveryChoice) {
  ExpectSamplesValidAndExhaustive(Space(), 11, 6000);
}

TEST_F(ApqMbv2SpaceTest, MutateIsValidAndFollowsTheGroups) {
  Rng rng(12);
  int changed = 0;
  int depth_changed = 0;
  for (int n = 0; n < 3000; ++n) {
    const Genotype parent = Space().Sample(rng);
    ASSERT_EQ(Space().Mutate(parent, 0.0, 0.0, rng), parent);
    const Genotype mutant = Space().Mutate(parent, 0.1, 0.0, rng);
    ASSERT_TRUE(Space().Validate(mutant).ok());
    const Genotype all = Space().Mutate(parent, 1.0, 0.0, rng);
    ASSERT_TRUE(Space().Validate(all).ok());
    changed += all != parent;
    for (int s = 0; s < 5; ++s) depth_changed += all[kDOffset + s] != parent[kDOffset + s];
    ASSERT_EQ(all[kDOffset + 5], 1);
  }
  EXPECT_EQ(changed, 3000);
  // 2/3 of the depth resamples pick a new depth.
  EXPECT_GT(depth_changed, 9500);
  EXPECT_LT(depth_changed, 10500);
}

TEST_F(ApqMbv2SpaceTest, MutateResamplesALayersSixGenesTogether) {
  Rng rng(13);
  Genotype parent = Space().Canonical(GoldenGenotypes()[1]);
  // Layer 5: ks 3, mid 160 (1 of 11), bits 4.
  for (const int offset : {0, kMidOffset, kPwWOffset, kPwAOffset, kDwWOffset, kDwAOffset}) {
    parent[offset + 5] = Space().genes()[offset + 5].choices.front();
  }
  int all_changed = 0;
  for (int n = 0; n < 4000; ++n) {
    const Genotype mutant = Space().Mutate(parent, 1.0, 0.0, rng);
    bool all = true;
    for (const int offset : {0, kMidOffset, kPwWOffset, kPwAOffset, kDwWOffset, kDwAOffset}) {
      all &= mutant[offset + 5] != parent[offset + 5];
    }
    all_changed += all;
  }
  // The six genes are resampled together and redrawn until the rule holds, so (ks, dw_a)
  // is uniform over the 8 allowed pairs, 4 of which change both: 1/2 x 10/11 x (2/3)^3 = 0.135.
  EXPECT_GT(all_changed, 450);
  EXPECT_LT(all_changed, 630);
}

TEST_F(ApqMbv2SpaceTest, CrossoverTakesEveryGeneFromAParent) {
  ExpectCrossoverMixesParents(Space(), 14, 2000);
}

TEST_F(ApqMbv2SpaceTest, OperatorsAreDeterministicForASeed) {
  ExpectOperatorsDeterministic(Space(), 0.3, 0.0);
}

TEST_F(ApqMbv2SpaceTest, ToJsonWritesApqArchFormat) {
  for (size_t n = 0; n < Golden().size(); ++n) {
    const std::string json = Space().ToJson(GoldenGenotypes()[n]);
    nlohmann::json expected = Golden()[n].arch_json;
    expected[0]["d"][5] = 1;
    // Same structure, same integers and bit-identical e doubles (Python's k / in_ch).
    EXPECT_EQ(nlohmann::json::parse(json), expected) << "vector " << n;
  }
  const std::string json = Space().ToJson(GoldenGenotypes()[0]);
  EXPECT_THAT(json, ::testing::StartsWith(
                        "[{\"wid\":null,\"ks\":[3,3,3,7,5,3,5,5,3,5,3,7,5,7,5,7,3,7,7,5,7],"
                        "\"e\":[4.0,5.333333333333333,"));
  EXPECT_THAT(json, HasSubstr("\"d\":[3,2,3,2,2,1]},{\"pw_w_bits_setting\":[4,8,6,"));
}

TEST_F(ApqMbv2SpaceTest, JsonRoundTrip) {
  ExpectJsonRoundTrip(Space(), GoldenGenotypes(), 15, 1000);
  ExpectJsonInputBounded(Space(), 16);
}

TEST_F(ApqMbv2SpaceTest, FromJsonAcceptsIntegerRatiosAndNoWid) {
  nlohmann::json json = nlohmann::json::parse(Space().ToJson(GoldenGenotypes()[2]));
  json[0].erase("wid");
  json[0]["e"] = std::vector<int>(kNumLayers, 5);  // 5 x Cin is on every layer's grid.
  const absl::StatusOr<Genotype> parsed = Space().FromJson(json.dump(1));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  for (int i = 0; i < kNumLayers; ++i) EXPECT_EQ((*parsed)[kMidOffset + i], 5 * kInChannels[i]);
}

TEST_F(ApqMbv2SpaceTest, StaticCostsAtEightBits) {
  for (const Genotype& genotype : GoldenGenotypes()) {
    Genotype all_eight = genotype;
    for (int g = kPwWOffset; g < kDOffset; ++g) all_eight[g] = 8;
    const std::optional<StaticCost> cost = Space().StaticCosts(all_eight);
    ASSERT_TRUE(cost.has_value());
    EXPECT_EQ(cost->bitops, cost->macs * 64);
    const std::optional<StaticCost> mixed = Space().StaticCosts(genotype);
    EXPECT_EQ(mixed->macs, cost->macs);
    EXPECT_LT(mixed->bitops, cost->bitops);
    EXPECT_LT(mixed->size_bytes, cost->size_bytes);
  }
}

class ApqMbv2BadJsonTest : public ApqMbv2SpaceTest {
 protected:
  // Golden vector 0 in APQ's format, to break one field at a time.
  static nlohmann::json Base() { return Golden()[0].arch_json; }
  static void ExpectRejected(const nlohmann::json& json, const std::string& message_part) {
    ExpectRejected(json.dump(), message_part);
  }
  static void ExpectRejected(const std::string& json, const std::string& message_part) {
    const absl::Status status = Space().FromJson(json).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << json;
    EXPECT_THAT(status.message(), HasSubstr(message_part)) << json;
  }
};

TEST_F(ApqMbv2BadJsonTest, Malformed) {
  ExpectRejected(std::string("[{\"ks\": [3, 5"), "parse error");
  ExpectRejected(std::string("[{\"ks\": [3, 5"), "column");
  ExpectRejected(std::string(""), "parse error");
  ExpectRejected(std::string("{\"ks\": [3]}"), "arch: expected a two-element list");
  nlohmann::json json = Base();
  json.push_back(nlohmann::json::object());
  ExpectRejected(json,
                 "arch: expected a two-element list [{wid, ks, e, d}, {pw_w_bits_setting, "
                 "pw_a_bits_setting, dw_w_bits_setting, dw_a_bits_setting}], got a list of "
                 "3 entries");
  json = Base();
  json[0] = 3;
  ExpectRejected(json, "arch[0]: expected an object with keys wid, ks, e, d, got number");
  json = Base();
  json[1] = nlohmann::json::array();
  ExpectRejected(json, "arch[1]: expected an object with keys pw_w_bits_setting,");
}

TEST_F(ApqMbv2BadJsonTest, UnknownAndMissingKeys) {
  nlohmann::json json = Base();
  json[0]["depth"] = 3;
  ExpectRejected(json, "arch[0]: unknown key \"depth\" (expected wid, ks, e, d)");
  json = Base();
  json[1]["pw_bits"] = 3;
  ExpectRejected(json, "arch[1]: unknown key \"pw_bits\"");
  json = Base();
  json[1]["ks"] = json[0]["ks"];  // An architecture key in the policy half.
  ExpectRejected(json, "arch[1]: unknown key \"ks\"");
  for (const char* field : {"ks", "e", "d"}) {
    json = Base();
    json[0].erase(field);
    ExpectRejected(json, absl::StrCat(field, ": missing"));
  }
  for (const char* field :
       {"pw_w_bits_setting", "pw_a_bits_setting", "dw_w_bits_setting", "dw_a_bits_setting"}) {
    json = Base();
    json[1].erase(field);
    ExpectRejected(json, absl::StrCat(field, ": missing"));
  }
  json = Base();
  json[0]["wid"] = 1.2;
  ExpectRejected(json, "wid: expected null, got 1.2");
}

TEST_F(ApqMbv2BadJsonTest, WrongLengths) {
  nlohmann::json json = Base();
  json[0]["ks"].erase(json[0]["ks"].size() - 1);
  ExpectRejected(json, "ks: expected 21 entries, got 20");
  json = Base();
  json[0]["e"].push_back(4.0);
  ExpectRejected(json, "e: expected 21 entries, got 22");
  json = Base();
  json[0]["d"] = {2, 3, 4, 4, 2};
  ExpectRejected(json, "d: expected 6 entries, got 5");
  json = Base();
  json[1]["dw_w_bits_setting"] = nlohmann::json::array();
  ExpectRejected(json, "dw_w_bits_setting: expected 21 entries, got 0");
}

TEST_F(ApqMbv2BadJsonTest, WrongTypes) {
  nlohmann::json json = Base();
  json[0]["ks"] = "3,5,7";
  ExpectRejected(json, "ks: expected a list of 21 integers, got string");
  json = Base();
  json[0]["e"] = 4.0;
  ExpectRejected(json, "e: expected a list of 21 numbers, got number");
  json = Base();
  json[0]["ks"][3] = "5";
  ExpectRejected(json, "ks[3]: expected an integer, got string");
  json = Base();
  json[0]["e"][2] = "4.0";
  ExpectRejected(json, "e[2]: expected a number, got string");
  json = Base();
  json[0]["e"][2] = true;
  ExpectRejected(json, "e[2]: expected a number, got boolean");
  json = Base();
  json[1]["pw_a_bits_setting"][7] = 6.0;
  ExpectRejected(json, "pw_a_bits_setting[7]: expected an integer, got 6.0");
  json = Base();
  json[0]["d"][0] = nullptr;
  ExpectRejected(json, "d[0]: expected an integer, got null");
}

TEST_F(ApqMbv2BadJsonTest, WidthsOffTheGrid) {
  nlohmann::json json = Base();
  json[0]["e"][3] = 4.1;  // 98.4 channels.
  ExpectRejected(json,
                 "e[3]: 4.1 x 24 input channels = 98.4 mid channels, not on the 8-channel "
                 "grid {96, 104, ..., 144}");
  json = Base();
  json[0]["e"][1] = 4.5;  // 108 channels: an integer, but not a multiple of 8 from 96.
  ExpectRejected(json, "e[1]: 4.5 x 24 input channels = 108 mid channels, not on the 8-channel");
  json = Base();
  json[0]["e"][0] = 3.5;  // 56 channels: below 4 x 16.
  ExpectRejected(json,
                 "e[0]: 3.5 x 16 input channels = 56 mid channels, not on the 8-channel grid "
                 "{64, 72, ..., 96}");
  json = Base();
  json[0]["e"][20] = 6.5;  // Above 6 x 192.
  ExpectRejected(json, "e[20]: 6.5 x 192 input channels = 1248 mid channels");
  json = Base();
  json[0]["e"][20] = 1e300;
  ExpectRejected(json, "e[20]: 1e+300 x 192 input channels");
  json = Base();
  json[0]["e"][20] = -4.0;
  ExpectRejected(json, "e[20]: -4.0 x 192 input channels");
}

TEST_F(ApqMbv2BadJsonTest, ValuesOutsideTheSpace) {
  nlohmann::json json = Base();
  json[0]["ks"][3] = 4;
  ExpectRejected(json, "ks[3]: 4 is not one of {3, 5, 7}");
  json = Base();
  json[1]["pw_w_bits_setting"][2] = 5;
  ExpectRejected(json, "pw_w_bits_setting[2]: 5 is not one of {4, 6, 8}");
  json = Base();
  json[1]["dw_a_bits_setting"][20] = 32;
  ExpectRejected(json, "dw_a_bits_setting[20]: 32 is not one of {4, 6, 8}");
  json = Base();
  json[1]["pw_a_bits_setting"][0] = 4294967302ULL;  // Would wrap to 6 in a 32-bit int.
  ExpectRejected(json, "pw_a_bits_setting[0]: 4294967302 is not one of {4, 6, 8}");
  json = Base();
  json[0]["d"][1] = 5;
  ExpectRejected(json, "d[1]: 5 is not one of {2, 3, 4}");
  json = Base();
  json[0]["d"][4] = 1;
  ExpectRejected(json, "d[4]: 1 is not one of {2, 3, 4}");
  json = Base();
  json[0]["d"][5] = 5;
  ExpectRejected(json,
                 "d[5]: 5 is not one of {1, ..., 4} (stage 5 always has 1 layer; the "
                 "reference's arch JSON may hold up to 4 there, read as 1)");
  json = Base();
  json[0]["d"][5] = 0;
  ExpectRejected(json, "d[5]: 0 is not one of {1, ..., 4}");
  for (const int d : {1, 2, 3, 4}) {
    json = Base();
    json[0]["d"][5] = d;
    EXPECT_TRUE(Space().FromJson(json.dump()).ok()) << d;
  }
}

TEST_F(ApqMbv2BadJsonTest, BannedKernelAndBitsPair) {
  nlohmann::json json = Base();
  ASSERT_EQ(json[0]["ks"][3], 7);
  json[1]["dw_a_bits_setting"][3] = 4;
  ExpectRejected(json, "layer 3: ks[3] = 7 with dw_a_bits_setting[3] = 4 is not allowed");
  json = Base();
  json[0]["ks"][0] = 7;  // dw_a_bits_setting[0] is 6.
  EXPECT_TRUE(Space().FromJson(json.dump()).ok());
}

// A Fashion-MNIST-sized spec: small enough to price by hand.
MbConvSpec TinySpec() {
  MbConvSpec spec;
  spec.name = "tiny";
  spec.input_size = 8;
  spec.input_channels = 1;
  spec.first_conv_channels = 4;
  spec.first_conv_kernel = 3;
  spec.first_conv_stride = 2;
  spec.first_block_channels = 8;
  spec.first_block_kernel = 3;
  spec.first_block_stride = 1;
  spec.stages = {{8, 16, 2, 1, 2}};
  spec.feature_mix_channels = 32;
  spec.num_classes = 10;
  spec.kernel_sizes = {3, 5};
  spec.min_expand = 1;
  spec.max_expand = 2;
  spec.width_step = 8;
  spec.bit_choices = {4, 8};
  spec.fixed_bits = 8;
  spec.banned_kernel_dw_a_bits = {{5, 4}};
  return spec;
}

TEST(MbConvQuantSpaceTest, TinySpecLayout) {
  absl::StatusOr<std::unique_ptr<SearchSpace>> space = NewMbConvQuantSpace(TinySpec());
  ASSERT_TRUE(space.ok()) << space.status();
  const SearchSpace& tiny = **space;
  EXPECT_EQ(tiny.name(), "tiny");
  // 2 layers x 6 genes + 1 depth.
  ASSERT_EQ(tiny.genes().size(), 13);
  EXPECT_EQ(tiny.genes()[2].name, "mid[0]");
  EXPECT_EQ(tiny.genes()[2].choices, (std::vector<int>{8, 16}));       // range(8, 24, 8)
  EXPECT_EQ(tiny.genes()[3].choices, (std::vector<int>{16, 24, 32}));  // range(16, 40, 8)
  EXPECT_EQ(tiny.genes()[12].name, "d[0]");
  EXPECT_EQ(tiny.genes()[12].choices, (std::vector<int>{1, 2}));
  EXPECT_EQ(tiny.arch_feature_size(), 2 * 2 + 2 + 3);
  EXPECT_EQ(tiny.feature_size(), 9 + 4 * 2 * 2);
  // head, tail; per slot and mid: 4 pw1 + 4 pw2 + 4 + 2 dw (kernel 5 lacks A4); the shape
  // (16, 16, 2, 1, 1, 0, 1) is layer 0's projection at mid 16 and both of layer 1's 1x1 convs
  // at mid 16, so its 4 keys count once instead of three times.
  EXPECT_EQ(tiny.num_cost_terms(), 2 + (2 + 3) * (4 + 4 + 4 + 2) - 2 * 4);

  const absl::StatusOr<Genotype> genotype = tiny.FromJson(
      R"([{"wid": null, "ks": [3, 5], "e": [2.0, 1.5], "d": [2]},
          {"pw_w_bits_setting": [4, 8], "pw_a_bits_setting": [8, 4],
           "dw_w_bits_setting": [8, 4], "dw_a_bits_setting": [4, 8]}])");
  ASSERT_TRUE(genotype.ok()) << genotype.status();
  EXPECT_EQ(*genotype, (Genotype{3, 5, 16, 24, 4, 8, 8, 4, 8, 4, 4, 8, 2}));
  std::vector<int32_t> features;
  tiny.ActiveFeatures(*genotype, &features);
  EXPECT_EQ(features, (std::vector<int32_t>{0, 3, 4 + 1, 6 + 1, 9 + 0, 9 + 2 + 1, 13 + 1,
                                            13 + 2 + 0, 17 + 1, 17 + 2 + 0, 21 + 0, 21 + 2 + 1}));
  std::vector<int32_t> terms;
  tiny.CostTerms(*genotype, &terms);
  std::vector<std::string> keys;
  keys.reserve(terms.size());
  for (const int32_t term : terms) keys.push_back(tiny.CostTermKey(term));
  EXPECT_EQ(keys,
            (std::vector<std::string>{
                "head", "tail", "(8, 16, 4, 1, 1, 0, 1)-W4A8", "(16, 16, 4, 3, 2, 1, 16)-W8A4",
                "(16, 16, 2, 1, 1, 0, 1)-W4A8", "(16, 24, 2, 1, 1, 0, 1)-W8A4",
                "(24, 24, 2, 5, 1, 2, 24)-W4A8", "(24, 16, 2, 1, 1, 0, 1)-W8A4"}));
  EXPECT_EQ(tiny.FromJson(tiny.ToJson(*genotype)).value(), *genotype);
}

TEST(MbConvQuantSpaceTest, FixedLayersAsConvKeys) {
  MbConvSpec spec = TinySpec();
  spec.fixed_layer_costs = FixedLayerCosts::kConvKeys;
  const std::unique_ptr<SearchSpace> tiny = NewMbConvQuantSpace(spec).value();
  // Five fixed conv keys instead of head and tail; the feature mix (16, 32, 2, 1, 1, 0, 1)-W8A8
  // is also layer 1's expand conv at mid 32, so it counts once.
  EXPECT_EQ(tiny->num_cost_terms(), 5 - 1 + (2 + 3) * (4 + 4 + 4 + 2) - 2 * 4);
  std::vector<int32_t> terms;
  tiny->CostTerms({3, 5, 16, 24, 4, 8, 8, 4, 8, 4, 4, 8, 1}, &terms);
  ASSERT_EQ(terms.size(), 5 + 3);
  std::vector<std::string> keys;
  keys.reserve(5);
  for (int i = 0; i < 5; ++i) keys.push_back(tiny->CostTermKey(terms[i]));
  // 8x8x1 -> stem conv 3x3 s2 to 4 channels at 4x4 -> first block dw 3x3 and pw 4 -> 8;
  // stage to 16 channels at 2x2 -> feature mix 16 -> 32 -> classifier 32 -> 10.
  EXPECT_EQ(keys,
            (std::vector<std::string>{"(1, 4, 8, 3, 2, 1, 1)-W8A8", "(4, 4, 4, 3, 1, 1, 4)-W8A8",
                                      "(4, 8, 4, 1, 1, 0, 1)-W8A8", "(16, 32, 2, 1, 1, 0, 1)-W8A8",
                                      "(32, 10, 1, 1, 1, 0, 1)-W8A8"}));
  EXPECT_EQ(tiny->CostTermKey(terms[5]), "(8, 16, 4, 1, 1, 0, 1)-W4A8");
}

TEST(MbConvQuantSpaceTest, StaticCostsByHand) {
  const std::unique_ptr<SearchSpace> tiny = NewMbConvQuantSpace(TinySpec()).value();
  // Layer 0: ks 3, mid 16, pw W4A8, dw W8A4; layer 1: ks 5, mid 24, pw W8A4, dw W4A8.
  Genotype genotype = {3, 5, 16, 24, 4, 8, 8, 4, 8, 4, 4, 8, 1};

  // Fixed part at 8 bits (8x8 input -> 4x4 after the stride-2 stem conv, 2x2 after the stage):
  //   first conv 1 -> 4, 3x3:  36 params, 16 x 36 =  576 MACs
  //   first block dw 4, 3x3:   36 params, 16 x 36 =  576 MACs
  //   first block pw 4 -> 8:   32 params, 16 x 32 =  512 MACs
  //   feature mix 16 -> 32:   512 params,  4 x 512 = 2048 MACs
  //   classifier 32 -> 10:    320 params,            320 MACs
  //   936 params x 8 bits = 7488 bits; 4032 MACs x 64 = 258048 bitops.
  // Layer 0 (8 -> 16, stride 2, 4x4 in, 2x2 out):
  //   pw1 8 -> 16:  128 params x 4 bits =  512; 16 x 128 = 2048 MACs x 4 x 8 = 65536
  //   dw 16, 3x3:   144 params x 8 bits = 1152;  4 x 144 =  576 MACs x 8 x 4 = 18432
  //   pw2 16 -> 16: 256 params x 4 bits = 1024;  4 x 256 = 1024 MACs x 4 x 8 = 32768
  std::optional<StaticCost> cost = tiny->StaticCosts(genotype);
  ASSERT_TRUE(cost.has_value());
  EXPECT_EQ(cost->size_bytes, (7488 + 512 + 1152 + 1024) / 8.0);
  EXPECT_EQ(cost->macs, 4032 + 2048 + 576 + 1024);
  EXPECT_EQ(cost->bitops, 258048 + 65536 + 18432 + 32768);

  // Layer 1 (16 -> 16, stride 1, 2x2):
  //   pw1 16 -> 24: 384 params x 8 bits = 3072; 4 x 384 = 1536 MACs x 8 x 4 = 49152
  //   dw 24, 5x5:   600 params x 4 bits = 2400; 4 x 600 = 2400 MACs x 4 x 8 = 76800
  //   pw2 24 -> 16: 384 params x 8 bits = 3072; 4 x 384 = 1536 MACs x 8 x 4 = 49152
  genotype.back() = 2;
  cost = tiny->StaticCosts(genotype);
  EXPECT_EQ(cost->size_bytes, (7488 + 512 + 1152 + 1024 + 3072 + 2400 + 3072) / 8.0);
  EXPECT_EQ(cost->macs, 7680 + 1536 + 2400 + 1536);
  EXPECT_EQ(cost->bitops, 374784 + 49152 + 76800 + 49152);
}

TEST(MbConvQuantSpaceTest, CostDecompositionByHand) {
  const std::unique_ptr<SearchSpace> tiny = NewMbConvQuantSpace(TinySpec()).value();
  // Layer 0: ks 3, mid 16, pw W4A8, dw W8A4; layer 1 (active at d = 2): ks 5, mid 24, pw W8A4,
  // dw W4A8. Static figures as in StaticCostsByHand.
  const Genotype genotype = {3, 5, 16, 24, 4, 8, 8, 4, 8, 4, 4, 8, 2};
  const std::optional<CostDecomposition> bits =
      tiny->DecomposeCosts(genotype, CostSplit::kBitwidths);
  ASSERT_TRUE(bits.has_value());
  EXPECT_EQ(bits->fixed_static_cost.size_bytes, 7488 / 8.0);
  EXPECT_EQ(bits->fixed_static_cost.bitops, 258048);
  ASSERT_EQ(bits->slots.size(), 4);
  std::vector<std::string> names;
  for (const CostSlot& slot : bits->slots) names.push_back(slot.name);
  EXPECT_EQ(names,
            (std::vector<std::string>{"layer 0 pw", "layer 0 dw", "layer 1 pw", "layer 1 dw"}));
  // Layer 0 pw at W4A8, the genotype's own: both 1x1 convs.
  const CostSlot& pw0 = bits->slots[0];
  EXPECT_EQ(pw0.genes, (std::vector<int>{4, 6}));
  ASSERT_EQ(pw0.choices.size(), 4);
  EXPECT_EQ(pw0.selected, 1);
  EXPECT_THAT(pw0.choices[1].values, ElementsAre(4, 8));
  EXPECT_EQ(pw0.choices[1].static_cost.size_bytes, (512 + 1024) / 8.0);
  EXPECT_EQ(pw0.choices[1].static_cost.macs, 2048 + 1024);
  EXPECT_EQ(pw0.choices[1].static_cost.bitops, 65536 + 32768);
  std::vector<std::string> keys;
  for (const int32_t term : pw0.choices[1].terms) keys.push_back(tiny->CostTermKey(term));
  EXPECT_EQ(keys, (std::vector<std::string>{"(8, 16, 4, 1, 1, 0, 1)-W4A8",
                                            "(16, 16, 2, 1, 1, 0, 1)-W4A8"}));
  // Layer 1 dw: kernel 5 bans 4-bit activations, so W4A8 is the second of (4,8), (8,8).
  const CostSlot& dw1 = bits->slots[3];
  EXPECT_EQ(dw1.genes, (std::vector<int>{9, 11}));
  ASSERT_EQ(dw1.choices.size(), 2);
  EXPECT_THAT(dw1.choices[0].values, ElementsAre(4, 8));
  EXPECT_THAT(dw1.choices[1].values, ElementsAre(8, 8));
  EXPECT_EQ(dw1.selected, 0);
  EXPECT_EQ(dw1.choices[0].static_cost.size_bytes, 2400 / 8.0);
  EXPECT_EQ(dw1.choices[0].static_cost.bitops, 76800);
  ASSERT_EQ(dw1.choices[0].terms.size(), 1);
  EXPECT_EQ(tiny->CostTermKey(dw1.choices[0].terms[0]), "(24, 24, 2, 5, 1, 2, 24)-W4A8");

  // Blocks: layer 0 has 2 kernels x 2 mids x 16 bit settings, less kernel 5's 2 x 8 with dw A4;
  // layer 1 has 3 mids.
  const std::optional<CostDecomposition> blocks =
      tiny->DecomposeCosts(genotype, CostSplit::kBlocks);
  ASSERT_TRUE(blocks.has_value());
  ASSERT_EQ(blocks->slots.size(), 2);
  EXPECT_EQ(blocks->slots[0].name, "layer 0");
  EXPECT_EQ(blocks->slots[0].genes, (std::vector<int>{0, 2, 4, 6, 8, 10}));
  EXPECT_EQ(blocks->slots[0].choices.size(), 2 * 16 + 2 * 8);
  EXPECT_EQ(blocks->slots[1].choices.size(), 3 * 16 + 3 * 8);
  const CostSlotChoice& own = blocks->slots[1].choices[blocks->slots[1].selected];
  EXPECT_THAT(own.values, ElementsAre(5, 24, 8, 4, 4, 8));
  EXPECT_EQ(own.static_cost.size_bytes, (3072 + 2400 + 3072) / 8.0);
  EXPECT_EQ(own.static_cost.bitops, 49152 + 76800 + 49152);

  // At depth 1 only layer 0 is a slot; layer 1's genes keep their values and cost nothing.
  Genotype shallow = genotype;
  shallow.back() = 1;
  EXPECT_EQ(tiny->DecomposeCosts(shallow, CostSplit::kBitwidths)->slots.size(), 2);
  EXPECT_EQ(tiny->DecomposeCosts(shallow, CostSplit::kBlocks)->slots.size(), 1);

  // Shared keys (layer 0's projection and layer 1's 1x1 convs at mid 16, the feature mix and
  // layer 1's expand conv at mid 32) are separate occurrences, each in one part.
  MbConvSpec conv_keys = TinySpec();
  conv_keys.fixed_layer_costs = FixedLayerCosts::kConvKeys;
  const std::unique_ptr<SearchSpace> keyed = NewMbConvQuantSpace(conv_keys).value();
  std::vector<Genotype> genotypes;
  genotypes.reserve(300);
  Rng rng(31);
  for (int n = 0; n < 300; ++n) genotypes.push_back(keyed->Sample(rng));
  for (const CostSplit split : {CostSplit::kBitwidths, CostSplit::kBlocks}) {
    EXPECT_GT(ExpectCostDecompositionExact(*keyed, split, genotypes, 32, 20, 300), 300);
    EXPECT_GT(ExpectCostDecompositionExact(*tiny, split, genotypes, 33, 20, 300), 300);
  }
}

// Both splits of `space` exact on `count` sampled genotypes (kBlocks on a tenth of them), each
// with at least six active layers.
void ExpectSampledDecompositionsExact(const SearchSpace& space, int count, uint64_t seed) {
  std::vector<Genotype> genotypes;
  genotypes.reserve(count);
  Rng rng(seed);
  for (int n = 0; n < count; ++n) genotypes.push_back(space.Sample(rng));
  EXPECT_GT(
      ExpectCostDecompositionExact(space, CostSplit::kBitwidths, genotypes, seed + 1, 10, count),
      2 * 6 * count);
  genotypes.resize(count / 10);
  EXPECT_GT(ExpectCostDecompositionExact(space, CostSplit::kBlocks, genotypes, seed + 2, 20, 5),
            6 * (count / 10));
}

TEST(MbConvQuantSpaceTest, FashionMnistCostDecompositionsAreExact) {
  ExpectSampledDecompositionsExact(*NewMbConvQuantSpace(FashionMnistSpec()).value(), 1000, 41);
}

// In fmnist_int8float a float layer next to an int8 one pays the change of precision of the
// tensor between them (where the int8 export quantizes or dequantizes it).
TEST(MbConvQuantSpaceTest, Int8FloatSpaceChargesChangesOfPrecisionWhereLayersMeet) {
  const std::unique_ptr<SearchSpace> space =
      NewMbConvQuantSpace(FashionMnistInt8FloatSpec()).value();
  const std::vector<GeneSpec>& genes = space->genes();
  // Every layer at `bits`, depths 2, 2, 2, widths at their smallest.
  const auto uniform = [&](int bits) {
    Genotype genotype;
    for (const GeneSpec& gene : genes) {
      const bool is_bits = gene.name.find("bits_setting") != std::string::npos;
      const bool is_depth = gene.name.rfind("d[", 0) == 0;
      genotype.push_back(is_bits ? bits : is_depth ? 2 : gene.choices.front());
    }
    return genotype;
  };
  const auto gene = [&](const std::string& name) {
    for (size_t g = 0; g < genes.size(); ++g) {
      if (genes[g].name == name) return static_cast<int>(g);
    }
    ADD_FAILURE() << "no gene " << name;
    return 0;
  };
  const auto changes = [&](const Genotype& genotype) {
    std::vector<int32_t> terms;
    space->CostTerms(genotype, &terms);
    std::multiset<std::string> keys;
    for (const int32_t term : terms) {
      const std::string key = space->CostTermKey(term);
      if (key.find("quantize") != std::string::npos) keys.insert(key);
    }
    return keys;
  };
  EXPECT_TRUE(changes(uniform(8)).empty());
  // All float: the stem's first block (16 channels at 14x14, adding its input) hands over two
  // tensors, its output and the residual input; the last block (48 at 4x4, residual) likewise.
  EXPECT_EQ(changes(uniform(32)),
            (std::multiset<std::string>{"(16, 14)-dequantize", "(16, 14)-dequantize",
                                        "(48, 4)-quantize", "(48, 4)-quantize"}));
  // Layer 0 (16 -> 24, stride 2 from 14x14, mid 48) with its depthwise conv in float: the
  // expand conv's output is dequantized, the depthwise conv's quantized.
  Genotype depthwise_float = uniform(8);
  depthwise_float[gene("dw_w_bits_setting[0]")] = 32;
  depthwise_float[gene("dw_a_bits_setting[0]")] = 32;
  EXPECT_EQ(changes(depthwise_float),
            (std::multiset<std::string>{"(48, 14)-dequantize", "(48, 7)-quantize"}));
  // Layer 1 (24 -> 24 at 7x7, mid 72) with its 1x1 convs in float: its input (layer 0's
  // output, no residual) is dequantized, and its output and residual input quantized for
  // layer 4; inside it, the depthwise conv's input is quantized and its output dequantized.
  Genotype pointwise_float = uniform(8);
  pointwise_float[gene("pw_w_bits_setting[1]")] = 32;
  pointwise_float[gene("pw_a_bits_setting[1]")] = 32;
  EXPECT_EQ(
      changes(pointwise_float),
      (std::multiset<std::string>{"(24, 7)-dequantize", "(72, 7)-quantize", "(72, 7)-dequantize",
                                  "(24, 7)-quantize", "(24, 7)-quantize"}));
  // A space without a float choice has no such term.
  const std::unique_ptr<SearchSpace> mbv2 = NewMbConvQuantSpace(FashionMnistSpec()).value();
  for (int term = 0; term < mbv2->num_cost_terms(); ++term) {
    EXPECT_EQ(mbv2->CostTermKey(term).find("quantize"), std::string::npos);
  }
}

TEST(MbConvQuantSpaceTest, Int8FloatCostDecompositionsAreExact) {
  const std::unique_ptr<SearchSpace> space =
      NewMbConvQuantSpace(FashionMnistInt8FloatSpec()).value();
  ExpectSampledDecompositionsExact(*space, 500, 47);
  // The couplings are there: per active layer its pw and dw slots, per pair of consecutive
  // layers their pw slots.
  Rng rng(50);
  const Genotype genotype = space->Sample(rng);
  const std::optional<CostDecomposition> bitwidths =
      space->DecomposeCosts(genotype, CostSplit::kBitwidths);
  ASSERT_TRUE(bitwidths.has_value());
  const size_t layers = bitwidths->slots.size() / 2;
  EXPECT_EQ(bitwidths->couplings.size(), 2 * layers - 1);
  const std::optional<CostDecomposition> blocks =
      space->DecomposeCosts(genotype, CostSplit::kBlocks);
  ASSERT_TRUE(blocks.has_value());
  EXPECT_EQ(blocks->couplings.size(), blocks->slots.size() - 1);
}

// ToJson joins its text by hand; the JSON library, dumping what it parses from that text,
// must write it back byte for byte (same layout, same shortest doubles), in every spec.
TEST(MbConvQuantSpaceTest, ToJsonIsTheJsonLibrarysCompactText) {
  for (const MbConvSpec& spec :
       {ApqMbv2Spec(), FashionMnistSpec(), FashionMnistLowBitSpec(), TinySpec()}) {
    const std::unique_ptr<SearchSpace> space = NewMbConvQuantSpace(spec).value();
    Rng rng(53);
    for (int n = 0; n < 500; ++n) {
      const Genotype genotype = space->Canonical(space->Sample(rng));
      const std::string json = space->ToJson(genotype);
      ASSERT_EQ(nlohmann::ordered_json::parse(json).dump(), json) << spec.name << " sample " << n;
      ASSERT_EQ(space->FromJson(json).value(), genotype) << spec.name << " sample " << n;
    }
  }
}

TEST(MbConvQuantSpaceTest, RejectsBadSpecs) {
  MbConvSpec spec = TinySpec();
  spec.stages[0].in_channels = 12;
  absl::StatusOr<std::unique_ptr<SearchSpace>> space = NewMbConvQuantSpace(spec);
  EXPECT_EQ(space.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(space.status().message(), HasSubstr("stages[0].in_channels"));
}

}  // namespace
}  // namespace apq::oface
