#include "oface/ofa_mbv3_space.h"

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
#include "oface/rng.h"
#include "oface/search_space.h"
#include "oface/space_testing.h"

namespace apq::oface {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr int kNumBlocks = 20;
constexpr int kEOffset = 20;
constexpr int kDOffset = 40;
constexpr int kROffset = 45;
constexpr int kNumGenes = 46;

bool IsActive(const Genotype& genotype, int block) {
  return block % 4 < genotype[kDOffset + block / 4];
}

struct GoldenVector {
  Genotype genotype;
  std::vector<bool> active;
  std::vector<int32_t> features;
};

Genotype GenotypeOf(const nlohmann::json& arch) {
  Genotype genotype;
  for (const char* field : {"ks", "e", "d"}) {
    for (const auto& value : arch.at(field)) genotype.push_back(value.get<int>());
  }
  genotype.push_back(arch.at("r").get<int>());
  return genotype;
}

std::vector<GoldenVector> LoadGolden() {
  std::ifstream in("tests/testdata/golden_ofa_mbv3_note10.json");
  EXPECT_TRUE(in.good()) << "missing golden file in the runfiles";
  const nlohmann::json doc = nlohmann::json::parse(in);
  std::vector<GoldenVector> golden;
  for (const auto& entry : doc) {
    golden.push_back({GenotypeOf(entry), entry.at("active_block").get<std::vector<bool>>(),
                      entry.at("feature_onehot_indices").get<std::vector<int32_t>>()});
  }
  return golden;
}

class OfaMbv3SpaceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { golden_ = new std::vector<GoldenVector>(LoadGolden()); }
  static void TearDownTestSuite() { delete golden_; }

  std::vector<int32_t> Features(const Genotype& genotype) const {
    std::vector<int32_t> features;
    space_->ActiveFeatures(genotype, &features);
    return features;
  }
  std::vector<int32_t> Terms(const Genotype& genotype) const {
    std::vector<int32_t> terms;
    space_->CostTerms(genotype, &terms);
    return terms;
  }
  absl::Status FromJsonStatus(const std::string& json) const {
    return space_->FromJson(json).status();
  }

  static std::vector<GoldenVector>* golden_;
  const std::unique_ptr<SearchSpace> space_ = NewOfaMbv3Space();
};

std::vector<GoldenVector>* OfaMbv3SpaceTest::golden_ = nullptr;

TEST_F(OfaMbv3SpaceTest, Layout) {
  EXPECT_EQ(space_->name(), "ofa_mbv3");
  const std::vector<GeneSpec>& genes = space_->genes();
  ASSERT_EQ(genes.size(), kNumGenes);
  for (int i = 0; i < kNumBlocks; ++i) {
    EXPECT_EQ(genes[i].name, absl::StrCat("ks[", i, "]"));
    EXPECT_EQ(genes[i].choices, (std::vector<int>{3, 5, 7}));
    EXPECT_EQ(genes[kEOffset + i].name, absl::StrCat("e[", i, "]"));
    EXPECT_EQ(genes[kEOffset + i].choices, (std::vector<int>{3, 4, 6}));
  }
  for (int s = 0; s < 5; ++s) {
    EXPECT_EQ(genes[kDOffset + s].name, absl::StrCat("d[", s, "]"));
    EXPECT_EQ(genes[kDOffset + s].choices, (std::vector<int>{2, 3, 4}));
  }
  EXPECT_EQ(genes[kROffset].name, "r");
  EXPECT_EQ(genes[kROffset].choices, (std::vector<int>{160, 176, 192, 208, 224}));

  const std::vector<MutationGroup>& groups = space_->mutation_groups();
  ASSERT_EQ(groups.size(), 26);
  EXPECT_EQ(groups[0].kind, MutationKind::kResolution);
  EXPECT_EQ(groups[0].genes, (std::vector<int>{kROffset}));
  for (int i = 0; i < kNumBlocks; ++i) {
    EXPECT_EQ(groups[1 + i].kind, MutationKind::kBlock);
    EXPECT_EQ(groups[1 + i].genes, (std::vector<int>{i, kEOffset + i}));
  }
  for (int s = 0; s < 5; ++s) {
    EXPECT_EQ(groups[21 + s].kind, MutationKind::kDepth);
    EXPECT_EQ(groups[21 + s].genes, (std::vector<int>{kDOffset + s}));
  }
  EXPECT_EQ(space_->feature_size(), 128);
  // No quantization policy: the whole encoding is architecture, and no static costs.
  EXPECT_EQ(space_->arch_feature_size(), 128);
  EXPECT_FALSE(space_->StaticCosts((*golden_)[0].genotype).has_value());
}

TEST_F(OfaMbv3SpaceTest, GoldenVectorsValidateAndEncodeExactly) {
  ASSERT_EQ(golden_->size(), 300);
  for (size_t n = 0; n < golden_->size(); ++n) {
    const GoldenVector& golden = (*golden_)[n];
    ASSERT_TRUE(space_->Validate(golden.genotype).ok()) << "vector " << n;
    for (int i = 0; i < kNumBlocks; ++i) {
      ASSERT_EQ(IsActive(golden.genotype, i), golden.active[i]) << "vector " << n;
    }
    EXPECT_THAT(Features(golden.genotype), ElementsAreArray(golden.features)) << "vector " << n;
  }
}

TEST_F(OfaMbv3SpaceTest, CanonicalKeepsFeaturesAndCostTerms) {
  Rng rng(7);
  int changed = 0;
  for (const GoldenVector& golden : *golden_) {
    const Genotype canonical = space_->Canonical(golden.genotype);
    ASSERT_TRUE(space_->Validate(canonical).ok());
    EXPECT_EQ(space_->Canonical(canonical), canonical);
    EXPECT_EQ(Features(canonical), Features(golden.genotype));
    EXPECT_EQ(Terms(canonical), Terms(golden.genotype));
    for (int i = 0; i < kNumBlocks; ++i) {
      if (IsActive(golden.genotype, i)) {
        EXPECT_EQ(canonical[i], golden.genotype[i]);
        EXPECT_EQ(canonical[kEOffset + i], golden.genotype[kEOffset + i]);
      } else {
        EXPECT_EQ(canonical[i], 3);
        EXPECT_EQ(canonical[kEOffset + i], 3);
      }
    }
    for (int g = kDOffset; g < kNumGenes; ++g) EXPECT_EQ(canonical[g], golden.genotype[g]);
    changed += canonical != golden.genotype;

    // Rewriting inactive genes at random changes neither the encoding nor the cost terms.
    Genotype scrambled = golden.genotype;
    for (int i = 0; i < kNumBlocks; ++i) {
      if (IsActive(scrambled, i)) continue;
      scrambled[i] = 3 + 2 * static_cast<int>(rng.Uniform(3));
      scrambled[kEOffset + i] = std::vector<int>{3, 4, 6}[rng.Uniform(3)];
    }
    EXPECT_EQ(space_->Canonical(scrambled), canonical);
    EXPECT_EQ(Features(scrambled), golden.features);
    EXPECT_EQ(Terms(scrambled), Terms(golden.genotype));
  }
  // The golden inactive genes are random leftovers, so Canonical must rewrite most vectors.
  EXPECT_GT(changed, 200);
}

TEST_F(OfaMbv3SpaceTest, CostTermsFollowTheReferenceOrder) {
  const int num_terms = space_->num_cost_terms();
  // Per resolution: 6 fixed layers plus 9 (ks, e) variants of 10 distinct block shapes.
  EXPECT_EQ(num_terms, 5 * 96);
  std::set<std::string> keys;
  for (int t = 0; t < num_terms; ++t) keys.insert(space_->CostTermKey(t));
  EXPECT_EQ(keys.size(), num_terms);

  for (const GoldenVector& golden : *golden_) {
    const std::vector<int32_t> terms = Terms(golden.genotype);
    int active = 0;
    for (const bool a : golden.active) active += a;
    ASSERT_EQ(terms.size(), 2 + active + 4);
    const std::string prefix = absl::StrCat(golden.genotype[kROffset], "/");
    for (const int32_t term : terms) {
      ASSERT_GE(term, 0);
      ASSERT_LT(term, num_terms);
      EXPECT_THAT(space_->CostTermKey(term), StartsWith(prefix));
    }
    EXPECT_THAT(space_->CostTermKey(terms[0]), StartsWith(prefix + "Conv-input:"));
    EXPECT_THAT(space_->CostTermKey(terms[terms.size() - 1]), StartsWith(prefix + "Logits-"));
  }

  // The tutorial arch at r = 192, key by key as the golden README builds them.
  Genotype genotype = {5, 3, 3, 3, 5, 3, 3, 3, 7, 7, 3, 3, 5, 5, 7, 3, 3, 3, 5, 3, 3, 3, 3,
                       3, 4, 4, 3, 3, 6, 3, 4, 3, 4, 4, 4, 3, 6, 6, 6, 3, 2, 2, 3, 4, 3, 192};
  std::vector<std::string> keys_in_order;
  for (const int32_t term : Terms(genotype)) keys_in_order.push_back(space_->CostTermKey(term));
  const std::vector<std::string> expected = {
      "192/Conv-input:192x192x3-output:96x96x24",
      "192/expanded_conv-input:96x96x24-output:96x96x24-expand:24-kernel:3-stride:1-idskip:1-"
      "se:0-hs:0",
      "192/expanded_conv-input:96x96x24-output:48x48x32-expand:72-kernel:5-stride:2-idskip:0-"
      "se:0-hs:0",
      "192/expanded_conv-input:48x48x32-output:48x48x32-expand:96-kernel:3-stride:1-idskip:1-"
      "se:0-hs:0",
      "192/expanded_conv-input:48x48x32-output:24x24x48-expand:128-kernel:5-stride:2-idskip:0-"
      "se:1-hs:0",
      "192/expanded_conv-input:24x24x48-output:24x24x48-expand:192-kernel:3-stride:1-idskip:1-"
      "se:1-hs:0",
      "192/expanded_conv-input:24x24x48-output:12x12x96-expand:288-kernel:7-stride:2-idskip:0-"
      "se:0-hs:1",
      "192/expanded_conv-input:12x12x96-output:12x12x96-expand:288-kernel:7-stride:1-idskip:1-"
      "se:0-hs:1",
      "192/expanded_conv-input:12x12x96-output:12x12x96-expand:384-kernel:3-stride:1-idskip:1-"
      "se:0-hs:1",
      "192/expanded_conv-input:12x12x96-output:12x12x136-expand:384-kernel:5-stride:1-idskip:0-"
      "se:1-hs:1",
      "192/expanded_conv-input:12x12x136-output:12x12x136-expand:544-kernel:5-stride:1-idskip:1-"
      "se:1-hs:1",
      "192/expanded_conv-input:12x12x136-output:12x12x136-expand:544-kernel:7-stride:1-idskip:1-"
      "se:1-hs:1",
      "192/expanded_conv-input:12x12x136-output:12x12x136-expand:408-kernel:3-stride:1-idskip:1-"
      "se:1-hs:1",
      "192/expanded_conv-input:12x12x136-output:6x6x192-expand:816-kernel:3-stride:2-idskip:0-"
      "se:1-hs:1",
      "192/expanded_conv-input:6x6x192-output:6x6x192-expand:1152-kernel:3-stride:1-idskip:1-"
      "se:1-hs:1",
      "192/expanded_conv-input:6x6x192-output:6x6x192-expand:1152-kernel:5-stride:1-idskip:1-"
      "se:1-hs:1",
      "192/Conv_1-input:6x6x192-output:6x6x1152",
      "192/AvgPool2D-input:6x6x1152-output:1x1x1152",
      "192/Conv_2-input:1x1x1152-output:1x1x1536",
      "192/Logits-input:1x1x1536-output:1000",
  };
  EXPECT_EQ(keys_in_order, expected);
}

TEST_F(OfaMbv3SpaceTest, SampleIsValidAndReachesEveryChoice) {
  ExpectSamplesValidAndExhaustive(*space_, 11, 5000);
}

TEST_F(OfaMbv3SpaceTest, MutateIsValidAndFollowsTheProbabilities) {
  Rng rng(12);
  int changed = 0;
  int resolution_changed = 0;
  for (int n = 0; n < 5000; ++n) {
    const Genotype parent = space_->Sample(rng);
    const Genotype same = space_->Mutate(parent, 0.0, 0.0, rng);
    ASSERT_EQ(same, parent);

    const Genotype mutant = space_->Mutate(parent, 0.1, 0.1, rng);
    ASSERT_TRUE(space_->Validate(mutant).ok());

    const Genotype all = space_->Mutate(parent, 1.0, 1.0, rng);
    ASSERT_TRUE(space_->Validate(all).ok());
    changed += all != parent;

    // Block and depth groups only: the resolution stays.
    const Genotype blocks_only = space_->Mutate(parent, 1.0, 0.0, rng);
    ASSERT_EQ(blocks_only[kROffset], parent[kROffset]);
    // Resolution only: nothing else moves.
    const Genotype resolution_only = space_->Mutate(parent, 0.0, 1.0, rng);
    for (int g = 0; g < kROffset; ++g) ASSERT_EQ(resolution_only[g], parent[g]);
    resolution_changed += resolution_only[kROffset] != parent[kROffset];
  }
  // Resampling 46 genes leaves a genotype unchanged with probability ~1e-21.
  EXPECT_EQ(changed, 5000);
  // 4/5 of the resamples pick a new resolution.
  EXPECT_GT(resolution_changed, 3700);
  EXPECT_LT(resolution_changed, 4300);
}

TEST_F(OfaMbv3SpaceTest, MutateResamplesKernelAndExpandTogether) {
  Rng rng(13);
  const Genotype parent = space_->Sample(rng);
  int both_changed = 0;
  for (int n = 0; n < 2000; ++n) {
    const Genotype mutant = space_->Mutate(parent, 1.0, 0.0, rng);
    both_changed += mutant[0] != parent[0] && mutant[kEOffset] != parent[kEOffset];
  }
  // Independent resampling of both genes of block 0: (2/3)^2 of the draws change both.
  EXPECT_GT(both_changed, 800);
  EXPECT_LT(both_changed, 1000);
}

TEST_F(OfaMbv3SpaceTest, CrossoverTakesEveryGeneFromAParent) {
  ExpectCrossoverMixesParents(*space_, 14, 3000);
}

TEST_F(OfaMbv3SpaceTest, OperatorsAreDeterministicForASeed) {
  ExpectOperatorsDeterministic(*space_, 0.3, 0.2);
}

TEST_F(OfaMbv3SpaceTest, BlockDecompositionIsExact) {
  std::vector<Genotype> genotypes;
  int active_blocks = 0;
  for (const GoldenVector& golden : *golden_) {
    genotypes.push_back(golden.genotype);
    for (const bool active : golden.active) active_blocks += active;
  }
  Rng rng(16);
  for (int n = 0; n < 2000; ++n) {
    genotypes.push_back(space_->Sample(rng));
    for (int i = 0; i < kNumBlocks; ++i) active_blocks += IsActive(genotypes.back(), i);
  }
  EXPECT_EQ(ExpectCostDecompositionExact(*space_, CostSplit::kBlocks, genotypes, 17, 10,
                                         static_cast<int>(genotypes.size())),
            active_blocks);

  const Genotype& genotype = (*golden_)[0].genotype;
  const std::optional<CostDecomposition> decomposition =
      space_->DecomposeCosts(genotype, CostSplit::kBlocks);
  ASSERT_TRUE(decomposition.has_value());
  // Head (first conv, first block) and tail (Conv_1, AvgPool2D, Conv_2, Logits) at r.
  ASSERT_EQ(decomposition->fixed_terms.size(), 6);
  const std::string prefix = absl::StrCat(genotype[kROffset], "/");
  EXPECT_THAT(space_->CostTermKey(decomposition->fixed_terms[0]), StartsWith(prefix + "Conv-"));
  EXPECT_THAT(space_->CostTermKey(decomposition->fixed_terms[5]), StartsWith(prefix + "Logits"));
  const CostSlot& first = decomposition->slots.front();
  EXPECT_EQ(first.name, "block 0");
  EXPECT_EQ(first.genes, (std::vector<int>{0, kEOffset}));
  ASSERT_EQ(first.choices.size(), 9);
  EXPECT_THAT(first.choices[5].values, ElementsAre(5, 6));

  // No bitwidths: nothing to split by.
  EXPECT_FALSE(space_->DecomposeCosts(genotype, CostSplit::kBitwidths).has_value());
}

TEST_F(OfaMbv3SpaceTest, JsonRoundTrip) {
  std::vector<Genotype> genotypes;
  for (const GoldenVector& golden : *golden_) genotypes.push_back(golden.genotype);
  ExpectJsonRoundTrip(*space_, genotypes, 15, 1000);
  ExpectJsonInputBounded(*space_, 16);
}

TEST_F(OfaMbv3SpaceTest, ToJsonWritesOfaArchDict) {
  const Genotype genotype = (*golden_)[0].genotype;
  const nlohmann::json json = nlohmann::json::parse(space_->ToJson(genotype));
  ASSERT_TRUE(json.is_object());
  EXPECT_EQ(json.size(), 4);
  EXPECT_EQ(json.at("ks").get<std::vector<int>>(),
            std::vector<int>(genotype.begin(), genotype.begin() + 20));
  EXPECT_EQ(json.at("e").get<std::vector<int>>(),
            std::vector<int>(genotype.begin() + 20, genotype.begin() + 40));
  EXPECT_EQ(json.at("d").get<std::vector<int>>(),
            std::vector<int>(genotype.begin() + 40, genotype.begin() + 45));
  ASSERT_TRUE(json.at("r").is_number_integer());
  EXPECT_EQ(json.at("r").get<int>(), genotype[kROffset]);
  EXPECT_THAT(space_->ToJson(genotype), StartsWith("{\"ks\":[3,7,5,7,"));
}

TEST_F(OfaMbv3SpaceTest, FromJsonAcceptsOfaSpellings) {
  const Genotype genotype = (*golden_)[1].genotype;
  nlohmann::json json = nlohmann::json::parse(space_->ToJson(genotype));
  json["r"] = nlohmann::json::array({genotype[kROffset]});
  json["wid"] = nullptr;
  const absl::StatusOr<Genotype> parsed = space_->FromJson(json.dump(2));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, genotype);
}

class OfaMbv3BadJsonTest : public OfaMbv3SpaceTest {
 protected:
  // The golden vector 0 as a JSON object, to break one field at a time.
  nlohmann::json Base() const {
    return nlohmann::json::parse(space_->ToJson((*golden_)[0].genotype));
  }
  void ExpectRejected(const nlohmann::json& json, const std::string& message_part) const {
    ExpectRejected(json.dump(), message_part);
  }
  void ExpectRejected(const std::string& json, const std::string& message_part) const {
    const absl::Status status = FromJsonStatus(json);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << json;
    EXPECT_THAT(status.message(), HasSubstr(message_part)) << json;
  }
};

TEST_F(OfaMbv3BadJsonTest, Malformed) {
  ExpectRejected(std::string("{\"ks\": [3, 5"), "parse error");
  ExpectRejected(std::string("{\"ks\": [3, 5"), "column");
  ExpectRejected(std::string(""), "parse error");
  ExpectRejected(std::string("[1, 2]"), "arch: expected an object");
}

TEST_F(OfaMbv3BadJsonTest, UnknownAndMissingKeys) {
  nlohmann::json json = Base();
  json["depth"] = 3;
  ExpectRejected(json, "unknown key \"depth\"");
  for (const char* field : {"ks", "e", "d", "r"}) {
    json = Base();
    json.erase(field);
    ExpectRejected(json, absl::StrCat(field, ": missing"));
  }
  json = Base();
  json["wid"] = 1.2;
  ExpectRejected(json, "wid: expected null");
}

TEST_F(OfaMbv3BadJsonTest, WrongLengths) {
  nlohmann::json json = Base();
  json["ks"].erase(json["ks"].size() - 1);
  ExpectRejected(json, "ks: expected 20 entries, got 19");
  json = Base();
  json["e"].push_back(3);
  ExpectRejected(json, "e: expected 20 entries, got 21");
  json = Base();
  json["d"] = {2, 3, 4, 4};
  ExpectRejected(json, "d: expected 5 entries, got 4");
  json = Base();
  json["r"] = {192, 224};
  ExpectRejected(json, "r: expected an integer or a one-element list, got a list of 2");
  json = Base();
  json["r"] = nlohmann::json::array();
  ExpectRejected(json, "r: expected an integer or a one-element list, got a list of 0");
}

TEST_F(OfaMbv3BadJsonTest, WrongTypes) {
  nlohmann::json json = Base();
  json["ks"] = "3,5,7";
  ExpectRejected(json, "ks: expected a list of 20 integers, got string");
  json = Base();
  json["ks"][3] = "5";
  ExpectRejected(json, "ks[3]: expected an integer, got string");
  json = Base();
  json["e"][7] = 4.5;
  ExpectRejected(json, "e[7]: expected an integer, got 4.5");
  json = Base();
  json["d"][0] = true;
  ExpectRejected(json, "d[0]: expected an integer, got boolean");
  json = Base();
  json["r"] = "192";
  ExpectRejected(json, "r: expected an integer, got string");
}

TEST_F(OfaMbv3BadJsonTest, ValuesOutsideTheSpace) {
  nlohmann::json json = Base();
  json["e"][4] = 5;
  ExpectRejected(json, "e[4]: 5 is not one of {3, 4, 6}");
  json = Base();
  json["ks"][3] = 4;
  ExpectRejected(json, "ks[3]: 4 is not one of {3, 5, 7}");
  json = Base();
  json["d"][2] = 1;
  ExpectRejected(json, "d[2]: 1 is not one of {2, 3, 4}");
  json = Base();
  json["r"] = 200;
  ExpectRejected(json, "r: 200 is not one of {160, 176, 192, 208, 224}");
  json = Base();
  json["r"] = {300};
  ExpectRejected(json, "r: 300 is not one of");
  json = Base();
  json["ks"][0] = 4294967299ULL;  // Would wrap to 3 in a 32-bit int.
  ExpectRejected(json, "ks[0]: 4294967299 is not one of {3, 5, 7}");
  json = Base();
  json["ks"][0] = -4294967293LL;
  ExpectRejected(json, "ks[0]: -4294967293 is not one of {3, 5, 7}");
}

}  // namespace
}  // namespace apq::oface
