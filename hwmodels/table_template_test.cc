#include "hwmodels/table_template.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "hwmodels/apq_bitfusion_table.h"
#include "hwmodels/conv_latency_table.h"
#include "hwmodels/lut_cost_model.h"
#include "hwmodels/ofa_yaml_table.h"
#include "oface/mbconv_quant_space.h"
#include "oface/mbconv_spec.h"
#include "oface/ofa_mbv3_space.h"

namespace apq::hwmodels {
namespace {

using ::testing::ElementsAreArray;
using ::testing::IsEmpty;

// The template's files with every placeholder replaced by a figure.
std::vector<std::pair<std::string, std::string>> FilledIn(const TableTemplate& table_template) {
  std::vector<std::pair<std::string, std::string>> files;
  for (const auto& [name, content] : table_template.files) {
    files.emplace_back(name, absl::StrReplaceAll(content, {{"TODO", "0.25"}, {"null", "0.5"}}));
  }
  return files;
}

absl::StatusOr<CostTable> Load(TableFormat format,
                               const std::vector<std::pair<std::string, std::string>>& files) {
  switch (format) {
    case TableFormat::kOfaYaml:
      return LoadOfaYamlTables(files);
    case TableFormat::kApqBitFusion:
      return LoadApqBitFusionTable(files.at(0).second, files.at(0).first);
    case TableFormat::kConvJson:
      return LoadConvTable(files.at(0).second, files.at(0).first);
  }
  return absl::InternalError("unknown format");
}

struct Case {
  const char* name;
  std::unique_ptr<oface::SearchSpace> (*space)();
  TableFormat format;
  bool all_representable;
};

std::unique_ptr<oface::SearchSpace> LowBitSpace() {
  return *oface::NewMbConvQuantSpace(oface::FashionMnistLowBitSpec());
}
std::unique_ptr<oface::SearchSpace> FmnistSpace() {
  return *oface::NewMbConvQuantSpace(oface::FashionMnistSpec());
}
// With float layers: its template also asks for the changes of precision between them.
std::unique_ptr<oface::SearchSpace> Int8FloatSpace() {
  return *oface::NewMbConvQuantSpace(oface::FashionMnistInt8FloatSpec());
}

class TableTemplateTest : public ::testing::TestWithParam<Case> {};

// Filled in, a template loads and covers the space but for the keys it says the format cannot
// hold; without any one of its keys, the coverage check names exactly that key.
TEST_P(TableTemplateTest, FilledInItCoversWhatTheCoverageCheckAsks) {
  const std::unique_ptr<oface::SearchSpace> space = GetParam().space();
  const absl::StatusOr<TableTemplate> made = MakeTableTemplate(*space, GetParam().format);
  ASSERT_TRUE(made.ok()) << made.status();
  ASSERT_FALSE(made->files.empty());
  EXPECT_GT(made->entries, 0);
  EXPECT_GT(made->shapes, 0);
  EXPECT_LE(made->shapes, made->entries);
  EXPECT_EQ(made->unrepresentable.empty(), GetParam().all_representable);

  // Unfilled, the loader refuses it.
  EXPECT_FALSE(Load(GetParam().format, made->files).ok());

  const absl::StatusOr<CostTable> table = Load(GetParam().format, FilledIn(*made));
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(static_cast<int64_t>(table->entries.size()), made->entries);
  EXPECT_THAT(MissingKeys(*space, *table), ElementsAreArray(made->unrepresentable));

  // Every key the space needs and the template holds is needed: dropping it is noticed.
  int dropped = 0;
  for (int term = 0; term < space->num_cost_terms() && dropped < 25; term += 7) {
    const std::string key = space->CostTermKey(term);
    CostTable without = *table;
    if (without.entries.erase(key) == 0) continue;
    const std::vector<std::string> missing = MissingKeys(*space, without);
    EXPECT_EQ(missing.size(), made->unrepresentable.size() + 1) << key;
    EXPECT_NE(std::find(missing.begin(), missing.end(), key), missing.end()) << key;
    ++dropped;
  }
  EXPECT_GT(dropped, 0);
}

INSTANTIATE_TEST_SUITE_P(
    SpacesAndFormats, TableTemplateTest,
    ::testing::Values(
        Case{"ofa_mbv3_ofa_yaml", &oface::NewOfaMbv3Space, TableFormat::kOfaYaml, true},
        Case{"apq_mbv2_bitfusion", &oface::NewApqMbv2Space, TableFormat::kApqBitFusion, true},
        Case{"apq_mbv2_conv_json", &oface::NewApqMbv2Space, TableFormat::kConvJson, false},
        Case{"fmnist_mbv2_conv_json", &FmnistSpace, TableFormat::kConvJson, true},
        Case{"fmnist_lowbit_bitfusion", &LowBitSpace, TableFormat::kApqBitFusion, false},
        Case{"fmnist_lowbit_conv_json", &LowBitSpace, TableFormat::kConvJson, true},
        Case{"fmnist_int8float_conv_json", &Int8FloatSpace, TableFormat::kConvJson, true},
        Case{"fmnist_int8float_bitfusion", &Int8FloatSpace, TableFormat::kApqBitFusion, false}),
    [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

TEST(TableTemplateKindsTest, AFormatOfTheOtherKeyKindIsRefused) {
  const absl::StatusOr<TableTemplate> conv =
      MakeTableTemplate(*oface::NewOfaMbv3Space(), TableFormat::kConvJson);
  EXPECT_EQ(conv.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(conv.status().message(), "format: space ofa_mbv3"));
  const absl::StatusOr<TableTemplate> yaml =
      MakeTableTemplate(*oface::NewApqMbv2Space(), TableFormat::kOfaYaml);
  EXPECT_EQ(yaml.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(TableTemplateKindsTest, TheLowBitPairsAreWhatBitFusionsFormatCannotHold) {
  const std::unique_ptr<oface::SearchSpace> space = LowBitSpace();
  const TableTemplate made = *MakeTableTemplate(*space, TableFormat::kApqBitFusion);
  ASSERT_FALSE(made.unrepresentable.empty());
  for (const std::string& key : made.unrepresentable) {
    EXPECT_TRUE(absl::StrContains(key, "W2") || absl::StrContains(key, "W3") ||
                absl::StrContains(key, "A2") || absl::StrContains(key, "A3"))
        << key;
  }
  EXPECT_THAT(MakeTableTemplate(*space, TableFormat::kConvJson)->unrepresentable, IsEmpty());
}

}  // namespace
}  // namespace apq::hwmodels
