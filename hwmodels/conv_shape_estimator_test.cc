#include "hwmodels/conv_shape_estimator.h"

#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hwmodels/conv_latency_table.h"
#include "hwmodels/cost_table.h"
#include "hwmodels/lut_cost_model.h"
#include "oface/mbconv_quant_space.h"
#include "oface/mbconv_spec.h"
#include "oface/rng.h"
#include "oface/search_space.h"

namespace apq::hwmodels {
namespace {

using ::testing::HasSubstr;

constexpr char kLocalCpu[] = "data/local_cpu/fmnist_mbv2_conv_table.json";

CostTable ConvTable(std::initializer_list<std::pair<std::string, double>> latencies) {
  CostTable table;
  table.format = TableFormat::kConvJson;
  for (const auto& [key, ms] : latencies) table.entries[key].latency_ms = ms;
  return table;
}

TEST(ConvShapeEstimatorTest, PricesEveryBitPairOfAShapeWithItsFigure) {
  const CostTable table = ConvTable({{"(16, 48, 7, 1, 1, 0, 1)-W4A4", 0.5},
                                     {"(16, 48, 7, 1, 1, 0, 1)-W8A8", 0.5},
                                     {"(48, 48, 7, 3, 1, 1, 48)-W8A8", 0.25}});
  absl::StatusOr<std::unique_ptr<ConvShapeEstimator>> estimator = ConvShapeEstimator::Create(table);
  ASSERT_TRUE(estimator.ok()) << estimator.status();
  EXPECT_EQ((*estimator)->name(), "conv-shape(bits ignored)");
  const std::optional<CostEntry> w2a3 = (*estimator)->Estimate("(16, 48, 7, 1, 1, 0, 1)-W2A3");
  ASSERT_TRUE(w2a3.has_value());
  EXPECT_EQ(w2a3->latency_ms, 0.5);
  EXPECT_FALSE(w2a3->energy_mj.has_value());
  EXPECT_EQ((*estimator)->Estimate("(48, 48, 7, 3, 1, 1, 48)-W3A2")->latency_ms, 0.25);
  // Another shape, and keys that are not conv keys, are not priced.
  EXPECT_FALSE((*estimator)->Estimate("(16, 48, 7, 1, 2, 0, 1)-W8A8").has_value());
  EXPECT_FALSE((*estimator)->Estimate("head").has_value());
  EXPECT_FALSE((*estimator)->Estimate("(16, 48, 7, 1, 1, 0, 1)").has_value());
}

TEST(ConvShapeEstimatorTest, RefusesTablesWhoseFiguresMayDependOnTheBits) {
  absl::StatusOr<std::unique_ptr<ConvShapeEstimator>> estimator = ConvShapeEstimator::Create(
      ConvTable({{"(16, 48, 7, 1, 1, 0, 1)-W4A4", 0.25}, {"(16, 48, 7, 1, 1, 0, 1)-W8A8", 0.5}}));
  EXPECT_EQ(estimator.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(estimator.status().message(), HasSubstr("depend on the bit widths"));
  EXPECT_THAT(estimator.status().message(),
              HasSubstr("(16, 48, 7, 1, 1, 0, 1)-W4A4 and (16, 48, 7, 1, 1, 0, 1)-W8A8 differ"));

  CostTable energy =
      ConvTable({{"(16, 48, 7, 1, 1, 0, 1)-W4A4", 0.5}, {"(16, 48, 7, 1, 1, 0, 1)-W8A8", 0.5}});
  energy.entries["(16, 48, 7, 1, 1, 0, 1)-W4A4"].energy_mj = 1.0;
  energy.entries["(16, 48, 7, 1, 1, 0, 1)-W8A8"].energy_mj = 2.0;
  EXPECT_EQ(ConvShapeEstimator::Create(energy).status().code(),
            absl::StatusCode::kFailedPrecondition);

  // One bit pair per shape: no evidence either way.
  estimator = ConvShapeEstimator::Create(
      ConvTable({{"(16, 48, 7, 1, 1, 0, 1)-W8A8", 0.5}, {"(48, 48, 7, 3, 1, 1, 48)-W8A8", 0.25}}));
  EXPECT_EQ(estimator.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(estimator.status().message(), HasSubstr("no conv shape of the table has two"));

  CostTable bitfusion = ConvTable({{"(16, 48, 7, 1, 1, 0, 1)-W8A8", 0.5}});
  bitfusion.format = TableFormat::kApqBitFusion;
  EXPECT_EQ(ConvShapeEstimator::Create(bitfusion).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// The shipped local-cpu table of fmnist_mbv2 prices fmnist_lowbit, the same network at bits
// {2, 3, 4, 6, 8}: the keys at 2 and 3 bits are modelled, each at its shape's figure, so a
// network costs the same at any bits.
TEST(ConvShapeEstimatorTest, TheLocalCpuTablePricesTheLowBitSpace) {
  const absl::StatusOr<CostTable> table = LoadConvTableFile(kLocalCpu);
  ASSERT_TRUE(table.ok()) << table.status();
  absl::StatusOr<std::unique_ptr<ConvShapeEstimator>> estimator =
      ConvShapeEstimator::Create(*table);
  ASSERT_TRUE(estimator.ok()) << estimator.status();
  const std::unique_ptr<oface::SearchSpace> low_bit =
      oface::NewMbConvQuantSpace(oface::FashionMnistLowBitSpec()).value();
  const std::unique_ptr<oface::SearchSpace> mbv2 =
      oface::NewMbConvQuantSpace(oface::FashionMnistSpec()).value();

  // Without the estimator the table lacks the 2- and 3-bit keys.
  const absl::StatusOr<std::unique_ptr<LutCostModel>> bare = LutCostModel::Create(*low_bit, *table);
  EXPECT_EQ(bare.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(bare.status().message(), HasSubstr("fmnist_lowbit"));

  absl::StatusOr<std::unique_ptr<LutCostModel>> model =
      LutCostModel::Create(*low_bit, *table, estimator->get());
  ASSERT_TRUE(model.ok()) << model.status();
  int low_bit_keys = 0;
  for (int term = 0; term < low_bit->num_cost_terms(); ++term) {
    const std::string key = low_bit->CostTermKey(term);
    low_bit_keys += absl::StrContains(key, "-W2") || absl::StrContains(key, "-W3") ||
                    absl::StrContains(key, "A2") || absl::StrContains(key, "A3");
  }
  EXPECT_GT(low_bit_keys, 0);
  EXPECT_EQ((*model)->modelled_terms(), low_bit_keys);
  const std::unique_ptr<LutCostModel> reference = LutCostModel::Create(*mbv2, *table).value();

  oface::Rng rng(5);
  const int num_genes = static_cast<int>(low_bit->genes().size());
  for (int n = 0; n < 50; ++n) {
    oface::Genotype genotype = low_bit->Sample(rng);
    const NetworkCost cost = (*model)->Evaluate(genotype);
    // The same network at 8 bits everywhere: a genotype of both spaces, priced from the table.
    for (int g = 0; g < num_genes; ++g) {
      if (oface::IsBitsGene(low_bit->genes()[g])) genotype[g] = 8;
    }
    const NetworkCost at8 = reference->Evaluate(genotype);
    EXPECT_FALSE(at8.modelled);
    EXPECT_DOUBLE_EQ(cost.latency_ms, at8.latency_ms) << n;
    EXPECT_EQ((*model)->Evaluate(genotype).latency_ms, at8.latency_ms) << n;
  }
}

}  // namespace
}  // namespace apq::hwmodels
