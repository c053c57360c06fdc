// The low-bit Fashion-MNIST space (FashionMnistLowBitSpec, "fmnist_lowbit"): fmnist_mbv2's
// network with bits {2, 3, 4, 6, 8}, through every operator of the space.
#include <cstdint>
#include <map>
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
#include "oface/mbconv_quant_space.h"
#include "oface/mbconv_spec.h"
#include "oface/restricted_space.h"
#include "oface/rng.h"
#include "oface/search_space.h"
#include "oface/space_testing.h"

namespace apq::oface {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int kNumSlots = 12;  // 3 stages of up to 4 layers.
constexpr int kPwWOffset = 2 * kNumSlots;
constexpr int kDOffset = 6 * kNumSlots;
const std::vector<int> kLowBits = {2, 3, 4, 6, 8};

class FashionMnistLowBitSpaceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    low_bit_ = NewMbConvQuantSpace(FashionMnistLowBitSpec()).value().release();
    mbv2_ = NewMbConvQuantSpace(FashionMnistSpec()).value().release();
  }
  static void TearDownTestSuite() {
    delete low_bit_;
    delete mbv2_;
  }

  // The largest network with every bit gene at `bits`.
  static Genotype LargestAt(int bits) {
    Genotype genotype;
    for (const GeneSpec& gene : low_bit_->genes()) {
      genotype.push_back(IsBitsGene(gene) ? bits : gene.choices.back());
    }
    return genotype;
  }

  static SearchSpace* low_bit_;
  static SearchSpace* mbv2_;
};

SearchSpace* FashionMnistLowBitSpaceTest::low_bit_ = nullptr;
SearchSpace* FashionMnistLowBitSpaceTest::mbv2_ = nullptr;

TEST_F(FashionMnistLowBitSpaceTest, IsFmnistMbv2WithFiveBitChoices) {
  EXPECT_EQ(low_bit_->name(), "fmnist_lowbit");
  ASSERT_EQ(low_bit_->genes().size(), mbv2_->genes().size());
  ASSERT_EQ(low_bit_->genes().size(), 6u * kNumSlots + 3);
  int bits_genes = 0;
  for (size_t g = 0; g < low_bit_->genes().size(); ++g) {
    const GeneSpec& gene = low_bit_->genes()[g];
    EXPECT_EQ(gene.name, mbv2_->genes()[g].name);
    if (IsBitsGene(gene)) {
      ++bits_genes;
      EXPECT_EQ(gene.choices, kLowBits) << gene.name;
    } else {
      EXPECT_EQ(gene.choices, mbv2_->genes()[g].choices) << gene.name;
    }
  }
  EXPECT_EQ(bits_genes, 4 * kNumSlots);
  EXPECT_EQ(low_bit_->genes()[kPwWOffset].name, "pw_w_bits_setting[0]");

  // The same network: equal architecture encoding and static costs at the shared bits.
  EXPECT_EQ(low_bit_->arch_feature_size(), mbv2_->arch_feature_size());
  Rng rng(3);
  for (int n = 0; n < 100; ++n) {
    const Genotype genotype = mbv2_->Sample(rng);
    ASSERT_TRUE(low_bit_->Validate(genotype).ok());
    EXPECT_EQ(low_bit_->StaticCosts(genotype)->bitops, mbv2_->StaticCosts(genotype)->bitops);
    EXPECT_EQ(low_bit_->StaticCosts(genotype)->size_bytes,
              mbv2_->StaticCosts(genotype)->size_bytes);
  }
}

// APQ's one-hot encoding with five bit choices: 4 fields x 12 slots x 5 bits after the
// architecture features (fmnist_mbv2 has 3 bits: 144).
TEST_F(FashionMnistLowBitSpaceTest, EncodingHasFiveBitFeaturesPerField) {
  const int arch = low_bit_->arch_feature_size();
  EXPECT_EQ(arch, 192);
  EXPECT_EQ(low_bit_->feature_size(), arch + 4 * kNumSlots * 5);
  EXPECT_EQ(mbv2_->feature_size(), arch + 4 * kNumSlots * 3);
  // Each active slot sets one feature per bit field, at index arch + 60 f + 5 i + (bits index).
  for (size_t b = 0; b < kLowBits.size(); ++b) {
    const Genotype genotype = LargestAt(kLowBits[b]);
    std::vector<int32_t> indices;
    low_bit_->ActiveFeatures(genotype, &indices);
    std::vector<int32_t> bit_features(indices.begin(), indices.end());
    bit_features.erase(bit_features.begin(), bit_features.end() - 4 * kNumSlots);
    for (int field = 0; field < 4; ++field) {
      for (int slot = 0; slot < kNumSlots; ++slot) {
        EXPECT_EQ(bit_features[field * kNumSlots + slot],
                  arch + 5 * kNumSlots * field + 5 * slot + static_cast<int>(b))
            << kLowBits[b] << " bits, field " << field << ", slot " << slot;
      }
    }
    EXPECT_LT(indices.back(), low_bit_->feature_size());
  }
}

TEST_F(FashionMnistLowBitSpaceTest, SamplingReachesEveryBitValue) {
  ExpectSamplesValidAndExhaustive(*low_bit_, 11, 3000);
  // And each of the five values about equally often (uniform draws).
  Rng rng(12);
  std::map<int, int> counts;
  for (int n = 0; n < 1000; ++n) {
    const Genotype genotype = low_bit_->Sample(rng);
    for (int g = kPwWOffset; g < kDOffset; ++g) ++counts[genotype[g]];
  }
  ASSERT_EQ(counts.size(), kLowBits.size());
  for (const auto& [bits, count] : counts) {
    EXPECT_GT(count, 9000) << bits;  // 48,000 draws / 5 = 9,600 each.
    EXPECT_LT(count, 10200) << bits;
  }
}

TEST_F(FashionMnistLowBitSpaceTest, MutationAndCrossoverMoveOverFiveBitChoices) {
  Rng rng(13);
  std::set<int> mutated_to;
  for (int n = 0; n < 500; ++n) {
    const Genotype parent = LargestAt(8);
    const Genotype child = low_bit_->Mutate(parent, 0.5, 0.0, rng);
    ASSERT_TRUE(low_bit_->Validate(child).ok());
    for (int g = kPwWOffset; g < kDOffset; ++g) mutated_to.insert(child[g]);
    ASSERT_EQ(low_bit_->Mutate(parent, 0.0, 0.0, rng), parent);
  }
  EXPECT_EQ(std::vector<int>(mutated_to.begin(), mutated_to.end()), kLowBits);
  ExpectCrossoverMixesParents(*low_bit_, 14, 1000);
  ExpectOperatorsDeterministic(*low_bit_, 0.3, 0.0);
}

TEST_F(FashionMnistLowBitSpaceTest, JsonInApqFormatRoundTripsTwoAndThreeBitSettings) {
  Genotype genotype = LargestAt(8);
  for (int slot = 0; slot < kNumSlots; ++slot) {
    genotype[kPwWOffset + slot] = 2;                                   // pw_w
    genotype[kPwWOffset + kNumSlots + slot] = 3;                       // pw_a
    genotype[kPwWOffset + 2 * kNumSlots + slot] = slot % 2 ? 2 : 3;    // dw_w
    genotype[kPwWOffset + 3 * kNumSlots + slot] = kLowBits[slot % 5];  // dw_a
  }
  const std::string json = low_bit_->ToJson(genotype);
  const nlohmann::json doc = nlohmann::json::parse(json);
  ASSERT_TRUE(doc.is_array());
  ASSERT_EQ(doc.size(), 2);
  EXPECT_TRUE(doc[0]["wid"].is_null());
  EXPECT_EQ(doc[1]["pw_w_bits_setting"], nlohmann::json(std::vector<int>(kNumSlots, 2)));
  EXPECT_EQ(doc[1]["pw_a_bits_setting"], nlohmann::json(std::vector<int>(kNumSlots, 3)));
  EXPECT_EQ(doc[1]["dw_a_bits_setting"][0], 2);
  EXPECT_EQ(doc[1]["dw_a_bits_setting"][1], 3);
  EXPECT_EQ(low_bit_->FromJson(json).value(), genotype);
  ExpectJsonRoundTrip(*low_bit_, {genotype, LargestAt(2), LargestAt(3)}, 15, 500);
  ExpectJsonInputBounded(*low_bit_, 16);
  ExpectJsonInputBounded(*mbv2_, 16);

  // fmnist_mbv2 reads the same format but not these bits; 5 bits are in neither space.
  absl::Status status = mbv2_->FromJson(json).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("pw_w_bits_setting[0]: 2 is not one of {4, 6, 8}"));
  nlohmann::json five = doc;
  five[1]["dw_w_bits_setting"][4] = 5;
  status = low_bit_->FromJson(five.dump()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("dw_w_bits_setting[4]: 5 is not one of {2, 3, 4, 6, 8}"));
  // An fmnist_mbv2 config is an fmnist_lowbit config.
  Rng rng(16);
  const Genotype mbv2_genotype = mbv2_->Sample(rng);
  EXPECT_EQ(low_bit_->FromJson(mbv2_->ToJson(mbv2_genotype)).value(), mbv2_genotype);
}

TEST_F(FashionMnistLowBitSpaceTest, LowerBitsCostLessAndDecompositionsAreExact) {
  const Genotype largest = LargestAt(8);
  int64_t previous_bitops = 0;
  double previous_size = 0.0;
  for (const int bits : kLowBits) {
    Genotype genotype = LargestAt(bits);
    const StaticCost cost = *low_bit_->StaticCosts(genotype);
    EXPECT_GT(cost.bitops, previous_bitops) << bits;
    EXPECT_GT(cost.size_bytes, previous_size) << bits;
    previous_bitops = cost.bitops;
    previous_size = cost.size_bytes;
    // Cost keys name the bit pair.
    std::vector<int32_t> terms;
    low_bit_->CostTerms(genotype, &terms);
    EXPECT_THAT(low_bit_->CostTermKey(terms[5]), HasSubstr(absl::StrCat("-W", bits, "A", bits)));
  }
  std::vector<Genotype> genotypes;
  Rng rng(17);
  for (int n = 0; n < 300; ++n) genotypes.push_back(low_bit_->Sample(rng));
  EXPECT_GT(ExpectCostDecompositionExact(*low_bit_, CostSplit::kBitwidths, genotypes, 18, 10, 300),
            2 * 6 * 300);
  // Each bitwidth slot has all 25 (w, a) pairs: the space bans none.
  const std::optional<CostDecomposition> bits =
      low_bit_->DecomposeCosts(largest, CostSplit::kBitwidths);
  ASSERT_TRUE(bits.has_value());
  for (const CostSlot& slot : bits->slots) EXPECT_EQ(slot.choices.size(), 25u) << slot.name;
  genotypes.resize(20);
  EXPECT_GT(ExpectCostDecompositionExact(*low_bit_, CostSplit::kBlocks, genotypes, 19, 10, 2),
            6 * 20);
}

TEST_F(FashionMnistLowBitSpaceTest, UniformBitsViewsAtTwoAndThreeBits) {
  for (const int bits : {2, 3}) {
    const std::unique_ptr<SearchSpace> uniform = NewUniformBitsSpace(*low_bit_, bits).value();
    EXPECT_EQ(uniform->name(), absl::StrCat("fmnist_lowbit@w", bits, "a", bits));
    Rng rng(20 + bits);
    for (int n = 0; n < 100; ++n) {
      const Genotype genotype = uniform->Mutate(uniform->Sample(rng), 0.5, 0.0, rng);
      for (int g = kPwWOffset; g < kDOffset; ++g) ASSERT_EQ(genotype[g], bits);
      ASSERT_TRUE(low_bit_->Validate(genotype).ok());
    }
    const std::optional<CostDecomposition> slots =
        uniform->DecomposeCosts(uniform->Sample(rng), CostSplit::kBitwidths);
    ASSERT_TRUE(slots.has_value());
    EXPECT_THAT(slots->slots[0].choices[0].values, ElementsAre(bits, bits));
  }
  EXPECT_EQ(NewUniformBitsSpace(*low_bit_, 5).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NewUniformBitsSpace(*mbv2_, 2).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace apq::oface
