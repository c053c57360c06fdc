#include "hwmodels/lut_cost_model.h"

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hwmodels/cost_table.h"
#include "hwmodels/ofa_yaml_table.h"
#include "nlohmann/json.hpp"
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

}  // namespace
}  // namespace apq::hwmodels
