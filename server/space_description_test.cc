#include "server/space_description.h"

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "oface/mbconv_quant_space.h"
#include "oface/mbconv_spec.h"
#include "oface/ofa_mbv3_space.h"

namespace apq::server {
namespace {

using ::testing::HasSubstr;

// Every space the server registers (server/catalog.cc).
std::vector<std::unique_ptr<oface::SearchSpace>> AllSpaces() {
  std::vector<std::unique_ptr<oface::SearchSpace>> spaces;
  spaces.push_back(oface::NewOfaMbv3Space());
  spaces.push_back(oface::NewApqMbv2Space());
  for (const oface::MbConvSpec& spec : oface::FashionMnistSpecs()) {
    spaces.push_back(oface::NewMbConvQuantSpace(spec).value());
  }
  return spaces;
}

// The config `json` with the value at `path` replaced by the JSON text `value`.
std::string With(const std::string& json, const std::string& path, const std::string& value) {
  nlohmann::json document = nlohmann::json::parse(json);
  nlohmann::json* at = JsonAtPath(document, path);
  EXPECT_NE(at, nullptr) << path;
  if (at != nullptr) *at = nlohmann::json::parse(value);
  return document.dump();
}

// The described values are what the space accepts: every choice written at its path reads back
// as that choice, and a value outside the choices is refused naming the field.
TEST(SpaceDescriptionTest, EveryDescribedChoiceIsAcceptedAndAValueOutsideIsRefused) {
  for (const auto& space : AllSpaces()) {
    SCOPED_TRACE(space->name());
    const apq::v1::SpaceDescription description = DescribeSpaceFields(*space, true).value();
    ASSERT_EQ(description.fields_size(), static_cast<int>(space->genes().size()));
    EXPECT_EQ(description.field_count(), description.fields_size());
    EXPECT_FALSE(description.config_format().empty());
    const std::string example = description.example_config_json();
    ASSERT_TRUE(space->FromJson(example).ok());
    // The example is the largest network (in a space with rules it may break none).
    int checked = 0;
    for (int g = 0; g < description.fields_size(); ++g) {
      const apq::v1::ConfigField& field = description.fields(g);
      SCOPED_TRACE(field.name());
      ASSERT_EQ(field.name(), space->genes()[g].name);
      ASSERT_EQ(field.choices_size(), static_cast<int>(space->genes()[g].choices.size()));
      ASSERT_EQ(field.json_values_size(), field.choices_size());
      EXPECT_EQ(field.is_bits(), oface::IsBitsGene(space->genes()[g]));
      if (field.choices_size() < 2) continue;
      ASSERT_FALSE(field.json_path().empty());
      for (int c = 0; c < field.choices_size(); ++c) {
        ASSERT_FALSE(field.json_values(c).empty());
        // Written into the example; where a rule forbids it there, the field's value alone
        // is checked through the error's text.
        const absl::StatusOr<oface::Genotype> read =
            space->FromJson(With(example, field.json_path(), field.json_values(c)));
        if (read.ok()) {
          EXPECT_EQ((*read)[g], field.choices(c));
          ++checked;
        } else {
          EXPECT_THAT(std::string(read.status().message()), HasSubstr("not allowed"));
        }
      }
      // Past the largest choice: refused, naming the field.
      const absl::StatusOr<oface::Genotype> outside =
          space->FromJson(With(example, field.json_path(),
                               std::to_string(field.choices(field.choices_size() - 1) * 3 + 1)));
      EXPECT_FALSE(outside.ok());
      EXPECT_THAT(std::string(outside.status().message()),
                  HasSubstr(field.json_path().substr(field.json_path().rfind('.') + 1)));
    }
    EXPECT_GT(checked, description.fields_size());
    // Bits: exactly the mixed-precision spaces.
    EXPECT_EQ(description.has_bits(), space->name() != "ofa_mbv3");
  }
}

TEST(SpaceDescriptionTest, ASummaryLeavesTheFieldsOutAndRulesAreSaid) {
  const std::unique_ptr<oface::SearchSpace> apq = oface::NewApqMbv2Space();
  const apq::v1::SpaceDescription summary = DescribeSpaceFields(*apq, false).value();
  EXPECT_EQ(summary.fields_size(), 0);
  EXPECT_EQ(summary.field_count(), static_cast<int>(apq->genes().size()));
  // apq_mbv2 bans some kernel and depthwise activation-width pairs: said in words.
  ASSERT_GT(summary.rules_size(), 0);
  EXPECT_THAT(summary.rules(0), HasSubstr("dw_a_bits_setting"));
  EXPECT_EQ(DescribeSpaceFields(*oface::NewOfaMbv3Space(), false).value().rules_size(), 0);
}

TEST(SpaceDescriptionTest, JsonPathsLeadToValuesOrNothing) {
  nlohmann::json document = nlohmann::json::parse(R"([{"ks":[3,5],"r":[224]},{"b":1}])");
  ASSERT_NE(JsonAtPath(document, "[0].ks[1]"), nullptr);
  EXPECT_EQ(*JsonAtPath(document, "[0].ks[1]"), 5);
  EXPECT_EQ(*JsonAtPath(document, "[1].b"), 1);
  EXPECT_EQ(JsonAtPath(document, "[0].ks[2]"), nullptr);
  EXPECT_EQ(JsonAtPath(document, "[2]"), nullptr);
  EXPECT_EQ(JsonAtPath(document, "[0].e"), nullptr);
  EXPECT_EQ(JsonAtPath(document, "[x]"), nullptr);
  EXPECT_EQ(JsonAtPath(document, "ks"), nullptr);
}

}  // namespace
}  // namespace apq::server
