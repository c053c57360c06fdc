#include "hwmodels/lut_cost_model.h"

#include <cmath>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hwmodels/apq_bitfusion_table_testing.h"
#include "hwmodels/cost_table.h"
#include "hwmodels/ofa_yaml_table.h"
#include "nlohmann/json.hpp"
#include "oface/mbconv_quant_space.h"
#include "oface/ofa_mbv3_space.h"
#include "oface/search_space.h"

namespace apq::hwmodels {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

nlohmann::json LoadJson(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  return nlohmann::json::parse(in);
}

oface::Genotype GenotypeOf(const nlohmann::json& arch) {
  oface::Genotype genotype;
  for (const char* field : {"ks", "e", "d"}) {
    for (const auto& value : arch.at(field)) genotype.push_back(value.get<int>());
  }
  genotype.push_back(arch.at("r").get<int>());
  return genotype;
}

// Uniform arch: every block (ks, e), every stage depth d, resolution r.
oface::Genotype UniformArch(int ks, int e, int d, int r) {
  oface::Genotype genotype(20, ks);
  genotype.insert(genotype.end(), 20, e);
  genotype.insert(genotype.end(), 5, d);
  genotype.push_back(r);
  return genotype;
}

class LutCostModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<CostTable> table = LoadOfaYamlDirectory("data/ofa_mbv3/note10_lut");
    ASSERT_TRUE(table.ok()) << table.status();
    table_ = new CostTable(*std::move(table));
  }
  static void TearDownTestSuite() { delete table_; }

  void SetUp() override {
    absl::StatusOr<std::unique_ptr<LutCostModel>> model = LutCostModel::Create(*space_, *table_);
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = *std::move(model);
  }

  static CostTable* table_;
  const std::unique_ptr<oface::SearchSpace> space_ = oface::NewOfaMbv3Space();
  std::unique_ptr<LutCostModel> model_;
};

CostTable* LutCostModelTest::table_ = nullptr;

TEST_F(LutCostModelTest, ShippedTableCoversTheSpace) {
  EXPECT_THAT(MissingKeys(*space_, *table_), IsEmpty());
  // Every entry of the shipped tables is a term of the space.
  EXPECT_EQ(space_->num_cost_terms(), table_->entries.size());
  EXPECT_EQ(&model_->space(), space_.get());
}

TEST_F(LutCostModelTest, GoldenNote10Latencies) {
  const nlohmann::json golden = LoadJson("tests/testdata/golden_ofa_mbv3_note10.json");
  ASSERT_EQ(golden.size(), 300);
  int exact = 0;
  for (const auto& entry : golden) {
    const oface::Genotype genotype = GenotypeOf(entry);
    ASSERT_TRUE(space_->Validate(genotype).ok());
    const NetworkCost cost = model_->Evaluate(genotype);
    const double expected = entry.at("note10_latency_ms").get<double>();
    EXPECT_NEAR(cost.latency_ms, expected, 1e-9) << "index " << entry.at("index");
    EXPECT_FALSE(cost.has_energy);
    exact += cost.latency_ms == expected;
  }
  // Same terms in the same order from 0.0: the reference's bits, not merely close.
  EXPECT_EQ(exact, 300);
}

TEST_F(LutCostModelTest, TutorialArch) {
  const nlohmann::json golden = LoadJson("tests/testdata/golden_values.json");
  const nlohmann::json& tutorial = golden.at("ofa_mbv3_w1.2_tutorial_note10_25ms");
  const NetworkCost cost = model_->Evaluate(GenotypeOf(tutorial.at("arch")));
  EXPECT_NEAR(cost.latency_ms, 24.7302, 1e-3);
  EXPECT_NEAR(cost.latency_ms, tutorial.at("note10_latency_ms").get<double>(), 1e-9);
}

TEST_F(LutCostModelTest, MaxAndMinArchsAtEveryResolution) {
  const nlohmann::json golden = LoadJson("tests/testdata/golden_values.json");
  for (const int r : {160, 176, 192, 208, 224}) {
    const std::string key = absl::StrCat(r);
    EXPECT_NEAR(model_->Evaluate(UniformArch(7, 6, 4, r)).latency_ms,
                golden.at("note10_latency_ms_max_arch").at(key).get<double>(), 1e-9)
        << r;
    EXPECT_NEAR(model_->Evaluate(UniformArch(3, 3, 2, r)).latency_ms,
                golden.at("note10_latency_ms_min_arch").at(key).get<double>(), 1e-9)
        << r;
  }
  // The max and min archs of golden_values.json themselves.
  EXPECT_NEAR(model_->Evaluate(GenotypeOf(golden.at("ofa_mbv3_w1.2_max").at("arch"))).latency_ms,
              golden.at("note10_latency_ms_max_arch").at("224").get<double>(), 1e-9);
  EXPECT_NEAR(model_->Evaluate(GenotypeOf(golden.at("ofa_mbv3_w1.2_min").at("arch"))).latency_ms,
              golden.at("note10_latency_ms_min_arch").at("160").get<double>(), 1e-9);
}

TEST_F(LutCostModelTest, MissingKeysFailCreate) {
  CostTable table = *table_;
  const std::string removed =
      "176/expanded_conv-input:22x22x48-output:11x11x96-expand:288-kernel:7-stride:2-idskip:0-"
      "se:0-hs:1";
  ASSERT_EQ(table.entries.erase(removed), 1);
  ASSERT_EQ(table.entries.erase("224/Logits-input:1x1x1536-output:1000"), 1);
  EXPECT_EQ(MissingKeys(*space_, table).size(), 2);

  const absl::StatusOr<std::unique_ptr<LutCostModel>> model = LutCostModel::Create(*space_, table);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(model.status().message(),
              HasSubstr("cost table lacks 2 keys the space ofa_mbv3 needs: "));
  EXPECT_THAT(model.status().message(), HasSubstr(removed));
  EXPECT_THAT(model.status().message(), HasSubstr("224/Logits-input:1x1x1536-output:1000"));
}

TEST_F(LutCostModelTest, ManyMissingKeysAreTruncated) {
  CostTable table = *table_;
  std::vector<std::string> removed;
  for (auto it = table.entries.begin(); it != table.entries.end(); ++it) {
    if (it->first.rfind("208/", 0) == 0) removed.push_back(it->first);
  }
  for (const std::string& key : removed) table.entries.erase(key);
  ASSERT_EQ(removed.size(), 96);
  const absl::StatusOr<std::unique_ptr<LutCostModel>> model = LutCostModel::Create(*space_, table);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kFailedPrecondition);
  const std::string message(model.status().message());
  EXPECT_THAT(message, HasSubstr("cost table lacks 96 keys"));
  EXPECT_THAT(message, HasSubstr("208/Conv-input:208x208x3-output:104x104x24"));
  EXPECT_THAT(message, HasSubstr(", ..."));
  // Exactly 20 keys are listed.
  int listed = 0;
  for (size_t at = message.find("208/"); at != std::string::npos;
       at = message.find("208/", at + 1)) {
    ++listed;
  }
  EXPECT_EQ(listed, 20);
}

TEST_F(LutCostModelTest, EnergyOnlyWhenEveryEntryHasIt) {
  CostTable table = *table_;
  for (auto& [key, entry] : table.entries) entry.energy_mj = 2.0 * entry.latency_ms;
  absl::StatusOr<std::unique_ptr<LutCostModel>> model = LutCostModel::Create(*space_, table);
  ASSERT_TRUE(model.ok()) << model.status();
  const oface::Genotype genotype = UniformArch(5, 4, 3, 192);
  const NetworkCost cost = (*model)->Evaluate(genotype);
  ASSERT_TRUE(cost.has_energy);
  // Doubling every term doubles the sum exactly (scaling by 2 is exact in binary).
  EXPECT_EQ(cost.energy_mj, 2.0 * cost.latency_ms);
  EXPECT_EQ(cost.latency_ms, model_->Evaluate(genotype).latency_ms);

  table.entries.at("192/Conv_2-input:1x1x1152-output:1x1x1536").energy_mj.reset();
  model = LutCostModel::Create(*space_, table);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_FALSE((*model)->Evaluate(genotype).has_energy);
}

TEST_F(LutCostModelTest, InactiveBlocksCostNothing) {
  oface::Genotype genotype = UniformArch(3, 3, 2, 208);
  const double base = model_->Evaluate(genotype).latency_ms;
  // Blocks 2 and 3 of every stage are inactive at depth 2.
  for (int s = 0; s < 5; ++s) {
    genotype[4 * s + 2] = 7;
    genotype[20 + 4 * s + 3] = 6;
  }
  EXPECT_EQ(model_->Evaluate(genotype).latency_ms, base);
  genotype[40] = 3;  // Stage 0 now runs its third block (ks 7).
  EXPECT_GT(model_->Evaluate(genotype).latency_ms, base);
}

// The apq_mbv2 space priced by APQ's BitFusion table.
class ApqBitFusionCostTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<LutCostModel>> model =
        LutCostModel::Create(*space_, ShippedBitFusionTable());
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = *std::move(model);
  }

  // APQ's arch JSON for a uniform config: every layer (ks, e, bits), every depth d.
  oface::Genotype Uniform(int ks, int e, int d, int bits) const {
    const nlohmann::json arch =
        nlohmann::json::array({{{"wid", nullptr},
                                {"ks", std::vector<int>(21, ks)},
                                {"e", std::vector<int>(21, e)},
                                {"d", std::vector<int>(6, d)}},
                               {{"pw_w_bits_setting", std::vector<int>(21, bits)},
                                {"pw_a_bits_setting", std::vector<int>(21, bits)},
                                {"dw_w_bits_setting", std::vector<int>(21, bits)},
                                {"dw_a_bits_setting", std::vector<int>(21, bits)}}});
    absl::StatusOr<oface::Genotype> genotype = space_->FromJson(arch.dump());
    EXPECT_TRUE(genotype.ok()) << genotype.status();
    return genotype.value_or(oface::Genotype());
  }

  const std::unique_ptr<oface::SearchSpace> space_ = oface::NewApqMbv2Space();
  std::unique_ptr<LutCostModel> model_;
};

TEST_F(ApqBitFusionCostTest, ShippedTableCoversTheSpaceExactly) {
  EXPECT_THAT(MissingKeys(*space_, ShippedBitFusionTable()), IsEmpty());
  // Every entry of the table is a term of the space, and no term is missing.
  EXPECT_EQ(space_->num_cost_terms(), ShippedBitFusionTable().entries.size());
  EXPECT_TRUE(model_->has_energy());
}

TEST_F(ApqBitFusionCostTest, GoldenLatencyAndEnergy) {
  const nlohmann::json golden = LoadJson("tests/testdata/golden_apq_bitfusion.json");
  ASSERT_EQ(golden.size(), 300);
  int exact = 0;
  for (const auto& entry : golden) {
    const absl::StatusOr<oface::Genotype> genotype = space_->FromJson(entry.at("arch_json").dump());
    ASSERT_TRUE(genotype.ok()) << genotype.status();
    const NetworkCost cost = model_->Evaluate(*genotype);
    const double latency = entry.at("latency_ms").get<double>();
    const double energy = entry.at("energy_mJ").get<double>();
    ASSERT_TRUE(cost.has_energy);
    EXPECT_LE(std::fabs(cost.latency_ms - latency), 1e-9 * latency) << entry.at("index");
    EXPECT_LE(std::fabs(cost.energy_mj - energy), 1e-9 * energy) << entry.at("index");
    exact += cost.latency_ms == latency && cost.energy_mj == energy;
    ASSERT_TRUE(cost.has_size_and_bitops);
    EXPECT_EQ(cost.bitops, static_cast<double>(space_->StaticCosts(*genotype)->bitops));
  }
  // Same terms in the same order from head + tail: the reference's bits.
  EXPECT_EQ(exact, 300);
}

TEST_F(ApqBitFusionCostTest, UniformConfigsOfGoldenValues) {
  const nlohmann::json golden = LoadJson("tests/testdata/golden_values.json");
  const struct {
    const char* name;
    int ks, e, d, bits;
  } configs[] = {
      {"apq_bitfusion_uniform_ks7_e6_d4_w8a8", 7, 6, 4, 8},
      {"apq_bitfusion_uniform_ks3_e4_d2_w8a8", 3, 4, 2, 8},
      {"apq_bitfusion_uniform_ks3_e4_d2_w4a4", 3, 4, 2, 4},
      {"apq_bitfusion_uniform_ks5_e6_d4_w8a8", 5, 6, 4, 8},
  };
  for (const auto& config : configs) {
    const nlohmann::json& expected = golden.at(config.name);
    const NetworkCost cost = model_->Evaluate(Uniform(config.ks, config.e, config.d, config.bits));
    const double latency = expected.at("latency_ms").get<double>();
    const double energy = expected.at("energy_mJ").get<double>();
    EXPECT_LE(std::fabs(cost.latency_ms - latency), 1e-6 * latency) << config.name;
    EXPECT_LE(std::fabs(cost.energy_mj - energy), 1e-6 * energy) << config.name;
  }
}

TEST_F(ApqBitFusionCostTest, InactiveLayersCostNothing) {
  oface::Genotype genotype = Uniform(3, 4, 2, 6);
  const NetworkCost base = model_->Evaluate(genotype);
  // Layers 2 and 3 of stages 0..4 are inactive at depth 2: rewrite their genes.
  for (int s = 0; s < 5; ++s) {
    for (const int i : {4 * s + 2, 4 * s + 3}) {
      genotype[i] = 7;                                                            // ks
      genotype[21 + i] = space_->genes()[21 + i].choices.back();                  // mid
      for (int field = 0; field < 4; ++field) genotype[42 + 21 * field + i] = 8;  // bits
    }
  }
  EXPECT_EQ(model_->Evaluate(genotype).latency_ms, base.latency_ms);
  EXPECT_EQ(model_->Evaluate(genotype).energy_mj, base.energy_mj);
  genotype[126] = 3;  // Stage 0 now runs its third layer.
  EXPECT_GT(model_->Evaluate(genotype).latency_ms, base.latency_ms);
  EXPECT_GT(model_->Evaluate(genotype).energy_mj, base.energy_mj);
}

TEST_F(ApqBitFusionCostTest, MissingKeysFailCreate) {
  CostTable table = ShippedBitFusionTable();
  ASSERT_EQ(table.entries.erase("tail"), 1);
  ASSERT_EQ(table.entries.erase("(1152, 1152, 7, 7, 1, 3, 1152)-W8A8"), 1);
  const std::vector<std::string> missing = MissingKeys(*space_, table);
  EXPECT_EQ(missing, (std::vector<std::string>{"tail", "(1152, 1152, 7, 7, 1, 3, 1152)-W8A8"}));
  const absl::StatusOr<std::unique_ptr<LutCostModel>> model = LutCostModel::Create(*space_, table);
  EXPECT_EQ(model.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(model.status().message(), HasSubstr("cost table lacks 2 keys the space apq_mbv2"));
}

}  // namespace
}  // namespace apq::hwmodels
