// What a device's precision declaration does to a space: the cost model needs and prices only
// the layers the device runs, a network with another layer is not executable (and named), cost
// slots drop such settings, and the view a search explores holds only what runs.
#include "hwmodels/precision_support.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hwmodels/conv_latency_table.h"
#include "hwmodels/cost_table.h"
#include "hwmodels/cost_terms.h"
#include "hwmodels/lut_cost_model.h"
#include "oface/mbconv_quant_space.h"
#include "oface/mbconv_spec.h"
#include "oface/restricted_space.h"
#include "oface/rng.h"
#include "oface/search_space.h"

namespace apq::hwmodels {
namespace {

using ::testing::HasSubstr;

// The embedded local-cpu table: int8 (W8A8) and float layers of fmnist_mbv2's shapes.
constexpr char kInt8FloatTable[] = "data/local_cpu/fmnist_mbv2_int8_float_table.json";

PrecisionSupport Int8OrFloat() {
  PrecisionSupport support;
  support.declared = true;
  support.pairs = {{8, 8}};
  support.float_layers = true;
  support.int8_engine = "qnnpack";
  return support;
}

TEST(PrecisionSupportTest, ExecutesAndDescribes) {
  const PrecisionSupport undeclared;
  EXPECT_TRUE(Executes(undeclared, {4, 6}));
  EXPECT_EQ(DescribePrecisions(undeclared), "any pair (the table declares none)");

  const PrecisionSupport cpu = Int8OrFloat();
  EXPECT_TRUE(Executes(cpu, {8, 8}));
  EXPECT_TRUE(Executes(cpu, {kFloatBits, kFloatBits}));
  EXPECT_FALSE(Executes(cpu, {4, 8}));
  EXPECT_FALSE(Executes(cpu, {8, kFloatBits}));
  EXPECT_EQ(DescribePrecisions(cpu), "W8A8 or float (int8 on LibTorch's qnnpack engine)");
  EXPECT_TRUE(KeyExecutes(cpu, "(16, 64, 14, 1, 1, 0, 1)-W8A8"));
  EXPECT_FALSE(KeyExecutes(cpu, "(16, 64, 14, 1, 1, 0, 1)-W4A8"));
  EXPECT_TRUE(KeyExecutes(cpu, "head"));
  EXPECT_TRUE(KeyExecutes(cpu, "(16, 14)-quantize"));
  EXPECT_TRUE(KeyExecutes(undeclared, "(16, 14)-dequantize"));

  PrecisionSupport bitfusion;
  bitfusion.declared = true;
  bitfusion.pairs = {{4, 4}, {8, 8}};
  // No float layer, so no change between int8 and float either.
  EXPECT_FALSE(KeyExecutes(bitfusion, "(16, 14)-quantize"));
  const PrecisionSupport modelled = WithModelledPairs(bitfusion, 2, 3);
  EXPECT_EQ(modelled.modelled_pairs.size(), 4);
  EXPECT_TRUE(Executes(modelled, {2, 3}));
  EXPECT_FALSE(Executes(modelled, {2, 8}));
  EXPECT_FALSE(Executes(modelled, {kFloatBits, kFloatBits}));
  EXPECT_EQ(DescribePrecisions(modelled), "W4A4, W8A8; modelled: W2A2, W2A3, W3A2, W3A3");
  EXPECT_EQ(PairName({kFloatBits, kFloatBits}), "float");
}

class Int8FloatDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<CostTable> table = LoadConvTableFile(kInt8FloatTable);
    ASSERT_TRUE(table.ok()) << table.status();
    table_ = *std::move(table);
    ASSERT_TRUE(table_.precisions.declared);
  }

  // fmnist_mbv2 (bits {4, 6, 8}) and fmnist_lowbit (bits {2, 3, 4, 6, 8}) on the device.
  void ExpectOnlyW8A8Runs(const oface::MbConvSpec& spec) {
    SCOPED_TRACE(spec.name);
    const std::unique_ptr<oface::SearchSpace> space = oface::NewMbConvQuantSpace(spec).value();
    // The table has no W4 or W6 keys: they are not needed, since the device runs none.
    absl::StatusOr<std::unique_ptr<LutCostModel>> created = LutCostModel::Create(*space, table_);
    ASSERT_TRUE(created.ok()) << created.status();
    const LutCostModel& model = **created;
    absl::StatusOr<std::unique_ptr<oface::SearchSpace>> view =
        NewExecutableSpace(*space, model.precisions(), "local-cpu");
    ASSERT_TRUE(view.ok()) << view.status();
    ASSERT_NE(*view, nullptr);
    EXPECT_EQ((*view)->name(), absl::StrCat(spec.name, "@local-cpu"));
    for (const oface::GeneSpec& gene : (*view)->genes()) {
      if (oface::IsBitsGene(gene)) {
        EXPECT_EQ(gene.choices, std::vector<int>{8}) << gene.name;
      }
    }
    // Every network of the view runs and is priced by int8 entries; the same architecture
    // with one 4-bit pointwise layer does not run, and Evaluate's check names that layer.
    oface::Rng rng(5);
    for (int n = 0; n < 50; ++n) {
      const oface::Genotype genotype = (*view)->Sample(rng);
      ASSERT_TRUE(space->Validate(genotype).ok());
      const NetworkCost cost = model.Evaluate(genotype);
      EXPECT_TRUE(cost.executable);
      EXPECT_GT(cost.latency_ms, 0.0);
      EXPECT_TRUE(model.CheckExecutable(genotype).ok());
      // Layer 0 always runs (every stage has depth >= 1).
      oface::Genotype four_bit = genotype;
      for (size_t g = 0; g < space->genes().size(); ++g) {
        const std::string& name = space->genes()[g].name;
        if (name == "pw_w_bits_setting[0]" || name == "pw_a_bits_setting[0]") four_bit[g] = 4;
      }
      EXPECT_FALSE(model.Evaluate(four_bit).executable);
      const absl::Status refused = model.CheckExecutable(four_bit);
      EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
      EXPECT_EQ(refused.message(), "layer 0 pw runs at W4A4");
      EXPECT_FALSE((*view)->Validate(four_bit).ok());
      // The cost slots of the full space keep only the W8A8 settings.
      const absl::StatusOr<CostTermView> slots =
          DecomposeCost(model, genotype, oface::CostSplit::kBitwidths);
      ASSERT_TRUE(slots.ok()) << slots.status();
      for (const PricedSlot& slot : slots->slots) {
        ASSERT_EQ(slot.choices.size(), 1) << slot.name;
        EXPECT_EQ(slot.selected, 0);
        EXPECT_THAT(slot.choices[0].values, ::testing::ElementsAre(8, 8)) << slot.name;
        EXPECT_TRUE(slot.choices[0].cost.executable);
      }
      EXPECT_EQ(DecomposeCost(model, four_bit, oface::CostSplit::kBitwidths).status().code(),
                absl::StatusCode::kInvalidArgument);
    }
  }

  CostTable table_;
};

TEST_F(Int8FloatDeviceTest, OnlyW8A8RunsInTheFashionMnistSpaces) {
  ExpectOnlyW8A8Runs(oface::FashionMnistSpec());
  ExpectOnlyW8A8Runs(oface::FashionMnistLowBitSpec());
}

// A device whose fixed layers (stem and tail at 8 bits) it cannot run cannot price the space.
TEST_F(Int8FloatDeviceTest, FixedLayersTheDeviceCannotRun) {
  const std::unique_ptr<oface::SearchSpace> space =
      oface::NewMbConvQuantSpace(oface::FashionMnistSpec()).value();
  PrecisionSupport low;
  low.declared = true;
  low.pairs = {{4, 4}, {6, 6}};
  const absl::StatusOr<std::unique_ptr<LutCostModel>> created =
      LutCostModel::Create(*space, table_, nullptr, &low);
  EXPECT_EQ(created.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(created.status().message(), HasSubstr("runs its fixed layers at"));
  EXPECT_THAT(created.status().message(), HasSubstr("it runs W4A4, W6A6"));
  // And no layer of the view would have a pair left when nothing matches at all.
  PrecisionSupport float_only;
  float_only.declared = true;
  float_only.float_layers = true;
  const absl::StatusOr<std::unique_ptr<oface::SearchSpace>> none =
      NewExecutableSpace(*space, float_only, "gpu");
  EXPECT_EQ(none.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(none.status().message(), HasSubstr("pw_w_bits_setting[0], pw_a_bits_setting[0]"));
  EXPECT_THAT(none.status().message(), HasSubstr("runs on gpu (it runs float)"));
}

// Allowed pairs that are not a product of per-gene choices (W4A4 and W8A8, not W4A8) become a
// rule of the view: sampling, validation and cost slots all keep to it.
TEST_F(Int8FloatDeviceTest, PairsThatAreNotAProductBecomeARule) {
  const std::unique_ptr<oface::SearchSpace> space =
      oface::NewMbConvQuantSpace(oface::FashionMnistSpec()).value();
  PrecisionSupport diagonal;
  diagonal.declared = true;
  diagonal.pairs = {{4, 4}, {8, 8}};
  absl::StatusOr<std::unique_ptr<oface::SearchSpace>> view =
      NewExecutableSpace(*space, diagonal, "diagonal");
  ASSERT_TRUE(view.ok()) << view.status();
  ASSERT_NE(*view, nullptr);
  const std::vector<std::pair<int, int>> pairs = oface::BitsGenePairs(*space);
  ASSERT_EQ(pairs.size(), 2 * 12);  // pw and dw of 12 layer slots.
  oface::Rng rng(3);
  int mixed = 0;
  for (int n = 0; n < 20; ++n) {
    const oface::Genotype genotype = (*view)->Sample(rng);
    for (const auto& [w, a] : pairs) {
      EXPECT_EQ(genotype[w], genotype[a]);
      mixed += genotype[w] == 4 ? 1 : 0;
    }
    EXPECT_TRUE((*view)->Validate(genotype).ok());
  }
  EXPECT_GT(mixed, 0);  // Both pairs are drawn.
  oface::Genotype broken = (*view)->Sample(rng);
  broken[pairs[0].first] = 4;
  broken[pairs[0].second] = 8;
  const absl::Status status = (*view)->Validate(broken);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("W4A8 is not a pair of fmnist_mbv2@diagonal"));
  // A device running every pair of the space needs no view.
  PrecisionSupport every;
  every.declared = true;
  for (const int w : {4, 6, 8}) {
    for (const int a : {4, 6, 8}) every.pairs.push_back({w, a});
  }
  EXPECT_EQ(NewExecutableSpace(*space, every, "all").value(), nullptr);
  EXPECT_EQ(NewExecutableSpace(*space, PrecisionSupport{}, "undeclared").value(), nullptr);
}

}  // namespace
}  // namespace apq::hwmodels
